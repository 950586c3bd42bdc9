// SPDX-License-Identifier: MPL-2.0
//! The channel: one connection to the peer over inherited fds (a socket for both directions,
//! or two pipes), a reader thread, request/reply matching with deadlines and the credit
//! window that keeps several buffers in flight.
//!
//! The reader thread only reads, decodes and completes replies. Every other frame is handed to
//! the element's [`Handler`], which must queue it for another thread: GStreamer code run on
//! the reader could call back into the element and wait for a reply only the reader can read.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::glib;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::ring;
use crate::wire::{self, Frame, HEADER_LEN, Header, Hello, PROTOCOL_VERSION, Reply, Role};

static CAT: std::sync::LazyLock<gst::DebugCategory> = std::sync::LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcchannel",
        gst::DebugColorFlags::empty(),
        Some("rsipcpipeline connection"),
    )
});

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChannelError {
    #[error("the peer closed the connection")]
    PeerClosed,
    #[error("socket error: {0}")]
    Io(Errno),
    #[error("invalid data from the peer: {0}")]
    Protocol(#[from] wire::WireError),
    #[error("peer broke the protocol: {0}")]
    Unexpected(String),
    #[error("no answer from the peer within {0:?}")]
    Timeout(Duration),
    #[error("disconnected")]
    Disconnected,
    #[error("flushing")]
    Flushing,
    #[error("incompatible peer: {0}")]
    Incompatible(String),
    #[error("the peer's pipeline returned {0:?}")]
    Flow(gst::FlowError),
    #[error("the peer went over a limit: {0}")]
    Limit(String),
    #[error(transparent)]
    Ring(#[from] crate::ring::RingError),
}

/// The kind of reply a request takes: a peer that answers with another kind, or a query with
/// an answer its asker cannot use (success without the result, an invalid time), is broken.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Bool,
    State,
    Query(gst::QueryType),
}

impl Expect {
    fn of(request: &Frame) -> Expect {
        match request {
            Frame::StateChange { .. } => Expect::State,
            Frame::Query { query, .. } => Expect::Query(query.type_()),
            _ => Expect::Bool,
        }
    }

    fn takes(self, reply: &Reply) -> bool {
        match (self, reply) {
            (Expect::Bool, Reply::Bool(_)) | (Expect::State, Reply::State(_)) => true,
            (Expect::Query(t), Reply::Query { result, structure }) => {
                wire::usable_answer(t, *result, structure.as_deref())
            }
            _ => false,
        }
    }
}

/// Buffers lent as fds at once; beyond, buffers are copied, so that a peer that never
/// releases cannot pin the whole pool (or all our fds).
const MAX_LENT: usize = 64;
/// Copied bytes in flight: with large frames, the window in buffers would let the slave
/// hold too many copies.
const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;
/// Requests given up on whose late reply is still accepted.
const MAX_ABANDONED: usize = 1024;
/// Bytes of names new to this process (structures, fields, caps features, error domains) one
/// connection may bring: GStreamer keeps each for good. A real session brings a few hundred
/// bytes (the fields of an element message the other process never loaded, say).
const MAX_NEW_NAME_BYTES: usize = 256 << 10;
/// Fds received and not yet taken by their frame.
const MAX_PENDING_FDS: usize = 4 * wire::MAX_FDS;

/// Buffers in plain memory from this size on cross as a copy in memfd memory (see
/// [`crate::memory::CopyPool`]); smaller ones are copied into the ring or the frame.
const LARGE_COPY_MIN: usize = 256 << 10;
/// What a buffer frame takes besides its data, metas apart: a buffer bigger than the ring
/// takes is not encoded for it.
const SMALL_FRAME_OVERHEAD: usize = 128;
/// Longest sleep of a sender waiting for room in the ring before it looks again: the peer
/// may not wake it (it is not ours to trust), and nothing it does can make us wait longer.
const RING_WAIT: Duration = Duration::from_millis(20);

/// How often the reader looks whether the application closed the fd under it (as the C
/// elements' 100 ms poll does).
const FD_CHECK_INTERVAL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// Receives every frame that is not a reply. Called on the reader thread: it must not block.
pub trait Handler: Send + Sync + 'static {
    /// An error is a frame the element cannot take from this peer: it closes the connection
    /// with that reason, like a frame that does not decode.
    fn frame(&self, id: u32, frame: Frame) -> Result<(), ChannelError>;
    /// The connection ended for a reason other than [`Channel::disconnect`]. Called once.
    fn closed(&self, error: &ChannelError);
}

#[derive(Default)]
struct Shared {
    closed: Option<ChannelError>,
    peer: Option<Hello>,
    /// Requests waiting for their reply, with the kind of reply each takes.
    pending: HashMap<u32, (Expect, Option<Reply>)>,
    /// Requests nobody waits for (the waiter gave up, or it was sent without waiting, as QoS
    /// is): their reply may still come, once.
    abandoned: std::collections::BTreeSet<u32>,
    flushing: bool,
    in_flight: usize,
    /// Bytes copied into the frames of the buffers in flight, oldest first, and their sum:
    /// the peer holds a copy of each until it answers.
    in_flight_bytes: std::collections::VecDeque<usize>,
    copied: usize,
    /// The first non-OK flow return of the peer since the last flow reset.
    flow: Option<gst::FlowError>,
    /// Buffers whose memory the peer holds as fds, by the id of the frame that lent them:
    /// kept alive (out of their pool) until the peer releases them or goes away.
    lent: HashMap<u32, gst::Buffer>,
}

impl Shared {
    /// Why no buffer may be sent now, if there is a reason.
    fn may_send(&self) -> Result<(), ChannelError> {
        if let Some(e) = &self.closed {
            return Err(e.clone());
        }
        if self.flushing {
            return Err(ChannelError::Flushing);
        }
        if let Some(f) = self.flow {
            return Err(ChannelError::Flow(f));
        }
        Ok(())
    }

    /// Accepts one late reply to `id`; the oldest such ids are forgotten beyond
    /// [`MAX_ABANDONED`].
    fn abandon(&mut self, id: u32) {
        if self.abandoned.len() == MAX_ABANDONED {
            self.abandoned.pop_first();
        }
        self.abandoned.insert(id);
    }
}

struct Inner {
    name: String,
    /// The application's fds, used as they are, like the C elements do: closing them is how an
    /// application of the C plugin ends a connection, so we hold no duplicate that would keep
    /// the socket open. They must stay open until `disconnect` (or the element's disposal).
    rfd: RawFd,
    wfd: RawFd,
    wfd_is_socket: bool,
    /// One socket both ways: fds can cross, if the peer takes them too.
    can_pass_fds: bool,
    /// Written once on disconnect and never read, so it stays readable: every poll on it
    /// wakes up for good.
    stop: OwnedFd,
    /// Held while a frame is written, to the socket or the ring.
    write_lock: Mutex<WriteOrder>,
    /// The ring this sending end made for small buffers, once the peer is greeted (`None`:
    /// it did not take one, or making it failed).
    ring: OnceLock<Option<Arc<ring::Sender>>>,
    /// Where large buffers in plain memory are copied to cross as fds.
    copies: crate::memory::CopyPool,
    shared: Mutex<Shared>,
    cond: Condvar,
    next_id: AtomicU32,
    ack_time: Duration,
}

/// What orders the frames on the socket with the entries of the ring (see `ring.rs`).
#[derive(Default)]
struct WriteOrder {
    /// The ring's head when the last frame went on the socket: an AFTER frame goes first
    /// when it moved.
    after_sent: u64,
    /// Frames for the stream sent on the socket since the ring was made.
    items: u64,
}

/// What a frame written on the socket is, for [`WriteOrder`].
#[derive(Clone, Copy, PartialEq)]
enum Sent {
    /// A frame the receiver pushes in stream order ([`Frame::is_stream_item`]).
    Item,
    /// The ring itself: the count starts.
    Ring,
    Other,
}

impl Sent {
    fn of(frame: &Frame) -> Sent {
        if frame.is_stream_item() {
            Sent::Item
        } else {
            Sent::Other
        }
    }
}

pub struct Channel {
    inner: Arc<Inner>,
    role: Role,
    read_chunk_size: usize,
    reader: Mutex<Option<JoinHandle<()>>>,
}

pub struct Config {
    pub fdin: RawFd,
    pub fdout: RawFd,
    pub role: Role,
    /// Bounds every wait for an answer and every blocked write.
    pub ack_time: Duration,
    pub read_chunk_size: usize,
    pub name: String,
}

impl Channel {
    /// Greets the peer over the application's fds. Nothing is read until [`Channel::start`]:
    /// the owner first stores the channel where its handler will look for it, so that no frame
    /// can arrive before there is somewhere to deliver it.
    pub fn connect(config: Config) -> Result<Channel, ChannelError> {
        let (rfd, wfd) = (config.fdin, config.fdout);
        let wfd_is_socket = {
            let st = borrow(rfd)
                .and_then(|_| borrow(wfd))
                .and_then(rustix::fs::fstat)
                .map_err(ChannelError::Io)?;
            rustix::fs::FileType::from_raw_mode(st.st_mode).is_socket()
        };
        let stop = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(ChannelError::Io)?;
        let can_pass_fds = wfd_is_socket && rfd == wfd;
        let inner = Arc::new(Inner {
            name: config.name,
            rfd,
            wfd,
            wfd_is_socket,
            can_pass_fds,
            stop,
            write_lock: Mutex::new(WriteOrder::default()),
            ring: OnceLock::new(),
            copies: Default::default(),
            shared: Mutex::new(Shared::default()),
            cond: Condvar::new(),
            next_id: AtomicU32::new(1),
            ack_time: config.ack_time,
        });
        let mut features = wire::features::SUPPORTED;
        if !can_pass_fds {
            features &= !(wire::features::FD_MEMORY | wire::features::RING);
        }
        let hello = Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: config.role,
            features,
        });
        gst::debug!(CAT, "{}: connecting on fds {rfd}/{wfd}", inner.name);
        inner.write_frame(0, &hello)?;
        Ok(Channel {
            inner,
            role: config.role,
            read_chunk_size: config.read_chunk_size.clamp(4096, 16 << 20),
            reader: Mutex::new(None),
        })
    }

    /// Starts the reader thread, which hands every frame that is not a reply to `handler`.
    pub fn start(&self, handler: Arc<dyn Handler>) -> Result<(), ChannelError> {
        let inner = self.inner.clone();
        let (role, chunk) = (self.role, self.read_chunk_size);
        let reader = std::thread::Builder::new()
            .name(format!("{}-reader", inner.name))
            .spawn(move || inner.read_loop(role, chunk, handler))
            .map_err(|e| ChannelError::Io(Errno::from_io_error(&e).unwrap_or(Errno::AGAIN)))?;
        *self.reader.lock().unwrap() = Some(reader);
        Ok(())
    }

    /// Whether the peer's greeting arrived: failures before it belong to whoever connects.
    pub fn greeted(&self) -> bool {
        self.inner.lock().peer.is_some()
    }

    /// Whether fd-backed memory crosses as fds: both ends said so in their greetings.
    pub fn fd_memory(&self) -> bool {
        self.fd_memory_locked(&self.inner.lock())
    }

    pub fn ack_time(&self) -> Duration {
        self.inner.ack_time
    }

    /// Waits for the peer's greeting: proof that a compatible peer is alive at the other end.
    pub fn wait_hello(&self) -> Result<Hello, ChannelError> {
        gst::log!(CAT, "{}: waiting for the greeting", self.inner.name);
        let deadline = Instant::now() + self.inner.ack_time;
        let mut s = self.inner.lock();
        loop {
            if let Some(h) = s.peer {
                return Ok(h);
            }
            if let Some(e) = &s.closed {
                return Err(e.clone());
            }
            s = self.inner.wait_until(s, deadline)?;
        }
    }

    /// Sends a frame without waiting for its answer, if it takes one.
    pub fn send(&self, frame: &Frame) -> Result<(), ChannelError> {
        let id = self.inner.next_id();
        if matches!(
            frame,
            Frame::Event { .. } | Frame::Query { .. } | Frame::StateChange { .. }
        ) {
            self.inner.lock().abandon(id);
        }
        self.inner.write_frame(id, frame)
    }

    /// Sends `fd`, the peer's end of the connection of a further stream (see
    /// [`Frame::Stream`]); only over a unix socket.
    pub fn send_stream(&self, fd: BorrowedFd) -> Result<(), ChannelError> {
        if !self.inner.can_pass_fds {
            return Err(ChannelError::Unexpected(
                "further streams need one unix socket (fdin = fdout)".into(),
            ));
        }
        let id = self.inner.next_id();
        self.inner.write(&wire::encode_stream(id), &[fd])
    }

    pub fn reply(&self, id: u32, reply: Reply) -> Result<(), ChannelError> {
        self.inner.write_frame(id, &Frame::Reply(reply))
    }

    /// Several replies in one write.
    pub fn replies(
        &self,
        replies: impl IntoIterator<Item = (u32, Reply)>,
    ) -> Result<(), ChannelError> {
        let bytes: Vec<u8> = replies
            .into_iter()
            .flat_map(|(id, r)| wire::encode(id, &Frame::Reply(r)))
            .collect();
        if bytes.is_empty() {
            return Ok(());
        }
        self.inner.write(&bytes, &[])
    }

    /// Sends a request and waits for its reply. `timeout: None` waits as long as the peer is
    /// connected (data flow that a paused pipeline legitimately holds back); a flush cancels
    /// the wait when `cancel_on_flush` is set.
    pub fn request(
        &self,
        frame: &Frame,
        timeout: Option<Duration>,
        cancel_on_flush: bool,
    ) -> Result<Reply, ChannelError> {
        let id = self.inner.next_id();
        {
            let mut s = self.inner.lock();
            if let Some(e) = &s.closed {
                return Err(e.clone());
            }
            s.pending.insert(id, (Expect::of(frame), None));
        }
        gst::log!(
            CAT,
            "{}: request {:?} id {id}",
            self.inner.name,
            frame.frame_type()
        );
        let result = self
            .inner
            .write_frame(id, frame)
            .and_then(|()| self.wait_reply(id, timeout, cancel_on_flush));
        let mut s = self.inner.lock();
        s.pending.remove(&id);
        if result.is_err() {
            s.abandon(id);
        }
        result
    }

    fn wait_reply(
        &self,
        id: u32,
        timeout: Option<Duration>,
        cancel_on_flush: bool,
    ) -> Result<Reply, ChannelError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.inner.lock();
        loop {
            if let Some((_, slot)) = s.pending.get_mut(&id)
                && let Some(reply) = slot.take()
            {
                return Ok(reply);
            }
            if let Some(e) = &s.closed {
                return Err(e.clone());
            }
            if cancel_on_flush && s.flushing {
                return Err(ChannelError::Flushing);
            }
            s = match deadline {
                Some(d) => self.inner.wait_until(s, d)?,
                None => self.inner.cond.wait(s).unwrap(),
            };
        }
    }

    /// Sends a buffer without waiting for the peer to push it, once fewer than `window`
    /// buffers are in flight. Returns the flow the peer reported for earlier buffers, so an
    /// error reaches upstream at most `window` buffers late. A small buffer in plain memory
    /// goes through the shared ring when there is one; anything else on the socket.
    pub fn send_buffer(&self, buffer: &gst::Buffer, window: usize) -> Result<(), ChannelError> {
        let ring = self.ring();
        if let Some(ring) = &ring
            && ring.fits(buffer.size() + SMALL_FRAME_OVERHEAD)
            && buffer
                .iter_memories()
                .all(|m| crate::memory::export(m).is_none())
        {
            let frame = wire::encode_buffer(0, buffer, false);
            let pieces = frame.slices();
            if ring.fits(pieces.iter().map(|p| p.len()).sum()) {
                return self.send_in_ring(ring, &pieces, window);
            }
        }
        // A large buffer in plain memory: copied once into memfd memory that crosses as its
        // fd, rather than twice through the socket.
        let copy = (buffer.size() >= LARGE_COPY_MIN
            && self.fd_memory()
            && buffer
                .iter_memories()
                .any(|m| crate::memory::export(m).is_none()))
        .then(|| self.inner.copies.copy(buffer))
        .flatten();
        let original_flags = copy.is_some().then(|| buffer.flags());
        let buffer = copy.as_ref().unwrap_or(buffer);
        let mut s = self.inner.lock();
        loop {
            s.may_send()?;
            let Some(ring) = &ring else {
                if s.in_flight == 0
                    || (s.in_flight < window.max(1) && s.copied < MAX_IN_FLIGHT_BYTES)
                {
                    break;
                }
                s = self.inner.cond.wait(s).unwrap();
                continue;
            };
            // Buffers in the ring count in the window too.
            let bell = ring.bell();
            let room = ring.room(0, window, s.in_flight);
            let wait = match room {
                Ok(None) if s.copied < MAX_IN_FLIGHT_BYTES || s.in_flight == 0 => break,
                Ok(None) => None,
                Ok(Some(at)) => Some(at),
                Err(e) => {
                    drop(s);
                    return Err(self.fail(e.into()));
                }
            };
            drop(s);
            match wait {
                Some(at) => ring.sleep(bell, at, RING_WAIT),
                // Socket buffers are answered on the socket: the answer wakes the ring too.
                None => ring.sleep(bell, u64::MAX, RING_WAIT),
            }
            s = self.inner.lock();
        }
        let id = self.inner.next_id();
        let lend = s.lent.len() < MAX_LENT && self.fd_memory_locked(&s);
        // What the frame copies, and whether the peer will hold our memory: known before
        // encoding, so that one lock takes both.
        let copied: usize = buffer
            .iter_memories()
            .filter(|m| !lend || crate::memory::export(m).is_none())
            .map(|m| m.size())
            .sum();
        s.in_flight += 1;
        s.in_flight_bytes.push_back(copied);
        s.copied += copied;
        let lent = copied < buffer.size();
        if lent {
            // Kept before the peer can release it.
            s.lent.insert(id, buffer.clone());
        }
        drop(s);
        let mut frame = wire::encode_buffer(id, buffer, lend);
        if let Some(original) = original_flags {
            frame.set_flags(original);
        }
        let r = self
            .inner
            .write_vectored(&frame.slices(), &frame.fds, Sent::Item);
        if lent && (r.is_err() || frame.fds.is_empty()) {
            self.inner.lock().lent.remove(&id);
        }
        r
    }

    /// The ring for small buffers: made, and sent to the peer, with the first buffer after
    /// a greeting that offers to take it.
    fn ring(&self) -> Option<Arc<ring::Sender>> {
        if let Some(made) = self.inner.ring.get() {
            return made.clone();
        }
        if !matches!(self.role, Role::Sender | Role::UpstreamSender) || !self.inner.can_pass_fds {
            return None;
        }
        let offered = self
            .inner
            .lock()
            .peer
            .map(|h| h.features & wire::features::RING != 0)?;
        self.inner
            .ring
            .get_or_init(|| {
                if !offered {
                    return None;
                }
                let ring = match ring::Sender::create() {
                    Ok(r) => Arc::new(r),
                    Err(e) => {
                        gst::warning!(CAT, "{}: buffers go on the socket: {e}", self.inner.name);
                        return None;
                    }
                };
                let frame = wire::encode(
                    0,
                    &Frame::Ring {
                        fd: ring.fd().try_clone_to_owned().ok()?,
                        capacity: ring.capacity(),
                    },
                );
                self.inner
                    .write_vectored(&[IoSlice::new(&frame)], &[ring.fd()], Sent::Ring)
                    .ok()?;
                Some(ring)
            })
            .clone()
    }

    /// A small buffer through the ring: waits for room and for the window, then copies it in.
    fn send_in_ring(
        &self,
        ring: &ring::Sender,
        frame: &[IoSlice<'_>],
        window: usize,
    ) -> Result<(), ChannelError> {
        let len = frame.iter().map(|p| p.len()).sum();
        loop {
            let bell = ring.bell();
            let room = {
                let s = self.inner.lock();
                s.may_send()?;
                // The peer flushes: it would have answered FLUSHING, which we ignore.
                if ring.refusing() {
                    return Ok(());
                }
                ring.room(len, window, s.in_flight)
            };
            // Not under the lock: failing takes it.
            match room.map_err(|e| self.fail(e.into()))? {
                None => break,
                Some(wake_at) => ring.sleep(bell, wake_at, RING_WAIT),
            }
        }
        let order = self.inner.write_lock.lock().unwrap();
        ring.write(frame, order.items);
        Ok(())
    }

    /// Ends the connection for a reason found outside the reader (the peer broke the ring).
    /// Takes the shared lock.
    fn fail(&self, error: ChannelError) -> ChannelError {
        gst::debug!(CAT, "{}: {error}", self.inner.name);
        self.inner.close(error.clone());
        let _ = rustix::io::write(&self.inner.stop, &1u64.to_ne_bytes());
        error
    }

    fn fd_memory_locked(&self, s: &Shared) -> bool {
        self.inner.can_pass_fds
            && s.peer
                .is_some_and(|h| h.features & wire::features::FD_MEMORY != 0)
    }

    /// Buffers the peer holds as fds right now.
    pub fn lent(&self) -> usize {
        self.inner.lock().lent.len()
    }

    /// Flushing wakes and fails the waits that asked for it; the flow reported by the peer
    /// is forgotten when flushing stops.
    pub fn set_flushing(&self, flushing: bool) {
        let mut s = self.inner.lock();
        s.flushing = flushing;
        self.inner.cond.notify_all();
        self.inner.wake_ring();
    }

    pub fn reset_flow(&self) {
        self.inner.lock().flow = None;
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed.is_some()
    }

    /// Why the connection ended, if it did.
    pub fn closed_reason(&self) -> Option<ChannelError> {
        self.inner.lock().closed.clone()
    }

    /// Stops the reader, fails every wait and releases the fds. Safe to call from any thread,
    /// the reader's own included, and more than once.
    pub fn disconnect(&self) {
        self.inner.close(ChannelError::Disconnected);
        let _ = rustix::io::write(&self.inner.stop, &1u64.to_ne_bytes());
        let handle = self.reader.lock().unwrap().take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.disconnect();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }

    fn next_id(&self) -> u32 {
        // 0 is never used, so a reply can never match the greeting.
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn wait_until<'a>(
        &self,
        s: MutexGuard<'a, Shared>,
        deadline: Instant,
    ) -> Result<MutexGuard<'a, Shared>, ChannelError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(ChannelError::Timeout(self.ack_time));
        }
        Ok(self.cond.wait_timeout(s, deadline - now).unwrap().0)
    }

    fn close(&self, error: ChannelError) -> bool {
        let mut s = self.lock();
        let first = s.closed.is_none();
        if first {
            s.closed = Some(error);
        }
        // What the peer held goes back to its pools: the peer is gone, or will never say.
        let lent = std::mem::take(&mut s.lent);
        self.cond.notify_all();
        self.wake_ring();
        drop(s);
        drop(lent);
        first
    }

    /// Wakes a sender waiting for room in the ring: what it waits for may have changed.
    fn wake_ring(&self) {
        if let Some(Some(ring)) = self.ring.get() {
            ring.wake();
        }
    }

    fn wfd(&self) -> rustix::io::Result<BorrowedFd<'_>> {
        borrow(self.wfd)
    }

    fn rfd(&self) -> rustix::io::Result<BorrowedFd<'_>> {
        borrow(self.rfd)
    }

    fn write(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        self.write_vectored(&[IoSlice::new(data)], fds, Sent::Other)
    }

    /// Encodes and writes a frame that has no fds.
    fn write_frame(&self, id: u32, frame: &Frame) -> Result<(), ChannelError> {
        self.write_vectored(
            &[IoSlice::new(&wire::encode(id, frame))],
            &[],
            Sent::of(frame),
        )
    }

    /// Writes a whole frame, given in pieces. Frames from different threads never
    /// interleave. A full non-blocking fd is waited on with poll, never spun on, and for at
    /// most `ack_time`. `fds` go with the first byte of the frame (SCM_RIGHTS).
    fn write_vectored(
        &self,
        data: &[IoSlice<'_>],
        mut fds: &[BorrowedFd<'_>],
        sent: Sent,
    ) -> Result<(), ChannelError> {
        let mut order = self.write_lock.lock().unwrap();
        // Whatever follows on the socket comes after what is in the ring by now.
        let head = match self.ring.get() {
            Some(Some(ring)) => ring.head(),
            _ => order.after_sent,
        };
        let after = (head != order.after_sent).then(|| {
            order.after_sent = head;
            wire::encode(0, &Frame::After(head))
        });
        match sent {
            Sent::Item => order.items += 1,
            Sent::Ring => *order = WriteOrder::default(),
            Sent::Other => {}
        }
        let mut pieces: Vec<IoSlice<'_>> = after
            .iter()
            .map(|a| IoSlice::new(a))
            .chain(data.iter().map(|d| IoSlice::new(d)))
            .collect();
        let mut data = &mut pieces[..];
        let deadline = Instant::now() + self.ack_time;
        IoSlice::advance_slices(&mut data, 0);
        while !data.is_empty() {
            if let Some(e) = &self.lock().closed {
                return Err(e.clone());
            }
            let wfd = self.wfd().map_err(ChannelError::Io)?;
            let res = if self.wfd_is_socket {
                send_with_fds(wfd, data, fds)
            } else {
                write_without_sigpipe(wfd, data)
            };
            match res {
                Ok(n) => {
                    IoSlice::advance_slices(&mut data, n);
                    fds = &[];
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(ChannelError::Timeout(self.ack_time));
                    }
                    let mut fds = [
                        PollFd::new(&wfd, PollFlags::OUT),
                        PollFd::new(&self.stop, PollFlags::IN),
                    ];
                    let t = Timespec::try_from(deadline - now).ok();
                    match rustix::event::poll(&mut fds, t.as_ref()) {
                        Ok(_) | Err(Errno::INTR) => {}
                        Err(e) => return Err(ChannelError::Io(e)),
                    }
                }
                Err(Errno::PIPE | Errno::CONNRESET) => return Err(ChannelError::PeerClosed),
                Err(e) => return Err(ChannelError::Io(e)),
            }
        }
        Ok(())
    }

    fn read_loop(self: Arc<Self>, role: Role, chunk: usize, handler: Arc<dyn Handler>) {
        wire::value::limit_new_names(MAX_NEW_NAME_BYTES);
        let mut reader = FrameReader {
            inner: &self,
            buf: vec![0; chunk],
            start: 0,
            end: 0,
            fds: std::collections::VecDeque::new(),
            bodies: Arc::new(BodyPool::default()),
        };
        let error = loop {
            // A bug of ours that a peer's frame triggers must still end the link with an
            // error, not leave it without a reader.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                reader
                    .next()
                    .and_then(|f| self.dispatch(role, f, &*handler))
            }));
            match step {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break e,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    break ChannelError::Unexpected(format!(
                        "a frame made the reader fail ({what})"
                    ));
                }
            }
        };
        gst::debug!(CAT, "{}: reader ends: {error}", self.name);
        if self.close(error.clone()) {
            handler.closed(&error);
        }
    }

    fn dispatch(
        &self,
        role: Role,
        (header, frame): (Header, Frame),
        handler: &dyn Handler,
    ) -> Result<(), ChannelError> {
        gst::log!(
            CAT,
            "{}: {:?} id {}",
            self.name,
            header.frame_type,
            header.id
        );
        let mut s = self.lock();
        if s.peer.is_none() {
            let Frame::Hello(h) = frame else {
                return Err(ChannelError::Unexpected(
                    "the first frame was not a greeting".into(),
                ));
            };
            if h.version != PROTOCOL_VERSION {
                return Err(ChannelError::Incompatible(format!(
                    "protocol version {} (we speak {PROTOCOL_VERSION})",
                    h.version
                )));
            }
            if h.role != role.peer() {
                return Err(ChannelError::Incompatible(format!(
                    "the other end is an {}, which an {} cannot work with: connect it to an {}",
                    h.role.element(),
                    role.element(),
                    role.peer().element()
                )));
            }
            s.peer = Some(h);
            self.cond.notify_all();
            return Ok(());
        }
        match frame {
            Frame::Hello(_) => Err(ChannelError::Unexpected("a second greeting".into())),
            Frame::Release => match s.lent.remove(&header.id) {
                // Back to its pool, outside our lock.
                Some(buffer) => {
                    drop(s);
                    drop(buffer);
                    Ok(())
                }
                None => Err(ChannelError::Unexpected(format!(
                    "a release of buffer {}, which we did not lend",
                    header.id
                ))),
            },
            Frame::Reply(Reply::Flow(f)) => {
                // Buffers of the ring are answered only with an error, by a reply to id 0
                // (the id of every frame in the ring), after what the peer posted before it;
                // those on the socket each with a reply of its own.
                if header.id == 0 {
                    if !matches!(self.ring.get(), Some(Some(_))) {
                        return Err(ChannelError::Unexpected(
                            "a flow return for the ring, which we did not make".into(),
                        ));
                    }
                } else if s.in_flight == 0 {
                    return Err(ChannelError::Unexpected(
                        "a flow return for no buffer".into(),
                    ));
                } else {
                    s.in_flight -= 1;
                    let answered = s.in_flight_bytes.pop_front().unwrap_or(0);
                    s.copied -= answered;
                }
                // FLUSHING only says the slave dropped a buffer while a flush or a state
                // change was under way, which the master started itself: kept, it would fail
                // the first buffers after that flush (a reply can arrive after the reset).
                if let Err(e) = f.into_result()
                    && e != gst::FlowError::Flushing
                    && s.flow.is_none()
                {
                    s.flow = Some(e);
                }
                self.cond.notify_all();
                self.wake_ring();
                Ok(())
            }
            Frame::Reply(reply) => {
                let s = &mut *s;
                match s.pending.get_mut(&header.id) {
                    Some((expect, slot @ None)) if expect.takes(&reply) => *slot = Some(reply),
                    Some((expect, None)) => {
                        return Err(ChannelError::Unexpected(format!(
                            "{reply:?} in reply to request {}, which takes a {expect:?} reply",
                            header.id
                        )));
                    }
                    Some((_, Some(_))) => {
                        return Err(ChannelError::Unexpected(format!(
                            "a second reply to request {}",
                            header.id
                        )));
                    }
                    // The waiter gave up (timeout, flush): its late reply is not an error.
                    None if s.abandoned.remove(&header.id) => {}
                    None => {
                        return Err(ChannelError::Unexpected(format!(
                            "a reply to request {}, which was answered already or never made",
                            header.id
                        )));
                    }
                }
                self.cond.notify_all();
                Ok(())
            }
            frame => {
                drop(s);
                handler.frame(header.id, frame)
            }
        }
    }
}

/// Reads whole frames, buffering small ones and reading large bodies straight into their
/// own allocation.
struct FrameReader<'a> {
    inner: &'a Arc<Inner>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Fds received with the bytes read so far, in order, for the frames they came with.
    fds: std::collections::VecDeque<OwnedFd>,
    bodies: Arc<BodyPool>,
}

/// Bodies of at least this size are recycled: see [`BodyPool`].
const POOLED_BODY_MIN: usize = 256 * 1024;
/// Free bodies kept for reuse.
const POOLED_BODIES: usize = 4;
/// Larger bodies are not kept: a peer sending frames near the 256 MiB limit must not make us
/// hold a gigabyte once it stops (4K RGBA frames, 32 MiB, still fit).
const POOLED_BODY_MAX: usize = 64 << 20;

/// Recycles the allocations of large frame bodies, which become the memory of the buffers
/// pushed downstream. A fresh allocation of a few megabytes per video frame costs page faults
/// and zeroing that the copy out of the socket does not.
#[derive(Default)]
struct BodyPool(Mutex<Vec<Vec<u8>>>);

impl BodyPool {
    fn get(self: &Arc<Self>, len: usize) -> Body {
        let pooled = (POOLED_BODY_MIN..=POOLED_BODY_MAX).contains(&len);
        let reused = if pooled {
            let mut free = self.0.lock().unwrap();
            free.iter()
                .position(|b| b.len() == len)
                .map(|i| free.remove(i))
        } else {
            None
        };
        Body {
            data: reused.unwrap_or_else(|| vec![0; len]),
            home: pooled.then(|| Arc::downgrade(self)),
        }
    }
}

/// A frame body; a large one goes back to its pool when its last user is done with it.
struct Body {
    data: Vec<u8>,
    home: Option<std::sync::Weak<BodyPool>>,
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl AsMut<[u8]> for Body {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(pool) = self.home.as_ref().and_then(|h| h.upgrade()) {
            let mut free = pool.0.lock().unwrap();
            // The oldest goes first, so sizes from before a caps change do not stay.
            if free.len() == POOLED_BODIES {
                free.remove(0);
            }
            free.push(std::mem::take(&mut self.data));
        }
    }
}

impl FrameReader<'_> {
    fn next(&mut self) -> Result<(Header, Frame), ChannelError> {
        let mut h = [0u8; HEADER_LEN];
        self.read_exact(&mut h)?;
        let header = Header::decode(&h)?;
        let mut body = self.bodies.get(header.len as usize);
        self.read_exact(body.as_mut())?;
        // A frame's fds come with its first byte, so they are here by now.
        let n = header.n_fds as usize;
        if self.fds.len() < n {
            return Err(wire::WireError::UnexpectedFds.into());
        }
        let fds: Vec<OwnedFd> = self.fds.drain(..n).collect();
        // Lent memory is given back once freed; a stream's connection is simply ours.
        let lent = n > 0 && header.frame_type == wire::FrameType::Buffer;
        let guard = lent.then(|| Arc::new(Release(Arc::downgrade(self.inner), header.id)));
        let frame = wire::decode_with_fds(&header, body, fds, &mut |fd, kind, offset, size| {
            let mem = crate::memory::import(fd, kind, offset, size)
                .map_err(|e| wire::WireError::BadMemory(e.to_string()))?;
            release_when_freed(&mem, guard.clone().unwrap());
            Ok(mem)
        })?;
        Ok((header, frame))
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), ChannelError> {
        let mut done = 0;
        while done < out.len() {
            if self.start < self.end {
                let n = (self.end - self.start).min(out.len() - done);
                out[done..done + n].copy_from_slice(&self.buf[self.start..self.start + n]);
                self.start += n;
                done += n;
                continue;
            }
            let want = out.len() - done;
            if want >= self.buf.len() {
                done += self.receive(&mut out[done..])?;
            } else {
                let mut buf = std::mem::take(&mut self.buf);
                let r = self.receive(&mut buf);
                self.buf = buf;
                self.end = r?;
                self.start = 0;
            }
        }
        Ok(())
    }

    /// One read; on a socket that may carry fds, a recvmsg that keeps them.
    fn receive(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        if !self.inner.can_pass_fds {
            return self.read_some(|fd| rustix::io::read(fd, &mut buf[..]));
        }
        let mut received = Vec::new();
        let n = self.read_some(|fd| {
            use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
            let mut space =
                [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(wire::MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = rustix::net::recvmsg(
                fd,
                &mut [std::io::IoSliceMut::new(&mut buf[..])],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = msg {
                    received.extend(fds);
                }
            }
            // More fds than fit: the rest were closed by the kernel, the stream is broken.
            if r.flags.contains(ReturnFlags::CTRUNC) {
                return Err(Errno::MSGSIZE);
            }
            Ok(r.bytes)
        })?;
        self.fds.extend(received);
        if self.fds.len() > MAX_PENDING_FDS {
            return Err(ChannelError::Protocol(wire::WireError::UnexpectedFds));
        }
        Ok(n)
    }

    /// One read, after poll says there is something (or the stop fd fired). Works the same on
    /// blocking and non-blocking fds.
    fn read_some(
        &self,
        mut read: impl FnMut(BorrowedFd<'_>) -> rustix::io::Result<usize>,
    ) -> Result<usize, ChannelError> {
        loop {
            let rfd = self.inner.rfd().map_err(ChannelError::Io)?;
            let mut fds = [
                PollFd::new(&rfd, PollFlags::IN),
                PollFd::new(&self.inner.stop, PollFlags::IN),
            ];
            // A poll in progress keeps the socket open even after the application closed its
            // fd, so the peer would never see EOF: wake up now and then to notice the close.
            match rustix::event::poll(&mut fds, Some(&FD_CHECK_INTERVAL)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(ChannelError::Io(e)),
            }
            if !fds[1].revents().is_empty() {
                return Err(ChannelError::Disconnected);
            }
            let revents = fds[0].revents();
            if revents.contains(PollFlags::NVAL) {
                return Err(ChannelError::Io(Errno::BADF));
            }
            if revents.is_empty() {
                continue;
            }
            match read(rfd) {
                Ok(0) => return Err(ChannelError::PeerClosed),
                Ok(n) => return Ok(n),
                Err(Errno::INTR | Errno::AGAIN) => {}
                Err(Errno::CONNRESET) => return Err(ChannelError::PeerClosed),
                Err(e) => return Err(ChannelError::Io(e)),
            }
        }
    }
}

fn send_with_fds(
    fd: BorrowedFd<'_>,
    data: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> rustix::io::Result<usize> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space =
        [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(wire::MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::INVAL);
    }
    rustix::net::sendmsg(fd, data, &mut control, SendFlags::NOSIGNAL)
}

/// Tells the sender that the buffer it lent in frame `.1` is free. Every memory imported from
/// that frame holds the same guard; it is sent when the last of them is freed.
struct Release(std::sync::Weak<Inner>, u32);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            let _ = inner.write_frame(self.1, &Frame::Release);
        }
    }
}

fn release_when_freed(mem: &gst::Memory, guard: Arc<Release>) {
    unsafe extern "C" fn destroy(data: glib::ffi::gpointer) {
        drop(unsafe { Box::from_raw(data as *mut Arc<Release>) });
    }
    unsafe {
        gst::ffi::gst_mini_object_set_qdata(
            mem.as_ptr() as *mut gst::ffi::GstMiniObject,
            release_quark(),
            Box::into_raw(Box::new(guard)) as glib::ffi::gpointer,
            Some(destroy),
        );
    }
}

fn release_quark() -> glib::ffi::GQuark {
    static QUARK: std::sync::LazyLock<glib::Quark> =
        std::sync::LazyLock::new(|| glib::Quark::from_str("rsipcpipeline-release"));
    use gst::glib::translate::IntoGlib;
    QUARK.into_glib()
}

/// The fds belong to the application; -1 (not set) is refused before any syscall sees it.
fn borrow<'a>(fd: RawFd) -> rustix::io::Result<BorrowedFd<'a>> {
    if fd < 0 {
        return Err(Errno::BADF);
    }
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// `write()` on a pipe whose reader is gone raises SIGPIPE, and MSG_NOSIGNAL exists only for
/// sockets. Block the signal in this thread for the write, and swallow the one the write
/// raised, so the process survives with SIGPIPE at its default disposition. The signal may
/// come with a partial write that returns success (the reader died while we were blocked),
/// so what decides is whether it became pending, not what write() returned.
fn write_without_sigpipe(fd: BorrowedFd<'_>, data: &[IoSlice<'_>]) -> rustix::io::Result<usize> {
    unsafe {
        let mut pipe_set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        let sigpipe_pending = || {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE) == 1
        };
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old);
        // One raised by someone else before us is theirs to receive.
        let already_pending = sigpipe_pending();
        let res = rustix::io::writev(fd, data);
        if !already_pending && sigpipe_pending() {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            while libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) == -1
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        res
    }
}
