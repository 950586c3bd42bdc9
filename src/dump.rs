// SPDX-License-Identifier: MPL-2.0
//! One line of text per buffer or event that crossed: what gst-ipc-slave writes with
//! `--dump` and `--verbose`, and what tests compare with what the master sent.

/// A line with every field of a buffer that must cross exactly, and a fingerprint of its bytes.
pub fn buffer_line(b: &gst::BufferRef) -> String {
    let ns = |t: Option<gst::ClockTime>| t.map_or("none".into(), |t| t.nseconds().to_string());
    let (size, hash) = match b.map_readable() {
        Ok(map) => (map.size(), fnv1a(map.as_slice())),
        Err(_) => (b.size(), 0),
    };
    format!(
        "buffer pts={} dts={} duration={} offset={} offset_end={} flags=0x{:x} size={size} hash={hash:016x}{}",
        ns(b.pts()),
        ns(b.dts()),
        ns(b.duration()),
        b.offset(),
        b.offset_end(),
        b.flags().bits(),
        metas(b),
    ) + if is_fd_memory(b) { " fd" } else { "" }
}

/// Whether every memory of the buffer is fd memory (memfd, dmabuf): what crosses as fds.
fn is_fd_memory(b: &gst::BufferRef) -> bool {
    b.n_memory() > 0
        && b.iter_memories()
            .all(|m| m.is_memory_type::<gst_allocators::FdMemory>())
}

/// The metas that cross, with what they say, in the buffer's order.
fn metas(b: &gst::BufferRef) -> String {
    use gst_video::{VideoCropMeta, VideoMeta, VideoRegionOfInterestMeta};
    b.iter_meta::<gst::Meta>()
        .filter_map(|m| {
            if let Some(v) = m.downcast_ref::<VideoMeta>() {
                Some(format!(
                    " video({:?} {}x{} offsets={:?} strides={:?})",
                    v.format(),
                    v.width(),
                    v.height(),
                    v.offset(),
                    v.stride()
                ))
            } else if let Some(c) = m.downcast_ref::<VideoCropMeta>() {
                Some(format!(" crop{:?}", c.rect()))
            } else if let Some(r) = m.downcast_ref::<VideoRegionOfInterestMeta>() {
                let params: Vec<String> = r.params().map(|p| p.to_string()).collect();
                Some(format!(
                    " roi({} id={} parent={} {:?} {params:?})",
                    r.roi_type(),
                    r.id(),
                    r.parent_id(),
                    r.rect()
                ))
            } else if let Some(t) = m.downcast_ref::<gst::ReferenceTimestampMeta>() {
                Some(format!(
                    " reference({} {} {:?})",
                    t.reference(),
                    t.timestamp().nseconds(),
                    t.duration().map(|d| d.nseconds())
                ))
            } else if let Some(a) = m.downcast_ref::<gst_audio::AudioMeta>() {
                Some(format!(
                    " audio({:?} {}ch samples={} offsets={:?})",
                    a.info().format(),
                    a.info().channels(),
                    a.samples(),
                    a.offsets()
                ))
            } else {
                m.downcast_ref::<gst::ProtectionMeta>()
                    .map(|p| format!(" protection({})", p.info()))
            }
        })
        .collect()
}

/// An event's type and what tests check of it: the caps, the segment's playback range, the
/// name of a custom event's structure.
pub fn event_line(e: &gst::EventRef) -> String {
    let ns = |v: Option<u64>| v.map_or("none".into(), |v| v.to_string());
    match e.view() {
        gst::EventView::Caps(c) => format!("event caps {}", c.caps()),
        gst::EventView::Segment(s) => {
            let s = s.segment();
            format!(
                "event segment rate={} start={} stop={} flags=0x{:x}",
                s.rate(),
                ns(s.start().value().try_into().ok()),
                ns(s.stop().value().try_into().ok()),
                s.flags().bits()
            )
        }
        gst::EventView::CustomDownstream(_)
        | gst::EventView::CustomDownstreamOob(_)
        | gst::EventView::CustomDownstreamSticky(_)
        | gst::EventView::CustomBoth(_)
        | gst::EventView::CustomBothOob(_)
        | gst::EventView::SinkMessage(_) => format!(
            "event {} {}",
            e.type_().name(),
            e.structure().map_or("", |s| s.name().as_str())
        ),
        _ => format!("event {}", e.type_().name()),
    }
}

/// FNV-1a: a stable fingerprint of buffer contents for byte-exact comparisons.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}
