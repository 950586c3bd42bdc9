// SPDX-License-Identifier: MPL-2.0
//! rsipcpipelinesrc: the slave end of a split pipeline.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::clock;
use crate::link::{Link, LinkSlot, apply_query_reply, query_reply};
use crate::settings::{self, Settings};
use crate::state_lock::StateLock;
use crate::wire::{Frame, RemoteMessage, Reply, Role, Target, stays_local};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcpipelinesrc",
        gst::DebugColorFlags::empty(),
        Some("Rust IPC pipeline src"),
    )
});

const DEFAULT_READ_CHUNK_SIZE: u32 = 65536;
/// Flow returns gathered at most before they are sent.
const MAX_HELD_FLOWS: usize = 32;
/// What a master may have queued in a slave: its window (at most 1024 buffers) and the
/// serialized events and queries between them, and the copied bytes its sink lets be in
/// flight (8 MiB, or one larger frame). A master that sends more does not wait for its
/// window: it is cut off.
const MAX_QUEUED_ITEMS: usize = 2048;
const MAX_QUEUED_BYTES: usize = crate::wire::MAX_BODY_LEN + (16 << 20);
/// How long a state request waits for the slave pipeline to finish continuing to PLAYING.
const CONTINUE_WAIT: gst::ClockTime = gst::ClockTime::from_mseconds(500);

/// What the master sent that must be pushed in stream order by the streaming thread.
enum Item {
    Buffer(u32, gst::Buffer),
    Event(u32, gst::Event),
    Query(u32, gst::Query),
}

impl Item {
    /// Bytes the master sent inside the frame (memory of its own, lent as an fd, is not ours).
    fn inline_bytes(&self) -> usize {
        match self {
            Item::Buffer(_, b) => b
                .iter_memories()
                .filter(|m| {
                    m.downcast_memory_ref::<gst_allocators::FdMemory>()
                        .is_none()
                })
                .map(|m| m.size())
                .sum(),
            _ => 0,
        }
    }

    fn id(&self) -> u32 {
        match self {
            Item::Buffer(id, _) | Item::Event(id, _) | Item::Query(id, _) => *id,
        }
    }
}

struct Queue {
    items: VecDeque<Item>,
    /// The sum of the items' [`Item::inline_bytes`], kept as they come and go.
    bytes: usize,
    /// True while the pad is inactive or a flush is in progress: items are refused.
    flushing: bool,
    /// Sticky downstream flow error: buffers already sent by the master get it back at once.
    flow: Result<gst::FlowSuccess, gst::FlowError>,
    /// Counts flushes: a push that began before a flush must not make its FLUSHING result
    /// sticky for the stream that follows it.
    epoch: u64,
}

impl Queue {
    fn push(&mut self, item: Item, front: bool) {
        self.bytes += item.inline_bytes();
        if front {
            self.items.push_front(item);
        } else {
            self.items.push_back(item);
        }
    }

    fn pop(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        self.bytes -= item.inline_bytes();
        Some(item)
    }

    fn take_all(&mut self) -> Vec<Item> {
        self.bytes = 0;
        self.items.drain(..).collect()
    }
}

pub struct IpcPipelineSrc {
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    link: LinkSlot,
    queue: Mutex<Queue>,
    queue_cond: Condvar,
    /// Signalled when the src pad gets linked, see [`Self::wait_linked`].
    linked: (Mutex<()>, Condvar),
    /// The state the master last asked for, see [`Self::apply_state_change`].
    wanted: Mutex<Option<gst::State>>,
    /// Puts the slave pipeline on the master's clock and base time.
    clock: clock::Follower,
    /// The master's upstream is live: see [`Self::change_state`].
    master_live: std::sync::atomic::AtomicBool,
    /// Flow returns of pushed buffers not sent yet: see [`Self::answer_flows`].
    flows: Mutex<Vec<(u32, Reply)>>,
    /// The pad has had stream-start and segment since the last event: see
    /// [`Self::stream_ready`].
    stream_ready: std::sync::atomic::AtomicBool,
}

impl IpcPipelineSrc {
    fn link(&self) -> Option<Arc<Link>> {
        self.link.get()
    }

    fn reply(&self, id: u32, reply: Reply) {
        if let Some(link) = self.link() {
            let _ = link.channel.reply(id, reply);
        }
    }

    /// Answers an item that will not be pushed.
    fn refuse(&self, item: Item, flow: gst::FlowError) {
        match item {
            Item::Buffer(id, _) => self.reply(id, Reply::Flow(flow.into())),
            Item::Event(id, _) => self.reply(id, Reply::Bool(false)),
            Item::Query(id, q) => self.reply(id, query_reply(false, &q)),
        }
    }

    fn enqueue(&self, item: Item, front: bool) {
        let mut q = self.queue.lock().unwrap();
        let refusal = if q.flushing {
            Some(gst::FlowError::Flushing)
        } else if let (Err(e), Item::Buffer(..)) = (q.flow, &item) {
            // Buffers after a flow error get it back without being pushed; events still go,
            // as a pad would push them: after an EOS flow, upstream sends the EOS event.
            Some(e)
        } else {
            None
        };
        if let Some(flow) = refusal {
            drop(q);
            self.refuse(item, flow);
            return;
        }
        q.push(item, front);
        self.queue_cond.notify_one();
    }

    /// [`Self::enqueue`] for what the master sent: a master that sends more than it may have
    /// in flight (it waits for its window) is cut off instead of growing the queue.
    fn enqueue_for_peer(&self, item: Item) -> Result<(), ChannelError> {
        {
            let q = self.queue.lock().unwrap();
            if q.items.len() >= MAX_QUEUED_ITEMS || q.bytes > MAX_QUEUED_BYTES {
                return Err(ChannelError::Limit(format!(
                    "{} buffers, events and queries ({} bytes of copied data) queued \
                     without waiting for them; the limits are {MAX_QUEUED_ITEMS} and \
                     {MAX_QUEUED_BYTES} bytes",
                    q.items.len(),
                    q.bytes
                )));
            }
        }
        self.enqueue(item, false);
        Ok(())
    }

    /// Refuses everything queued and every later item until [`Self::unflush`].
    fn flush_queue(&self) {
        let items: Vec<Item> = {
            let mut q = self.queue.lock().unwrap();
            q.flushing = true;
            q.epoch += 1;
            self.queue_cond.notify_all();
            q.take_all()
        };
        for item in items {
            self.refuse(item, gst::FlowError::Flushing);
        }
        // Every buffer sent gets its answer, held back or not.
        self.answer_flows();
    }

    /// Whether a buffer may be pushed now: GStreamer wants stream-start and segment first
    /// (and only warns), a master that sends a buffer before them is broken. Looked up once
    /// after each event, not for every buffer.
    fn stream_ready(&self) -> bool {
        if self.stream_ready.load(Ordering::Relaxed) {
            return true;
        }
        let ready = self
            .srcpad
            .sticky_event::<gst::event::StreamStart>(0)
            .is_some()
            && self.srcpad.sticky_event::<gst::event::Segment>(0).is_some();
        self.stream_ready.store(ready, Ordering::Relaxed);
        ready
    }

    fn unflush(&self) {
        let mut q = self.queue.lock().unwrap();
        q.flushing = false;
        q.flow = Ok(gst::FlowSuccess::Ok);
    }

    fn start_task(&self) -> Result<(), glib::BoolError> {
        gst::log!(CAT, imp = self, "starting the task");
        // A pad that was deactivated lost its sticky events.
        self.stream_ready.store(false, Ordering::Relaxed);
        let weak = self.obj().downgrade();
        self.srcpad.start_task(move || {
            if let Some(obj) = weak.upgrade() {
                obj.imp().task_iteration();
            }
        })
    }

    /// One iteration of the streaming thread: push the next item and answer it.
    fn task_iteration(&self) {
        let (item, epoch) = {
            let mut q = self.queue.lock().unwrap();
            loop {
                // Held answers go out before the task waits or pauses; not under the queue
                // lock, which the reader needs to queue what arrives meanwhile.
                if (q.flushing || q.items.is_empty()) && !self.flows.lock().unwrap().is_empty() {
                    drop(q);
                    self.answer_flows();
                    q = self.queue.lock().unwrap();
                    continue;
                }
                if q.flushing {
                    // Paused with the queue locked: a flush-stop that unflushes, queues and
                    // restarts the task takes this lock first, so its restart always comes
                    // after this pause instead of being undone by it.
                    let _ = self.srcpad.pause_task();
                    return;
                }
                if let Some(item) = q.pop() {
                    break (item, q.epoch);
                }
                q = self.queue_cond.wait(q).unwrap();
            }
        };
        gst::log!(CAT, imp = self, "pushing item {}", item.id());
        match item {
            Item::Buffer(id, buffer) => {
                if !self.stream_ready() {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("The master sent a buffer before stream-start and segment")
                    );
                    self.reply(id, Reply::Flow(gst::FlowReturn::Error));
                    return;
                }
                if let Some(info) = self.clock.sample_due()
                    && let Some(link) = self.link()
                {
                    // The master follows the clock our pipeline provides.
                    let _ = link.channel.send(&Frame::Clock(info));
                }
                let flow = self.srcpad.push(buffer);
                if let Err(e) = flow {
                    gst::debug!(CAT, imp = self, "downstream returned {e:?}");
                    let mut q = self.queue.lock().unwrap();
                    if q.flow.is_ok() && q.epoch == epoch {
                        q.flow = Err(e);
                    }
                }
                let mut flows = self.flows.lock().unwrap();
                flows.push((id, Reply::Flow(flow.into())));
                if flows.len() >= MAX_HELD_FLOWS {
                    drop(flows);
                    self.answer_flows();
                }
            }
            Item::Event(id, event) => {
                // The answers for the buffers before it go first.
                self.answer_flows();
                self.stream_ready.store(false, Ordering::Relaxed);
                if let Some(why) = misordered(&self.srcpad, &event) {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("The master sent events out of order: {why}")
                    );
                    self.reply(id, Reply::Bool(false));
                    return;
                }
                let ok = self.srcpad.push_event(event);
                self.reply(id, Reply::Bool(ok));
            }
            Item::Query(id, mut query) => {
                self.answer_flows();
                let ok = self.srcpad.peer_query(query.make_mut());
                self.reply(id, query_reply(ok, &query));
            }
        }
    }

    /// Sends the flow returns held back. While more buffers wait in the queue, their answers
    /// are gathered and sent in one write (before the task waits, pauses or handles anything
    /// else): one syscall for a run of buffers instead of one each.
    fn answer_flows(&self) {
        let flows = std::mem::take(&mut *self.flows.lock().unwrap());
        if flows.is_empty() {
            return;
        }
        if let Some(link) = self.link() {
            let _ = link.channel.replies(flows);
        }
    }

    /// The link, once the master has greeted us: before that, its sink is still in NULL and
    /// would leave an upstream request unanswered until the ack-time runs out (a slave with
    /// several masters asks all of them as soon as one starts).
    fn greeted_link(&self) -> Option<Arc<Link>> {
        self.link().filter(|l| l.channel.greeted())
    }

    fn src_event(&self, event: gst::Event) -> bool {
        let Some(link) = self.greeted_link() else {
            return false;
        };
        let frame = Frame::Event {
            target: Target::Pad,
            event: event.clone(),
        };
        // QoS is advice sent for every buffer; waiting for its (meaningless) answer would
        // cost the streaming thread a round trip per buffer.
        if event.type_() == gst::EventType::Qos {
            return link.channel.send(&frame).is_ok();
        }
        match link
            .channel
            .request(&frame, Some(link.channel.ack_time()), false)
        {
            Ok(Reply::Bool(b)) => b,
            Ok(_) => false,
            Err(e) => {
                self.link_failed(&e);
                false
            }
        }
    }

    fn src_query(&self, query: &mut gst::QueryRef) -> bool {
        // As in C: in NULL the master is not there to answer. Linking the pad during
        // gst_parse_launch asks for caps, and a refusal lets GStreamer assume ANY.
        if self.obj().current_state() == gst::State::Null {
            return false;
        }
        let Some(link) = self.greeted_link() else {
            return false;
        };
        let frame = Frame::Query {
            target: Target::Pad,
            query: query.to_owned(),
        };
        match link
            .channel
            .request(&frame, Some(link.channel.ack_time()), false)
        {
            Ok(Reply::Query { result, structure }) => {
                apply_query_reply(query, structure.as_deref());
                result
            }
            Ok(_) => false,
            Err(e) => {
                self.link_failed(&e);
                false
            }
        }
    }

    fn link_failed(&self, err: &ChannelError) {
        if matches!(err, ChannelError::Disconnected | ChannelError::Flushing) {
            return;
        }
        gst::element_imp_error!(
            self,
            gst::ResourceError::Read,
            ("Lost the connection to the master pipeline: {err}"),
            ["{err}"]
        );
    }

    /// The slave pipeline this element drives: the nearest pipeline above it.
    fn pipeline(&self) -> Option<gst::Pipeline> {
        let mut parent = self.obj().parent();
        while let Some(p) = parent {
            if let Ok(pipeline) = p.clone().downcast::<gst::Pipeline>() {
                return Some(pipeline);
            }
            parent = p.parent();
        }
        None
    }

    /// Applies a state change requested by the master. With several masters (several srcs in
    /// one slave pipeline) the pipeline follows the master that wants the state closest to
    /// PLAYING, as the C documentation promises (and its code does not do): a master going down
    /// while another stays up gets SUCCESS and leaves the pipeline where it is. A request that
    /// would not move the pipeline is answered with where it stands.
    fn apply_state_change(
        &self,
        from: gst::State,
        to: gst::State,
        live: bool,
    ) -> gst::StateChangeReturn {
        self.master_live
            .store(live, std::sync::atomic::Ordering::SeqCst);
        let Some(pipeline) = self.pipeline() else {
            gst::warning!(
                CAT,
                imp = self,
                "not inside a pipeline: cannot change state"
            );
            return gst::StateChangeReturn::Failure;
        };
        // A pipeline that prerolled and is continuing to PLAYING on its own does so on a
        // thread of its bin that needs the state lock: let it get there first, or a request
        // made meanwhile is answered ASYNC with no ASYNC_DONE ever to follow. It needs no
        // data, so this is short.
        if where_it_stands(&pipeline).2 {
            let _ = pipeline.state(CONTINUE_WAIT);
        }
        // Requests from several masters come on their own threads: one at a time.
        let _lock = StateLock::new(pipeline.upcast_ref());
        *self.wanted.lock().unwrap() = Some(to);
        let target = masters_target(&pipeline).map_or(to, |t| t.max(to));
        let (ret, effective, continuing) = where_it_stands(&pipeline);
        let upward = to > from;
        let moves = if upward {
            target > effective
        } else {
            target < effective
        };
        gst::debug!(
            CAT,
            imp = self,
            "{from:?} -> {to:?} (live {live}), pipeline at {effective:?}, masters want {target:?}"
        );
        if !moves || from == to {
            // ASYNC only when a preroll is under way: its ASYNC_DONE completes this request too.
            // A pipeline that prerolled and is now continuing to PLAYING has sent its
            // ASYNC_DONE already; waiting for another would hang the master.
            use gst::StateChangeReturn as R;
            return match ret {
                R::Async | R::NoPreroll if upward && to > gst::State::Ready && !continuing => ret,
                _ => R::Success,
            };
        }
        if target >= gst::State::Paused {
            self.wait_linked();
        }
        pipeline.set_state(target).into()
    }

    /// When our master is gone and others remain, the pipeline follows them (down, if ours
    /// held it up). With no master left, the application decides, as with the C element.
    fn follow_other_masters(&self) {
        let Some(pipeline) = self.pipeline() else {
            return;
        };
        let _lock = StateLock::new(pipeline.upcast_ref());
        if let Some(target) = masters_target(&pipeline)
            && target < where_it_stands(&pipeline).1
        {
            gst::info!(
                CAT,
                imp = self,
                "master gone: following the others to {target:?}"
            );
            let _ = pipeline.set_state(target);
        }
    }

    /// The state our master wants, while it is connected.
    fn wanted(&self) -> Option<gst::State> {
        let connected = self.link().is_some_and(|l| !l.channel.is_closed());
        connected.then(|| *self.wanted.lock().unwrap()).flatten()
    }

    /// gst_parse_launch adds us to the slave pipeline (and so connects us) before it links
    /// our pad: a master that is quick to start streaming would meet NOT_LINKED. Give the
    /// application a bounded moment to finish building the slave pipeline.
    fn wait_linked(&self) {
        let ack_time = self.settings.lock().unwrap().ack_time();
        let deadline = std::time::Instant::now() + ack_time / 2;
        let (lock, cond) = &self.linked;
        let mut guard = lock.lock().unwrap();
        while !self.srcpad.is_linked() {
            let now = std::time::Instant::now();
            if now >= deadline {
                gst::warning!(CAT, imp = self, "src pad still not linked");
                return;
            }
            guard = cond.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Connects once both fds are known and the element is in a bin, as the C element does:
    /// a parent-less element has no pipeline to drive. gst_parse_launch sets the fds before it
    /// adds the element, so the bin's `set_bus` on the new child is what usually gets here.
    fn maybe_connect(&self) {
        let settings = self.settings.lock().unwrap().clone();
        if settings.fdin < 0 || settings.fdout < 0 || self.obj().parent().is_none() {
            return;
        }
        let handler = || -> Arc<dyn Handler> {
            Arc::new(SrcHandler {
                element: self.obj().downgrade(),
            })
        };
        if let Err(e) = self
            .link
            .connect(&settings, Role::Receiver, &self.obj().name(), handler)
        {
            gst::element_imp_error!(
                self,
                gst::ResourceError::OpenReadWrite,
                ("Could not connect to the master pipeline: {e}")
            );
        }
    }

    fn disconnect(&self) {
        gst::debug!(CAT, imp = self, "disconnecting");
        self.link.disconnect();
        self.flush_queue();
        *self.wanted.lock().unwrap() = None;
        let mut s = self.settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }

    pub(super) fn forward_message(&self, msg: &gst::Message) -> bool {
        use gst::MessageView as V;
        let Some(link) = self.link() else {
            return false;
        };
        let send = |frame: Frame| link.channel.send(&frame).is_ok();
        let from = |o: Option<&gst::Object>| msg.src().is_some_and(|src| Some(src) == o);
        match msg.view() {
            // The slave pipeline lost its state (flushing seek, step): so must the master sink.
            V::StateChanged(s)
                if s.old() == s.current()
                    && s.pending() == s.current()
                    && from(self.pipeline().as_ref().map(|p| p.upcast_ref())) =>
            {
                send(Frame::StateLost)
            }
            _ if stays_local(msg.type_()) => true,
            // Our own complaints about the link cannot travel over it.
            _ if from(Some(self.obj().upcast_ref())) => true,
            _ => send(Frame::Message(RemoteMessage {
                type_: msg.type_(),
                seqnum: unsafe { gst::ffi::gst_message_get_seqnum(msg.as_mut_ptr()) },
                origin: msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                structure: msg.structure().map(|s| s.to_owned()),
            })),
        }
    }

    // --- what the master sends ----------------------------------------------------------

    fn handle_frame(&self, link: &Arc<Link>, id: u32, frame: Frame) -> Result<(), ChannelError> {
        let obj = self.obj().clone();
        match frame {
            Frame::Buffer(buffer) => self.enqueue_for_peer(Item::Buffer(id, buffer))?,
            Frame::Event {
                target: Target::Pad,
                event,
            } if !event.is_downstream() => {
                return Err(ChannelError::Unexpected(format!(
                    "a {:?} event, which travels upstream, sent down to our pad",
                    event.type_()
                )));
            }
            Frame::Event {
                target: Target::Pad,
                event,
            } => match event.type_() {
                gst::EventType::FlushStart => link.events.push_for_peer(move || {
                    let imp = obj.imp();
                    imp.flush_queue();
                    let ok = imp.srcpad.push_event(event);
                    imp.reply(id, Reply::Bool(ok));
                })?,
                gst::EventType::FlushStop => link.events.push_for_peer(move || {
                    let imp = obj.imp();
                    let active = imp.srcpad.is_active();
                    if active {
                        imp.unflush();
                        imp.enqueue(Item::Event(id, event), true);
                        let _ = imp.start_task();
                    } else {
                        imp.reply(id, Reply::Bool(false));
                    }
                })?,
                _ if event.is_serialized() => self.enqueue_for_peer(Item::Event(id, event))?,
                _ => link.events.push_for_peer(move || {
                    let imp = obj.imp();
                    let ok = imp.srcpad.push_event(event);
                    imp.reply(id, Reply::Bool(ok));
                })?,
            },
            Frame::Event {
                target: Target::Element,
                event,
            } => link.control.push_for_peer(move || {
                let imp = obj.imp();
                let ok = imp.pipeline().is_some_and(|p| p.send_event(event));
                imp.reply(id, Reply::Bool(ok));
            })?,
            Frame::Query {
                target: Target::Pad,
                query,
            } if query.is_serialized() => self.enqueue_for_peer(Item::Query(id, query))?,
            Frame::Query { target, mut query } => {
                link.queries.spawn("rsipcsrc-query", move || {
                    let imp = obj.imp();
                    let q = query.make_mut();
                    let ok = match target {
                        Target::Pad => imp.srcpad.peer_query(q),
                        Target::Element => imp
                            .pipeline()
                            .is_some_and(|p| imp.clock.answer(&p, q) || p.query(q)),
                    };
                    imp.reply(id, query_reply(ok, &query));
                })?
            }
            Frame::Context(context) => link.control.push_for_peer(move || {
                if let Some(p) = obj.imp().pipeline() {
                    p.set_context(&context);
                }
            })?,
            // On the lane of state changes: taken before the change to PLAYING that follows.
            Frame::Clock(info) => link.control.push_for_peer(move || {
                let imp = obj.imp();
                if let Some(p) = imp.pipeline() {
                    gst::debug!(CAT, imp = imp, "master clock {info:?}");
                    imp.clock.apply(&p, &info);
                }
            })?,
            Frame::StateChange { from, to, live } => {
                let pending = link.state_change_request()?;
                link.control.push_for_peer(move || {
                    let _pending = pending;
                    let imp = obj.imp();
                    let ret = imp.apply_state_change(from, to, live);
                    imp.reply(id, Reply::State(ret));
                })?
            }
            other => {
                return Err(ChannelError::Unexpected(format!(
                    "a {:?} frame from the master",
                    other.frame_type()
                )));
            }
        }
        Ok(())
    }
}

/// Why `event` may not follow what `pad` has had: GStreamer takes stream-start, caps and
/// segment only in this order, and no sticky event after EOS (it warns, and goes on with a
/// stream that makes no sense), so a master that sends them otherwise is broken.
fn misordered(pad: &gst::Pad, event: &gst::Event) -> Option<String> {
    use gst::EventType as T;
    if !event.is_sticky() || event.type_() == T::Eos {
        return None;
    }
    if pad.sticky_event::<gst::event::Eos>(0).is_some() {
        return Some(format!("{:?} after EOS", event.type_()));
    }
    let order = [T::StreamStart, T::Caps, T::Segment];
    let rank = order.iter().position(|t| *t == event.type_())?;
    let has = |t: T| match t {
        T::StreamStart => pad.sticky_event::<gst::event::StreamStart>(0).is_some(),
        T::Caps => pad.sticky_event::<gst::event::Caps>(0).is_some(),
        _ => pad.sticky_event::<gst::event::Segment>(0).is_some(),
    };
    if has(event.type_()) {
        return None;
    }
    order[rank + 1..]
        .iter()
        .find(|later| has(**later))
        .map(|later| format!("{:?} after {later:?}", event.type_()))
}

/// The highest state the connected masters of `pipeline` want, if any has asked yet.
fn masters_target(pipeline: &gst::Pipeline) -> Option<gst::State> {
    pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(|e| e.ok()?.downcast::<super::IpcPipelineSrc>().ok())
        .filter_map(|src| src.imp().wanted())
        .max()
}

/// The last state change result, the state the pipeline is at or going to, and whether it is
/// prerolled and on its way from PAUSED to PLAYING.
fn where_it_stands(pipeline: &gst::Pipeline) -> (gst::StateChangeReturn, gst::State, bool) {
    let (ret, current, pending) = pipeline.state(gst::ClockTime::ZERO);
    let effective = if pending == gst::State::VoidPending {
        current
    } else {
        pending
    };
    let continuing = current == gst::State::Paused && pending == gst::State::Playing;
    (ret.into(), effective, continuing)
}

unsafe extern "C" fn set_bus_trampoline(
    element: *mut gst::ffi::GstElement,
    bus: *mut gst::ffi::GstBus,
) {
    use gst::glib::translate::*;
    unsafe {
        let parent_class =
            IpcPipelineSrc::type_data().as_ref().parent_class() as *const gst::ffi::GstElementClass;
        if let Some(f) = (*parent_class).set_bus {
            f(element, bus);
        }
        if !bus.is_null() {
            let obj: Borrowed<super::IpcPipelineSrc> = from_glib_borrow(element as *mut _);
            obj.imp().maybe_connect();
        }
    }
}

struct SrcHandler {
    element: glib::WeakRef<super::IpcPipelineSrc>,
}

impl Handler for SrcHandler {
    fn frame(&self, id: u32, frame: Frame) -> Result<(), ChannelError> {
        match self.element.upgrade() {
            Some(element) => match element.imp().link() {
                Some(link) => element.imp().handle_frame(&link, id, frame),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn closed(&self, error: &ChannelError) {
        let Some(element) = self.element.upgrade() else {
            return;
        };
        let Some(link) = element.imp().link() else {
            return;
        };
        let error = error.clone();
        link.control.push(move || {
            // A bin passes up what its children post without holding a reference of its own:
            // hold our parent while we post, or an application dropping the pipeline now
            // would free it under the message.
            let _parent = element.parent();
            let imp = element.imp();
            imp.flush_queue();
            *imp.wanted.lock().unwrap() = None;
            imp.link_failed(&error);
            imp.follow_other_masters();
        });
    }
}

#[glib::object_subclass]
impl ObjectSubclass for IpcPipelineSrc {
    const NAME: &'static str = "GstRsIpcPipelineSrc";
    type Type = super::IpcPipelineSrc;
    type ParentType = gst::Element;

    fn class_init(klass: &mut Self::Class) {
        // GstObject does not notify parent changes, but a bin hands its bus to every child it
        // adds: hook that to learn that we now have a pipeline to drive.
        unsafe {
            let k = &mut *(klass as *mut Self::Class as *mut gst::ffi::GstElementClass);
            k.set_bus = Some(set_bus_trampoline);
        }
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
        Self {
            srcpad,
            settings: Mutex::new(Settings::new(DEFAULT_READ_CHUNK_SIZE)),
            link: LinkSlot::default(),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                flushing: true,
                flow: Ok(gst::FlowSuccess::Ok),
                epoch: 0,
            }),
            queue_cond: Condvar::new(),
            linked: (Mutex::new(()), Condvar::new()),
            wanted: Mutex::new(None),
            flows: Mutex::new(Vec::new()),
            stream_ready: std::sync::atomic::AtomicBool::new(false),
            clock: Default::default(),
            master_live: Default::default(),
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
        let weak = obj.downgrade();
        self.srcpad.connect_linked(move |_, _| {
            if let Some(obj) = weak.upgrade() {
                let (lock, cond) = &obj.imp().linked;
                let _guard = lock.lock().unwrap();
                cond.notify_all();
            }
        });
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
            self.flush_queue();
            let _ = self.srcpad.stop_task();
            // The task may have stopped holding the answer of its last push.
            self.answer_flows();
        }
        let ret = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToPaused {
            self.unflush();
            if self.start_task().is_err() {
                return Err(gst::StateChangeError);
            }
        }
        // We stand for the master's upstream: live there, a live source here, so that the
        // slave pipeline does not wait in PAUSED for data that comes only in PLAYING.
        let to_paused = matches!(
            transition,
            gst::StateChange::ReadyToPaused | gst::StateChange::PlayingToPaused
        );
        if to_paused && self.master_live.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(gst::StateChangeSuccess::NoPreroll);
        }
        Ok(ret)
    }

    fn send_event(&self, event: gst::Event) -> bool {
        // As in C: an event given to the element travels downstream from its pad.
        self.srcpad.push_event(event)
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        self.srcpad.query(query)
    }
}
