// SPDX-License-Identifier: MPL-2.0
//! Typed binary encoding of the GStreamer values that travel inside structures, caps, events,
//! queries and messages.
//!
//! Nothing is ever turned into text and parsed back: each supported GType has a tag and a fixed
//! layout. A value of any other type (objects, pointers, ...) is left out when encoding, with a
//! debug line, so that the peer never sees a half-understood value. On decoding, every value is
//! validated before GStreamer sees it, because GLib answers bad input with criticals or aborts
//! (zero denominators, empty ranges, invalid structure names).

use std::sync::LazyLock;

use gst::glib;
use gst::glib::translate::*;
use gst::prelude::*;

use super::WireError;
use super::codec::{Reader, Writer};
use super::objects;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcwire",
        gst::DebugColorFlags::empty(),
        Some("rsipcpipeline wire format"),
    )
});

/// Nesting of structures, caps, lists and tag lists inside each other.
pub const MAX_DEPTH: usize = 16;
/// Fields in one structure, structures in one caps, items in one list, tags in one tag list.
pub const MAX_ITEMS: usize = 4096;

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum Tag {
    Bool = 1,
    I32 = 2,
    U32 = 3,
    I64 = 4,
    U64 = 5,
    F32 = 6,
    F64 = 7,
    String = 8,
    Fraction = 9,
    IntRange = 10,
    Int64Range = 11,
    DoubleRange = 12,
    FractionRange = 13,
    List = 14,
    Array = 15,
    Structure = 16,
    Caps = 17,
    CapsFeatures = 18,
    Buffer = 19,
    DateTime = 20,
    TagList = 21,
    Segment = 22,
    Bitmask = 23,
    Enum = 24,
    Flags = 25,
    Error = 26,
    FlagSet = 27,
    Stream = 28,
    StreamCollection = 29,
    Toc = 30,
    Context = 31,
    Message = 32,
    /// Only as the buffering ranges of a buffering query, see [`objects::RANGES_FIELD`].
    Ranges = 33,
}

impl TryFrom<u8> for Tag {
    type Error = WireError;
    fn try_from(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            1 => Tag::Bool,
            2 => Tag::I32,
            3 => Tag::U32,
            4 => Tag::I64,
            5 => Tag::U64,
            6 => Tag::F32,
            7 => Tag::F64,
            8 => Tag::String,
            9 => Tag::Fraction,
            10 => Tag::IntRange,
            11 => Tag::Int64Range,
            12 => Tag::DoubleRange,
            13 => Tag::FractionRange,
            14 => Tag::List,
            15 => Tag::Array,
            16 => Tag::Structure,
            17 => Tag::Caps,
            18 => Tag::CapsFeatures,
            19 => Tag::Buffer,
            20 => Tag::DateTime,
            21 => Tag::TagList,
            22 => Tag::Segment,
            23 => Tag::Bitmask,
            24 => Tag::Enum,
            25 => Tag::Flags,
            26 => Tag::Error,
            27 => Tag::FlagSet,
            28 => Tag::Stream,
            29 => Tag::StreamCollection,
            30 => Tag::Toc,
            31 => Tag::Context,
            32 => Tag::Message,
            33 => Tag::Ranges,
            _ => return Err(WireError::UnknownValueType(v)),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Writes `value` and returns true, or writes nothing and returns false when its type is not
/// one we carry.
pub fn encode_value(w: &mut Writer, value: &glib::Value) -> bool {
    if unprintable_null(value) {
        return false;
    }
    let t = value.type_();
    macro_rules! simple {
        ($tag:expr, $ty:ty, $put:ident) => {{
            w.u8($tag as u8);
            w.$put(value.get::<$ty>().unwrap());
            true
        }};
    }
    if t == bool::static_type() {
        simple!(Tag::Bool, bool, bool)
    } else if t == i32::static_type() {
        simple!(Tag::I32, i32, i32)
    } else if t == u32::static_type() {
        simple!(Tag::U32, u32, u32)
    } else if t == i64::static_type() {
        simple!(Tag::I64, i64, i64)
    } else if t == u64::static_type() {
        simple!(Tag::U64, u64, u64)
    } else if t == f32::static_type() {
        simple!(Tag::F32, f32, f32)
    } else if t == f64::static_type() {
        simple!(Tag::F64, f64, f64)
    } else if t == String::static_type() {
        w.u8(Tag::String as u8);
        put_opt(w, value.get::<Option<&str>>().unwrap(), |w, s| w.str(s));
        true
    } else if t == gst::Fraction::static_type() {
        let f = value.get::<gst::Fraction>().unwrap();
        w.u8(Tag::Fraction as u8);
        put_fraction(w, f);
        true
    } else if t == gst::IntRange::<i32>::static_type() {
        let r = value.get::<gst::IntRange<i32>>().unwrap();
        w.u8(Tag::IntRange as u8);
        w.i32(r.min());
        w.i32(r.max());
        w.i32(r.step());
        true
    } else if t == gst::IntRange::<i64>::static_type() {
        let r = value.get::<gst::IntRange<i64>>().unwrap();
        w.u8(Tag::Int64Range as u8);
        w.i64(r.min());
        w.i64(r.max());
        w.i64(r.step());
        true
    } else if t == double_range_type() {
        let p = value.to_glib_none().0;
        w.u8(Tag::DoubleRange as u8);
        unsafe {
            w.f64(gst::ffi::gst_value_get_double_range_min(p));
            w.f64(gst::ffi::gst_value_get_double_range_max(p));
        }
        true
    } else if t == gst::FractionRange::static_type() {
        let r = value.get::<gst::FractionRange>().unwrap();
        w.u8(Tag::FractionRange as u8);
        put_fraction(w, r.min());
        put_fraction(w, r.max());
        true
    } else if t == gst::List::static_type() {
        w.u8(Tag::List as u8);
        put_values(w, value.get::<gst::ListRef>().unwrap().as_slice());
        true
    } else if t == gst::Array::static_type() {
        w.u8(Tag::Array as u8);
        put_values(w, value.get::<gst::ArrayRef>().unwrap().as_slice());
        true
    } else if t == gst::Structure::static_type() {
        w.u8(Tag::Structure as u8);
        put_opt(
            w,
            value.get::<Option<&gst::StructureRef>>().unwrap(),
            encode_structure,
        );
        true
    } else if t == gst::Caps::static_type() {
        w.u8(Tag::Caps as u8);
        put_opt(
            w,
            value.get::<Option<gst::Caps>>().unwrap().as_ref(),
            |w, c| encode_caps(w, c),
        );
        true
    } else if t == gst::CapsFeatures::static_type() {
        w.u8(Tag::CapsFeatures as u8);
        let f = value.get::<Option<gst::CapsFeatures>>().unwrap();
        put_opt(w, f.as_deref(), put_features);
        true
    } else if t == gst::Buffer::static_type() {
        w.u8(Tag::Buffer as u8);
        put_opt(
            w,
            value.get::<Option<gst::Buffer>>().unwrap().as_ref(),
            |w, b| {
                w.u32(b.flags().bits());
                match b.map_readable() {
                    Ok(m) => w.bytes(m.as_slice()),
                    Err(_) => w.bytes(&[]),
                }
            },
        );
        true
    } else if t == gst::DateTime::static_type() {
        w.u8(Tag::DateTime as u8);
        put_opt(
            w,
            value.get::<Option<gst::DateTime>>().unwrap().as_ref(),
            put_date_time,
        );
        true
    } else if t == gst::TagList::static_type() {
        w.u8(Tag::TagList as u8);
        put_opt(
            w,
            value.get::<Option<gst::TagList>>().unwrap().as_ref(),
            |w, t| encode_tag_list(w, t),
        );
        true
    } else if t == gst::Segment::static_type() {
        w.u8(Tag::Segment as u8);
        encode_segment(w, &value.get::<gst::Segment>().unwrap());
        true
    } else if t == gst::Bitmask::static_type() {
        w.u8(Tag::Bitmask as u8);
        w.u64(value.get::<gst::Bitmask>().unwrap().0);
        true
    } else if t == glib::Error::static_type() {
        w.u8(Tag::Error as u8);
        put_opt(
            w,
            value.get::<Option<glib::Error>>().unwrap().as_ref(),
            |w, e| {
                let raw: *const glib::ffi::GError = e.to_glib_none().0;
                w.str(e.domain().as_str());
                w.i32(unsafe { (*raw).code });
                w.str(e.message());
            },
        );
        true
    } else if t.is_a(glib::Type::ENUM) {
        w.u8(Tag::Enum as u8);
        w.str(t.name());
        w.i32(unsafe { glib::gobject_ffi::g_value_get_enum(value.to_glib_none().0) });
        true
    } else if t.is_a(glib::Type::FLAGS) {
        w.u8(Tag::Flags as u8);
        w.str(t.name());
        w.u32(unsafe { glib::gobject_ffi::g_value_get_flags(value.to_glib_none().0) });
        true
    } else if t.is_a(flag_set_type()) {
        w.u8(Tag::FlagSet as u8);
        w.str(t.name());
        let p = value.to_glib_none().0;
        unsafe {
            w.u32(gst::ffi::gst_value_get_flagset_flags(p));
            w.u32(gst::ffi::gst_value_get_flagset_mask(p));
        }
        true
    } else if t.is_a(gst::Stream::static_type()) {
        w.u8(Tag::Stream as u8);
        put_opt(
            w,
            value.get::<Option<gst::Stream>>().unwrap().as_ref(),
            objects::encode_stream,
        );
        true
    } else if t.is_a(gst::StreamCollection::static_type()) {
        w.u8(Tag::StreamCollection as u8);
        put_opt(
            w,
            value
                .get::<Option<gst::StreamCollection>>()
                .unwrap()
                .as_ref(),
            objects::encode_collection,
        );
        true
    } else if t == gst::Toc::static_type() {
        w.u8(Tag::Toc as u8);
        put_opt(
            w,
            value.get::<Option<gst::Toc>>().unwrap().as_ref(),
            |w, t| objects::encode_toc(w, t),
        );
        true
    } else if t == gst::Context::static_type() {
        w.u8(Tag::Context as u8);
        put_opt(
            w,
            value.get::<Option<gst::Context>>().unwrap().as_ref(),
            |w, c| objects::encode_context(w, c),
        );
        true
    } else if t == gst::Message::static_type() {
        w.u8(Tag::Message as u8);
        put_opt(
            w,
            value.get::<Option<gst::Message>>().unwrap().as_ref(),
            |w, m| objects::encode_message(w, m),
        );
        true
    } else {
        gst::debug!(CAT, "not carrying a value of type {}", t.name());
        false
    }
}

fn put_opt<T: ?Sized>(w: &mut Writer, v: Option<&T>, f: impl FnOnce(&mut Writer, &T)) {
    match v {
        Some(v) => {
            w.bool(true);
            f(w, v);
        }
        None => w.bool(false),
    }
}

fn put_fraction(w: &mut Writer, f: gst::Fraction) {
    w.i32(f.numer());
    w.i32(f.denom());
}

fn put_values(w: &mut Writer, values: &[glib::SendValue]) {
    let at = w.placeholder_u32();
    let n = values
        .iter()
        .filter(|v| match stand_in(v) {
            Some(empty) => encode_value(w, &empty),
            None => encode_value(w, v),
        })
        .count();
    w.patch_u32(at, n as u32);
}

/// GStreamer cannot print a NULL structure, tag list or caps features (it asserts) or
/// segment (it crashes), as any debug log or application may: they never cross as NULL. The
/// decoder refuses them, and a field holding one is left out.
fn unprintable_null(value: &glib::Value) -> bool {
    let t = value.type_();
    let unprintable = [
        gst::Structure::static_type(),
        gst::TagList::static_type(),
        gst::CapsFeatures::static_type(),
        gst::Segment::static_type(),
    ];
    unprintable.contains(&t) && super::check::is_null(value)
}

/// GStreamer's own REDIRECT messages leave an entry's tag list or structure NULL: in a list,
/// an empty one stands in for it, so that the entries still line up.
fn stand_in(value: &glib::Value) -> Option<glib::Value> {
    if !unprintable_null(value) {
        return None;
    }
    let t = value.type_();
    Some(if t == gst::Structure::static_type() {
        gst::Structure::new_empty("empty").to_value()
    } else if t == gst::TagList::static_type() {
        gst::TagList::new().to_value()
    } else if t == gst::CapsFeatures::static_type() {
        gst::CapsFeatures::new_empty().to_value()
    } else {
        gst::Segment::new().to_value()
    })
}

fn put_features(w: &mut Writer, f: &gst::CapsFeaturesRef) {
    w.bool(f.is_any());
    w.len32(f.size());
    for name in f.iter() {
        w.str(name);
    }
}

fn put_date_time(w: &mut Writer, d: &gst::DateTime) {
    // The presence bits say which of the optional parts are meaningful, exactly like
    // GstDateTime itself (a year alone, a date without time, a time without seconds).
    let bits = d.has_month() as u8
        | (d.has_day() as u8) << 1
        | (d.has_time() as u8) << 2
        | (d.has_second() as u8) << 3;
    w.u8(bits);
    w.i32(d.year());
    w.i32(d.month().unwrap_or(0));
    w.i32(d.day().unwrap_or(0));
    w.i32(d.hour().unwrap_or(0));
    w.i32(d.minute().unwrap_or(0));
    let secs = d.second().unwrap_or(0) as f64 + d.microsecond().unwrap_or(0) as f64 / 1e6;
    w.f64(secs);
    w.f32(d.time_zone_offset().unwrap_or(0.0));
}

pub fn encode_structure(w: &mut Writer, s: &gst::StructureRef) {
    w.str(s.name());
    let at = w.placeholder_u32();
    let mut n = 0u32;
    let with_ranges = s.name() == objects::RANGES_STRUCTURE;
    for (name, value) in s.iter() {
        let mark = w.len();
        w.str(name);
        if with_ranges && name == objects::RANGES_FIELD && objects::is_garray(value) {
            w.u8(Tag::Ranges as u8);
            objects::encode_ranges(w, value);
            n += 1;
        } else if encode_value(w, value) {
            n += 1;
        } else {
            // Take the field name back out: the field is not sent at all.
            w.truncate(mark);
            gst::debug!(CAT, "dropping field {}.{}", s.name(), name);
        }
    }
    w.patch_u32(at, n);
}

pub fn encode_caps(w: &mut Writer, caps: &gst::CapsRef) {
    w.bool(caps.is_any());
    w.len32(caps.size());
    for (s, f) in caps.iter_with_features() {
        encode_structure(w, s);
        put_features(w, f);
    }
}

pub fn encode_tag_list(w: &mut Writer, tags: &gst::TagListRef) {
    w.u8(match tags.scope() {
        gst::TagScope::Global => 1,
        _ => 0,
    });
    let at = w.placeholder_u32();
    let mut n = 0u32;
    for (name, values) in tags.iter_generic() {
        w.str(name);
        let vals: Vec<glib::SendValue> = values.cloned().collect();
        put_values(w, &vals);
        n += 1;
    }
    w.patch_u32(at, n);
}

pub fn encode_segment(w: &mut Writer, seg: &gst::Segment) {
    let raw: &gst::ffi::GstSegment = unsafe { &*seg.to_glib_none().0 };
    w.u32(raw.flags);
    w.f64(raw.rate);
    w.f64(raw.applied_rate);
    w.i32(raw.format);
    for v in [
        raw.base,
        raw.offset,
        raw.start,
        raw.stop,
        raw.time,
        raw.position,
        raw.duration,
    ] {
        w.u64(v);
    }
}

fn double_range_type() -> glib::Type {
    unsafe { from_glib(gst::ffi::gst_double_range_get_type()) }
}

fn flag_set_type() -> glib::Type {
    unsafe { from_glib(gst::ffi::gst_flagset_get_type()) }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Reads one value. `Ok(None)` is a well-formed value that this process cannot represent (an
/// enum type it does not know): the caller leaves it out, as the sender would have.
pub fn decode_value(r: &mut Reader, depth: usize) -> Result<Option<glib::SendValue>, WireError> {
    decode_any(r, depth, false)
}

/// `ranges_here` is true only for the one field where GStreamer keeps a GArray we carry:
/// anywhere else a GArray would be read as something else (the allocation query's hold
/// pointers).
fn decode_any(
    r: &mut Reader,
    depth: usize,
    ranges_here: bool,
) -> Result<Option<glib::SendValue>, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let tag = Tag::try_from(r.u8()?)?;
    Ok(Some(match tag {
        Tag::Bool => r.bool()?.to_send_value(),
        Tag::I32 => r.i32()?.to_send_value(),
        Tag::U32 => r.u32()?.to_send_value(),
        Tag::I64 => r.i64()?.to_send_value(),
        Tag::U64 => r.u64()?.to_send_value(),
        Tag::F32 => r.f32()?.to_send_value(),
        Tag::F64 => r.f64()?.to_send_value(),
        Tag::String => get_opt(r, |r| r.str().map(str::to_owned))?.to_send_value(),
        Tag::Fraction => {
            let (n, d) = get_fraction(r)?;
            fraction_value(n, d)
        }
        Tag::IntRange => {
            let (min, max, step) = (r.i32()?, r.i32()?, r.i32()?);
            check_range(min < max && step > 0 && min % step == 0 && max % step == 0)?;
            gst::IntRange::<i32>::with_step(min, max, step).to_send_value()
        }
        Tag::Int64Range => {
            let (min, max, step) = (r.i64()?, r.i64()?, r.i64()?);
            check_range(min < max && step > 0 && min % step == 0 && max % step == 0)?;
            gst::IntRange::<i64>::with_step(min, max, step).to_send_value()
        }
        Tag::DoubleRange => {
            let (min, max) = (r.f64()?, r.f64()?);
            check_range(min < max)?;
            let mut v = glib::Value::from_type(double_range_type());
            unsafe { gst::ffi::gst_value_set_double_range(v.to_glib_none_mut().0, min, max) };
            send(v)
        }
        Tag::FractionRange => {
            let (a, b) = get_fraction(r)?;
            let (c, d) = get_fraction(r)?;
            // GStreamer wants min < max, and compares by cross-multiplying as they are given:
            // give it positive denominators (get_fraction refused i32::MIN, so negating is
            // safe), and compare the same way first.
            let norm = |n: i32, d: i32| if d < 0 { (-n, -d) } else { (n, d) };
            let ((a, b), (c, d)) = (norm(a, b), norm(c, d));
            check_range((a as i64) * (d as i64) < (c as i64) * (b as i64))?;
            let mut v = glib::Value::from_type(gst::FractionRange::static_type());
            unsafe {
                gst::ffi::gst_value_set_fraction_range_full(v.to_glib_none_mut().0, a, b, c, d)
            };
            send(v)
        }
        Tag::List => gst::List::new(get_values(r, depth)?).to_send_value(),
        Tag::Array => gst::Array::new(get_values(r, depth)?).to_send_value(),
        Tag::Structure => filled(get_opt(r, |r| decode_structure(r, depth + 1))?)?,
        Tag::Caps => get_opt(r, |r| decode_caps(r, depth + 1))?.to_send_value(),
        Tag::CapsFeatures => filled(get_opt(r, get_features)?)?,
        Tag::Buffer => get_opt(r, |r| {
            let flags = gst::BufferFlags::from_bits_truncate(r.u32()?);
            let mut b = gst::Buffer::from_mut_slice(r.bytes()?.to_vec());
            b.get_mut().unwrap().set_flags(flags);
            Ok(b)
        })?
        .to_send_value(),
        Tag::DateTime => get_opt(r, get_date_time)?.to_send_value(),
        Tag::TagList => filled(get_opt(r, |r| decode_tag_list(r, depth + 1))?)?,
        Tag::Segment => decode_segment(r)?.to_send_value(),
        Tag::Bitmask => gst::Bitmask(r.u64()?).to_send_value(),
        Tag::Error => get_opt(r, |r| {
            let domain = interned(r.str()?)?;
            let code = r.i32()?;
            let message = r.str()?;
            Ok(make_error(domain, code, message))
        })?
        .to_send_value(),
        Tag::Enum => {
            let name = r.str()?;
            let v = r.i32()?;
            let Some(class) = glib::Type::from_name(name).and_then(glib::EnumClass::with_type)
            else {
                gst::debug!(CAT, "unknown enum type {name}: value left out");
                return Ok(None);
            };
            match class.to_value(v) {
                Some(v) => send(v),
                None => {
                    return Err(WireError::BadEnum {
                        what: "enum value",
                        value: v as i64,
                    });
                }
            }
        }
        Tag::Flags => {
            let name = r.str()?;
            let bits = r.u32()?;
            let Some(class) = glib::Type::from_name(name).and_then(glib::FlagsClass::with_type)
            else {
                gst::debug!(CAT, "unknown flags type {name}: value left out");
                return Ok(None);
            };
            let known = class.values().iter().fold(0u32, |m, f| m | f.value());
            if bits & !known != 0 {
                return Err(WireError::BadEnum {
                    what: "flags value",
                    value: bits as i64,
                });
            }
            let mut v = glib::Value::from_type(class.type_());
            unsafe { glib::gobject_ffi::g_value_set_flags(v.to_glib_none_mut().0, bits) };
            send(v)
        }
        Tag::FlagSet => {
            let name = r.str()?;
            let (flags, mask) = (r.u32()?, r.u32()?);
            let Some(t) = glib::Type::from_name(name).filter(|t| t.is_a(flag_set_type())) else {
                gst::debug!(CAT, "unknown flag set type {name}: value left out");
                return Ok(None);
            };
            let mut v = glib::Value::from_type(t);
            unsafe { gst::ffi::gst_value_set_flagset(v.to_glib_none_mut().0, flags, mask) };
            send(v)
        }
        Tag::Stream => get_opt(r, |r| objects::decode_stream(r, depth + 1))?.to_send_value(),
        Tag::StreamCollection => {
            get_opt(r, |r| objects::decode_collection(r, depth + 1))?.to_send_value()
        }
        Tag::Toc => get_opt(r, |r| objects::decode_toc(r, depth + 1))?.to_send_value(),
        Tag::Context => get_opt(r, |r| objects::decode_context(r, depth + 1))?.to_send_value(),
        Tag::Message => get_opt(r, |r| objects::decode_message(r, depth + 1))?.to_send_value(),
        Tag::Ranges if ranges_here => objects::decode_ranges(r)?,
        Tag::Ranges => return Err(WireError::UnknownValueType(Tag::Ranges as u8)),
    }))
}

fn send(v: glib::Value) -> glib::SendValue {
    // Every type decoded here is a plain value or a GStreamer boxed/mini-object type, all of
    // which are safe to move across threads.
    unsafe { glib::SendValue::unsafe_from(v.into_raw()) }
}

fn check_range(ok: bool) -> Result<(), WireError> {
    if ok { Ok(()) } else { Err(WireError::BadRange) }
}

/// A value of a type GStreamer cannot print when NULL (see [`unprintable_null`]).
fn filled<T: ToSendValue + StaticType>(v: Option<T>) -> Result<glib::SendValue, WireError> {
    v.map(|v| v.to_send_value())
        .ok_or(WireError::NullValue(T::static_type().name()))
}

fn get_opt<T>(
    r: &mut Reader,
    f: impl FnOnce(&mut Reader) -> Result<T, WireError>,
) -> Result<Option<T>, WireError> {
    if r.bool()? { f(r).map(Some) } else { Ok(None) }
}

fn get_fraction(r: &mut Reader) -> Result<(i32, i32), WireError> {
    let (n, d) = (r.i32()?, r.i32()?);
    // GStreamer refuses a zero denominator and the extremes it cannot negate.
    check_range(d != 0 && n != i32::MIN && d != i32::MIN)?;
    Ok((n, d))
}

fn fraction_value(n: i32, d: i32) -> glib::SendValue {
    let mut v = glib::Value::from_type(gst::Fraction::static_type());
    unsafe { gst::ffi::gst_value_set_fraction(v.to_glib_none_mut().0, n, d) };
    send(v)
}

fn get_values(r: &mut Reader, depth: usize) -> Result<Vec<glib::SendValue>, WireError> {
    let n = r.count(MAX_ITEMS, 1)?;
    let mut out: Vec<glib::SendValue> = Vec::with_capacity(n);
    for _ in 0..n {
        if let Some(v) = decode_value(r, depth + 1)? {
            // GStreamer takes into a list only values like its first one (a critical
            // otherwise): refuse the others here.
            let like_first = out.first().and_then(|f| basic_type(f));
            if let (Some(a), Some(b)) = (like_first, basic_type(&v))
                && !compatible(a, b)
            {
                return Err(WireError::MixedList);
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// The type of the first value at the bottom of nested lists and arrays; `None` when one of
/// them is empty.
fn basic_type(v: &glib::Value) -> Option<glib::Type> {
    let first = if let Ok(list) = v.get::<gst::List>() {
        list.as_slice().first().map(|f| basic_type(f))
    } else if let Ok(array) = v.get::<gst::Array>() {
        array.as_slice().first().map(|f| basic_type(f))
    } else {
        return Some(v.type_());
    };
    first?
}

/// Same type, or a value and a range of its type.
fn compatible(a: glib::Type, b: glib::Type) -> bool {
    let pairs = [
        (glib::Type::I32, gst::IntRange::<i32>::static_type()),
        (glib::Type::I64, gst::IntRange::<i64>::static_type()),
        (glib::Type::F64, double_range_type()),
        (
            gst::Fraction::static_type(),
            gst::FractionRange::static_type(),
        ),
    ];
    a == b
        || pairs
            .iter()
            .any(|&(x, y)| (a, b) == (x, y) || (a, b) == (y, x))
}

fn get_features(r: &mut Reader) -> Result<gst::CapsFeatures, WireError> {
    let any = r.bool()?;
    let n = r.count(MAX_ITEMS, 4)?;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        names.push(interned(valid_feature(r.str()?)?)?);
    }
    Ok(if any {
        gst::CapsFeatures::new_any()
    } else {
        gst::CapsFeatures::new(names)
    })
}

fn get_date_time(r: &mut Reader) -> Result<gst::DateTime, WireError> {
    let bits = r.u8()?;
    let (year, month, day, hour, minute) = (r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?);
    let seconds = r.f64()?;
    let tz = r.f32()?;
    let has = |b: u8| bits & (1 << b) != 0;
    let opt = |b: u8, v| if has(b) { Some(v) } else { None };
    let time = has(2);
    gst::DateTime::new(
        if time { Some(tz) } else { None },
        year,
        opt(0, month),
        opt(1, day),
        if time { Some(hour) } else { None },
        if time { Some(minute) } else { None },
        if time && has(3) { Some(seconds) } else { None },
    )
    .map_err(|_| WireError::BadRange)
}

/// A NULL pointer value here or anywhere inside (lists, arrays, structures).
fn holds_null(v: &glib::Value) -> bool {
    if super::check::is_null(v) {
        return true;
    }
    if let Ok(list) = v.get::<gst::List>() {
        return list.iter().any(|v| holds_null(v));
    }
    if let Ok(array) = v.get::<gst::Array>() {
        return array.iter().any(|v| holds_null(v));
    }
    if v.type_() == gst::Structure::static_type()
        && let Ok(Some(s)) = v.get::<Option<gst::Structure>>()
    {
        return s.iter().any(|(_, v)| holds_null(v));
    }
    false
}

/// Longest structure, field, caps feature or error domain name taken from a peer.
pub const MAX_NAME_LEN: usize = 256;

thread_local! {
    /// Bytes of names this process has never seen that decoding on this thread may still
    /// intern: unbounded unless the thread decodes for a peer (see [`limit_new_names`]).
    static NEW_NAME_BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// GStreamer keeps every structure, field, caps feature and error domain name as a quark for
/// the life of the process, so each name a peer makes us intern is memory it never gives
/// back, whatever else it frees. A channel's reader thread (one per connection) calls this
/// before it decodes anything: the connection may then bring `bytes` of new names in all,
/// and names already known cost nothing.
pub fn limit_new_names(bytes: usize) {
    NEW_NAME_BUDGET.set(bytes);
}

/// `name`, if it is short enough and, when it would be new to the process, within what this
/// thread may still intern.
fn interned(name: &str) -> Result<&str, WireError> {
    if name.len() > MAX_NAME_LEN {
        return Err(WireError::TooLong {
            what: "name",
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if glib::Quark::try_from_str(name).is_none() {
        let cost = name.len() + 1;
        let left = NEW_NAME_BUDGET.get();
        if left < cost {
            return Err(WireError::NewNames(name.chars().take(64).collect()));
        }
        NEW_NAME_BUDGET.set(left - cost);
    }
    Ok(name)
}

/// GStreamer's own rule for structure names (`gst_structure_validate_name`), checked here so a
/// bad name is our typed error instead of a GLib critical; names of GStreamer 0.10's raw caps,
/// which it takes with a warning, are refused too.
fn valid_name(s: &str) -> Result<&str, WireError> {
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.:+".contains(c))
        && !["video/x-raw-", "audio/x-raw-"]
            .iter()
            .any(|p| s.starts_with(p));
    if ok {
        Ok(s)
    } else {
        Err(WireError::BadName(s.chars().take(64).collect()))
    }
}

/// GStreamer's rule for caps feature names (`namespace:Name`), checked here so that a bad
/// name is our typed error instead of a GLib warning.
fn valid_feature(s: &str) -> Result<&str, WireError> {
    let ok = s.split_once(':').is_some_and(|(ns, name)| {
        !ns.is_empty()
            && ns.chars().all(|c| c.is_ascii_alphabetic())
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if ok {
        Ok(s)
    } else {
        Err(WireError::BadName(s.chars().take(64).collect()))
    }
}

pub fn decode_structure(r: &mut Reader, depth: usize) -> Result<gst::Structure, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let name = interned(valid_name(r.str()?)?)?;
    let n = r.count(MAX_ITEMS, 5)?;
    let mut s = gst::Structure::new_empty(name);
    for _ in 0..n {
        let field = interned(r.str()?)?;
        if field.is_empty() {
            return Err(WireError::BadName(String::new()));
        }
        let ranges_here = name == objects::RANGES_STRUCTURE && field == objects::RANGES_FIELD;
        if let Some(v) = decode_any(r, depth + 1, ranges_here)? {
            s.set_value(field, v);
        }
    }
    Ok(s)
}

pub fn decode_caps(r: &mut Reader, depth: usize) -> Result<gst::Caps, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let any = r.bool()?;
    let n = r.count(MAX_ITEMS, 9)?;
    let mut caps = gst::Caps::new_empty();
    {
        let c = caps.get_mut().unwrap();
        for _ in 0..n {
            let s = decode_structure(r, depth + 1)?;
            // GStreamer's caps functions (is_fixed, intersect, ...) walk every value and
            // take no NULL structure or caps inside: refuse caps that hold one.
            if let Some((field, _)) = s.iter().find(|(_, v)| holds_null(v)) {
                return Err(WireError::MissingField {
                    what: "caps structure",
                    field: field.to_string(),
                });
            }
            let f = get_features(r)?;
            c.append_structure_full(s, Some(f));
        }
    }
    Ok(if any { gst::Caps::new_any() } else { caps })
}

pub fn decode_tag_list(r: &mut Reader, depth: usize) -> Result<gst::TagList, WireError> {
    let scope = match r.u8()? {
        0 => gst::TagScope::Stream,
        1 => gst::TagScope::Global,
        v => {
            return Err(WireError::BadEnum {
                what: "tag scope",
                value: v as i64,
            });
        }
    };
    let n = r.count(MAX_ITEMS, 8)?;
    let mut tags = gst::TagList::new();
    {
        let t = tags.get_mut().unwrap();
        t.set_scope(scope);
        for _ in 0..n {
            let name = r.str()?;
            let values = get_values(r, depth)?;
            let known: bool = unsafe { from_glib(gst::ffi::gst_tag_exists(name.to_glib_none().0)) };
            if !known {
                gst::debug!(CAT, "unknown tag {name}: left out");
                continue;
            }
            for v in values {
                if t.add_value(name, &v, gst::TagMergeMode::Append).is_err() {
                    gst::debug!(CAT, "tag {name} with a value of the wrong type: left out");
                }
            }
        }
    }
    Ok(tags)
}

pub fn decode_segment(r: &mut Reader) -> Result<gst::Segment, WireError> {
    let flags = r.u32()?;
    let rate = r.f64()?;
    let applied_rate = r.f64()?;
    let format = r.i32()?;
    if !(0..=5).contains(&format) {
        return Err(WireError::BadEnum {
            what: "segment format",
            value: format as i64,
        });
    }
    if !rate.is_finite() || rate == 0.0 || !applied_rate.is_finite() || applied_rate == 0.0 {
        return Err(WireError::BadRange);
    }
    let mut raw: gst::ffi::GstSegment = unsafe { std::mem::zeroed() };
    raw.flags = flags & gst::SegmentFlags::all().bits();
    raw.rate = rate;
    raw.applied_rate = applied_rate;
    raw.format = format;
    for f in [
        &mut raw.base,
        &mut raw.offset,
        &mut raw.start,
        &mut raw.stop,
        &mut raw.time,
        &mut raw.position,
        &mut raw.duration,
    ] {
        *f = r.u64()?;
    }
    // Running time in reverse counts back from the stop, which GStreamer asserts is known
    // and not before the offset (`gst_segment_to_running_time_full`, from any base sink); a
    // reverse seek must set it too.
    if rate < 0.0 {
        check_range(raw.stop != gst::ffi::GST_CLOCK_TIME_NONE && raw.stop >= raw.offset)?;
    }
    Ok(unsafe { from_glib_none(&raw as *const gst::ffi::GstSegment) })
}

/// Builds a GError of any domain by name: domains are quarks, so the peer's domain string
/// becomes the same quark here (`gst-core-error-quark`, `gst-stream-error-quark`, ...).
pub fn make_error(domain: &str, code: i32, message: &str) -> glib::Error {
    unsafe {
        from_glib_full(glib::ffi::g_error_new_literal(
            glib::Quark::from_str(domain).into_glib(),
            code,
            message.to_glib_none().0,
        ))
    }
}
