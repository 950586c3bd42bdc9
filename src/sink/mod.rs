// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-rsipcpipelinesink
 *
 * Ends the master pipeline and carries everything that reaches it to a slave pipeline in
 * another process, where an rsipcpipelinesrc replays it. To its own pipeline it behaves like a
 * bin holding the whole remote pipeline: state changes are applied to the slave, the slave's
 * messages are posted from this element, element queries and events (position, seek, ...) are
 * answered by the slave.
 *
 * A drop-in replacement for the C `ipcpipelinesink`: same properties and signals.
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct IpcPipelineSink(ObjectSubclass<imp::IpcPipelineSink>)
        @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcpipelinesink",
        gst::Rank::NONE,
        IpcPipelineSink::static_type(),
    )
}
