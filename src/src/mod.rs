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
    /// The element's control side and its link, for the slave pipeline and its other masters.
    pub(crate) fn follower(
        &self,
    ) -> (
        std::sync::Arc<crate::follow::Follow>,
        Option<std::sync::Arc<crate::link::Link>>,
    ) {
        let imp = gst::subclass::prelude::ObjectSubclassIsExt::imp(self);
        (imp.follow.clone(), imp.link())
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
