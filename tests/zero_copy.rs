// SPDX-License-Identifier: MPL-2.0
//! Raw video crosses as file descriptors: the sink offers a memfd pool, upstream writes its
//! frames into it, the slave maps the same memory. Frames arrive byte-exact, every fd and
//! every buffer goes back where it came from, also when the slave dies.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;

/// The tests of this file count the fds of the process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn record(pad: &gst::Pad) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
            l.lock()
                .unwrap()
                .push(gstrsipcpipeline::dump::buffer_line(b));
        }
        gst::PadProbeReturn::Ok
    });
    lines
}

#[test]
fn video_frames_cross_as_fds_byte_exact() {
    let _serial = serial();
    init();
    let slave = Slave::spawn("videoconvert ! fakesink");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=60 pattern=ball ! \
         video/x-raw,format=I420,width=320,height=240 ! rsipcpipelinesink name=sink",
        &slave,
    );
    let sent = record(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    let sent = sent.lock().unwrap().clone();
    let got = slave.lines_with("buffer");
    assert_eq!(got.len(), 60);
    assert_eq!(got, sent);
    assert!(got.iter().all(|l| l.ends_with(" fd")), "{:?}", got[0]);
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// Large frames in plain memory (upstream was not let use our pool) are copied once into
/// memfd memory of the sink's own, which crosses as fds: byte-exact, and every fd goes back.
#[test]
fn large_plain_memory_crosses_as_a_copy_in_memfds() {
    let _serial = serial();
    init();
    let before = open_fds();
    let slave = Slave::spawn("videoconvert ! fakesink");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=300 pattern=ball ! \
         video/x-raw,format=I420,width=640,height=480 ! identity drop-allocation=true ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    let sent = record(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    let sent = sent.lock().unwrap().clone();
    assert!(sent.iter().all(|l| !l.ends_with(" fd")), "{:?}", sent[0]);
    let got = slave.lines_with("buffer");
    assert_eq!(got.len(), 300);
    // The same frames, now in fd memory.
    let plain = |l: &String| l.trim_end_matches(" fd").to_string();
    assert_eq!(
        got.iter().map(plain).collect::<Vec<_>>(),
        sent.iter().map(plain).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|l| l.ends_with(" fd")), "{:?}", got[0]);
    drop(sink);
    assert!(stop(pipeline, slave).success());
    wait_until("no more fds than before", || open_fds() <= before);
}

/// A hundred thousand frames through a small pool: every buffer comes back to it, no fd
/// stays.
#[test]
fn the_pool_recycles_and_no_fd_leaks() {
    let _serial = serial();
    init();
    let before = open_fds();
    let slave = Slave::spawn("fakesink");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=100000 ! video/x-raw,format=I420,width=64,height=48 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    let sent = record(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    assert_eq!(slave.count("buffer"), 100_000);
    assert!(
        slave
            .lines_with("buffer")
            .iter()
            .all(|l| l.ends_with(" fd"))
    );
    drop((sink, sent));
    assert!(stop(pipeline, slave).success());
    assert_eq!(open_fds(), before, "fds left open in the master");
}

/// The slave dies holding frames: the master gets them all back (no fd of its pool stays
/// open once stopped).
#[test]
fn a_dead_receiver_gives_everything_back() {
    let _serial = serial();
    init();
    let before = open_fds();
    let mut slave = Slave::spawn("fakesink sync=true");
    let (pipeline, sink) = master(
        "videotestsrc ! video/x-raw,format=I420,width=64,height=48,framerate=100/1 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_until("frames in the slave", || slave.count("buffer") >= 20);
    slave.kill();
    let e = wait_error_from(&pipeline, "sink", DEADLINE);
    assert!(e.error.matches(gst::ResourceError::Read));
    sink.emit_by_name::<()>("disconnect", &[]);
    null_at_once(&pipeline, Duration::from_secs(1));
    drop(sink);
    assert!(!slave.finish().success());
    drop(pipeline);
    assert_eq!(open_fds(), before, "fds left open in the master");
}

/// How a test buffer's fd memory is made, and whether the slave will take it as an fd.
#[derive(Clone, Copy, Debug)]
enum FdSource {
    /// Any GstFdMemory over a memfd sealed against shrinking: lent.
    SealedMemfd,
    /// A memfd the sender could still truncate: the slave would refuse it, so it is copied.
    UnsealedMemfd,
    /// Tagged as dmabuf but on another filesystem (what a real dmabuf would take, when the
    /// machine has no /dev/udmabuf to make one): copied.
    FakeDmabuf,
}

fn fd_buffer(source: FdSource, data: &[u8]) -> gst::Buffer {
    use gst_allocators::prelude::*;
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd =
        rustix::fs::memfd_create("test", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    assert_eq!(rustix::io::write(&fd, data).unwrap(), data.len());
    if !matches!(source, FdSource::UnsealedMemfd) {
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    }
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    let flags = gst_allocators::FdMemoryFlags::NONE;
    let mem =
        unsafe {
            match source {
                FdSource::FakeDmabuf => gst_allocators::DmaBufAllocator::new()
                    .alloc_dmabuf_with_flags(raw, data.len(), flags),
                _ => gst_allocators::FdAllocator::new().alloc_fd(raw, data.len(), flags),
            }
        }
        .unwrap();
    let mut b = gst::Buffer::new();
    b.get_mut().unwrap().append_memory(mem);
    b
}

/// Fd memory from any allocator takes the same path as the pool's: what the slave can take
/// safely crosses as an fd, the rest is copied, and both arrive byte-exact.
#[test]
fn any_fd_memory_crosses_as_fd_or_copy() {
    let _serial = serial();
    init();
    let before = open_fds();
    let slave = Slave::spawn("fakesink");
    let (pipeline, sink) = master(
        "appsrc name=src format=time caps=application/x-test ! rsipcpipelinesink name=sink",
        &slave,
    );
    let appsrc = pipeline.by_name("src").unwrap();
    let sent = record(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    let sources = [
        FdSource::SealedMemfd,
        FdSource::UnsealedMemfd,
        FdSource::FakeDmabuf,
    ];
    for i in 0..30usize {
        let data: Vec<u8> = (0..4096 + i).map(|j| (i * 13 + j) as u8).collect();
        let b = fd_buffer(sources[i % 3], &data);
        let ret = appsrc.emit_by_name::<gst::FlowReturn>("push-buffer", &[&b]);
        assert_eq!(ret, gst::FlowReturn::Ok);
    }
    let _ = appsrc.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    wait_eos(&pipeline);
    let got = slave.lines_with("buffer");
    let sent = sent.lock().unwrap().clone();
    assert_eq!(got.len(), 30);
    assert_eq!(sent.len(), 30);
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        let lent = matches!(sources[i % 3], FdSource::SealedMemfd);
        assert_eq!(g.ends_with(" fd"), lent, "{:?}: {g}", sources[i % 3]);
        assert_eq!(g.trim_end_matches(" fd"), s.trim_end_matches(" fd"));
    }
    drop((sink, appsrc));
    assert!(stop(pipeline, slave).success());
    assert_eq!(open_fds(), before, "fds left open in the master");
}
