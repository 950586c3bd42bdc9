// SPDX-License-Identifier: MPL-2.0
//! A fake peer in the test process writes bytes no rsipcpipelinesrc would: the sink must post
//! one clear ERROR, never panic or hang.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use common::fake_peer::{FakeMaster, send_all, serve};
use common::*;
use gst::glib::translate::IntoGlib;
use gst::prelude::*;
use gstrsipcpipeline::wire::{
    self, Frame, Hello, PROTOCOL_VERSION, RemoteMessage, Reply, Role, Target,
};

fn sink_pipeline(fd: &OwnedFd) -> gst::Pipeline {
    let pipeline = pipeline("videotestsrc ! rsipcpipelinesink name=sink ack-time=2000000");
    let sink = pipeline.by_name("sink").unwrap();
    sink.set_property("fdin", fd.as_raw_fd());
    sink.set_property("fdout", fd.as_raw_fd());
    pipeline
}

fn write_all(fd: &OwnedFd, data: &[u8]) {
    send_all(fd, data, &[]).unwrap();
}

fn error_text(pipeline: &gst::Pipeline) -> String {
    wait_error_from(pipeline, "sink", DEADLINE)
        .error
        .to_string()
}

fn hello() -> Vec<u8> {
    wire::encode(
        0,
        &Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Receiver,
            features: 0,
        }),
    )
}

#[test]
fn garbage_instead_of_a_greeting() {
    init();
    let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
    write_all(&peer, b"GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n");
    let pipeline = sink_pipeline(&ours);
    assert!(pipeline.set_state(gst::State::Playing).is_err());
    let text = error_text(&pipeline);
    assert!(text.contains("Could not connect"), "{text}");
    set_state(
        &pipeline,
        gst::State::Null,
        gst::StateChangeSuccess::Success,
    );
}

#[test]
fn a_peer_of_the_wrong_role() {
    init();
    let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
    let mut h = hello();
    h[wire::HEADER_LEN + 6] = Role::Sender as u8;
    write_all(&peer, &h);
    let pipeline = sink_pipeline(&ours);
    assert!(pipeline.set_state(gst::State::Playing).is_err());
    let text = error_text(&pipeline);
    assert!(text.contains("cannot work with"), "{text}");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn garbage_and_truncated_frames_after_the_greeting() {
    init();
    let forged_state = wire::encode(
        5,
        &Frame::Message(RemoteMessage {
            type_: gst::MessageType::AsyncStart,
            seqnum: 1,
            origin: "/slave".into(),
            structure: None,
        }),
    );
    let segment_without_segment = {
        let ev = wire::encode(
            5,
            &Frame::Event {
                target: Target::Pad,
                event: gst::event::Eos::new(),
            },
        );
        // Same body, but the type of a SEGMENT event: its segment field is missing.
        let mut ev = ev;
        let t = gst::EventType::Segment.into_glib() as u32;
        ev[wire::HEADER_LEN + 1..wire::HEADER_LEN + 5].copy_from_slice(&t.to_le_bytes());
        ev
    };
    let unknown_reply = wire::encode(999, &Frame::Reply(Reply::Bool(true)));
    let deep = {
        let mut s = gst::Structure::new_empty("deep");
        for _ in 0..40 {
            let mut outer = gst::Structure::new_empty("deep");
            outer.set("inner", s);
            s = outer;
        }
        wire::encode(
            0,
            &Frame::Message(RemoteMessage {
                type_: gst::MessageType::Element,
                seqnum: 1,
                origin: "/slave/deep".into(),
                structure: Some(s),
            }),
        )
    };
    let invalid = "invalid data from the peer";
    let broke = "peer broke the protocol";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown frame type",
            vec![4, 0, 0, 0, 99, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4],
            invalid,
        ),
        (
            "oversized length",
            vec![0xff, 0xff, 0xff, 0xff, 3, 0, 0, 0, 1, 0, 0, 0],
            invalid,
        ),
        // A message frame whose string length points past the end.
        (
            "truncated body",
            {
                let mut f = vec![9, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0];
                f.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff]);
                f
            },
            invalid,
        ),
        ("segment without segment", segment_without_segment, invalid),
        ("deep nesting", deep, "nesting deeper than"),
        (
            "forged ASYNC_START",
            forged_state,
            "stays in the pipeline that posts it",
        ),
        ("reply to a request never made", unknown_reply, broke),
        // A frame cut in the middle, then the peer goes away.
        (
            "cut frame",
            vec![100, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 2],
            "the peer closed",
        ),
    ];
    for (what, bytes, expected) in cases {
        let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
        write_all(&peer, &hello());
        // A fine greeting, then the garbage that breaks the link.
        write_all(&peer, &bytes);
        let pipeline = sink_pipeline(&ours);
        let cut = what == "cut frame";
        // The peer stays open while its garbage is read, unless it is meant to hang up.
        let _peer = if cut {
            drop(peer);
            None
        } else {
            Some(peer)
        };
        let _ = pipeline.set_state(gst::State::Playing);
        let text = error_text(&pipeline);
        assert!(text.contains(expected), "{what}: {text}");
        null_at_once(&pipeline, Duration::from_secs(2));
    }
}

/// A slave that answers a state change as if it were an event: an ERROR that says so.
#[test]
fn a_reply_of_the_wrong_kind() {
    let text = error_with_slave_answering(|h| {
        (h.frame_type == wire::FrameType::StateChange)
            .then(|| wire::encode(h.id, &Frame::Reply(Reply::Bool(true))))
    });
    assert!(text.contains("which takes a State reply"), "{text}");
}

/// A slave that answers the CAPS query of the master's source with success but no caps,
/// which `gst_pad_query_caps` would take a reference of: the protocol is broken.
#[test]
fn a_query_answered_without_its_result() {
    let text = error_with_slave_answering(|h| {
        let reply = match h.frame_type {
            wire::FrameType::StateChange => Reply::State(gst::StateChangeReturn::Success),
            wire::FrameType::Event => Reply::Bool(true),
            wire::FrameType::Query => Reply::Query {
                result: true,
                structure: None,
            },
            _ => return None,
        };
        Some(wire::encode(h.id, &Frame::Reply(reply)))
    });
    assert!(text.contains("which takes a Query(Caps) reply"), "{text}");
}

/// A slave that answers the latency query with a minimum of NONE, which GStreamer's setter
/// refuses and whose gstreamer-rs readers panic on.
#[test]
fn a_latency_answered_with_no_minimum() {
    let text = error_with_slave_answering(|h| {
        let reply = match h.frame_type {
            wire::FrameType::StateChange => Reply::State(gst::StateChangeReturn::Success),
            wire::FrameType::Event => Reply::Bool(true),
            // Every query: the CAPS query may take it (failed, with a field it ignores),
            // the LATENCY query may not.
            wire::FrameType::Query => Reply::Query {
                result: false,
                structure: Some(
                    gst::Structure::builder("GstQueryLatency")
                        .field("live", true)
                        .field("min-latency", gst::ffi::GST_CLOCK_TIME_NONE)
                        .field("max-latency", gst::ffi::GST_CLOCK_TIME_NONE)
                        .build(),
                ),
            },
            _ => return None,
        };
        Some(wire::encode(h.id, &Frame::Reply(reply)))
    });
    assert!(
        text.contains("which takes a Query(Latency) reply"),
        "{text}"
    );
}

/// A slave that answers a request twice: the second answer is an error, not a surprise for
/// the next request.
#[test]
fn a_reply_given_twice() {
    let text = error_with_slave_answering(|h| {
        (h.frame_type == wire::FrameType::StateChange).then(|| {
            let reply = wire::encode(
                h.id,
                &Frame::Reply(Reply::State(gst::StateChangeReturn::Success)),
            );
            [reply.clone(), reply].concat()
        })
    });
    // Whether the first answer was taken yet or not.
    assert!(
        text.contains("a second reply to request")
            || text.contains("answered already or never made"),
        "{text}"
    );
}

/// A master playing into a fake slave that greets, then answers each frame with `answer`:
/// the text of the sink's ERROR, once the master went to NULL at once.
fn error_with_slave_answering(
    answer: impl Fn(&wire::Header) -> Option<Vec<u8>> + Send + 'static,
) -> String {
    init();
    let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
    write_all(&peer, &hello());
    let server = serve(peer, answer);
    let pipeline = sink_pipeline(&ours);
    let _ = pipeline.set_state(gst::State::Playing);
    let text = error_text(&pipeline);
    null_at_once(&pipeline, Duration::from_secs(2));
    drop(pipeline);
    drop(ours);
    server.join().unwrap();
    text
}

/// A slave that floods the master with messages is cut off once it passes the limit.
#[test]
fn a_flood_of_messages() {
    init();
    let message = wire::encode(
        0,
        &Frame::Message(RemoteMessage {
            type_: gst::MessageType::Element,
            seqnum: 1,
            origin: "/slave/chatty".into(),
            structure: Some(gst::Structure::new_empty("chatter")),
        }),
    );
    let text = error_from_slave_sending(std::iter::repeat_n(message, 25_000).flatten());
    // Over the rate, or over what may wait on the lane, whichever the flood reaches first.
    assert!(text.contains("the peer went over a limit"), "{text}");
}

/// A slave that says again and again that it lost its state (a storm that would keep the
/// master's pipeline waiting for a preroll) is cut off like any other flood.
#[test]
fn a_storm_of_lost_state() {
    init();
    let lost = wire::encode(0, &Frame::StateLost);
    let text = error_from_slave_sending(std::iter::repeat_n(lost, 25_000).flatten());
    // Over the rate, or over what may wait on the lane, whichever the storm reaches first.
    assert!(text.contains("the peer went over a limit"), "{text}");
}

/// A slave that sends names the master never saw, each of which GStreamer would keep for
/// good, is cut off once it has brought a bounded amount of them.
#[test]
fn a_flood_of_new_names() {
    init();
    // One message of 64 fields with names of 200 bytes; each copy gets fresh names by
    // patching bytes, since this process, the sink's, must never have interned them.
    let names: Vec<String> = (0..64)
        .map(|i| format!("f{i:02}{}", "x".repeat(197)))
        .collect();
    let mut s = gst::Structure::new_empty("newnames");
    for name in &names {
        s.set(name.as_str(), 1i32);
    }
    let template = wire::encode(
        0,
        &Frame::Message(RemoteMessage {
            type_: gst::MessageType::Element,
            seqnum: 1,
            origin: "/slave/namer".into(),
            structure: Some(s),
        }),
    );
    let at: Vec<usize> = names
        .iter()
        .map(|n| {
            template
                .windows(n.len())
                .position(|w| w == n.as_bytes())
                .unwrap()
        })
        .collect();
    let mut fresh = 0u32;
    // 100 messages: 1.3 MB of names.
    let messages = std::iter::repeat_with(move || {
        let mut m = template.clone();
        for &a in &at {
            fresh += 1;
            m[a..a + 8].copy_from_slice(format!("q{fresh:07}").as_bytes());
        }
        m
    })
    .take(100)
    .flatten();
    let text = error_from_slave_sending(messages);
    assert!(text.contains("names this process never saw"), "{text}");
}

/// A master in READY fed `bytes` (after its greeting) by a fake slave: the text of the
/// sink's ERROR, once the master went to NULL at once.
fn error_from_slave_sending(bytes: impl Iterator<Item = u8>) -> String {
    init();
    let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
    let flood: Vec<u8> = hello().into_iter().chain(bytes).collect();
    let writer = std::thread::spawn(move || {
        // Cut off before the end, as it should be.
        let _ = send_all(&peer, &flood, &[]);
        peer
    });
    let pipeline = sink_pipeline(&ours);
    let _ = pipeline.set_state(gst::State::Ready);
    let text = error_text(&pipeline);
    assert!(
        text.contains("the peer went over a limit") || text.contains("never saw"),
        "{text}"
    );
    null_at_once(&pipeline, Duration::from_secs(2));
    drop(pipeline);
    drop(ours);
    drop(writer.join());
    text
}

/// A master that asks for state changes without waiting for their answers is cut off before
/// it can keep the slave pipeline changing state long after it moved on.
#[test]
fn a_storm_of_state_changes() {
    init();
    let mut master = FakeMaster::start(0);
    let storm: Vec<u8> = (0..1000u32)
        .flat_map(|i| {
            let (from, to) = if i % 2 == 0 {
                (gst::State::Paused, gst::State::Playing)
            } else {
                (gst::State::Playing, gst::State::Paused)
            };
            wire::encode(
                master.next_id(),
                &Frame::StateChange {
                    from,
                    to,
                    live: false,
                },
            )
        })
        .collect();
    let peer = master.peer.try_clone().unwrap();
    let stormer = std::thread::spawn(move || {
        let _ = send_all(&peer, &storm, &[]);
        peer
    });
    let text = master.error();
    assert!(text.contains("without waiting for their answers"), "{text}");
    master.finish(Some(stormer));
}

/// A master that sends buffers without waiting for its window fills no queue in the slave:
/// the src cuts it off.
#[test]
fn a_master_that_ignores_its_window() {
    init();
    let mut master = FakeMaster::start(0);
    // The first buffer prerolls the fakesink and blocks there; the others queue up.
    let first = master.next_id();
    let bytes: Vec<u8> = (0..3000u32)
        .flat_map(|i| {
            wire::encode(
                first + i,
                &Frame::Buffer(gst::Buffer::from_slice([0u8; 16])),
            )
        })
        .collect();
    // Written on a thread: once cut off, the src reads no more, and the write waits until
    // the socket is gone.
    let peer = master.peer.try_clone().unwrap();
    let flooder = std::thread::spawn(move || {
        let _ = send_all(&peer, &bytes, &[]);
        peer
    });
    let text = master.error();
    assert!(text.contains("queued without waiting"), "{text}");
    master.finish(Some(flooder));
}

/// Events out of the order GStreamer takes them (a segment after EOS) are the master's
/// error, not a warning from GStreamer and a stream that makes no sense.
#[test]
fn events_out_of_order() {
    init();
    let mut master = FakeMaster::start(0);
    // In PAUSED the sink would hold the EOS until PLAYING.
    master.send(&Frame::StateChange {
        from: gst::State::Paused,
        to: gst::State::Playing,
        live: false,
    });
    master.send(&Frame::Event {
        target: Target::Pad,
        event: gst::event::Eos::new(),
    });
    master.send(&Frame::Event {
        target: Target::Pad,
        event: gst::event::Segment::new(&gst::FormattedSegment::<gst::format::Bytes>::new()),
    });
    let text = master.error();
    assert!(text.contains("out of order: Segment after EOS"), "{text}");
    master.finish(None);
}

/// Sticky events given to the src element (a master sends one to the slave pipeline) are
/// refused: they come with the stream, which the src's task pushes in its order, and one
/// given to the element could overtake it. EOS and events that are not sticky still go.
#[test]
fn sticky_events_given_to_the_element_are_refused() {
    init();
    let master = FakeMaster::start(0);
    let src = master.slave.by_name("src").unwrap();
    let caps = gst::Caps::new_empty_simple("application/x-other");
    assert!(!src.send_event(gst::event::Caps::new(&caps)));
    assert!(!src.send_event(gst::event::Tag::new(gst::TagList::new())));
    let oob = gst::event::CustomDownstreamOob::new(gst::Structure::new_empty("oob"));
    assert!(src.send_event(oob));
    master.finish(None);
}

/// An upstream slave that gives its master a connection for a further stream that is no
/// socket, or more further streams than any file has: one ERROR each.
#[test]
fn further_streams_that_are_no_socket_or_too_many() {
    init();
    let upstream_hello = || {
        wire::encode(
            0,
            &Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                role: Role::UpstreamSender,
                features: wire::features::FD_MEMORY,
            }),
        )
    };
    let run = |fds: Vec<OwnedFd>| -> String {
        let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
        write_all(&peer, &upstream_hello());
        for (i, fd) in fds.iter().enumerate() {
            use std::os::fd::AsFd;
            let _ = send_all(&peer, &wire::encode_stream(i as u32 + 1), &[fd.as_fd()]);
        }
        let pipeline = pipeline("rsipcupstreamsrc name=up ack-time=2000000 ! fakesink");
        let up = pipeline.by_name("up").unwrap();
        up.set_property("fdin", ours.as_raw_fd());
        up.set_property("fdout", ours.as_raw_fd());
        let _ = pipeline.set_state(gst::State::Ready);
        let text = wait_error_from(&pipeline, "up", DEADLINE).error.to_string();
        null_at_once(&pipeline, Duration::from_secs(2));
        drop(peer);
        text
    };
    let memfd = rustix::fs::memfd_create("not-a-socket", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let text = run(vec![memfd]);
    assert!(text.contains("not a socket"), "{text}");
    // A socket, but one that could reach elsewhere, or one that cuts frames apart.
    for (family, kind) in [
        (
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
        ),
        (
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::DGRAM,
        ),
    ] {
        let socket = rustix::net::socket(family, kind, None).unwrap();
        let text = run(vec![socket]);
        assert!(text.contains("not a unix stream socket"), "{text}");
    }
    // Their other ends stay open: each is a working connection.
    let (sockets, _others): (Vec<OwnedFd>, Vec<OwnedFd>) = (0..40)
        .map(|_| gstrsipcpipeline::launcher::socketpair().unwrap())
        .unzip();
    let text = run(sockets);
    assert!(text.contains("more than 32 further streams"), "{text}");
}
