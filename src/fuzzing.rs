// SPDX-License-Identifier: MPL-2.0
//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not an API). Each takes
//! bytes a hostile peer could send and goes through the code that handles them for real: it
//! may return an error, never panic, hang, leak or crash.

use std::os::fd::OwnedFd;

use crate::wire::codec::Reader;
use crate::wire::{self, FrameType, HEADER_LEN, Header, value};

/// GStreamer and the plugin, once.
pub fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        crate::plugin_register_static().unwrap();
        // Whatever a peer makes GLib or GStreamer complain about is a finding: a critical
        // means something was passed that should have been refused first.
        gst::glib::log_set_always_fatal(
            gst::glib::LogLevels::LEVEL_CRITICAL | gst::glib::LogLevels::LEVEL_WARNING,
        );
    });
}

/// A header and a body, as the reader gets them.
pub fn frame(data: &[u8]) {
    let Some((head, body)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    if let Ok(header) = Header::decode(head) {
        read_decoded(wire::decode(&header, body.to_vec()));
    }
}

/// Reads a decoded event, query or message field by field, as the elements and applications
/// that get it do.
fn read_decoded(frame: Result<wire::Frame, wire::WireError>) {
    static SOURCE: std::sync::LazyLock<gst::Object> =
        std::sync::LazyLock::new(|| gst::Bin::new().upcast());
    use gst::prelude::*;
    match frame {
        Ok(wire::Frame::Event { event, .. }) => read_event(&event),
        Ok(wire::Frame::Query { query, .. }) => read_query(&query),
        Ok(wire::Frame::Message(m)) => read_as_an_application(&m.into_message(&SOURCE)),
        _ => {}
    }
}

fn read_event(event: &gst::EventRef) {
    let _ = format!("{:?}", event.view());
}

fn read_query(query: &gst::QueryRef) {
    let _ = format!("{:?}", query.view());
}

/// A body of frame type `t` (any of [`FrameType`]), with a header that fits it.
pub fn body_of(t: FrameType, data: &[u8]) {
    let mut head = [0u8; HEADER_LEN];
    head[0..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
    head[4] = t as u8;
    if let Ok(header) = Header::decode(&head) {
        read_decoded(wire::decode(&header, data.to_vec()));
    }
}

/// One payload decoder, chosen by the first byte: a value, a structure, caps, a tag list, a
/// segment, a stream, a stream collection, a TOC, a context, a message, buffering ranges.
pub fn payload(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let mut r = Reader::new(rest);
    let _ = match which % 11 {
        0 => value::decode_value(&mut r, 0).map(drop),
        1 => value::decode_structure(&mut r, 0).map(drop),
        2 => value::decode_caps(&mut r, 0).map(drop),
        3 => value::decode_tag_list(&mut r, 0).map(drop),
        4 => value::decode_segment(&mut r).map(drop),
        5 => wire::objects::decode_stream(&mut r, 0).map(drop),
        6 => wire::objects::decode_collection(&mut r, 0).map(drop),
        7 => wire::objects::decode_toc(&mut r, 0).map(drop),
        8 => wire::objects::decode_context(&mut r, 0).map(drop),
        9 => wire::objects::decode_message(&mut r, 0).map(drop),
        _ => wire::objects::decode_ranges(&mut r).map(drop),
    };
}

/// Buffer metas: decoded, then attached to a buffer whose size the first two bytes give.
pub fn metas(data: &[u8]) {
    let Some((size, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut r = Reader::new(rest);
    if let Ok(decoded) = wire::metas::decode(&mut r) {
        let mut buffer = gst::Buffer::with_size(u16::from_le_bytes(*size) as usize).unwrap();
        let _ = wire::metas::attach(buffer.get_mut().unwrap(), decoded);
    }
}

/// A buffer frame body and the fds that come with it: the first byte says how many (at most
/// [`wire::MAX_FDS`]), each next byte which kind of fd and its size: a sealed memfd, an
/// unsealed one, a memfd whose seals stop growth but not shrinking, /dev/null, a directory,
/// a socket, a pipe. Every fd is checked before use and closed whatever happens.
pub fn buffer_with_fds(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % (wire::MAX_FDS + 1)).min(rest.len());
    let (kinds, body) = rest.split_at(n);
    let fds: Vec<OwnedFd> = kinds.iter().filter_map(|&k| peer_fd(k)).collect();
    let mut head = [0u8; HEADER_LEN];
    head[0..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    head[4] = FrameType::Buffer as u8;
    head[6..8].copy_from_slice(&(fds.len() as u16).to_le_bytes());
    let Ok(header) = Header::decode(&head) else {
        return;
    };
    let _ = wire::decode_with_fds(
        &header,
        body.to_vec(),
        fds,
        &mut |fd, kind, offset, size| {
            crate::memory::import(fd, kind, offset, size)
                .map_err(|e| wire::WireError::BadMemory(e.to_string()))
        },
    );
}

fn peer_fd(k: u8) -> Option<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let size = (k as u64 >> 3) * 4096;
    let memfd = |seals: SealFlags| {
        let fd = rustix::fs::memfd_create("fuzz", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .ok()?;
        rustix::fs::ftruncate(&fd, size).ok()?;
        if !seals.is_empty() {
            rustix::fs::fcntl_add_seals(&fd, seals).ok()?;
        }
        Some(fd)
    };
    match k & 7 {
        0 => memfd(SealFlags::SHRINK | SealFlags::SEAL),
        1 => memfd(SealFlags::empty()),
        2 => memfd(SealFlags::GROW),
        3 => std::fs::File::open("/dev/null").ok().map(OwnedFd::from),
        4 => std::fs::File::open("/").ok().map(OwnedFd::from),
        5 => rustix::net::socket(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            None,
        )
        .ok(),
        6 => rustix::pipe::pipe().ok().map(|(r, _)| r),
        _ => memfd(SealFlags::SHRINK),
    }
}

/// The element a session target drives.
#[derive(Clone, Copy, Debug)]
pub enum Element {
    /// rsipcpipelinesrc in a slave pipeline: the input plays the master.
    Src,
    /// rsipcpipelinesink in a playing master: the input plays the slave.
    Sink,
    /// rsipcupstreamsrc in a playing master: the input plays an upstream slave.
    UpstreamSrc,
    /// rsipcupstreamsink in a slave pipeline: the input plays the master.
    UpstreamSink,
}

/// A whole session with a real element, as a hostile peer would run it: the greeting, then
/// `data` as it comes, then the end of the connection. The element must report one ERROR at
/// the end and go to NULL at once.
pub fn session(element: Element, data: &[u8]) {
    use gst::prelude::*;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    init();
    let (ours, peer) = crate::launcher::socketpair().unwrap();
    let (description, peer_role) = match element {
        Element::Src => (
            "rsipcslavepipeline.( rsipcpipelinesrc name=e ack-time=200000 ! fakesink )",
            wire::Role::Sender,
        ),
        Element::Sink => (
            "audiotestsrc num-buffers=3 ! rsipcpipelinesink name=e ack-time=200000",
            wire::Role::Receiver,
        ),
        Element::UpstreamSrc => (
            "rsipcupstreamsrc name=e ack-time=200000 ! fakesink",
            wire::Role::UpstreamSender,
        ),
        Element::UpstreamSink => (
            "rsipcslavepipeline.( audiotestsrc num-buffers=3 ! \
             rsipcupstreamsink name=e ack-time=200000 )",
            wire::Role::UpstreamReceiver,
        ),
    };
    let master = matches!(element, Element::Sink | Element::UpstreamSrc);
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    // The end of the connection is reported even while the slave pipeline is in NULL.
    pipeline.set_auto_flush_bus(false);
    let e = pipeline.by_name("e").unwrap();
    let mut bytes = wire::encode(
        0,
        &wire::Frame::Hello(wire::Hello {
            version: wire::PROTOCOL_VERSION,
            role: peer_role,
            features: 0,
        }),
    );
    bytes.extend_from_slice(data);
    let writer = std::thread::spawn(move || {
        let mut off = 0;
        while off < bytes.len() {
            match rustix::io::write(&peer, &bytes[off..]) {
                Ok(n) => off += n,
                Err(rustix::io::Errno::AGAIN) => {
                    let mut p = [rustix::event::PollFd::new(
                        &peer,
                        rustix::event::PollFlags::OUT,
                    )];
                    let _ = rustix::event::poll(&mut p, None);
                }
                Err(_) => break,
            }
        }
        // Dropping `peer` ends the connection.
    });
    read_everything_crossing(&e);
    e.set_property("fdin", ours.as_raw_fd());
    e.set_property("fdout", ours.as_raw_fd());
    if master {
        let _ = pipeline.set_state(gst::State::Playing);
    }
    writer.join().unwrap();
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut noticed = false;
    while !noticed {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            break;
        };
        read_as_an_application(&m);
        noticed = m.type_() == gst::MessageType::Error;
    }
    // The C plugin's teardown: NULL, then `disconnect`, so that no state change the peer
    // sent can still reach the pipeline; then NULL again for what one may have done.
    let t = Instant::now();
    let _ = pipeline.set_state(gst::State::Null);
    e.emit_by_name::<()>("disconnect", &[]);
    let _ = pipeline.set_state(gst::State::Null);
    // Messages left on a bus that is not flushed at NULL hold the pipeline they came from.
    bus.set_flushing(true);
    assert!(noticed, "the end of the connection was not reported");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "NULL took {:?}",
        t.elapsed()
    );
    drop(ours);
}

/// Reads a message the way applications do (gst-launch prints an error's details, follows a
/// redirect, ...): every field GStreamer's parsers read is read, so one of the wrong type is a
/// GLib critical, a finding.
fn read_as_an_application(m: &gst::MessageRef) {
    let _ = format!("{:?}", m.view());
}

/// Parses every event and query that crosses `e`'s pads as the elements next to it may, in
/// both directions and answered queries again, so that what the peer sent is read field by
/// field.
fn read_everything_crossing(e: &gst::Element) {
    use gst::prelude::*;
    let watch = |pad: &gst::Pad| {
        let types = gst::PadProbeType::EVENT_BOTH
            | gst::PadProbeType::EVENT_FLUSH
            | gst::PadProbeType::QUERY_BOTH;
        pad.add_probe(types, |_, info| {
            if let Some(event) = info.event() {
                read_event(event);
            }
            if let Some(query) = info.query() {
                read_query(query);
            }
            gst::PadProbeReturn::Ok
        });
    };
    e.pads().iter().for_each(watch);
    e.connect_pad_added(move |_, pad| watch(pad));
}

/// The receiving end of a ring whose head (the first 8 bytes) and entries (the rest) are the
/// fuzzer's: every entry is checked, copied out and decoded as the src task does.
pub fn ring(data: &[u8]) {
    let Some((head, entries)) = data.split_first_chunk::<8>() else {
        return;
    };
    let tx = crate::ring::Sender::create().unwrap();
    let entries = &entries[..entries.len().min(tx.capacity() as usize)];
    rustix::io::pwrite(tx.fd(), entries, crate::ring::CONTROL as u64).unwrap();
    rustix::io::pwrite(tx.fd(), head, 0).unwrap();
    let rx =
        crate::ring::Receiver::map(tx.fd().try_clone_to_owned().unwrap(), tx.capacity()).unwrap();
    while let Ok(Some(e)) = rx.next() {
        let _ = crate::replay::ring_buffer(e.bytes);
        rx.finish(e.end);
    }
}

/// A ring as `ring` takes it: head, then entries, of real buffer frames.
fn ring_seed() -> Vec<u8> {
    let tx = crate::ring::Sender::create().unwrap();
    for size in [0, 188, 4096] {
        let mut b = gst::Buffer::with_size(size).unwrap();
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(size as u64));
        tx.write(
            &[std::io::IoSlice::new(&wire::encode(
                0,
                &wire::Frame::Buffer(b),
            ))],
            size as u64,
        );
    }
    let head = tx.head();
    let mut entries = vec![0u8; head as usize];
    rustix::io::pread(tx.fd(), &mut entries, crate::ring::CONTROL as u64).unwrap();
    [&head.to_le_bytes()[..], &entries].concat()
}

// --- the seed corpus ------------------------------------------------------------------------

/// Records the seed corpus into `dir/<target>/`: real sessions between a real sink and a real
/// src through a relay that copies (and keeps) what each side sends, split into frames for
/// the frame and body targets, plus payloads and metas written by the encoders. Returns how
/// many seeds were written.
pub fn record_seeds(dir: &std::path::Path) -> usize {
    use gst::prelude::*;
    init();
    let mut seeds = Seeds::new(dir);
    for (master, slave, steps) in SESSIONS {
        let (to_slave, to_master) = recorded_session(master, slave, *steps);
        // The session targets bring their own greeting. The upstream elements get frames of
        // both directions to start from: the stream, and the control.
        seeds.add("session_src", skip_hello(&to_slave));
        seeds.add("session_sink", skip_hello(&to_master));
        for stream in [&to_slave, &to_master] {
            seeds.add("session_upstream_src", skip_hello(stream));
            seeds.add("session_upstream_sink", skip_hello(stream));
        }
        for stream in [&to_slave, &to_master] {
            for (t, frame) in frames(stream) {
                seeds.add("frame", frame);
                let body = &frame[HEADER_LEN..];
                match t {
                    FrameType::Buffer => seeds.add("buffer_fds", &[&[0u8][..], body].concat()),
                    t => seeds.add(target_of(t), body),
                }
            }
        }
    }
    // Payloads, each behind the byte that picks its decoder in `payload`.
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", 320)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    let mut tags = gst::TagList::new();
    tags.get_mut()
        .unwrap()
        .add::<gst::tags::Title>(&"seed", gst::TagMergeMode::Append);
    let structure = gst::Structure::builder("seed")
        .field("int", 3)
        .field("list", gst::List::new([1, 2]))
        .field("caps", &caps)
        .build();
    let mut w = wire::codec::Writer::with_capacity(64);
    value::encode_value(&mut w, &structure.to_value());
    seeds.add("payload", &[&[0u8][..], &w.into_inner()].concat());
    let mut w = wire::codec::Writer::with_capacity(64);
    value::encode_structure(&mut w, &structure);
    seeds.add("payload", &[&[1u8][..], &w.into_inner()].concat());
    let mut w = wire::codec::Writer::with_capacity(64);
    value::encode_caps(&mut w, &caps);
    seeds.add("payload", &[&[2u8][..], &w.into_inner()].concat());
    let mut w = wire::codec::Writer::with_capacity(64);
    value::encode_tag_list(&mut w, &tags);
    seeds.add("payload", &[&[3u8][..], &w.into_inner()].concat());
    let mut w = wire::codec::Writer::with_capacity(64);
    value::encode_segment(
        &mut w,
        &gst::FormattedSegment::<gst::ClockTime>::new().upcast(),
    );
    seeds.add("payload", &[&[4u8][..], &w.into_inner()].concat());
    // Metas of a video frame.
    let mut buffer = gst::Buffer::with_size(320 * 240 * 3 / 2).unwrap();
    gst_video::VideoMeta::add(
        buffer.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::I420,
        320,
        240,
    )
    .unwrap();
    gst_video::VideoCropMeta::add(buffer.get_mut().unwrap(), (0, 0, 160, 120));
    let mut w = wire::codec::Writer::with_capacity(64);
    wire::metas::encode(&mut w, &buffer);
    let size = (buffer.size() as u16).to_le_bytes();
    seeds.add("metas", &[&size[..], &w.into_inner()].concat());
    seeds.add("ring", &ring_seed());
    seeds.count
}

/// A short real session (three buffers to EOS), as each side sent it after the greeting:
/// (master to slave, slave to master).
pub fn short_session() -> (Vec<u8>, Vec<u8>) {
    init();
    let (to_slave, to_master) = recorded_session(
        "audiotestsrc num-buffers=3 samplesperbuffer=64 ! audio/x-raw,rate=8000",
        "fakesink",
        Steps::PlayToEos,
    );
    (
        skip_hello(&to_slave).to_vec(),
        skip_hello(&to_master).to_vec(),
    )
}

/// (master, slave, what the recording does) for each recorded session.
const SESSIONS: &[(&str, &str, Steps)] = &[
    (
        "audiotestsrc num-buffers=20 ! audio/x-raw,rate=8000",
        "audioconvert ! fakesink",
        Steps::PlayToEos,
    ),
    (
        "audiotestsrc ! audio/x-raw,rate=8000",
        "fakesink sync=true",
        Steps::PauseSeekQuery,
    ),
    (
        "audiotestsrc is-live=true ! audio/x-raw,rate=8000",
        "identity error-after=5 ! fakesink",
        Steps::PlayToError,
    ),
];

#[derive(Clone, Copy)]
enum Steps {
    PlayToEos,
    PauseSeekQuery,
    PlayToError,
}

/// Runs `master ! rsipcpipelinesink` and `rsipcpipelinesrc ! slave` in this process through a
/// relay, and returns the bytes each side sent.
fn recorded_session(master: &str, slave: &str, steps: Steps) -> (Vec<u8>, Vec<u8>) {
    use gst::prelude::*;
    use std::os::fd::AsRawFd;
    let (sink_end, relay_a) = crate::launcher::socketpair().unwrap();
    let (src_end, relay_b) = crate::launcher::socketpair().unwrap();
    let relay_a = std::sync::Arc::new(relay_a);
    let relay_b = std::sync::Arc::new(relay_b);
    let copy = |from: std::sync::Arc<OwnedFd>, to: std::sync::Arc<OwnedFd>| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let mut p = [rustix::event::PollFd::new(
                    &*from,
                    rustix::event::PollFlags::IN,
                )];
                if rustix::event::poll(&mut p, None).is_err() {
                    break;
                }
                match rustix::io::read(&*from, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        kept.extend_from_slice(&buf[..n]);
                        let mut off = 0;
                        while off < n {
                            match rustix::net::send(
                                &*to,
                                &buf[off..n],
                                rustix::net::SendFlags::NOSIGNAL,
                            ) {
                                Ok(m) => off += m,
                                Err(rustix::io::Errno::AGAIN) => {
                                    let mut p = [rustix::event::PollFd::new(
                                        &*to,
                                        rustix::event::PollFlags::OUT,
                                    )];
                                    let _ = rustix::event::poll(&mut p, None);
                                }
                                Err(_) => return kept,
                            }
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => {}
                    Err(_) => break,
                }
            }
            let _ = rustix::net::shutdown(&*to, rustix::net::Shutdown::Write);
            kept
        })
    };
    let to_slave = copy(relay_a.clone(), relay_b.clone());
    let to_master = copy(relay_b, relay_a);

    let slave_pipeline = gst::parse::launch(&format!(
        "rsipcslavepipeline.( rsipcpipelinesrc name=src fdin={n} fdout={n} ! {slave} )",
        n = src_end.as_raw_fd()
    ))
    .unwrap();
    let master_pipeline = gst::parse::launch(&format!(
        "{master} ! rsipcpipelinesink name=sink fdin={n} fdout={n}",
        n = sink_end.as_raw_fd()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bus = master_pipeline.bus().unwrap();
    let wait = |types: &[gst::MessageType]| {
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), types)
    };
    let _ = master_pipeline.set_state(gst::State::Playing);
    match steps {
        Steps::PlayToEos => {
            wait(&[gst::MessageType::Eos]);
        }
        Steps::PauseSeekQuery => {
            wait(&[gst::MessageType::AsyncDone]);
            let _ = master_pipeline.set_state(gst::State::Paused);
            let _ = master_pipeline.state(gst::ClockTime::from_seconds(5));
            let _ = master_pipeline.seek_simple(
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::ClockTime::from_mseconds(500),
            );
            let _ = master_pipeline.state(gst::ClockTime::from_seconds(5));
            let _ = master_pipeline.query_position::<gst::ClockTime>();
            let _ = master_pipeline.query_duration::<gst::ClockTime>();
        }
        Steps::PlayToError => {
            wait(&[gst::MessageType::Error]);
        }
    }
    let _ = master_pipeline.set_state(gst::State::Null);
    let sink = master_pipeline.by_name("sink").unwrap();
    sink.emit_by_name::<()>("disconnect", &[]);
    drop(sink_end);
    let to_slave = to_slave.join().unwrap();
    let _ = slave_pipeline.set_state(gst::State::Null);
    drop(src_end);
    let to_master = to_master.join().unwrap();
    (to_slave, to_master)
}

fn skip_hello(stream: &[u8]) -> &[u8] {
    frames(stream)
        .next()
        .map_or(stream, |(_, f)| &stream[f.len()..])
}

/// The frames of a recorded stream, with their types.
fn frames(stream: &[u8]) -> impl Iterator<Item = (FrameType, &[u8])> {
    let mut rest = stream;
    std::iter::from_fn(move || {
        let (head, _) = rest.split_first_chunk::<HEADER_LEN>()?;
        let header = Header::decode(head).ok()?;
        let len = HEADER_LEN + header.len as usize;
        let frame = rest.get(..len)?;
        rest = &rest[len..];
        Some((header.frame_type, frame))
    })
}

fn target_of(t: FrameType) -> &'static str {
    match t {
        FrameType::Hello => "hello",
        FrameType::Buffer | FrameType::Stream | FrameType::Ring => "buffer_fds",
        FrameType::Event => "event",
        FrameType::Query => "query",
        FrameType::StateChange => "state_change",
        FrameType::StateLost => "state_change",
        FrameType::Message => "message",
        FrameType::Reply => "reply",
        FrameType::Context => "context",
        FrameType::Release | FrameType::After => "release",
        FrameType::Clock => "clock",
    }
}

const MAX_SEEDS_PER_TARGET: usize = 48;

/// Seed files named by a hash of their content, so that a seed is kept once.
struct Seeds<'a> {
    dir: &'a std::path::Path,
    count: usize,
}

impl<'a> Seeds<'a> {
    fn new(dir: &'a std::path::Path) -> Self {
        Seeds { dir, count: 0 }
    }

    fn add(&mut self, target: &str, data: &[u8]) {
        use std::hash::{Hash, Hasher};
        if data.is_empty() || data.len() > 64 * 1024 {
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data.hash(&mut h);
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        // Enough to start from; the fuzzer finds the rest.
        if std::fs::read_dir(&dir).map_or(0, |d| d.count()) >= MAX_SEEDS_PER_TARGET {
            return;
        }
        let path = dir.join(format!("{:016x}", h.finish()));
        if !path.exists() {
            std::fs::write(path, data).unwrap();
            self.count += 1;
        }
    }
}
