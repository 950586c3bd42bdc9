// SPDX-License-Identifier: MPL-2.0
//! File descriptors from a hostile master: a directory, a socket, a memfd not sealed against
//! shrinking, a range past the end of a sealed memfd, and a flood of fds with no frame to
//! take them. Each time the src posts one ERROR, goes to NULL at once, and afterwards the
//! process holds no more fds than before. One test alone in its binary, so that nothing else
//! opens fds meanwhile.

mod common;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use common::fake_peer::{FakeMaster, memfd, send_all};
use common::*;
use gstrsipcpipeline::wire::{self, Frame, features};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A buffer frame whose one memory is `len` bytes of fd memory (memfd kind), to go with
/// whatever fd the test attaches.
fn fd_frame(id: u32, len: usize) -> Vec<u8> {
    use gst_allocators::prelude::*;
    let fd = memfd(
        len,
        rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW,
    );
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    let mem = unsafe {
        gst_allocators::FdAllocator::new().alloc_fd(raw, len, gst_allocators::FdMemoryFlags::NONE)
    }
    .unwrap();
    let mut b = gst::Buffer::new();
    b.get_mut().unwrap().append_memory(mem);
    let encoded = wire::encode_buffer(id, &b, true);
    assert_eq!(encoded.fds.len(), 1, "the frame takes one fd");
    encoded.to_vec()
}

/// Runs one hostile master that sends `frame` with `fds`, and returns the src's ERROR.
fn refused(frame: impl FnOnce(u32) -> Vec<u8>, fds: &[BorrowedFd]) -> String {
    let mut master = FakeMaster::start(features::FD_MEMORY);
    let id = master.next_id();
    let _ = send_all(&master.peer, &frame(id), fds);
    let text = master.error();
    master.finish(None);
    text
}

#[test]
fn fds_of_the_wrong_kind_size_or_number() {
    init();
    // The first session opens what GStreamer keeps for good.
    let dir = std::fs::File::open("/").unwrap();
    refused(|id| fd_frame(id, 4096), &[dir.as_fd()]);
    let before = open_fds();

    let socket = gstrsipcpipeline::launcher::socketpair().unwrap().0;
    let unsealed = memfd(4096, rustix::fs::SealFlags::empty());
    let short = memfd(
        1024,
        rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW,
    );
    for (what, fd) in [
        ("a directory", dir.as_fd()),
        ("a socket", socket.as_fd()),
        ("an unsealed memfd", unsealed.as_fd()),
        ("a range past the end", short.as_fd()),
    ] {
        let text = refused(|id| fd_frame(id, 4096), &[fd]);
        assert!(text.contains("memory"), "{what}: {text}");
    }
    // Many fds with no buffer frame to take them.
    let many: Vec<OwnedFd> = (0..wire::MAX_FDS * 6)
        .map(|_| memfd(4096, rustix::fs::SealFlags::SHRINK))
        .collect();
    let event = |id| {
        wire::encode(
            id,
            &Frame::Event {
                target: wire::Target::Pad,
                event: gst::event::CustomDownstream::new(gst::Structure::new_empty("x")),
            },
        )
    };
    let fds: Vec<BorrowedFd> = many.iter().map(|f| f.as_fd()).collect();
    let text = refused(event, &fds);
    assert!(
        text.contains("Lost the connection to the master pipeline"),
        "a flood of fds: {text}"
    );

    drop((dir, socket, unsealed, short, many));
    wait_until("no more fds than before", || open_fds() <= before);
}
