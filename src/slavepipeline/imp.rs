// SPDX-License-Identifier: MPL-2.0
//! rsipcslavepipeline: a pipeline that forwards its messages to the master.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

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
        // Every src gets the end of the stream and the completion of a state change; any
        // other message goes to the master once, through the first src that takes it.
        let to_all = matches!(
            msg.type_(),
            gst::MessageType::Eos | gst::MessageType::AsyncDone
        );
        for child in self.obj().children() {
            if let Ok(src) = child.downcast::<IpcPipelineSrc>()
                && src.forward_message(&msg)
                && !to_all
            {
                break;
            }
        }
        self.parent_post_message(msg)
    }
}

impl BinImpl for IpcSlavePipeline {}
impl PipelineImpl for IpcSlavePipeline {}
