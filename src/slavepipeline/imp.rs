// SPDX-License-Identifier: MPL-2.0
//! rsipcslavepipeline: a pipeline that forwards its messages to the master.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::topology;
use crate::src::IpcPipelineSrc;

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
                     through its rsipcpipelinesrc elements",
                    "gst-ipcpipeline-rs developers",
                )
            });
        Some(&*META)
    }

    fn post_message(&self, msg: gst::Message) -> bool {
        let srcs: Vec<IpcPipelineSrc> = self
            .obj()
            .iterate_recurse()
            .into_iter()
            .filter_map(|e| e.ok()?.downcast().ok())
            .collect();
        let forward = |src: &IpcPipelineSrc| src.emit_by_name::<bool>("forward-message", &[&msg]);
        // Every master needs the end of the stream, the completion of a state change and the
        // news that the slave lost its state. Any other message goes once, through the src
        // whose stream produced it, or the first src that takes it.
        let to_all = matches!(
            msg.type_(),
            gst::MessageType::Eos | gst::MessageType::AsyncDone | gst::MessageType::StateChanged
        );
        if to_all {
            srcs.iter().for_each(|s| {
                forward(s);
            });
        } else {
            let (feeding, others): (Vec<_>, Vec<_>) = srcs.iter().partition(|s| {
                msg.src()
                    .is_some_and(|o| topology::feeds(s.upcast_ref(), o))
            });
            let _ = feeding.into_iter().chain(others).any(forward);
        }
        self.parent_post_message(msg)
    }
}

impl BinImpl for IpcSlavePipeline {}
impl PipelineImpl for IpcSlavePipeline {}
