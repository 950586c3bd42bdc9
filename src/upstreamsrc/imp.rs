// SPDX-License-Identifier: MPL-2.0
//! rsipcupstreamsrc: the master end of a split pipeline whose slave is the upstream part.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::crash::Crash;
use crate::drive::{self, Drive, Part};
use crate::link::{Link, LinkSlot, StreamLink};
use crate::replay::Replay;
use crate::settings::{self, Settings};
use crate::spawned::SlaveProcess;
use crate::wire::{Frame, Role};

#[path = "restart.rs"]
mod restart;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcupstreamsrc",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC upstream src"),
    )
});

const DEFAULT_READ_CHUNK_SIZE: u32 = 65536;
/// Further streams one slave may open: far more than a file has, few enough that a slave
/// cannot make us hold threads and sockets without end.
const MAX_STREAMS: usize = 32;

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
    /// `on-slave-crash`, `max-restarts` and the recent restarts.
    crash: Crash,
    /// The further streams of the slave, each a src pad of ours with a connection of its own.
    extras: Mutex<Vec<Extra>>,
    /// Our pads push (from READY to PAUSED until back in READY): a further stream's too.
    streaming: AtomicBool,
    /// Further streams the slave has opened since they were last removed, counted as their
    /// frames arrive: each holds an fd from then on.
    opened: AtomicUsize,
}

/// A further stream of the slave: a sometimes pad, and the connection the slave gave us for it.
struct Extra {
    pad: gst::Pad,
    replay: Arc<Replay>,
    /// Connected once the pad is ready.
    link: Option<StreamLink>,
}

impl IpcUpstreamSrc {
    fn post_link_error(&self, err: &ChannelError) {
        if matches!(err, ChannelError::Disconnected | ChannelError::Flushing)
            || self.crash.restarting.load(Ordering::SeqCst)
            || self.error_posted.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let note = self.crash.spent_note();
        self.post_error_message(drive::link_error(err, &self.process, &note));
    }

    /// The answer to a request, or false with the link's error posted.
    fn answered(&self, result: Result<bool, ChannelError>) -> bool {
        result.unwrap_or_else(|e| {
            self.post_link_error(&e);
            false
        })
    }

    /// The replay of the stream that leaves by `pad`.
    fn replay_of(&self, pad: &gst::Pad) -> Option<Arc<Replay>> {
        if pad == &self.srcpad {
            return Some(self.replay.clone());
        }
        let extras = self.extras.lock().unwrap();
        extras
            .iter()
            .find(|e| &e.pad == pad)
            .map(|e| e.replay.clone())
    }

    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        self.replay_of(pad)
            .is_some_and(|r| self.answered(r.upstream_event(event)))
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        // In NULL there is no slave to answer; linking asks for caps, and a refusal lets
        // GStreamer assume ANY.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        self.replay_of(pad)
            .is_some_and(|r| self.answered(r.upstream_query(query)))
    }

    fn pad_builder(templ: &gst::PadTemplate) -> gst::PadBuilder<gst::Pad> {
        gst::Pad::builder_from_template(templ)
            .event_function(|pad, parent, event| {
                IpcUpstreamSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                IpcUpstreamSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(pad, query),
                )
            })
    }

    /// A further stream of the slave, on the connection `fd`: a new src pad, ready (linked by
    /// whoever watches pad-added, pushing) before anything is read from the connection.
    fn add_stream(&self, fd: OwnedFd) -> Result<(), ChannelError> {
        let templ = self.obj().pad_template("src_%u").unwrap();
        let slot = Arc::new(LinkSlot::default());
        let (pad, replay) = {
            let mut extras = self.extras.lock().unwrap();
            let name = format!("src_{}", extras.len() + 1);
            let pad = IpcUpstreamSrc::pad_builder(&templ).name(&name).build();
            let sampler = clock_sampler(&self.drive, &pad);
            let replay = Replay::new(*CAT, &pad, slot.clone(), "slave", Some(sampler));
            // Listed before it is added: whoever links it in pad-added may query it.
            extras.push(Extra {
                pad: pad.clone(),
                replay: replay.clone(),
                link: None,
            });
            (pad, replay)
        };
        gst::debug!(CAT, imp = self, "the slave opens stream {}", pad.name());
        // Activated as it is added, the element being in PAUSED or PLAYING.
        self.obj()
            .add_pad(&pad)
            .map_err(|e| ChannelError::Unexpected(e.to_string()))?;
        if self.streaming.load(Ordering::SeqCst) {
            replay
                .start()
                .map_err(|e| ChannelError::Unexpected(e.to_string()))?;
        }
        let link = StreamLink::connect(
            fd,
            slot,
            &replay,
            &self.settings.lock().unwrap().clone(),
            Role::UpstreamReceiver,
            &format!("{}-{}", self.obj().name(), pad.name()),
        )?;
        if let Some(e) = self
            .extras
            .lock()
            .unwrap()
            .iter_mut()
            .find(|e| e.pad == pad)
        {
            e.link = Some(link);
        }
        Ok(())
    }

    /// The further streams end with the slave's pipeline (its demuxer removes its pads).
    fn remove_streams(&self) {
        let extras = std::mem::take(&mut *self.extras.lock().unwrap());
        self.opened.store(0, Ordering::SeqCst);
        for e in extras {
            e.replay.stop();
            drop(e.link);
            let _ = e.pad.set_active(false);
            let _ = self.obj().remove_pad(&e.pad);
        }
    }

    fn connect(&self) -> Result<(), gst::ErrorMessage> {
        self.error_posted.store(false, Ordering::SeqCst);
        let handler = || -> Arc<dyn Handler> {
            Arc::new(UpstreamSrcHandler {
                element: self.obj().downgrade(),
            })
        };
        let element = self.obj();
        self.drive.connect(
            element.upcast_ref(),
            &self.process,
            &self.settings,
            Role::UpstreamReceiver,
            handler,
        )
    }

    /// Leaves the slave process we started to end on its own (it does once we are gone).
    fn release_slave(&self) {
        self.process.release(&self.link, &self.settings);
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }
}

/// A clock the slave cannot read is sampled for it now and then, as a stream flows (on the
/// main connection, whichever stream flows).
fn clock_sampler(drive: &Arc<Drive>, pad: &gst::Pad) -> crate::replay::BeforeBuffer {
    let (drive, pad) = (drive.clone(), pad.downgrade());
    Box::new(move |_: &Link| {
        if let Some(element) = pad.upgrade().and_then(|p| p.parent_element()) {
            drive.sample_clock(&element);
        }
    })
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
            Some(Frame::Stream(fd)) => {
                // Counted here, not when the lane gets to it: queued, each holds an fd.
                if imp.opened.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
                    return Err(ChannelError::Limit(format!(
                        "more than {MAX_STREAMS} further streams"
                    )));
                }
                let element = element.clone();
                link.control.push_for_peer(move || {
                    let imp = element.imp();
                    if let Err(e) = imp.add_stream(fd) {
                        imp.post_link_error(&e);
                    }
                })?;
                None
            }
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
            if imp.will_restart(&error) {
                // Not on this lane: replacing the slave takes its link, and this lane, down.
                let element = element.clone();
                std::thread::spawn(move || element.imp().restart_slave(&error));
                return;
            }
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
        let srcpad = IpcUpstreamSrc::pad_builder(&templ).build();
        let link = Arc::new(LinkSlot::default());
        let drive = Drive::new(*CAT, Part::Upstream, link.clone());
        let sampler = clock_sampler(&drive, &srcpad);
        Self {
            extras: Mutex::new(Vec::new()),
            streaming: AtomicBool::new(false),
            opened: AtomicUsize::new(0),
            replay: Replay::new(*CAT, &srcpad, link.clone(), "slave", Some(sampler)),
            drive,
            link,
            srcpad,
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            error_posted: AtomicBool::new(false),
            process: Default::default(),
            crash: Default::default(),
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
            p.extend(Crash::properties(
                "where its stream was (a live one from now)",
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
        let name = pspec.name();
        if !self.process.set_property(name, value) && !self.crash.set_property(name, value) {
            self.settings.lock().unwrap().set(name, value);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.process
            .property(pspec.name())
            .or_else(|| self.crash.property(pspec.name()))
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
                // The slave's further streams (a demuxer's other pads), as they appear.
                gst::PadTemplate::new(
                    "src_%u",
                    gst::PadDirection::Src,
                    gst::PadPresence::Sometimes,
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
                    self.streaming.store(false, Ordering::SeqCst);
                    self.replay.stop();
                    self.remove_streams();
                }
                let ret = self.parent_change_state(transition)?;
                if transition == T::ReadyToPaused {
                    self.replay.start().map_err(|_| gst::StateChangeError)?;
                    self.streaming.store(true, Ordering::SeqCst);
                }
                Ok(ret)
            },
        );
        if transition == T::ReadyToNull {
            // Streams a slave opened without our going to PAUSED end here.
            self.remove_streams();
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
