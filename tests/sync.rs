// SPDX-License-Identifier: MPL-2.0
//! Live pipelines across the boundary: the slave runs on the master's clock with its base
//! time and the latency the unsplit pipeline would configure, so syncing sinks in the slave
//! render on time.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

const MIXER: &str = "audiotestsrc is-live=true samplesperbuffer=400 ! \
                     audiomixer latency=200000000";

/// What `pick` takes from each event going upstream through `pad`.
fn record_upstream<T: Send + 'static>(
    pad: &gst::Pad,
    pick: impl Fn(&gst::EventRef) -> Option<T> + Send + Sync + 'static,
) -> Arc<Mutex<Vec<T>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && let Some(v) = pick(e)
        {
            s.lock().unwrap().push(v);
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

/// Every latency the pipeline's sinks are told, as the LATENCY events going upstream.
fn record_latency(pad: &gst::Pad) -> Arc<Mutex<Vec<u64>>> {
    record_upstream(pad, |e| match e.view() {
        gst::EventView::Latency(l) => Some(l.latency().nseconds()),
        _ => None,
    })
}

/// The jitter (how late, in ns; negative: early) of every buffer a syncing slave sink
/// rendered, from the QoS events that come back up through our sink.
fn record_lateness(pad: &gst::Pad) -> Arc<Mutex<Vec<i64>>> {
    record_upstream(pad, |e| match e.view() {
        gst::EventView::Qos(q) => Some(q.get().2),
        _ => None,
    })
}

fn playing_lines(slave: &Slave) -> Vec<String> {
    slave
        .pipeline_lines()
        .into_iter()
        .filter(|l| l.starts_with("playing "))
        .collect()
}

/// Each time the master goes to PLAYING, the slave pipeline gets there on the same system
/// clock with the master's base time: a buffer's running time is the same instant in both.
#[test]
fn slave_takes_the_masters_clock_and_base_time_every_time() {
    init();
    let slave = Slave::spawn("fakesink sync=true");
    let (pipeline, sink) = master(
        "audiotestsrc is-live=true samplesperbuffer=441 ! rsipcpipelinesink name=sink",
        &slave,
    );
    for round in 1..=3 {
        pipeline.set_state(gst::State::Playing).unwrap();
        wait_state(&pipeline, gst::State::Playing);
        let base_time = pipeline.base_time().unwrap().nseconds();
        wait_until("the slave playing again", || {
            playing_lines(&slave).len() >= round
        });
        assert_eq!(
            playing_lines(&slave)[round - 1],
            format!("playing base-time={base_time} clock=GstSystemClock"),
            "round {round}"
        );
        pipeline.set_state(gst::State::Paused).unwrap();
        wait_state(&pipeline, gst::State::Paused);
    }
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// `audiomixer latency=200ms` after a live source: split after the mixer, both pipelines
/// configure the latency the unsplit pipeline does.
#[test]
fn both_sides_configure_the_unsplit_latency() {
    init();
    let unsplit = pipeline(&format!("{MIXER} ! fakesink name=out sync=true"));
    let out = unsplit.by_name("out").unwrap();
    let seen = record_latency(&out.static_pad("sink").unwrap());
    unsplit.set_state(gst::State::Playing).unwrap();
    wait_until("the unsplit latency", || !seen.lock().unwrap().is_empty());
    let expected = *seen.lock().unwrap().last().unwrap();
    unsplit.set_state(gst::State::Null).unwrap();
    // A live source and a 200 ms mixer: about 239 ms on the reference run.
    assert!(expected > 200_000_000, "{expected}");

    let slave = Slave::spawn("fakesink sync=true");
    let (pipeline, sink) = master(&format!("{MIXER} ! rsipcpipelinesink name=sink"), &slave);
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    let slave_latency = || {
        slave
            .pipeline_lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("latency ")?.parse::<u64>().ok())
            .collect::<Vec<_>>()
    };
    // The slave configures its own, then the master's reaches it: the unsplit latency, last.
    // (On a busy machine the slave may ask before the master's mixer has negotiated, and
    // configure something else for a moment, as an unsplit pipeline asked that early would.)
    wait_until("the slave's latency", || {
        slave_latency().len() >= 2 && slave_latency().last() == Some(&expected)
    });
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// Percentiles of lateness in ms, for the report.
fn describe(lateness: &[i64]) -> String {
    let p = |q: f64| percentile(lateness, q) as f64 / 1e6;
    format!(
        "{} buffers, lateness ms: min {:.2} p50 {:.2} p99 {:.2} max {:.2}",
        lateness.len(),
        p(0.0),
        p(0.5),
        p(0.99),
        p(1.0)
    )
}

/// A camera: reports one frame of latency (33 ms at 30 fps) and delivers each frame 30 ms
/// after the instant in its timestamp, so frames reach the sink just before their deadline.
const CAMERA: &str = "videotestsrc name=camera is-live=true ! \
                      video/x-raw,width=64,height=48,framerate=30/1";

fn make_camera(pipeline: &gst::Pipeline) {
    let camera = pipeline.by_name("camera").unwrap();
    camera
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &mut info.data
                && let Some(pts) = b.pts()
            {
                let early = gst::ClockTime::from_mseconds(30);
                b.make_mut().set_pts(pts.saturating_sub(early));
            }
            gst::PadProbeReturn::Ok
        });
}

const SINK: &str = "fakesink sync=true qos=true max-lateness=20000000";

/// Plays `frames` frames of the camera, with a PAUSED/PLAYING cycle halfway; returns the
/// lateness of each frame the syncing sink rendered.
fn play_camera(pipeline: &gst::Pipeline, qos_pad: &gst::Pad, frames: usize) -> Vec<i64> {
    make_camera(pipeline);
    let lateness = record_lateness(qos_pad);
    for round in 1..=2 {
        pipeline.set_state(gst::State::Playing).unwrap();
        wait_state(pipeline, gst::State::Playing);
        wait_until("frames rendered", || {
            lateness.lock().unwrap().len() >= frames * round / 2
        });
        if round == 1 {
            pipeline.set_state(gst::State::Paused).unwrap();
            wait_state(pipeline, gst::State::Paused);
        }
    }
    lateness.lock().unwrap().clone()
}

/// A clock of its own, as an audio device's would be: 0.1% fast, and a second ahead of the
/// system's. The slave cannot read it: it follows it from the master's samples.
mod fast_clock {
    use super::*;

    #[derive(Default)]
    pub struct FastClock;

    #[glib::object_subclass]
    impl ObjectSubclass for FastClock {
        const NAME: &'static str = "TestFastClock";
        type Type = super::FastClock;
        type ParentType = gst::SystemClock;
    }

    impl ObjectImpl for FastClock {}
    impl GstObjectImpl for FastClock {}
    impl SystemClockImpl for FastClock {}

    impl ClockImpl for FastClock {
        fn internal_time(&self) -> gst::ClockTime {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let ns = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
            gst::ClockTime::from_nseconds(ns / 1000 * 1001 + 1_000_000_000)
        }
    }
}

glib::wrapper! {
    pub struct FastClock(ObjectSubclass<fast_clock::FastClock>)
        @extends gst::SystemClock, gst::Clock, gst::Object;
}

/// A sink that provides a clock, as an audio sink does: a syncing fakesink in a bin that
/// provides a [`FastClock`].
mod clock_sink {
    use super::*;

    pub struct ClockSink {
        clock: FastClock,
    }

    impl Default for ClockSink {
        fn default() -> Self {
            ClockSink {
                clock: glib::Object::new(),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ClockSink {
        const NAME: &'static str = "TestClockSink";
        type Type = super::ClockSink;
        type ParentType = gst::Bin;
    }

    impl ObjectImpl for ClockSink {
        fn constructed(&self) {
            self.parent_constructed();
            let sink = gst::parse::bin_from_description(SINK, true).unwrap();
            let obj = self.obj();
            obj.add(&sink).unwrap();
            let pad = gst::GhostPad::with_target(&sink.static_pad("sink").unwrap()).unwrap();
            obj.add_pad(&pad).unwrap();
            obj.set_element_flags(gst::ElementFlags::PROVIDE_CLOCK);
        }
    }

    impl GstObjectImpl for ClockSink {}
    impl BinImpl for ClockSink {}

    impl ElementImpl for ClockSink {
        fn provide_clock(&self) -> Option<gst::Clock> {
            Some(self.clock.clone().upcast())
        }
    }
}

glib::wrapper! {
    pub struct ClockSink(ObjectSubclass<clock_sink::ClockSink>)
        @extends gst::Bin, gst::Element, gst::Object;
}

fn register_clock_sink() {
    gst::Element::register(
        None,
        "testclocksink",
        gst::Rank::NONE,
        ClockSink::static_type(),
    )
    .unwrap();
}

/// Set in the environment of this test binary when it runs as the slave of
/// [`master_runs_on_the_clock_the_slave_provides`]: the fd of its connection.
const SLAVE_FD: &str = "RSIPC_TEST_CLOCK_SLAVE_FD";

/// Not a test on its own: the slave process of
/// [`master_runs_on_the_clock_the_slave_provides`], which runs this test binary again with
/// [`SLAVE_FD`] set, because the slave needs an element that only these tests define.
#[test]
fn clock_providing_slave() {
    let Ok(fd) = std::env::var(SLAVE_FD) else {
        return;
    };
    init();
    register_clock_sink();
    let pipeline = gst::parse::launch(&format!(
        "rsipcslavepipeline.( rsipcpipelinesrc fdin={fd} fdout={fd} ! testclocksink )"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    // The master takes the pipeline to NULL before it goes away: keep the bus working there.
    pipeline.set_auto_flush_bus(false);
    let bus = pipeline.bus().unwrap();
    // Runs until the master goes away, which the src reports as an error.
    while let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) {
        if let gst::MessageView::Error(_) = msg.view() {
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

fn median(v: &[i64]) -> i64 {
    percentile(v, 0.5)
}

fn percentile(v: &[i64], q: f64) -> i64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q) as usize]
}

/// On time: none late enough to be dropped (20 ms), and 99% within a few ms of their time,
/// which a busy shared machine may miss now and then for a frame, never for one in a
/// hundred.
fn assert_on_time(lateness: &[i64]) {
    assert!(
        percentile(lateness, 1.0) < 20_000_000 && percentile(lateness, 0.99) < 5_000_000,
        "{}",
        describe(lateness)
    );
}

/// The camera's lateness into `sink` in one pipeline, on `clock` if given.
fn unsplit_lateness(sink: &str, clock: Option<&gst::Clock>) -> Vec<i64> {
    let unsplit = pipeline(&format!("{CAMERA} ! {sink} name=out"));
    if clock.is_some() {
        unsplit.use_clock(clock);
    }
    let out = unsplit.by_name("out").unwrap().static_pad("sink").unwrap();
    let reference = play_camera(&unsplit, &out, 60);
    unsplit.set_state(gst::State::Null).unwrap();
    eprintln!("unsplit: {}", describe(&reference));
    reference
}

/// Plays the camera through `pipeline`, which ends in our `sink`, on `clock` if given: every
/// frame is rendered on time in the slave, when it would be in one pipeline (`reference`),
/// give or take the trip between processes.
fn check_split(
    pipeline: &gst::Pipeline,
    sink: &gst::Element,
    clock: Option<&gst::Clock>,
    frames: usize,
    reference: &[i64],
) {
    if clock.is_some() {
        pipeline.use_clock(clock);
    }
    let lateness = play_camera(pipeline, &sink.static_pad("sink").unwrap(), frames);
    eprintln!("split:   {}", describe(&lateness));
    assert_on_time(&lateness);
    let shift = median(&lateness) - median(reference);
    assert!(shift.abs() < 2_000_000, "{shift} ns later than unsplit");
}

/// The camera at 30 fps for 10 s into a syncing sink that drops frames more than 20 ms late,
/// with a PAUSED/PLAYING cycle halfway: split, every frame is rendered on time, as unsplit.
#[test]
fn live_camera_renders_on_time_in_the_slave() {
    init();
    let reference = unsplit_lateness(SINK, None);
    let slave = Slave::spawn(SINK);
    let (pipeline, sink) = master(&format!("{CAMERA} ! rsipcpipelinesink name=sink"), &slave);
    check_split(&pipeline, &sink, None, 300, &reference);
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// The master runs on a clock the slave cannot read: the slave follows it from samples, and
/// frames still render when they would unsplit.
#[test]
fn slave_follows_a_clock_it_cannot_read() {
    init();
    let clock = glib::Object::new::<FastClock>().upcast::<gst::Clock>();
    let reference = unsplit_lateness(SINK, Some(&clock));
    let slave = Slave::spawn(SINK);
    let (pipeline, sink) = master(&format!("{CAMERA} ! rsipcpipelinesink name=sink"), &slave);
    check_split(&pipeline, &sink, Some(&clock), 150, &reference);
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// The slave holds the element that provides the clock, as an audio sink would: the master
/// pipeline runs on a copy of that clock, the slave on the original, and frames render when
/// they would unsplit.
#[test]
fn master_runs_on_the_clock_the_slave_provides() {
    init();
    register_clock_sink();
    let reference = unsplit_lateness("testclocksink", None);

    let (ours, theirs) = gstrsipcpipeline::launcher::socketpair().unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "clock_providing_slave", "--nocapture"])
        .env(SLAVE_FD, "3");
    let child = gstrsipcpipeline::launcher::spawn_with_fds(&mut cmd, &[&theirs]).unwrap();
    drop(theirs);
    let pipeline = common::pipeline(&format!("{CAMERA} ! rsipcpipelinesink name=sink"));
    let sink = pipeline.by_name("sink").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ours);
    sink.set_property("fdin", fd);
    sink.set_property("fdout", fd);
    check_split(&pipeline, &sink, None, 150, &reference);
    // Our copy of the slave's clock reads what the original does.
    let copy = pipeline.clock().unwrap();
    let original = glib::Object::new::<FastClock>();
    let gap = copy.time().nseconds() as i64 - original.time().nseconds() as i64;
    assert!(gap.abs() < 1_000_000, "the copy is {gap} ns off");
    pipeline.set_state(gst::State::Null).unwrap();
    drop((sink, pipeline, ours));
    assert!(wait_child(child).success());
}

/// Audio and video from one master, each rendered by a syncing sink in its own slave
/// process: they keep the distance they have unsplit.
#[test]
fn audio_and_video_in_two_slaves_stay_together() {
    init();
    let audio = "audiotestsrc is-live=true samplesperbuffer=441";
    let play = |pipeline: &gst::Pipeline, pads: [gst::Pad; 2]| -> [i64; 2] {
        make_camera(pipeline);
        let seen = pads.map(|p| record_lateness(&p));
        pipeline.set_state(gst::State::Playing).unwrap();
        wait_until("three seconds of both", || {
            seen.iter().all(|s| s.lock().unwrap().len() >= 90)
        });
        pipeline.set_state(gst::State::Null).unwrap();
        seen.map(|s| {
            let v = s.lock().unwrap().clone();
            assert_on_time(&v);
            median(&v)
        })
    };

    let unsplit = pipeline(&format!(
        "{audio} ! {SINK} name=a  {CAMERA} ! {SINK} name=v"
    ));
    let pad = |p: &gst::Pipeline, name: &str| p.by_name(name).unwrap().static_pad("sink").unwrap();
    let [a0, v0] = play(&unsplit, [pad(&unsplit, "a"), pad(&unsplit, "v")]);

    let (slave_a, slave_v) = (Slave::spawn(SINK), Slave::spawn(SINK));
    let pipeline = pipeline(&format!(
        "{audio} ! rsipcpipelinesink name=a  {CAMERA} ! rsipcpipelinesink name=v"
    ));
    slave_a.attach(&pipeline.by_name("a").unwrap());
    slave_v.attach(&pipeline.by_name("v").unwrap());
    let [a1, v1] = play(&pipeline, [pad(&pipeline, "a"), pad(&pipeline, "v")]);
    eprintln!(
        "audio - video, ms: unsplit {:.2}, split {:.2}",
        (a0 - v0) as f64 / 1e6,
        (a1 - v1) as f64 / 1e6
    );
    let apart = (a1 - v1) - (a0 - v0);
    assert!(
        apart.abs() < 5_000_000,
        "{apart} ns further apart than unsplit"
    );
    drop(pipeline);
    assert!(slave_a.finish().success());
    assert!(slave_v.finish().success());
}
