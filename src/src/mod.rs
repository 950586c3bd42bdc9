// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-rsipcpipelinesrc
 *
 * Starts a slave pipeline: replays in this process what an rsipcpipelinesink receives in the
 * master process (buffers, events, queries), sends upstream events and queries back, and
 * applies the master's state changes to the rsipcslavepipeline it lives in, so the slave
 * application never sets a state itself.
 *
 * A drop-in replacement for the C `ipcpipelinesrc`: same properties and signals.
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct IpcPipelineSrc(ObjectSubclass<imp::IpcPipelineSrc>)
        @extends gst::Element, gst::Object;
}

impl IpcPipelineSrc {
    /// What `forward-message` does; called by rsipcslavepipeline for every message.
    pub fn forward_message(&self, msg: &gst::Message) -> bool {
        gst::subclass::prelude::ObjectSubclassIsExt::imp(self).forward_message(msg)
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcpipelinesrc",
        gst::Rank::NONE,
        IpcPipelineSrc::static_type(),
    )
}
