// SPDX-License-Identifier: MPL-2.0
//! What the sink and the src share once connected: the channel, the ordered lanes that run
//! the peer's requests off the reader thread, and the conversions between wire results and
//! GStreamer results.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::channel::{Channel, ChannelError, Config, Handler};
use crate::lane::{Full, Lane, Spawner};
use crate::settings::Settings;
use crate::wire::{Frame, Reply, Role, Target, answer_fits, carried_meta_apis};

pub struct Link {
    pub channel: Channel,
    /// State changes, messages and lost state, in the order the peer sent them.
    pub control: Lane,
    /// Events that do not travel with the data, in order.
    pub events: Lane,
    /// Queries of the peer, each answered on a thread of its own.
    pub queries: Spawner,
    /// Messages from the peer in the current second, and when that second began.
    messages: Mutex<(std::time::Instant, u32)>,
    /// State changes the peer asked for that are not answered yet.
    state_changes: Arc<AtomicUsize>,
    /// The fds this link was made from, to notice when the application changes them.
    pub fds: (i32, i32),
}

/// Messages a peer may send in one second: far above what a pipeline posts (QoS, levels,
/// progress), far below what would fill the application's bus faster than it reads.
pub const MAX_MESSAGES_PER_SECOND: u32 = 10_000;

/// State changes a master may have asked for without their answers: a real one waits for each
/// (up to `ack-time`), so only a slave that is stuck again and again lets a few pile up. A
/// storm beyond this would keep the slave pipeline changing state long after the master moved
/// on.
pub const MAX_PENDING_STATE_CHANGES: usize = 16;

/// One state change of the peer's, counted until it is answered (dropped).
pub struct PendingStateChange(Arc<AtomicUsize>);

impl Drop for PendingStateChange {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl From<Full> for ChannelError {
    fn from(f: Full) -> Self {
        ChannelError::Limit(f.0)
    }
}

impl Link {
    /// Connects without reading yet: store the link, then [`Link::start`] it.
    pub fn connect(settings: &Settings, role: Role, name: &str) -> Result<Link, ChannelError> {
        let channel = Channel::connect(Config {
            fdin: settings.fdin,
            fdout: settings.fdout,
            role,
            ack_time: settings.ack_time(),
            read_chunk_size: settings.read_chunk_size as usize,
            name: name.into(),
        })?;
        Ok(Link {
            channel,
            control: Lane::new(&format!("{name}-control")),
            events: Lane::new(&format!("{name}-events")),
            queries: Spawner::default(),
            messages: Mutex::new((std::time::Instant::now(), 0)),
            state_changes: Arc::default(),
            fds: (settings.fdin, settings.fdout),
        })
    }

    /// Counts one message from the peer; an error beyond [`MAX_MESSAGES_PER_SECOND`].
    pub fn count_message(&self) -> Result<(), ChannelError> {
        let mut m = self.messages.lock().unwrap();
        if m.0.elapsed() >= std::time::Duration::from_secs(1) {
            *m = (std::time::Instant::now(), 0);
        }
        m.1 += 1;
        if m.1 > MAX_MESSAGES_PER_SECOND {
            return Err(ChannelError::Limit(format!(
                "more than {MAX_MESSAGES_PER_SECOND} messages in a second"
            )));
        }
        Ok(())
    }

    /// Counts one state change from the peer until the result is dropped; an error beyond
    /// [`MAX_PENDING_STATE_CHANGES`].
    pub fn state_change_request(&self) -> Result<PendingStateChange, ChannelError> {
        let pending = PendingStateChange(self.state_changes.clone());
        let n = self.state_changes.fetch_add(1, Ordering::SeqCst) + 1;
        if n > MAX_PENDING_STATE_CHANGES {
            return Err(ChannelError::Limit(format!(
                "{n} state changes asked for without waiting for their answers, the limit is \
                 {MAX_PENDING_STATE_CHANGES}"
            )));
        }
        Ok(pending)
    }

    /// A query the peer answers within the ack time (not one that waits behind the data),
    /// its answer copied into `query`.
    pub fn ask(&self, target: Target, query: &mut gst::QueryRef) -> Result<bool, ChannelError> {
        let frame = Frame::Query {
            target,
            query: query.to_owned(),
        };
        match self
            .channel
            .request(&frame, Some(self.channel.ack_time()), false)?
        {
            Reply::Query { result, structure } => {
                apply_query_reply(query, structure.as_deref());
                Ok(result)
            }
            _ => Ok(false),
        }
    }

    /// An event the peer handles within the ack time (not one that waits behind the data):
    /// its result.
    pub fn tell(&self, target: Target, event: gst::Event) -> Result<bool, ChannelError> {
        let frame = Frame::Event { target, event };
        match self
            .channel
            .request(&frame, Some(self.channel.ack_time()), false)?
        {
            Reply::Bool(b) => Ok(b),
            _ => Ok(false),
        }
    }

    pub fn start(&self, handler: Arc<dyn Handler>) -> Result<(), ChannelError> {
        self.channel.start(handler)
    }

    pub fn disconnect(&self) {
        self.channel.disconnect();
        self.control.stop();
        self.events.stop();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// Where an element keeps its link. The lock is never held while connecting or disconnecting:
/// disconnecting joins the reader thread, and the reader takes this lock to deliver frames.
#[derive(Default)]
pub struct LinkSlot(Mutex<Option<Arc<Link>>>);

impl LinkSlot {
    pub fn get(&self) -> Option<Arc<Link>> {
        self.0.lock().unwrap().clone()
    }

    /// Disconnects and forgets the current link, if any.
    pub fn disconnect(&self) {
        let link = self.0.lock().unwrap().take();
        if let Some(link) = link {
            link.disconnect();
        }
    }

    /// Keeps the current link if it works on the same fds; otherwise replaces it with a new
    /// one, stored before its reader starts so that the handler finds it for the first frame.
    pub fn connect(
        &self,
        settings: &Settings,
        role: Role,
        name: &str,
        handler: impl FnOnce() -> Arc<dyn Handler>,
    ) -> Result<Arc<Link>, ChannelError> {
        let current = self.get();
        if let Some(link) = current {
            if link.fds == (settings.fdin, settings.fdout) && !link.channel.is_closed() {
                return Ok(link);
            }
            self.disconnect();
        }
        let link = Arc::new(Link::connect(settings, role, name)?);
        *self.0.lock().unwrap() = Some(link.clone());
        if let Err(e) = link.start(handler()) {
            self.disconnect();
            return Err(e);
        }
        Ok(link)
    }
}

/// Copies the peer's answer into the caller's query object, keeping its identity. Only fields
/// the query already has, or that GStreamer's setters add to a query of its type, with the
/// same type, are taken: a peer cannot make the caller's `gst_query_parse_*` read a value of
/// the wrong type.
pub fn apply_query_reply(query: &mut gst::QueryRef, reply: Option<&gst::StructureRef>) {
    let Some(reply) = reply else { return };
    let t = query.type_();
    let s = query.structure_mut();
    let extension = is_extension(s.name());
    for (name, value) in reply.iter() {
        let fits = answer_fits(t, name, value).unwrap_or_else(|| match s.value(name) {
            Ok(v) => v.type_() == value.type_(),
            Err(_) => extension,
        });
        if fits {
            s.set_value(name, value.clone());
        }
    }
}

/// Custom queries carry whatever fields their users define.
fn is_extension(name: &str) -> bool {
    !name.starts_with("GstQuery")
}

pub fn query_reply(result: bool, query: &gst::QueryRef) -> Reply {
    let structure = match query.view() {
        gst::QueryView::Allocation(q) => Some(allocation_answer(q)),
        _ => query.structure().map(|s| s.to_owned()),
    };
    Reply::Query { result, structure }
}

/// An answered ALLOCATION query keeps its metas in a GArray of pointers, which never crosses;
/// the answer sent back lists them by API name instead. Pools and allocators are objects of
/// this process and stay here.
fn allocation_answer(q: &gst::query::Allocation) -> gst::Structure {
    let metas: Vec<gst::Structure> = q
        .allocation_metas()
        .map(|(api, params)| {
            let mut s = gst::Structure::builder("meta").field("api", api.name());
            if let Some(p) = params {
                s = s.field("params", p.to_owned());
            }
            s.build()
        })
        .collect();
    gst::Structure::builder(ALLOCATION_ANSWER)
        .field("metas", gst::Array::new(metas))
        .build()
}

const ALLOCATION_ANSWER: &str = "ipc-allocation-answer";

/// Adds to the caller's ALLOCATION query the metas the peer's pipeline accepts, among those
/// that cross ([`carried_meta_apis`]): anything else would be added upstream and lost here.
pub fn apply_allocation_answer(query: &mut gst::QueryRef, answer: Option<&gst::StructureRef>) {
    use gst::glib::translate::*;
    let Some(metas) = answer
        .filter(|s| s.name() == ALLOCATION_ANSWER)
        .and_then(|s| s.get::<gst::Array>("metas").ok())
    else {
        return;
    };
    let carried = carried_meta_apis();
    for m in metas.iter().filter_map(|v| v.get::<gst::Structure>().ok()) {
        let Some(api) = m
            .get::<&str>("api")
            .ok()
            .and_then(gst::glib::Type::from_name)
            .filter(|t| carried.contains(t))
        else {
            continue;
        };
        let params = m.get::<gst::Structure>("params").ok();
        unsafe {
            gst::ffi::gst_query_add_allocation_meta(
                query.as_mut_ptr(),
                api.into_glib(),
                params.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            );
        }
    }
}

/// The connection of a further stream of an upstream slave: a socket of its own, owned here
/// (the channel works on its raw fd), and the link on it, which goes down before the socket
/// closes.
pub struct StreamLink {
    pub slot: Arc<LinkSlot>,
    _fd: std::os::fd::OwnedFd,
}

/// The part of an element that a further stream's own connection feeds: its relay (the
/// master's events and queries for upstream) or its replay (the slave's stream).
pub trait StreamPart: Send + Sync + 'static {
    /// A frame for the stream; any other is given back.
    fn stream_frame(
        self: &Arc<Self>,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError>;
    /// The connection ended (why is the main connection's to report).
    fn closed(&self) {}
}

/// Hands what a stream's connection brings to its part; anything else ends that connection.
struct StreamHandler<P: StreamPart> {
    part: Weak<P>,
    slot: Weak<LinkSlot>,
}

impl<P: StreamPart> Handler for StreamHandler<P> {
    fn frame(&self, id: u32, frame: Frame) -> Result<(), ChannelError> {
        let (Some(part), Some(link)) = (
            self.part.upgrade(),
            self.slot.upgrade().and_then(|s| s.get()),
        ) else {
            return Ok(());
        };
        match part.stream_frame(&link, id, frame)? {
            Some(other) => Err(ChannelError::Unexpected(format!(
                "a {:?} frame on the connection of a stream",
                other.frame_type()
            ))),
            None => Ok(()),
        }
    }

    fn closed(&self, _error: &ChannelError) {
        if let Some(part) = self.part.upgrade() {
            part.closed();
        }
    }
}

impl StreamLink {
    /// Connects `slot` (the one `part` answers on) on `fd`, with the timing of the element's
    /// `settings`, and starts reading: `part` must be ready for the stream by then.
    pub fn connect<P: StreamPart>(
        fd: std::os::fd::OwnedFd,
        slot: Arc<LinkSlot>,
        part: &Arc<P>,
        settings: &Settings,
        role: Role,
        name: &str,
    ) -> Result<StreamLink, ChannelError> {
        use std::os::fd::AsRawFd;
        let mut settings = settings.clone();
        settings.fdin = fd.as_raw_fd();
        settings.fdout = fd.as_raw_fd();
        let handler = Arc::new(StreamHandler {
            part: Arc::downgrade(part),
            slot: Arc::downgrade(&slot),
        });
        slot.connect(&settings, role, name, || handler)?;
        Ok(StreamLink { slot, _fd: fd })
    }
}

impl Drop for StreamLink {
    fn drop(&mut self) {
        self.slot.disconnect();
    }
}
