// SPDX-License-Identifier: MPL-2.0
//! The buffer metas that cross: protection, video (formats, strides and plane offsets), video
//! crop, region of interest, reference timestamp and audio. Any other meta stays behind with a
//! debug line: a meta is C memory whose meaning only its API knows.
//!
//! Every meta read from the peer is checked against the buffer it comes with before it is
//! attached: plane offsets and strides that point past the data, or audio channel offsets
//! beyond it, would make the receiving elements read out of bounds.

use std::sync::LazyLock;

use gst::glib::translate::*;
use gst::meta::MetaAPI;
use gst_audio::AudioMeta;
use gst_video::{VideoCropMeta, VideoMeta, VideoRegionOfInterestMeta};

use super::WireError;
use super::codec::{Reader, Writer};
use super::value::{decode_caps, decode_structure, encode_caps, encode_structure};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsipcwire",
        gst::DebugColorFlags::empty(),
        Some("rsipcpipeline wire format"),
    )
});

/// Metas on one buffer.
pub const MAX_METAS: usize = 64;
/// Parameter structures on one region of interest.
const MAX_ROI_PARAMS: usize = 16;

#[repr(u8)]
#[derive(Clone, Copy)]
enum Kind {
    Protection = 1,
    Video = 2,
    ReferenceTimestamp = 3,
    VideoCrop = 4,
    RegionOfInterest = 5,
    Audio = 6,
}

/// The API names of the metas we carry, for the ALLOCATION query: upstream may add only these.
pub fn carried_apis() -> [gst::glib::Type; 6] {
    [
        gst::ProtectionMeta::meta_api(),
        VideoMeta::meta_api(),
        gst::ReferenceTimestampMeta::meta_api(),
        VideoCropMeta::meta_api(),
        VideoRegionOfInterestMeta::meta_api(),
        AudioMeta::meta_api(),
    ]
}

/// Writes the count and then each meta as kind, length and body, so that a receiver can step
/// over a kind it does not know.
pub fn encode(w: &mut Writer, buffer: &gst::BufferRef) {
    let at = w.placeholder_u32();
    let mut n = 0u32;
    for meta in buffer.iter_meta::<gst::Meta>() {
        if n as usize == MAX_METAS {
            gst::debug!(CAT, "more than {MAX_METAS} metas: the rest stay behind");
            break;
        }
        let start = w.len();
        w.u8(0);
        let len_at = w.placeholder_u32();
        let kind = put_meta(w, &meta);
        match kind {
            Some(k) => {
                w.patch_u32(len_at, (w.len() - len_at - 4) as u32);
                w.patch_u8(start, k as u8);
                n += 1;
            }
            None => {
                w.truncate(start);
                gst::debug!(CAT, "not carrying a {} meta", meta.api());
            }
        }
    }
    w.patch_u32(at, n);
}

fn put_meta(w: &mut Writer, meta: &gst::MetaRef<gst::Meta>) -> Option<Kind> {
    if let Some(m) = meta.downcast_ref::<gst::ProtectionMeta>() {
        encode_structure(w, m.info());
        return Some(Kind::Protection);
    }
    if let Some(m) = meta.downcast_ref::<VideoMeta>() {
        w.u32(m.video_frame_flags().bits());
        w.i32(m.format().into_glib());
        w.u32(m.width());
        w.u32(m.height());
        w.i32(m.id());
        w.len32(m.offset().len());
        for (o, s) in m.offset().iter().zip(m.stride()) {
            w.u64(*o as u64);
            w.i32(*s);
        }
        return Some(Kind::Video);
    }
    if let Some(m) = meta.downcast_ref::<gst::ReferenceTimestampMeta>() {
        encode_caps(w, m.reference());
        w.u64(m.timestamp().nseconds());
        w.u64(m.duration().into_glib());
        return Some(Kind::ReferenceTimestamp);
    }
    if let Some(m) = meta.downcast_ref::<VideoCropMeta>() {
        put_rect(w, m.rect());
        return Some(Kind::VideoCrop);
    }
    if let Some(m) = meta.downcast_ref::<VideoRegionOfInterestMeta>() {
        w.str(m.roi_type());
        w.i32(m.id());
        w.i32(m.parent_id());
        put_rect(w, m.rect());
        let params: Vec<&gst::StructureRef> = m.params().take(MAX_ROI_PARAMS).collect();
        w.len32(params.len());
        params.into_iter().for_each(|p| encode_structure(w, p));
        return Some(Kind::RegionOfInterest);
    }
    if let Some(m) = meta.downcast_ref::<AudioMeta>() {
        let caps = m.info().to_caps().ok()?;
        encode_caps(w, &caps);
        w.u64(m.samples() as u64);
        w.len32(m.offsets().len());
        m.offsets().iter().for_each(|o| w.u64(*o as u64));
        return Some(Kind::Audio);
    }
    None
}

fn put_rect(w: &mut Writer, (x, y, width, height): (u32, u32, u32, u32)) {
    for v in [x, y, width, height] {
        w.u32(v);
    }
}

fn get_rect(r: &mut Reader) -> Result<(u32, u32, u32, u32), WireError> {
    Ok((r.u32()?, r.u32()?, r.u32()?, r.u32()?))
}

/// What a video meta says about a frame's memory.
pub struct VideoLayout {
    flags: gst_video::VideoFrameFlags,
    format: gst_video::VideoFormat,
    width: u32,
    height: u32,
    id: i32,
    offsets: Vec<usize>,
    strides: Vec<i32>,
}

impl VideoLayout {
    /// Whether every plane (stride times the plane's rows, from its offset) lies within
    /// `size`. Tiled formats lay planes out differently and are refused.
    fn fits(&self, size: usize) -> bool {
        let info = gst_video::VideoFormatInfo::from_format(self.format);
        if info.is_tiled() {
            return false;
        }
        let planes = self.offsets.iter().zip(&self.strides).enumerate();
        planes.into_iter().all(|(plane, (offset, stride))| {
            let rows = (0..info.n_components() as u8)
                .filter(|c| info.plane()[*c as usize] as usize == plane)
                .map(|c| info.scale_height(c, self.height))
                .max()
                .unwrap_or(self.height);
            (*stride as usize)
                .checked_mul(rows as usize)
                .and_then(|bytes| bytes.checked_add(*offset))
                .is_some_and(|end| end <= size)
        })
    }
}

/// A meta read from the wire, attached once the buffer's size is known.
pub enum Decoded {
    Protection(gst::Structure),
    Video(VideoLayout),
    ReferenceTimestamp(gst::Caps, gst::ClockTime, Option<gst::ClockTime>),
    VideoCrop((u32, u32, u32, u32)),
    RegionOfInterest {
        roi_type: String,
        id: i32,
        parent_id: i32,
        rect: (u32, u32, u32, u32),
        params: Vec<gst::Structure>,
    },
    Audio(Box<gst_audio::AudioInfo>, usize, Vec<usize>),
}

fn bad(what: &'static str, value: i64) -> WireError {
    WireError::BadEnum { what, value }
}

pub fn decode(r: &mut Reader) -> Result<Vec<Decoded>, WireError> {
    let n = r.count(MAX_METAS, 5)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = r.u8()?;
        let len = r.u32()? as usize;
        let mut body = Reader::new(r.take(len)?);
        let meta = match kind {
            1 => Decoded::Protection(decode_structure(&mut body, 1)?),
            2 => get_video(&mut body)?,
            3 => {
                let caps = decode_caps(&mut body, 1)?;
                let ts = unsafe { Option::<gst::ClockTime>::from_glib(body.u64()?) }
                    .ok_or(WireError::BadMeta("reference timestamp without a time"))?;
                let duration = unsafe { from_glib(body.u64()?) };
                Decoded::ReferenceTimestamp(caps, ts, duration)
            }
            4 => Decoded::VideoCrop(get_rect(&mut body)?),
            5 => {
                let roi_type = body.str()?.to_owned();
                let (id, parent_id) = (body.i32()?, body.i32()?);
                let rect = get_rect(&mut body)?;
                let np = body.count(MAX_ROI_PARAMS, 5)?;
                let params = (0..np)
                    .map(|_| decode_structure(&mut body, 1))
                    .collect::<Result<_, _>>()?;
                Decoded::RegionOfInterest {
                    roi_type,
                    id,
                    parent_id,
                    rect,
                    params,
                }
            }
            6 => {
                let caps = decode_caps(&mut body, 1)?;
                // GStreamer reads only fixed caps (a critical otherwise).
                let info = Some(&caps)
                    .filter(|c| c.is_fixed())
                    .and_then(|c| gst_audio::AudioInfo::from_caps(c).ok())
                    .ok_or(WireError::BadMeta("audio meta with unusable caps"))?;
                let samples = usize::try_from(body.u64()?).map_err(|_| WireError::BadRange)?;
                let no = body.count(64, 8)?;
                let offsets = (0..no)
                    .map(|_| body.u64().map(|o| o as usize))
                    .collect::<Result<_, _>>()?;
                Decoded::Audio(Box::new(info), samples, offsets)
            }
            other => {
                gst::debug!(CAT, "skipping a meta of unknown kind {other}");
                continue;
            }
        };
        body.finish()?;
        out.push(meta);
    }
    Ok(out)
}

fn get_video(r: &mut Reader) -> Result<Decoded, WireError> {
    let bits = r.u32()?;
    let flags =
        gst_video::VideoFrameFlags::from_bits(bits).ok_or(bad("video flags", bits as i64))?;
    let raw = r.i32()?;
    let format: gst_video::VideoFormat = unsafe { from_glib(raw) };
    if matches!(
        format,
        gst_video::VideoFormat::Unknown
            | gst_video::VideoFormat::Encoded
            | gst_video::VideoFormat::__Unknown(_)
    ) {
        return Err(bad("video format", raw as i64));
    }
    let (width, height, id) = (r.u32()?, r.u32()?, r.i32()?);
    let planes = r.count(gst_video::VIDEO_MAX_PLANES, 12)?;
    if planes as u32 != gst_video::VideoFormatInfo::from_format(format).n_planes() {
        return Err(WireError::BadMeta(
            "video meta with the wrong number of planes",
        ));
    }
    let (mut offsets, mut strides) = (Vec::new(), Vec::new());
    for _ in 0..planes {
        offsets.push(usize::try_from(r.u64()?).map_err(|_| WireError::BadRange)?);
        let stride = r.i32()?;
        if stride <= 0 {
            return Err(WireError::BadMeta(
                "video meta with a stride that is not positive",
            ));
        }
        strides.push(stride);
    }
    Ok(Decoded::Video(VideoLayout {
        flags,
        format,
        width,
        height,
        id,
        offsets,
        strides,
    }))
}

/// Attaches the metas to `buffer`, refusing any that does not fit its data.
pub fn attach(buffer: &mut gst::BufferRef, metas: Vec<Decoded>) -> Result<(), WireError> {
    let size = buffer.size();
    for meta in metas {
        match meta {
            Decoded::Protection(s) => {
                gst::ProtectionMeta::add(buffer, s);
            }
            Decoded::Video(v) => {
                if !v.fits(size) {
                    return Err(WireError::BadMeta("video meta planes beyond the buffer"));
                }
                let mut m = VideoMeta::add_full(
                    buffer, v.flags, v.format, v.width, v.height, &v.offsets, &v.strides,
                )
                .map_err(|_| WireError::BadMeta("video meta GStreamer refused"))?;
                unsafe { (*m.as_mut_ptr()).id = v.id };
            }
            Decoded::ReferenceTimestamp(caps, ts, duration) => {
                gst::ReferenceTimestampMeta::add(buffer, &caps, ts, duration);
            }
            Decoded::VideoCrop(rect) => {
                VideoCropMeta::add(buffer, rect);
            }
            Decoded::RegionOfInterest {
                roi_type,
                id,
                parent_id,
                rect,
                params,
            } => {
                let mut m = VideoRegionOfInterestMeta::add(buffer, &roi_type, rect);
                m.set_id(id);
                m.set_parent_id(parent_id);
                params.into_iter().for_each(|p| m.add_param(p));
            }
            Decoded::Audio(info, samples, offsets) => {
                // Bounded here so that GStreamer's own checks cannot overflow.
                let fits = samples
                    .checked_mul(info.bpf() as usize)
                    .is_some_and(|bytes| bytes <= size)
                    && offsets.iter().all(|o| *o <= size);
                if !fits {
                    return Err(WireError::BadMeta("audio meta beyond the buffer"));
                }
                AudioMeta::add(buffer, &info, samples, &offsets)
                    .map_err(|_| WireError::BadMeta("audio meta beyond the buffer"))?;
            }
        }
    }
    Ok(())
}
