// SPDX-License-Identifier: MPL-2.0
//! The sending end of a stream: what reaches our sink pad (buffers, events, queries) goes to
//! the peer, which pushes it on; events and queries the peer's pipeline sends upstream are
//! pushed out of our sink pad. rsipcpipelinesink relays a master's stream to its slave,
//! rsipcupstreamsink an upstream slave's stream to its master.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gst::prelude::*;

use crate::channel::ChannelError;
use crate::link::{Link, LinkSlot, apply_allocation_answer, apply_query_reply, query_reply};
use crate::wire::{Frame, Reply, Target};

/// Buffers sent ahead of the peer's answers by default (it answers them in batches); flow
/// errors reach upstream at most this late. Copies in flight are also bounded in bytes.
pub const DEFAULT_WINDOW: u32 = 32;

pub struct Relay {
    /// The debug category of the element this works for.
    cat: gst::DebugCategory,
    sinkpad: gst::Pad,
    /// The element's link, shared with it.
    link: Arc<LinkSlot>,
    /// The `window` property: buffers in flight before the chain function waits.
    window: AtomicU32,
}

impl Relay {
    pub fn new(cat: gst::DebugCategory, sinkpad: &gst::Pad, link: Arc<LinkSlot>) -> Arc<Relay> {
        Arc::new(Relay {
            cat,
            sinkpad: sinkpad.clone(),
            link,
            window: AtomicU32::new(DEFAULT_WINDOW),
        })
    }

    pub fn window(&self) -> u32 {
        self.window.load(Ordering::Relaxed)
    }

    pub fn set_window(&self, window: u32) {
        self.window.store(window, Ordering::Relaxed);
    }

    /// Sends `buffer`, waiting while the window is full; the first flow error the peer
    /// returned since the last flush, if any.
    pub fn send_buffer(&self, link: &Link, buffer: &gst::Buffer) -> Result<(), ChannelError> {
        link.channel.send_buffer(buffer, self.window() as usize)
    }

    /// The chain function may wait for credit with the stream lock held: wake it before the
    /// pad is deactivated (PAUSED to READY); take buffers again from READY to PAUSED.
    pub fn set_flushing(&self, flushing: bool) {
        if let Some(l) = self.link.get() {
            l.channel.set_flushing(flushing);
            if !flushing {
                l.channel.reset_flow();
            }
        }
    }

    /// Sends an event from upstream to the peer and returns its answer. `flushed` runs once
    /// a FLUSH_START or FLUSH_STOP is answered.
    pub fn event(
        &self,
        link: &Link,
        event: gst::Event,
        flushed: &dyn Fn(),
    ) -> Result<Reply, ChannelError> {
        gst::log!(self.cat, obj = self.sinkpad, "forwarding {event:?}");
        let ch = &link.channel;
        let ack = Some(ch.ack_time());
        let frame = Frame::Event {
            target: Target::Pad,
            event: event.clone(),
        };
        match event.type_() {
            gst::EventType::FlushStart => {
                ch.set_flushing(true);
                let r = ch.request(&frame, ack, false);
                flushed();
                r
            }
            gst::EventType::FlushStop => {
                let r = ch.request(&frame, ack, false);
                // The reply comes after the peer answered every buffer sent before the flush,
                // so their FLUSHING answers are behind us now.
                ch.set_flushing(false);
                ch.reset_flow();
                flushed();
                r
            }
            // Serialized events wait behind the buffers, as long as the peer holds them back
            // (a prerolled sink in PAUSED); a flush or a broken link ends the wait.
            _ if event.is_serialized() => ch.request(&frame, None, true),
            _ => ch.request(&frame, ack, false),
        }
    }

    /// Asks the peer a query from upstream. The peer's answer to ALLOCATION tells which metas
    /// its pipeline takes; pools stay local there, and we offer none but our memfd pool, and
    /// that only when fd memory crosses.
    pub fn query(&self, link: &Link, query: &mut gst::QueryRef) -> Result<bool, ChannelError> {
        let ch = &link.channel;
        let timeout = if query.is_serialized() {
            None
        } else {
            Some(ch.ack_time())
        };
        let frame = Frame::Query {
            target: Target::Pad,
            query: query.to_owned(),
        };
        let allocation = query.type_() == gst::QueryType::Allocation;
        match ch.request(&frame, timeout, query.is_serialized())? {
            Reply::Query { structure, .. } if allocation => {
                apply_allocation_answer(query, structure.as_deref());
                if ch.fd_memory() {
                    self.offer_pool(query);
                }
                Ok(true)
            }
            Reply::Query { result, structure } => {
                apply_query_reply(query, structure.as_deref());
                Ok(result)
            }
            other => {
                gst::warning!(self.cat, obj = self.sinkpad, "unexpected reply {other:?}");
                Ok(false)
            }
        }
    }

    /// Raw video gets a pool of memfd memory, whose buffers then cross as fds: upstream
    /// writes its frames straight into memory the peer maps. Strides and offsets travel in a
    /// video meta when the peer's pipeline takes one.
    fn offer_pool(&self, query: &mut gst::QueryRef) {
        let gst::QueryViewMut::Allocation(q) = query.view_mut() else {
            return;
        };
        let (Some(caps), need_pool) = q.get_owned() else {
            return;
        };
        let video_meta = q.find_allocation_meta::<gst_video::VideoMeta>().is_some();
        if let Some((pool, allocator, size)) = crate::memory::pool(&caps, video_meta) {
            gst::debug!(
                self.cat,
                obj = self.sinkpad,
                "offering a memfd pool (upstream needs one: {need_pool})"
            );
            q.add_allocation_pool(Some(&pool), size, 2, 0);
            // Sources that configure the pool themselves take the allocator from here.
            q.add_allocation_param(Some(&allocator), gst::AllocationParams::default());
        }
    }

    /// Handles what the peer's pipeline sends upstream through us: events and queries pushed
    /// out of our sink pad, each answered. Any other frame is given back.
    pub fn frame(
        &self,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        match frame {
            Frame::Event {
                target: Target::Pad,
                event,
            } if event.is_upstream() => {
                let (pad, link2) = (self.sinkpad.clone(), link.clone());
                link.events.push_for_peer(move || {
                    let ok = pad.push_event(event);
                    let _ = link2.channel.reply(id, Reply::Bool(ok));
                })?;
            }
            Frame::Query {
                target: Target::Pad,
                mut query,
            } if query.is_upstream() => {
                let (pad, link2) = (self.sinkpad.clone(), link.clone());
                link.queries.spawn("rsipc-query", move || {
                    let ok = pad.peer_query(query.make_mut());
                    let _ = link2.channel.reply(id, query_reply(ok, &query));
                })?;
            }
            Frame::Event { .. } => {
                gst::warning!(
                    self.cat,
                    obj = self.sinkpad,
                    "refusing an event from the peer"
                );
                let _ = link.channel.reply(id, Reply::Bool(false));
            }
            Frame::Query { query, .. } => {
                gst::warning!(
                    self.cat,
                    obj = self.sinkpad,
                    "refusing a query from the peer"
                );
                let _ = link.channel.reply(id, query_reply(false, &query));
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }
}

impl crate::link::StreamPart for Relay {
    fn stream_frame(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        self.frame(link, id, frame)
    }
}
