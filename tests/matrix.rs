// SPDX-License-Identifier: MPL-2.0
//! The scenario matrix: three topologies (one sink into one slave, two sinks into one slave,
//! two sinks into two slaves) times three sources (live test sources, non-live test sources,
//! a demuxed Matroska file). Each plays, pauses and resumes, answers position (and duration
//! for the file), passes tags back, seeks in PLAYING and PAUSED where the source can, reaches
//! EOS where it ends, and stops with no error.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Topology {
    OneSink,
    TwoSinksOneSlave,
    TwoSinksTwoSlaves,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    Live,
    NonLive,
    File,
}

const VIDEO_SLAVE: &str = "queue ! videoconvert ! fakesink sync=true";
const AUDIO_SLAVE: &str = "queue ! audioconvert ! fakesink sync=true";

/// Two seconds of raw video and audio.
fn mkv_file() -> tempfile::NamedTempFile {
    make_file(
        ".mkv",
        "videotestsrc num-buffers=60 ! video/x-raw,width=32,height=24,framerate=30/1 ! \
         matroskamux name=m ! filesink location={location} \
         audiotestsrc num-buffers=88 samplesperbuffer=1000 ! audio/x-raw,rate=44000 ! m.",
    )
}

fn run(topology: Topology, source: Source) {
    init();
    let file = mkv_file();
    let (video, audio) = match source {
        Source::Live => (
            "videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1".into(),
            "audiotestsrc is-live=true".into(),
        ),
        // Endless: the last seek sets where they stop.
        Source::NonLive => (
            "videotestsrc ! video/x-raw,width=32,height=24,framerate=30/1".into(),
            "audiotestsrc samplesperbuffer=1000 ! audio/x-raw,rate=44000".into(),
        ),
        Source::File => (
            format!(
                "filesrc location={} ! matroskademux name=d d.video_0",
                file.path().display()
            ),
            "d.audio_0".to_string(),
        ),
    };
    let audio_sink = if topology == Topology::OneSink {
        "fakesink sync=true"
    } else {
        "rsipcpipelinesink name=s1"
    };
    let master = pipeline(&format!(
        "{video} ! taginject tags=title=matrix ! queue ! rsipcpipelinesink name=s0 \
         {audio} ! queue ! {audio_sink}"
    ));
    let sink = |i: usize| master.by_name(&format!("s{i}")).unwrap();
    let slaves = match topology {
        Topology::OneSink => vec![Slave::spawn(VIDEO_SLAVE)],
        Topology::TwoSinksOneSlave => vec![Slave::spawn_many(
            2,
            &format!(
                "rsipcpipelinesrc name=ipcsrc0 ! {VIDEO_SLAVE} \
                 rsipcpipelinesrc name=ipcsrc1 ! {AUDIO_SLAVE}"
            ),
        )],
        Topology::TwoSinksTwoSlaves => vec![Slave::spawn(VIDEO_SLAVE), Slave::spawn(AUDIO_SLAVE)],
    };
    match topology {
        Topology::OneSink => slaves[0].attach(&sink(0)),
        Topology::TwoSinksOneSlave => {
            slaves[0].attach_nth(0, &sink(0));
            slaves[0].attach_nth(1, &sink(1));
        }
        Topology::TwoSinksTwoSlaves => {
            slaves[0].attach(&sink(0));
            slaves[1].attach(&sink(1));
        }
    }
    let video_lines = if topology == Topology::TwoSinksOneSlave {
        "ipcsrc0 buffer"
    } else {
        "buffer"
    };
    let titles = Arc::new(Mutex::new(Vec::<String>::new()));
    let t = titles.clone();
    master.bus().unwrap().set_sync_handler(move |_, m| {
        if let gst::MessageView::Tag(tag) = m.view()
            && let Some(v) = tag.tags().get::<gst::tags::Title>()
        {
            t.lock().unwrap().push(v.get().to_owned());
        }
        gst::BusSyncReply::Pass
    });

    // Play, pause, resume.
    assert!(master.set_state(gst::State::Playing).is_ok());
    wait_state(&master, gst::State::Playing);
    wait_until("video in the slave", || slaves[0].count(video_lines) >= 5);
    assert!(master.set_state(gst::State::Paused).is_ok());
    wait_state(&master, gst::State::Paused);
    assert!(master.set_state(gst::State::Playing).is_ok());
    wait_state(&master, gst::State::Playing);
    let pos = master.query_position::<gst::ClockTime>();
    assert!(pos.is_some_and(|p| p > gst::ClockTime::ZERO), "{pos:?}");
    wait_until("the tags back from the slave", || {
        titles.lock().unwrap().iter().any(|t| t == "matrix")
    });

    if source == Source::File {
        let d = master.query_duration::<gst::ClockTime>().unwrap();
        assert!(d.mseconds().abs_diff(2000) <= 40, "{d}");
    }
    if source != Source::Live {
        let ms = gst::ClockTime::from_mseconds;
        // In PLAYING: the slave loses its state, so does the master, and both come back.
        assert!(master.seek_simple(gst::SeekFlags::FLUSH, ms(1000)).is_ok());
        wait_state(&master, gst::State::Playing);
        assert!(master.query_position::<gst::ClockTime>().unwrap() >= ms(990));
        // In PAUSED: prerolled at the new place.
        assert!(master.set_state(gst::State::Paused).is_ok());
        wait_state(&master, gst::State::Paused);
        assert!(
            master
                .seek(
                    1.0,
                    gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                    gst::SeekType::Set,
                    ms(1500),
                    gst::SeekType::Set,
                    ms(2000),
                )
                .is_ok()
        );
        wait_state(&master, gst::State::Paused);
        let pos = master.query_position::<gst::ClockTime>().unwrap();
        assert!(pos.mseconds().abs_diff(1500) <= 40, "{pos}");
        assert!(master.set_state(gst::State::Playing).is_ok());
        wait_eos(&master);
    }

    set_state(&master, gst::State::Null, gst::StateChangeSuccess::Success);
    if let Some(m) = master
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error])
    {
        panic!("{topology:?} {source:?}: {m:?}");
    }
    disconnect(&master);
    drop(master);
    for slave in slaves {
        assert!(slave.finish().success(), "{topology:?} {source:?}");
    }
}

macro_rules! matrix {
    ($($name:ident: $topology:ident, $source:ident;)*) => {$(
        #[test]
        fn $name() {
            run(Topology::$topology, Source::$source);
        }
    )*};
}

matrix! {
    one_sink_live: OneSink, Live;
    one_sink_non_live: OneSink, NonLive;
    one_sink_file: OneSink, File;
    two_sinks_one_slave_live: TwoSinksOneSlave, Live;
    two_sinks_one_slave_non_live: TwoSinksOneSlave, NonLive;
    two_sinks_one_slave_file: TwoSinksOneSlave, File;
    two_sinks_two_slaves_live: TwoSinksTwoSlaves, Live;
    two_sinks_two_slaves_non_live: TwoSinksTwoSlaves, NonLive;
    two_sinks_two_slaves_file: TwoSinksTwoSlaves, File;
}
