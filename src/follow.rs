// SPDX-License-Identifier: MPL-2.0
//! The slave's side of control. In a slave pipeline, the element that stands for the master
//! (rsipcpipelinesrc downstream of it, rsipcupstreamsink upstream of it) applies the
//! master's state changes, clock and contexts to its pipeline, answers the master's element
//! queries and events with the whole pipeline, and forwards the pipeline's messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::channel::{ChannelError, Handler};
use crate::clock;
use crate::link::{Link, LinkSlot, query_reply};
use crate::settings::Settings;
use crate::state_lock::StateLock;
use crate::wire::{Frame, RemoteMessage, Reply, Role, Target, stays_local};

/// How long a state request waits for the slave pipeline to finish continuing to PLAYING.
const CONTINUE_WAIT: gst::ClockTime = gst::ClockTime::from_mseconds(500);

pub struct Follow {
    /// The debug category of the element this works for.
    cat: gst::DebugCategory,
    /// The element's pad that carries the stream: it must be linked before data flows.
    pad: gst::Pad,
    /// The state the master last asked for, see [`Follow::apply_state_change`].
    wanted: Mutex<Option<gst::State>>,
    /// Puts the slave pipeline on the master's clock and base time.
    pub clock: clock::Follower,
    /// The master's upstream is live: the element then stands for a live source.
    master_live: AtomicBool,
    /// Signalled when the pad gets linked, see [`Follow::wait_linked`].
    linked: Arc<(Mutex<()>, Condvar)>,
}

impl Follow {
    pub fn new(cat: gst::DebugCategory, pad: &gst::Pad) -> Arc<Follow> {
        let linked: Arc<(Mutex<()>, Condvar)> = Arc::default();
        let signal = linked.clone();
        pad.connect_linked(move |_, _| {
            let _guard = signal.0.lock().unwrap();
            signal.1.notify_all();
        });
        Arc::new(Follow {
            cat,
            pad: pad.clone(),
            wanted: Mutex::new(None),
            clock: Default::default(),
            master_live: AtomicBool::new(false),
            linked,
        })
    }

    /// Where the part of the slave pipeline we stand for lies: downstream of a src, upstream
    /// of a sink.
    pub fn stream_side(&self) -> gst::PadDirection {
        self.pad.direction()
    }

    /// Sends the master a fresh sample of the clock our pipeline provides, when it follows
    /// that clock and one is due (see [`clock::Follower::sample_due`]); as the stream flows.
    pub fn sample_clock(&self, link: &Link) {
        if let Some(info) = self.clock.sample_due() {
            let _ = link.channel.send(&Frame::Clock(info));
        }
    }

    /// Whether the master's last transition to PAUSED said its upstream is live.
    pub fn master_live(&self) -> bool {
        self.master_live.load(Ordering::SeqCst)
    }

    /// The state our master wants, while it is connected.
    pub fn wanted(&self, link: Option<&Link>) -> Option<gst::State> {
        let connected = link.is_some_and(|l| !l.channel.is_closed());
        connected.then(|| *self.wanted.lock().unwrap()).flatten()
    }

    /// The master is gone: it wants nothing any more.
    pub fn forget(&self) {
        *self.wanted.lock().unwrap() = None;
    }

    /// Handles what the master sends to control the whole slave pipeline: state changes,
    /// clock, contexts, element events and queries. Any other frame is given back.
    pub fn frame(
        self: &Arc<Self>,
        element: &gst::Element,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError> {
        let (this, element2, link2) = (self.clone(), element.clone(), link.clone());
        match frame {
            Frame::Event {
                target: Target::Element,
                event,
            } => link.control.push_for_peer(move || {
                let ok = pipeline(&element2).is_some_and(|p| p.send_event(event));
                let _ = link2.channel.reply(id, Reply::Bool(ok));
            })?,
            Frame::Query {
                target: Target::Element,
                mut query,
            } => link.queries.spawn("rsipc-query", move || {
                let q = query.make_mut();
                let ok =
                    pipeline(&element2).is_some_and(|p| this.clock.answer(&p, q) || p.query(q));
                let _ = link2.channel.reply(id, query_reply(ok, &query));
            })?,
            Frame::Context(context) => link.control.push_for_peer(move || {
                if let Some(p) = pipeline(&element2) {
                    p.set_context(&context);
                }
            })?,
            // On the lane of state changes: taken before the change to PLAYING that follows.
            Frame::Clock(info) => link.control.push_for_peer(move || {
                if let Some(p) = pipeline(&element2) {
                    gst::debug!(this.cat, obj = element2, "master clock {info:?}");
                    this.clock.apply(&p, &info);
                }
            })?,
            Frame::StateChange { from, to, live } => {
                let pending = link.state_change_request()?;
                link.control.push_for_peer(move || {
                    let _pending = pending;
                    let ack_time = link2.channel.ack_time();
                    let ret = this.apply_state_change(&element2, from, to, live, ack_time);
                    let _ = link2.channel.reply(id, Reply::State(ret));
                })?
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }

    /// Applies a state change requested by the master. With several masters (several of our
    /// elements in one slave pipeline) the pipeline follows the master that wants the state
    /// closest to PLAYING, as the C documentation promises (and its code does not do): a
    /// master going down while another stays up gets SUCCESS and leaves the pipeline where it
    /// is. A request that would not move the pipeline is answered with where it stands.
    fn apply_state_change(
        &self,
        element: &gst::Element,
        from: gst::State,
        to: gst::State,
        live: bool,
        ack_time: std::time::Duration,
    ) -> gst::StateChangeReturn {
        self.master_live.store(live, Ordering::SeqCst);
        let Some(pipeline) = pipeline(element) else {
            gst::warning!(
                self.cat,
                obj = element,
                "not inside a pipeline: cannot change state"
            );
            return gst::StateChangeReturn::Failure;
        };
        // A pipeline that prerolled and is continuing to PLAYING on its own does so on a
        // thread of its bin that needs the state lock: let it get there first, or a request
        // made meanwhile is answered ASYNC with no ASYNC_DONE ever to follow. It needs no
        // data, so this is short.
        if where_it_stands(&pipeline).2 {
            let _ = pipeline.state(CONTINUE_WAIT);
        }
        // Requests from several masters come on their own threads: one at a time.
        let _lock = StateLock::new(pipeline.upcast_ref());
        *self.wanted.lock().unwrap() = Some(to);
        let target = masters_target(&pipeline).map_or(to, |t| t.max(to));
        let (ret, effective, continuing) = where_it_stands(&pipeline);
        let upward = to > from;
        let moves = if upward {
            target > effective
        } else {
            target < effective
        };
        gst::debug!(
            self.cat,
            obj = element,
            "{from:?} -> {to:?} (live {live}), pipeline at {effective:?}, masters want {target:?}"
        );
        if !moves || from == to {
            // ASYNC only when a preroll is under way: its ASYNC_DONE completes this request too.
            // A pipeline that prerolled and is now continuing to PLAYING has sent its
            // ASYNC_DONE already; waiting for another would hang the master.
            use gst::StateChangeReturn as R;
            return match ret {
                R::Async | R::NoPreroll if upward && to > gst::State::Ready && !continuing => ret,
                _ => R::Success,
            };
        }
        // A sink at the end of an upstream part is linked when its streams appear, in PAUSED.
        if target >= gst::State::Paused && self.stream_side() == gst::PadDirection::Src {
            self.wait_linked(element, ack_time / 2);
        }
        pipeline.set_state(target).into()
    }

    /// When our master is gone and others remain, the pipeline follows them (down, if ours
    /// held it up). With no master left, the application decides, as with the C element.
    pub fn follow_other_masters(&self, element: &gst::Element) {
        let Some(pipeline) = pipeline(element) else {
            return;
        };
        let _lock = StateLock::new(pipeline.upcast_ref());
        if let Some(target) = masters_target(&pipeline)
            && target < where_it_stands(&pipeline).1
        {
            gst::info!(
                self.cat,
                obj = element,
                "master gone: following the others to {target:?}"
            );
            let _ = pipeline.set_state(target);
        }
    }

    /// gst_parse_launch adds us to the slave pipeline (and so connects us) before it links
    /// our pad: a master that is quick to start streaming would meet NOT_LINKED. Give the
    /// application a bounded moment to finish building the slave pipeline.
    fn wait_linked(&self, element: &gst::Element, patience: std::time::Duration) {
        let deadline = std::time::Instant::now() + patience;
        let (lock, cond) = &*self.linked;
        let mut guard = lock.lock().unwrap();
        while !self.pad.is_linked() {
            let now = std::time::Instant::now();
            if now >= deadline {
                gst::warning!(self.cat, obj = element, "pad still not linked");
                return;
            }
            guard = cond.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Sends `msg`, posted in the slave pipeline, to the master; false if it cannot go.
    pub fn forward_message(&self, element: &gst::Element, link: &Link, msg: &gst::Message) -> bool {
        use gst::MessageView as V;
        let send = |frame: Frame| link.channel.send(&frame).is_ok();
        let from = |o: Option<&gst::Object>| msg.src().is_some_and(|src| Some(src) == o);
        match msg.view() {
            // The slave pipeline lost its state (flushing seek, step): so must the master sink.
            V::StateChanged(s)
                if s.old() == s.current()
                    && s.pending() == s.current()
                    && from(pipeline(element).as_ref().map(|p| p.upcast_ref())) =>
            {
                send(Frame::StateLost)
            }
            _ if stays_local(msg.type_()) => true,
            // Our own complaints about the link cannot travel over it.
            _ if from(Some(element.upcast_ref())) => true,
            _ => send(Frame::Message(RemoteMessage {
                type_: msg.type_(),
                seqnum: unsafe { gst::ffi::gst_message_get_seqnum(msg.as_mut_ptr()) },
                origin: msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                structure: msg.structure().map(|s| s.to_owned()),
            })),
        }
    }
}

/// The slave pipeline an element drives: the nearest pipeline above it.
pub fn pipeline(element: &gst::Element) -> Option<gst::Pipeline> {
    let mut parent = element.parent();
    while let Some(p) = parent {
        if let Ok(pipeline) = p.clone().downcast::<gst::Pipeline>() {
            return Some(pipeline);
        }
        parent = p.parent();
    }
    None
}

/// An element that stands for the master in a slave pipeline (rsipcpipelinesrc,
/// rsipcupstreamsink): it connects by itself once it has its fds and a pipeline to drive,
/// hands what the master sends to its parts, and reports the master's loss.
pub trait Follower: ObjectSubclass<Type: IsA<gst::Element> + Send + Sync> + ElementImpl {
    /// The role of the element on the wire.
    const ROLE: Role;
    fn settings(&self) -> Settings;
    fn link_slot(&self) -> &LinkSlot;
    fn follow(&self) -> &Arc<Follow>;
    /// What the master sent for the stream (the element's pad): any other frame is given back.
    fn stream_frame(
        &self,
        link: &Arc<Link>,
        id: u32,
        frame: Frame,
    ) -> Result<Option<Frame>, ChannelError>;

    /// What the master sent, other than replies: control of the pipeline, or the stream. An
    /// error ends the link.
    fn handle_frame(&self, link: &Arc<Link>, id: u32, frame: Frame) -> Result<(), ChannelError> {
        let frame = match self
            .follow()
            .frame(self.obj().upcast_ref(), link, id, frame)?
        {
            Some(frame) => self.stream_frame(link, id, frame)?,
            None => None,
        };
        match frame {
            Some(other) => Err(ChannelError::Unexpected(format!(
                "a {:?} frame from the master",
                other.frame_type()
            ))),
            None => Ok(()),
        }
    }
    /// The link broke: let go of what the master sent, and post the ERROR.
    fn link_lost(&self, error: &ChannelError);
    /// The link to the master is up.
    fn connected(&self) {}

    /// Connects once both fds are known and the element is in a bin, as the C element does:
    /// a parent-less element has no pipeline to drive. gst_parse_launch sets the fds before
    /// it adds the element, so the bin's `set_bus` on the new child is what usually gets
    /// here (see [`hook_set_bus`]).
    fn maybe_connect(&self) {
        let settings = self.settings();
        let obj = self.obj();
        if settings.fdin < 0 || settings.fdout < 0 || obj.parent().is_none() {
            return;
        }
        let early = crate::slavepipeline::take_early(obj.upcast_ref());
        // Called once the link is in its slot and before its reader starts: what the slave
        // posted before goes ahead of anything the master's requests make it post.
        let handler = || -> Arc<dyn Handler> {
            if let Some(link) = self.link_slot().get() {
                for m in &early {
                    self.follow().forward_message(obj.upcast_ref(), &link, m);
                }
            }
            Arc::new(FollowerHandler::<Self> {
                element: obj.downgrade(),
            })
        };
        match self
            .link_slot()
            .connect(&settings, Self::ROLE, &obj.name(), handler)
        {
            Ok(_) => self.connected(),
            Err(e) => gst::element_error!(
                obj,
                gst::ResourceError::OpenReadWrite,
                ("Could not connect to the master pipeline: {e}")
            ),
        }
    }
}

/// GstObject does not notify parent changes, but a bin hands its bus to every child it adds:
/// hook that, in `class_init`, to learn that the element now has a pipeline to drive.
pub fn hook_set_bus<T: Follower>(klass: &mut T::Class) {
    unsafe {
        let k = &mut *(klass as *mut T::Class as *mut gst::ffi::GstElementClass);
        k.set_bus = Some(set_bus_trampoline::<T>);
    }
}

unsafe extern "C" fn set_bus_trampoline<T: Follower>(
    element: *mut gst::ffi::GstElement,
    bus: *mut gst::ffi::GstBus,
) {
    use gst::glib::translate::*;
    unsafe {
        let parent_class =
            T::type_data().as_ref().parent_class() as *const gst::ffi::GstElementClass;
        if let Some(f) = (*parent_class).set_bus {
            f(element, bus);
        }
        if !bus.is_null() {
            let obj: Borrowed<T::Type> = from_glib_borrow(element as *mut _);
            obj.imp().maybe_connect();
        }
    }
}

struct FollowerHandler<T: Follower> {
    element: glib::WeakRef<T::Type>,
}

impl<T: Follower> Handler for FollowerHandler<T> {
    fn frame(&self, id: u32, frame: Frame) -> Result<(), ChannelError> {
        let Some(element) = self.element.upgrade() else {
            return Ok(());
        };
        let imp = element.imp();
        match imp.link_slot().get() {
            Some(link) => imp.handle_frame(&link, id, frame),
            None => Ok(()),
        }
    }

    fn closed(&self, error: &ChannelError) {
        let Some(element) = self.element.upgrade() else {
            return;
        };
        let Some(link) = element.imp().link_slot().get() else {
            return;
        };
        let error = error.clone();
        link.control.push(move || {
            // A bin passes up what its children post without holding a reference of its own:
            // hold our parent while we post, or an application dropping the pipeline now
            // would free it under the message.
            let _parent = element.parent();
            let imp = element.imp();
            imp.follow().forget();
            imp.link_lost(&error);
            imp.follow().follow_other_masters(element.upcast_ref());
        });
    }
}

/// The control side of an element of ours that stands for a master in a slave pipeline, and
/// its link.
pub fn follower_of(e: &gst::Element) -> Option<(Arc<Follow>, Option<Arc<Link>>)> {
    if let Some(src) = e.downcast_ref::<crate::src::IpcPipelineSrc>() {
        return Some(src.follower());
    }
    if let Some(sink) = e.downcast_ref::<crate::upstreamsink::IpcUpstreamSink>() {
        return Some(sink.follower());
    }
    None
}

/// The highest state the connected masters of `pipeline` want, if any has asked yet.
fn masters_target(pipeline: &gst::Pipeline) -> Option<gst::State> {
    pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(|e| {
            let e = e.ok()?;
            let (follow, link) = follower_of(&e)?;
            follow.wanted(link.as_deref())
        })
        .max()
}

/// The last state change result, the state the pipeline is at or going to, and whether it is
/// prerolled and on its way from PAUSED to PLAYING.
fn where_it_stands(pipeline: &gst::Pipeline) -> (gst::StateChangeReturn, gst::State, bool) {
    let (ret, current, pending) = pipeline.state(gst::ClockTime::ZERO);
    let effective = if pending == gst::State::VoidPending {
        current
    } else {
        pending
    };
    let continuing = current == gst::State::Paused && pending == gst::State::Playing;
    (ret.into(), effective, continuing)
}
