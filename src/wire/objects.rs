// SPDX-License-Identifier: MPL-2.0
//! The GStreamer objects that events, queries and messages hold by reference: streams and
//! stream collections, tables of contents, contexts, a message inside a sink-message event, and
//! the buffering ranges of a buffering query. An object cannot cross a process boundary, so
//! each is sent as its content and rebuilt on the other side as a new object with the same
//! content; the receiver never sees the sender's pointers.

use gst::glib;
use gst::glib::translate::*;

use super::WireError;
use super::codec::{Reader, Writer};
use super::value::{
    MAX_DEPTH, MAX_ITEMS, decode_caps, decode_structure, decode_tag_list, encode_caps,
    encode_structure, encode_tag_list,
};

/// The one GArray field GStreamer keeps in a query we forward. Other GArrays (the allocation
/// query's) hold pointers and never cross.
pub const RANGES_STRUCTURE: &str = "GstQueryBuffering";
pub const RANGES_FIELD: &str = "buffering-ranges";
const RANGE_SIZE: u32 = 16;

fn bad(what: &'static str, value: i64) -> WireError {
    WireError::BadEnum { what, value }
}

fn put_opt_str(w: &mut Writer, s: Option<&str>) {
    w.bool(s.is_some());
    if let Some(s) = s {
        w.str(s);
    }
}

fn get_opt_str<'a>(r: &mut Reader<'a>) -> Result<Option<&'a str>, WireError> {
    if r.bool()? {
        r.str().map(Some)
    } else {
        Ok(None)
    }
}

fn put_opt_tags(w: &mut Writer, tags: Option<gst::TagList>) {
    w.bool(tags.is_some());
    if let Some(t) = tags {
        encode_tag_list(w, &t);
    }
}

fn get_opt_tags(r: &mut Reader, depth: usize) -> Result<Option<gst::TagList>, WireError> {
    if r.bool()? {
        decode_tag_list(r, depth + 1).map(Some)
    } else {
        Ok(None)
    }
}

// --- GstStream, GstStreamCollection -----------------------------------------------------

pub fn encode_stream(w: &mut Writer, s: &gst::Stream) {
    put_opt_str(w, s.stream_id().as_deref());
    let caps = s.caps();
    w.bool(caps.is_some());
    if let Some(c) = caps {
        encode_caps(w, &c);
    }
    put_opt_tags(w, s.tags());
    w.u32(s.stream_type().bits());
    w.u32(s.stream_flags().bits());
}

pub fn decode_stream(r: &mut Reader, depth: usize) -> Result<gst::Stream, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let id = get_opt_str(r)?.map(str::to_owned);
    let caps = if r.bool()? {
        Some(decode_caps(r, depth + 1)?)
    } else {
        None
    };
    let tags = get_opt_tags(r, depth)?;
    let type_bits = r.u32()?;
    let stream_type =
        gst::StreamType::from_bits(type_bits).ok_or(bad("stream type", type_bits as i64))?;
    let flag_bits = r.u32()?;
    let flags =
        gst::StreamFlags::from_bits(flag_bits).ok_or(bad("stream flags", flag_bits as i64))?;
    let stream = gst::Stream::new(id.as_deref(), caps.as_ref(), stream_type, flags);
    stream.set_tags(tags.as_ref());
    Ok(stream)
}

pub fn encode_collection(w: &mut Writer, c: &gst::StreamCollection) {
    put_opt_str(w, c.upstream_id().as_deref());
    w.len32(c.len());
    for s in c.iter() {
        encode_stream(w, &s);
    }
}

pub fn decode_collection(r: &mut Reader, depth: usize) -> Result<gst::StreamCollection, WireError> {
    let upstream = get_opt_str(r)?.map(str::to_owned);
    let n = r.count(MAX_ITEMS, 11)?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(decode_stream(r, depth + 1)?);
    }
    Ok(gst::StreamCollection::builder(upstream.as_deref())
        .streams(streams)
        .build())
}

// --- GstToc -----------------------------------------------------------------------------

pub fn encode_toc(w: &mut Writer, toc: &gst::TocRef) {
    w.i32(toc.scope().into_glib());
    put_opt_tags(w, toc.tags());
    put_entries(w, &toc.entries());
}

fn put_entries(w: &mut Writer, entries: &[gst::TocEntry]) {
    w.len32(entries.len());
    for e in entries {
        w.i32(e.entry_type().into_glib());
        w.str(e.uid());
        let times = e.start_stop_times();
        w.bool(times.is_some());
        let (start, stop) = times.unwrap_or((0, 0));
        w.i64(start);
        w.i64(stop);
        let looping = e.loop_();
        w.bool(looping.is_some());
        let (kind, count) = looping.unwrap_or((gst::TocLoopType::None, 0));
        w.i32(kind.into_glib());
        w.i32(count);
        put_opt_tags(w, e.tags());
        put_entries(w, &e.sub_entries());
    }
}

pub fn decode_toc(r: &mut Reader, depth: usize) -> Result<gst::Toc, WireError> {
    let scope = match r.i32()? {
        1 => gst::TocScope::Global,
        2 => gst::TocScope::Current,
        v => return Err(bad("toc scope", v as i64)),
    };
    let mut toc = gst::Toc::new(scope);
    let tags = get_opt_tags(r, depth)?;
    let entries = get_entries(r, depth + 1)?;
    let t = toc.get_mut().unwrap();
    if tags.is_some() {
        t.set_tags(tags);
    }
    for e in entries {
        t.append_entry(e);
    }
    Ok(toc)
}

fn get_entries(r: &mut Reader, depth: usize) -> Result<Vec<gst::TocEntry>, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(MAX_DEPTH));
    }
    let n = r.count(MAX_ITEMS, 35)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = r.i32()?;
        if !(-3..=3).contains(&kind) {
            return Err(bad("toc entry type", kind as i64));
        }
        let uid = r.str()?;
        let mut entry = gst::TocEntry::new(unsafe { from_glib(kind) }, uid);
        let has_times = r.bool()?;
        let (start, stop) = (r.i64()?, r.i64()?);
        let has_loop = r.bool()?;
        let (loop_kind, repeat) = (r.i32()?, r.i32()?);
        if !(0..=3).contains(&loop_kind) {
            return Err(bad("toc loop type", loop_kind as i64));
        }
        let tags = get_opt_tags(r, depth)?;
        let subs = get_entries(r, depth + 1)?;
        let e = entry.get_mut().unwrap();
        if has_times {
            e.set_start_stop_times(start, stop);
        }
        if has_loop {
            e.set_loop(unsafe { from_glib(loop_kind) }, repeat);
        }
        if tags.is_some() {
            e.set_tags(tags);
        }
        for s in subs {
            e.append_sub_entry(s);
        }
        out.push(entry);
    }
    Ok(out)
}

// --- GstContext -------------------------------------------------------------------------

pub fn encode_context(w: &mut Writer, c: &gst::ContextRef) {
    w.str(c.context_type());
    w.bool(c.is_persistent());
    encode_structure(w, c.structure());
}

pub fn decode_context(r: &mut Reader, depth: usize) -> Result<gst::Context, WireError> {
    let kind = r.str()?;
    if kind.is_empty() {
        return Err(WireError::BadName(String::new()));
    }
    let persistent = r.bool()?;
    let s = decode_structure(r, depth + 1)?;
    let mut ctx = gst::Context::new(kind, persistent);
    let dest = ctx.get_mut().unwrap().structure_mut();
    for (name, value) in s.iter() {
        dest.set_value(name, value.clone());
    }
    Ok(ctx)
}

// --- a message inside a sink-message event ----------------------------------------------

pub fn encode_message(w: &mut Writer, m: &gst::MessageRef) {
    w.u32(m.type_().into_glib());
    w.u32(m.seqnum().into_glib());
    let s = m.structure();
    w.bool(s.is_some());
    if let Some(s) = s {
        encode_structure(w, s);
    }
}

/// The message has no source: the element that posts it (the slave's sink, for a
/// sink-message event) becomes its source, as with any message posted without one.
pub fn decode_message(r: &mut Reader, depth: usize) -> Result<gst::Message, WireError> {
    let raw = r.u32()?;
    let t: gst::MessageType = unsafe { from_glib(raw) };
    if matches!(t, gst::MessageType::__Unknown(_)) {
        return Err(bad("message type", raw as i64));
    }
    if super::check::stays_local(t) {
        return Err(WireError::StaysLocal(t));
    }
    let seqnum = r.u32()?;
    let s = if r.bool()? {
        Some(decode_structure(r, depth + 1)?)
    } else {
        None
    };
    super::check::message(t, s.as_deref())?;
    Ok(new_message(t, seqnum, s, None))
}

/// A message of any type with the given structure, which the decoder checked: gstreamer-rs
/// builds each type only from its typed fields.
pub fn new_message(
    t: gst::MessageType,
    seqnum: u32,
    s: Option<gst::Structure>,
    src: Option<&gst::Object>,
) -> gst::Message {
    unsafe {
        let m = gst::ffi::gst_message_new_custom(
            t.into_glib(),
            src.to_glib_none().0,
            s.map(|s| s.into_glib_ptr()).unwrap_or(std::ptr::null_mut()),
        );
        if seqnum != 0 {
            gst::ffi::gst_message_set_seqnum(m, seqnum);
        }
        from_glib_full(m)
    }
}

// --- buffering ranges -------------------------------------------------------------------

/// Writes the (start, stop) pairs of a buffering query's GArray.
pub fn encode_ranges(w: &mut Writer, value: &glib::Value) {
    let ranges = ranges_of(value);
    w.len32(ranges.len());
    for (start, stop) in ranges {
        w.i64(start);
        w.i64(stop);
    }
}

fn ranges_of(value: &glib::Value) -> Vec<(i64, i64)> {
    unsafe {
        let arr =
            glib::gobject_ffi::g_value_get_boxed(value.to_glib_none().0) as *mut glib::ffi::GArray;
        if arr.is_null() || glib::ffi::g_array_get_element_size(arr) != RANGE_SIZE {
            return Vec::new();
        }
        let data = (*arr).data as *const i64;
        (0..(*arr).len as usize)
            .map(|i| (*data.add(2 * i), *data.add(2 * i + 1)))
            .collect()
    }
}

pub fn is_garray(value: &glib::Value) -> bool {
    value.type_() == unsafe { from_glib(glib::ffi::g_array_get_type()) }
}

pub fn decode_ranges(r: &mut Reader) -> Result<glib::SendValue, WireError> {
    let n = r.count(MAX_ITEMS, RANGE_SIZE as usize)?;
    let mut pairs = Vec::with_capacity(2 * n);
    for _ in 0..n {
        pairs.push(r.i64()?);
        pairs.push(r.i64()?);
    }
    unsafe {
        let arr = glib::ffi::g_array_sized_new(0, 1, RANGE_SIZE, n as u32);
        glib::ffi::g_array_append_vals(arr, pairs.as_ptr() as *const _, n as u32);
        let mut v = glib::Value::from_type(from_glib(glib::ffi::g_array_get_type()));
        glib::gobject_ffi::g_value_take_boxed(v.to_glib_none_mut().0, arr as *const _);
        // A GArray of plain numbers, owned by the value alone.
        Ok(glib::SendValue::unsafe_from(v.into_raw()))
    }
}
