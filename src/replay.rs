// SPDX-License-Identifier: MPL-2.0
//! The receiving end of a stream: what the peer sends for our src pad (buffers, events,
//! queries) is queued by the reader and pushed in order by the pad's task, each answered once
//! pushed; events and queries from downstream go back to the peer. rsipcpipelinesrc replays a
//! master's stream in a slave, rsipcupstreamsrc an upstream slave's stream in the master.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use gst::glib;
use gst::prelude::*;

use crate::channel::ChannelError;
use crate::link::{Link, LinkSlot, query_reply};
use crate::ring;
use crate::wire::{self, Frame, HEADER_LEN, Header, Reply, Target};

/// Flow returns gathered at most before they are sent.
const MAX_HELD_FLOWS: usize = 32;
/// What a peer may have queued here: its window (at most 1024 buffers) and the serialized
/// events and queries between them, and the copied bytes its sender lets be in flight
/// (8 MiB, or one larger frame). A peer that sends more does not wait for its window: it is
/// cut off.
const MAX_QUEUED_ITEMS: usize = 2048;
const MAX_QUEUED_BYTES: usize = crate::wire::MAX_BODY_LEN + (16 << 20);
/// Longest sleep on the ring before the task looks again (the peer may never wake it).
const RING_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Which request of which connection an item answers: a slave restarted behind us must not
/// get the answers meant for its predecessor.
struct Origin {
    link: Arc<Link>,
    id: u32,
    /// The position in that link's ring the sender had reached when it sent this: the
    /// ring's entries before it are pushed first.
    after: Option<u64>,
}

impl Origin {
    fn reply(&self, reply: Reply) {
        let _ = self.link.channel.reply(self.id, reply);
    }
}

/// What the peer sent that must be pushed in stream order by the streaming thread.
enum Item {
    Buffer(Origin, gst::Buffer),
    Event(Origin, gst::Event),
    Query(Origin, gst::Query),
}

impl Item {
    /// Bytes the peer sent inside the frame (memory of its own, lent as an fd, is not ours).
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

    fn origin(&self) -> &Origin {
        match self {
            Item::Buffer(o, _) | Item::Event(o, _) | Item::Query(o, _) => o,
        }
    }

    fn origin_mut(&mut self) -> &mut Origin {
        match self {
            Item::Buffer(o, _) | Item::Event(o, _) | Item::Query(o, _) => o,
        }
    }
}

struct Queue {
    items: VecDeque<Item>,
    /// The sum of the items' [`Item::inline_bytes`], kept as they come and go.
    bytes: usize,
    /// True while the pad is inactive or a flush is in progress: items are refused.
    flushing: bool,
    /// Sticky downstream flow error: buffers already sent by the peer get it back at once.
    flow: Result<gst::FlowSuccess, gst::FlowError>,
    /// Counts flushes: a push that began before a flush must not make its FLUSHING result
    /// sticky for the stream that follows it.
    epoch: u64,
    /// The ring of small buffers of the current link, if its sender made one.
    ring: Option<RingSlot>,
}

struct RingSlot {
    /// Not kept alive by the ring: a link that went away takes its ring with it at the next
    /// flush.
    link: std::sync::Weak<Link>,
    rx: Arc<ring::Receiver>,
    /// The last position the sender announced with an AFTER frame.
    after: u64,
    /// Frames for the stream that came on the socket since the ring: see [`ring::Entry`].
    items: u64,
}

impl RingSlot {
    fn serves(&self, link: &Arc<Link>) -> bool {
        std::ptr::eq(self.link.as_ptr(), Arc::as_ptr(link))
    }
}

/// A frame copied out of the ring, read as a body without its header.
struct RingBody(Vec<u8>);

impl AsRef<[u8]> for RingBody {
    fn as_ref(&self) -> &[u8] {
        &self.0[HEADER_LEN..]
    }
}

impl AsMut<[u8]> for RingBody {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0[HEADER_LEN..]
    }
}

/// The buffer of a frame from the ring, which only buffers without fds may use.
pub(crate) fn ring_buffer(bytes: Vec<u8>) -> Result<gst::Buffer, ChannelError> {
    let head: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| ChannelError::Unexpected("a frame shorter than its header".into()))?;
    let header = Header::decode(head)?;
    if header.frame_type != wire::FrameType::Buffer
        || header.n_fds != 0
        || header.len as usize != bytes.len() - HEADER_LEN
    {
        return Err(ChannelError::Unexpected(format!(
            "a {:?} frame of {} bytes with {} fds in the ring, where only buffers without fds go",
            header.frame_type, header.len, header.n_fds
        )));
    }
    match wire::decode_with_fds(&header, RingBody(bytes), Vec::new(), &mut |_, _, _, _| {
        Err(wire::WireError::UnexpectedFds)
    })? {
        Frame::Buffer(b) => Ok(b),
        _ => unreachable!("a buffer header decodes to a buffer"),
    }
}

/// What the task does next.
enum Next {
    Item(Item),
    Ring(Arc<ring::Receiver>, std::sync::Weak<Link>, gst::Buffer, u64),
}

impl Queue {
    /// Whether the item at the front may go: the ring's entries sent before it are done.
    fn front_due(&self) -> bool {
        let Some(item) = self.items.front() else {
            return false;
        };
        match (&self.ring, item.origin().after) {
            (Some(r), Some(after)) if r.serves(&item.origin().link) => r.rx.tail() >= after,
            _ => true,
        }
    }

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

/// Called by the task before each buffer it pushes (a slave providing the clock samples it).
pub type BeforeBuffer = Box<dyn Fn(&Link) + Send + Sync>;

pub struct Replay {
    /// The debug category of the element this works for.
    cat: gst::DebugCategory,
    srcpad: gst::Pad,
    /// The element's link, shared with it.
    link: Arc<LinkSlot>,
    /// Who sends the stream, for error messages: "master" or "slave".
    peer: &'static str,
    queue: Mutex<Queue>,
    queue_cond: Condvar,
    /// Flow returns of pushed buffers not sent yet: see [`Replay::answer_flows`].
    flows: Mutex<Vec<(Origin, Reply)>>,
    /// The pad has had stream-start and segment since the last event: see
    /// [`Replay::stream_ready`].
    stream_ready: AtomicBool,
    before_buffer: Option<BeforeBuffer>,
    /// Buffers pushed so far: see [`Replay::wait_for_buffer`].
    pushed: AtomicU64,
    /// Threads in [`Replay::wait_for_buffer`], and where they wait: the task locks and
    /// signals only when there is one, so a push costs one atomic add otherwise.
    waiters: AtomicUsize,
    pushed_cond: (Mutex<()>, Condvar),
}

impl Replay {
    pub fn new(
        cat: gst::DebugCategory,
        srcpad: &gst::Pad,
        link: Arc<LinkSlot>,
        peer: &'static str,
        before_buffer: Option<BeforeBuffer>,
    ) -> Arc<Replay> {
        Arc::new(Replay {
            cat,
            srcpad: srcpad.clone(),
            link,
            peer,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                flushing: true,
                flow: Ok(gst::FlowSuccess::Ok),
                epoch: 0,
                ring: None,
            }),
            queue_cond: Condvar::new(),
            flows: Mutex::new(Vec::new()),
            stream_ready: AtomicBool::new(false),
            before_buffer,
            pushed: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            pushed_cond: Default::default(),
        })
    }

    /// Handles what the peer sends for our pad: buffers, downstream events and queries. Any
    /// other frame is given back.
    pub fn frame(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        let this = self.clone();
        let frame = match frame {
            Frame::Ring { fd, capacity } => {
                return self.take_ring(link, fd, capacity).map(|_| None);
            }
            Frame::After(position) => return self.ring_after(link, position).map(|_| None),
            frame => frame,
        };
        let origin = Origin {
            link: link.clone(),
            id,
            after: None,
        };
        match frame {
            Frame::Buffer(buffer) => self.enqueue_for_peer(Item::Buffer(origin, buffer))?,
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
                    this.flush_queue();
                    let ok = this.srcpad.push_event(event);
                    origin.reply(Reply::Bool(ok));
                })?,
                gst::EventType::FlushStop => link.events.push_for_peer(move || {
                    if this.srcpad.is_active() {
                        this.unflush();
                        this.enqueue(Item::Event(origin, event), true);
                        let _ = this.start_task();
                    } else {
                        origin.reply(Reply::Bool(false));
                    }
                })?,
                _ if event.is_serialized() => self.enqueue_for_peer(Item::Event(origin, event))?,
                _ => link.events.push_for_peer(move || {
                    let ok = this.srcpad.push_event(event);
                    origin.reply(Reply::Bool(ok));
                })?,
            },
            Frame::Query {
                target: Target::Pad,
                query,
            } if !query.is_downstream() => {
                // GStreamer warns, and answers nothing, for a query sent the wrong way.
                return Err(ChannelError::Unexpected(format!(
                    "a {:?} query, which does not travel downstream, sent down to our pad",
                    query.type_()
                )));
            }
            Frame::Query {
                target: Target::Pad,
                query,
            } if query.is_serialized() => self.enqueue_for_peer(Item::Query(origin, query))?,
            Frame::Query {
                target: Target::Pad,
                mut query,
            } => link.queries.spawn("rsipc-query", move || {
                let ok = this.srcpad.peer_query(query.make_mut());
                origin.reply(query_reply(ok, &query));
            })?,
            other => return Ok(Some(other)),
        }
        Ok(None)
    }

    /// The ring the sender made for this link's small buffers; one per link.
    fn take_ring(
        &self,
        link: &Arc<Link>,
        fd: std::os::fd::OwnedFd,
        capacity: u32,
    ) -> Result<(), ChannelError> {
        let mut q = self.queue.lock().unwrap();
        if q.ring.as_ref().is_some_and(|r| r.serves(link)) {
            return Err(ChannelError::Unexpected("a second ring".into()));
        }
        let rx = Arc::new(ring::Receiver::map(fd, capacity)?);
        rx.set_refusing(q.flushing);
        gst::debug!(
            self.cat,
            obj = self.srcpad,
            "small buffers come in a ring of {capacity} bytes"
        );
        q.ring = Some(RingSlot {
            link: Arc::downgrade(link),
            rx,
            after: 0,
            items: 0,
        });
        self.queue_cond.notify_one();
        Ok(())
    }

    /// What the sender sends on the socket next comes after the ring's entries up to
    /// `position`, which it wrote before.
    fn ring_after(&self, link: &Arc<Link>, position: u64) -> Result<(), ChannelError> {
        let mut q = self.queue.lock().unwrap();
        let Some(r) = q.ring.as_mut().filter(|r| r.serves(link)) else {
            return Err(ChannelError::Unexpected(
                "a ring position without a ring".into(),
            ));
        };
        let head = r.rx.head()?;
        if position < r.after || position > head || !position.is_multiple_of(ring::ALIGN) {
            return Err(ChannelError::Unexpected(format!(
                "a ring position of {position}, not in {}..={head}",
                r.after
            )));
        }
        r.after = position;
        Ok(())
    }

    /// Answers an item that will not be pushed.
    fn refuse(&self, item: Item, flow: gst::FlowError) {
        match item {
            Item::Buffer(o, _) => o.reply(Reply::Flow(flow.into())),
            Item::Event(o, _) => o.reply(Reply::Bool(false)),
            Item::Query(o, q) => o.reply(query_reply(false, &q)),
        }
    }

    fn enqueue(&self, item: Item, front: bool) {
        self.enqueue_locked(self.queue.lock().unwrap(), item, front);
    }

    fn enqueue_locked(&self, mut q: std::sync::MutexGuard<'_, Queue>, item: Item, front: bool) {
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
        self.wake_task(&q);
    }

    /// Wakes the task, whether it sleeps on the queue or on the ring.
    fn wake_task(&self, q: &Queue) {
        self.queue_cond.notify_one();
        if let Some(r) = &q.ring {
            r.rx.wake();
        }
    }

    /// [`Self::enqueue`] for what the peer sent: a peer that sends more than it may have in
    /// flight (it waits for its window) is cut off instead of growing the queue.
    /// Places it in stream order with the ring of its link: after the entries written before
    /// it was sent, and counted (refused or not) so that those written after wait for it.
    fn enqueue_for_peer(&self, mut item: Item) -> Result<(), ChannelError> {
        let mut q = self.queue.lock().unwrap();
        if q.items.len() >= MAX_QUEUED_ITEMS || q.bytes > MAX_QUEUED_BYTES {
            return Err(ChannelError::Limit(format!(
                "{} buffers, events and queries ({} bytes of copied data) queued \
                 without waiting for them; the limits are {MAX_QUEUED_ITEMS} and \
                 {MAX_QUEUED_BYTES} bytes",
                q.items.len(),
                q.bytes
            )));
        }
        if let Some(r) = q.ring.as_mut()
            && r.serves(&item.origin().link)
        {
            item.origin_mut().after = Some(r.after);
            r.items += 1;
        }
        self.enqueue_locked(q, item, false);
        Ok(())
    }

    /// Refuses everything queued and every later item until the task starts again.
    pub fn flush_queue(&self) {
        let items: Vec<Item> = {
            let mut q = self.queue.lock().unwrap();
            q.flushing = true;
            q.epoch += 1;
            if let Some(r) = &q.ring {
                // What the sender wrote is answered FLUSHING, as queued items are: dropped.
                r.rx.set_refusing(true);
                let _ = r.rx.discard();
            }
            if q.ring
                .as_ref()
                .is_some_and(|r| r.link.upgrade().is_none_or(|l| l.channel.is_closed()))
            {
                q.ring = None;
            }
            self.queue_cond.notify_all();
            self.wake_task(&q);
            q.take_all()
        };
        for item in items {
            self.refuse(item, gst::FlowError::Flushing);
        }
        // Every buffer sent gets its answer, held back or not.
        self.answer_flows();
    }

    /// Whether a buffer may be pushed now: GStreamer wants stream-start and segment first
    /// (and only warns), a peer that sends a buffer before them is broken. Looked up once
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
        if let Some(r) = &q.ring {
            // Written while we flushed: from before the flush (the sender sends FLUSH_STOP,
            // and starts again, only once its own streaming thread stopped).
            let _ = r.rx.discard();
            r.rx.set_refusing(false);
        }
    }

    /// Takes items again and starts pushing them (READY to PAUSED).
    pub fn start(self: &Arc<Self>) -> Result<(), glib::BoolError> {
        self.unflush();
        self.start_task()
    }

    /// Refuses everything and stops the task (PAUSED to READY).
    pub fn stop(&self) {
        self.flush_queue();
        let _ = self.srcpad.stop_task();
        // The task may have stopped holding the answer of its last push.
        self.answer_flows();
    }

    fn start_task(self: &Arc<Self>) -> Result<(), glib::BoolError> {
        gst::log!(self.cat, obj = self.srcpad, "starting the task");
        // A pad that was deactivated lost its sticky events.
        self.stream_ready.store(false, Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        self.srcpad.start_task(move || {
            if let Some(this) = weak.upgrade() {
                this.task_iteration();
            }
        })
    }

    /// Posts an ERROR from the element that owns our pad.
    fn stream_error(&self, text: String) {
        if let Some(element) = self.srcpad.parent_element() {
            gst::element_error!(element, gst::StreamError::Failed, ("{text}"));
        }
    }

    /// One iteration of the streaming thread: push the next item and answer it.
    fn task_iteration(&self) {
        let (next, epoch) = {
            let mut q = self.queue.lock().unwrap();
            loop {
                // Held answers go out before the task waits or pauses; not under the queue
                // lock, which the reader needs to queue what arrives meanwhile.
                if (q.flushing || !q.front_due()) && !self.flows.lock().unwrap().is_empty() {
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
                if q.front_due() {
                    break (Next::Item(q.pop().unwrap()), q.epoch);
                }
                let Some(rx) = q.ring.as_ref().map(|r| r.rx.clone()) else {
                    q = self.queue_cond.wait(q).unwrap();
                    continue;
                };
                // Read before looking: a wake-up after this makes the sleep return at once.
                let bell = rx.bell();
                let seen = rx.written();
                // An entry waits for the frames sent on the socket before it.
                let items = q.ring.as_ref().map_or(0, |r| r.items);
                let entry = match rx.next().map_err(ChannelError::from).and_then(|e| {
                    e.filter(|e| e.items <= items)
                        .map(|e| ring_buffer(e.bytes).map(|b| (b, e.end)))
                        .transpose()
                }) {
                    Ok(e) => e,
                    Err(e) => {
                        drop(q);
                        self.ring_broken(e);
                        return;
                    }
                };
                match entry {
                    // After a flow error, buffers are dropped without being pushed, as the
                    // queue's are (the sender has the error already).
                    Some((_, end)) if q.flow.is_err() => rx.finish(end),
                    Some((buffer, end)) => {
                        let link = q.ring.as_ref().map(|r| r.link.clone()).unwrap_or_default();
                        break (Next::Ring(rx, link, buffer, end), q.epoch);
                    }
                    None => {
                        drop(q);
                        rx.sleep(bell, seen, RING_WAIT);
                        q = self.queue.lock().unwrap();
                    }
                }
            }
        };
        match next {
            Next::Ring(rx, link, buffer, end) => {
                let flow = self.push_buffer(buffer, epoch);
                // Only errors are answered, on the socket: after the messages posted before.
                if let Err(e) = flow
                    && e != gst::FlowError::Flushing
                    && let Some(link) = link.upgrade()
                {
                    let _ = link.channel.reply(0, Reply::Flow(e.into()));
                }
                rx.finish(end);
            }
            Next::Item(item) => self.push_item(item, epoch),
        }
    }

    /// The peer broke the ring: the stream cannot go on.
    fn ring_broken(&self, error: ChannelError) {
        self.stream_error(format!("The {} broke the stream: {error}", self.peer));
        let slot = {
            let mut q = self.queue.lock().unwrap();
            q.flow = Err(gst::FlowError::Error);
            q.ring.take()
        };
        if let Some(link) = slot.and_then(|r| r.link.upgrade()) {
            link.channel.disconnect();
        }
    }

    /// Pushes a buffer (the stream must have started): its flow, kept as the sticky error of
    /// the queue unless a flush came meanwhile.
    fn push_buffer(
        &self,
        buffer: gst::Buffer,
        epoch: u64,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if !self.stream_ready() {
            self.stream_error(format!(
                "The {} sent a buffer before stream-start and segment",
                self.peer
            ));
            return Err(gst::FlowError::Error);
        }
        if let Some(before) = &self.before_buffer
            && let Some(link) = self.link.get()
        {
            before(&link);
        }
        let flow = self.srcpad.push(buffer);
        self.pushed.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.pushed_cond.0.lock().unwrap();
            self.pushed_cond.1.notify_all();
        }
        if let Err(e) = flow {
            gst::debug!(self.cat, obj = self.srcpad, "downstream returned {e:?}");
            let mut q = self.queue.lock().unwrap();
            if q.flow.is_ok() && q.epoch == epoch {
                q.flow = Err(e);
            }
        }
        flow
    }

    /// Pushes what came on the socket, and answers it.
    fn push_item(&self, item: Item, epoch: u64) {
        gst::log!(
            self.cat,
            obj = self.srcpad,
            "pushing item {}",
            item.origin().id
        );
        match item {
            Item::Buffer(origin, buffer) => {
                let flow = self.push_buffer(buffer, epoch);
                let mut flows = self.flows.lock().unwrap();
                flows.push((origin, Reply::Flow(flow.into())));
                if flows.len() >= MAX_HELD_FLOWS {
                    drop(flows);
                    self.answer_flows();
                }
            }
            Item::Event(origin, event) => {
                // The answers for the buffers before it go first.
                self.answer_flows();
                self.stream_ready.store(false, Ordering::Relaxed);
                if let Some(why) = misordered(&self.srcpad, &event) {
                    self.stream_error(format!("The {} sent events out of order: {why}", self.peer));
                    origin.reply(Reply::Bool(false));
                    return;
                }
                let ok = self.srcpad.push_event(event);
                origin.reply(Reply::Bool(ok));
            }
            Item::Query(origin, mut query) => {
                self.answer_flows();
                let ok = self.srcpad.peer_query(query.make_mut());
                origin.reply(query_reply(ok, &query));
            }
        }
    }

    /// Sends the flow returns held back. While more buffers wait in the queue, their answers
    /// are gathered and sent in one write (before the task waits, pauses or handles anything
    /// else): one syscall for a run of buffers instead of one each.
    pub fn answer_flows(&self) {
        let flows = std::mem::take(&mut *self.flows.lock().unwrap());
        // One write per run of answers to one connection (almost always the only run).
        let mut flows = flows.into_iter().peekable();
        while let Some((first, reply)) = flows.next() {
            let mut run = vec![(first.id, reply)];
            while let Some((o, _)) = flows.peek()
                && Arc::ptr_eq(&o.link, &first.link)
            {
                let (o, r) = flows.next().unwrap();
                run.push((o.id, r));
            }
            let _ = first.link.channel.replies(run);
        }
    }

    /// Pushes an event given to the element. Sticky events but EOS belong to the stream and
    /// come with it: given to the element, one could overtake, or be overtaken by, what the
    /// pad's task pushes between its order check and its push (GStreamer then warns of
    /// their order; found by fuzzing), so they are refused.
    pub fn push_event(&self, event: gst::Event) -> bool {
        if event.is_sticky() && event.type_() != gst::EventType::Eos {
            gst::debug!(
                self.cat,
                obj = self.srcpad,
                "refusing a {:?} event given to the element: it comes with the stream",
                event.type_()
            );
            return false;
        }
        self.srcpad.push_event(event)
    }

    /// Buffers pushed so far.
    pub fn buffers_pushed(&self) -> u64 {
        self.pushed.load(Ordering::SeqCst)
    }

    /// Waits until more than `count` buffers have been pushed, at most `timeout`: whether
    /// they were.
    pub fn wait_for_buffer(&self, count: u64, timeout: std::time::Duration) -> bool {
        // Counted in before the count is read: a push after that read sees a waiter, and
        // signals under the lock this thread holds until it waits.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let guard = self.pushed_cond.0.lock().unwrap();
        let _ = self
            .pushed_cond
            .1
            .wait_timeout_while(guard, timeout, |_| self.buffers_pushed() <= count)
            .unwrap();
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        self.buffers_pushed() > count
    }

    /// Sends an event from downstream to the peer; its answer, or why there is none.
    pub fn upstream_event(&self, event: gst::Event) -> Result<bool, ChannelError> {
        let Some(link) = self.greeted_link() else {
            return Ok(false);
        };
        // QoS is advice sent for every buffer; waiting for its (meaningless) answer would
        // cost the streaming thread a round trip per buffer.
        if event.type_() == gst::EventType::Qos {
            let frame = Frame::Event {
                target: Target::Pad,
                event,
            };
            return Ok(link.channel.send(&frame).is_ok());
        }
        link.tell(Target::Pad, event)
    }

    /// Asks the peer a query from downstream; its answer, or why there is none.
    pub fn upstream_query(&self, query: &mut gst::QueryRef) -> Result<bool, ChannelError> {
        self.greeted_link()
            .map_or(Ok(false), |l| l.ask(Target::Pad, query))
    }

    /// The link, once the peer has greeted us: before that, a master's sink is still in NULL
    /// and would leave an upstream request unanswered until the ack-time runs out (a slave
    /// with several masters asks all of them as soon as one starts).
    fn greeted_link(&self) -> Option<Arc<Link>> {
        self.link.get().filter(|l| l.channel.greeted())
    }
}

/// Why `event` may not follow what `pad` has had: GStreamer takes stream-start, caps and
/// segment only in this order, and no sticky event after EOS (it warns, and goes on with a
/// stream that makes no sense), so a peer that sends them otherwise is broken.
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

impl crate::link::StreamPart for Replay {
    fn stream_frame(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        self.frame(link, id, frame)
    }

    /// What the dead connection brought is answered, and no more comes.
    fn closed(&self) {
        self.flush_queue();
    }
}
