// SPDX-License-Identifier: MPL-2.0
//! A real muxed file (raw video and audio in Matroska, made with Debian's plugins) played
//! through a demuxer in the master into slave processes, in both multi-sink topologies:
//! preroll, duration, flushing and reverse seeks, play to EOS.

mod common;

use common::*;
use gst::prelude::*;

fn mkv_file() -> tempfile::NamedTempFile {
    make_file(
        ".mkv",
        "videotestsrc num-buffers=30 ! video/x-raw,width=64,height=48,framerate=30/1 ! \
         matroskamux name=m ! filesink location={location} \
         audiotestsrc num-buffers=44 samplesperbuffer=1000 ! audio/x-raw,rate=44000 ! m.",
    )
}

fn demuxing_master(file: &tempfile::NamedTempFile) -> gst::Pipeline {
    pipeline(&format!(
        "filesrc location={} ! matroskademux name=d \
         d.video_0 ! queue ! rsipcpipelinesink name=v \
         d.audio_0 ! queue ! rsipcpipelinesink name=a",
        file.path().display()
    ))
}

/// The lines of one src's stream (`src` is the dump prefix, empty with one src) since its
/// last segment: what the slave played after the last seek.
fn since_last_segment(slave: &Slave, src: &str) -> Vec<String> {
    let lines: Vec<String> = slave
        .lines_with(src)
        .iter()
        .map(|l| l[src.len()..].to_owned())
        .collect();
    let seg = lines
        .iter()
        .rposition(|l| l.starts_with("event segment"))
        .expect("a segment");
    lines[seg..].to_vec()
}

/// After the seek to 0.5 s: half of the 30 video frames, then EOS.
fn played_second_half(lines: &[String]) {
    let buffers = lines.iter().filter(|l| l.starts_with("buffer")).count();
    assert!((14..=16).contains(&buffers), "{buffers} video buffers");
    assert_eq!(lines.last().unwrap(), "event eos");
}

/// What every topology must do with the file.
fn play_the_file(master: &gst::Pipeline) {
    let ms = gst::ClockTime::from_mseconds;
    set_state(master, gst::State::Paused, gst::StateChangeSuccess::Async);
    wait_state(master, gst::State::Paused);
    let duration = master.query_duration::<gst::ClockTime>().unwrap();
    assert!(duration >= ms(990) && duration <= ms(1010), "{duration}");

    assert!(
        master
            .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, ms(500))
            .is_ok()
    );
    wait_state(master, gst::State::Paused);
    let pos = master.query_position::<gst::ClockTime>().unwrap();
    assert!(pos >= ms(450) && pos <= ms(550), "{pos}");

    assert!(master.set_state(gst::State::Playing).is_ok());
    wait_eos(master);
}

#[test]
fn two_sinks_into_one_slave_play_a_muxed_file() {
    init();
    let file = mkv_file();
    let slave = Slave::spawn_many(
        2,
        "rsipcpipelinesrc name=ipcsrc0 ! queue ! videoconvert ! fakesink sync=true \
         rsipcpipelinesrc name=ipcsrc1 ! queue ! audioconvert ! fakesink sync=true",
    );
    let master = demuxing_master(&file);
    slave.attach_nth(0, &master.by_name("v").unwrap());
    slave.attach_nth(1, &master.by_name("a").unwrap());
    play_the_file(&master);
    played_second_half(&since_last_segment(&slave, "ipcsrc0 "));
    assert_eq!(
        since_last_segment(&slave, "ipcsrc1 ").last().unwrap(),
        "event eos"
    );
    set_state(&master, gst::State::Null, gst::StateChangeSuccess::Success);
    disconnect(&master);
    drop(master);
    assert!(slave.finish().success());
}

#[test]
fn two_sinks_into_two_slaves_play_a_muxed_file() {
    init();
    let file = mkv_file();
    let video = Slave::spawn("queue ! videoconvert ! fakesink sync=true");
    let audio = Slave::spawn("queue ! audioconvert ! fakesink sync=true");
    let master = demuxing_master(&file);
    video.attach(&master.by_name("v").unwrap());
    audio.attach(&master.by_name("a").unwrap());
    play_the_file(&master);
    played_second_half(&since_last_segment(&video, ""));
    assert_eq!(since_last_segment(&audio, "").last().unwrap(), "event eos");

    // Reverse playback: the slave gets the segment with its negative rate, and the frames of
    // the first half as the demuxer sends them (in reverse chunk order), then EOS.
    assert!(master.set_state(gst::State::Paused).is_ok());
    wait_state(&master, gst::State::Paused);
    assert!(
        master
            .seek(
                -1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::SeekType::Set,
                gst::ClockTime::ZERO,
                gst::SeekType::Set,
                gst::ClockTime::from_mseconds(500),
            )
            .is_ok()
    );
    assert!(master.set_state(gst::State::Playing).is_ok());
    wait_eos(&master);
    let lines = since_last_segment(&video, "");
    assert!(
        lines[0].starts_with("event segment rate=-1"),
        "{}",
        lines[0]
    );
    let pts: Vec<u64> = lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix("buffer pts=")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(pts.len() >= 14, "{pts:?}");
    assert!(pts.iter().all(|t| *t <= 500_000_000), "{pts:?}");
    assert_eq!(lines.last().unwrap(), "event eos");

    set_state(&master, gst::State::Null, gst::StateChangeSuccess::Success);
    disconnect(&master);
    drop(master);
    assert!(video.finish().success());
    assert!(audio.finish().success());
}
