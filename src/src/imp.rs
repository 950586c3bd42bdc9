// SPDX-License-Identifier: MPL-2.0
//! rsipcpipelinesrc: the slave end of a split pipeline.

use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::ChannelError;
use crate::follow::{self, Follow, Follower};
use crate::link::{Link, LinkSlot};
use crate::replay::Replay;
use crate::settings::{self, Settings};
use crate::wire::{Frame, Role};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcpipelinesrc",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC pipeline src"),
    )
});

const DEFAULT_READ_CHUNK_SIZE: u32 = 65536;

pub struct IpcPipelineSrc {
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    link: Arc<LinkSlot>,
    /// Pushes the master's stream.
    replay: Arc<Replay>,
    /// The slave pipeline's side of control.
    pub(super) follow: Arc<Follow>,
}

impl IpcPipelineSrc {
    pub(super) fn link(&self) -> Option<Arc<Link>> {
        self.link.get()
    }

    fn src_event(&self, event: gst::Event) -> bool {
        self.replay
            .upstream_event(event)
            .unwrap_or_else(|e| self.link_failed(&e))
    }

    fn src_query(&self, query: &mut gst::QueryRef) -> bool {
        // As in C: in NULL the master is not there to answer. Linking the pad during
        // gst_parse_launch asks for caps, and a refusal lets GStreamer assume ANY.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        self.replay
            .upstream_query(query)
            .unwrap_or_else(|e| self.link_failed(&e))
    }

    /// Posts the ERROR for a broken link; false, for the request that found it.
    fn link_failed(&self, err: &ChannelError) -> bool {
        if matches!(err, ChannelError::Disconnected | ChannelError::Flushing) {
            return false;
        }
        gst::element_imp_error!(
            self,
            gst::ResourceError::Read,
            ("Lost the connection to the master pipeline: {err}"),
            ["{err}"]
        );
        false
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        self.replay.flush_queue();
        self.follow.forget();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }

    pub(super) fn forward_message(&self, msg: &gst::Message) -> bool {
        self.link().is_some_and(|link| {
            self.follow
                .forward_message(self.obj().upcast_ref(), &link, msg)
        })
    }
}

impl Follower for IpcPipelineSrc {
    const ROLE: Role = Role::Receiver;

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
        self.replay.frame(link, id, frame)
    }

    fn link_lost(&self, error: &ChannelError) {
        self.replay.flush_queue();
        self.link_failed(error);
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IpcPipelineSrc {
    const NAME: &'static str = "GstRsIpcPipelineSrc";
    type Type = super::IpcPipelineSrc;
    type ParentType = gst::Element;

    fn class_init(klass: &mut Self::Class) {
        follow::hook_set_bus::<Self>(klass);
    }

    fn with_class(klass: &Self::Class) -> Self {
        let templ = klass.pad_template("src").unwrap();
        let srcpad = gst::Pad::builder_from_template(&templ)
            .event_function(|_pad, parent, event| {
                IpcPipelineSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_event(event),
                )
            })
            .query_function(|_pad, parent, query| {
                IpcPipelineSrc::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.src_query(query),
                )
            })
            .build();
        let link = Arc::new(LinkSlot::default());
        let follow = Follow::new(*CAT, &srcpad);
        let sampler = follow.clone();
        let before_buffer = Box::new(move |link: &Link| sampler.sample_clock(link));
        Self {
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            replay: Replay::new(*CAT, &srcpad, link.clone(), "master", Some(before_buffer)),
            link,
            follow,
            srcpad,
        }
    }
}

impl ObjectImpl for IpcPipelineSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> =
            LazyLock::new(|| settings::properties(DEFAULT_READ_CHUNK_SIZE));
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                settings::disconnect_signal::<IpcPipelineSrc>(IpcPipelineSrc::disconnect),
                glib::subclass::Signal::builder("forward-message")
                    .param_types([gst::Message::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let obj = args[0].get::<super::IpcPipelineSrc>().unwrap();
                        let msg = args[1].get::<gst::Message>().unwrap();
                        Some(obj.imp().forward_message(&msg).to_value())
                    })
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        self.settings.lock().unwrap().set(pspec.name(), value);
        if matches!(pspec.name(), "fdin" | "fdout") {
            self.maybe_connect();
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.settings.lock().unwrap().get(pspec.name()).unwrap()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.srcpad).unwrap();
        obj.set_element_flags(gst::ElementFlags::SOURCE);
    }

    fn dispose(&self) {
        self.link.disconnect();
    }
}

impl GstObjectImpl for IpcPipelineSrc {}

impl ElementImpl for IpcPipelineSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Inter-process pipeline source",
                "Source",
                "Replays what an rsipcpipelinesink in another process receives, and drives \
                 the slave pipeline it lives in as the master pipeline's state changes",
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
        if transition == gst::StateChange::PausedToReady {
            self.replay.stop();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToPaused && self.replay.start().is_err() {
            return Err(gst::StateChangeError);
        }
        // We stand for the master's upstream: live there, a live source here, so that the
        // slave pipeline does not wait in PAUSED for data that comes only in PLAYING.
        let to_paused = matches!(
            transition,
            gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused
        );
        if to_paused && self.follow.master_live() {
            return Ok(gst::StateChangeSuccess::NoPreroll);
        }
        Ok(ret)
    }

    fn send_event(&self, event: gst::Event) -> bool {
        // As in C: an event given to the element travels downstream from its pad (a master
        // can send one to the slave pipeline, which gives it to its sources); the stream's
        // own sticky events come only with the stream.
        self.replay.push_event(event)
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        self.srcpad.query(query)
    }
}
