// SPDX-License-Identifier: MPL-2.0
#![allow(unused_doc_comments)]
//! rsipcpipeline: one GStreamer pipeline split across several processes.

pub mod channel;
mod clock;
mod crash;
mod drive;
pub mod dump;
mod follow;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod lane;
pub mod launcher;
mod link;
pub mod memory;
mod relay;
mod replay;
mod ring;
pub mod sandbox;
mod settings;
mod sink;
mod slavepipeline;
mod spawned;
mod src;
mod state_lock;
mod upstreamsink;
mod upstreamsrc;
pub mod wire;

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    sink::register(plugin)?;
    src::register(plugin)?;
    slavepipeline::register(plugin)?;
    upstreamsrc::register(plugin)?;
    upstreamsink::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    rsipcpipeline,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL-2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
