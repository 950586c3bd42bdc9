// SPDX-License-Identifier: MPL-2.0
//! rsipcupstreamsrc: the master end of a split pipeline whose slave is the upstream part.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::drive::{Drive, Part};
use crate::link::{Link, LinkSlot};
use crate::replay::Replay;
use crate::settings::{self, Settings};
use crate::spawned::SlaveProcess;
use crate::wire::{Frame, Role};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcupstreamsrc",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC upstream src"),
    )
});

const DEFAULT_READ_CHUNK_SIZE: u32 = 65536;

pub struct IpcUpstreamSrc {
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    link: Arc<LinkSlot>,
    /// Pushes the slave's stream.
    replay: Arc<Replay>,
    /// Drives the slave pipeline as a bin drives its children.
    drive: Arc<Drive>,
    /// One ERROR per broken connection: the reader and the streaming thread may both notice.
    error_posted: AtomicBool,
    /// The slave process we start for `slave-pipeline`, and how.
    process: SlaveProcess,
}

impl IpcUpstreamSrc {
    fn post_link_error(&self, err: &ChannelError) {
        if matches!(err, ChannelError::Disconnected | ChannelError::Flushing)
            || self.error_posted.swap(true, Ordering::SeqCst)
        {
            return;
        }
        match (err, self.process.ending()) {
            (ChannelError::Timeout(_), _) => gst::element_imp_error!(
                self,
                gst::ResourceError::Read,
                ("No answer from the slave pipeline"),
                ["{err}"]
            ),
            (_, Some(ended)) => gst::element_imp_error!(
                self,
                gst::ResourceError::Read,
                ("Lost the slave pipeline: {ended}"),
                ["{err}"]
            ),
            (_, None) => gst::element_imp_error!(
                self,
                gst::ResourceError::Read,
                ("Lost the connection to the slave pipeline: {err}"),
                ["{err}"]
            ),
        }
    }

    /// The answer to a request, or false with the link's error posted.
    fn answered(&self, result: Result<bool, ChannelError>) -> bool {
        result.unwrap_or_else(|e| {
            self.post_link_error(&e);
            false
        })
    }

    fn src_query(&self, query: &mut gst::QueryRef) -> bool {
        // In NULL there is no slave to answer; linking asks for caps, and a refusal lets
        // GStreamer assume ANY.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        self.answered(self.replay.upstream_query(query))
    }

    fn connect(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(fd) = self.process.start(self.obj().upcast_ref(), true)? {
            let mut s = self.settings.lock().unwrap();
            s.fdin = fd;
            s.fdout = fd;
        }
        let settings = self.settings.lock().unwrap().clone();
        if settings.fdin < 0 || settings.fdout < 0 {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("fdin and fdout must be set before the element leaves the NULL state")
            ));
        }
        self.error_posted.store(false, Ordering::SeqCst);
        self.drive.connected();
        let handler = || -> Arc<dyn Handler> {
            Arc::new(UpstreamSrcHandler {
                element: self.obj().downgrade(),
            })
        };
        self.link
            .connect(
                &settings,
                Role::UpstreamReceiver,
                &self.obj().name(),
                handler,
            )
            .and_then(|link| {
                link.channel.wait_hello()?;
                // The peer may have broken the protocol right after its greeting.
                link.channel.closed_reason().map_or(Ok(()), Err)
            })
            .map_err(|e| {
                self.link.disconnect();
                gst::error_msg!(
                    gst::ResourceError::OpenReadWrite,
                    ("Could not connect to the slave pipeline: {e}")
                )
            })
    }

    /// Leaves the slave process we started to end on its own (it does once we are gone).
    fn release_slave(&self) {
        // Held until the link on its socket is down: the socket closes with it.
        let Some(_slave) = self.process.release() else {
            return;
        };
        self.link.disconnect();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }
}

struct UpstreamSrcHandler {
    element: glib::WeakRef<super::IpcUpstreamSrc>,
}

impl Handler for UpstreamSrcHandler {
    fn frame(&self, id: u32, frame: Frame) -> Result<(), ChannelError> {
        let Some(element) = self.element.upgrade() else {
            return Ok(());
        };
        let imp = element.imp();
        let Some(link) = imp.link.get() else {
            return Ok(());
        };
        let frame = match imp.drive.frame(element.upcast_ref(), &link, frame)? {
            Some(frame) => imp.replay.frame(&link, id, frame)?,
            None => None,
        };
        match frame {
            Some(other) => Err(ChannelError::Unexpected(format!(
                "a {:?} frame from the slave",
                other.frame_type()
            ))),
            None => Ok(()),
        }
    }

    fn closed(&self, error: &ChannelError) {
        let Some(element) = self.element.upgrade() else {
            return;
        };
        // Before the greeting, connecting fails and says why.
        let Some(link) = element.imp().link.get().filter(|l| l.channel.greeted()) else {
            return;
        };
        let error = error.clone();
        link.control.push(move || {
            // Our parent passes up what we post without holding a reference of its own.
            let _parent = element.parent();
            let imp = element.imp();
            imp.replay.flush_queue();
            imp.post_link_error(&error)
        });
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IpcUpstreamSrc {
    const NAME: &'static str = "GstRsIpcUpstreamSrc";
    type Type = super::IpcUpstreamSrc;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("src").unwrap();
        let srcpad = gst::Pad::builder_from_template(&templ)
            .event_function(|_pad, parent, event| {
                IpcUpstreamSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.answered(imp.replay.upstream_event(event)),
                )
            })
            .query_function(|_pad, parent, query| {
                IpcUpstreamSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(query),
                )
            })
            .build();
        let link = Arc::new(LinkSlot::default());
        let drive = Drive::new(*CAT, Part::Upstream, link.clone());
        let sampler = drive.clone();
        let pad = srcpad.clone();
        // A clock the slave cannot read is sampled for it now and then, as the stream flows.
        let before_buffer = Box::new(move |link: &Link| {
            if let Some(element) = pad.parent_element() {
                sampler.announce_clock(&element, link, false);
            }
        });
        Self {
            replay: Replay::new(*CAT, &srcpad, link.clone(), "slave", Some(before_buffer)),
            drive,
            link,
            srcpad,
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            error_posted: AtomicBool::new(false),
            process: Default::default(),
        }
    }
}

impl ObjectImpl for IpcUpstreamSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut p = settings::properties(DEFAULT_READ_CHUNK_SIZE);
            p.extend(SlaveProcess::properties(
                "the part upstream of this source, up to its last element, which is linked \
                 to an rsipcupstreamsink",
            ));
            p
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![settings::disconnect_signal::<IpcUpstreamSrc>(
                IpcUpstreamSrc::disconnect,
            )]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if !self.process.set_property(pspec.name(), value) {
            self.settings.lock().unwrap().set(pspec.name(), value);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.process
            .property(pspec.name())
            .or_else(|| self.settings.lock().unwrap().get(pspec.name()))
            .unwrap()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.srcpad).unwrap();
        // As a bin holding the slave pipeline, we provide the clock its elements provide.
        obj.set_element_flags(gst::ElementFlags::SOURCE | gst::ElementFlags::PROVIDE_CLOCK);
    }

    fn dispose(&self) {
        self.link.disconnect();
    }
}

impl GstObjectImpl for IpcUpstreamSrc {}

impl ElementImpl for IpcUpstreamSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Inter-process upstream source",
                "Source",
                "Pushes the stream of an upstream slave pipeline in another process (which \
                 ends in an rsipcupstreamsink), and drives that pipeline as a part of this one",
                "gst-ipcpipeline-rs developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .unwrap(),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        use gst::StateChange as T;
        if transition == T::NullToReady
            && let Err(e) = self.connect()
        {
            self.release_slave();
            if !self.error_posted.swap(true, Ordering::SeqCst) {
                self.post_error_message(e);
            }
            return Err(gst::StateChangeError);
        }
        let element = self.obj();
        // Ours first (a bin changes downstream elements first): the task runs before the
        // slave starts sending, and stops before it stops.
        let ret = self.drive.change_state(
            element.upcast_ref(),
            transition,
            &|| false,
            &|e| self.post_link_error(e),
            || {
                if transition == T::PausedToReady {
                    self.replay.stop();
                }
                let ret = self.parent_change_state(transition)?;
                if transition == T::ReadyToPaused && self.replay.start().is_err() {
                    return Err(gst::StateChangeError);
                }
                Ok(ret)
            },
        );
        if transition == T::ReadyToNull {
            if self.link.get().is_some_and(|l| l.channel.is_closed()) {
                self.link.disconnect();
            }
            self.release_slave();
        }
        ret
    }

    fn send_event(&self, event: gst::Event) -> bool {
        self.answered(self.drive.element_event(event))
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        self.answered(self.drive.element_query(query))
    }

    /// The clock of the slave pipeline's own provider (a capture device), as a bin holding
    /// it would provide.
    fn provide_clock(&self) -> Option<gst::Clock> {
        self.drive.provide_clock(self.obj().upcast_ref())
    }

    fn set_context(&self, context: &gst::Context) {
        self.drive.set_context(context);
        self.parent_set_context(context)
    }
}
