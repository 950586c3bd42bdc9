// SPDX-License-Identifier: MPL-2.0
//! Several sinks and several masters: two sinks of one master into one slave process, two
//! independent master pipelines into one slave process, and one master with two slave
//! processes.

mod common;

use common::*;
use gst::prelude::*;

fn title(msg: &gst::Message) -> Option<String> {
    let gst::MessageView::Tag(t) = msg.view() else {
        return None;
    };
    t.tags()
        .get::<gst::tags::Title>()
        .map(|v| v.get().to_owned())
}

/// Each branch's messages come back through the sink that feeds it, EOS and the end of the
/// stream reach both, and every buffer arrives in its own branch.
#[test]
fn two_sinks_into_one_slave_keep_their_branches_apart() {
    init();
    let slave = Slave::spawn_many(
        2,
        "rsipcpipelinesrc name=ipcsrc0 ! taginject tags=\"title=zero\" ! fakesink \
         rsipcpipelinesrc name=ipcsrc1 ! queue ! taginject tags=\"title=one\" ! fakesink",
    );
    let master = pipeline(
        "videotestsrc num-buffers=30 ! video/x-raw,width=32,height=24 ! \
         rsipcpipelinesink name=sink0 \
         audiotestsrc num-buffers=20 ! rsipcpipelinesink name=sink1",
    );
    slave.attach_nth(0, &master.by_name("sink0").unwrap());
    slave.attach_nth(1, &master.by_name("sink1").unwrap());
    set_state(&master, gst::State::Playing, gst::StateChangeSuccess::Async);
    let messages = messages_until_eos(&master);
    assert_eq!(messages.last().unwrap().type_(), gst::MessageType::Eos);

    let titles: Vec<(String, String)> = messages
        .iter()
        .filter_map(|m| Some((m.src()?.name().to_string(), title(m)?)))
        .collect();
    assert!(
        titles.contains(&("sink0".into(), "zero".into())),
        "{titles:?}"
    );
    assert!(
        titles.contains(&("sink1".into(), "one".into())),
        "{titles:?}"
    );
    assert!(
        titles
            .iter()
            .all(|(sink, t)| (sink == "sink0") == (t == "zero")),
        "a tag came back through the wrong sink: {titles:?}"
    );
    assert_eq!(slave.count("ipcsrc0 buffer"), 30);
    assert_eq!(slave.count("ipcsrc1 buffer"), 20);
    assert_eq!(slave.count("ipcsrc0 event eos"), 1);
    assert_eq!(slave.count("ipcsrc1 event eos"), 1);
    set_state(&master, gst::State::Null, gst::StateChangeSuccess::Success);
    disconnect(&master);
    drop(master);
    assert!(slave.finish().success());
}

#[test]
fn an_error_is_reported_by_the_sink_of_its_branch() {
    init();
    let slave = Slave::spawn_many(
        2,
        "rsipcpipelinesrc name=ipcsrc0 ! fakesink \
         rsipcpipelinesrc name=ipcsrc1 ! identity error-after=3 ! fakesink",
    );
    let master = pipeline(
        "videotestsrc ! rsipcpipelinesink name=sink0 \
         audiotestsrc ! rsipcpipelinesink name=sink1",
    );
    slave.attach_nth(0, &master.by_name("sink0").unwrap());
    slave.attach_nth(1, &master.by_name("sink1").unwrap());
    let _ = master.set_state(gst::State::Playing);
    let msg = wait_for(&master, DEADLINE, |m| m.type_() == gst::MessageType::Error)
        .expect("the slave's error");
    assert_eq!(msg.src().unwrap().name(), "sink1");
    set_state(&master, gst::State::Null, gst::StateChangeSuccess::Success);
    disconnect(&master);
    drop(master);
    assert!(slave.finish().success());
}

/// Two independent master pipelines drive one slave: it follows the one closest to PLAYING
/// (the C plugin pauses the whole slave when either master pauses).
#[test]
fn two_masters_one_slave_follows_the_one_closest_to_playing() {
    init();
    let slave = Slave::spawn_many(
        2,
        // No preroll: the slave cannot know yet that its masters are live.
        "rsipcpipelinesrc name=ipcsrc0 ! fakesink sync=true async=false \
         rsipcpipelinesrc name=ipcsrc1 ! fakesink sync=true async=false",
    );
    let live = "videotestsrc is-live=true ! video/x-raw,width=16,height=16,framerate=100/1 ! \
                rsipcpipelinesink name=sink";
    let a = pipeline(live);
    let b = pipeline(live);
    slave.attach_nth(0, &a.by_name("sink").unwrap());
    slave.attach_nth(1, &b.by_name("sink").unwrap());
    for m in [&a, &b] {
        assert!(m.set_state(gst::State::Playing).is_ok());
        wait_state(m, gst::State::Playing);
    }
    wait_until("both masters streaming", || {
        slave.count("ipcsrc0 buffer") >= 5 && slave.count("ipcsrc1 buffer") >= 5
    });

    // A pauses; B keeps the slave PLAYING, so B's stream keeps flowing through it.
    assert!(a.set_state(gst::State::Paused).is_ok());
    wait_state(&a, gst::State::Paused);
    let b_then = slave.count("ipcsrc1 buffer");
    wait_until("B's buffers while A is paused", || {
        slave.count("ipcsrc1 buffer") >= b_then + 20
    });

    // A comes back, B stops: the slave stays up for A.
    assert!(a.set_state(gst::State::Playing).is_ok());
    wait_state(&a, gst::State::Playing);
    set_state(&b, gst::State::Null, gst::StateChangeSuccess::Success);
    let a_then = slave.count("ipcsrc0 buffer");
    wait_until("A's buffers after B stopped", || {
        slave.count("ipcsrc0 buffer") >= a_then + 20
    });

    for m in [a, b] {
        set_state(&m, gst::State::Null, gst::StateChangeSuccess::Success);
        disconnect(&m);
    }
    assert!(slave.finish().success());
}

/// One master pipeline, two slave processes: each sink drives its own slave, and the master
/// reaches EOS once both have.
#[test]
fn one_master_two_slaves() {
    init();
    let video = Slave::spawn("fakesink sync=true");
    let audio = Slave::spawn("audioconvert ! fakesink sync=true");
    let master = pipeline(
        "videotestsrc num-buffers=15 ! video/x-raw,framerate=30/1,width=32,height=24 ! \
         rsipcpipelinesink name=v \
         audiotestsrc num-buffers=10 ! rsipcpipelinesink name=a",
    );
    video.attach(&master.by_name("v").unwrap());
    audio.attach(&master.by_name("a").unwrap());
    set_state(&master, gst::State::Playing, gst::StateChangeSuccess::Async);
    wait_eos(&master);
    assert_eq!(video.count("buffer"), 15);
    assert_eq!(audio.count("buffer"), 10);
    set_state(&master, gst::State::Null, gst::StateChangeSuccess::Success);
    disconnect(&master);
    drop(master);
    assert!(video.finish().success());
    assert!(audio.finish().success());
}
