// SPDX-License-Identifier: MPL-2.0
//! The objects inside events, queries and messages are rebuilt on the other side with all
//! their content, and GArrays cross only where GStreamer keeps buffering ranges.

use super::codec::Writer;
use super::*;

fn round_trip(frame: &Frame) -> Frame {
    let bytes = encode(7, frame);
    let header = Header::decode(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
    decode(&header, bytes[HEADER_LEN..].to_vec()).unwrap()
}

fn event(e: gst::Event) -> gst::Event {
    match round_trip(&Frame::Event {
        target: Target::Pad,
        event: e,
    }) {
        Frame::Event { event, .. } => event,
        _ => unreachable!(),
    }
}

fn query(q: impl Into<gst::Query>) -> gst::Query {
    match round_trip(&Frame::Query {
        target: Target::Pad,
        query: q.into(),
    }) {
        Frame::Query { query, .. } => query,
        _ => unreachable!(),
    }
}

fn message(m: gst::Message) -> gst::Message {
    let Frame::Message(back) = round_trip(&Frame::Message(RemoteMessage {
        type_: m.type_(),
        seqnum: 1,
        origin: String::new(),
        structure: m.structure().map(|s| s.to_owned()),
    })) else {
        unreachable!()
    };
    unsafe {
        use gst::glib::translate::*;
        from_glib_full(gst::ffi::gst_message_new_custom(
            back.type_.into_glib(),
            std::ptr::null_mut(),
            back.structure.unwrap().into_glib_ptr(),
        ))
    }
}

fn stream() -> gst::Stream {
    let mut tags = gst::TagList::new();
    tags.make_mut()
        .add::<gst::tags::LanguageCode>(&"fr", gst::TagMergeMode::Append);
    let s = gst::Stream::new(
        Some("upstream/audio"),
        Some(&gst::Caps::new_empty_simple("audio/x-raw")),
        gst::StreamType::AUDIO,
        gst::StreamFlags::SELECT,
    );
    s.set_tags(Some(&tags));
    s
}

fn same_stream(a: &gst::Stream, b: &gst::Stream) {
    assert_eq!(a.stream_id(), b.stream_id());
    assert_eq!(a.caps(), b.caps());
    assert_eq!(a.tags(), b.tags());
    assert_eq!(a.stream_type(), b.stream_type());
    assert_eq!(a.stream_flags(), b.stream_flags());
}

fn toc() -> gst::Toc {
    let mut toc = gst::Toc::new(gst::TocScope::Global);
    let mut edition = gst::TocEntry::new(gst::TocEntryType::Edition, "ed");
    for (i, uid) in ["ch1", "ch2"].iter().enumerate() {
        let mut ch = gst::TocEntry::new(gst::TocEntryType::Chapter, uid);
        let c = ch.get_mut().unwrap();
        c.set_start_stop_times(i as i64 * 10, i as i64 * 10 + 10);
        c.set_loop(gst::TocLoopType::Forward, 2);
        let mut tags = gst::TagList::new();
        tags.make_mut()
            .add::<gst::tags::Title>(uid, gst::TagMergeMode::Append);
        c.set_tags(tags);
        edition.get_mut().unwrap().append_sub_entry(ch);
    }
    toc.get_mut().unwrap().append_entry(edition);
    toc
}

#[test]
fn stream_start_keeps_its_stream() {
    gst::init().unwrap();
    let s = stream();
    let group = gst::GroupId::next();
    let back = event(
        gst::event::StreamStart::builder("upstream/audio")
            .group_id(group)
            .flags(gst::StreamFlags::SPARSE)
            .stream(s.clone())
            .build(),
    );
    let gst::EventView::StreamStart(ss) = back.view() else {
        panic!()
    };
    assert_eq!(ss.stream_id(), "upstream/audio");
    assert_eq!(ss.group_id(), Some(group));
    assert_eq!(ss.stream_flags(), gst::StreamFlags::SPARSE);
    same_stream(&ss.stream().unwrap(), &s);
}

#[test]
fn collections_and_selected_streams() {
    gst::init().unwrap();
    let (a, b) = (
        stream(),
        gst::Stream::new(
            Some("v"),
            None,
            gst::StreamType::VIDEO,
            gst::StreamFlags::empty(),
        ),
    );
    let coll = gst::StreamCollection::builder(Some("demux"))
        .streams([a.clone(), b.clone()])
        .build();
    let check = |c: &gst::StreamCollection| {
        assert_eq!(c.upstream_id().as_deref(), Some("demux"));
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got.len(), 2);
        same_stream(&got[0], &a);
        same_stream(&got[1], &b);
    };
    let e = event(gst::event::StreamCollection::new(&coll));
    let gst::EventView::StreamCollection(e) = e.view() else {
        panic!()
    };
    check(&e.stream_collection());

    let m = message(
        gst::message::StreamsSelected::builder(&coll)
            .streams([b.clone()])
            .build(),
    );
    let gst::MessageView::StreamsSelected(m) = m.view() else {
        panic!()
    };
    check(&m.stream_collection());
    let selected: Vec<_> = m.streams().collect();
    assert_eq!(selected.len(), 1);
    same_stream(&selected[0], &b);
}

#[test]
fn toc_keeps_every_entry() {
    gst::init().unwrap();
    let sent = toc();
    let describe = |t: &gst::TocRef| {
        fn walk(e: &gst::TocEntry, out: &mut Vec<String>) {
            out.push(format!(
                "{:?} {} {:?} {:?} {:?}",
                e.entry_type(),
                e.uid(),
                e.start_stop_times(),
                e.loop_(),
                e.tags()
            ));
            e.sub_entries().iter().for_each(|s| walk(s, out));
        }
        let mut out = vec![format!("{:?}", t.scope())];
        t.entries().iter().for_each(|e| walk(e, &mut out));
        out
    };
    let e = event(gst::event::Toc::new(&sent, true));
    let gst::EventView::Toc(e) = e.view() else {
        panic!()
    };
    let (got, updated) = e.toc();
    assert!(updated);
    assert_eq!(describe(got), describe(&sent));
    assert_eq!(describe(got).len(), 4);

    let m = message(gst::message::Toc::new(&sent, false));
    let gst::MessageView::Toc(m) = m.view() else {
        panic!()
    };
    assert_eq!(describe(&m.toc().0), describe(&sent));
}

#[test]
fn sink_message_carries_its_message() {
    gst::init().unwrap();
    let inner = gst::message::Element::builder(
        gst::Structure::builder("app-note").field("n", 5i32).build(),
    )
    .build();
    let seqnum = inner.seqnum();
    let back = event(gst::event::SinkMessage::new("note", &inner));
    let gst::EventView::SinkMessage(sm) = back.view() else {
        panic!()
    };
    let m = sm.message();
    assert_eq!(m.type_(), gst::MessageType::Element);
    assert_eq!(m.seqnum(), seqnum);
    assert_eq!(m.structure().unwrap().get::<i32>("n").unwrap(), 5);
    assert!(m.src().is_none());
}

#[test]
fn contexts_cross_with_their_structure() {
    gst::init().unwrap();
    let mut ctx = gst::Context::new("app.shared.thing", true);
    ctx.get_mut().unwrap().structure_mut().set("handle", 42u64);
    let mut q = gst::query::Context::new("app.shared.thing");
    q.set_context(&ctx);
    let back = query(q);
    let gst::QueryView::Context(c) = back.view() else {
        panic!()
    };
    let got = c.context().unwrap();
    assert_eq!(got.context_type(), "app.shared.thing");
    assert!(got.is_persistent());
    assert_eq!(got.structure().get::<u64>("handle").unwrap(), 42);

    let m = message(gst::message::HaveContext::new(ctx));
    let gst::MessageView::HaveContext(h) = m.view() else {
        panic!()
    };
    assert_eq!(h.context().structure().get::<u64>("handle").unwrap(), 42);
}

#[test]
fn buffering_ranges_cross() {
    gst::init().unwrap();
    let mut q = gst::query::Buffering::new(gst::Format::Bytes);
    let b = gst::format::Bytes::from_u64;
    q.add_buffering_ranges([(b(0), b(10)), (b(50), b(70))]);
    let back = query(q);
    let gst::QueryView::Buffering(q) = back.view() else {
        panic!()
    };
    let ranges: Vec<_> = q.ranges().map(|(s, e)| (s.value(), e.value())).collect();
    assert_eq!(ranges, vec![(0, 10), (50, 70)]);
}

#[test]
fn ranges_anywhere_else_are_refused() {
    gst::init().unwrap();
    // An allocation query whose "meta" GArray is made of numbers would be read as pointers.
    let mut w = Writer::with_capacity(64);
    w.str("GstQueryAllocation");
    w.u32(1);
    w.str("meta");
    w.u8(33);
    w.u32(1);
    w.i64(1);
    w.i64(2);
    let bytes = w.into_inner();
    let mut r = codec::Reader::new(&bytes);
    assert!(value::decode_structure(&mut r, 0).is_err());
}

#[test]
fn objects_without_their_fields_are_refused() {
    gst::init().unwrap();
    for t in [
        gst::EventType::Toc,
        gst::EventType::StreamCollection,
        gst::EventType::SinkMessage,
    ] {
        let e: gst::Event = unsafe {
            use gst::glib::translate::*;
            from_glib_full(gst::ffi::gst_event_new_custom(
                t.into_glib(),
                gst::Structure::new_empty("bare").into_glib_ptr(),
            ))
        };
        let bytes = encode(
            1,
            &Frame::Event {
                target: Target::Pad,
                event: e,
            },
        );
        let header = Header::decode(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert!(
            matches!(
                decode(&header, bytes[HEADER_LEN..].to_vec()),
                Err(WireError::MissingField { .. })
            ),
            "{t:?}"
        );
    }
}

#[test]
fn answers_fill_a_fresh_query() {
    gst::init().unwrap();
    // The slave answers its copy; the master's own query object gets the answer.
    let mut answered = gst::query::Context::new("app.thing");
    let mut ctx = gst::Context::new("app.thing", false);
    ctx.get_mut().unwrap().structure_mut().set("v", 3i32);
    answered.set_context(&ctx);
    let mut mine = gst::query::Context::new("app.thing");
    let reply = query(answered);
    crate::link::apply_query_reply(&mut mine, reply.structure());
    assert_eq!(
        mine.context().unwrap().structure().get::<i32>("v").unwrap(),
        3
    );

    let mut answered = gst::query::Buffering::new(gst::Format::Bytes);
    let b = gst::format::Bytes::from_u64;
    answered.add_buffering_ranges([(b(1), b(2))]);
    let mut mine = gst::query::Buffering::new(gst::Format::Bytes);
    let reply = query(answered);
    crate::link::apply_query_reply(&mut mine, reply.structure());
    assert_eq!(mine.ranges().len(), 1);

    // A field of the wrong type is not taken.
    let mut forged = gst::Structure::new_empty("GstQueryContext");
    forged.set("context", "not a context");
    let mut mine = gst::query::Context::new("app.thing");
    crate::link::apply_query_reply(&mut mine, Some(&forged));
    assert!(mine.context().is_none());
}

/// Frames holding every kind of object, and a buffer with every meta, cut at every byte and
/// with every byte changed: a typed error or a valid frame each time, never a panic.
#[test]
fn damaged_object_frames_never_panic() {
    gst::init().unwrap();
    let coll = gst::StreamCollection::builder(Some("up"))
        .stream(stream())
        .build();
    let mut ctx = gst::Query::from(gst::query::Context::new("app.ctx"));
    if let gst::QueryViewMut::Context(c) = ctx.make_mut().view_mut() {
        c.set_context(&gst::Context::new("app.ctx", true));
    }
    let mut buffering = gst::query::Buffering::new(gst::Format::Bytes);
    let b = gst::format::Bytes::from_u64;
    buffering.add_buffering_ranges([(b(1), b(2)), (b(3), b(4))]);
    let pad = |event| Frame::Event {
        target: Target::Pad,
        event,
    };
    let frames = [
        pad(gst::event::StreamStart::builder("s")
            .stream(stream())
            .build()),
        pad(gst::event::Toc::new(&toc(), false)),
        pad(gst::event::StreamCollection::new(&coll)),
        pad(gst::event::SinkMessage::new("m", &gst::message::Eos::new())),
        Frame::Query {
            target: Target::Pad,
            query: ctx,
        },
        Frame::Query {
            target: Target::Pad,
            query: buffering.into(),
        },
        Frame::Context(gst::Context::new("app.ctx", false)),
        Frame::Buffer(super::metas_tests::frame_with_every_meta()),
    ];
    for frame in &frames {
        let good = encode(1, frame);
        let header = Header::decode(good[..HEADER_LEN].try_into().unwrap()).unwrap();
        for cut in HEADER_LEN..good.len() {
            let mut h = header;
            h.len = (cut - HEADER_LEN) as u32;
            assert!(decode(&h, good[HEADER_LEN..cut].to_vec()).is_err());
        }
        for at in HEADER_LEN..good.len() {
            for v in [0u8, 0x7f, 0x80, 0xff, good[at] ^ 1] {
                let mut body = good[HEADER_LEN..].to_vec();
                body[at - HEADER_LEN] = v;
                let _ = decode(&header, body);
            }
        }
    }
}
