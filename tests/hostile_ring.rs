// SPDX-License-Identifier: MPL-2.0
//! A hostile master and the shared ring of small buffers: memory that is not what a ring must
//! be, positions it never wrote, entries that are not buffers, garbage where entries should
//! be. Each time the src posts one ERROR and goes to NULL at once.

mod common;

use std::os::fd::{AsFd, OwnedFd};

use common::fake_peer::{FakeMaster, memfd, send_all};
use common::*;
use gst::prelude::*;
use gstrsipcpipeline::wire::{self, Frame, features};

/// What the ring's layout is on the wire (see ARCHITECTURE.md): a page of control words,
/// the sender's head first, then the entries.
const CONTROL: usize = 4096;
const CAPACITY: u32 = 1 << 20;

fn sealed_ring() -> OwnedFd {
    memfd(
        CONTROL + CAPACITY as usize,
        rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW,
    )
}

/// Writes `bytes` at `offset` of the ring's memory.
fn poke(fd: &OwnedFd, offset: usize, bytes: &[u8]) {
    rustix::io::pwrite(fd, bytes, offset as u64).unwrap();
}

/// One entry at the start of the ring: its header and `frame`, and the head after it.
fn entry(fd: &OwnedFd, kind: u32, frame: &[u8]) {
    let mut e = Vec::new();
    e.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    e.extend_from_slice(&kind.to_le_bytes());
    e.extend_from_slice(&0u64.to_le_bytes());
    e.extend_from_slice(frame);
    let padded = e.len().div_ceil(16) * 16;
    poke(fd, CONTROL, &e);
    poke(fd, 0, &(padded as u64).to_le_bytes());
}

/// A master that sends its ring `fd` (with `capacity`), then does `then`: the src's ERROR.
fn refused(fd: &OwnedFd, capacity: u32, then: impl FnOnce(&mut FakeMaster)) -> String {
    let mut master = FakeMaster::start(features::FD_MEMORY | features::RING);
    let ring = wire::encode(
        master.next_id(),
        &Frame::Ring {
            fd: fd.try_clone().unwrap(),
            capacity,
        },
    );
    let _ = send_all(&master.peer, &ring, &[fd.as_fd()]);
    then(&mut master);
    let text = master.error();
    master.finish(None);
    text
}

#[test]
fn memory_that_is_no_ring() {
    init();
    let unsealed = memfd(CONTROL + CAPACITY as usize, rustix::fs::SealFlags::empty());
    let text = refused(&unsealed, CAPACITY, |_| {});
    assert!(text.contains("shared ring"), "unsealed: {text}");
    let short = memfd(CONTROL, rustix::fs::SealFlags::SHRINK);
    let text = refused(&short, CAPACITY, |_| {});
    assert!(text.contains("shared ring"), "too short: {text}");
    let text = refused(&sealed_ring(), 1000, |_| {});
    assert!(text.contains("capacity of 1000"), "odd capacity: {text}");
    let text = refused(&sealed_ring(), CAPACITY, |m| {
        let second = sealed_ring();
        let frame = wire::encode(
            m.next_id(),
            &Frame::Ring {
                fd: second.try_clone().unwrap(),
                capacity: CAPACITY,
            },
        );
        let _ = send_all(&m.peer, &frame, &[second.as_fd()]);
    });
    assert!(text.contains("a second ring"), "a second ring: {text}");
}

#[test]
fn positions_never_written() {
    init();
    let mut master = FakeMaster::start(features::FD_MEMORY | features::RING);
    master.send(&Frame::After(16));
    let text = master.error();
    master.finish(None);
    assert!(text.contains("without a ring"), "{text}");

    let text = refused(&sealed_ring(), CAPACITY, |m| {
        m.send(&Frame::After(4096));
    });
    assert!(text.contains("ring position of 4096"), "{text}");

    let ring = sealed_ring();
    poke(&ring, 0, &(CAPACITY as u64 * 3).to_le_bytes());
    let text = refused(&ring, CAPACITY, |_| {});
    assert!(text.contains("write position"), "{text}");
}

#[test]
fn entries_that_are_not_buffers() {
    init();
    let garbage = sealed_ring();
    entry(&garbage, 9, &[1, 2, 3, 4]);
    let text = refused(&garbage, CAPACITY, |_| {});
    assert!(text.contains("kind 9"), "{text}");

    let event = sealed_ring();
    entry(
        &event,
        1,
        &wire::encode(
            1,
            &Frame::Event {
                target: wire::Target::Pad,
                event: gst::event::Eos::new(),
            },
        ),
    );
    let text = refused(&event, CAPACITY, |_| {});
    assert!(text.contains("only buffers"), "{text}");

    let truncated = sealed_ring();
    let mut b = gst::Buffer::with_size(64).unwrap();
    b.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    let mut frame = wire::encode(1, &Frame::Buffer(b));
    frame.truncate(frame.len() - 10);
    entry(&truncated, 1, &frame);
    let text = refused(&truncated, CAPACITY, |_| {});
    assert!(text.contains("broke the stream"), "{text}");
}

/// A slave that takes the ring, then moves its read position past anything written: the
/// sink posts one ERROR that says so, and goes to NULL at once.
#[test]
fn a_slave_that_moves_the_ring_where_it_cannot_be() {
    use std::os::fd::AsRawFd;
    init();
    let (ours, peer) = gstrsipcpipeline::launcher::socketpair().unwrap();
    let greeting = wire::encode(
        0,
        &Frame::Hello(wire::Hello {
            version: wire::PROTOCOL_VERSION,
            role: wire::Role::Receiver,
            features: features::FD_MEMORY | features::RING,
        }),
    );
    send_all(&peer, &greeting, &[]).unwrap();
    let slave = std::thread::spawn(move || {
        let mut stream = FrameStream::new(peer);
        while let Some((header, fds)) = stream.next() {
            let reply = match header.frame_type {
                wire::FrameType::Ring => {
                    let fd = &fds[0];
                    let map = unsafe {
                        rustix::mm::mmap(
                            std::ptr::null_mut(),
                            CONTROL,
                            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                            rustix::mm::MapFlags::SHARED,
                            fd,
                            0,
                        )
                        .unwrap()
                    };
                    // The tail: far ahead of the head.
                    unsafe { *(map as *mut u64).add(8) = 1 << 40 };
                    None
                }
                wire::FrameType::StateChange => Some(Frame::Reply(wire::Reply::State(
                    gst::StateChangeReturn::Success,
                ))),
                wire::FrameType::Event => Some(Frame::Reply(wire::Reply::Bool(true))),
                wire::FrameType::Query => Some(Frame::Reply(wire::Reply::Query {
                    result: false,
                    structure: None,
                })),
                _ => None,
            };
            if let Some(r) = reply
                && send_all(&stream.fd, &wire::encode(header.id, &r), &[]).is_err()
            {
                break;
            }
        }
    });
    let pipeline = pipeline(&format!(
        "appsrc name=src format=time caps=application/x-test ! \
         rsipcpipelinesink name=sink fdin={n} fdout={n}",
        n = ours.as_raw_fd()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let src = pipeline.by_name("src").unwrap();
    // Buffers until the slave has mapped the ring and broken it.
    let bus = pipeline.bus().unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    let text = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no ERROR from the sink"
        );
        let _ = src.emit_by_name::<gst::FlowReturn>(
            "push-buffer",
            &[&gst::Buffer::from_slice(vec![7u8; 188])],
        );
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
            && msg.src().is_some_and(|s| s.name() == "sink")
        {
            break e.error().to_string();
        }
    };
    assert!(text.contains("read position moved"), "{text}");
    null_at_once(&pipeline, std::time::Duration::from_secs(2));
    drop(pipeline);
    drop(ours);
    slave.join().unwrap();
}

/// Whole frames read from a socket with the fds that came with them.
struct FrameStream {
    fd: OwnedFd,
    buf: Vec<u8>,
    fds: std::collections::VecDeque<OwnedFd>,
}

impl FrameStream {
    fn new(fd: OwnedFd) -> Self {
        FrameStream {
            fd,
            buf: Vec::new(),
            fds: Default::default(),
        }
    }

    fn next(&mut self) -> Option<(wire::Header, Vec<OwnedFd>)> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        loop {
            if self.buf.len() >= wire::HEADER_LEN {
                let header =
                    wire::Header::decode(self.buf[..wire::HEADER_LEN].try_into().unwrap()).ok()?;
                let len = wire::HEADER_LEN + header.len as usize;
                if self.buf.len() >= len {
                    self.buf.drain(..len);
                    let fds = self.fds.drain(..header.n_fds as usize).collect();
                    return Some((header, fds));
                }
            }
            let mut chunk = [0u8; 65536];
            let mut space =
                vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(16))];
            let mut ancillary = RecvAncillaryBuffer::new(&mut space);
            let n = match rustix::net::recvmsg(
                &self.fd,
                &mut [std::io::IoSliceMut::new(&mut chunk)],
                &mut ancillary,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(r) if r.bytes == 0 => return None,
                Ok(r) => r.bytes,
                Err(rustix::io::Errno::AGAIN) => {
                    let mut p = [rustix::event::PollFd::new(
                        &self.fd,
                        rustix::event::PollFlags::IN,
                    )];
                    let _ = rustix::event::poll(&mut p, None);
                    continue;
                }
                Err(_) => return None,
            };
            for m in ancillary.drain() {
                if let RecvAncillaryMessage::ScmRights(fds) = m {
                    self.fds.extend(fds);
                }
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
