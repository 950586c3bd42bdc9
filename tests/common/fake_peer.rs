// SPDX-License-Identifier: MPL-2.0
//! A hostile peer in the test process: it writes frames no real element would, reads what the
//! element answers, and drives a real slave pipeline as a master would until it misbehaves.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstrsipcpipeline::wire::{self, Frame, Hello, PROTOCOL_VERSION, Role, Target};

use super::DEADLINE;

/// Writes all of `data`, with `fds` attached to its first byte, unless the element hangs up
/// first (as it does on a peer it cuts off): with MSG_NOSIGNAL, since SIGPIPE stays at its
/// default in these tests, as in a C application.
pub fn send_all(fd: &OwnedFd, data: &[u8], fds: &[BorrowedFd]) -> Result<(), rustix::io::Errno> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut off = 0;
    let mut space =
        vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        ancillary.push(SendAncillaryMessage::ScmRights(fds));
    }
    while off < data.len() {
        let sent = if off == 0 {
            rustix::net::sendmsg(
                fd,
                &[std::io::IoSlice::new(data)],
                &mut ancillary,
                SendFlags::NOSIGNAL,
            )
        } else {
            rustix::net::send(fd, &data[off..], SendFlags::NOSIGNAL)
        };
        match sent {
            Ok(n) => off += n,
            Err(rustix::io::Errno::AGAIN) => {
                let mut p = [rustix::event::PollFd::new(
                    fd,
                    rustix::event::PollFlags::OUT,
                )];
                rustix::event::poll(&mut p, None).unwrap();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A memfd of `len` bytes with `seals`, as a hostile peer makes one.
pub fn memfd(len: usize, seals: rustix::fs::SealFlags) -> OwnedFd {
    use rustix::fs::MemfdFlags;
    let fd = rustix::fs::memfd_create("hostile", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .unwrap();
    rustix::fs::ftruncate(&fd, len as u64).unwrap();
    if !seals.is_empty() {
        rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    }
    fd
}

/// Reads whole frames from `peer` as they come, on a thread, answering each with `answer`;
/// ends when the other side is gone.
pub fn serve(
    peer: OwnedFd,
    answer: impl Fn(&wire::Header) -> Option<Vec<u8>> + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let read_exact = |buf: &mut [u8]| -> bool {
            let mut off = 0;
            while off < buf.len() {
                match rustix::io::read(&peer, &mut buf[off..]) {
                    Ok(0) => return false,
                    Ok(n) => off += n,
                    Err(rustix::io::Errno::AGAIN) => {
                        let mut p = [rustix::event::PollFd::new(
                            &peer,
                            rustix::event::PollFlags::IN,
                        )];
                        let _ = rustix::event::poll(&mut p, None);
                    }
                    Err(_) => return false,
                }
            }
            true
        };
        loop {
            let mut head = [0u8; wire::HEADER_LEN];
            if !read_exact(&mut head) {
                return;
            }
            let Ok(header) = wire::Header::decode(&head) else {
                return;
            };
            let mut body = vec![0u8; header.len as usize];
            if !read_exact(&mut body) {
                return;
            }
            if let Some(reply) = answer(&header)
                && send_all(&peer, &reply, &[]).is_err()
            {
                return;
            }
        }
    })
}

/// A master that drives `rsipcslavepipeline.( rsipcpipelinesrc ! fakesink )` to PAUSED with
/// stream-start, caps and segment, as a real one would, and then sends what a test wants.
pub struct FakeMaster {
    pub slave: gst::Pipeline,
    pub peer: OwnedFd,
    ours: OwnedFd,
    server: JoinHandle<()>,
    next_id: u32,
}

impl FakeMaster {
    /// `features`: what the master says it can do (fd memory or not).
    pub fn start(features: u64) -> FakeMaster {
        let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
        let slave = gst::parse::launch(&format!(
            "rsipcslavepipeline.( rsipcpipelinesrc name=src fdin={n} fdout={n} ! fakesink )",
            n = ours.as_raw_fd()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        slave.set_auto_flush_bus(false);
        // Replies are read as they come, so that the src never waits to write one; those to
        // the state changes say when the src is ready for data. Its queries are not answered
        // with anything useful, but answered.
        let (replied, replies) = mpsc::channel();
        let server = serve(peer.try_clone().unwrap(), move |h| match h.frame_type {
            wire::FrameType::Reply => {
                let _ = replied.send(h.id);
                None
            }
            wire::FrameType::Event => {
                Some(wire::encode(h.id, &Frame::Reply(wire::Reply::Bool(true))))
            }
            wire::FrameType::Query => Some(wire::encode(
                h.id,
                &Frame::Reply(wire::Reply::Query {
                    result: false,
                    structure: None,
                }),
            )),
            _ => None,
        });
        let greeting = wire::encode(
            0,
            &Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                role: Role::Sender,
                features,
            }),
        );
        send_all(&peer, &greeting, &[]).unwrap();
        let mut master = FakeMaster {
            slave,
            peer,
            ours,
            server,
            next_id: 0,
        };
        for (from, to) in [
            (gst::State::Null, gst::State::Ready),
            (gst::State::Ready, gst::State::Paused),
        ] {
            let id = master.send(&Frame::StateChange {
                from,
                to,
                live: false,
            });
            while replies.recv_timeout(DEADLINE).expect("a reply") != id {}
        }
        for event in [
            gst::event::StreamStart::new("hostile"),
            gst::event::Caps::new(&gst::Caps::new_empty_simple("application/x-hostile")),
            gst::event::Segment::new(&gst::FormattedSegment::<gst::format::Bytes>::new()),
        ] {
            master.send(&Frame::Event {
                target: Target::Pad,
                event,
            });
        }
        master
    }

    /// Sends one frame with the next id, and returns that id.
    pub fn send(&mut self, frame: &Frame) -> u32 {
        self.next_id += 1;
        let _ = send_all(&self.peer, &wire::encode(self.next_id, frame), &[]);
        self.next_id
    }

    /// The next id a frame gets.
    pub fn next_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// The text of the first ERROR of the slave pipeline.
    pub fn error(&self) -> String {
        let msg = self
            .slave
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(DEADLINE.as_secs()),
                &[gst::MessageType::Error],
            )
            .expect("an ERROR from the src");
        let gst::MessageView::Error(e) = msg.view() else {
            unreachable!()
        };
        e.error().to_string()
    }

    /// The slave goes to NULL at once; then everything is closed.
    pub fn finish(self, writer: Option<JoinHandle<OwnedFd>>) {
        let t = Instant::now();
        self.slave.set_state(gst::State::Null).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "NULL took {:?}",
            t.elapsed()
        );
        self.slave.bus().unwrap().set_flushing(true);
        drop(self.slave);
        drop(self.ours);
        drop(self.peer);
        if let Some(w) = writer {
            drop(w.join());
        }
        self.server.join().unwrap();
    }
}
