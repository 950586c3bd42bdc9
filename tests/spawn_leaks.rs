// SPDX-License-Identifier: MPL-2.0
//! Spawned slaves leave nothing behind in the master: after a normal run, a killed slave, a
//! restart, a slave refused by its sandbox and a crash loop, the master holds the fds it held
//! before and has no child process, zombie or not. One test alone in its binary, so that no
//! other test opens fds meanwhile.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use gst::prelude::*;

const LIVE: &str = "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=100/1";

fn open_fds() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect()
}

fn finish(pipeline: gst::Pipeline, sink: gst::Element, pids: &[u32]) {
    null_at_once(&pipeline, Duration::from_secs(1));
    drop(sink);
    drop(pipeline);
    for &pid in pids {
        reaped(pid);
    }
}

fn to_eos() {
    let (pipeline, sink) = spawned_master(
        "videotestsrc num-buffers=30 ! video/x-raw,width=16,height=16",
        "fakesink",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let pid = slave_pid(&sink);
    wait_eos(&pipeline);
    finish(pipeline, sink, &[pid]);
}

fn killed() {
    let (pipeline, sink) = spawned_master(LIVE, "fakesink sync=true");
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    let pid = slave_pid(&sink);
    kill(pid);
    wait_error_from(&pipeline, "sink", DEADLINE);
    finish(pipeline, sink, &[pid]);
}

fn restarted_then_crash_loop() {
    let (pipeline, sink) = spawned_master(LIVE, "fakesink sync=true");
    sink.set_property_from_str("on-slave-crash", "restart");
    sink.set_property("max-restarts", 1u32);
    let sent = count_buffers(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    let first = slave_pid(&sink);
    kill(first);
    let second = restarted(&sink, first, &sent);
    kill(second);
    wait_error_from(&pipeline, "sink", DEADLINE);
    finish(pipeline, sink, &[first, second]);
}

fn refused_by_the_sandbox() {
    let (pipeline, sink) = spawned_master(
        "videotestsrc num-buffers=30 ! video/x-raw,width=16,height=16",
        "filesink location=/nonexistent/refused",
    );
    let _ = pipeline.set_state(gst::State::Playing);
    let pid = slave_pid(&sink);
    wait_error_from(&pipeline, "sink", DEADLINE);
    finish(pipeline, sink, &[pid]);
}

#[test]
fn spawned_slaves_leave_no_fd_and_no_process_behind() {
    init();
    // GStreamer opens some fds for good on first use (the clock, the registry).
    to_eos();
    let before = open_fds();
    for _ in 0..2 {
        to_eos();
        killed();
        restarted_then_crash_loop();
        refused_by_the_sandbox();
    }
    let me = std::process::id();
    let deadline = std::time::Instant::now() + DEADLINE;
    while open_fds() != before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = open_fds();
    assert_eq!(
        (
            after.difference(&before).collect::<Vec<_>>(),
            before.difference(&after).collect::<Vec<_>>()
        ),
        (vec![], vec![]),
        "fds opened and not closed, and closed"
    );
    assert_eq!(slaves_of(me), []);
}
