// SPDX-License-Identifier: MPL-2.0
//! Which part of the slave pipeline each rsipcpipelinesrc feeds, so that a message goes back
//! to the master sink whose stream produced it.

use std::collections::HashSet;

use gst::prelude::*;

/// Whether `object` (an element, or anything inside a bin) is downstream of `src`. Links are
/// followed through ghost pads into and out of bins; a bin that is entered counts as fed, so
/// that its own messages and those of everything in it are attributed to `src`.
pub fn feeds(src: &gst::Element, object: &gst::Object) -> bool {
    let fed = downstream_of(src);
    let mut o = Some(object.clone());
    while let Some(obj) = o {
        if let Ok(e) = obj.clone().downcast::<gst::Element>()
            && fed.contains(&e)
        {
            return true;
        }
        o = obj.parent();
    }
    false
}

fn downstream_of(src: &gst::Element) -> HashSet<gst::Element> {
    let mut fed = HashSet::new();
    let mut todo = vec![src.clone()];
    while let Some(e) = todo.pop() {
        if !fed.insert(e.clone()) {
            continue;
        }
        for pad in e.src_pads() {
            if let Some(peer) = pad.peer() {
                enter(peer, &mut fed, &mut todo);
            }
        }
    }
    fed
}

/// Resolves the pad a link leads to into the element that receives the data, stepping through
/// ghost pads: into a bin through its sink ghost pad, out of a bin through the proxy pad of a
/// src ghost pad. Bounded, as a malformed graph of ghost pads could loop.
fn enter(mut pad: gst::Pad, fed: &mut HashSet<gst::Element>, todo: &mut Vec<gst::Element>) {
    for _ in 0..64 {
        if let Some(ghost) = pad.downcast_ref::<gst::GhostPad>() {
            if let Some(bin) = ghost.parent_element() {
                fed.insert(bin);
            }
            match ghost.internal().and_then(|p| p.peer()) {
                Some(inner) => pad = inner,
                None => return,
            }
        } else if let Some(ghost) = pad
            .parent()
            .and_then(|p| p.downcast::<gst::GhostPad>().ok())
        {
            match ghost.peer() {
                Some(next) => pad = next,
                None => return,
            }
        } else {
            if let Some(e) = pad.parent_element() {
                todo.push(e);
            }
            return;
        }
    }
}
