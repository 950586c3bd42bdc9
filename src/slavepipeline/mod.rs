// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-rsipcslavepipeline
 *
 * The top-level pipeline of a slave process. It is an ordinary pipeline whose messages are
 * also offered to its rsipcpipelinesrc elements (`forward-message`), which send them to the
 * master; its state is set by the master through those elements, never by the application.
 *
 * With several rsipcpipelinesrc (several master sinks, or several master processes), a message
 * goes to the master sink whose stream produced it: the src upstream of the element that posted
 * it. End of stream, ASYNC_DONE and the loss of state go to every master. The rsipcpipelinesrc
 * may sit anywhere in the pipeline, inside bins too. Errors, warnings and infos posted before
 * any master is linked (up to 16) are kept, and sent first once one is.
 *
 * `gst_parse_launch("rsipcslavepipeline.( rsipcpipelinesrc fdin=N fdout=N ! ... )")` builds
 * one, exactly as with the C `ipcslavepipeline`.
 */
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;
mod topology;

glib::wrapper! {
    pub struct IpcSlavePipeline(ObjectSubclass<imp::IpcSlavePipeline>)
        @extends gst::Pipeline, gst::Bin, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

/// What the slave pipeline above `element` posted before any master was linked, for the
/// first master to be.
pub fn take_early(element: &gst::Element) -> Vec<gst::Message> {
    crate::follow::pipeline(element)
        .and_then(|p| p.downcast::<IpcSlavePipeline>().ok())
        .map(|slave| slave.imp().take_early())
        .unwrap_or_default()
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcslavepipeline",
        gst::Rank::NONE,
        IpcSlavePipeline::static_type(),
    )
}
