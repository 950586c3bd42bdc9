// SPDX-License-Identifier: MPL-2.0
//! rsipcslavepipeline: a pipeline that forwards its messages to the master.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use std::sync::{Arc, Mutex};

use super::topology;
use crate::follow::{Follow, follower_of};
use crate::link::Link;

/// Errors, warnings and infos posted before any master is linked, kept for the first one
/// (gst-ipc-slave's word that its sandbox is weaker than asked, say): at most this many.
const MAX_EARLY: usize = 16;

#[derive(Default)]
pub struct IpcSlavePipeline {
    early: Mutex<Vec<gst::Message>>,
}

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
        // Not under the `early` lock: a bin holds its own lock while it adds a child, which
        // may connect and take the early messages. A message kept just as a master connects
        // goes with the next one posted.
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
        if masters.is_empty() {
            use gst::MessageType as M;
            let mut early = self.early.lock().unwrap();
            if matches!(msg.type_(), M::Error | M::Warning | M::Info) && early.len() < MAX_EARLY {
                early.push(msg.clone());
            }
        } else {
            let early = std::mem::take(&mut *self.early.lock().unwrap());
            for m in early.iter().chain([&msg]) {
                route(&masters, m);
            }
        }
        self.parent_post_message(msg)
    }
}

impl IpcSlavePipeline {
    /// The messages kept from before any master was linked.
    pub(super) fn take_early(&self) -> Vec<gst::Message> {
        std::mem::take(&mut *self.early.lock().unwrap())
    }
}

/// Every master needs the end of the stream, the completion of a state change and the news
/// that the slave lost its state. Any other message goes once, through the element whose
/// stream it concerns (the src that feeds, or the sink fed by, the element that posted it),
/// or the first that takes it.
fn route(masters: &[(gst::Element, Arc<Follow>, Arc<Link>)], msg: &gst::Message) {
    let forward = |(e, follow, link): &(gst::Element, Arc<Follow>, Arc<Link>)| {
        follow.forward_message(e, link, msg)
    };
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
}

impl BinImpl for IpcSlavePipeline {}
impl PipelineImpl for IpcSlavePipeline {}
