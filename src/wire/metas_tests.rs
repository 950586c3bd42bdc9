// SPDX-License-Identifier: MPL-2.0
//! Metas cross with what they say, and metas that do not fit their buffer are refused.

use gst_video::{VideoCropMeta, VideoMeta, VideoRegionOfInterestMeta};

use super::codec::Writer;
use super::*;

fn round_trip(b: &gst::Buffer) -> Result<gst::Buffer, WireError> {
    let bytes = encode(3, &Frame::Buffer(b.clone()));
    let header = Header::decode(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
    decode(&header, bytes[HEADER_LEN..].to_vec()).map(|f| match f {
        Frame::Buffer(b) => b,
        _ => unreachable!(),
    })
}

pub(super) fn frame_with_every_meta() -> gst::Buffer {
    // 16x8 I420 with padded strides: luma stride 32, chroma strides 16.
    let mut b = gst::Buffer::from_mut_slice(vec![9u8; 32 * 8 + 2 * 16 * 4]);
    let m = b.get_mut().unwrap();
    VideoMeta::add_full(
        m,
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::I420,
        16,
        8,
        &[0, 256, 320],
        &[32, 16, 16],
    )
    .unwrap();
    VideoCropMeta::add(m, (2, 1, 12, 6));
    let mut roi = VideoRegionOfInterestMeta::add(m, "face", (1, 2, 3, 4));
    roi.set_id(7);
    roi.set_parent_id(-1);
    roi.add_param(
        gst::Structure::builder("detection")
            .field("confidence", 0.5f64)
            .build(),
    );
    gst::ReferenceTimestampMeta::add(
        m,
        &gst::Caps::new_empty_simple("timestamp/x-ntp"),
        gst::ClockTime::from_seconds(3),
        gst::ClockTime::from_mseconds(40),
    );
    gst::ProtectionMeta::add(
        m,
        gst::Structure::builder("application/x-cenc")
            .field("iv_size", 8u32)
            .build(),
    );
    b
}

#[test]
fn metas_cross_with_their_content() {
    gst::init().unwrap();
    let b = frame_with_every_meta();
    let back = round_trip(&b).unwrap();
    assert_eq!(
        crate::dump::buffer_line(&back),
        crate::dump::buffer_line(&b)
    );
    let v = back.meta::<VideoMeta>().unwrap();
    assert_eq!(v.stride(), &[32, 16, 16]);
    assert_eq!(v.offset(), &[0, 256, 320]);
    assert!(crate::dump::buffer_line(&back).contains("roi(face id=7 parent=-1"));

    let info = gst_audio::AudioInfo::builder(gst_audio::AudioFormat::S16le, 48000, 2)
        .layout(gst_audio::AudioLayout::NonInterleaved)
        .build()
        .unwrap();
    let mut a = gst::Buffer::from_mut_slice(vec![0u8; 400]);
    gst_audio::AudioMeta::add(a.get_mut().unwrap(), &info, 100, &[0, 200]).unwrap();
    let back = round_trip(&a).unwrap();
    let m = back.meta::<gst_audio::AudioMeta>().unwrap();
    assert_eq!((m.samples(), m.offsets()), (100, &[0usize, 200][..]));
}

/// Rewrites the first meta of an encoded buffer frame with `body`.
fn forged(kind: u8, body: impl FnOnce(&mut Writer), data_len: usize) -> Result<Frame, WireError> {
    let mut w = Writer::with_capacity(256);
    w.raw(&[0; HEADER_LEN]);
    for _ in 0..5 {
        w.u64(u64::MAX);
    }
    w.u32(0);
    w.u32(1);
    w.u8(kind);
    let at = w.placeholder_u32();
    body(&mut w);
    w.patch_u32(at, (w.len() - at - 4) as u32);
    // One memory, inline.
    w.u32(1);
    w.u8(0);
    w.bytes(&vec![0u8; data_len]);
    let mut bytes = w.into_inner();
    let len = (bytes.len() - HEADER_LEN) as u32;
    bytes[0..4].copy_from_slice(&len.to_le_bytes());
    bytes[4] = FrameType::Buffer as u8;
    let header = Header::decode(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
    decode(&header, bytes[HEADER_LEN..].to_vec())
}

fn video(w: &mut Writer, planes: &[(u64, i32)], format: gst_video::VideoFormat) {
    use gst::glib::translate::IntoGlib;
    w.u32(0);
    w.i32(format.into_glib());
    w.u32(16);
    w.u32(8);
    w.i32(0);
    w.u32(planes.len() as u32);
    for (o, s) in planes {
        w.u64(*o);
        w.i32(*s);
    }
}

#[test]
fn metas_that_do_not_fit_are_refused() {
    gst::init().unwrap();
    use gst_video::VideoFormat::*;
    let i420 = [(0u64, 16i32), (128, 8), (160, 8)];
    assert!(forged(2, |w| video(w, &i420, I420), 192).is_ok());
    // Planes past the data, a huge offset, a negative stride, the wrong plane count, a
    // format that is not raw video.
    for (planes, format, len) in [
        (&i420[..], I420, 191),
        (&[(0, 16), (128, 8), (u64::MAX - 8, 8)][..], I420, 192),
        (&[(0, -16), (128, 8), (160, 8)][..], I420, 192),
        (&i420[..2], I420, 192),
        (&i420[..], Encoded, 192),
    ] {
        assert!(
            forged(2, |w| video(w, planes, format), len).is_err(),
            "{planes:?} {format:?} {len}"
        );
    }
    // Audio: more samples than the data holds, and a sample count that overflows.
    let caps = gst_audio::AudioInfo::builder(gst_audio::AudioFormat::S16le, 48000, 1)
        .build()
        .unwrap()
        .to_caps()
        .unwrap();
    for samples in [100u64, 101, u64::MAX / 2] {
        let r = forged(
            6,
            |w| {
                value::encode_caps(w, &caps);
                w.u64(samples);
                w.u32(0);
            },
            200,
        );
        assert_eq!(r.is_ok(), samples == 100, "{samples} samples");
    }
    // A meta kind from a later version is stepped over.
    assert!(matches!(forged(200, |w| w.u64(1), 4), Ok(Frame::Buffer(_))));
}
