// SPDX-License-Identifier: MPL-2.0
//! Frames: the header and the body of each frame type.

use gst::glib::translate::*;

use std::os::fd::OwnedFd;

use super::codec::{Reader, Writer};
use super::objects::{decode_context, encode_context};
use super::value::{decode_structure, encode_structure};
use super::{WireError, check, metas};
use crate::memory::{self, FdKind};

pub const HEADER_LEN: usize = 12;
/// Largest body accepted: room for an uncompressed 8K RGBA frame with headroom.
pub const MAX_BODY_LEN: usize = 256 << 20;
pub const MAGIC: [u8; 4] = *b"GIPC";
pub const PROTOCOL_VERSION: u16 = 1;
/// Fds attached to one frame: one per memory of a buffer.
pub const MAX_FDS: usize = 16;
/// Memories in one buffer.
pub const MAX_MEMORIES: usize = 64;

/// Feature bits exchanged in [`Hello`]; an optional feature is used only when both sides set it.
pub mod features {
    /// fd-backed memory crosses as the fd (SCM_RIGHTS), over a unix socket.
    pub const FD_MEMORY: u64 = 1 << 0;
    /// Small buffers cross through a ring in shared memory (see `ring.rs`): the sender
    /// makes it and sends it in a RING frame; over a unix socket only.
    pub const RING: u64 = 1 << 1;
    /// What this build implements.
    pub const SUPPORTED: u64 = FD_MEMORY | RING;
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    Hello = 1,
    Buffer = 2,
    Event = 3,
    Query = 4,
    StateChange = 5,
    StateLost = 6,
    Message = 7,
    Reply = 8,
    Context = 9,
    /// The receiver let go of the fd memory of the buffer sent with this frame's id.
    Release = 10,
    Clock = 11,
    /// A further stream of an upstream slave, on a connection of its own whose master end
    /// is the frame's one fd.
    Stream = 12,
    /// The shared ring of small buffers (its one fd, a memfd), made by the sending end.
    Ring = 13,
    /// The frames for the stream that follow come after the ring's entries up to here.
    After = 14,
}

impl TryFrom<u8> for FrameType {
    type Error = WireError;
    fn try_from(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            1 => FrameType::Hello,
            2 => FrameType::Buffer,
            3 => FrameType::Event,
            4 => FrameType::Query,
            5 => FrameType::StateChange,
            6 => FrameType::StateLost,
            7 => FrameType::Message,
            8 => FrameType::Reply,
            9 => FrameType::Context,
            10 => FrameType::Release,
            11 => FrameType::Clock,
            12 => FrameType::Stream,
            13 => FrameType::Ring,
            14 => FrameType::After,
            _ => return Err(WireError::UnknownFrameType(v)),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub frame_type: FrameType,
    pub flags: u8,
    pub n_fds: u16,
    pub id: u32,
}

impl Header {
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let mut r = Reader::new(b);
        let len = r.u32()?;
        let frame_type = FrameType::try_from(r.u8()?)?;
        let flags = r.u8()?;
        let n_fds = r.u16()?;
        let id = r.u32()?;
        if len as usize > MAX_BODY_LEN {
            return Err(WireError::TooLong {
                what: "frame",
                len: len as usize,
                max: MAX_BODY_LEN,
            });
        }
        // Only buffers lend memory as fds; a stream brings its connection.
        let fds_ok = match frame_type {
            FrameType::Buffer => n_fds as usize <= MAX_FDS,
            FrameType::Stream | FrameType::Ring => n_fds == 1,
            _ => n_fds == 0,
        };
        if !fds_ok {
            return Err(WireError::UnexpectedFds);
        }
        Ok(Header {
            len,
            frame_type,
            flags,
            n_fds,
            id,
        })
    }
}

/// Which end of the link an element is: which way the stream goes, and which end drives the
/// other. The protocol is symmetric; the role only catches ends that cannot work together
/// (two sinks, or a downstream master with an upstream slave) wired to each other.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The master that sends the stream to a slave downstream (rsipcpipelinesink).
    Sender = 0,
    /// The slave that pushes the master's stream into its pipeline (rsipcpipelinesrc).
    Receiver = 1,
    /// The master that pushes the stream of a slave upstream (rsipcupstreamsrc).
    UpstreamReceiver = 2,
    /// The slave that sends its pipeline's stream to the master (rsipcupstreamsink).
    UpstreamSender = 3,
}

impl Role {
    /// The only role this one works with.
    pub fn peer(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
            Role::UpstreamReceiver => Role::UpstreamSender,
            Role::UpstreamSender => Role::UpstreamReceiver,
        }
    }

    /// The element that takes this role, for messages.
    pub fn element(self) -> &'static str {
        match self {
            Role::Sender => "rsipcpipelinesink",
            Role::Receiver => "rsipcpipelinesrc",
            Role::UpstreamReceiver => "rsipcupstreamsrc",
            Role::UpstreamSender => "rsipcupstreamsink",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub role: Role,
    pub features: u64,
}

/// Where the receiver delivers an event or query.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Through the receiving element's pad, continuing the direction it travelled in.
    Pad = 0,
    /// To the receiving side's whole pipeline, as a bin hands element events and queries to
    /// its children (seek, position, duration, ...).
    Element = 1,
}

/// The clocks a pipeline can run on, as far as the other process can know them. The system
/// clocks read the same kernel clock in every process of the host; any other clock (an audio
/// device's, a network clock) is followed through [`ClockInfo::sample`]s.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockKind {
    /// The pipeline runs without a clock.
    None = 0,
    Monotonic = 1,
    Realtime = 2,
    Tai = 3,
    Other = 4,
    /// The clock that the receiving side's own pipeline provides (an audio sink in the
    /// slave): the master runs on a copy of it, and the slave on the original.
    Peer = 5,
}

/// A clock and where running time starts on it. The master's sink sends its own before every
/// change to PLAYING and whenever its base time changes, and for an [`ClockKind::Other`]
/// clock also now and then while playing, so the slave can follow its rate. The slave sends
/// samples of the clock its pipeline provides when the master runs on a copy of it. No
/// reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    pub kind: ClockKind,
    pub base_time: Option<gst::ClockTime>,
    /// The clock's time and CLOCK_MONOTONIC read at the same moment (ns).
    pub sample: Option<(gst::ClockTime, u64)>,
}

/// A message from the peer's pipeline. It is rebuilt with the receiving element as its source,
/// so that bins handle it as one of their own; `origin` keeps the path of the element that
/// really posted it.
#[derive(Debug)]
pub struct RemoteMessage {
    pub type_: gst::MessageType,
    pub seqnum: u32,
    pub origin: String,
    pub structure: Option<gst::Structure>,
}

impl RemoteMessage {
    /// The message as `src` posts it.
    pub fn into_message(self, src: &gst::Object) -> gst::Message {
        super::objects::new_message(self.type_, self.seqnum, self.structure, Some(src))
    }
}

#[derive(Debug)]
pub enum Reply {
    Bool(bool),
    Flow(gst::FlowReturn),
    State(gst::StateChangeReturn),
    Query {
        result: bool,
        structure: Option<gst::Structure>,
    },
}

#[derive(Debug)]
pub enum Frame {
    Hello(Hello),
    Buffer(gst::Buffer),
    Event {
        target: Target,
        event: gst::Event,
    },
    Query {
        target: Target,
        query: gst::Query,
    },
    StateChange {
        from: gst::State,
        to: gst::State,
        /// The master's upstream is live: the slave's src then acts as a live source, and
        /// the slave pipeline does not wait for a preroll (NO_PREROLL), as in one pipeline.
        live: bool,
    },
    StateLost,
    Message(RemoteMessage),
    Reply(Reply),
    /// A context the master pipeline gives its sink (`gst_element_set_context`), for the
    /// slave pipeline to hand to its elements as a bin does. No reply.
    Context(gst::Context),
    Release,
    Clock(ClockInfo),
    /// The master's end of the connection of a further stream (a unix socket).
    Stream(OwnedFd),
    /// The sender's ring: a memfd and the bytes of entries it holds.
    Ring {
        fd: OwnedFd,
        capacity: u32,
    },
    /// A position in the ring (see [`FrameType::After`]).
    After(u64),
}

impl Frame {
    /// Whether the receiving end of a stream pushes this frame in stream order (queued
    /// behind the buffers before it): buffers, and serialized events and queries for its
    /// pad, flushes excepted.
    pub fn is_stream_item(&self) -> bool {
        match self {
            Frame::Buffer(_) => true,
            Frame::Event {
                target: Target::Pad,
                event,
            } => {
                event.is_downstream()
                    && event.is_serialized()
                    && !matches!(
                        event.type_(),
                        gst::EventType::FlushStart | gst::EventType::FlushStop
                    )
            }
            Frame::Query {
                target: Target::Pad,
                query,
            } => query.is_downstream() && query.is_serialized(),
            _ => false,
        }
    }

    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Buffer(_) => FrameType::Buffer,
            Frame::Event { .. } => FrameType::Event,
            Frame::Query { .. } => FrameType::Query,
            Frame::StateChange { .. } => FrameType::StateChange,
            Frame::StateLost => FrameType::StateLost,
            Frame::Message(_) => FrameType::Message,
            Frame::Reply(_) => FrameType::Reply,
            Frame::Context(_) => FrameType::Context,
            Frame::Release => FrameType::Release,
            Frame::Clock(_) => FrameType::Clock,
            Frame::Stream(_) => FrameType::Stream,
            Frame::Ring { .. } => FrameType::Ring,
            Frame::After(_) => FrameType::After,
        }
    }
}

/// Serialises a frame, header included, ready to be written in one go.
pub fn encode(id: u32, frame: &Frame) -> Vec<u8> {
    let body_hint = match frame {
        Frame::Buffer(b) => 48 + b.size(),
        _ => 256,
    };
    let mut w = Writer::with_capacity(HEADER_LEN + body_hint);
    w.raw(&[0; HEADER_LEN]);
    match frame {
        Frame::Hello(h) => {
            w.raw(&MAGIC);
            w.u16(h.version);
            w.u8(h.role as u8);
            w.u64(h.features);
        }
        Frame::Buffer(b) => return encode_buffer(id, b, false).to_vec(),
        Frame::Event { target, event } => {
            w.u8(*target as u8);
            w.u32(event.type_().into_glib() as u32);
            w.u32(unsafe { gst::ffi::gst_event_get_seqnum(event.as_mut_ptr()) });
            w.i64(event.running_time_offset());
            put_structure(&mut w, event.structure());
        }
        Frame::Query { target, query } => {
            w.u8(*target as u8);
            w.u32(query.type_().into_glib() as u32);
            put_structure(&mut w, query.structure());
        }
        Frame::StateChange { from, to, live } => {
            w.u8(from.into_glib() as u8);
            w.u8(to.into_glib() as u8);
            w.bool(*live);
        }
        Frame::StateLost | Frame::Release | Frame::Stream(_) => {}
        Frame::Ring { capacity, .. } => w.u32(*capacity),
        Frame::After(position) => w.u64(*position),
        Frame::Context(c) => encode_context(&mut w, c),
        Frame::Clock(c) => {
            w.u8(c.kind as u8);
            w.u64(c.base_time.into_glib());
            w.bool(c.sample.is_some());
            if let Some((time, monotonic)) = c.sample {
                w.u64(time.nseconds());
                w.u64(monotonic);
            }
        }
        Frame::Message(m) => {
            w.u32(m.type_.into_glib());
            w.u32(m.seqnum);
            w.str(&m.origin);
            put_structure(&mut w, m.structure.as_deref());
        }
        Frame::Reply(r) => match r {
            Reply::Bool(b) => {
                w.u8(0);
                w.bool(*b);
            }
            Reply::Flow(f) => {
                w.u8(1);
                w.i32(f.into_glib());
            }
            Reply::State(s) => {
                w.u8(2);
                w.i32(s.into_glib());
            }
            Reply::Query { result, structure } => {
                w.u8(3);
                w.bool(*result);
                put_structure(&mut w, structure.as_deref());
            }
        },
    }
    if let Frame::Stream(_) = frame {
        return encode_stream(id);
    }
    let mut out = w.into_inner();
    finish_header(&mut out, id, frame.frame_type());
    if let Frame::Ring { .. } = frame {
        out[6..8].copy_from_slice(&1u16.to_le_bytes());
    }
    out
}

/// A [`Frame::Stream`]: no body; its one fd goes with the frame's first byte.
pub fn encode_stream(id: u32) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    finish_header(&mut out, id, FrameType::Stream);
    out[6..8].copy_from_slice(&1u16.to_le_bytes());
    out
}

/// Inline memory at least this large is written from the buffer's own mapping rather than
/// copied into the frame first: one copy (into the socket) instead of two.
pub const SPLICE_MIN: usize = 16 * 1024;

/// A buffer frame ready to write: the frame's bytes with each large inline memory left out,
/// and those memories, mapped, with the place in `head` they go. [`Self::slices`] puts them
/// back in order for one vectored write.
pub struct EncodedBuffer<'a> {
    pub head: Vec<u8>,
    splices: Vec<(usize, gst::memory::MemoryMap<'a, gst::memory::Readable>)>,
    pub fds: Vec<std::os::fd::BorrowedFd<'a>>,
}

impl EncodedBuffer<'_> {
    pub fn slices(&self) -> Vec<std::io::IoSlice<'_>> {
        let mut out = Vec::with_capacity(1 + 2 * self.splices.len());
        let mut at = 0;
        for (pos, map) in &self.splices {
            out.push(std::io::IoSlice::new(&self.head[at..*pos]));
            out.push(std::io::IoSlice::new(map.as_slice()));
            at = *pos;
        }
        out.push(std::io::IoSlice::new(&self.head[at..]));
        out
    }

    /// Says the buffer has `flags`: those of the buffer it is a copy of (a pool's buffer
    /// cannot take them all: a pool drops a buffer tagged as having new memory).
    pub fn set_flags(&mut self, flags: gst::BufferFlags) {
        const AT: usize = HEADER_LEN + 5 * 8;
        self.head[AT..AT + 4].copy_from_slice(&flags.bits().to_le_bytes());
    }

    /// The whole frame in one allocation.
    pub fn to_vec(&self) -> Vec<u8> {
        self.slices()
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }
}

/// Encodes a buffer frame. With `lend_fds`, memory backed by an fd (memfd, dmabuf) is sent
/// as a reference to that fd, which the caller attaches to the frame in the returned order
/// (at most [`MAX_FDS`]); everything else is carried in the frame.
pub fn encode_buffer(id: u32, b: &gst::BufferRef, lend_fds: bool) -> EncodedBuffer<'_> {
    let mut w = Writer::with_capacity(HEADER_LEN + 64);
    w.raw(&[0; HEADER_LEN]);
    for v in [b.pts(), b.dts(), b.duration()] {
        w.u64(v.into_glib());
    }
    w.u64(b.offset());
    w.u64(b.offset_end());
    w.u32(b.flags().bits());
    metas::encode(&mut w, b);
    let mut fds = Vec::new();
    let mut splices = Vec::new();
    let mut spliced = 0;
    let n = b.n_memory().min(MAX_MEMORIES);
    w.len32(n);
    for mem in (0..n).map(|i| b.peek_memory(i)) {
        match memory::export(mem).filter(|_| lend_fds && fds.len() < MAX_FDS) {
            Some(e) => {
                w.u8(e.kind as u8);
                w.u64(e.offset);
                w.u64(e.size);
                fds.push(e.fd);
            }
            None => {
                w.u8(0);
                match mem.map_readable() {
                    Ok(m) if m.size() >= SPLICE_MIN => {
                        w.len32(m.size());
                        spliced += m.size();
                        splices.push((w.len(), m));
                    }
                    Ok(m) => w.bytes(m.as_slice()),
                    Err(_) => w.bytes(&[]),
                }
            }
        }
    }
    let mut head = w.into_inner();
    finish_header(&mut head, id, FrameType::Buffer);
    let len = (head.len() - HEADER_LEN + spliced) as u32;
    head[0..4].copy_from_slice(&len.to_le_bytes());
    head[6..8].copy_from_slice(&(fds.len() as u16).to_le_bytes());
    EncodedBuffer { head, splices, fds }
}

fn finish_header(out: &mut [u8], id: u32, t: FrameType) {
    let len = (out.len() - HEADER_LEN) as u32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4] = t as u8;
    out[5] = 0;
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&id.to_le_bytes());
}

/// Turns an fd that came with a frame into memory: what the channel does with
/// [`crate::memory::import`], plus the bookkeeping that tells the sender when it is free.
pub type FdImporter<'a> =
    &'a mut dyn FnMut(OwnedFd, FdKind, u64, u64) -> Result<gst::Memory, WireError>;

fn put_structure(w: &mut Writer, s: Option<&gst::StructureRef>) {
    match s {
        Some(s) => {
            w.bool(true);
            encode_structure(w, s);
        }
        None => w.bool(false),
    }
}

fn get_structure(r: &mut Reader) -> Result<Option<gst::Structure>, WireError> {
    if r.bool()? {
        decode_structure(r, 1).map(Some)
    } else {
        Ok(None)
    }
}

fn bad(what: &'static str, value: i64) -> WireError {
    WireError::BadEnum { what, value }
}

fn get_state(r: &mut Reader) -> Result<gst::State, WireError> {
    match r.u8()? {
        1 => Ok(gst::State::Null),
        2 => Ok(gst::State::Ready),
        3 => Ok(gst::State::Paused),
        4 => Ok(gst::State::Playing),
        v => Err(bad("state", v as i64)),
    }
}

fn get_clock_time(r: &mut Reader) -> Result<Option<gst::ClockTime>, WireError> {
    let v = r.u64()?;
    Ok(unsafe { from_glib(v) })
}

/// Decodes a body that came without fds. `body` is taken by value so that buffer payloads
/// become GstMemory without another copy.
pub fn decode(header: &Header, body: Vec<u8>) -> Result<Frame, WireError> {
    decode_with_fds(header, body, Vec::new(), &mut |_, _, _, _| {
        Err(WireError::UnexpectedFds)
    })
}

/// Decodes a body and the fds that came with it: each fd reference of a buffer takes the next
/// fd, and every fd must be taken.
pub fn decode_with_fds<B>(
    header: &Header,
    body: B,
    fds: Vec<OwnedFd>,
    import: FdImporter<'_>,
) -> Result<Frame, WireError>
where
    B: AsRef<[u8]> + AsMut<[u8]> + Send + 'static,
{
    check::init();
    if fds.len() != header.n_fds as usize {
        return Err(WireError::UnexpectedFds);
    }
    if body.as_ref().len() != header.len as usize {
        return Err(WireError::Truncated {
            wanted: header.len as usize,
            available: body.as_ref().len(),
        });
    }
    let mut r = Reader::new(body.as_ref());
    let frame = match header.frame_type {
        FrameType::Hello => {
            if r.take(4)? != MAGIC {
                return Err(WireError::BadMagic);
            }
            let version = r.u16()?;
            let role = match r.u8()? {
                0 => Role::Sender,
                1 => Role::Receiver,
                2 => Role::UpstreamReceiver,
                3 => Role::UpstreamSender,
                v => return Err(bad("role", v as i64)),
            };
            Frame::Hello(Hello {
                version,
                role,
                features: r.u64()?,
            })
        }
        FrameType::Buffer => {
            let pts = get_clock_time(&mut r)?;
            let dts = get_clock_time(&mut r)?;
            let duration = get_clock_time(&mut r)?;
            let offset = r.u64()?;
            let offset_end = r.u64()?;
            let flags = gst::BufferFlags::from_bits_truncate(r.u32()?);
            let metas = metas::decode(&mut r)?;
            let n = r.count(MAX_MEMORIES, 1)?;
            // Inline data stays in `body`; each region becomes a share of it.
            let mut regions = Vec::with_capacity(n);
            let mut fds = fds.into_iter();
            for _ in 0..n {
                match r.u8()? {
                    0 => {
                        let len = r.u32()? as usize;
                        let start = r.position();
                        r.take(len)?;
                        regions.push(Region::Inline(start, len));
                    }
                    k => {
                        let kind = FdKind::from_u8(k).ok_or(bad("memory kind", k as i64))?;
                        let (offset, size) = (r.u64()?, r.u64()?);
                        let fd = fds.next().ok_or(WireError::UnexpectedFds)?;
                        regions.push(Region::Fd(fd, kind, offset, size));
                    }
                }
            }
            r.finish()?;
            if fds.next().is_some() {
                return Err(WireError::UnexpectedFds);
            }
            let mut buffer = gst::Buffer::new();
            let b = buffer.get_mut().unwrap();
            let inline = regions
                .iter()
                .any(|r| matches!(r, Region::Inline(_, l) if *l > 0));
            let body = inline.then(|| gst::Memory::from_mut_slice(body));
            for region in regions {
                match region {
                    Region::Inline(_, 0) => {}
                    Region::Inline(start, len) => {
                        b.append_memory(body.as_ref().unwrap().share(start..start + len));
                    }
                    Region::Fd(fd, kind, offset, size) => {
                        b.append_memory(import(fd, kind, offset, size)?)
                    }
                }
            }
            b.set_pts(pts);
            b.set_dts(dts);
            b.set_duration(duration);
            b.set_offset(offset);
            b.set_offset_end(offset_end);
            // Exactly the sender's flags: appending memory tagged this buffer.
            b.unset_flags(gst::BufferFlags::all());
            b.set_flags(flags);
            metas::attach(b, metas)?;
            return Ok(Frame::Buffer(buffer));
        }
        FrameType::Event => {
            let target = get_target(&mut r)?;
            let raw_type = r.u32()? as i32;
            let t: gst::EventType = unsafe { from_glib(raw_type) };
            if matches!(t, gst::EventType::__Unknown(_)) {
                return Err(bad("event type", raw_type as i64));
            }
            let seqnum = r.u32()?;
            let rto = r.i64()?;
            let s = get_structure(&mut r)?;
            let mut event: gst::Event = unsafe {
                from_glib_full(gst::ffi::gst_event_new_custom(
                    raw_type,
                    s.map(|s| s.into_glib_ptr()).unwrap_or(std::ptr::null_mut()),
                ))
            };
            {
                let e = event.make_mut();
                if seqnum != 0 {
                    unsafe { gst::ffi::gst_event_set_seqnum(e.as_mut_ptr(), seqnum) };
                }
                e.set_running_time_offset(rto);
            }
            check::event(&event)?;
            Frame::Event { target, event }
        }
        FrameType::Query => {
            let target = get_target(&mut r)?;
            let raw_type = r.u32()? as i32;
            let t: gst::QueryType = unsafe { from_glib(raw_type) };
            if matches!(t, gst::QueryType::__Unknown(_)) {
                return Err(bad("query type", raw_type as i64));
            }
            let s = get_structure(&mut r)?;
            let query: gst::Query = unsafe {
                from_glib_full(gst::ffi::gst_query_new_custom(
                    raw_type,
                    s.map(|s| s.into_glib_ptr()).unwrap_or(std::ptr::null_mut()),
                ))
            };
            check::query(&query)?;
            Frame::Query { target, query }
        }
        FrameType::StateChange => {
            let from = get_state(&mut r)?;
            let to = get_state(&mut r)?;
            if (from.into_glib() - to.into_glib()).abs() > 1 {
                return Err(bad(
                    "state change",
                    ((from.into_glib() << 3) | to.into_glib()) as i64,
                ));
            }
            let live = r.bool()?;
            Frame::StateChange { from, to, live }
        }
        FrameType::StateLost => Frame::StateLost,
        FrameType::Release => Frame::Release,
        FrameType::Stream => {
            let fd = fds.into_iter().next().ok_or(WireError::UnexpectedFds)?;
            let st = rustix::fs::fstat(&fd).map_err(|e| WireError::BadMemory(e.to_string()))?;
            if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_socket() {
                return Err(WireError::NotASocket);
            }
            // Frames are read as a byte stream, and nothing but a local peer may answer.
            let unix = rustix::net::sockopt::socket_domain(&fd)
                .is_ok_and(|d| d == rustix::net::AddressFamily::UNIX);
            let stream = rustix::net::sockopt::socket_type(&fd)
                .is_ok_and(|t| t == rustix::net::SocketType::STREAM);
            if !unix || !stream {
                return Err(WireError::NotAUnixStream);
            }
            Frame::Stream(fd)
        }
        FrameType::Ring => Frame::Ring {
            fd: fds.into_iter().next().ok_or(WireError::UnexpectedFds)?,
            capacity: r.u32()?,
        },
        FrameType::After => Frame::After(r.u64()?),
        FrameType::Context => Frame::Context(decode_context(&mut r, 1)?),
        FrameType::Clock => {
            let k = r.u8()?;
            let kind = match k {
                0 => ClockKind::None,
                1 => ClockKind::Monotonic,
                2 => ClockKind::Realtime,
                3 => ClockKind::Tai,
                4 => ClockKind::Other,
                5 => ClockKind::Peer,
                _ => return Err(bad("clock kind", k as i64)),
            };
            let base_time = get_clock_time(&mut r)?;
            let sample = if r.bool()? {
                let time = get_clock_time(&mut r)?.ok_or(bad("clock sample", -1))?;
                // CLOCK_MONOTONIC, read as a clock time by the receiver: never NONE.
                let monotonic = get_clock_time(&mut r)?.ok_or(bad("clock sample", -1))?;
                Some((time, monotonic.nseconds()))
            } else {
                None
            };
            Frame::Clock(ClockInfo {
                kind,
                base_time,
                sample,
            })
        }
        FrameType::Message => {
            let raw_type = r.u32()?;
            let type_: gst::MessageType = unsafe { from_glib(raw_type) };
            if matches!(type_, gst::MessageType::__Unknown(_)) {
                return Err(bad("message type", raw_type as i64));
            }
            if check::stays_local(type_) {
                return Err(WireError::StaysLocal(type_));
            }
            let seqnum = r.u32()?;
            let origin = r.str()?.to_owned();
            let structure = get_structure(&mut r)?;
            check::message(type_, structure.as_deref())?;
            Frame::Message(RemoteMessage {
                type_,
                seqnum,
                origin,
                structure,
            })
        }
        FrameType::Reply => Frame::Reply(match r.u8()? {
            0 => Reply::Bool(r.bool()?),
            1 => {
                let v = r.i32()?;
                if !(-6..=0).contains(&v) {
                    return Err(bad("flow return", v as i64));
                }
                Reply::Flow(unsafe { from_glib(v) })
            }
            2 => {
                let v = r.i32()?;
                if !(0..=3).contains(&v) {
                    return Err(bad("state change return", v as i64));
                }
                Reply::State(unsafe { from_glib(v) })
            }
            3 => Reply::Query {
                result: r.bool()?,
                structure: get_structure(&mut r)?,
            },
            v => return Err(bad("reply kind", v as i64)),
        }),
    };
    r.finish()?;
    Ok(frame)
}

/// Where one memory of a buffer frame is: inline in the body (start, length), or an fd.
enum Region {
    Inline(usize, usize),
    Fd(OwnedFd, FdKind, u64, u64),
}

fn get_target(r: &mut Reader) -> Result<Target, WireError> {
    match r.u8()? {
        0 => Ok(Target::Pad),
        1 => Ok(Target::Element),
        v => Err(bad("target", v as i64)),
    }
}
