// SPDX-License-Identifier: MPL-2.0
//! Connecting, streaming, killing the slave and tearing down leave no thread and no fd behind.
//! Alone in its test binary: other tests running in the same process would move the counts.

mod common;

use std::time::Instant;

use common::*;
use gst::prelude::*;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn cycle(kill: bool) {
    let mut slave = Slave::spawn("fakesink sync=false");
    let (pipeline, _) = master(
        "videotestsrc num-buffers=50 ! rsipcpipelinesink name=sink",
        &slave,
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    if kill {
        wait_state(&pipeline, gst::State::Playing);
        slave.kill();
        wait_error_from(&pipeline, "sink", DEADLINE);
        assert!(!stop(pipeline, slave).success());
    } else {
        wait_eos(&pipeline);
        assert!(stop(pipeline, slave).success());
    }
}

/// Waits until `dir` holds no more entries than `before` (threads end, and a link's fds
/// close, a little after the last short-lived thread that used it); fails with what it saw
/// at the deadline. The baseline itself may include such stragglers, so fewer is fine.
fn returns_to(dir: &str, before: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = count(dir);
        if now <= before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dir}: {now} entries, {before} before"
        );
        std::thread::yield_now();
    }
}

#[test]
fn nothing_leaks_across_connections() {
    init();
    // The first cycle creates what GStreamer keeps for the process (its thread pool, ...).
    cycle(false);
    cycle(true);
    let fds = count("/proc/self/fd");
    let threads = count("/proc/self/task");
    for i in 0..3 {
        cycle(i % 2 == 1);
    }
    returns_to("/proc/self/fd", fds);
    returns_to("/proc/self/task", threads);
}
