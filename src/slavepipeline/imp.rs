// SPDX-License-Identifier: MPL-2.0
//! rsipcslavepipeline: a pipeline that forwards its messages to the master.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use std::sync::Arc;

use super::topology;
use crate::follow::{Follow, follower_of};
use crate::link::Link;

#[derive(Default)]
pub struct IpcSlavePipeline;

#[glib::object_subclass]
impl ObjectSubclass for IpcSlavePipeline {
    const NAME: &'static str = "GstRsIpcSlavePipeline";
    type Type = super::IpcSlavePipeline;
    type ParentType = gst::Pipeline;
}

impl ObjectImpl for IpcSlavePipeline {}
impl GstObjectImpl for IpcSlavePipeline {}

impl ElementImpl for IpcSlavePipeline {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: std::sync::LazyLock<gst::subclass::ElementMetadata> =
            std::sync::LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "Inter-process slave pipeline",
                    "Generic/Bin/Slave",
                    "Top-level pipeline of a slave process, driven by a master pipeline \
                     through its rsipcpipelinesrc and rsipcupstreamsink elements",
                    "gst-ipcpipeline-rs developers",
                )
            });
        Some(&*META)
    }

    fn post_message(&self, msg: gst::Message) -> bool {
        let masters: Vec<(gst::Element, Arc<Follow>, Arc<Link>)> = self
            .obj()
            .iterate_recurse()
            .into_iter()
            .filter_map(|e| {
                let e = e.ok()?;
                let (follow, link) = follower_of(&e)?;
                Some((e, follow, link?))
            })
            .collect();
        let forward = |(e, follow, link): &(gst::Element, Arc<Follow>, Arc<Link>)| {
            follow.forward_message(e, link, &msg)
        };
        // Every master needs the end of the stream, the completion of a state change and the
        // news that the slave lost its state. Any other message goes once, through the
        // element whose stream it concerns (the src that feeds, or the sink fed by, the
        // element that posted it), or the first that takes it.
        let to_all = matches!(
            msg.type_(),
            gst::MessageType::Eos | gst::MessageType::AsyncDone | gst::MessageType::StateChanged
        );
        if to_all {
            masters.iter().for_each(|m| {
                forward(m);
            });
        } else {
            let (concerned, others): (Vec<_>, Vec<_>) = masters.iter().partition(|(e, f, _)| {
                msg.src()
                    .is_some_and(|o| topology::on_side(e, f.stream_side(), o))
            });
            let _ = concerned.into_iter().chain(others).any(forward);
        }
        self.parent_post_message(msg)
    }
}

impl BinImpl for IpcSlavePipeline {}
impl PipelineImpl for IpcSlavePipeline {}
