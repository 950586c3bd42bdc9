// SPDX-License-Identifier: MPL-2.0
//! One million buffers: neither process grows in resident memory or in open fds. Alone in its
//! test binary, so that nothing else moves the counts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use gst::prelude::*;

/// (resident KiB, open fds) of a process.
fn usage(pid: &str) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

#[test]
fn a_million_buffers_and_nothing_grows() {
    init();
    const TOTAL: usize = 1_000_000;
    const WARM: usize = 100_000;
    let slave = Slave::spawn_quiet("fakesink sync=false");
    let (pipeline, sink) = master(
        &format!(
            "fakesrc num-buffers={TOTAL} sizetype=fixed sizemax=188 filltype=zero ! \
             rsipcpipelinesink name=sink"
        ),
        &slave,
    );
    let slave_pid = slave.child.id().to_string();
    let sent = Arc::new(AtomicUsize::new(0));
    let warm = Arc::new(std::sync::Mutex::new(None));
    let (s, w, pid) = (sent.clone(), warm.clone(), slave_pid.clone());
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if s.fetch_add(1, Ordering::Relaxed) + 1 == WARM {
                *w.lock().unwrap() = Some((usage("self"), usage(&pid)));
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let eos = wait_for(&pipeline, std::time::Duration::from_secs(600), |m| {
        m.type_() == gst::MessageType::Eos
    });
    assert!(
        eos.is_some(),
        "EOS after {} buffers",
        sent.load(Ordering::Relaxed)
    );
    let (end_master, end_slave) = (usage("self"), usage(&slave_pid));
    let (warm_master, warm_slave) = warm.lock().unwrap().unwrap();
    assert_eq!(sent.load(Ordering::Relaxed), TOTAL);
    eprintln!(
        "after 100k / 1M buffers: master {warm_master:?} / {end_master:?}, \
         slave {warm_slave:?} / {end_slave:?} (resident KiB, fds)"
    );
    for (who, (rss0, fds0), (rss1, fds1)) in [
        ("master", warm_master, end_master),
        ("slave", warm_slave, end_slave),
    ] {
        assert!(
            rss1 <= rss0 + 8 * 1024,
            "{who}: resident memory grew from {rss0} to {rss1} KiB over 900k buffers"
        );
        assert_eq!(fds1, fds0, "{who}: open fds");
    }
    drop(sink);
    assert!(stop(pipeline, slave).success());
}
