// SPDX-License-Identifier: MPL-2.0
//! `slave-pipeline`: the sink starts, drives and reaps its slave process itself, so that a
//! split pipeline is one `gst-launch-1.0` line.

mod common;

use std::time::Duration;

use common::*;
use gst::prelude::*;

const FRAMES: &str = "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=16,height=16";

/// `gst-launch-1.0 ... ! rsipcpipelinesink slave-pipeline="..."` twice in one master (after a
/// tee): each sink runs its own slave process, and both write what the unsplit pipeline writes.
#[test]
fn gst_launch_with_two_spawned_slaves_writes_what_one_pipeline_writes() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).display().to_string();
    let unsplit = gst_launch()
        .args(["-q"])
        .args(FRAMES.split(' '))
        .args(["!", "filesink", &format!("location={}", path("unsplit"))])
        .status()
        .unwrap();
    assert!(unsplit.success());

    // The default sandbox lets a slave write only where sandbox-allow says.
    let line = format!(
        "{FRAMES} ! tee name=t \
         t. ! queue ! rsipcpipelinesink sandbox-allow={dir} \
            slave-pipeline=\"filesink location={}\" \
         t. ! queue ! rsipcpipelinesink sandbox=strict sandbox-allow={dir} \
            slave-pipeline=\"filesink location={}\"",
        path("a"),
        path("b"),
        dir = dir.path().display()
    );
    let out = gst_launch()
        .args(["-q", "-e"])
        .args(shell_words(&line))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read(path("unsplit")).unwrap();
    assert_eq!(expected.len(), 30 * 16 * 16 * 3 / 2);
    for name in ["a", "b"] {
        assert_eq!(std::fs::read(path(name)).unwrap(), expected, "slave {name}");
    }
}

/// Splits a gst-launch line into arguments as a shell would (double quotes only).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !words.last().unwrap().is_empty() {
                    words.push(String::new());
                }
            }
            c => words.last_mut().unwrap().push(c),
        }
    }
    words.retain(|w| !w.is_empty());
    words
}

/// A demuxed file through a spawned decoding slave: it prerolls, answers duration and
/// position, seeks, reaches EOS, and its process is gone once the master is in NULL.
#[test]
fn spawned_slave_plays_seeks_and_ends() {
    init();
    let file = make_file(
        ".mkv",
        "videotestsrc num-buffers=60 ! video/x-raw,width=64,height=48,framerate=30/1 ! \
         jpegenc ! matroskamux ! filesink location={location}",
    );
    let (pipeline, sink) = spawned_master(
        &format!("filesrc location={} ! matroskademux", file.path().display()),
        "decodebin ! videoconvert ! fakesink sync=true",
    );
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::Async,
    );
    wait_state(&pipeline, gst::State::Paused);
    let pid = slave_pid(&sink);
    assert!(slaves_of(std::process::id()).iter().any(|(p, _)| *p == pid));
    let duration = pipeline.query_duration::<gst::ClockTime>().unwrap();
    assert_eq!(duration, gst::ClockTime::from_seconds(2));
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_seconds(1),
        )
        .unwrap();
    wait_state(&pipeline, gst::State::Paused);
    let position = pipeline.query_position::<gst::ClockTime>().unwrap();
    assert!(position >= gst::ClockTime::from_mseconds(990), "{position}");
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    null_at_once(&pipeline, Duration::from_secs(1));
    assert_eq!(sink.property::<i32>("slave-pid"), -1);
    drop(sink);
    reaped(pid);
}

/// A spawned slave killed mid-stream: one ERROR that names the signal, NULL at once, and
/// the process reaped.
#[test]
fn killed_spawned_slave_is_named_in_one_error() {
    init();
    let (pipeline, sink) = spawned_master(
        "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=100/1",
        "fakesink sync=true",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    let pid = slave_pid(&sink);
    kill(pid);
    let e = wait_error_from(&pipeline, "sink", DEADLINE);
    assert!(e.error.matches(gst::ResourceError::Read));
    assert!(
        e.error
            .message()
            .contains(&format!("slave process {pid} killed by signal 9 (SIGKILL)")),
        "{}",
        e.error.message()
    );
    null_at_once(&pipeline, Duration::from_secs(1));
    drop(sink);
    reaped(pid);
}

/// An error inside the spawned slave comes to the master with the slave element's path.
#[test]
fn spawned_slave_errors_come_with_their_origin() {
    init();
    let (pipeline, sink) = spawned_master(FRAMES, "identity name=broken error-after=5 ! fakesink");
    pipeline.set_state(gst::State::Playing).unwrap();
    let pid = slave_pid(&sink);
    let e = wait_error_from(&pipeline, "sink", DEADLINE);
    let origin = e.details.unwrap().get::<String>("ipc-origin").unwrap();
    assert!(origin.ends_with("/GstIdentity:broken"), "{origin}");
    null_at_once(&pipeline, Duration::from_secs(1));
    drop(sink);
    reaped(pid);
}

/// `on-slave-crash=restart`: the slave is killed mid-stream; the master stays PLAYING, says
/// what happened in a WARNING, the new slave gets the stream from the next buffer on, and EOS
/// still arrives. Only the buffers the dead slave held are lost.
#[test]
fn killed_slave_is_restarted_and_the_stream_goes_on() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    let (pipeline, sink) = spawned_master(
        "videotestsrc num-buffers=200 ! video/x-raw,format=I420,width=16,height=16,framerate=100/1",
        &format!(
            "identity sync=true ! filesink buffer-mode=unbuffered append=true location={}",
            out.display()
        ),
    );
    sink.set_property_from_str("on-slave-crash", "restart");
    // The file does not exist yet: the slave may create it in its directory.
    sink.set_property("sandbox-allow", dir.path().display().to_string());
    let sent = count_buffers(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    let frames = || std::fs::metadata(&out).map_or(0, |m| m.len() / 384);
    wait_until("frames in the first slave", || frames() >= 30);
    let first = slave_pid(&sink);
    kill(first);
    let bus = pipeline.bus().unwrap();
    let warning = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Warning],
        )
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    let text = w.error().message().to_string();
    assert!(
        text.contains(&format!(
            "slave process {first} killed by signal 9 (SIGKILL)"
        )) && text.contains("starting it again (1 of at most 3"),
        "{text}"
    );
    let second = restarted(&sink, first, &sent);
    wait_eos(&pipeline);
    assert_eq!(pipeline.current_state(), gst::State::Playing);
    let got = frames();
    // The window's worth that the first slave held, at most.
    assert!((160..=200).contains(&got), "{got} of 200 frames written");
    null_at_once(&pipeline, Duration::from_secs(1));
    drop(sink);
    reaped(first);
    reaped(second);
}

/// A slave that keeps dying: restarted up to `max-restarts` times, then one ERROR.
#[test]
fn a_slave_dying_in_a_loop_ends_in_an_error() {
    init();
    let (pipeline, sink) = spawned_master(
        "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=100/1",
        "fakesink sync=true",
    );
    sink.set_property_from_str("on-slave-crash", "restart");
    sink.set_property("max-restarts", 2u32);
    let sent = count_buffers(&sink.static_pad("sink").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    let mut pids = vec![slave_pid(&sink)];
    for _ in 0..2 {
        let pid = *pids.last().unwrap();
        kill(pid);
        pids.push(restarted(&sink, pid, &sent));
    }
    kill(*pids.last().unwrap());
    let e = wait_error_from(&pipeline, "sink", DEADLINE);
    assert!(
        e.error.message().contains("after 2 restarts in a minute"),
        "{}",
        e.error.message()
    );
    null_at_once(&pipeline, Duration::from_secs(1));
    drop(sink);
    for pid in pids {
        reaped(pid);
    }
}
