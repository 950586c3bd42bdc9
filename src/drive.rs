// SPDX-License-Identifier: MPL-2.0
//! The master's side of control. The element of ours that stands for a slave pipeline in the
//! master (rsipcpipelinesink for a slave downstream, rsipcupstreamsrc for one upstream)
//! behaves to its bin like a bin holding that pipeline: it makes the slave take each state
//! change (pairing the slave's asynchronous ones with ASYNC_START and ASYNC_DONE), gives it
//! the master's clock, base time and contexts, provides the clock the slave's elements
//! provide, answers element queries and events with the slave pipeline, and posts the slave's
//! messages as its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::clock;
use crate::link::{Link, LinkSlot};
use crate::settings::Settings;
use crate::spawned::SlaveProcess;
use crate::state_lock::StateLock;
use crate::wire::{Frame, RemoteMessage, Reply, Role, Target};

/// Where a message from the slave says which slave element posted it.
pub const ORIGIN_FIELD: &str = "ipc-origin";

/// Where the slave pipeline stands in the whole pipeline, seen from our element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Downstream of us (we are a sink): its sinks prerolling, ending the stream and losing
    /// their state are ours.
    Downstream,
    /// Upstream of us (we are a source): the stream's end and lost state reach our pipeline
    /// with the stream itself, through our src pad.
    Upstream,
}

/// Reports a broken link (the element knows how its slave ended, and whether it restarts).
pub type Report<'a> = &'a dyn Fn(&ChannelError);

/// The ERROR for a link to the slave that broke: no answer in time, how the slave process of
/// ours ended (with `note`, what restarts there were), or what broke.
pub fn link_error(err: &ChannelError, process: &SlaveProcess, note: &str) -> gst::ErrorMessage {
    let debug = err.to_string();
    let (kind, text) = match (err, process.ending()) {
        (ChannelError::Timeout(_), _) => (
            gst::ResourceError::Write,
            "No answer from the slave pipeline".to_string(),
        ),
        (_, Some(ended)) => (
            gst::ResourceError::Read,
            format!("Lost the slave pipeline: {ended}{note}"),
        ),
        (_, None) => (
            gst::ResourceError::Read,
            format!("Lost the connection to the slave pipeline: {err}"),
        ),
    };
    gst::ErrorMessage::new(
        &kind,
        Some(&text),
        Some(&debug),
        file!(),
        "link_error",
        line!(),
    )
}

pub struct Drive {
    /// The debug category of the element this works for.
    cat: gst::DebugCategory,
    part: Part,
    /// The element's link, shared with it.
    link: Arc<LinkSlot>,
    /// Set when we told our parent that a state change is in progress (ASYNC_START, or lost
    /// state) and the slave's ASYNC_DONE must complete it.
    pending_async: AtomicBool,
    /// The slave lost its state and we have not yet: see [`Drive::take_lost_state`].
    lost_state: Mutex<bool>,
    /// What the slave knows of our clock and base time.
    clock: clock::Announced,
    /// The clock the slave pipeline provides, as we provide it to our bin.
    slave_clock: clock::ClockCopy,
}

impl Drive {
    pub fn new(cat: gst::DebugCategory, part: Part, link: Arc<LinkSlot>) -> Arc<Drive> {
        Arc::new(Drive {
            cat,
            part,
            link,
            pending_async: AtomicBool::new(false),
            lost_state: Mutex::new(false),
            clock: Default::default(),
            slave_clock: Default::default(),
        })
    }

    /// Connects to the slave: the one `process` starts when `slave-pipeline` is set
    /// (`upstream`: the part upstream of us), else the one on the `settings`' fds; then waits
    /// for its greeting. A new slave knows nothing of our clock yet.
    pub fn connect(
        &self,
        element: &gst::Element,
        process: &SlaveProcess,
        settings: &Mutex<Settings>,
        role: Role,
        handler: impl FnOnce() -> Arc<dyn Handler>,
    ) -> Result<(), gst::ErrorMessage> {
        if let Some(fd) = process.start(element, self.part == Part::Upstream)? {
            let mut s = settings.lock().unwrap();
            s.fdin = fd;
            s.fdout = fd;
        }
        let settings = settings.lock().unwrap().clone();
        if settings.fdin < 0 || settings.fdout < 0 {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("fdin and fdout must be set before the element leaves the NULL state")
            ));
        }
        self.clock.forget();
        self.link
            .connect(&settings, role, &element.name(), handler)
            .and_then(|link| {
                link.channel.wait_hello()?;
                // The peer may have broken the protocol right after its greeting.
                link.channel.closed_reason().map_or(Ok(()), Err)
            })
            .map_err(|e| {
                self.link.disconnect();
                gst::error_msg!(
                    gst::ResourceError::OpenReadWrite,
                    ("Could not connect to the slave pipeline: {e}")
                )
            })
    }

    /// Tells the slave our clock and base time when they changed (`force`: before it goes to
    /// PLAYING), and samples a clock it follows now and then.
    pub fn announce_clock(&self, element: &gst::Element, link: &Link, force: bool) {
        if let Some(info) = self.clock.due(element, &self.slave_clock, force) {
            gst::debug!(self.cat, obj = element, "clock for the slave: {info:?}");
            let _ = link.channel.send(&Frame::Clock(info));
        }
    }

    /// [`Drive::announce_clock`] on the main link, whichever stream's buffer prompts it.
    pub fn sample_clock(&self, element: &gst::Element) {
        if let Some(link) = self.link.get() {
            self.announce_clock(element, &link, false);
        }
    }

    /// Our part of a state change, with the element's own (`parent`), in the order a bin
    /// holding both would take them, downstream first: the slave, then the element for a
    /// slave downstream; the element (its pad active, its task running), then the slave for
    /// one upstream. An asynchronous answer is ASYNC for our bin, completed by the slave's
    /// ASYNC_DONE. `live` says, for a change to PAUSED, whether the stream comes from a live
    /// source.
    pub fn change_state(
        &self,
        element: &gst::Element,
        transition: gst::StateChange,
        live: &dyn Fn() -> bool,
        report: Report,
        parent: impl FnOnce() -> Result<gst::StateChangeSuccess, gst::StateChangeError>,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        use gst::StateChange as T;
        let mut parent = Some(parent);
        if self.part == Part::Upstream {
            (parent.take().unwrap())()?;
        }
        let may_async = matches!(
            transition,
            T::ReadyToPaused | T::PausedToPlaying | T::PlayingToPaused
        );
        if may_async {
            // The slave's ASYNC_DONE may arrive before its reply: be ready for it first.
            self.pending_async.store(true, Ordering::SeqCst);
            let _ = element.post_message(gst::message::AsyncStart::builder().src(element).build());
        }
        if transition == T::PausedToPlaying
            && let Some(link) = self.link.get()
        {
            // Our bin set our clock and base time just before: the slave pipeline takes them
            // before it goes to PLAYING.
            self.announce_clock(element, &link, true);
        }
        let upward = transition.next() > transition.current();
        let live = transition.next() == gst::State::Paused && live();
        let peer = self.peer_state_change(element, transition, live, report);
        let complete = || {
            if may_async && self.pending_async.swap(false, Ordering::SeqCst) {
                self.post_async_done(element);
            }
        };
        if peer == gst::StateChangeReturn::Failure && upward {
            complete();
            return Err(gst::StateChangeError);
        }
        if let Some(parent) = parent
            && let Err(e) = parent()
            && upward
        {
            let undo = gst::StateChange::new(transition.next(), transition.current());
            let _ = self.peer_state_change(element, undo, false, report);
            return Err(e);
        }
        match peer {
            gst::StateChangeReturn::Async if may_async => Ok(gst::StateChangeSuccess::Async),
            gst::StateChangeReturn::NoPreroll => {
                complete();
                Ok(gst::StateChangeSuccess::NoPreroll)
            }
            _ => {
                complete();
                Ok(gst::StateChangeSuccess::Success)
            }
        }
    }

    /// Asks the slave to make `transition` and returns its answer; a broken link lets
    /// downward transitions succeed so that the master can always be shut down.
    pub fn peer_state_change(
        &self,
        element: &gst::Element,
        transition: gst::StateChange,
        live: bool,
        report: Report,
    ) -> gst::StateChangeReturn {
        let (from, to) = (transition.current(), transition.next());
        let downward = to < from;
        let link = self.link.get();
        let broken = link.as_ref().and_then(|l| l.channel.closed_reason());
        let Some(link) = link.filter(|_| broken.is_none()) else {
            if downward || from == to {
                return gst::StateChangeReturn::Success;
            }
            if let Some(e) = broken {
                report(&e);
            }
            return gst::StateChangeReturn::Failure;
        };
        let ack = Some(link.channel.ack_time());
        match link
            .channel
            .request(&Frame::StateChange { from, to, live }, ack, false)
        {
            Ok(Reply::State(r)) => r,
            Ok(other) => {
                gst::warning!(self.cat, obj = element, "unexpected reply {other:?}");
                gst::StateChangeReturn::Failure
            }
            Err(_) if downward => gst::StateChangeReturn::Success,
            Err(e) => {
                report(&e);
                gst::StateChangeReturn::Failure
            }
        }
    }

    fn post_async_done(&self, element: &gst::Element) {
        let _ = element.post_message(gst::message::AsyncDone::builder().src(element).build());
    }

    /// Handles what the slave sends about the whole slave pipeline: its messages, its lost
    /// state, samples of the clock it provides. Any other frame is given back.
    pub fn frame(
        self: &Arc<Self>,
        element: &gst::Element,
        link: &Link,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        match frame {
            Frame::Message(m) => {
                link.count_message()?;
                let (this, element) = (self.clone(), element.clone());
                link.control.push_for_peer(move || {
                    // Our parent passes up what we post without holding a reference of its
                    // own: hold it while we post, or an application dropping the pipeline
                    // now would free it under the message.
                    let _parent = element.parent();
                    this.handle_message(&element, m)
                })?;
            }
            Frame::Clock(info) => self.slave_clock.observe(&info),
            // Rare in a real session (a flush, a step), so it counts as a message: a storm of
            // them is cut off like any other flood.
            Frame::StateLost if self.part == Part::Downstream => {
                link.count_message()?;
                *self.lost_state.lock().unwrap() = true;
                let (this, element) = (self.clone(), element.clone());
                link.control.push_for_peer(move || {
                    let _parent = element.parent();
                    this.take_lost_state(&element)
                })?;
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }

    fn handle_message(&self, element: &gst::Element, m: RemoteMessage) {
        match m.type_ {
            gst::MessageType::AsyncDone => return self.complete_async(element),
            // The end of an upstream part's stream reaches our pipeline as the EOS event
            // we push; a message from a source would end nothing.
            gst::MessageType::Eos if self.part == Part::Upstream => return,
            _ => {}
        }
        // The message is ours for the bins above (they count EOS, stream-start and the like
        // per child), so its source is our element; the slave element that posted it is
        // named in the structure, and for errors, warnings and infos in the details too,
        // where gst-launch and most applications look.
        let mut m = m;
        if let Some(s) = m.structure.as_mut() {
            s.set(ORIGIN_FIELD, m.origin.as_str());
            if matches!(
                m.type_,
                gst::MessageType::Error | gst::MessageType::Warning | gst::MessageType::Info
            ) {
                let mut details = s
                    .get::<gst::Structure>("details")
                    .unwrap_or_else(|_| gst::Structure::new_empty("details"));
                details.set(ORIGIN_FIELD, m.origin.as_str());
                s.set("details", details);
            }
        }
        gst::debug!(
            self.cat,
            obj = element,
            "posting {:?} from {}",
            m.type_,
            m.origin
        );
        let _ = element.post_message(m.into_message(element.upcast_ref()));
    }

    /// The slave's ASYNC_DONE completes the state change we answered ASYNC, if any.
    fn complete_async(&self, element: &gst::Element) {
        // The state change that holds the lock may be the one taking our link down, and it
        // waits for this lane to finish: then there is nothing left to complete.
        let _lock = loop {
            if let Some(lock) = StateLock::try_new(element) {
                break lock;
            }
            if self.link.get().is_none_or(|l| l.channel.is_closed()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if self.pending_async.swap(false, Ordering::SeqCst) {
            let _ = element.continue_state(gst::StateChangeReturn::Success);
            self.post_async_done(element);
        }
    }

    /// Loses our state if the slave lost its own. The slave reports it while it handles a
    /// flush (a flushing seek, a step), before it answers the flush event: whoever comes
    /// first, the thread that sent the flush or the control lane, does it, so that the master
    /// is in lost state when the seek returns, as a sink in one pipeline would be. Like a base
    /// sink, without the state lock: GStreamer ignores lost state during a state change.
    pub fn take_lost_state(&self, element: &gst::Element) {
        let mut lost = self.lost_state.lock().unwrap();
        if std::mem::take(&mut *lost) {
            self.pending_async.store(true, Ordering::SeqCst);
            element.lost_state();
        }
    }

    /// An element query (position, duration, ...), answered by the slave pipeline.
    pub fn element_query(&self, query: &mut gst::QueryRef) -> Result<bool, ChannelError> {
        self.link
            .get()
            .map_or(Ok(false), |l| l.ask(Target::Element, query))
    }

    /// An event given to the element (a seek, ...), handled by the slave pipeline.
    pub fn element_event(&self, event: gst::Event) -> Result<bool, ChannelError> {
        self.link
            .get()
            .map_or(Ok(false), |l| l.tell(Target::Element, event))
    }

    /// The clock of the slave pipeline's own provider (an audio device), which a bin holding
    /// that pipeline would pick; none when the slave has none, and the master picks another.
    pub fn provide_clock(&self, element: &gst::Element) -> Option<gst::Clock> {
        let mut query = clock::ClockCopy::query();
        if !self.element_query(query.get_mut().unwrap()).ok()? {
            return None;
        }
        let clock = self.slave_clock.follow_answer(&query);
        gst::debug!(self.cat, obj = element, "the slave provides {clock:?}");
        clock
    }

    /// A bin hands its contexts to every child; the slave pipeline is our child here.
    pub fn set_context(&self, context: &gst::Context) {
        if let Some(link) = self.link.get() {
            let _ = link.channel.send(&Frame::Context(context.clone()));
        }
    }
}
