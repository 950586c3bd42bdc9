// SPDX-License-Identifier: MPL-2.0
//! rsipcpipelinesink: the master end of a split pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::crash::Crash;
use crate::drive::{self, Drive, Part};
use crate::link::{Link, LinkSlot};
use crate::relay::{DEFAULT_WINDOW, Relay};
use crate::settings::{self, Settings};
use crate::spawned::SlaveProcess;
use crate::wire::{Frame, Reply, Role};

#[path = "restart.rs"]
mod restart;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcpipelinesink",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC pipeline sink"),
    )
});

const DEFAULT_READ_CHUNK_SIZE: u32 = 4096;
const MESSAGE_ORDER_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub struct IpcPipelineSink {
    sinkpad: gst::Pad,
    settings: Mutex<Settings>,
    link: Arc<LinkSlot>,
    /// Sends the stream to the slave.
    relay: Arc<Relay>,
    /// Drives the slave pipeline as a bin drives its children.
    drive: Arc<Drive>,
    /// One ERROR per broken connection: the reader and the streaming thread may both notice.
    error_posted: AtomicBool,
    /// The slave process we start for `slave-pipeline`, and how.
    process: SlaveProcess,
    /// `on-slave-crash`, `max-restarts` and the recent restarts.
    crash: Crash,
    /// Held while a dead slave is replaced, so that one thread does it.
    restart_lock: Mutex<()>,
    /// Set by a restart: delta units are dropped until a keyframe.
    wait_keyframe: AtomicBool,
}

impl IpcPipelineSink {
    fn link(&self) -> Option<Arc<Link>> {
        self.link.get()
    }

    fn post_link_error(&self, err: &ChannelError) {
        // A slave of ours that will be restarted is not an error: whatever noticed it first
        // (a LATENCY event from our bin, a query, the reader), the next buffer or state
        // change replaces it.
        if self.will_restart() || self.error_posted.swap(true, Ordering::SeqCst) {
            return;
        }
        let note = self.crash.spent_note();
        self.post_error_message(drive::link_error(err, &self.process, &note));
    }

    /// The answer to a request, or false with the link's error posted.
    fn answered(&self, result: Result<bool, ChannelError>) -> bool {
        match result {
            Ok(b) => b,
            Err(ChannelError::Flushing | ChannelError::Disconnected) => false,
            Err(e) => {
                self.post_link_error(&e);
                false
            }
        }
    }

    fn chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        // Not working_link(): a broken link fails the send below, which restarts the slave,
        // so the per-buffer path takes no extra lock to ask.
        let Some(mut link) = self.link() else {
            return Err(gst::FlowError::Flushing);
        };
        if self.skip_until_keyframe(&buffer) {
            return Ok(gst::FlowSuccess::Ok);
        }
        self.drive
            .announce_clock(self.obj().upcast_ref(), &link, false);
        let mut sent = self.relay.send_buffer(&link, &buffer);
        if let Err(e) = &sent
            && let Some(new) = self.restart_slave(&link, e)
        {
            link = new;
            if self.skip_until_keyframe(&buffer) {
                return Ok(gst::FlowSuccess::Ok);
            }
            sent = self.relay.send_buffer(&link, &buffer);
        }
        match sent {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(ChannelError::Flow(f)) => {
                // The slave posted its error before it answered the buffer: post it here
                // before upstream reacts to the flow, as in one pipeline. Bounded, because
                // the lane may wait for the state lock that a state change holds.
                link.control.drain(MESSAGE_ORDER_WAIT);
                Err(f)
            }
            Err(ChannelError::Flushing) => Err(gst::FlowError::Flushing),
            Err(e) => {
                self.post_link_error(&e);
                Err(gst::FlowError::Error)
            }
        }
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        let Some(link) = self.working_link() else {
            return false;
        };
        let element = self.obj();
        let reply = self.relay.event(&link, event, &|| {
            self.drive.take_lost_state(element.upcast_ref())
        });
        self.answered(reply.map(|r| matches!(r, Reply::Bool(true))))
    }

    fn sink_query(&self, query: &mut gst::QueryRef) -> bool {
        // As in C: in NULL the slave is not driven yet; linking asks for caps, and a refusal
        // lets GStreamer assume ANY.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        let Some(link) = self.link() else {
            return false;
        };
        self.answered(self.relay.query(&link, query))
    }

    /// Whether a live source feeds us, as the LATENCY query tells. Sources that answer it
    /// only once negotiated are still in READY when our bin makes us PAUSED (sinks go
    /// first): then their `is-live` property tells.
    fn upstream_is_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        if self.sinkpad.peer_query(&mut q) {
            return q.result().0;
        }
        self.sinkpad.peer().is_some_and(|p| source_is_live(&p, 0))
    }

    /// Asks the slave to make `transition`, see [`Drive::peer_state_change`].
    fn peer_state_change(&self, transition: gst::StateChange) -> gst::StateChangeReturn {
        let live = transition.next() == gst::State::Paused && self.upstream_is_live();
        self.drive
            .peer_state_change(self.obj().upcast_ref(), transition, live, &|e| {
                self.post_link_error(e)
            })
    }

    /// Leaves the slave process we started to end on its own (it does once we are gone).
    fn reap_slave(&self) {
        self.process.release(&self.link, &self.settings);
    }

    fn connect(&self) -> Result<(), gst::ErrorMessage> {
        self.error_posted.store(false, Ordering::SeqCst);
        let handler = || -> Arc<dyn Handler> {
            Arc::new(SinkHandler {
                element: self.obj().downgrade(),
            })
        };
        let element = self.obj();
        self.drive.connect(
            element.upcast_ref(),
            &self.process,
            &self.settings,
            Role::Sender,
            handler,
        )
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }
}

struct SinkHandler {
    element: glib::WeakRef<super::IpcPipelineSink>,
}

impl Handler for SinkHandler {
    fn frame(&self, id: u32, frame: Frame) -> Result<(), ChannelError> {
        let Some(element) = self.element.upgrade() else {
            return Ok(());
        };
        let imp = element.imp();
        let Some(link) = imp.link() else {
            return Ok(());
        };
        let frame = match imp.drive.frame(element.upcast_ref(), &link, frame)? {
            Some(frame) => imp.relay.frame(&link, id, frame)?,
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
        let Some(link) = element.imp().link().filter(|l| l.channel.greeted()) else {
            return;
        };
        let error = error.clone();
        link.control.push(move || {
            // Our parent passes up what we post without holding a reference of its own: hold
            // it while we post, or an application dropping the pipeline now would free it.
            let _parent = element.parent();
            let imp = element.imp();
            // A restart mends it, or has already: the streaming thread replaces the slave
            // when it next sends, and a link it replaced is not ours to report.
            if imp.link().is_some_and(|l| !l.channel.is_closed()) {
                gst::info!(CAT, obj = element, "slave gone ({error}): restarted");
                return;
            }
            imp.post_link_error(&error)
        });
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IpcPipelineSink {
    const NAME: &'static str = "GstRsIpcPipelineSink";
    type Type = super::IpcPipelineSink;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").unwrap();
        let sinkpad = gst::Pad::builder_from_template(&templ)
            .chain_function(|_pad, parent, buffer| {
                IpcPipelineSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.chain(buffer),
                )
            })
            .event_function(|_pad, parent, event| {
                IpcPipelineSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(event),
                )
            })
            .query_function(|_pad, parent, query| {
                IpcPipelineSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(query),
                )
            })
            .activatemode_function(|_pad, _parent, mode, _active| {
                // Push mode only, as the C element: there is nothing to pull from.
                if mode == gst::PadMode::Push {
                    Ok(())
                } else {
                    Err(gst::loggable_error!(CAT, "pull mode is not supported"))
                }
            })
            .build();
        let link = Arc::new(LinkSlot::default());
        Self {
            relay: Relay::new(*CAT, &sinkpad, link.clone()),
            drive: Drive::new(*CAT, Part::Downstream, link.clone()),
            link,
            sinkpad,
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            error_posted: AtomicBool::new(false),
            process: Default::default(),
            crash: Default::default(),
            restart_lock: Default::default(),
            wait_keyframe: AtomicBool::new(false),
        }
    }
}

impl ObjectImpl for IpcPipelineSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut p = settings::properties(DEFAULT_READ_CHUNK_SIZE);
            p.push(
                glib::ParamSpecUInt::builder("window")
                    .nick("Window")
                    .blurb(
                        "Buffers sent before the slave answers the first of them; a flow error \
                         from the slave reaches upstream at most this many buffers late",
                    )
                    .minimum(1)
                    .maximum(1024)
                    .default_value(DEFAULT_WINDOW)
                    .mutable_playing()
                    .build(),
            );
            p.extend(SlaveProcess::properties(
                "the part downstream of this sink, from its first element",
            ));
            p.extend(Crash::properties(
                "from the next buffer (the next keyframe)",
            ));
            p
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![settings::disconnect_signal::<IpcPipelineSink>(
                IpcPipelineSink::disconnect,
            )]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "window" => self.relay.set_window(value.get().unwrap()),
            name if self.crash.set_property(name, value) => {}
            name if self.process.set_property(name, value) => {}
            name => {
                self.settings.lock().unwrap().set(name, value);
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "window" => self.relay.window().to_value(),
            name => self
                .crash
                .property(name)
                .or_else(|| self.process.property(name))
                .or_else(|| self.settings.lock().unwrap().get(name))
                .unwrap(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        // As a bin holding the slave pipeline, we provide the clock its elements provide.
        obj.set_element_flags(gst::ElementFlags::SINK | gst::ElementFlags::PROVIDE_CLOCK);
    }

    fn dispose(&self) {
        self.link.disconnect();
    }
}

impl GstObjectImpl for IpcPipelineSink {}

impl ElementImpl for IpcPipelineSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Inter-process pipeline sink",
                "Sink",
                "Sends everything it receives to a slave pipeline in another process, \
                 which then behaves as a part of this pipeline",
                "gst-ipcpipeline-rs developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
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
        match transition {
            T::NullToReady => {
                if let Err(e) = self.connect() {
                    self.reap_slave();
                    // The reader may have reported the same failure already.
                    if !self.error_posted.swap(true, Ordering::SeqCst) {
                        self.post_error_message(e);
                    }
                    return Err(gst::StateChangeError);
                }
            }
            T::PausedToReady => self.relay.set_flushing(true),
            T::ReadyToPaused => self.relay.set_flushing(false),
            _ => {}
        }
        if transition.next() > transition.current() && transition != T::NullToReady {
            // A slave of ours that died meanwhile is started again first.
            let _ = self.working_link();
        }
        let element = self.obj();
        let ret = self.drive.change_state(
            element.upcast_ref(),
            transition,
            &|| self.upstream_is_live(),
            &|e| self.post_link_error(e),
            || self.parent_change_state(transition),
        );
        if transition == T::ReadyToNull {
            if self.link().is_some_and(|l| l.channel.is_closed()) {
                self.link.disconnect();
            }
            self.reap_slave();
        }
        ret
    }

    fn send_event(&self, event: gst::Event) -> bool {
        self.answered(self.drive.element_event(event))
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        self.answered(self.drive.element_query(query))
    }

    /// The clock of the slave pipeline's own provider, as a bin holding it would provide.
    fn provide_clock(&self) -> Option<gst::Clock> {
        self.drive.provide_clock(self.obj().upcast_ref())
    }

    fn set_context(&self, context: &gst::Context) {
        self.drive.set_context(context);
        self.parent_set_context(context)
    }
}

/// Whether a source upstream of `pad` (a src pad) has `is-live` set, following links through
/// elements and into bins by their ghost pads.
fn source_is_live(pad: &gst::Pad, depth: usize) -> bool {
    // Pipelines are short; a loop in a broken graph must not recurse for ever.
    if depth > 64 {
        return false;
    }
    if let Some(ghost) = pad.downcast_ref::<gst::GhostPad>() {
        return ghost
            .target()
            .is_some_and(|inner| source_is_live(&inner, depth + 1));
    }
    let Some(element) = pad.parent_element() else {
        return false;
    };
    if element
        .find_property("is-live")
        .is_some_and(|p| p.value_type() == bool::static_type())
    {
        return element.property::<bool>("is-live");
    }
    element
        .sink_pads()
        .iter()
        .filter_map(|p| p.peer())
        .any(|p| source_is_live(&p, depth + 1))
}
