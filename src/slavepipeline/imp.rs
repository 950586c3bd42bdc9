// SPDX-License-Identifier: MPL-2.0
//! rsipcslavepipeline: a pipeline that forwards its messages to the master.

use gst::glib;
use gst::glib::translate::IntoGlibPtr;
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
        if let Some(pipeline) = self.disposing() {
            // Our last reference is gone and our children are being removed; one of them
            // (an rsipcpipelinesrc noticing that its master left) may still post. GStreamer
            // allows that, but `obj()` may not be called now: post as the parent class does,
            // and forward nothing, since no master is left to tell.
            unsafe {
                let parent_class =
                    Self::type_data().as_ref().parent_class() as *const gst::ffi::GstElementClass;
                return match (*parent_class).post_message {
                    Some(f) => f(pipeline, msg.into_glib_ptr()) != glib::ffi::GFALSE,
                    None => false,
                };
            }
        }
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

impl IpcSlavePipeline {
    /// Our instance, when it is being disposed (no reference left).
    fn disposing(&self) -> Option<*mut gst::ffi::GstElement> {
        // SAFETY: how glib finds the instance of an implementation, without `obj()`'s check
        // that a reference is left; the memory stays valid until finalization, after dispose.
        let instance = unsafe {
            let offset = Self::type_data().as_ref().impl_offset();
            (self as *const Self as *const u8).offset(-offset) as *mut gst::ffi::GstElement
        };
        let refs = unsafe { (*(instance as *const glib::gobject_ffi::GObject)).ref_count };
        (refs == 0).then_some(instance)
    }
}

impl BinImpl for IpcSlavePipeline {}
impl PipelineImpl for IpcSlavePipeline {}
