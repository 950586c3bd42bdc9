// SPDX-License-Identifier: MPL-2.0
//! `benchsrc`: a source of `blocksize`-byte buffers in the given caps, each stamped with the
//! CLOCK_MONOTONIC time it was made and its sequence number, so that the receiving side can
//! measure latency across processes. With `downstream-memory` it allocates as GStreamer
//! sources do (the pool or allocator downstream offers); without, every buffer is plain
//! system memory that a transport must copy.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

/// What each buffer starts with: monotonic nanoseconds, then the sequence number.
pub const STAMP_LEN: usize = 16;

pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Reads the stamp of a buffer made by `benchsrc`: (made at, sequence number).
pub fn read_stamp(buffer: &gst::BufferRef) -> Option<(u64, u64)> {
    let mut stamp = [0u8; STAMP_LEN];
    (buffer.copy_to_slice(0, &mut stamp).is_ok()).then(|| {
        (
            u64::from_le_bytes(stamp[..8].try_into().unwrap()),
            u64::from_le_bytes(stamp[8..].try_into().unwrap()),
        )
    })
}

#[derive(Default)]
struct Settings {
    caps: Option<gst::Caps>,
    downstream_memory: bool,
    interval_ns: u64,
}

#[derive(Default)]
struct State {
    seq: u64,
    started_ns: u64,
}

#[derive(Default)]
pub struct BenchSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for BenchSrc {
    const NAME: &'static str = "GstIpcBenchSrc";
    type Type = super::BenchSrcElement;
    type ParentType = gst_base::BaseSrc;
}

impl ObjectImpl for BenchSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static P: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoxed::builder::<gst::Caps>("caps")
                    .nick("Caps")
                    .blurb("The caps of the buffers")
                    .build(),
                glib::ParamSpecBoolean::builder("downstream-memory")
                    .nick("Downstream memory")
                    .blurb("Allocate from what downstream offers instead of plain system memory")
                    .build(),
                glib::ParamSpecUInt64::builder("interval")
                    .nick("Interval")
                    .blurb("Nanoseconds between buffers (0: as fast as downstream takes them)")
                    .build(),
            ]
        });
        P.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "caps" => s.caps = value.get().unwrap(),
            "downstream-memory" => s.downstream_memory = value.get().unwrap(),
            "interval" => s.interval_ns = value.get().unwrap(),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "caps" => s.caps.to_value(),
            "downstream-memory" => s.downstream_memory.to_value(),
            "interval" => s.interval_ns.to_value(),
            _ => unreachable!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        self.obj().set_format(gst::Format::Time);
    }
}

impl GstObjectImpl for BenchSrc {}

impl ElementImpl for BenchSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static M: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Benchmark source",
                "Source",
                "Stamped buffers of a fixed size for transport benchmarks",
                "gst-ipcpipeline-rs developers",
            )
        });
        Some(&*M)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &gst::Caps::new_any(),
                )
                .unwrap(),
            ]
        });
        T.as_ref()
    }
}

impl BaseSrcImpl for BenchSrc {
    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = self
            .settings
            .lock()
            .unwrap()
            .caps
            .clone()
            .unwrap_or_else(|| gst::Caps::new_empty_simple("application/x-bench"));
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = State::default();
        Ok(())
    }

    fn alloc(&self, offset: u64, length: u32) -> Result<gst::Buffer, gst::FlowError> {
        if self.settings.lock().unwrap().downstream_memory {
            self.parent_alloc(offset, length)
        } else {
            gst::Buffer::with_size(length as usize).map_err(|_| gst::FlowError::Error)
        }
    }

    fn fill(
        &self,
        _offset: u64,
        _length: u32,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let interval = self.settings.lock().unwrap().interval_ns;
        let (seq, due) = {
            let mut s = self.state.lock().unwrap();
            if s.seq == 0 {
                s.started_ns = monotonic_ns();
            }
            s.seq += 1;
            (s.seq - 1, s.started_ns + (s.seq - 1) * interval)
        };
        // Paced: each buffer leaves at its time, so latency is measured without queueing.
        let now = monotonic_ns();
        if due > now {
            std::thread::sleep(std::time::Duration::from_nanos(due - now));
        }
        let mut stamp = [0u8; STAMP_LEN];
        stamp[8..].copy_from_slice(&seq.to_le_bytes());
        stamp[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
        buffer
            .copy_from_slice(0, &stamp)
            .map_err(|_| gst::FlowError::Error)?;
        buffer.set_pts(gst::ClockTime::from_useconds(seq));
        Ok(gst::FlowSuccess::Ok)
    }
}
