// SPDX-License-Identifier: MPL-2.0
//! One clock and one base time on both sides of a link, chosen as GStreamer would choose them
//! for the unsplit pipeline, so a buffer's running time means the same instant in both
//! processes and a syncing sink in the slave renders it when the unsplit pipeline would.
//!
//! Usually the master's clock wins: its sink says what the clock is and where running time
//! starts ([`Announced`]) and the slave pipeline runs on it ([`Follower`]). When the slave's
//! own elements provide a clock (an audio sink), a bin holding them would pick it: the
//! master's sink then provides a copy of it ([`ClockCopy`]) and the slave keeps the original.
//!
//! The system clocks read a kernel clock that every process of the host shares, so a copy
//! reads the very same time. Any other clock (an audio device's, a network clock) is sampled
//! against CLOCK_MONOTONIC by its owner now and then, and the copy is a monotonic clock
//! calibrated from those samples, as a network client clock would be, without the jitter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::wire::{ClockInfo, ClockKind};

/// How often a clock the other side cannot read is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// The custom query a master's sink asks the slave pipeline which clock it provides with.
const PROVIDER_QUERY: &str = "GstRsIpcPipelineClockProvider";

/// CLOCK_MONOTONIC in ns: what a monotonic system clock reads in every process.
pub fn monotonic_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// What `clock` is for the other process, with a sample when it cannot read it.
fn info_of(clock: &gst::Clock, base_time: Option<gst::ClockTime>) -> ClockInfo {
    let kind = system_kind(clock).unwrap_or(ClockKind::Other);
    let sample = (kind == ClockKind::Other).then(|| {
        // The clock read between two monotonic reads: off by half their gap at most.
        let before = monotonic_now();
        let time = clock.time();
        let after = monotonic_now();
        (time, before + (after - before) / 2)
    });
    ClockInfo {
        kind,
        base_time,
        sample,
    }
}

/// Which system clock `clock` is; `None` for every other clock, subclasses included (an
/// audio clock is a system clock subclass that reads the device), and for a system clock
/// calibrated to follow another.
fn system_kind(clock: &gst::Clock) -> Option<ClockKind> {
    if clock.type_() != gst::SystemClock::static_type() || clock.calibration() != IDENTITY {
        return None;
    }
    match clock.property::<gst::ClockType>("clock-type") {
        gst::ClockType::Monotonic => Some(ClockKind::Monotonic),
        gst::ClockType::Realtime => Some(ClockKind::Realtime),
        gst::ClockType::Tai => Some(ClockKind::Tai),
        _ => None,
    }
}

const IDENTITY: (gst::ClockTime, gst::ClockTime, u64, u64) =
    (gst::ClockTime::ZERO, gst::ClockTime::ZERO, 1, 1);

/// A clock that reads what an [`ClockInfo`] describes: the system clock it names, or a
/// monotonic clock calibrated from the samples of one that cannot be read here. Kept from
/// one PLAYING to the next, so that the pipeline does not change clocks every time.
#[derive(Default)]
struct Mirror(Mutex<Option<(ClockKind, gst::Clock)>>);

impl Mirror {
    fn clock_for(&self, info: &ClockInfo) -> Option<gst::Clock> {
        let clock_type = match info.kind {
            ClockKind::None | ClockKind::Peer => return None,
            ClockKind::Monotonic | ClockKind::Other => gst::ClockType::Monotonic,
            ClockKind::Realtime => gst::ClockType::Realtime,
            ClockKind::Tai => gst::ClockType::Tai,
        };
        let mut kept = self.0.lock().unwrap();
        match &*kept {
            Some((kind, clock)) if *kind == info.kind => {
                if let Some((time, monotonic)) = info.sample {
                    let _ = clock.add_observation(gst::ClockTime::from_nseconds(monotonic), time);
                }
                Some(clock.clone())
            }
            _ => {
                let clock = glib::Object::builder::<gst::SystemClock>()
                    .property("clock-type", clock_type)
                    .build()
                    .upcast::<gst::Clock>();
                if let Some((time, monotonic)) = info.sample {
                    // Internal time is CLOCK_MONOTONIC: the first sample sets the offset,
                    // the following ones the rate too.
                    clock.set_calibration(gst::ClockTime::from_nseconds(monotonic), time, 1, 1);
                }
                *kept = Some((info.kind, clock.clone()));
                Some(clock)
            }
        }
    }

    fn get(&self) -> Option<gst::Clock> {
        self.0.lock().unwrap().as_ref().map(|(_, c)| c.clone())
    }

    /// A sample of the clock this mirrors.
    fn observe(&self, info: &ClockInfo) {
        let kept = self.0.lock().unwrap();
        if let (Some((kind, clock)), Some((time, monotonic))) = (&*kept, info.sample)
            && *kind == info.kind
        {
            let _ = clock.add_observation(gst::ClockTime::from_nseconds(monotonic), time);
        }
    }
}

// --- the master's side -------------------------------------------------------------------

/// The pipeline (or bin) at the top of `element`'s hierarchy.
fn top_level(element: &gst::Element) -> gst::Element {
    let mut top = element.clone();
    while let Some(parent) = top.parent().and_then(|p| p.downcast::<gst::Element>().ok()) {
        top = parent;
    }
    top
}

/// The application told the pipeline `top` to use no clock at all (`use_clock(NULL)`).
fn runs_without_clock(top: &gst::Element) -> bool {
    let Some(pipeline) = top.downcast_ref::<gst::Pipeline>() else {
        return false;
    };
    let p: *mut gst::ffi::GstPipeline = pipeline.as_ptr();
    // SAFETY: reads two fields of a live pipeline under its object lock, as GStreamer does.
    let _lock = pipeline.object_lock();
    unsafe {
        (*p).bin.element.object.flags & gst::ffi::GST_PIPELINE_FLAG_FIXED_CLOCK != 0
            && (*p).fixed_clock.is_null()
    }
}

/// What the master's sink last told its slave, so that it tells again only what changed.
#[derive(Default)]
pub struct Announced(Mutex<Option<(ClockInfo, Instant)>>);

impl Announced {
    /// What to send now, if anything: everything with `force` (on the way to PLAYING, where
    /// the first description goes), else a new base time, or a fresh sample of a clock the
    /// slave follows once [`SAMPLE_INTERVAL`] has passed. `copy` is the slave's clock as we
    /// provide it.
    pub fn due(&self, element: &gst::Element, copy: &ClockCopy, force: bool) -> Option<ClockInfo> {
        let mut last = self.0.lock().unwrap();
        let clock = element.clock();
        // A sink added to a pipeline on its way to PLAYING may get there before its bin has
        // handed out the clock and base time (sync_state_with_parent from pad-added): the
        // slave runs on a clock of its own until they come, as a C slave always does.
        // Until the pipeline is PLAYING too: it hands out the clock before the base time.
        let was_ahead = last
            .as_ref()
            .is_some_and(|(i, _)| i.kind == ClockKind::None && i.base_time.is_none());
        // The hierarchy is walked only then: not for every buffer of a pipeline that plays.
        let ahead = if clock.is_none() {
            !runs_without_clock(&top_level(element))
        } else {
            was_ahead && top_level(element).current_state() != gst::State::Playing
        };
        let base_time = if ahead { None } else { element.base_time() };
        let stale = |(prev, at): &(ClockInfo, Instant)| {
            prev.base_time != base_time
                || prev.kind == ClockKind::Other && at.elapsed() >= SAMPLE_INTERVAL
        };
        if !force && !last.as_ref().is_some_and(stale) {
            return None;
        }
        let info = match clock.filter(|_| !ahead) {
            None => ClockInfo {
                kind: ClockKind::None,
                base_time,
                sample: None,
            },
            Some(c) if Some(&c) == copy.0.get().as_ref() => ClockInfo {
                kind: ClockKind::Peer,
                base_time,
                sample: None,
            },
            Some(c) => info_of(&c, base_time),
        };
        *last = Some((info, Instant::now()));
        Some(info)
    }

    /// A new connection has heard nothing yet.
    pub fn forget(&self) {
        *self.0.lock().unwrap() = None;
    }
}

/// The master's copy of the clock the slave pipeline provides.
#[derive(Default)]
pub struct ClockCopy(Mirror);

impl ClockCopy {
    /// The query that asks the slave pipeline for its clock; see [`Self::follow_answer`].
    pub fn query() -> gst::Query {
        gst::query::Custom::new(gst::Structure::new_empty(PROVIDER_QUERY)).into()
    }

    /// Follows the clock the answer describes: our copy of it, or `None` when the slave
    /// provides none.
    pub fn follow_answer(&self, query: &gst::QueryRef) -> Option<gst::Clock> {
        let s = query.structure()?;
        let kind = match s.get::<u32>("kind").ok()? {
            1 => ClockKind::Monotonic,
            2 => ClockKind::Realtime,
            3 => ClockKind::Tai,
            4 => ClockKind::Other,
            _ => return None,
        };
        let sample = match (s.get::<u64>("time"), s.get::<u64>("monotonic")) {
            // NONE is no time: a peer that says so has no sample.
            (Ok(t), Ok(m)) if t != u64::MAX && m != u64::MAX => {
                Some((gst::ClockTime::from_nseconds(t), m))
            }
            _ => None,
        };
        if kind == ClockKind::Other && sample.is_none() {
            return None;
        }
        self.0.clock_for(&ClockInfo {
            kind,
            base_time: None,
            sample,
        })
    }

    /// A sample the slave sent of the clock it provides.
    pub fn observe(&self, info: &ClockInfo) {
        self.0.observe(info);
    }
}

// --- the slave's side --------------------------------------------------------------------

/// The clock the elements of `pipeline` provide: the one a bin holding them picks (sinks
/// first, then upstream), whatever clock the pipeline is told to use.
pub fn provided_by(pipeline: &gst::Pipeline) -> Option<gst::Clock> {
    pipeline
        .iterate_sorted()
        .into_iter()
        .flatten()
        .filter(|e| e.element_flags().contains(gst::ElementFlags::PROVIDE_CLOCK))
        .find_map(|e| e.provide_clock())
}

/// The slave's side: runs the slave pipeline on the clock and base time the master says, and
/// tells the master about the clock the slave pipeline provides, if any.
#[derive(Default)]
pub struct Follower {
    mirror: Mirror,
    /// The clock this pipeline provides, when the master's copy follows it from samples, and
    /// when it was last sampled.
    provided: Mutex<Option<(gst::Clock, Instant)>>,
}

impl Follower {
    pub fn apply(&self, pipeline: &gst::Pipeline, info: &ClockInfo) {
        if info.kind == ClockKind::None && info.base_time.is_none() {
            // The master has no clock yet: pick ours and a base time of our own, as any
            // pipeline does, until it tells.
            pipeline.auto_clock();
            pipeline.set_start_time(gst::ClockTime::ZERO);
            return;
        }
        if info.kind == ClockKind::Peer {
            // Our own provider, as the unsplit pipeline would pick it.
            pipeline.auto_clock();
        } else {
            pipeline.use_clock(self.mirror.clock_for(info).as_ref());
        }
        // No start time: the pipeline keeps the base time we give it instead of computing its
        // own when it goes to PLAYING.
        pipeline.set_start_time(gst::ClockTime::NONE);
        if let Some(base_time) = info.base_time {
            pipeline.set_base_time(base_time);
            // A bin hands its base time to its children on its way to PLAYING; once there,
            // it is ours to hand.
            if pipeline.current_state() == gst::State::Playing {
                for e in pipeline.iterate_recurse().into_iter().flatten() {
                    e.set_base_time(base_time);
                }
            }
        }
    }

    /// Answers the master's [`ClockCopy::query`]; false for any other query.
    pub fn answer(&self, pipeline: &gst::Pipeline, query: &mut gst::QueryRef) -> bool {
        if query.structure().is_none_or(|s| s.name() != PROVIDER_QUERY) {
            return false;
        }
        let provided = provided_by(pipeline);
        let s = query.structure_mut();
        let mut followed = None;
        match provided.as_ref().map(|c| (c, info_of(c, None))) {
            None => s.set("kind", ClockKind::None as u32),
            Some((clock, info)) => {
                s.set("kind", info.kind as u32);
                if let Some((time, monotonic)) = info.sample {
                    s.set("time", time.nseconds());
                    s.set("monotonic", monotonic);
                    followed = Some((clock.clone(), Instant::now()));
                }
            }
        }
        *self.provided.lock().unwrap() = followed;
        true
    }

    /// A fresh sample of the clock we provide, when the master follows it and the last one is
    /// [`SAMPLE_INTERVAL`] old.
    pub fn sample_due(&self) -> Option<ClockInfo> {
        let mut provided = self.provided.lock().unwrap();
        let (clock, at) = provided.as_mut()?;
        if at.elapsed() < SAMPLE_INTERVAL {
            return None;
        }
        *at = Instant::now();
        Some(info_of(clock, None))
    }
}
