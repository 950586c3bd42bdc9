// SPDX-License-Identifier: MPL-2.0
//! rsipcupstreamsink: the slave end of a split pipeline whose slave is the upstream part.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::ChannelError;
use crate::follow::{self, Follow, Follower};
use crate::link::{Link, LinkSlot, StreamLink};
use crate::relay::Relay;
use crate::settings::{self, Settings};
use crate::wire::{Frame, Reply, Role};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcupstreamsink",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC upstream sink"),
    )
});

const DEFAULT_READ_CHUNK_SIZE: u32 = 65536;

pub struct IpcUpstreamSink {
    sinkpad: gst::Pad,
    settings: Mutex<Settings>,
    pub(super) link: Arc<LinkSlot>,
    /// Sends the stream to the master.
    relay: Arc<Relay>,
    /// The slave pipeline's side of control.
    pub(super) follow: Arc<Follow>,
    /// The further streams, one per request pad.
    extras: Mutex<Vec<Extra>>,
    /// Request pads made so far: names stay unique when some are released.
    requested: std::sync::atomic::AtomicU32,
}

/// A further stream: a request pad with a connection of its own, whose other end goes to the
/// master over the main connection (a STREAM frame), where it becomes a src pad.
struct Extra {
    pad: gst::Pad,
    relay: Arc<Relay>,
    link: StreamLink,
    /// The master's end, until the main connection can take it.
    theirs: Option<OwnedFd>,
}

impl IpcUpstreamSink {
    /// The answer to a request, or false with the link's error posted.
    fn answered(&self, result: Result<bool, ChannelError>) -> bool {
        result.unwrap_or_else(|e| {
            self.link_lost(&e);
            false
        })
    }

    /// The relay of the stream that `pad` takes, and its link.
    fn stream_of(&self, pad: &gst::Pad) -> Option<(Arc<Relay>, Arc<Link>)> {
        if pad == &self.sinkpad {
            return Some((self.relay.clone(), self.link.get()?));
        }
        let extras = self.extras.lock().unwrap();
        let e = extras.iter().find(|e| &e.pad == pad)?;
        Some((e.relay.clone(), e.link.slot.get()?))
    }

    /// The stream of `pad`, once the master has greeted us on its connection (a further
    /// stream's first event may come before the master has taken its connection).
    fn greeted_stream_of(&self, pad: &gst::Pad) -> Option<(Arc<Relay>, Arc<Link>)> {
        let (relay, link) = self.stream_of(pad)?;
        link.channel.wait_hello().ok()?;
        Some((relay, link))
    }

    fn chain(
        &self,
        pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some((relay, link)) = self.stream_of(pad) else {
            return Err(gst::FlowError::Flushing);
        };
        if pad == &self.sinkpad {
            // The master follows the clock our pipeline provides (a capture device), if it
            // does: samples go with the first stream, on the main connection.
            self.follow.sample_clock(&link);
        }
        match relay.send_buffer(&link, &buffer) {
            Ok(()) => Ok(gst::FlowSuccess::Ok),
            Err(ChannelError::Flow(f)) => Err(f),
            Err(ChannelError::Flushing) => Err(gst::FlowError::Flushing),
            Err(e) => {
                self.link_lost(&e);
                Err(gst::FlowError::Error)
            }
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        let Some((relay, link)) = self.greeted_stream_of(pad) else {
            return false;
        };
        // Our pipeline's sinks are in the master: the master loses its state by itself.
        let reply = relay.event(&link, event, &|| {});
        self.answered(reply.map(|r| matches!(r, Reply::Bool(true))))
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        // As in C: in NULL the master is not there to answer.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        let Some((relay, link)) = self.greeted_stream_of(pad) else {
            return false;
        };
        self.answered(relay.query(&link, query))
    }

    /// Gives the master the connections of the further streams it has not been given yet.
    fn announce_streams(&self) {
        let Some(link) = self.link.get() else {
            return;
        };
        for e in self.extras.lock().unwrap().iter_mut() {
            if let Some(theirs) = e.theirs.take()
                && let Err(err) = link.channel.send_stream(theirs.as_fd())
            {
                gst::warning!(
                    CAT,
                    imp = self,
                    "could not give {} to the master: {err}",
                    e.pad.name()
                );
            }
        }
    }

    fn pad_builder(templ: &gst::PadTemplate, name: Option<&str>) -> gst::PadBuilder<gst::Pad> {
        let b = gst::Pad::builder_from_template(templ)
            .chain_function(|pad, parent, buffer| {
                IpcUpstreamSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                IpcUpstreamSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                IpcUpstreamSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            });
        match name {
            Some(n) => b.name(n),
            None => b,
        }
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        self.follow.forget();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }
}

impl Follower for IpcUpstreamSink {
    const ROLE: Role = Role::UpstreamSender;

    fn settings(&self) -> Settings {
        self.settings.lock().unwrap().clone()
    }

    fn link_slot(&self) -> &LinkSlot {
        &self.link
    }

    fn follow(&self) -> &Arc<Follow> {
        &self.follow
    }

    fn stream_frame(
        &self,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        self.relay.frame(link, id, frame)
    }

    fn connected(&self) {
        self.announce_streams();
    }

    fn link_lost(&self, err: &ChannelError) {
        if matches!(err, ChannelError::Disconnected | ChannelError::Flushing) {
            return;
        }
        gst::element_imp_error!(
            self,
            gst::ResourceError::Write,
            ("Lost the connection to the master pipeline: {err}"),
            ["{err}"]
        );
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IpcUpstreamSink {
    const NAME: &'static str = "GstRsIpcUpstreamSink";
    type Type = super::IpcUpstreamSink;
    type ParentType = gst::Element;

    fn class_init(klass: &mut Self::Class) {
        follow::hook_set_bus::<Self>(klass);
    }

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("sink").unwrap();
        let sinkpad = IpcUpstreamSink::pad_builder(&templ, None).build();
        let link = Arc::new(LinkSlot::default());
        Self {
            relay: Relay::new(*CAT, &sinkpad, link.clone()),
            follow: Follow::new(*CAT, &sinkpad),
            link,
            sinkpad,
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            extras: Mutex::new(Vec::new()),
            requested: Default::default(),
        }
    }
}

impl ObjectImpl for IpcUpstreamSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut p = settings::properties(DEFAULT_READ_CHUNK_SIZE);
            p.push(
                glib::ParamSpecUInt::builder("window")
                    .nick("Window")
                    .blurb(
                        "Buffers sent before the master answers the first of them; a flow \
                         error from the master reaches upstream at most this many buffers late",
                    )
                    .minimum(1)
                    .maximum(1024)
                    .default_value(crate::relay::DEFAULT_WINDOW)
                    .mutable_playing()
                    .build(),
            );
            p
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![settings::disconnect_signal::<IpcUpstreamSink>(
                IpcUpstreamSink::disconnect,
            )]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "window" {
            self.relay.set_window(value.get().unwrap());
            return;
        }
        self.settings.lock().unwrap().set(pspec.name(), value);
        if matches!(pspec.name(), "fdin" | "fdout") {
            self.maybe_connect();
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "window" {
            return self.relay.window().to_value();
        }
        self.settings.lock().unwrap().get(pspec.name()).unwrap()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.set_element_flags(gst::ElementFlags::SINK);
    }

    fn dispose(&self) {
        self.link.disconnect();
    }
}

impl GstObjectImpl for IpcUpstreamSink {}

impl ElementImpl for IpcUpstreamSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Inter-process upstream sink",
                "Sink",
                "Ends an upstream slave pipeline: sends what it receives to the \
                 rsipcupstreamsrc of a master pipeline in another process, and drives the \
                 slave pipeline it lives in as the master pipeline's state changes",
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
                // Further streams (a demuxer's other pads): each crosses on a connection of
                // its own and leaves the master's rsipcupstreamsrc by a src pad of its own.
                gst::PadTemplate::new(
                    "sink_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
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
        let flushing = match transition {
            gst::StateChange::PausedToReady => Some(true),
            gst::StateChange::ReadyToPaused => Some(false),
            _ => None,
        };
        if let Some(f) = flushing {
            self.relay.set_flushing(f);
            for e in self.extras.lock().unwrap().iter() {
                e.relay.set_flushing(f);
            }
        }
        // A sink in our pipeline, but it waits for nothing in PAUSED: the stream must reach
        // the master's sinks for them to preroll.
        self.parent_change_state(transition)
    }

    fn send_event(&self, event: gst::Event) -> bool {
        // Our pipeline sends seeks and other upstream events to its sinks: on upstream.
        event.is_upstream() && self.sinkpad.push_event(event)
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let name = name.map(str::to_owned).unwrap_or_else(|| {
            let n = self
                .requested
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            format!("sink_{n}")
        });
        let pad = IpcUpstreamSink::pad_builder(templ, Some(&name)).build();
        let (ours, theirs) = crate::launcher::socketpair()
            .map_err(|e| gst::warning!(CAT, imp = self, "no socketpair for {name}: {e}"))
            .ok()?;
        let slot = Arc::new(LinkSlot::default());
        let relay = Relay::new(*CAT, &pad, slot.clone());
        let link = StreamLink::connect(
            ours,
            slot,
            &relay,
            &self.settings(),
            Role::UpstreamSender,
            &format!("{}-{name}", self.obj().name()),
        )
        .map_err(|e| gst::warning!(CAT, imp = self, "no connection for {name}: {e}"))
        .ok()?;
        relay.set_window(self.relay.window());
        self.extras.lock().unwrap().push(Extra {
            pad: pad.clone(),
            relay,
            link,
            theirs: Some(theirs),
        });
        self.announce_streams();
        self.obj().add_pad(&pad).ok()?;
        Some(pad)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let extra = {
            let mut extras = self.extras.lock().unwrap();
            let i = extras.iter().position(|e| &e.pad == pad);
            i.map(|i| extras.remove(i))
        };
        drop(extra);
        let _ = pad.set_active(false);
        let _ = self.obj().remove_pad(pad);
    }
}
