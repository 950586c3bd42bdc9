// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-rsipcslavepipeline
 *
 * The top-level pipeline of a slave process. It is an ordinary pipeline whose messages are
 * also offered to its rsipcpipelinesrc children (`forward-message`), which send them to the
 * master; its state is set by the master through those children, never by the application.
 *
 * `gst_parse_launch("rsipcslavepipeline.( rsipcpipelinesrc fdin=N fdout=N ! ... )")` builds
 * one, exactly as with the C `ipcslavepipeline`.
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct IpcSlavePipeline(ObjectSubclass<imp::IpcSlavePipeline>)
        @extends gst::Pipeline, gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcslavepipeline",
        gst::Rank::NONE,
        IpcSlavePipeline::static_type(),
    )
}
