// SPDX-License-Identifier: MPL-2.0
//! `on-slave-crash=restart`: a slave process of ours that dies is started again and brought
//! back to where the old one was (state, clock, stream-start, caps, segment, tags), the stream
//! resumes with the next buffer (the next keyframe of a delta-coded stream), and the master
//! pipeline stays where it is. At most `max-restarts` in any minute; then it is an error.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{CAT, IpcPipelineSink};
use crate::channel::ChannelError;
use crate::crash::CrashPolicy;
use crate::link::Link;
use crate::wire::{Frame, Target};

impl IpcPipelineSink {
    /// Whether a broken connection will be mended by a restart rather than reported.
    pub(super) fn will_restart(&self) -> bool {
        self.crash.will_restart(self.process.current().is_some())
    }

    /// The link to send on: the current one, or, if it broke and the slave is ours to
    /// restart, a new one to a new slave in our state. `None`: nothing to send on (the error
    /// is posted).
    pub(super) fn working_link(&self) -> Option<Arc<Link>> {
        let link = self.link()?;
        match link.channel.closed_reason() {
            None | Some(ChannelError::Disconnected) => Some(link),
            Some(e) => self.restart_slave(&link, &e).or(Some(link)),
        }
    }

    /// Replaces a dead slave with a new one (and that one, if it dies on the way, within the
    /// budget); `None` when that is not for us to do (the caller reports `cause`) or failed
    /// (reported here).
    pub(super) fn restart_slave(
        &self,
        failed: &Arc<Link>,
        cause: &ChannelError,
    ) -> Option<Arc<Link>> {
        if matches!(cause, ChannelError::Disconnected | ChannelError::Flushing) {
            return None;
        }
        gst::debug!(CAT, imp = self, "connection lost ({cause}): restart?");
        let _one_at_a_time = self.restart_lock.lock().unwrap();
        // Another thread of ours may just have done it. (The failed link itself may not say
        // it is closed yet: a write can fail before the reader sees the end.)
        if let Some(l) = self
            .link()
            .filter(|l| !Arc::ptr_eq(l, failed) && !l.channel.is_closed())
        {
            return Some(l);
        }
        let target = self.obj().current_state();
        if self.crash.policy() != CrashPolicy::Restart || target < gst::State::Ready {
            return None;
        }
        // A new slave that fails on the way is not an error yet: see post_link_error.
        self.crash.restarting.store(true, Ordering::SeqCst);
        let link = self.replace_slave(cause, target);
        self.crash.restarting.store(false, Ordering::SeqCst);
        link
    }

    fn replace_slave(&self, cause: &ChannelError, target: gst::State) -> Option<Arc<Link>> {
        loop {
            let old = self.process.current()?;
            if !self
                .crash
                .begin_restart(self.obj().upcast_ref(), &old, cause)
            {
                // Reported by the caller, as a crash without restarts is.
                return None;
            }
            drop(old);
            self.reap_slave();
            if let Err(msg) = self.connect() {
                if self.process.current().is_none() {
                    // Not even started: nothing to try again with.
                    self.post_error_message(msg);
                    return None;
                }
                // The new one died before it greeted us: counted as the old one was.
                continue;
            }
            let link = self.link()?;
            if self.catch_up(&link, target) {
                gst::info!(CAT, imp = self, "slave restarted, at {target:?}");
                return Some(link);
            }
        }
    }

    /// Brings a new slave to `target` and replays the sticky events of the stream, so that
    /// the next buffer finds it where the old one was.
    fn catch_up(&self, link: &Link, target: gst::State) -> bool {
        use gst::StateChange as T;
        for step in [T::NullToReady, T::ReadyToPaused, T::PausedToPlaying] {
            if step.current() >= target {
                break;
            }
            if step == T::PausedToPlaying {
                self.drive
                    .announce_clock(self.obj().upcast_ref(), link, true);
            }
            if self.peer_state_change(step) == gst::StateChangeReturn::Failure {
                return false;
            }
        }
        let mut sticky = Vec::new();
        self.sinkpad.sticky_events_foreach(|e| {
            sticky.push(e.clone());
            std::ops::ControlFlow::Continue(gst::EventForeachAction::Keep)
        });
        for event in sticky {
            let frame = Frame::Event {
                target: Target::Pad,
                event,
            };
            if let Err(e) = link.channel.request(&frame, None, true) {
                gst::warning!(CAT, imp = self, "new slave refused a sticky event: {e}");
                return false;
            }
        }
        // A delta-coded stream resumes at a keyframe: ask upstream for one now.
        self.wait_keyframe.store(true, Ordering::SeqCst);
        let _ = self.sinkpad.push_event(
            gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
        true
    }

    /// After a restart, buffers that depend on ones the old slave took are dropped until a
    /// keyframe comes.
    pub(super) fn skip_until_keyframe(&self, buffer: &gst::BufferRef) -> bool {
        if !self.wait_keyframe.load(Ordering::SeqCst) {
            return false;
        }
        if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            gst::log!(CAT, imp = self, "dropping a delta unit after a restart");
            return true;
        }
        self.wait_keyframe.store(false, Ordering::SeqCst);
        false
    }
}
