// SPDX-License-Identifier: MPL-2.0
//! A real session cut at every byte, played by a hostile peer against a real sink and a real
//! src: each time the element reports the end of the connection and goes to NULL at once
//! (`fuzzing::session` checks both), and afterwards the process holds the fds, threads and
//! memory it held before. One test alone in its binary, so that nothing else opens fds meanwhile.

use std::time::{Duration, Instant};

use gstrsipcpipeline::fuzzing;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// Every cut of both sessions, once each.
fn cut_everywhere(to_slave: &[u8], to_master: &[u8]) {
    for n in 0..=to_slave.len() {
        fuzzing::session(fuzzing::Element::Src, &to_slave[..n]);
    }
    for n in 0..=to_master.len() {
        fuzzing::session(fuzzing::Element::Sink, &to_master[..n]);
    }
}

#[test]
fn a_session_cut_at_every_byte() {
    let (to_slave, to_master) = fuzzing::short_session();
    // The first round warms GStreamer up (registry, clock, types and quarks kept for good,
    // the allocator's arenas).
    cut_everywhere(&to_slave, &to_master);
    let (fds, threads, rss) = (count("/proc/self/fd"), count("/proc/self/task"), rss_kib());
    cut_everywhere(&to_slave, &to_master);
    // Threads of the last sessions may take a moment to end; GStreamer's own may have ended
    // too, so fewer is fine.
    let grown = || count("/proc/self/fd") > fds || count("/proc/self/task") > threads;
    let deadline = Instant::now() + Duration::from_secs(20);
    while grown() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let sessions = to_slave.len() + to_master.len() + 2;
    assert!(
        !grown(),
        "fds {} (before: {fds}) and threads {} (before: {threads}) after {sessions} cut sessions",
        count("/proc/self/fd"),
        count("/proc/self/task"),
    );
    // Some 5,700 sessions: a leak of 200 bytes a session would show.
    let now = rss_kib();
    assert!(
        now <= rss + 1024,
        "resident memory grew from {rss} to {now} KiB over {sessions} cut sessions"
    );
}
