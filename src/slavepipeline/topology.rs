// SPDX-License-Identifier: MPL-2.0
//! Which part of the slave pipeline each of our elements stands at the end of (the part an
//! rsipcpipelinesrc feeds, the part that feeds an rsipcupstreamsink), so that a message goes
//! back to the master element whose stream it concerns.

use std::collections::HashSet;

use gst::prelude::*;

/// Whether `object` (an element, or anything inside a bin) is linked to `element` on the side
/// of its pads of `direction`: downstream of a src, upstream of a sink. Links are followed
/// through ghost pads into and out of bins; a bin that is entered counts, so that its own
/// messages and those of everything in it are attributed to `element`.
pub fn on_side(element: &gst::Element, direction: gst::PadDirection, object: &gst::Object) -> bool {
    let fed = reachable(element, direction);
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

fn reachable(element: &gst::Element, direction: gst::PadDirection) -> HashSet<gst::Element> {
    let mut fed = HashSet::new();
    let mut todo = vec![element.clone()];
    while let Some(e) = todo.pop() {
        if !fed.insert(e.clone()) {
            continue;
        }
        let pads = match direction {
            gst::PadDirection::Sink => e.sink_pads(),
            _ => e.src_pads(),
        };
        for pad in pads {
            if let Some(peer) = pad.peer() {
                enter(peer, &mut fed, &mut todo);
            }
        }
    }
    fed
}

/// Resolves the pad a link leads to into the element at its other end, stepping through ghost
/// pads: into a bin through its ghost pad, out of a bin through the proxy pad of a ghost pad
/// (the same in both directions). Bounded, as a malformed graph of ghost pads could loop.
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
