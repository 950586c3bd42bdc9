// SPDX-License-Identifier: MPL-2.0
//! GStreamer's element STATE_LOCK, which gstreamer-rs does not wrap.

use gst::glib;

/// Held by the master sink so that an ASYNC_DONE from the slave cannot complete a state change
/// that is still being made, and by the slave src so that the requests of several masters
/// are applied to the slave pipeline one at a time.
pub struct StateLock(*mut glib::ffi::GRecMutex);

impl StateLock {
    pub fn new(element: &gst::Element) -> StateLock {
        use gst::glib::translate::*;
        unsafe {
            let e: *mut gst::ffi::GstElement = element.to_glib_none().0;
            let m = std::ptr::addr_of_mut!((*e).state_lock);
            glib::ffi::g_rec_mutex_lock(m);
            StateLock(m)
        }
    }
}

impl StateLock {
    /// The lock, if no other thread holds it now.
    pub fn try_new(element: &gst::Element) -> Option<StateLock> {
        use gst::glib::translate::*;
        unsafe {
            let e: *mut gst::ffi::GstElement = element.to_glib_none().0;
            let m = std::ptr::addr_of_mut!((*e).state_lock);
            (glib::ffi::g_rec_mutex_trylock(m) != 0).then_some(StateLock(m))
        }
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        unsafe { glib::ffi::g_rec_mutex_unlock(self.0) }
    }
}
