// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-rsipcupstreamsrc
 *
 * Starts the master pipeline with a stream produced by a slave pipeline in another process:
 * the upstream part of a split pipeline (network source, demuxer, parsers, the least trusted
 * code), which ends in an rsipcupstreamsink. To its own pipeline it behaves like a bin
 * holding that upstream part: state changes are applied to the slave, the slave's messages
 * are posted from this element, seeks and queries from downstream reach the slave's elements,
 * and the slave runs on the master's clock.
 *
 * With `slave-pipeline` it starts the slave process itself (the gst-ipc-slave helper, in the
 * sandbox `sandbox` asks for); otherwise `fdin` and `fdout` connect it to a slave the
 * application started, as with rsipcpipelinesink.
 *
 * ```text
 * gst-launch-1.0 rsipcupstreamsrc sandbox=strict slave-pipeline="filesrc location=movie.mkv ! matroskademux" ! decodebin ! autovideosink
 * ```
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct IpcUpstreamSrc(ObjectSubclass<imp::IpcUpstreamSrc>)
        @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rsipcupstreamsrc",
        gst::Rank::NONE,
        IpcUpstreamSrc::static_type(),
    )
}
