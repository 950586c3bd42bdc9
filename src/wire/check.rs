// SPDX-License-Identifier: MPL-2.0
//! The fields GStreamer relies on. Its `gst_event_parse_*`, `gst_query_parse_*` and
//! `gst_message_parse_*` functions read some fields without checking that they are there: a
//! SEGMENT event from the peer without its `segment` would be a NULL dereference in the
//! element that parses it. Every event, query and message of a well-known type must therefore
//! carry at least the fields GStreamer's own constructor puts in it, with the same types.
//!
//! The templates are built once by those constructors, so they follow the GStreamer in use.
//! Types without a template (custom events and queries, element messages, ...) have no
//! fields that GStreamer reads.

use std::collections::HashMap;
use std::sync::LazyLock;

use gst::glib;
use gst::glib::translate::IntoGlib;
use gst::prelude::*;

use super::WireError;

/// What GStreamer's constructor gives an object of one type: a structure or none, and its
/// fields. `optional`: the fields may be missing (GStreamer's setters add them).
struct Fields {
    structure: bool,
    optional: bool,
    fields: Vec<Field>,
}

/// A field's name and type, whether it holds a pointer there (caps, a segment, a string...)
/// rather than NULL, and for a list or array the same of its items (GStreamer reads the
/// streams of a SELECT_STREAMS event with `g_value_dup_string`, whatever they are).
struct Field {
    name: String,
    type_: glib::Type,
    filled: bool,
    items: Option<(glib::Type, bool)>,
}

impl Field {
    fn of(name: &str, value: &glib::Value) -> Field {
        Field {
            name: name.to_string(),
            type_: value.type_(),
            filled: !is_null(value),
            items: items(value)
                .and_then(|mut i| i.next())
                .map(|v| (v.type_(), !is_null(v))),
        }
    }

    /// Whether `value` has this field's type, and items of its items' type, filled where
    /// they are (`filled`: the field itself must be, too).
    fn fits(&self, value: &glib::Value, filled: bool) -> bool {
        let items_fit = match (self.items, items(value)) {
            (Some((t, filled)), Some(mut items)) => {
                items.all(|v| v.type_() == t && !(filled && is_null(v)))
            }
            _ => true,
        };
        value.type_() == self.type_ && !(filled && self.filled && is_null(value)) && items_fit
    }
}

/// The items of a list or array value.
fn items(value: &glib::Value) -> Option<std::slice::Iter<'_, glib::SendValue>> {
    if let Ok(list) = value.get::<gst::ListRef>() {
        Some(list.as_slice().iter())
    } else if let Ok(array) = value.get::<gst::ArrayRef>() {
        Some(array.as_slice().iter())
    } else {
        None
    }
}

fn fields(s: Option<&gst::StructureRef>) -> Fields {
    Fields {
        structure: s.is_some(),
        optional: false,
        fields: s
            .map(|s| {
                s.iter()
                    .map(|(name, value)| Field::of(name, value))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A value of a pointer type (string, boxed, object) that holds NULL.
pub(crate) fn is_null(value: &glib::Value) -> bool {
    use glib::gobject_ffi;
    let fundamental: glib::Type = unsafe {
        glib::translate::from_glib(gobject_ffi::g_type_fundamental(value.type_().into_glib()))
    };
    let pointer = [
        glib::Type::STRING,
        glib::Type::BOXED,
        glib::Type::OBJECT,
        glib::Type::POINTER,
    ]
    .contains(&fundamental);
    pointer && unsafe { gobject_ffi::g_value_peek_pointer(value.as_ptr()).is_null() }
}

static EVENTS: LazyLock<HashMap<i32, Fields>> = LazyLock::new(|| {
    use gst::event::*;
    let t = gst::ClockTime::ZERO;
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    let caps = gst::Caps::new_empty_simple("template/x-template");
    let collection = gst::StreamCollection::builder(None).build();
    [
        FlushStop::new(true),
        StreamStart::new("template"),
        Caps::new(&caps),
        Segment::new(&segment),
        Tag::new(gst::TagList::new()),
        Buffersize::new(gst::format::Bytes::ZERO, gst::format::Bytes::ZERO, false),
        StreamGroupDone::new(gst::GroupId::next()),
        Protection::new("template", &gst::Buffer::new()),
        SegmentDone::new(t),
        Gap::new(t, t),
        InstantRateChange::new(1.0, gst::SegmentFlags::empty()),
        Qos::new(gst::QOSType::Overflow, 1.0, 0, t),
        Seek::new(
            1.0,
            gst::SeekFlags::empty(),
            gst::SeekType::Set,
            t,
            gst::SeekType::None,
            t,
        ),
        Latency::new(t),
        Step::new(t, 1.0, false, false),
        TocSelect::new("template"),
        SelectStreams::new(["template"]),
        InstantRateSyncTime::new(1.0, t, t),
        Toc::new(&gst::Toc::new(gst::TocScope::Global), false),
        StreamCollection::new(&collection),
        SinkMessage::new("template", &gst::message::Eos::new()),
    ]
    .iter()
    .map(|e| (e.type_().into_glib(), fields(e.structure())))
    .collect()
});

static QUERIES: LazyLock<HashMap<i32, Fields>> = LazyLock::new(|| {
    use gst::query::*;
    let time = gst::Format::Time;
    let caps = gst::Caps::new_empty_simple("template/x-template");
    let queries: Vec<gst::Query> = vec![
        Position::new(time).into(),
        Duration::new(time).into(),
        Latency::new().into(),
        Seeking::new(time).into(),
        Segment::new(time).into(),
        Convert::new(gst::ClockTime::ZERO, time).into(),
        Formats::new().into(),
        Buffering::new(time).into(),
        Uri::new().into(),
        // An allocation query may come without caps: its readers check.
        Allocation::new(None::<&gst::Caps>, false).into(),
        Scheduling::new().into(),
        AcceptCaps::new(&caps).into(),
        Caps::new(None).into(),
        Drain::new().into(),
        Context::new("template").into(),
        Bitrate::new().into(),
        Selectable::new().into(),
    ];
    queries
        .iter()
        .map(|q| (q.type_().into_glib(), fields(q.structure())))
        .collect()
});

/// The fields a query may have once it is answered: GStreamer's setters add some
/// (`gst_query_set_context`, `gst_query_add_buffering_range`, ...) that a new query lacks.
static ANSWERS: LazyLock<HashMap<i32, Fields>> = LazyLock::new(|| {
    use gst::query::*;
    let time = gst::Format::Time;
    let mut context = Context::new("template");
    context.set_context(&gst::Context::new("template", false));
    let mut buffering = Buffering::new(time);
    buffering.add_buffering_ranges([(gst::ClockTime::ZERO, gst::ClockTime::SECOND)]);
    buffering.set_range(gst::ClockTime::ZERO, gst::ClockTime::ZERO, 0);
    let mut uri = Uri::new();
    uri.set_uri(Some("template:"));
    uri.set_redirection(Some("template:"), false);
    let mut formats = Formats::new();
    formats.set([time]);
    let mut bitrate = Bitrate::new();
    bitrate.set_bitrate(0);
    let mut selectable = Selectable::new();
    selectable.set_selectable(false);
    let queries: Vec<gst::Query> = vec![
        context.into(),
        buffering.into(),
        uri.into(),
        formats.into(),
        bitrate.into(),
        selectable.into(),
    ];
    queries
        .iter()
        .map(|q| (q.type_().into_glib(), fields(q.structure())))
        .collect()
});

/// Whether the answer `s` to a query of type `t` can be handed to its asker: a successful one
/// must hold the result that GStreamer's callers then take for granted (`gst_pad_query_caps`
/// refs the caps it reads, whoever asks for a context sets it on itself), and no answer may
/// hold a value GStreamer's setters refuse (a minimum latency of NONE).
pub fn usable_answer(t: gst::QueryType, result: bool, s: Option<&gst::StructureRef>) -> bool {
    let has_result = || {
        let (field, type_) = match t {
            gst::QueryType::Caps => ("caps", gst::Caps::static_type()),
            gst::QueryType::Context => ("context", gst::Context::static_type()),
            _ => return true,
        };
        s.and_then(|s| s.value(field).ok())
            .is_some_and(|v| v.type_() == type_ && !is_null(v))
    };
    (!result || has_result()) && values("query", QUERY_VALUES, t, s).is_ok()
}

/// Whether `value` may stand in the field `name` of an answered query of type `t`: `None`
/// when GStreamer gives such a query no such field.
pub fn answer_fits(t: gst::QueryType, name: &str, value: &glib::Value) -> Option<bool> {
    let t = t.into_glib();
    let field = [&*ANSWERS, &*QUERIES]
        .into_iter()
        .filter_map(|templates| templates.get(&t))
        .flat_map(|f| f.fields.iter())
        .find(|f| f.name == name)?;
    Some(field.fits(value, false))
}

static MESSAGES: LazyLock<HashMap<u32, Fields>> = LazyLock::new(|| {
    use gst::message::*;
    let t = gst::ClockTime::ZERO;
    let failed = gst::CoreError::Failed;
    let collection = gst::StreamCollection::builder(None).build();
    let stream = gst::Stream::new(
        Some("template"),
        None,
        gst::StreamType::UNKNOWN,
        gst::StreamFlags::empty(),
    );
    [
        Error::builder(failed, "template").build(),
        Warning::builder(failed, "template").build(),
        Info::builder(failed, "template").build(),
        Tag::builder(gst::TagList::new()).build(),
        Buffering::builder(0).build(),
        SegmentStart::builder(t).build(),
        SegmentDone::builder(t).build(),
        AsyncDone::builder().build(),
        RequestState::builder(gst::State::Playing).build(),
        Qos::builder(false).build(),
        Progress::builder(gst::ProgressType::Start, "template", "template").build(),
        ResetTime::builder(t).build(),
        StepDone::builder(t, 1.0, false, false, t, false).build(),
        StepStart::builder(false, t, 1.0, false, false).build(),
        Toc::builder(&gst::Toc::new(gst::TocScope::Global), false).build(),
        PropertyNotify::builder(&gst::Bin::new(), "template").build(),
        Redirect::builder("template").build(),
        InstantRateRequest::builder(1.0).build(),
        StreamStart::builder().build(),
        StreamCollection::builder(&collection).build(),
        StreamsSelected::builder(&collection)
            .streams([&stream])
            .build(),
        HaveContext::builder(gst::Context::new("template", false)).build(),
        NeedContext::builder("template").build(),
    ]
    .iter()
    .map(|m| (m.type_().into_glib(), fields(m.structure())))
    .collect()
});

/// Fields that GStreamer's setters add to an event or message made by its constructor
/// (`gst_event_set_group_id`, `gst_message_set_details`, ...). They may be missing, but when
/// present they must have the setter's type: GStreamer reads some without checking it
/// (`gst_message_parse_error_details` takes any boxed value for a structure,
/// `gst_message_parse_group_id` any value for an integer).
static OPTIONAL_EVENTS: LazyLock<HashMap<i32, Fields>> = LazyLock::new(|| {
    use gst::event::*;
    let t = gst::ClockTime::ZERO;
    [
        StreamStart::builder("template")
            .group_id(gst::GroupId::next())
            .build(),
        Protection::builder("template", &gst::Buffer::new())
            .origin("template")
            .build(),
        Gap::builder(t).gap_flags(gst::GapFlags::DATA).build(),
        Seek::builder(
            1.0,
            gst::SeekFlags::empty(),
            gst::SeekType::Set,
            t,
            gst::SeekType::None,
            t,
        )
        .trickmode_interval(t)
        .build(),
    ]
    .iter()
    .map(|e| {
        let kind = e.type_().into_glib();
        (kind, added(&EVENTS, kind, e.structure()))
    })
    .collect()
});

static OPTIONAL_MESSAGES: LazyLock<HashMap<u32, Fields>> = LazyLock::new(|| {
    use gst::message::*;
    let failed = gst::CoreError::Failed;
    let details = || gst::Structure::new_empty("template");
    [
        StreamStart::builder()
            .group_id(gst::GroupId::next())
            .build(),
        Error::builder(failed, "template")
            .details(details())
            .build(),
        Warning::builder(failed, "template")
            .details(details())
            .build(),
        Info::builder(failed, "template").details(details()).build(),
    ]
    .iter()
    .map(|m| {
        let kind = m.type_().into_glib();
        (kind, added(&MESSAGES, kind, m.structure()))
    })
    .collect()
});

/// The fields of `s` that the constructor's template of `kind` lacks.
fn added<K: std::hash::Hash + Eq>(
    templates: &HashMap<K, Fields>,
    kind: K,
    s: Option<&gst::StructureRef>,
) -> Fields {
    let required = templates.get(&kind);
    let fields = fields(s)
        .fields
        .into_iter()
        .filter(|f| !required.is_some_and(|r| r.fields.iter().any(|n| n.name == f.name)))
        .collect();
    Fields {
        structure: false,
        optional: true,
        fields,
    }
}

/// What GStreamer's constructors and setters take for some values (with
/// `g_return_val_if_fail`), which its elements and gstreamer-rs then take for granted:
/// `gst_segment_do_seek` asserts a seek's rate is not 0, gstreamer-rs panics on a LATENCY
/// query whose minimum is NONE (found by fuzzing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Rule {
    /// A clock time, never NONE.
    ValidTime,
    /// A playback rate: finite and not 0.
    Rate,
    /// A step's rate: finite and above 0.
    PositiveRate,
    /// A buffering level, 0 to 100.
    Percent,
}

impl Rule {
    /// A value of another type than the rule's is the template check's business.
    fn allows(self, v: &glib::Value) -> bool {
        match self {
            Rule::ValidTime => v.get::<u64>() != Ok(gst::ffi::GST_CLOCK_TIME_NONE),
            Rule::Rate => v.get::<f64>().map_or(true, |r| r.is_finite() && r != 0.0),
            Rule::PositiveRate => v.get::<f64>().map_or(true, |r| r.is_finite() && r > 0.0),
            Rule::Percent => v.get::<i32>().map_or(true, |p| (0..=100).contains(&p)),
        }
    }
}

pub(super) const EVENT_VALUES: &[(gst::EventType, &str, Rule)] = {
    use gst::EventType as E;
    &[
        (E::Gap, "timestamp", Rule::ValidTime),
        (E::Latency, "latency", Rule::ValidTime),
        (E::Seek, "rate", Rule::Rate),
        (E::Seek, "trickmode-interval", Rule::ValidTime),
        (E::Step, "rate", Rule::PositiveRate),
        (E::InstantRateChange, "rate", Rule::Rate),
        (E::InstantRateSyncTime, "rate", Rule::Rate),
        (E::InstantRateSyncTime, "running-time", Rule::ValidTime),
        (
            E::InstantRateSyncTime,
            "upstream-running-time",
            Rule::ValidTime,
        ),
    ]
};
pub(super) const QUERY_VALUES: &[(gst::QueryType, &str, Rule)] = &[
    (gst::QueryType::Latency, "min-latency", Rule::ValidTime),
    (gst::QueryType::Buffering, "buffer-percent", Rule::Percent),
];
pub(super) const MESSAGE_VALUES: &[(gst::MessageType, &str, Rule)] = {
    use gst::MessageType as M;
    &[
        (M::ResetTime, "running-time", Rule::ValidTime),
        (M::Buffering, "buffer-percent", Rule::Percent),
        (M::InstantRateRequest, "rate", Rule::Rate),
    ]
};

/// Checks the fields of `s` that `rules` name for an object of type `kind` (a missing field
/// is the template check's business).
fn values<K: PartialEq>(
    what: &'static str,
    rules: &[(K, &'static str, Rule)],
    kind: K,
    s: Option<&gst::StructureRef>,
) -> Result<(), WireError> {
    let Some(s) = s else { return Ok(()) };
    for (_, field, rule) in rules.iter().filter(|(k, _, _)| *k == kind) {
        if s.value(*field).is_ok_and(|v| !rule.allows(v)) {
            return Err(WireError::BadValue { what, field });
        }
    }
    Ok(())
}

/// A group id of 0 is GStreamer's "none": an element that passes it on to
/// `gst_message_set_group_id` (every base sink does) trips an assertion.
const GROUP_ID: &str = "group-id";

fn no_group(name: &str, value: &glib::Value) -> bool {
    name == GROUP_ID && value.get::<u32>() == Ok(0)
}

/// A field the template fills must be filled: readers take a tag list, a GError, a TOC, the
/// caps of an ACCEPT_CAPS query... for granted.
fn check<K: std::hash::Hash + Eq>(
    what: &'static str,
    templates: &HashMap<K, Fields>,
    kind: K,
    s: Option<&gst::StructureRef>,
) -> Result<(), WireError> {
    let Some(required) = templates.get(&kind) else {
        return Ok(());
    };
    // GStreamer's parsers read fields of a structure its constructor always makes.
    if required.structure && s.is_none() {
        return Err(WireError::NoStructure(what));
    }
    for field in &required.fields {
        let present = s.and_then(|s| s.value(field.name.as_str()).ok());
        if required.optional && present.is_none() {
            continue;
        }
        if !present.is_some_and(|v| field.fits(v, true) && !no_group(&field.name, v)) {
            return Err(WireError::MissingField {
                what,
                field: field.name.clone(),
            });
        }
    }
    Ok(())
}

/// Builds the templates. Building them also registers the enum and flags types they use
/// (`GstQOSType`, `GstSeekFlags`, ...), which the value decoder looks up by name: call this
/// before decoding anything.
pub fn init() {
    LazyLock::force(&EVENTS);
    LazyLock::force(&QUERIES);
    LazyLock::force(&ANSWERS);
    LazyLock::force(&MESSAGES);
    LazyLock::force(&OPTIONAL_EVENTS);
    LazyLock::force(&OPTIONAL_MESSAGES);
}

pub fn event(e: &gst::EventRef) -> Result<(), WireError> {
    let kind = e.type_().into_glib();
    check("event", &EVENTS, kind, e.structure())?;
    check("event", &OPTIONAL_EVENTS, kind, e.structure())?;
    values("event", EVENT_VALUES, e.type_(), e.structure())?;
    if let Some(s) = e.structure() {
        seek_and_qos(e.type_(), s)?;
    }
    // GStreamer builds CAPS events only from fixed caps, and asserts it when it reads them.
    if let gst::EventView::Caps(c) = e.view()
        && !c.caps().is_fixed()
    {
        return Err(WireError::UnfixedCaps);
    }
    Ok(())
}

pub fn query(q: &gst::QueryRef) -> Result<(), WireError> {
    check("query", &QUERIES, q.type_().into_glib(), q.structure())?;
    values("query", QUERY_VALUES, q.type_(), q.structure())?;
    // GStreamer builds ACCEPT_CAPS queries only from fixed caps, as CAPS events.
    if let gst::QueryView::AcceptCaps(a) = q.view()
        && !a.caps().is_fixed()
    {
        return Err(WireError::UnfixedCaps);
    }
    Ok(())
}

pub fn message(t: gst::MessageType, s: Option<&gst::StructureRef>) -> Result<(), WireError> {
    check("message", &MESSAGES, t.into_glib(), s)?;
    check("message", &OPTIONAL_MESSAGES, t.into_glib(), s)?;
    values("message", MESSAGE_VALUES, t, s)?;
    match (t, s) {
        (gst::MessageType::Redirect, Some(s)) => redirect(s),
        _ => Ok(()),
    }
}

/// A REDIRECT message keeps its entries in three lists that GStreamer reads side by side
/// (`gst_message_parse_redirect_entry`) without checking that they are as long as each other
/// (their items are checked against the template).
fn redirect(s: &gst::StructureRef) -> Result<(), WireError> {
    let lists = [
        "redirect-entry-locations",
        "redirect-entry-taglists",
        "redirect-entry-structures",
    ];
    let mut len = None;
    for field in lists {
        let list = s.get::<gst::ListRef>(field).ok();
        if list.is_none_or(|l| *len.get_or_insert(l.len()) != l.len()) {
            return Err(WireError::MissingField {
                what: "message",
                field: field.to_string(),
            });
        }
    }
    Ok(())
}

/// What `gst_event_new_seek` and `gst_event_new_qos` refuse across fields: an instant rate
/// change that also moves or flushes, and a QoS event whose diff puts it before time 0.
fn seek_and_qos(t: gst::EventType, s: &gst::StructureRef) -> Result<(), WireError> {
    let bad = |field| {
        Err(WireError::BadValue {
            what: "event",
            field,
        })
    };
    match t {
        gst::EventType::Seek => {
            let flags = s
                .get::<gst::SeekFlags>("flags")
                .unwrap_or(gst::SeekFlags::empty());
            let moves = ["cur-type", "stop-type"].iter().any(|f| {
                s.get::<gst::SeekType>(*f)
                    .is_ok_and(|t| t != gst::SeekType::None)
            });
            if flags.contains(gst::SeekFlags::INSTANT_RATE_CHANGE)
                && (moves || flags.contains(gst::SeekFlags::FLUSH))
            {
                return bad("flags");
            }
        }
        gst::EventType::Qos => {
            let diff = s.get::<i64>("diff").unwrap_or_default();
            let timestamp = s.get::<u64>("timestamp").unwrap_or_default();
            if diff < 0 && diff.unsigned_abs() > timestamp {
                return bad("diff");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Messages that concern only the pipeline they are posted in (its own state, clock, threads
/// and structure) or that carry objects which cannot cross (a clock, a thread, a device). A
/// slave never forwards them, and a master refuses them: they would steer its state handling,
/// or lack the object their readers take for granted.
pub fn stays_local(t: gst::MessageType) -> bool {
    use gst::MessageType as M;
    matches!(
        t,
        M::StateChanged
            | M::AsyncStart
            | M::ClockProvide
            | M::ClockLost
            | M::NewClock
            | M::StreamStatus
            | M::StructureChange
            | M::DeviceAdded
            | M::DeviceRemoved
            | M::DeviceChanged
    )
}
