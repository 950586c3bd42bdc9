// SPDX-License-Identifier: MPL-2.0
//! One clock and one base time on both sides of a link. The master's sink says what its clock
//! is and where running time starts ([`describe`]); the slave pipeline runs on the same clock
//! with the same base time ([`Follower`]), so a buffer's running time means the same instant in
//! both processes and a syncing sink in the slave renders it when the unsplit pipeline would.
//!
//! The system clocks read a kernel clock that every process on the host shares, so the slave
//! reads the very same time. Any other clock (an audio device's, a network clock) is followed:
//! the master samples it against CLOCK_MONOTONIC and the slave calibrates a monotonic clock of
//! its own from those samples, as a network client clock would, without the network's jitter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::wire::{ClockInfo, ClockKind};

/// How often the master samples a clock the slave cannot read itself.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// CLOCK_MONOTONIC in ns: what a monotonic system clock reads in every process.
pub fn monotonic_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The clock and base time of `element`, as the slave needs them.
pub fn describe(element: &gst::Element) -> ClockInfo {
    let base_time = element.base_time();
    let Some(clock) = element.clock() else {
        return ClockInfo {
            kind: ClockKind::None,
            base_time,
            sample: None,
        };
    };
    let kind = system_kind(&clock).unwrap_or(ClockKind::Other);
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
/// audio clock is a system clock subclass that reads the device).
fn system_kind(clock: &gst::Clock) -> Option<ClockKind> {
    if clock.type_() != gst::SystemClock::static_type() {
        return None;
    }
    match clock.property::<gst::ClockType>("clock-type") {
        gst::ClockType::Monotonic => Some(ClockKind::Monotonic),
        gst::ClockType::Realtime => Some(ClockKind::Realtime),
        gst::ClockType::Tai => Some(ClockKind::Tai),
        _ => None,
    }
}

/// What the master's sink last told its slave, so that it tells again only what changed.
#[derive(Default)]
pub struct Announced(Mutex<Option<(ClockInfo, Instant)>>);

impl Announced {
    /// What to send now, if anything: the first description, a new base time or clock, or a
    /// fresh sample of a followed clock once [`SAMPLE_INTERVAL`] has passed.
    pub fn due(&self, element: &gst::Element, force: bool) -> Option<ClockInfo> {
        let mut last = self.0.lock().unwrap();
        let stale = |(prev, at): &(ClockInfo, Instant)| {
            prev.base_time != element.base_time()
                || prev.kind == ClockKind::Other && at.elapsed() >= SAMPLE_INTERVAL
        };
        if !force && last.as_ref().is_some_and(|l| !stale(l)) {
            return None;
        }
        let info = describe(element);
        *last = Some((info, Instant::now()));
        Some(info)
    }

    /// A new connection has heard nothing yet.
    pub fn forget(&self) {
        *self.0.lock().unwrap() = None;
    }
}

/// The slave side: puts the slave pipeline on the master's clock and base time.
#[derive(Default)]
pub struct Follower {
    /// Kept from one PLAYING to the next, so the pipeline does not change clocks each time.
    clock: Mutex<Option<(ClockKind, gst::Clock)>>,
}

impl Follower {
    pub fn apply(&self, pipeline: &gst::Pipeline, info: &ClockInfo) {
        let clock = self.clock_for(info);
        pipeline.use_clock(clock.as_ref());
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

    fn clock_for(&self, info: &ClockInfo) -> Option<gst::Clock> {
        let clock_type = match info.kind {
            ClockKind::None => return None,
            ClockKind::Monotonic | ClockKind::Other => gst::ClockType::Monotonic,
            ClockKind::Realtime => gst::ClockType::Realtime,
            ClockKind::Tai => gst::ClockType::Tai,
        };
        let mut kept = self.clock.lock().unwrap();
        let clock = match &*kept {
            Some((kind, clock)) if *kind == info.kind => clock.clone(),
            _ => {
                let clock = glib::Object::builder::<gst::SystemClock>()
                    .property("clock-type", clock_type)
                    .build()
                    .upcast::<gst::Clock>();
                if let Some((time, monotonic)) = info.sample {
                    // Internal time is CLOCK_MONOTONIC: one sample sets the offset, the
                    // following ones the rate.
                    clock.set_calibration(gst::ClockTime::from_nseconds(monotonic), time, 1, 1);
                }
                *kept = Some((info.kind, clock.clone()));
                return Some(clock);
            }
        };
        if let Some((time, monotonic)) = info.sample {
            let _ = clock.add_observation(gst::ClockTime::from_nseconds(monotonic), time);
        }
        Some(clock)
    }
}
