// SPDX-License-Identifier: MPL-2.0
//! What an application does with one pipeline works on a split one: queries, seeks of every
//! kind, tags, upstream and out-of-band events with their real results, sink-message, drain,
//! renegotiation, and state changes in any order.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

/// A one-second mono wav file, made with Debian's plugins.
fn wav_file() -> tempfile::NamedTempFile {
    make_file(
        ".wav",
        "audiotestsrc num-buffers=100 samplesperbuffer=441 ! \
         audio/x-raw,rate=44100,channels=1,format=S16LE ! wavenc ! filesink location={location}",
    )
}

fn no_errors(pipeline: &gst::Pipeline) {
    let bus = pipeline.bus().unwrap();
    if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("unexpected {m:?}");
    }
}

/// A small deterministic generator, so that a failing sequence can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn duration_position_and_seeks_of_every_kind() {
    init();
    let wav = wav_file();
    let slave = Slave::spawn("audioconvert ! fakesink sync=false");
    let (pipeline, _) = master(
        &format!(
            "filesrc location={} ! wavparse ! rsipcpipelinesink name=sink",
            wav.path().display()
        ),
        &slave,
    );
    let ms = gst::ClockTime::from_mseconds;
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::Async,
    );
    wait_state(&pipeline, gst::State::Paused);

    // Answered by the slave's sink, which asks upstream: back across to wavparse.
    assert_eq!(pipeline.query_duration::<gst::ClockTime>(), Some(ms(1000)));
    let mut q = gst::query::Seeking::new(gst::Format::Time);
    assert!(pipeline.query(&mut q));
    let (seekable, start, end) = q.result();
    assert!(seekable);
    assert_eq!(start.value(), 0);
    assert_eq!(end.value(), ms(1000).nseconds() as i64);

    // A flushing seek in PAUSED prerolls the slave at the new position.
    assert!(
        pipeline
            .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, ms(500))
            .is_ok()
    );
    wait_state(&pipeline, gst::State::Paused);
    let pos = pipeline.query_position::<gst::ClockTime>().unwrap();
    assert!(pos >= ms(490) && pos <= ms(510), "position {pos}");
    assert!(
        slave
            .lines_with("event segment")
            .last()
            .unwrap()
            .contains(&format!("start={}", ms(500).nseconds())),
        "{:?}",
        slave.lines_with("event segment")
    );

    // Many random seeks, each completing with the slave prerolled again.
    let mut rng = Lcg(7);
    for _ in 0..100 {
        let to = ms(rng.next(1000));
        assert!(
            pipeline
                .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, to)
                .is_ok()
        );
        wait_state(&pipeline, gst::State::Paused);
    }
    assert!(slave.lines_with("event flush-start").len() >= 101);

    // A segment seek ends with SEGMENT_DONE on the master, not EOS.
    assert!(
        pipeline
            .seek(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::SEGMENT,
                gst::SeekType::Set,
                ms(200),
                gst::SeekType::Set,
                ms(400),
            )
            .is_ok()
    );
    wait_state(&pipeline, gst::State::Paused);
    assert!(pipeline.set_state(gst::State::Playing).is_ok());
    let done = wait_for(&pipeline, DEADLINE, |m| {
        matches!(
            m.type_(),
            gst::MessageType::SegmentDone | gst::MessageType::Eos
        )
    })
    .unwrap();
    let gst::MessageView::SegmentDone(d) = done.view() else {
        panic!("{done:?}");
    };
    assert_eq!(d.get().value(), ms(400).nseconds() as i64);
    // wavparse posts the message, then sends the event that tells the slave.
    wait_until("the slave to see the segment end", || {
        slave.lines_with("event segment-done").len() == 1
    });

    // A flushing seek while PLAYING: the slave loses its state, so does the master, and both
    // come back to PLAYING; the stream then ends.
    assert!(pipeline.seek_simple(gst::SeekFlags::FLUSH, ms(900)).is_ok());
    wait_eos(&pipeline);
    wait_state(&pipeline, gst::State::Playing);
    no_errors(&pipeline);
    assert!(stop(pipeline, slave).success());
}

/// Serialized and out-of-band events and queries from the master, and an upstream event
/// from the master application that travels through the slave and back.
#[test]
fn events_and_queries_keep_their_meaning() {
    init();
    let slave = Slave::spawn("fakesink sync=false");
    let (pipeline, sink) = master(
        "appsrc name=src format=time caps=application/x-test ! \
         taginject tags=\"title=from-master\" ! rsipcpipelinesink name=sink",
        &slave,
    );
    let appsrc = pipeline.by_name("src").unwrap();
    let srcpad = appsrc.static_pad("src").unwrap();
    let push = |n: u64| {
        for i in 0..n {
            let mut b = gst::Buffer::from_slice([i as u8; 16]);
            b.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(i));
            let r = appsrc.emit_by_name::<gst::FlowReturn>("push-buffer", &[&b]);
            assert_eq!(r, gst::FlowReturn::Ok);
        }
    };

    // Upstream events sent to the master pipeline reach the slave's sink, come back through
    // the link into the master's upstream elements, and their result returns.
    let seen = Arc::new(Mutex::new(Vec::<gst::Structure>::new()));
    let seen2 = seen.clone();
    srcpad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && e.type_() == gst::EventType::Navigation
        {
            seen2
                .lock()
                .unwrap()
                .push(e.structure().unwrap().to_owned());
            return gst::PadProbeReturn::Handled;
        }
        gst::PadProbeReturn::Ok
    });

    pipeline.set_state(gst::State::Playing).unwrap();
    push(3);
    let inner = gst::message::Element::builder(
        gst::Structure::builder("app-note").field("n", 5i32).build(),
    )
    .build();
    let inner_seqnum = inner.seqnum();
    assert!(appsrc.send_event(gst::event::SinkMessage::new("note", &inner)));
    push(3);

    // Drain is serialized: it is answered after the buffers before it went through.
    let mut drain = gst::query::Drain::new();
    assert!(srcpad.peer_query(&mut drain));
    // An out-of-band event gets the slave's answer.
    let oob = gst::event::CustomDownstreamOob::new(gst::Structure::new_empty("app-oob"));
    assert!(srcpad.push_event(oob));

    let nav = gst::Structure::builder("application/x-gst-navigation")
        .field("event", "mouse-move")
        .field("pointer_x", 12.5f64)
        .field("pointer_y", 7.25f64)
        .build();
    assert!(pipeline.send_event(gst::event::Navigation::new(nav.clone())));
    assert_eq!(*seen.lock().unwrap(), vec![nav]);

    let _ = appsrc.emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
    let messages = messages_until_eos(&pipeline);
    assert_eq!(messages.last().unwrap().type_(), gst::MessageType::Eos);
    let notes: Vec<&gst::Message> = messages
        .iter()
        .filter(|m| m.structure().is_some_and(|s| s.name() == "app-note"))
        .collect();
    assert_eq!(notes.len(), 1, "the sink-message comes back exactly once");
    assert_eq!(notes[0].seqnum(), inner_seqnum);
    assert_eq!(notes[0].src().unwrap(), sink.upcast_ref::<gst::Object>());
    assert!(
        messages.iter().any(|m| match m.view() {
            gst::MessageView::Tag(t) => t
                .tags()
                .get::<gst::tags::Title>()
                .is_some_and(|v| v.get() == "from-master"),
            _ => false,
        }),
        "the slave's sink posts the tags it got"
    );

    let lines = slave.dump_lines();
    let pos = |what: &str| lines.iter().position(|l| l.starts_with(what)).unwrap();
    assert!(pos("event sink-message note") > pos("buffer"));
    assert_eq!(lines.iter().filter(|l| l.starts_with("buffer")).count(), 6);
    assert!(
        lines
            .iter()
            .any(|l| l == "event custom-downstream-oob app-oob")
    );
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// New caps in the middle of the stream reach the slave in order with the buffers.
#[test]
fn renegotiation_mid_stream() {
    init();
    let slave = Slave::spawn("videoconvert ! fakesink");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=40 ! capsfilter name=cf caps=video/x-raw,format=I420,width=32,height=24 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    let sent = count_buffers(&sink.static_pad("sink").unwrap());
    let cf = pipeline.by_name("cf").unwrap();
    let sent2 = sent.clone();
    let cf2 = cf.clone();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if sent2.load(std::sync::atomic::Ordering::SeqCst) == 20 {
                cf2.set_property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", "I420")
                        .field("width", 64)
                        .field("height", 48)
                        .build(),
                );
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    let lines = slave.dump_lines();
    let caps: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("event caps"))
        .collect();
    assert_eq!(caps.len(), 2, "{caps:?}");
    assert!(caps[0].contains("width=(int)32") && caps[1].contains("width=(int)64"));
    // Every buffer after the new caps has the new size.
    let second = lines.iter().position(|l| l == caps[1]).unwrap();
    let big = 64 * 48 * 3 / 2;
    assert!(
        lines[second..]
            .iter()
            .filter(|l| l.starts_with("buffer"))
            .all(|l| l.contains(&format!("size={big} ")))
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("buffer")).count(), 40);
    drop((cf, sink));
    assert!(stop(pipeline, slave).success());
}

/// Hundreds of state changes in random order: never a FAILURE, always the state asked for.
#[test]
fn random_state_changes() {
    init();
    let slave = Slave::spawn("fakesink sync=true");
    let (pipeline, _) = master(
        "videotestsrc ! video/x-raw,width=16,height=16 ! rsipcpipelinesink name=sink",
        &slave,
    );
    let states = [
        gst::State::Null,
        gst::State::Ready,
        gst::State::Paused,
        gst::State::Playing,
    ];
    let mut rng = Lcg(42);
    for i in 0..300 {
        let to = states[rng.next(4) as usize];
        assert!(
            pipeline.set_state(to).is_ok(),
            "step {i}: going to {to:?} failed"
        );
        wait_state(&pipeline, to);
    }
    no_errors(&pipeline);
    assert!(stop(pipeline, slave).success());
}

/// Metas cross with the buffers, and the slave's pipeline tells upstream in the master which
/// metas it takes (ALLOCATION), so that videotestsrc writes strides and offsets in a video meta.
#[test]
fn metas_cross_and_allocation_offers_what_the_slave_takes() {
    init();
    let slave = Slave::spawn("videoscale ! video/x-raw,width=40,height=20 ! fakesink");
    let (pipeline, sink) = master(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=20,height=10 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sent2 = sent.clone();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                sent2
                    .lock()
                    .unwrap()
                    .push(gstrsipcpipeline::dump::buffer_line(b));
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    let got = slave.lines_with("buffer");
    let sent = sent.lock().unwrap().clone();
    assert_eq!(got, sent);
    assert!(
        got.iter().all(|l| l.contains(" video(I420 20x10")),
        "{got:?}"
    );
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// Replacing the master's source while PLAYING, again and again, with different caps each
/// time: the slave follows every new stream (stream-start, caps, buffers of the new size).
#[test]
fn replacing_the_source_while_playing() {
    init();
    let slave = Slave::spawn("fakesink sync=false");
    let (pipeline, sink) = master(
        "videotestsrc is-live=true ! video/x-raw,format=I420,width=16,height=16 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    assert!(pipeline.set_state(gst::State::Playing).is_ok());
    wait_state(&pipeline, gst::State::Playing);
    let sinkpad = sink.static_pad("sink").unwrap();
    for i in 0..20u32 {
        let width = 16 + 2 * (i % 5 + 1);
        let peer = sinkpad.peer().unwrap();
        let old = peer.parent_element().unwrap();
        // Block the old source's stream, then take it out.
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(Some(tx));
        peer.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, move |_, _| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            gst::PadProbeReturn::Ok
        });
        rx.recv_timeout(DEADLINE).expect("the old source blocked");
        peer.unlink(&sinkpad).unwrap();
        // Whatever is upstream of the sink goes: the capsfilter and its source.
        let mut doomed = vec![old.clone()];
        while let Some(up) = doomed
            .last()
            .unwrap()
            .static_pad("sink")
            .and_then(|p| p.peer())
            .and_then(|p| p.parent_element())
        {
            doomed.push(up);
        }
        for e in &doomed {
            pipeline.remove(e).unwrap();
            e.set_state(gst::State::Null).unwrap();
        }

        let new = gst::parse::bin_from_description(
            &format!(
                "videotestsrc is-live=true pattern={} ! \
                 capsfilter caps=video/x-raw,format=I420,width={width},height=16",
                i % 3
            ),
            true,
        )
        .unwrap();
        pipeline.add(&new).unwrap();
        new.static_pad("src").unwrap().link(&sinkpad).unwrap();
        new.sync_state_with_parent().unwrap();
        wait_until("buffers of the new source", || {
            let lines = slave.dump_lines();
            let caps = lines
                .iter()
                .rposition(|l| l.starts_with("event caps"))
                .unwrap();
            lines[caps].contains(&format!("width=(int){width}"))
                && lines[caps..]
                    .iter()
                    .filter(|l| l.starts_with("buffer"))
                    .count()
                    >= 3
        });
    }
    let starts = slave.lines_with("event stream-start").len();
    assert_eq!(starts, 21, "one stream-start per source");
    no_errors(&pipeline);
    drop(sink);
    assert!(stop(pipeline, slave).success());
}

/// A step in PAUSED is done by the slave's sink; STEP_DONE comes back, and the pipeline
/// prerolls again where the step ended.
#[test]
fn frame_steps_in_paused() {
    init();
    let slave = Slave::spawn("videoconvert ! fakesink");
    let (pipeline, sink) = master(
        "videotestsrc ! video/x-raw,width=16,height=16,framerate=10/1 ! \
         rsipcpipelinesink name=sink",
        &slave,
    );
    set_state(
        &pipeline,
        gst::State::Paused,
        gst::StateChangeSuccess::Async,
    );
    wait_state(&pipeline, gst::State::Paused);
    for _ in 0..3 {
        let step = gst::event::Step::new(gst::format::Buffers::from_u64(2), 1.0, true, false);
        let seqnum = step.seqnum();
        assert!(pipeline.send_event(step));
        let done = wait_for(&pipeline, DEADLINE, |m| {
            m.type_() == gst::MessageType::StepDone
        })
        .unwrap();
        let gst::MessageView::StepDone(d) = done.view() else {
            unreachable!()
        };
        assert_eq!(done.seqnum(), seqnum);
        assert_eq!(done.src().unwrap(), sink.upcast_ref::<gst::Object>());
        assert_eq!(
            d.get().0,
            gst::GenericFormattedValue::from(gst::format::Buffers::from_u64(2))
        );
        wait_state(&pipeline, gst::State::Paused);
    }
    let pos = pipeline.query_position::<gst::ClockTime>().unwrap();
    assert_eq!(
        pos,
        gst::ClockTime::from_mseconds(600),
        "three steps of two frames"
    );
    no_errors(&pipeline);
    drop(sink);
    assert!(stop(pipeline, slave).success());
}
