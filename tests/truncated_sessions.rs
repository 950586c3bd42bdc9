// SPDX-License-Identifier: MPL-2.0
//! A real session cut at every byte, played by a hostile peer against a real sink and a real
//! src: each time the element reports the end of the connection and goes to NULL at once
//! (`fuzzing::session` checks both), and afterwards the process holds the fds and threads it
//! held before. One test alone in its binary, so that nothing else opens fds meanwhile.

use std::time::{Duration, Instant};

use gstrsipcpipeline::fuzzing;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn a_session_cut_at_every_byte() {
    let (to_slave, to_master) = fuzzing::short_session();
    // The first session warms GStreamer up (registry, clock, types kept for good).
    fuzzing::session(true, &to_slave);
    fuzzing::session(false, &to_master);
    let (fds, threads) = (count("/proc/self/fd"), count("/proc/self/task"));
    for n in 0..=to_slave.len() {
        fuzzing::session(true, &to_slave[..n]);
    }
    for n in 0..=to_master.len() {
        fuzzing::session(false, &to_master[..n]);
    }
    // Threads of the last sessions may take a moment to end; GStreamer's own may have ended
    // too, so fewer is fine.
    let grown = || count("/proc/self/fd") > fds || count("/proc/self/task") > threads;
    let deadline = Instant::now() + Duration::from_secs(20);
    while grown() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !grown(),
        "fds {} (before: {fds}) and threads {} (before: {threads}) after {} + {} cut sessions",
        count("/proc/self/fd"),
        count("/proc/self/task"),
        to_slave.len() + 1,
        to_master.len() + 1
    );
}
