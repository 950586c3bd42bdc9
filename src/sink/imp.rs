// SPDX-License-Identifier: MPL-2.0
//! rsipcpipelinesink: the master end of a split pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::clock;
use crate::link::{Link, LinkSlot, apply_allocation_answer, apply_query_reply, query_reply};
use crate::sandbox::{self, Policy};
use crate::settings::{self, Settings};
use crate::spawned::{self, SpawnedSlave};

#[path = "restart.rs"]
mod restart;
use crate::state_lock::StateLock;
use crate::wire::{Frame, RemoteMessage, Reply, Role, Target, stays_local};
use restart::CrashPolicy;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcpipelinesink",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC pipeline sink"),
    )
});

/// Buffers sent ahead of the slave's answers by default (the slave answers them in batches);
/// flow errors reach upstream at most this late. Copies in flight are also bounded in bytes.
const DEFAULT_WINDOW: u32 = 32;
const DEFAULT_READ_CHUNK_SIZE: u32 = 4096;
/// Where a message from the slave says which slave element posted it.
const ORIGIN_FIELD: &str = "ipc-origin";
const MESSAGE_ORDER_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub struct IpcPipelineSink {
    sinkpad: gst::Pad,
    settings: Mutex<Settings>,
    link: LinkSlot,
    /// Set when we told our parent that a state change is in progress (ASYNC_START, or lost
    /// state) and the slave's ASYNC_DONE must complete it.
    pending_async: AtomicBool,
    /// One ERROR per broken connection: the reader and the streaming thread may both notice.
    error_posted: AtomicBool,
    /// The `window` property: buffers in flight before the chain function waits.
    window: std::sync::atomic::AtomicU32,
    /// The slave lost its state and we have not yet: see [`Self::take_lost_state`].
    lost_state: Mutex<bool>,
    /// What the slave knows of our clock and base time.
    clock: clock::Announced,
    /// The clock the slave pipeline provides, as we provide it to our bin.
    slave_clock: clock::ClockCopy,
    /// The `slave-pipeline` and `slave-helper` properties.
    spawn: Mutex<SpawnSettings>,
    /// The slave process we started, while connected to it.
    spawned: Mutex<Option<Arc<SpawnedSlave>>>,
    /// Recent restarts of that process, for `max-restarts`.
    restarts: Mutex<restart::Restarts>,
    /// Held while a dead slave is replaced, so that one thread does it.
    restart_lock: Mutex<()>,
    /// Set by a restart: delta units are dropped until a keyframe.
    wait_keyframe: AtomicBool,
    /// A restart is under way: the failures of the new slave are its business.
    restarting: AtomicBool,
}

struct SpawnSettings {
    description: Option<String>,
    helper: Option<String>,
    on_crash: CrashPolicy,
    max_restarts: u32,
    sandbox: Policy,
}

impl Default for SpawnSettings {
    fn default() -> Self {
        SpawnSettings {
            description: None,
            helper: None,
            on_crash: CrashPolicy::default(),
            max_restarts: restart::DEFAULT_MAX_RESTARTS,
            sandbox: Policy::default(),
        }
    }
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
        match err {
            ChannelError::Timeout(_) => gst::element_imp_error!(
                self,
                gst::ResourceError::Write,
                ("No answer from the slave pipeline"),
                ["{err}"]
            ),
            _ => {
                // A process of ours says how it ended; it does at once after its socket closed.
                let spawned = self.spawned.lock().unwrap().clone();
                let ended = spawned.and_then(|s| {
                    let status = s.exit_status(Duration::from_millis(500))?;
                    Some(format!(
                        "the slave process {} {}{}",
                        s.pid,
                        spawned::describe_exit(status),
                        self.restarts_spent_note()
                    ))
                });
                match ended {
                    Some(ended) => gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("Lost the slave pipeline: {ended}"),
                        ["{err}"]
                    ),
                    None => gst::element_imp_error!(
                        self,
                        gst::ResourceError::Read,
                        ("Lost the connection to the slave pipeline: {err}"),
                        ["{err}"]
                    ),
                }
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
        self.announce_clock(&link, false);
        let window = self.window.load(Ordering::Relaxed) as usize;
        let mut sent = link.channel.send_buffer(&buffer, window);
        if let Err(e) = &sent
            && let Some(new) = self.restart_slave(&link, e)
        {
            link = new;
            if self.skip_until_keyframe(&buffer) {
                return Ok(gst::FlowSuccess::Ok);
            }
            sent = link.channel.send_buffer(&buffer, window);
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
        gst::log!(CAT, imp = self, "forwarding {event:?}");
        let Some(link) = self.working_link() else {
            return false;
        };
        let ch = &link.channel;
        let ack = Some(ch.ack_time());
        let frame = Frame::Event {
            target: Target::Pad,
            event: event.clone(),
        };
        let reply = match event.type_() {
            gst::EventType::FlushStart => {
                ch.set_flushing(true);
                let r = ch.request(&frame, ack, false);
                self.take_lost_state();
                r
            }
            gst::EventType::FlushStop => {
                let r = ch.request(&frame, ack, false);
                // The reply comes after the slave answered every buffer sent before the flush,
                // so their FLUSHING answers are behind us now.
                ch.set_flushing(false);
                ch.reset_flow();
                self.take_lost_state();
                r
            }
            // Serialized events wait behind the buffers, as long as the slave holds them back
            // (a prerolled sink in PAUSED); a flush or a broken link ends the wait.
            _ if event.is_serialized() => ch.request(&frame, None, true),
            _ => ch.request(&frame, ack, false),
        };
        self.bool_reply(reply)
    }

    fn bool_reply(&self, reply: Result<Reply, ChannelError>) -> bool {
        match reply {
            Ok(Reply::Bool(b)) => b,
            Ok(other) => {
                gst::warning!(CAT, imp = self, "unexpected reply {other:?}");
                false
            }
            Err(ChannelError::Flushing | ChannelError::Disconnected) => false,
            Err(e) => {
                self.post_link_error(&e);
                false
            }
        }
    }

    fn forward_query(&self, target: Target, query: &mut gst::QueryRef) -> bool {
        let Some(link) = self.link() else {
            return false;
        };
        let ch = &link.channel;
        let timeout = if query.is_serialized() {
            None
        } else {
            Some(ch.ack_time())
        };
        let frame = Frame::Query {
            target,
            query: query.to_owned(),
        };
        let allocation = query.type_() == gst::QueryType::Allocation;
        match ch.request(&frame, timeout, query.is_serialized()) {
            // The slave's answer tells which metas its pipeline takes; pools stay local
            // there, and we offer none: upstream allocates as it likes.
            Ok(Reply::Query { structure, .. }) if allocation => {
                apply_allocation_answer(query, structure.as_deref());
                if ch.fd_memory() {
                    self.offer_pool(query);
                }
                true
            }
            Ok(Reply::Query { result, structure }) => {
                apply_query_reply(query, structure.as_deref());
                result
            }
            Ok(other) => {
                gst::warning!(CAT, imp = self, "unexpected reply {other:?}");
                false
            }
            Err(ChannelError::Flushing | ChannelError::Disconnected) => false,
            Err(e) => {
                self.post_link_error(&e);
                false
            }
        }
    }

    /// Raw video gets a pool of memfd memory, whose buffers then cross as fds: upstream
    /// writes its frames straight into memory the slave maps. Strides and offsets travel in a
    /// video meta when the slave's pipeline takes one.
    fn offer_pool(&self, query: &mut gst::QueryRef) {
        let gst::QueryViewMut::Allocation(q) = query.view_mut() else {
            return;
        };
        let (Some(caps), need_pool) = q.get_owned() else {
            return;
        };
        let video_meta = q.find_allocation_meta::<gst_video::VideoMeta>().is_some();
        if let Some((pool, allocator, size)) = crate::memory::pool(&caps, video_meta) {
            gst::debug!(
                CAT,
                imp = self,
                "offering a memfd pool (upstream needs one: {need_pool})"
            );
            q.add_allocation_pool(Some(&pool), size, 2, 0);
            // Sources that configure the pool themselves take the allocator from here.
            q.add_allocation_param(Some(&allocator), gst::AllocationParams::default());
        }
    }

    fn sink_query(&self, query: &mut gst::QueryRef) -> bool {
        // As in C: in NULL the slave is not driven yet; linking asks for caps, and a refusal
        // lets GStreamer assume ANY.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        self.forward_query(Target::Pad, query)
    }

    /// Starts the slave process, when `slave-pipeline` is set, and connects our fds to it.
    fn spawn_slave(&self) -> Result<(), gst::ErrorMessage> {
        let (description, helper, sandbox) = {
            let s = self.spawn.lock().unwrap();
            let Some(d) = s.description.clone().filter(|d| !d.trim().is_empty()) else {
                return Ok(());
            };
            (d, s.helper.clone(), s.sandbox.clone())
        };
        let plugin_file = self
            .obj()
            .factory()
            .and_then(|f| f.plugin())
            .and_then(|p| p.filename());
        let helper = spawned::helper(helper.as_deref(), plugin_file);
        let slave = SpawnedSlave::spawn(&helper, &description, &sandbox, &self.obj().name())
            .map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenReadWrite,
                    (
                        "Could not start the slave process {}: {e}",
                        helper.display()
                    )
                )
            })?;
        gst::info!(
            CAT,
            imp = self,
            "slave process {} runs {description:?}",
            slave.pid
        );
        {
            let mut s = self.settings.lock().unwrap();
            s.fdin = slave.fd();
            s.fdout = slave.fd();
        }
        *self.spawned.lock().unwrap() = Some(Arc::new(slave));
        Ok(())
    }

    /// Leaves the slave process we started to end on its own (it does once we are gone).
    fn reap_slave(&self) {
        let Some(slave) = self.spawned.lock().unwrap().take() else {
            return;
        };
        self.link.disconnect();
        {
            let mut s = self.settings.lock().unwrap();
            s.fdin = -1;
            s.fdout = -1;
        }
        // Reaped by whoever lets go of it last: we, or a thread reading its exit status.
        drop(slave);
    }

    fn connect(&self) -> Result<(), gst::ErrorMessage> {
        self.spawn_slave()?;
        let settings = self.settings.lock().unwrap().clone();
        if settings.fdin < 0 || settings.fdout < 0 {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("fdin and fdout must be set before the element leaves the NULL state")
            ));
        }
        self.error_posted.store(false, Ordering::SeqCst);
        self.clock.forget();
        let handler = || -> Arc<dyn Handler> {
            Arc::new(SinkHandler {
                element: self.obj().downgrade(),
            })
        };
        self.link
            .connect(&settings, Role::Sender, &self.obj().name(), handler)
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

    /// Tells the slave our clock and base time when they changed (`force`: before it goes to
    /// PLAYING), and samples a clock it follows now and then.
    fn announce_clock(&self, link: &Link, force: bool) {
        if let Some(info) = self
            .clock
            .due(self.obj().upcast_ref(), &self.slave_clock, force)
        {
            gst::debug!(CAT, imp = self, "clock for the slave: {info:?}");
            let _ = link.channel.send(&Frame::Clock(info));
        }
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }

    /// Asks the slave to make `transition` and returns its answer; a broken link lets
    /// downward transitions succeed so that the master can always be shut down.
    fn peer_state_change(&self, transition: gst::StateChange) -> gst::StateChangeReturn {
        let (from, to) = (transition.current(), transition.next());
        let downward = to < from;
        let link = self.link();
        let broken = link.as_ref().and_then(|l| l.channel.closed_reason());
        let Some(link) = link.filter(|_| broken.is_none()) else {
            if downward || from == to {
                return gst::StateChangeReturn::Success;
            }
            if let Some(e) = broken {
                self.post_link_error(&e);
            }
            return gst::StateChangeReturn::Failure;
        };
        let ack = Some(link.channel.ack_time());
        // Only a transition to PAUSED can preroll.
        let live = to == gst::State::Paused && self.upstream_is_live();
        match link
            .channel
            .request(&Frame::StateChange { from, to, live }, ack, false)
        {
            Ok(Reply::State(r)) => r,
            Ok(other) => {
                gst::warning!(CAT, imp = self, "unexpected reply {other:?}");
                gst::StateChangeReturn::Failure
            }
            Err(_) if downward => gst::StateChangeReturn::Success,
            Err(e) => {
                self.post_link_error(&e);
                gst::StateChangeReturn::Failure
            }
        }
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

    fn post_async_done(&self) {
        let _ = self
            .obj()
            .post_message(gst::message::AsyncDone::builder().src(&*self.obj()).build());
    }

    // --- what the slave sends -----------------------------------------------------------

    fn handle_message(&self, m: RemoteMessage) {
        if m.type_ == gst::MessageType::AsyncDone {
            // The state change that holds the lock may be the one taking our link down, and
            // it waits for this lane to finish: then there is nothing left to complete.
            let _lock = loop {
                if let Some(lock) = StateLock::try_new(self.obj().upcast_ref()) {
                    break lock;
                }
                if self.link().is_none_or(|l| l.channel.is_closed()) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            if self.pending_async.swap(false, Ordering::SeqCst) {
                let _ = self.obj().continue_state(gst::StateChangeReturn::Success);
                self.post_async_done();
            }
            return;
        }
        // The message is ours for the bins above (they count EOS, stream-start and the like
        // per child), so its source is this sink; the slave element that posted it is named
        // in the structure, and for errors, warnings and infos in the details too, where
        // gst-launch and most applications look.
        let mut structure = m.structure;
        if let Some(s) = structure.as_mut() {
            s.set(ORIGIN_FIELD, m.origin.as_str());
            if matches!(
                m.type_,
                gst::MessageType::Error | gst::MessageType::Warning | gst::MessageType::Info
            ) {
                let mut details = s
                    .get::<gst::Structure>("details")
                    .unwrap_or_else(|_| gst::Structure::new_empty("details"));
                details.set(ORIGIN_FIELD, m.origin.as_str());
                s.set("details", details);
            }
        }
        let msg: gst::Message = unsafe {
            use gst::glib::translate::*;
            let msg: gst::Message = from_glib_full(gst::ffi::gst_message_new_custom(
                m.type_.into_glib(),
                self.obj().upcast_ref::<gst::Object>().to_glib_none().0,
                structure
                    .map(|s| s.into_glib_ptr())
                    .unwrap_or(std::ptr::null_mut()),
            ));
            if m.seqnum != 0 {
                gst::ffi::gst_message_set_seqnum(msg.as_mut_ptr(), m.seqnum);
            }
            msg
        };
        gst::debug!(CAT, imp = self, "posting {:?} from {}", m.type_, m.origin);
        let _ = self.obj().post_message(msg);
    }

    /// Loses our state if the slave lost its own. The slave reports it while it handles a
    /// flush (a flushing seek, a step), before it answers the flush event: whoever comes first,
    /// the thread that sent the flush or the control lane, does it, so that the master is in
    /// lost state when the seek returns, as a sink in one pipeline would be. Like a base sink,
    /// without the state lock: GStreamer ignores lost state during a state change.
    fn take_lost_state(&self) {
        let mut lost = self.lost_state.lock().unwrap();
        if std::mem::take(&mut *lost) {
            self.pending_async.store(true, Ordering::SeqCst);
            self.obj().lost_state();
        }
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
        match frame {
            Frame::Event {
                target: Target::Pad,
                event,
            } if event.is_upstream() => {
                let element = element.clone();
                let link2 = link.clone();
                link.events.push_for_peer(move || {
                    let ok = element.imp().sinkpad.push_event(event);
                    let _ = link2.channel.reply(id, Reply::Bool(ok));
                })?;
            }
            Frame::Query {
                target: Target::Pad,
                mut query,
            } if query.is_upstream() => {
                let link2 = link.clone();
                link.queries.spawn("rsipcsink-query", move || {
                    let ok = element.imp().sinkpad.peer_query(query.make_mut());
                    let _ = link2.channel.reply(id, query_reply(ok, &query));
                })?;
            }
            Frame::Message(m) if !stays_local(m.type_) => {
                link.count_message()?;
                link.control.push_for_peer(move || {
                    let _parent = element.parent();
                    element.imp().handle_message(m)
                })?;
            }
            Frame::Clock(info) => element.imp().slave_clock.observe(&info),
            // Rare in a real session (a flush, a step), so it counts as a message: a storm of
            // them is cut off like any other flood.
            Frame::StateLost => {
                link.count_message()?;
                *element.imp().lost_state.lock().unwrap() = true;
                link.control.push_for_peer(move || {
                    let _parent = element.parent();
                    element.imp().take_lost_state()
                })?;
            }
            Frame::Event { .. } => {
                gst::warning!(CAT, obj = element, "refusing an event from the slave");
                let _ = link.channel.reply(id, Reply::Bool(false));
            }
            Frame::Query { query, .. } => {
                gst::warning!(CAT, obj = element, "refusing a query from the slave");
                let _ = link.channel.reply(id, query_reply(false, &query));
            }
            Frame::Message(m) => {
                return Err(ChannelError::Unexpected(format!(
                    "a {:?} message, which stays in the slave",
                    m.type_
                )));
            }
            other => {
                return Err(ChannelError::Unexpected(format!(
                    "a {:?} frame from the slave",
                    other.frame_type()
                )));
            }
        }
        Ok(())
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
        Self {
            sinkpad,
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            link: LinkSlot::default(),
            pending_async: AtomicBool::new(false),
            error_posted: AtomicBool::new(false),
            window: std::sync::atomic::AtomicU32::new(DEFAULT_WINDOW),
            lost_state: Mutex::new(false),
            clock: Default::default(),
            slave_clock: Default::default(),
            spawn: Default::default(),
            spawned: Default::default(),
            restarts: Default::default(),
            restart_lock: Default::default(),
            wait_keyframe: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
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
            p.push(
                glib::ParamSpecString::builder("slave-pipeline")
                    .nick("Slave pipeline")
                    .blurb(
                        "Launch description of the slave pipeline, which the element then runs \
                         in a process of its own (the gst-ipc-slave helper), started when it \
                         leaves NULL and reaped when it returns there; fdin and fdout are then \
                         the element's own. Set in NULL",
                    )
                    .build(),
            );
            p.push(
                glib::ParamSpecString::builder("slave-helper")
                    .nick("Slave helper")
                    .blurb(
                        "Path of the helper that runs slave-pipeline; by default $GST_IPC_SLAVE, \
                         else gst-ipc-slave next to the plugin file, else on the PATH",
                    )
                    .build(),
            );
            p.push(
                glib::ParamSpecEnum::builder::<CrashPolicy>("on-slave-crash")
                    .nick("On slave crash")
                    .blurb(
                        "What to do when the slave process of slave-pipeline dies: post an \
                         error, or start it again and carry on from the next buffer (the next \
                         keyframe), with a warning",
                    )
                    .mutable_playing()
                    .build(),
            );
            p.push(
                glib::ParamSpecUInt::builder("max-restarts")
                    .nick("Max restarts")
                    .blurb(
                        "With on-slave-crash=restart, restarts allowed in any minute; one more \
                         crash is an error",
                    )
                    .default_value(restart::DEFAULT_MAX_RESTARTS)
                    .mutable_playing()
                    .build(),
            );
            p.push(
                glib::ParamSpecEnum::builder::<sandbox::Level>("sandbox")
                    .nick("Sandbox")
                    .blurb(
                        "How tightly the slave process of slave-pipeline is locked in \
                         (see the README for exactly what each level allows)",
                    )
                    .mutable_ready()
                    .build(),
            );
            p.push(
                glib::ParamSpecString::builder("sandbox-allow")
                    .nick("Sandbox allow-list")
                    .blurb(
                        "Comma-separated files, directories and device nodes the sandboxed \
                         slave may read and write; a * in the last part matches any run of \
                         characters (/dev/dri/renderD*)",
                    )
                    .mutable_ready()
                    .build(),
            );
            p.push(
                glib::ParamSpecUInt64::builder("sandbox-memory-limit")
                    .nick("Sandbox memory limit")
                    .blurb(
                        "Bytes of private memory the sandboxed slave may use (RLIMIT_DATA); \
                         0 for no limit",
                    )
                    .default_value(sandbox::DEFAULT_MEMORY_LIMIT)
                    .mutable_ready()
                    .build(),
            );
            p.push(
                glib::ParamSpecInt::builder("slave-pid")
                    .nick("Slave pid")
                    .blurb("Process id of the slave process started for slave-pipeline, or -1")
                    .minimum(-1)
                    .default_value(-1)
                    .read_only()
                    .build(),
            );
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
        if pspec.name() == "window" {
            self.window.store(value.get().unwrap(), Ordering::Relaxed);
        } else if pspec.name() == "slave-pipeline" {
            self.spawn.lock().unwrap().description = value.get().unwrap();
        } else if pspec.name() == "slave-helper" {
            self.spawn.lock().unwrap().helper = value.get().unwrap();
        } else if pspec.name() == "on-slave-crash" {
            self.spawn.lock().unwrap().on_crash = value.get().unwrap();
        } else if pspec.name() == "max-restarts" {
            self.spawn.lock().unwrap().max_restarts = value.get().unwrap();
        } else if pspec.name() == "sandbox" {
            self.spawn.lock().unwrap().sandbox.level = value.get().unwrap();
        } else if pspec.name() == "sandbox-allow" {
            let list: Option<String> = value.get().unwrap();
            self.spawn.lock().unwrap().sandbox.allow =
                Policy::parse_allow(list.as_deref().unwrap_or(""));
        } else if pspec.name() == "sandbox-memory-limit" {
            self.spawn.lock().unwrap().sandbox.memory_limit = value.get().unwrap();
        } else {
            self.settings.lock().unwrap().set(pspec.name(), value);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "window" => return self.window.load(Ordering::Relaxed).to_value(),
            "slave-pipeline" => return self.spawn.lock().unwrap().description.to_value(),
            "slave-helper" => return self.spawn.lock().unwrap().helper.to_value(),
            "on-slave-crash" => return self.spawn.lock().unwrap().on_crash.to_value(),
            "max-restarts" => return self.spawn.lock().unwrap().max_restarts.to_value(),
            "sandbox" => return self.spawn.lock().unwrap().sandbox.level.to_value(),
            "sandbox-allow" => {
                let allow = &self.spawn.lock().unwrap().sandbox.allow;
                let list: Vec<String> = allow.iter().map(|p| p.display().to_string()).collect();
                return (!list.is_empty()).then(|| list.join(",")).to_value();
            }
            "sandbox-memory-limit" => {
                return self.spawn.lock().unwrap().sandbox.memory_limit.to_value();
            }
            "slave-pid" => {
                let pid = self
                    .spawned
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map_or(-1, |s| s.pid as i32);
                return pid.to_value();
            }
            _ => {}
        }
        self.settings.lock().unwrap().get(pspec.name()).unwrap()
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
            // The chain function may wait for credit with the stream lock held: wake it before
            // the pad is deactivated.
            T::PausedToReady => {
                if let Some(l) = self.link() {
                    l.channel.set_flushing(true);
                }
            }
            T::ReadyToPaused => {
                if let Some(l) = self.link() {
                    l.channel.set_flushing(false);
                    l.channel.reset_flow();
                }
            }
            _ => {}
        }

        let may_async = matches!(
            transition,
            T::ReadyToPaused | T::PausedToPlaying | T::PlayingToPaused
        );
        if may_async {
            // The slave's ASYNC_DONE may arrive before its reply: be ready for it first.
            self.pending_async.store(true, Ordering::SeqCst);
            let _ = self.obj().post_message(
                gst::message::AsyncStart::builder()
                    .src(&*self.obj())
                    .build(),
            );
        }
        if transition == T::PausedToPlaying
            && let Some(link) = self.link()
        {
            // Our bin set our clock and base time just before: the slave pipeline takes them
            // before it goes to PLAYING.
            self.announce_clock(&link, true);
        }
        let upward = transition.next() > transition.current();
        if upward && transition != T::NullToReady {
            // A slave of ours that died meanwhile is started again first.
            let _ = self.working_link();
        }
        let peer = self.peer_state_change(transition);
        if peer == gst::StateChangeReturn::Failure && upward {
            if may_async && self.pending_async.swap(false, Ordering::SeqCst) {
                self.post_async_done();
            }
            return Err(gst::StateChangeError);
        }

        if let Err(e) = self.parent_change_state(transition)
            && upward
        {
            let undo = gst::StateChange::new(transition.next(), transition.current());
            let _ = self.peer_state_change(undo);
            return Err(e);
        }

        if transition == T::ReadyToNull && self.link().is_some_and(|l| l.channel.is_closed()) {
            self.link.disconnect();
        }
        if transition == T::ReadyToNull {
            self.reap_slave();
        }

        match peer {
            gst::StateChangeReturn::Async if may_async => Ok(gst::StateChangeSuccess::Async),
            gst::StateChangeReturn::NoPreroll => {
                if may_async && self.pending_async.swap(false, Ordering::SeqCst) {
                    self.post_async_done();
                }
                Ok(gst::StateChangeSuccess::NoPreroll)
            }
            _ => {
                if may_async && self.pending_async.swap(false, Ordering::SeqCst) {
                    self.post_async_done();
                }
                Ok(gst::StateChangeSuccess::Success)
            }
        }
    }

    fn send_event(&self, event: gst::Event) -> bool {
        let Some(link) = self.link() else {
            return false;
        };
        let reply = link.channel.request(
            &Frame::Event {
                target: Target::Element,
                event,
            },
            Some(link.channel.ack_time()),
            false,
        );
        self.bool_reply(reply)
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        self.forward_query(Target::Element, query)
    }

    /// The clock of the slave pipeline's own provider (an audio sink), which a bin holding
    /// that pipeline would pick; none when the slave has none, and the master picks another.
    fn provide_clock(&self) -> Option<gst::Clock> {
        let mut query = clock::ClockCopy::query();
        if !self.forward_query(Target::Element, query.get_mut().unwrap()) {
            return None;
        }
        let clock = self.slave_clock.follow_answer(&query);
        gst::debug!(CAT, imp = self, "the slave provides {clock:?}");
        clock
    }

    fn set_context(&self, context: &gst::Context) {
        // A bin hands its contexts to every child; the slave pipeline is our child here.
        if let Some(link) = self.link() {
            let _ = link.channel.send(&Frame::Context(context.clone()));
        }
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
