// SPDX-License-Identifier: MPL-2.0
//! One master process, one slave process (gst-ipc-slave), real pipelines on both sides.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstrsipcpipeline::dump;

/// Buffers with every kind of metadata, as the master pushes them. Some carry several
/// memories, large ones among them: those are written from their own mapping, and the
/// largest arrive in recycled allocations.
fn test_buffers(n: u64) -> Vec<gst::Buffer> {
    let bytes =
        |len: u64, seed: u64| -> Vec<u8> { (0..len).map(|j| (seed * 7 + j) as u8).collect() };
    (0..n)
        .map(|i| {
            let mut b = gst::Buffer::from_mut_slice(bytes(i * 37 % 700 + 1, i));
            let m = b.get_mut().unwrap();
            if i % 10 == 3 {
                m.append_memory(gst::Memory::from_mut_slice(bytes(100 << 10, i + 1)));
                m.append_memory(gst::Memory::from_mut_slice(bytes(33, i + 2)));
            }
            if i % 50 == 7 {
                m.append_memory(gst::Memory::from_mut_slice(bytes(1 << 20, i + 3)));
            }
            m.set_pts(gst::ClockTime::from_mseconds(i * 40));
            m.set_dts(if i % 3 == 0 {
                None
            } else {
                Some(gst::ClockTime::from_mseconds(i * 40 - 5))
            });
            m.set_duration(gst::ClockTime::from_mseconds(40));
            m.set_offset(i * 1000);
            m.set_offset_end(i * 1000 + 999);
            let mut flags = gst::BufferFlags::empty();
            if i == 0 {
                flags |= gst::BufferFlags::DISCONT;
            }
            if i % 2 == 1 {
                flags |= gst::BufferFlags::DELTA_UNIT;
            }
            if i % 5 == 4 {
                flags |= gst::BufferFlags::DROPPABLE;
            }
            m.set_flags(flags);
            b
        })
        .collect()
}

/// Pushes 200 buffers and EOS; checks what crossed; returns the slave's dump.
fn push_all_and_check(slave: Slave) -> Vec<String> {
    push_all_and_check_with_window(slave, 8)
}

fn push_all_and_check_with_window(slave: Slave, window: u32) -> Vec<String> {
    let (pipeline, sink) = master(
        "appsrc name=src format=time caps=application/x-test ! rsipcpipelinesink name=sink",
        &slave,
    );
    sink.set_property("window", window);
    drop(sink);
    let appsrc = pipeline.by_name("src").unwrap();
    let buffers = test_buffers(200);
    pipeline.set_state(gst::State::Playing).unwrap();
    for b in &buffers {
        let ret = appsrc.emit_by_name::<gst::FlowReturn>("push-buffer", &[b]);
        assert_eq!(ret, gst::FlowReturn::Ok);
    }
    let _ = appsrc.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    wait_eos(&pipeline);

    let lines = slave.dump_lines();
    let events: Vec<&String> = lines.iter().filter(|l| l.starts_with("event")).collect();
    assert_eq!(events[0], "event stream-start");
    assert_eq!(events[1], "event caps application/x-test");
    assert!(events[2].starts_with("event segment "));
    assert_eq!(events.last().unwrap().as_str(), "event eos");
    // Large buffers cross as copies in fd memory: the same content.
    let got: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("buffer"))
        .map(|l| l.trim_end_matches(" fd"))
        .collect();
    let want: Vec<String> = buffers.iter().map(|b| dump::buffer_line(b)).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, w);
    }
    // EOS is the last thing that crossed: every buffer came before it.
    assert_eq!(lines.last().unwrap(), "event eos");
    // Over one socket, the buffers came through the shared ring (the slave maps it); over
    // pipes, on the pipe.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", slave.child.id())).unwrap();
    assert_eq!(
        maps.contains("memfd:rsipcpipeline-ring"),
        slave.fds.1.is_none(),
        "{maps}"
    );

    assert!(stop(pipeline, slave).success());
    lines
}

/// The window only changes how far ahead the master may be: one buffer or many in flight
/// give the same buffers and events in the same order.
#[test]
fn window_of_one_or_many_gives_the_same_stream() {
    init();
    let one = push_all_and_check_with_window(Slave::spawn("fakesink"), 1);
    let many = push_all_and_check_with_window(Slave::spawn("fakesink"), 64);
    assert_eq!(one, many);
}

#[test]
fn buffers_cross_byte_exact_with_metadata() {
    init();
    push_all_and_check(Slave::spawn("fakesink"));
}

#[test]
fn buffers_cross_over_a_pipe_pair() {
    init();
    push_all_and_check(Slave::spawn_with_pipes("fakesink"));
}

#[test]
fn state_changes_return_what_a_bin_returns() {
    init();
    let slave = Slave::spawn("fakesink sync=true");
    let (pipeline, _) = master("videotestsrc ! rsipcpipelinesink name=sink", &slave);
    use gst::StateChangeSuccess::*;
    // A non-live pipeline prerolls: PLAYING is reached asynchronously.
    set_state(&pipeline, gst::State::Playing, Async);
    wait_state(&pipeline, gst::State::Playing);
    assert!(pipeline.set_state(gst::State::Paused).is_ok());
    wait_state(&pipeline, gst::State::Paused);
    assert!(pipeline.set_state(gst::State::Playing).is_ok());
    wait_state(&pipeline, gst::State::Playing);
    set_state(&pipeline, gst::State::Ready, Success);
    set_state(&pipeline, gst::State::Null, Success);
    // And again from the start, on the same connection.
    set_state(&pipeline, gst::State::Paused, Async);
    wait_state(&pipeline, gst::State::Paused);
    assert!(stop(pipeline, slave).success());
}

#[test]
fn live_master_makes_the_pipeline_no_preroll() {
    init();
    let slave = Slave::spawn("fakesink sync=false");
    let (pipeline, _) = master(
        "videotestsrc is-live=true ! rsipcpipelinesink name=sink",
        &slave,
    );
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::NoPreroll,
    );
    // The slave pipeline is live too: it settles in PAUSED without the preroll that a live
    // source never sends there.
    let paused = |slave: &Slave| {
        slave
            .pipeline_lines()
            .iter()
            .filter(|l| *l == "paused")
            .count()
    };
    wait_until("the slave paused without data", || paused(&slave) >= 1);
    assert!(pipeline.set_state(gst::State::Playing).is_ok());
    wait_state(&pipeline, gst::State::Playing);
    wait_until("the slave playing", || slave.count("buffer") > 0);
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::NoPreroll,
    );
    wait_until("the slave paused again", || paused(&slave) >= 2);
    assert!(stop(pipeline, slave).success());
}

#[test]
fn error_in_slave_reaches_master_and_recovers() {
    init();
    let slave = Slave::spawn("identity error-after=5 ! fakesink");
    let (pipeline, _) = master("videotestsrc ! rsipcpipelinesink name=sink", &slave);
    for round in 0..2 {
        pipeline.set_state(gst::State::Playing).unwrap();
        let e = wait_error_from(&pipeline, "sink", DEADLINE);
        assert!(
            e.error.matches(gst::CoreError::Failed),
            "round {round}: {}",
            e.error
        );
        assert_eq!(e.error.message(), "Failed after iterations as requested.");
        assert!(e.debug.unwrap().contains("identity"));
        let origin = e
            .details
            .and_then(|d| d.get::<String>("ipc-origin").ok())
            .expect("the slave element's path");
        assert!(
            origin.starts_with("/GstRsIpcSlavePipeline:")
                && origin.ends_with("/GstIdentity:identity0"),
            "{origin}"
        );
        set_state(
            &pipeline,
            gst::State::Null,
            gst::StateChangeSuccess::Success,
        );
    }
    assert!(stop(pipeline, slave).success());
}

/// The master keeps writing to a slave that was killed: one ERROR, no SIGPIPE, NULL at once.
fn kill_while_streaming(mut slave: Slave) {
    let (pipeline, _) = master("videotestsrc ! rsipcpipelinesink name=sink", &slave);
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    slave.kill();
    let killed = Instant::now();
    let e = wait_error_from(&pipeline, "sink", Duration::from_secs(1));
    assert!(killed.elapsed() < Duration::from_secs(1));
    assert!(e.error.matches(gst::ResourceError::Read), "{}", e.error);
    null_at_once(&pipeline, Duration::from_secs(1));
    assert!(!stop(pipeline, slave).success());
}

#[test]
fn killed_slave_gives_an_error_at_once_and_null_does_not_hang() {
    init();
    kill_while_streaming(Slave::spawn("fakesink sync=true"));
}

#[test]
fn killed_slave_over_pipes_raises_no_sigpipe() {
    init();
    kill_while_streaming(Slave::spawn_with_pipes("fakesink sync=true"));
}

/// What the slave's pipeline returns for a buffer reaches the master's upstream elements
/// within the credit window, and they react as in one pipeline.
#[test]
fn flow_returns_reach_upstream_within_the_window() {
    init();
    let cases = [
        (
            "identity error-after=5 ! fakesink",
            Some("reason error (-5)"),
        ),
        ("identity eos-after=5 ! fakesink", None),
        (
            "capsfilter caps=audio/x-raw ! fakesink",
            Some("reason not-negotiated (-4)"),
        ),
    ];
    for (description, error) in cases {
        let slave = Slave::spawn(description);
        let (pipeline, sink) = master(
            "videotestsrc name=src num-buffers=1000 ! video/x-raw,width=16,height=16 ! \
             rsipcpipelinesink name=sink",
            &slave,
        );
        let sent = count_buffers(&sink.static_pad("sink").unwrap());
        let window = sink.property::<u32>("window") as usize;
        drop(sink);
        let _ = pipeline.set_state(gst::State::Playing);
        match error {
            // The source stops with the slave's flow, as it would in one pipeline.
            Some(reason) => {
                let e = wait_error_from(&pipeline, "src", DEADLINE);
                assert!(
                    e.debug.as_deref().unwrap_or("").contains(reason),
                    "{description}: {:?}",
                    e.debug
                );
            }
            // An EOS flow makes the source send EOS, which still reaches the slave's sink.
            None => wait_eos(&pipeline),
        }
        let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(sent <= 5 + window + 1, "{description}: {sent} buffers sent");
        assert!(stop(pipeline, slave).success());
    }
}

/// A slave application of the C plugin, renamed: fds in the launch description, and it never
/// sets a state. Here both pipelines live in the test process, over a socketpair.
#[test]
fn c_style_slave_follows_the_master() {
    init();
    let (ours, theirs) = gstrsipcpipeline::launcher::socketpair().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    let slave = pipeline(&format!(
        "rsipcslavepipeline.( rsipcpipelinesrc fdin={fd} fdout={fd} ! fakesink name=out )"
    ));
    let received = count_buffers(&slave.by_name("out").unwrap().static_pad("sink").unwrap());
    let pipeline = pipeline("videotestsrc num-buffers=10 ! rsipcpipelinesink name=sink");
    let sink = pipeline.by_name("sink").unwrap();
    sink.set_property("fdin", std::os::fd::AsRawFd::as_raw_fd(&ours));
    sink.set_property("fdout", std::os::fd::AsRawFd::as_raw_fd(&ours));
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 10);
    assert_eq!(slave.state(gst::ClockTime::ZERO).1, gst::State::Playing);
    set_state(
        &pipeline,
        gst::State::Null,
        gst::StateChangeSuccess::Success,
    );
    let (ret, state, _) = slave.state(gst::ClockTime::from_seconds(DEADLINE.as_secs()));
    assert_eq!(
        (ret, state),
        (Ok(gst::StateChangeSuccess::Success), gst::State::Null)
    );
    sink.emit_by_name::<()>("disconnect", &[]);
    slave
        .by_name("rsipcpipelinesrc0")
        .unwrap()
        .emit_by_name::<()>("disconnect", &[]);
}

#[test]
fn disconnect_and_reconnect_to_a_new_slave() {
    init();
    let first = Slave::spawn("fakesink sync=true");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=20 ! video/x-raw,framerate=30/1 ! rsipcpipelinesink name=sink",
        &first,
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    sink.emit_by_name::<()>("disconnect", &[]);
    assert_eq!(sink.property::<i32>("fdin"), -1);
    assert_eq!(sink.property::<i32>("fdout"), -1);
    set_state(
        &pipeline,
        gst::State::Null,
        gst::StateChangeSuccess::Success,
    );
    // The first slave sees its master go away while PLAYING: it ends with an error.
    assert!(!first.finish().success());

    assert_eq!(new_slave_plays_it_all(pipeline, sink), 20);
}
