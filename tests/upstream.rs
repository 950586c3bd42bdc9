// SPDX-License-Identifier: MPL-2.0
//! An upstream slave: the master's rsipcupstreamsrc drives a slave process that holds the
//! source part (source, demuxer) and ends in an rsipcupstreamsink. The roles of the
//! downstream parity scenarios, reversed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;

const FRAMES: &str = "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,format=I420,width=32,height=24,framerate=30/1";

/// What an appsink named `out` received: (pts, duration, bytes) of each buffer, and the
/// types of the serialized events, in order.
type Received = Arc<
    Mutex<(
        Vec<(Option<gst::ClockTime>, Option<gst::ClockTime>, Vec<u8>)>,
        Vec<gst::EventType>,
    )>,
>;

fn record(pipeline: &gst::Pipeline) -> Received {
    let received: Received = Arc::default();
    let pad = pipeline.by_name("out").unwrap().static_pad("sink").unwrap();
    let r = received.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER
            | gst::PadProbeType::EVENT_DOWNSTREAM
            | gst::PadProbeType::EVENT_FLUSH,
        move |_, info| {
            let mut r = r.lock().unwrap();
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => {
                    r.0.push((b.pts(), b.duration(), b.map_readable().unwrap().to_vec()))
                }
                Some(gst::PadProbeData::Event(e)) => r.1.push(e.type_()),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    received
}

/// Plays `pipeline` to EOS and returns what its sink `out` received.
fn play_to_eos(pipeline: &gst::Pipeline) -> Received {
    let received = record(pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(pipeline);
    null_at_once(pipeline, Duration::from_secs(2));
    received
}

/// A master whose source part runs in a slave process it starts itself.
fn upstream_master(slave: &str, rest: &str) -> (gst::Pipeline, gst::Element) {
    let pipeline = pipeline(&format!("rsipcupstreamsrc name=up ! {rest}"));
    let up = pipeline.by_name("up").unwrap();
    up.set_property("slave-pipeline", slave);
    (pipeline, up)
}

/// The same buffers (bytes and timestamps) and the same events, in the same order, as the
/// unsplit pipeline; with the slave process the element started, gone once it is in NULL.
#[test]
fn plays_what_one_pipeline_plays() {
    init();
    let unsplit = play_to_eos(&pipeline(&format!("{FRAMES} ! fakesink name=out")));
    let (split, up) = upstream_master(FRAMES, "fakesink name=out");
    let received = record(&split);
    split.set_state(gst::State::Playing).unwrap();
    let pid = slave_pid(&up);
    wait_eos(&split);
    null_at_once(&split, Duration::from_secs(2));
    let (unsplit, received) = (unsplit.lock().unwrap(), received.lock().unwrap());
    assert_eq!(received.0.len(), 30);
    assert!(received.0 == unsplit.0, "the buffers differ");
    assert_eq!(received.1, unsplit.1);
    assert_eq!(up.property::<i32>("slave-pid"), -1);
    drop(up);
    reaped(pid);
}

/// C-style: the application starts the slave (gst_parse_launch of
/// `rsipcslavepipeline.( ... ! rsipcupstreamsink fdin=N fdout=N )`, never setting its state)
/// and gives the master its end of the socketpair.
#[test]
fn a_slave_the_application_started() {
    init();
    let slave = Slave::spawn_upstream(FRAMES);
    let pipeline = pipeline("rsipcupstreamsrc name=up ! fakesink name=out");
    slave.attach(&pipeline.by_name("up").unwrap());
    let received = play_to_eos(&pipeline);
    assert_eq!(received.lock().unwrap().0.len(), 30);
    assert_eq!(slave.count("buffer"), 30);
    assert!(stop(pipeline, slave).success());
}

/// A demuxer in the slave: the master prerolls, asks duration and position, makes flushing
/// and segment seeks that the slave's demuxer carries out, and plays to EOS.
#[test]
fn seeks_and_queries_reach_the_slave() {
    init();
    let file = make_file(
        ".mkv",
        "videotestsrc num-buffers=60 ! video/x-raw,width=64,height=48,framerate=30/1 ! \
         jpegenc ! matroskamux ! filesink location={location}",
    );
    let (pipeline, up) = upstream_master(
        &format!("filesrc location={} ! matroskademux", file.path().display()),
        "jpegdec ! fakesink name=out sync=true",
    );
    up.set_property("sandbox-allow", file.path().display().to_string());
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::Async,
    );
    wait_state(&pipeline, gst::State::Paused);
    let duration = pipeline.query_duration::<gst::ClockTime>().unwrap();
    assert_eq!(duration, gst::ClockTime::from_seconds(2));
    let mut seeking = gst::query::Seeking::new(gst::Format::Time);
    assert!(pipeline.query(&mut seeking));
    let (seekable, _, end) = seeking.result();
    assert!(seekable, "the demuxer in the slave can seek");
    assert_eq!(end.try_into(), Ok(Some(duration)));
    let received = record(&pipeline);
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_seconds(1),
        )
        .unwrap();
    wait_state(&pipeline, gst::State::Paused);
    let position = pipeline.query_position::<gst::ClockTime>().unwrap();
    assert!(position >= gst::ClockTime::from_mseconds(990), "{position}");
    {
        let r = received.lock().unwrap();
        let first = r.0.first().expect("a buffer after the seek").0.unwrap();
        assert!(first >= gst::ClockTime::from_mseconds(990), "{first}");
        assert!(r.1.contains(&gst::EventType::FlushStop), "{:?}", r.1);
    }
    // A segment seek over the last half second: the demuxer's SEGMENT_DONE ends it.
    pipeline
        .seek(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::SEGMENT,
            gst::SeekType::Set,
            gst::ClockTime::from_mseconds(1500),
            gst::SeekType::Set,
            gst::ClockTime::from_seconds(2),
        )
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let done = wait_for(&pipeline, DEADLINE, |m| {
        m.type_() == gst::MessageType::SegmentDone
    });
    assert!(done.is_some(), "SEGMENT_DONE");
    // Then to the end, as a player looping would not.
    pipeline
        .seek_simple(gst::SeekFlags::FLUSH, gst::ClockTime::from_mseconds(1800))
        .unwrap();
    wait_eos(&pipeline);
    null_at_once(&pipeline, Duration::from_secs(2));
}

/// An error in the slave reaches the master from rsipcupstreamsrc, naming the slave element;
/// the master goes to NULL at once, and plays again with a slave that works.
#[test]
fn errors_come_with_their_origin_and_the_master_recovers() {
    init();
    let (pipeline, up) = upstream_master(
        &format!("{FRAMES} ! identity name=broken error-after=5"),
        "fakesink name=out",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let e = wait_error_from(&pipeline, "up", DEADLINE);
    let origin = e.details.unwrap().get::<String>("ipc-origin").unwrap();
    assert!(origin.ends_with("/GstIdentity:broken"), "{origin}");
    null_at_once(&pipeline, Duration::from_secs(2));
    up.set_property("slave-pipeline", FRAMES);
    let received = play_to_eos(&pipeline);
    assert_eq!(received.lock().unwrap().0.len(), 30);
}

/// A killed upstream slave: one ERROR that names the signal, and NULL at once.
#[test]
fn killed_upstream_slave_is_named_in_one_error() {
    init();
    let (pipeline, up) = upstream_master(
        "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=100/1",
        "fakesink name=out sync=true",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_state(&pipeline, gst::State::Playing);
    let pid = slave_pid(&up);
    kill(pid);
    let e = wait_error_from(&pipeline, "up", DEADLINE);
    assert!(
        e.error
            .message()
            .contains(&format!("slave process {pid} killed by signal 9 (SIGKILL)")),
        "{}",
        e.error.message()
    );
    null_at_once(&pipeline, Duration::from_secs(2));
    drop(up);
    reaped(pid);
}

/// A live source in the slave makes the master live: PAUSED without preroll, and frames once
/// PLAYING, on the master's clock; the slave's latency is the master's to configure.
#[test]
fn a_live_slave_makes_a_live_master() {
    init();
    let (pipeline, _up) = upstream_master(
        "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=30/1",
        "fakesink name=out sync=true",
    );
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::NoPreroll,
    );
    let received = record(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_until("frames in PLAYING", || {
        received.lock().unwrap().0.len() >= 10
    });
    let mut q = gst::query::Latency::new();
    assert!(pipeline.query(&mut q));
    let (live, min, _) = q.result();
    assert!(live);
    assert!(min >= gst::ClockTime::from_mseconds(33), "{min}");
    null_at_once(&pipeline, Duration::from_secs(2));
}

/// Tags of the stream come with it: the master's sink posts them.
#[test]
fn tags_come_with_the_stream() {
    init();
    let (pipeline, _up) = upstream_master(
        &format!("{FRAMES} ! taginject tags=\"title=from-upstream\""),
        "fakesink name=out",
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let tag = wait_for(&pipeline, DEADLINE, |m| {
        let gst::MessageView::Tag(t) = m.view() else {
            return false;
        };
        t.tags().get::<gst::tags::Title>().is_some()
    })
    .expect("a TAG message");
    let gst::MessageView::Tag(t) = tag.view() else {
        unreachable!()
    };
    assert_eq!(
        t.tags().get::<gst::tags::Title>().unwrap().get(),
        "from-upstream"
    );
    wait_eos(&pipeline);
    null_at_once(&pipeline, Duration::from_secs(2));
}

/// Hundreds of state changes in random order: never a FAILURE, always the state asked for,
/// and then the stream plays to its end.
#[test]
fn random_state_changes() {
    init();
    let (pipeline, _up) = upstream_master(
        "videotestsrc num-buffers=100 ! video/x-raw,width=16,height=16,framerate=100/1",
        "fakesink name=out sync=true",
    );
    let states = [
        gst::State::Null,
        gst::State::Ready,
        gst::State::Paused,
        gst::State::Playing,
    ];
    // A fixed seed: a failure can be replayed.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..150 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let state = states[(seed % 4) as usize];
        assert!(pipeline.set_state(state).is_ok(), "going to {state:?}");
        wait_state(&pipeline, state);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let received = play_to_eos(&pipeline);
    assert_eq!(received.lock().unwrap().0.len(), 100);
}

/// Three processes: the source part in an upstream slave, the master in the middle, the sink
/// part in a downstream slave; the file written is the unsplit pipeline's, byte for byte.
#[test]
fn three_processes_write_what_one_pipeline_writes() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).display().to_string();
    let unsplit = pipeline(&format!("{FRAMES} ! filesink location={}", path("unsplit")));
    unsplit.set_state(gst::State::Playing).unwrap();
    wait_eos(&unsplit);
    unsplit.set_state(gst::State::Null).unwrap();

    let master = pipeline("rsipcupstreamsrc name=up ! rsipcpipelinesink name=down");
    let (up, down) = (
        master.by_name("up").unwrap(),
        master.by_name("down").unwrap(),
    );
    up.set_property("slave-pipeline", FRAMES);
    up.set_property("sandbox", sandbox("strict"));
    down.set_property(
        "slave-pipeline",
        format!("filesink location={}", path("split")),
    );
    down.set_property("sandbox-allow", dir.path().display().to_string());
    master.set_state(gst::State::Playing).unwrap();
    wait_eos(&master);
    null_at_once(&master, Duration::from_secs(2));
    let expected = std::fs::read(path("unsplit")).unwrap();
    assert_eq!(expected.len(), 30 * 32 * 24 * 3 / 2);
    assert!(
        std::fs::read(path("split")).unwrap() == expected,
        "the files differ"
    );
}

fn sandbox(nick: &str) -> gst::glib::Value {
    let up = gst::ElementFactory::make("rsipcupstreamsrc")
        .build()
        .unwrap();
    up.set_property_from_str("sandbox", nick);
    up.property_value("sandbox")
}

/// What reached the sink behind each stream of a demuxer, keyed by the stream's caps name:
/// (pts, bytes) of every buffer, and whether EOS came.
type StreamMap = std::collections::BTreeMap<String, (Vec<(Option<gst::ClockTime>, Vec<u8>)>, bool)>;
type Streams = Arc<Mutex<StreamMap>>;

/// Links `pad` to a new fakesink in `pipeline` that records into `streams`.
fn record_stream(pipeline: &gst::Pipeline, pad: &gst::Pad, streams: &Streams) {
    let sink = gst::ElementFactory::make("fakesink")
        .name(format!("sink-for-{}", pad.name()))
        .property("sync", false)
        // Neither holds the demuxer's one thread in a preroll the other would never reach.
        .property("async", false)
        .build()
        .unwrap();
    pipeline.add(&sink).unwrap();
    sink.sync_state_with_parent().unwrap();
    let streams = streams.clone();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            let Some(caps) = pad.current_caps() else {
                return gst::PadProbeReturn::Ok;
            };
            let name = caps.structure(0).unwrap().name().to_string();
            let mut s = streams.lock().unwrap();
            let entry = s.entry(name).or_default();
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => {
                    entry.0.push((b.pts(), b.map_readable().unwrap().to_vec()))
                }
                Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos => {
                    entry.1 = true
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    pad.link(&sink.static_pad("sink").unwrap()).unwrap();
}

/// Records each stream `demux` exposes, now and as its pads come (and go, with their sinks).
fn watch_streams(pipeline: &gst::Pipeline, demux: &gst::Element) -> Streams {
    let streams: Streams = Arc::default();
    for pad in demux.src_pads() {
        record_stream(pipeline, &pad, &streams);
    }
    let (p, s) = (pipeline.downgrade(), streams.clone());
    demux.connect_pad_added(move |_, pad| {
        if let Some(p) = p.upgrade() {
            record_stream(&p, pad, &s);
        }
    });
    let p = pipeline.downgrade();
    demux.connect_pad_removed(move |_, pad| {
        if let Some(p) = p.upgrade()
            && let Some(sink) = p.by_name(&format!("sink-for-{}", pad.name()))
        {
            let _ = sink.set_state(gst::State::Null);
            let _ = p.remove(&sink);
        }
    });
    streams
}

/// Plays `pipeline` until its `n` streams have ended; what each carried. (Its sinks come and
/// go as the streams do, so the bin's own EOS is not what to wait for.)
fn play_streams(pipeline: &gst::Pipeline, streams: &Streams, n: usize) -> StreamMap {
    streams.lock().unwrap().clear();
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        {
            let s = streams.lock().unwrap();
            if s.len() == n && s.values().all(|(_, eos)| *eos) {
                break;
            }
            let seen: Vec<_> = s.iter().map(|(k, v)| (k, v.0.len(), v.1)).collect();
            assert!(
                std::time::Instant::now() < deadline,
                "not every stream ended: {seen:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    null_at_once(pipeline, Duration::from_secs(2));
    std::mem::take(&mut *streams.lock().unwrap())
}

/// A demuxer with two streams in the slave: each leaves rsipcupstreamsrc by a pad of its
/// own (the first by `src`, the other by a sometimes pad), on a connection of its own, with
/// the unsplit buffers; and again after a round through NULL.
#[test]
fn a_demuxer_with_two_streams() {
    init();
    let file = make_file(
        ".mkv",
        "videotestsrc num-buffers=60 ! video/x-raw,width=64,height=48,framerate=30/1 ! \
         jpegenc ! matroskamux name=m ! filesink location={location} \
         audiotestsrc num-buffers=40 ! audio/x-raw,rate=48000,channels=1 ! flacenc ! m.",
    );
    let location = file.path().display().to_string();
    let unsplit = pipeline(&format!(
        "filesrc location={location} ! matroskademux name=demux"
    ));
    let watched = watch_streams(&unsplit, &unsplit.by_name("demux").unwrap());
    let expected = play_streams(&unsplit, &watched, 2);
    assert_eq!(expected.len(), 2, "{:?}", expected.keys());

    let split = gst::Pipeline::new();
    let up = gst::ElementFactory::make("rsipcupstreamsrc")
        .property(
            "slave-pipeline",
            format!("filesrc location={location} ! matroskademux"),
        )
        .property("sandbox-allow", location.as_str())
        .build()
        .unwrap();
    split.add(&up).unwrap();
    let watched = watch_streams(&split, &up);
    for round in 0..2 {
        let got = play_streams(&split, &watched, 2);
        assert_eq!(got.len(), 2, "round {round}: {:?}", got.keys());
        for (name, (buffers, eos)) in expected.iter() {
            let (b, e) = &got[name];
            assert!(*e && *eos, "round {round}: EOS of {name}");
            assert_eq!(b.len(), buffers.len(), "round {round}: buffers of {name}");
            assert!(b == buffers, "round {round}: the buffers of {name} differ");
        }
        assert!(
            up.static_pad("src_1").is_none(),
            "the further pad is gone in NULL"
        );
    }
}

/// Each time the master goes to PLAYING, the upstream slave gets there on the same system
/// clock with the master's base time: its live source stamps buffers in the master's running
/// time.
#[test]
fn the_upstream_slave_runs_on_the_masters_clock() {
    init();
    let slave = Slave::spawn_upstream(
        "audiotestsrc is-live=true samplesperbuffer=441 ! audio/x-raw,rate=44100",
    );
    let pipeline = pipeline("rsipcupstreamsrc name=up ! fakesink name=out sync=true");
    slave.attach(&pipeline.by_name("up").unwrap());
    let playing = || -> Vec<String> {
        slave
            .pipeline_lines()
            .into_iter()
            .filter(|l| l.starts_with("playing "))
            .collect()
    };
    for round in 1..=3 {
        pipeline.set_state(gst::State::Playing).unwrap();
        wait_state(&pipeline, gst::State::Playing);
        let base_time = pipeline.base_time().unwrap().nseconds();
        wait_until("the slave playing again", || playing().len() >= round);
        assert_eq!(
            playing()[round - 1],
            format!("playing base-time={base_time} clock=GstSystemClock"),
            "round {round}"
        );
        pipeline.set_state(gst::State::Paused).unwrap();
        wait_state(&pipeline, gst::State::Paused);
    }
    assert!(stop(pipeline, slave).success());
}

/// `on-slave-crash=restart`, a live upstream slave killed: the master stays PLAYING, says
/// what happened in a WARNING, and frames come again from a new slave.
#[test]
fn a_killed_live_upstream_slave_is_restarted() {
    init();
    let (pipeline, up) = upstream_master(
        "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=50/1",
        "fakesink name=out sync=true",
    );
    up.set_property_from_str("on-slave-crash", "restart");
    let received = record(&pipeline);
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_until("frames", || received.lock().unwrap().0.len() >= 10);
    let first = slave_pid(&up);
    kill(first);
    let text = wait_warning(&pipeline);
    assert!(
        text.contains(&format!(
            "slave process {first} killed by signal 9 (SIGKILL)"
        )) && text.contains("starting it again (1 of at most 3"),
        "{text}"
    );
    let before = received.lock().unwrap().0.len();
    wait_until("frames from the new slave", || {
        received.lock().unwrap().0.len() >= before + 10
    });
    let second = slave_pid(&up);
    assert_ne!(first, second);
    assert_eq!(pipeline.state(gst::ClockTime::ZERO).1, gst::State::Playing);
    null_at_once(&pipeline, Duration::from_secs(2));
    drop(up);
    reaped(first);
    reaped(second);
}

/// `on-slave-crash=restart`, a slave demuxing a file killed mid-stream: the new one resumes
/// where the stream is by then (a flushing seek to the master's position), every frame from
/// there to the end of the file comes, and the stream ends as it would have.
#[test]
fn a_killed_upstream_slave_resumes_where_the_stream_was() {
    init();
    let file = make_file(
        ".mkv",
        "videotestsrc num-buffers=90 ! video/x-raw,width=64,height=48,framerate=30/1 ! \
         jpegenc ! matroskamux ! filesink location={location}",
    );
    let location = file.path().display().to_string();
    let (pipeline, up) = upstream_master(
        &format!("filesrc location={location} ! matroskademux"),
        "jpegdec ! fakesink name=out sync=true",
    );
    up.set_property("sandbox-allow", location.as_str());
    up.set_property_from_str("on-slave-crash", "restart");
    // The frames' timestamps, in milliseconds (Matroska's), and None for each flush.
    let seen: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    let s = seen.clone();
    let pad = pipeline.by_name("out").unwrap().static_pad("sink").unwrap();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH,
        move |_, info| {
            s.lock().unwrap().push(match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => b.pts().map(|t| t.mseconds()),
                _ => None,
            });
            gst::PadProbeReturn::Ok
        },
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_until("a second of frames", || seen.lock().unwrap().len() >= 30);
    let killed_at = seen.lock().unwrap().last().copied().flatten().unwrap();
    kill(slave_pid(&up));
    wait_warning(&pipeline);
    wait_eos(&pipeline);
    null_at_once(&pipeline, Duration::from_secs(2));
    let seen = seen.lock().unwrap();
    let flush = seen
        .iter()
        .rposition(Option::is_none)
        .unwrap_or_else(|| panic!("no flush: {seen:?}"));
    let resumed: Vec<u64> = seen[flush..].iter().flatten().copied().collect();
    let from = resumed[0];
    // Where the stream was: not back at the start of the file.
    assert!(
        from + 300 >= killed_at,
        "resumed at {from} ms, killed at {killed_at} ms"
    );
    let expected: Vec<u64> = (0..90u64)
        .map(|i| i * 1000 / 30)
        .filter(|t| *t + 1 >= from)
        .collect();
    assert!(
        expected
            .iter()
            .all(|t| resumed.iter().any(|r| r.abs_diff(*t) <= 1)),
        "resumed at {from} ms: {resumed:?}"
    );
    assert!(
        resumed.last().unwrap().abs_diff(2967) <= 1,
        "the last frame: {resumed:?}"
    );
}

fn wait_warning(pipeline: &gst::Pipeline) -> String {
    let msg = wait_for(pipeline, DEADLINE, |m| {
        m.type_() == gst::MessageType::Warning
    })
    .expect("a WARNING");
    let gst::MessageView::Warning(w) = msg.view() else {
        unreachable!()
    };
    w.error().message().to_string()
}

/// A scripted sequence of state changes: the upstream slave (a C-style one, whose settled
/// states its dump records) takes each, in order, and nothing more.
#[test]
fn scripted_state_changes_reach_the_slave_in_order() {
    init();
    let slave =
        Slave::spawn_upstream("videotestsrc ! video/x-raw,width=16,height=16,framerate=100/1");
    let pipeline = pipeline("rsipcupstreamsrc name=up ! fakesink sync=true");
    slave.attach(&pipeline.by_name("up").unwrap());
    use gst::State::*;
    let script = [
        Ready, Paused, Playing, Paused, Ready, Paused, Playing, Paused,
    ];
    let settled = || -> Vec<String> {
        slave
            .pipeline_lines()
            .into_iter()
            .filter_map(|l| {
                let word = l.split_whitespace().next()?.to_string();
                matches!(word.as_str(), "paused" | "playing").then_some(word)
            })
            .collect()
    };
    let mut expected = Vec::new();
    for state in script {
        pipeline.set_state(state).unwrap();
        wait_state(&pipeline, state);
        match state {
            Paused => expected.push("paused"),
            Playing => expected.push("playing"),
            _ => {}
        }
        wait_until("the slave settled", || settled().len() >= expected.len());
        assert_eq!(settled(), expected, "after {state:?}");
    }
    assert!(stop(pipeline, slave).success());
}
