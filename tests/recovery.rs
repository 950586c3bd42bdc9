// SPDX-License-Identifier: MPL-2.0
//! Crashes and reconnections, with the C plugin's recovery recipe (disconnect, NULL, new fds),
//! and the exact state changes a slave makes for a scripted sequence on the master.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstrsipcpipeline::launcher;

/// A slave application of the C plugin's kind, in this process: it never sets a state itself.
struct CSlave {
    pipeline: gst::Pipeline,
    src: gst::Element,
    received: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CSlave {
    fn new(fd: &OwnedFd) -> CSlave {
        let fd = fd.as_raw_fd();
        let pipeline = pipeline(&format!(
            "rsipcslavepipeline.( rsipcpipelinesrc name=ipcsrc fdin={fd} fdout={fd} ! \
             fakesink name=out sync=false )"
        ));
        let out = pipeline.by_name("out").unwrap();
        let received = count_buffers(&out.static_pad("sink").unwrap());
        CSlave {
            src: pipeline.by_name("ipcsrc").unwrap(),
            pipeline,
            received,
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// The C recipe for a slave whose master went away: disconnect, NULL, new fds.
    fn reconnect(&self, fd: &OwnedFd) {
        self.src.emit_by_name::<()>("disconnect", &[]);
        assert!(self.pipeline.set_state(gst::State::Null).is_ok());
        self.src.set_property("fdin", fd.as_raw_fd());
        self.src.set_property("fdout", fd.as_raw_fd());
    }
}

impl Drop for CSlave {
    fn drop(&mut self) {
        self.src.emit_by_name::<()>("disconnect", &[]);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A master process: gst-launch-1.0 with our plugin, on fd 3.
fn launch_master(fd: &OwnedFd) -> std::process::Child {
    launcher::spawn_with_fds(
        gst_launch()
            .args(["-q", "videotestsrc", "is-live=true", "!"])
            .args(["video/x-raw,width=16,height=16,framerate=200/1", "!"])
            .args(["rsipcpipelinesink", "fdin=3", "fdout=3"]),
        &[fd],
    )
    .unwrap()
}

#[test]
fn master_crash_is_reported_and_a_new_master_drives_the_slave() {
    init();
    let (slave_end, master_end) = launcher::socketpair().unwrap();
    let slave = CSlave::new(&slave_end);
    let mut first = launch_master(&master_end);
    drop(master_end);
    wait_until("the first master's buffers", || slave.received() >= 20);

    first.kill().unwrap();
    let killed = Instant::now();
    let bus = slave.pipeline.bus().unwrap();
    let err = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(DEADLINE.as_secs()),
            &[gst::MessageType::Error],
        )
        .expect("the slave reports its master's death");
    assert!(killed.elapsed() < Duration::from_secs(1));
    assert_eq!(err.src().unwrap().name(), "ipcsrc");
    let _ = first.wait();

    let (slave_end2, master_end2) = launcher::socketpair().unwrap();
    slave.reconnect(&slave_end2);
    let before = slave.received();
    let mut second = launch_master(&master_end2);
    drop(master_end2);
    wait_until("the second master's buffers", || {
        slave.received() >= before + 20
    });
    assert_eq!(
        slave.pipeline.state(gst::ClockTime::ZERO).1,
        gst::State::Playing
    );
    second.kill().unwrap();
    let _ = second.wait();
}

#[test]
fn slave_crash_then_a_new_slave_takes_over() {
    init();
    let mut first = Slave::spawn("fakesink sync=true");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=60 ! video/x-raw,width=16,height=16,framerate=100/1 ! \
         rsipcpipelinesink name=sink",
        &first,
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_until("the first slave's buffers", || first.count("buffer") >= 5);
    first.kill();
    let e = wait_error_from(&pipeline, "sink", DEADLINE);
    assert!(e.error.matches(gst::ResourceError::Read));
    // The recipe: disconnect, NULL, new fds, PLAYING.
    sink.emit_by_name::<()>("disconnect", &[]);
    null_at_once(&pipeline, Duration::from_secs(1));
    assert!(!first.finish().success());

    assert_eq!(
        new_slave_plays_it_all(pipeline, sink),
        60,
        "the stream starts again from the top"
    );
}

/// The slave pipeline makes exactly the state changes a bin child would, step by step, for a
/// scripted sequence on the master, across a disconnection and a reconnection.
#[test]
fn scripted_state_sequence_gives_exact_slave_state_changes() {
    init();
    use gst::State::*;
    let (slave_end, master_end) = launcher::socketpair().unwrap();
    let slave = CSlave::new(&slave_end);
    let pipeline =
        pipeline("videotestsrc ! video/x-raw,width=16,height=16 ! rsipcpipelinesink name=sink");
    let sink = pipeline.by_name("sink").unwrap();
    sink.set_property("fdin", master_end.as_raw_fd());
    sink.set_property("fdout", master_end.as_raw_fd());

    // Keep the messages of the slave's last step to NULL.
    slave.pipeline.set_auto_flush_bus(false);
    let slave_bus = slave.pipeline.bus().unwrap();
    let slave_changes = || {
        let mut out = Vec::new();
        while let Some(m) = slave_bus.pop_filtered(&[gst::MessageType::StateChanged]) {
            if let gst::MessageView::StateChanged(s) = m.view()
                && m.src() == Some(slave.pipeline.upcast_ref())
            {
                out.push((s.old(), s.current()));
            }
        }
        out
    };
    // Downward, one step at a time: a bin going from PLAYING straight to READY does not wait
    // for its sinks' PAUSED to complete, in one process or two.
    let script = [
        Playing, Paused, Playing, Paused, Ready, Playing, Paused, Ready, Null,
    ];
    let expected = vec![
        (Null, Ready),
        (Ready, Paused),
        (Paused, Playing),
        (Playing, Paused),
        (Paused, Playing),
        (Playing, Paused),
        (Paused, Ready),
        (Ready, Paused),
        (Paused, Playing),
        (Playing, Paused),
        (Paused, Ready),
        (Ready, Null),
    ];
    let run = |pipeline: &gst::Pipeline| {
        for state in script {
            assert!(pipeline.set_state(state).is_ok());
            wait_state(pipeline, state);
            // The slave's own view of the same moment.
            let (ret, current, _) = slave
                .pipeline
                .state(gst::ClockTime::from_seconds(DEADLINE.as_secs()));
            assert!(ret.is_ok());
            assert_eq!(current, state);
        }
    };
    run(&pipeline);
    assert_eq!(slave_changes(), expected);

    // Disconnect and reconnect both ends on a new socket: the same again.
    sink.emit_by_name::<()>("disconnect", &[]);
    let (slave_end2, master_end2) = launcher::socketpair().unwrap();
    slave.reconnect(&slave_end2);
    let _ = slave_changes();
    sink.set_property("fdin", master_end2.as_raw_fd());
    sink.set_property("fdout", master_end2.as_raw_fd());
    run(&pipeline);
    assert_eq!(slave_changes(), expected);
    sink.emit_by_name::<()>("disconnect", &[]);
    drop((slave_end, master_end));
}
