// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-rsipcupstreamsink
 *
 * Ends an upstream slave pipeline: the part of a split pipeline that produces the stream
 * (network source, demuxer, parsers) in a process of its own. Everything that reaches it
 * (buffers, events, queries) goes to the rsipcupstreamsrc of the master pipeline, which
 * pushes it on; events and queries from the master's downstream (seeks, position, latency)
 * come back out of its sink pad. Like rsipcpipelinesrc, it applies the master's state
 * changes, clock and contexts to the rsipcslavepipeline it lives in, which forwards its
 * messages, so the slave application never sets a state itself.
 *
 * ```text
 * rsipcslavepipeline.( souphttpsrc location=... ! matroskademux ! rsipcupstreamsink fdin=N fdout=N )
 * ```
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct IpcUpstreamSink(ObjectSubclass<imp::IpcUpstreamSink>)
        @extends gst::Element, gst::Object;
}

impl IpcUpstreamSink {
    /// The element's control side and its link, for the slave pipeline and its other masters.
    pub(crate) fn follower(
        &self,
    ) -> (
        std::sync::Arc<crate::follow::Follow>,
        Option<std::sync::Arc<crate::link::Link>>,
    ) {
        let imp = gst::subclass::prelude::ObjectSubclassIsExt::imp(self);
        (imp.follow.clone(), imp.link.get())
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcupstreamsink",
        gst::Rank::NONE,
        IpcUpstreamSink::static_type(),
    )
}
