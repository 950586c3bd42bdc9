// SPDX-License-Identifier: MPL-2.0
//! `on-slave-crash=restart` for an upstream slave: a slave process of ours that dies is
//! started again and brought to where the old one was (state, clock); its stream takes the
//! place of the old one's, from where that one was when the stream can seek (a file), or from
//! now (a live source). The master pipeline stays where it is. At most `max-restarts` in any
//! minute; then it is an error.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{CAT, IpcUpstreamSrc};
use crate::channel::ChannelError;
use crate::state_lock::StateLock;

impl IpcUpstreamSrc {
    /// Whether a broken connection will be mended by a restart rather than reported.
    pub(super) fn will_restart(&self, cause: &ChannelError) -> bool {
        !matches!(cause, ChannelError::Disconnected | ChannelError::Flushing)
            && self.crash.will_restart(self.process.current().is_some())
    }

    /// Replaces the dead slave (and a new one that dies on the way, within the budget), or
    /// posts the ERROR. Takes our state lock: the application's state changes wait for it.
    pub(super) fn restart_slave(&self, cause: &ChannelError) {
        let element = self.obj();
        let _state = StateLock::new(element.upcast_ref());
        let target = element.current_state();
        if target < gst::State::Ready {
            return;
        }
        gst::debug!(CAT, imp = self, "connection lost ({cause}): restarting");
        self.crash
            .restarting
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let replaced = self.replace_slave(cause, target);
        self.crash
            .restarting
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if !replaced {
            self.post_link_error(cause);
        }
    }

    fn replace_slave(&self, cause: &ChannelError, target: gst::State) -> bool {
        // Where the stream was, for a new one that can seek there.
        let position = self.srcpad.peer_query_position::<gst::ClockTime>();
        loop {
            let Some(old) = self.process.current() else {
                return false;
            };
            if !self
                .crash
                .begin_restart(self.obj().upcast_ref(), &old, cause)
            {
                // Reported by the caller, as a crash without restarts is.
                return false;
            }
            drop(old);
            self.remove_streams();
            self.replay.flush_queue();
            self.release_slave();
            if let Err(msg) = self.connect() {
                if self.process.current().is_none() {
                    // Not even started: nothing to try again with.
                    self.post_error_message(msg);
                    return false;
                }
                // The new one died before it greeted us: counted as the old one was.
                continue;
            }
            if self.catch_up(target, position) {
                gst::info!(CAT, imp = self, "slave restarted, at {target:?}");
                return true;
            }
        }
    }

    /// Brings a new slave to `target` behind our pads, which stayed where they were, and has
    /// a stream that can seek resume at `position`.
    fn catch_up(&self, target: gst::State, position: Option<gst::ClockTime>) -> bool {
        use gst::StateChange as T;
        let element = self.obj();
        if target >= gst::State::Paused && self.replay.start().is_err() {
            return false;
        }
        let pushed = self.replay.buffers_pushed();
        let report = |e: &ChannelError| gst::debug!(CAT, imp = self, "new slave: {e}");
        let mut live = false;
        for step in [T::NullToReady, T::ReadyToPaused, T::PausedToPlaying] {
            if step.current() >= target {
                break;
            }
            if step == T::PausedToPlaying
                && let Some(link) = self.link.get()
            {
                self.drive.announce_clock(element.upcast_ref(), &link, true);
            }
            match self
                .drive
                .peer_state_change(element.upcast_ref(), step, false, &report)
            {
                gst::StateChangeReturn::Failure => return false,
                gst::StateChangeReturn::NoPreroll => live = true,
                _ => {}
            }
        }
        if let Some(position) = position.filter(|_| !live && target >= gst::State::Paused) {
            self.seek_new_slave(position, pushed);
        }
        true
    }

    /// Has the new slave seek to `position`. A demuxer can seek once it has exposed its
    /// stream, after it has begun pushing: tried after each of its first buffers (a buffer of
    /// the old slave may still have been on its way when `pushed` were counted), for at
    /// most the ack time.
    fn seek_new_slave(&self, position: gst::ClockTime, mut pushed: u64) {
        let patience = self
            .link
            .get()
            .map(|l| l.channel.ack_time())
            .unwrap_or_default();
        let deadline = std::time::Instant::now() + patience;
        while self.replay.wait_for_buffer(
            pushed,
            deadline.saturating_duration_since(std::time::Instant::now()),
        ) {
            pushed = self.replay.buffers_pushed();
            let seek = gst::event::Seek::new(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                gst::SeekType::Set,
                position,
                gst::SeekType::None,
                gst::ClockTime::NONE,
            );
            if matches!(self.replay.upstream_event(seek), Ok(true)) {
                return;
            }
        }
        gst::info!(CAT, imp = self, "the new slave cannot seek to {position}");
    }
}
