// SPDX-License-Identifier: MPL-2.0
//! What a master element does when the slave process it started dies (`on-slave-crash`): post
//! one ERROR that says how it ended, or start it again and carry on, with a WARNING, at most
//! `max-restarts` times in any minute. How to carry on is the element's business (the sink
//! resumes at the next keyframe, the upstream source where its stream was).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::channel::ChannelError;
use crate::spawned::{self, SpawnedSlave};

#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsIpcPipelineCrashPolicy")]
pub enum CrashPolicy {
    #[default]
    #[enum_value(name = "Post one ERROR that says how the slave ended", nick = "error")]
    Error,
    #[enum_value(
        name = "Start the slave again and carry on, with a WARNING",
        nick = "restart"
    )]
    Restart,
}

pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// `max-restarts` counts the restarts in this window.
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The two properties, the recent restarts, and whether one is under way.
pub struct Crash {
    settings: Mutex<(CrashPolicy, u32)>,
    /// When the recent restarts happened.
    times: Mutex<VecDeque<Instant>>,
    /// A restart is under way: the failures of the new slave are its business.
    pub restarting: AtomicBool,
}

impl Default for Crash {
    fn default() -> Self {
        Crash {
            settings: Mutex::new((CrashPolicy::default(), DEFAULT_MAX_RESTARTS)),
            times: Mutex::default(),
            restarting: AtomicBool::new(false),
        }
    }
}

impl Crash {
    /// `on-slave-crash` and `max-restarts`; `carry_on` says how the element carries on.
    pub fn properties(carry_on: &str) -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecEnum::builder::<CrashPolicy>("on-slave-crash")
                .nick("On slave crash")
                .blurb(&format!(
                    "What to do when the slave process of slave-pipeline dies: post an \
                     error, or start it again and carry on {carry_on}, with a warning"
                ))
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("max-restarts")
                .nick("Max restarts")
                .blurb(
                    "With on-slave-crash=restart, restarts allowed in any minute; one more \
                     crash is an error",
                )
                .default_value(DEFAULT_MAX_RESTARTS)
                .mutable_playing()
                .build(),
        ]
    }

    /// Sets one of [`Crash::properties`]; false for any other.
    pub fn set_property(&self, name: &str, value: &glib::Value) -> bool {
        let mut s = self.settings.lock().unwrap();
        match name {
            "on-slave-crash" => s.0 = value.get().unwrap(),
            "max-restarts" => s.1 = value.get().unwrap(),
            _ => return false,
        }
        true
    }

    /// One of [`Crash::properties`]; `None` for any other.
    pub fn property(&self, name: &str) -> Option<glib::Value> {
        let s = self.settings.lock().unwrap();
        match name {
            "on-slave-crash" => Some(s.0.to_value()),
            "max-restarts" => Some(s.1.to_value()),
            _ => None,
        }
    }

    pub fn policy(&self) -> CrashPolicy {
        self.settings.lock().unwrap().0
    }

    /// Whether a dead slave of ours (`spawned`) is to be restarted rather than reported.
    pub fn will_restart(&self, spawned: bool) -> bool {
        let max = self.settings.lock().unwrap().1;
        self.restarting.load(Ordering::SeqCst)
            || self.policy() == CrashPolicy::Restart && spawned && !self.spent(max)
    }

    /// Counts one more restart, if the budget allows it: which it is, and the most allowed.
    pub fn take(&self) -> Option<(usize, u32)> {
        let max = self.settings.lock().unwrap().1;
        let mut times = self.times.lock().unwrap();
        let now = Instant::now();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RESTART_WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= max as usize {
            return None;
        }
        times.push_back(now);
        Some((times.len(), max))
    }

    /// Ends `old` if it still runs (it hangs, or broke the protocol), counts its restart
    /// against the budget and says so in a WARNING from `element`: false when the budget is
    /// spent (the caller then reports the crash, as without restarts).
    pub fn begin_restart(
        &self,
        element: &gst::Element,
        old: &SpawnedSlave,
        cause: &ChannelError,
    ) -> bool {
        let how = old
            .exit_status(Duration::from_millis(500))
            .or_else(|| old.kill())
            .map(spawned::describe_exit)
            .unwrap_or_else(|| "stopped answering".into());
        let Some((n, max)) = self.take() else {
            return false;
        };
        gst::element_warning!(
            element,
            gst::ResourceError::Read,
            (
                "The slave process {} {how}: starting it again ({n} of at most {max} in a minute)",
                old.pid
            ),
            ["{cause}"]
        );
        true
    }

    fn spent(&self, max: u32) -> bool {
        let now = Instant::now();
        self.times
            .lock()
            .unwrap()
            .iter()
            .filter(|t| now.duration_since(**t) < RESTART_WINDOW)
            .count()
            >= max as usize
    }

    /// What an ERROR about a dead slave adds when restarts were allowed: they ran out.
    pub fn spent_note(&self) -> String {
        let (policy, max) = *self.settings.lock().unwrap();
        if policy == CrashPolicy::Restart {
            format!(", after {max} restarts in a minute")
        } else {
            String::new()
        }
    }
}
