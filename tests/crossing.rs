// SPDX-License-Identifier: MPL-2.0
//! Every kind of message, upstream event and query crosses the link with its content and its
//! answer. Both pipelines live in the test process, over a real socketpair, so that the test
//! can post messages and send events from inside the slave; the wire and the threads are the
//! same as between processes.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

struct Split {
    master: gst::Pipeline,
    slave: gst::Pipeline,
    _fds: (OwnedFd, OwnedFd),
}

impl Split {
    /// `master` names its rsipcpipelinesink `sink`; `slave` is what follows the src.
    fn new(master: &str, slave: &str) -> Split {
        let (ours, theirs) = gstrsipcpipeline::launcher::socketpair().unwrap();
        let fd = theirs.as_raw_fd();
        let slave = pipeline(&format!(
            "rsipcslavepipeline.( rsipcpipelinesrc name=ipcsrc fdin={fd} fdout={fd} ! {slave} )"
        ));
        let master = pipeline(master);
        let sink = master.by_name("sink").unwrap();
        sink.set_property("fdin", ours.as_raw_fd());
        sink.set_property("fdout", ours.as_raw_fd());
        Split {
            master,
            slave,
            _fds: (ours, theirs),
        }
    }

    /// A live source in the master, a fakesink named `out` in the slave.
    fn live_into_fakesink() -> Split {
        Split::new(
            "videotestsrc is-live=true name=src ! video/x-raw,width=16,height=16 ! \
             rsipcpipelinesink name=sink",
            "fakesink name=out sync=false",
        )
    }

    /// The master pad upstream of the sink: where the slave's upstream events and queries
    /// come out.
    fn upstream_pad(&self) -> gst::Pad {
        let sink = self.master.by_name("sink").unwrap();
        sink.static_pad("sink").unwrap().peer().unwrap()
    }

    fn playing(&self) {
        assert!(self.master.set_state(gst::State::Playing).is_ok());
        wait_state(&self.master, gst::State::Playing);
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        let _ = self.master.set_state(gst::State::Null);
        disconnect(&self.master);
        if let Some(src) = self.slave.by_name("ipcsrc") {
            src.emit_by_name::<()>("disconnect", &[]);
        }
        let _ = self.slave.set_state(gst::State::Null);
    }
}

fn stream() -> gst::Stream {
    gst::Stream::new(
        Some("s1"),
        Some(&gst::Caps::new_empty_simple("video/x-raw")),
        gst::StreamType::VIDEO,
        gst::StreamFlags::empty(),
    )
}

/// What the master application sees of each message a slave element posts: once each, from
/// the sink, with the slave's seqnum, its structure and the slave element's path.
#[test]
fn every_message_a_bin_passes_up_arrives_once() {
    init();
    let split = Split::new(
        "videotestsrc is-live=true ! video/x-raw,width=16,height=16 ! rsipcpipelinesink name=sink",
        "identity name=poster ! fakesink sync=false",
    );
    split.playing();
    let poster = split.slave.by_name("poster").unwrap();
    let toc = gst::Toc::new(gst::TocScope::Global);
    let coll = gst::StreamCollection::builder(Some("up"))
        .stream(stream())
        .build();
    let mut tags = gst::TagList::new();
    tags.make_mut()
        .add::<gst::tags::Title>(&"remote", gst::TagMergeMode::Append);
    let failed = gst::CoreError::Failed;
    let messages: Vec<gst::Message> = vec![
        gst::message::Warning::builder(failed, "a warning")
            .src(&poster)
            .build(),
        gst::message::Info::builder(failed, "some info")
            .src(&poster)
            .build(),
        gst::message::Element::builder(gst::Structure::builder("app").field("n", 1i32).build())
            .src(&poster)
            .build(),
        gst::message::Tag::builder(tags).src(&poster).build(),
        gst::message::Buffering::builder(42).src(&poster).build(),
        gst::message::DurationChanged::builder()
            .src(&poster)
            .build(),
        gst::message::RequestState::builder(gst::State::Playing)
            .src(&poster)
            .build(),
        gst::message::Qos::builder(true)
            .running_time(gst::ClockTime::SECOND)
            .src(&poster)
            .build(),
        gst::message::Progress::builder(gst::ProgressType::Start, "c", "t")
            .src(&poster)
            .build(),
        gst::message::Toc::builder(&toc, false).src(&poster).build(),
        gst::message::StreamCollection::builder(&coll)
            .src(&poster)
            .build(),
        gst::message::StreamsSelected::builder(&coll)
            .streams([stream()])
            .src(&poster)
            .build(),
        gst::message::HaveContext::builder(gst::Context::new("app.ctx", false))
            .src(&poster)
            .build(),
        gst::message::NeedContext::builder("app.other")
            .src(&poster)
            .build(),
        gst::message::StepDone::builder(
            gst::ClockTime::SECOND,
            1.0,
            false,
            false,
            gst::ClockTime::SECOND,
            false,
        )
        .src(&poster)
        .build(),
    ];
    let sent: Vec<(gst::MessageType, gst::Seqnum)> =
        messages.iter().map(|m| (m.type_(), m.seqnum())).collect();
    for m in messages {
        assert!(poster.post_message(m).is_ok());
    }
    // Messages keep their order: once the sentinel is here, everything before it is too.
    let sentinel = gst::message::Element::builder(gst::Structure::new_empty("sentinel"))
        .src(&poster)
        .build();
    poster.post_message(sentinel).unwrap();

    let bus = split.master.bus().unwrap();
    let mut got = Vec::new();
    loop {
        let m = bus
            .timed_pop(gst::ClockTime::from_seconds(DEADLINE.as_secs()))
            .expect("the sentinel");
        if m.structure().is_some_and(|s| s.name() == "sentinel") {
            break;
        }
        if sent
            .iter()
            .any(|(t, s)| *t == m.type_() && *s == m.seqnum())
        {
            got.push(m);
        }
    }
    let sink = split.master.by_name("sink").unwrap();
    for (t, seqnum) in &sent {
        let copies: Vec<&gst::Message> = got
            .iter()
            .filter(|m| m.type_() == *t && m.seqnum() == *seqnum)
            .collect();
        assert_eq!(copies.len(), 1, "{t:?} arrived {} times", copies.len());
        let m = copies[0];
        assert_eq!(m.src().unwrap(), sink.upcast_ref::<gst::Object>());
        if let Some(s) = m.structure() {
            let origin = s.get::<String>("ipc-origin").unwrap();
            assert!(origin.ends_with("/GstIdentity:poster"), "{origin}");
        }
    }
    let warning = got
        .iter()
        .find(|m| m.type_() == gst::MessageType::Warning)
        .unwrap();
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert_eq!(w.error().message(), "a warning");
    assert!(
        w.details()
            .unwrap()
            .get::<String>("ipc-origin")
            .unwrap()
            .ends_with("poster")
    );
    let selected = got
        .iter()
        .find(|m| m.type_() == gst::MessageType::StreamsSelected)
        .unwrap();
    let gst::MessageView::StreamsSelected(s) = selected.view() else {
        unreachable!()
    };
    assert_eq!(s.streams().next().unwrap().stream_id().unwrap(), "s1");
}

/// Upstream events from the slave's sink reach the master's upstream elements whole, and
/// their results come back.
/// What the slave posts before a master is linked (gst-ipc-slave's word that its sandbox is
/// weaker than asked) reaches the master once one is, ahead of anything posted later: before,
/// a master's state change could make the slave post an error first.
#[test]
fn warnings_posted_before_the_master_connects_arrive_first() {
    init();
    let (ours, theirs) = gstrsipcpipeline::launcher::socketpair().unwrap();
    let slave = pipeline("rsipcslavepipeline.( rsipcpipelinesrc name=ipcsrc ! fakesink )");
    let failed = gst::CoreError::Failed;
    for text in ["early one", "early two"] {
        let warning = gst::message::Warning::builder(failed, text)
            .src(&slave)
            .build();
        assert!(slave.post_message(warning).is_ok());
    }
    let src = slave.by_name("ipcsrc").unwrap();
    src.set_property("fdin", theirs.as_raw_fd());
    src.set_property("fdout", theirs.as_raw_fd());
    let split = Split {
        master: pipeline(
            "videotestsrc is-live=true ! video/x-raw,width=16,height=16 ! \
             rsipcpipelinesink name=sink",
        ),
        slave,
        _fds: (ours, theirs),
    };
    let sink = split.master.by_name("sink").unwrap();
    sink.set_property("fdin", split._fds.0.as_raw_fd());
    sink.set_property("fdout", split._fds.0.as_raw_fd());
    split.playing();

    let bus = split.master.bus().unwrap();
    let from_slave = |m: &gst::Message| {
        let s = match m.view() {
            gst::MessageView::Warning(w) => w.details().map(|d| d.to_owned()),
            _ => m.structure().map(|s| s.to_owned()),
        };
        s.is_some_and(|s| s.has_field("ipc-origin"))
    };
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = bus
            .timed_pop(gst::ClockTime::from_seconds(DEADLINE.as_secs()))
            .expect("the slave's early warnings");
        if from_slave(&m) {
            seen.push(m);
        }
    }
    let texts: Vec<String> = seen
        .iter()
        .map(|m| match m.view() {
            gst::MessageView::Warning(w) => w.error().message().to_string(),
            _ => format!("{m:?}"),
        })
        .collect();
    assert_eq!(texts, ["early one", "early two"]);
}

#[test]
fn upstream_events_cross_with_their_results() {
    init();
    let split = Split::live_into_fakesink();
    let seen = Arc::new(Mutex::new(Vec::<gst::Event>::new()));
    let seen2 = seen.clone();
    let upstream = split.upstream_pad();
    upstream.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data
            && e.type_() != gst::EventType::Qos
            && e.type_() != gst::EventType::Reconfigure
        {
            let handled = e
                .structure()
                .is_some_and(|s| s.get::<bool>("handled").unwrap_or(false));
            seen2.lock().unwrap().push(e.clone());
            if handled {
                return gst::PadProbeReturn::Handled;
            }
        }
        gst::PadProbeReturn::Ok
    });
    split.playing();
    let out = split.slave.by_name("out").unwrap();
    let pad = out.static_pad("sink").unwrap();
    let custom = |name: &str, handled: bool| {
        gst::Structure::builder(name)
            .field("handled", handled)
            .field("n", 3i32)
            .build()
    };
    let events = [
        gst::event::CustomUpstream::new(custom("app-up", true)),
        gst::event::CustomUpstream::new(custom("app-unhandled", false)),
        gst::event::CustomBoth::new(custom("app-both", true)),
        gst::event::CustomBothOob::new(custom("app-both-oob", true)),
        gst::event::Navigation::new(
            gst::Structure::builder("application/x-gst-navigation")
                .field("event", "key-press")
                .field("key", "space")
                .field("handled", true)
                .build(),
        ),
        gst::event::Latency::new(gst::ClockTime::from_mseconds(30)),
        gst::event::SelectStreams::new(["s1", "s2"]),
        gst::event::Step::new(gst::format::Buffers::from_u64(2), 1.0, true, false),
    ];
    // The result each event gets in one pipeline, from the master's own sink pad...
    let sinkpad = split
        .master
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    let expected: Vec<bool> = events
        .iter()
        .map(|e| sinkpad.push_event(e.clone()))
        .collect();
    assert_eq!(&expected[..4], &[true, false, true, true]);
    seen.lock().unwrap().clear();
    // ... is the result it gets from the slave, through the link.
    for (event, result) in events.iter().zip(&expected) {
        assert_eq!(pad.push_event(event.clone()), *result, "{event:?}");
    }
    // The master pipeline sends its own events upstream too (latency): only ours count.
    let seen: Vec<gst::Event> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| events.iter().any(|s| s.seqnum() == e.seqnum()))
        .cloned()
        .collect();
    assert_eq!(seen.len(), events.len());
    for (sent, got) in events.iter().zip(seen.iter()) {
        assert_eq!(sent.type_(), got.type_());
        assert_eq!(sent.seqnum(), got.seqnum());
        assert_eq!(sent.structure(), got.structure());
    }
}

/// Queries from the slave are answered by the master's upstream elements, and queries from
/// the master by the slave's downstream elements; each answer comes back whole.
#[test]
fn queries_both_ways_come_back_answered() {
    init();
    let split = Split::live_into_fakesink();
    let answer_up = |q: &mut gst::QueryRef| -> bool {
        use gst::QueryViewMut as Q;
        let t = gst::ClockTime::from_mseconds;
        match q.view_mut() {
            Q::Position(q) => q.set(t(1234)),
            Q::Duration(q) => q.set(t(5000)),
            Q::Seeking(q) => q.set(true, t(0), t(5000)),
            Q::Segment(q) => q.set(2.0, t(10), t(20)),
            Q::Convert(q) => q.set(t(1000), gst::format::Bytes::from_u64(4000)),
            Q::Formats(q) => q.set([gst::Format::Time, gst::Format::Bytes]),
            Q::Buffering(q) => {
                q.set_percent(true, 70);
                q.add_buffering_ranges([(t(0), t(700))]);
            }
            Q::Uri(q) => {
                q.set_uri(Some("file:///movie.mkv"));
                q.set_redirection(Some("file:///other.mkv"), true);
            }
            Q::Context(q) => {
                let mut c = gst::Context::new("app.shared", true);
                c.get_mut().unwrap().structure_mut().set("value", 9i32);
                q.set_context(&c);
            }
            Q::Bitrate(q) => q.set_bitrate(128000),
            Q::Custom(q) => q.structure_mut().set("answer", 42i32),
            _ => return false,
        }
        true
    };
    split
        .upstream_pad()
        .add_probe(gst::PadProbeType::QUERY_UPSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Query(q)) = &mut info.data
                && answer_up(q)
            {
                return gst::PadProbeReturn::Handled;
            }
            gst::PadProbeReturn::Ok
        });
    split
        .slave
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
            if let Some(gst::PadProbeData::Query(q)) = &mut info.data
                && let gst::QueryViewMut::Bitrate(b) = q.view_mut()
            {
                b.set_bitrate(128000);
                return gst::PadProbeReturn::Handled;
            }
            gst::PadProbeReturn::Ok
        });
    split.playing();
    let up = split
        .slave
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    let t = gst::ClockTime::from_mseconds;

    let mut q = gst::query::Position::new(gst::Format::Time);
    assert!(up.peer_query(&mut q));
    assert_eq!(q.result(), gst::GenericFormattedValue::from(t(1234)));
    let mut q = gst::query::Duration::new(gst::Format::Time);
    assert!(up.peer_query(&mut q));
    assert_eq!(q.result(), gst::GenericFormattedValue::from(t(5000)));
    let mut q = gst::query::Seeking::new(gst::Format::Time);
    assert!(up.peer_query(&mut q));
    assert!(q.result().0);
    let mut q = gst::query::Segment::new(gst::Format::Time);
    assert!(up.peer_query(&mut q));
    assert_eq!(q.result().0, 2.0);
    let mut q = gst::query::Convert::new(t(1000), gst::Format::Bytes);
    assert!(up.peer_query(&mut q));
    assert_eq!(
        q.result().1,
        gst::GenericFormattedValue::from(gst::format::Bytes::from_u64(4000))
    );
    let mut q = gst::query::Formats::new();
    assert!(up.peer_query(&mut q));
    assert_eq!(
        q.result().collect::<Vec<_>>(),
        vec![gst::Format::Time, gst::Format::Bytes]
    );
    let mut q = gst::query::Buffering::new(gst::Format::Time);
    assert!(up.peer_query(&mut q));
    assert_eq!(q.percent(), (true, 70));
    assert_eq!(q.ranges().len(), 1);
    let mut q = gst::query::Uri::new();
    assert!(up.peer_query(&mut q));
    assert_eq!(q.uri().as_deref(), Some("file:///movie.mkv"));
    assert_eq!(q.redirection(), (Some("file:///other.mkv".into()), true));
    let mut q = gst::query::Context::new("app.shared");
    assert!(up.peer_query(&mut q));
    assert_eq!(
        q.context()
            .unwrap()
            .structure()
            .get::<i32>("value")
            .unwrap(),
        9
    );
    let mut q = gst::query::Custom::new(gst::Structure::new_empty("app-question"));
    assert!(up.peer_query(&mut q));
    assert_eq!(q.structure().unwrap().get::<i32>("answer").unwrap(), 42);
    let mut q = gst::query::Latency::new();
    assert!(up.peer_query(&mut q));
    assert!(q.result().0, "the master's source is live");
    // Caps with and without a filter: videotestsrc answers what the capsfilter allows.
    let mut q = gst::query::Caps::new(None);
    assert!(up.peer_query(&mut q));
    assert!(q.result().unwrap().to_string().contains("width=(int)16"));
    let filter = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .build();
    let mut q = gst::query::Caps::new(Some(&filter));
    assert!(up.peer_query(&mut q));
    let caps = q.result().unwrap().to_owned();
    assert!(
        caps.iter().all(|s| s.get::<&str>("format") == Ok("I420")),
        "{caps}"
    );

    // Downstream, from the master into the slave.
    let down = split
        .master
        .by_name("src")
        .unwrap()
        .static_pad("src")
        .unwrap();
    let i420 = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", 16)
        .field("height", 16)
        .build();
    let mut q = gst::query::AcceptCaps::new(&i420);
    assert!(down.peer_query(&mut q));
    assert!(q.result());
    let mut q = gst::query::Drain::new();
    assert!(down.peer_query(&mut q));
    let mut q = gst::query::Bitrate::new();
    assert!(down.peer_query(&mut q));
    assert_eq!(q.bitrate(), 128000);
}

/// Caps changed in the slave while PLAYING: RECONFIGURE crosses upstream, the master's source
/// negotiates again through the link (caps queries both ways), and new caps come down.
#[test]
fn renegotiation_after_a_caps_change_in_the_slave() {
    init();
    let split = Split::new(
        "videotestsrc is-live=true ! rsipcpipelinesink name=sink",
        "capsfilter name=cf caps=video/x-raw,format=I420,width=16,height=16 ! \
         fakesink name=out sync=false",
    );
    let caps_seen = Arc::new(Mutex::new(Vec::<gst::Caps>::new()));
    let seen = caps_seen.clone();
    split
        .slave
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data
                && let gst::EventView::Caps(c) = e.view()
            {
                seen.lock().unwrap().push(c.caps_owned());
            }
            gst::PadProbeReturn::Ok
        });
    split.playing();
    let width = |c: &gst::Caps| c.structure(0).unwrap().get::<i32>("width").unwrap();
    wait_until("the first caps", || !caps_seen.lock().unwrap().is_empty());
    assert_eq!(width(&caps_seen.lock().unwrap()[0]), 16);
    split.slave.by_name("cf").unwrap().set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", 48)
            .field("height", 32)
            .build(),
    );
    wait_until("caps negotiated again from the master", || {
        caps_seen
            .lock()
            .unwrap()
            .last()
            .is_some_and(|c| width(c) == 48)
    });
}
