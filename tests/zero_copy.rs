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

/// Thousands of frames through a small pool: every buffer comes back to it, no fd stays.
#[test]
fn the_pool_recycles_and_no_fd_leaks() {
    let _serial = serial();
    init();
    let before = open_fds();
    let slave = Slave::spawn("fakesink");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=3000 ! video/x-raw,format=I420,width=64,height=48 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    let sent = record(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    assert_eq!(slave.count("buffer"), 3000);
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
