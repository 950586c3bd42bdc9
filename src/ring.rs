// SPDX-License-Identifier: MPL-2.0
//! A ring of small buffer frames in memory both processes map: the sender copies a frame in
//! and moves on, the receiver's streaming thread copies it out and pushes it. No system call
//! per buffer while both are busy, no reader thread between the socket and the pad. Either
//! side sleeps on a futex in the shared page only when there is nothing to do, and the other
//! wakes it only when it says it sleeps.
//!
//! The other process can write anything anywhere in the mapping at any time. Each side keeps
//! its own position to itself, checks every position and length it reads from the other
//! (a bad one is a [`RingError`]), and copies a frame out before decoding it. The memfd is
//! sealed against shrinking, so the mapping can never fault.
//!
//! Layout: a page of control words, then `capacity` bytes of entries. An entry is
//! `u32 len | u32 kind | u64 items | len bytes`, padded to 16; kind 1 is a wire frame, kind 2
//! says the rest of the ring up to its end is unused (entries never wrap). Positions count
//! bytes since the ring was made.
//!
//! Order with what goes on the socket: an entry's `items` is how many frames for the stream
//! the sender had sent on the socket since it made the ring (the receiver pushes those
//! first), and an AFTER frame before a frame on the socket says how far the ring was written
//! when it was sent (the receiver finishes those entries first).

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use rustix::mm::{MapFlags, ProtFlags};
use rustix::thread::futex;

/// What a sender makes: room for a window of 32 frames of 16 KiB with room to spare.
pub const CAPACITY: u32 = 1 << 20;
pub const MIN_CAPACITY: u32 = 64 << 10;
pub const MAX_CAPACITY: u32 = 16 << 20;

/// Bytes of control words before the entries.
pub(crate) const CONTROL: usize = 4096;
// Written by the sender.
const HEAD: usize = 0;
const DOORBELL: usize = 8;
const RECEIVER_SLEEPS: usize = 12;
const WAKE_AT: usize = 16;
// Written by the receiver (each on its own cache line).
const TAIL: usize = 64;
const SPACE_BELL: usize = 72;
const SENDER_SLEEPS: usize = 76;
const REFUSING: usize = 80;

const ENTRY_HEADER: u64 = 16;
/// Every position in the ring is a multiple of this.
pub const ALIGN: u64 = ENTRY_HEADER;
const KIND_FRAME: u32 = 1;
const KIND_WRAP: u32 = 2;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RingError {
    #[error("the shared ring could not be set up: {0}")]
    Setup(String),
    #[error("the peer broke the shared ring: {0}")]
    Broken(String),
}

fn broken(what: String) -> RingError {
    RingError::Broken(what)
}

/// The shared mapping.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// The mapping is only ever touched through atomics and raw copies.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> rustix::io::Result<Mapping> {
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap returned NULL"),
            len,
        })
    }

    fn u64(&self, off: usize) -> &AtomicU64 {
        unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU64) }
    }

    fn u32(&self, off: usize) -> &AtomicU32 {
        unsafe { &*(self.ptr.as_ptr().add(off) as *const AtomicU32) }
    }

    fn data(&self) -> *mut u8 {
        unsafe { self.ptr.as_ptr().add(CONTROL) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Entries start at multiples of their header's size, so a wrap entry always fits at the end.
fn padded(len: u64) -> u64 {
    ENTRY_HEADER + len.div_ceil(ENTRY_HEADER) * ENTRY_HEADER
}

fn bump_and_wake(word: &AtomicU32) {
    word.fetch_add(1, SeqCst);
    // Not FUTEX_PRIVATE: the sleeper is in the other process.
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

fn sleep_on(word: &AtomicU32, seq: u32, timeout: Duration) {
    let t = rustix::time::Timespec::try_from(timeout).ok();
    let _ = futex::wait(word, futex::Flags::empty(), seq, t.as_ref());
}

/// The sending end. Writes come from one thread at a time (the channel's write lock).
pub struct Sender {
    map: Mapping,
    fd: OwnedFd,
    cap: u64,
    state: Mutex<SenderState>,
}

struct SenderState {
    head: u64,
    /// The furthest tail the receiver has shown: it never goes back.
    tail: u64,
    /// Where each entry not yet finished ends, oldest first.
    ends: VecDeque<u64>,
}

impl Sender {
    pub fn create() -> Result<Sender, RingError> {
        let fd = crate::memory::sealed_memfd("rsipcpipeline-ring", CONTROL + CAPACITY as usize)
            .map_err(|e| RingError::Setup(e.to_string()))?;
        let map = Mapping::new(fd.as_fd(), CONTROL + CAPACITY as usize)
            .map_err(|e| RingError::Setup(e.to_string()))?;
        Ok(Sender {
            map,
            fd,
            cap: CAPACITY as u64,
            state: Mutex::new(SenderState {
                head: 0,
                tail: 0,
                ends: VecDeque::new(),
            }),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn capacity(&self) -> u32 {
        self.cap as u32
    }

    /// Whether a frame of `len` bytes goes here: a quarter of the ring at most, so that a
    /// window of them always fits a few.
    pub fn fits(&self, len: usize) -> bool {
        padded(len as u64) <= self.cap / 4
    }

    /// Reads how far the receiver is and forgets the entries it finished.
    fn refresh(&self, s: &mut SenderState) -> Result<(), RingError> {
        let tail = self.map.u64(TAIL).load(SeqCst);
        if tail < s.tail || tail > s.head || !tail.is_multiple_of(ENTRY_HEADER) {
            return Err(broken(format!(
                "its read position moved to {tail}, outside {}..={}",
                s.tail, s.head
            )));
        }
        s.tail = tail;
        while s.ends.front().is_some_and(|e| *e <= tail) {
            s.ends.pop_front();
        }
        Ok(())
    }

    /// Bytes an entry of `len` takes at the head, with the wrap entry it may need first.
    fn needed(&self, head: u64, len: usize) -> u64 {
        let room_to_end = self.cap - head % self.cap;
        let need = padded(len as u64);
        if need > room_to_end {
            room_to_end + need
        } else {
            need
        }
    }

    /// Whether a frame of `len` bytes can go in now with fewer than `window` entries
    /// unfinished besides `others` (buffers in flight elsewhere). If not, the position the
    /// receiver's tail must reach: the sender sleeps until then, or until half the window
    /// is free, so that it is not woken for every entry.
    pub fn room(&self, len: usize, window: usize, others: usize) -> Result<Option<u64>, RingError> {
        let mut s = self.state.lock().unwrap();
        self.refresh(&mut s)?;
        let space_at = (s.head + self.needed(s.head, len)).saturating_sub(self.cap);
        let busy = s.ends.len() + others;
        let window = window.max(1);
        if busy < window && space_at <= s.tail {
            return Ok(None);
        }
        // Entries to finish before enough are free: at least one, half the window if that
        // many are in flight here.
        let keep = (window / 2).min(window - 1);
        let window_at = match s.ends.len().checked_sub(keep + 1) {
            Some(i) => s.ends[i],
            None => s.tail,
        };
        Ok(Some(space_at.max(window_at).max(s.tail + 1)))
    }

    /// Appends one frame (its pieces in order), which comes after the first `items` frames
    /// for the stream sent on the socket, and wakes the receiver if it sleeps. The caller
    /// made sure there is [`Self::room`].
    pub fn write(&self, pieces: &[std::io::IoSlice<'_>], items: u64) {
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let mut s = self.state.lock().unwrap();
        let mut head = s.head;
        let room_to_end = self.cap - head % self.cap;
        if padded(len as u64) > room_to_end {
            self.put_header(head, 0, KIND_WRAP, 0);
            head += room_to_end;
        }
        self.put_header(head, len as u32, KIND_FRAME, items);
        let mut at = (head % self.cap) as usize + ENTRY_HEADER as usize;
        for p in pieces {
            unsafe {
                std::ptr::copy_nonoverlapping(p.as_ptr(), self.map.data().add(at), p.len());
            }
            at += p.len();
        }
        head += padded(len as u64);
        s.head = head;
        s.ends.push_back(head);
        drop(s);
        self.map.u64(HEAD).store(head, SeqCst);
        if self.map.u32(RECEIVER_SLEEPS).load(SeqCst) != 0 {
            self.map.u32(RECEIVER_SLEEPS).store(0, SeqCst);
            bump_and_wake(self.map.u32(DOORBELL));
        }
    }

    fn put_header(&self, pos: u64, len: u32, kind: u32, items: u64) {
        let mut h = [0u8; ENTRY_HEADER as usize];
        h[..4].copy_from_slice(&len.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&items.to_le_bytes());
        unsafe {
            std::ptr::copy_nonoverlapping(
                h.as_ptr(),
                self.map.data().add((pos % self.cap) as usize),
                h.len(),
            );
        }
    }

    /// Where the next entry goes: what the receiver must have finished before a frame sent
    /// on the socket now.
    pub fn head(&self) -> u64 {
        self.state.lock().unwrap().head
    }

    /// The receiver is flushing or stopped: what would go here is dropped, as its answer
    /// would be FLUSHING.
    pub fn refusing(&self) -> bool {
        self.map.u32(REFUSING).load(SeqCst) != 0
    }

    /// The value to sleep on: read before checking whether to sleep.
    pub fn bell(&self) -> u32 {
        self.map.u32(SPACE_BELL).load(SeqCst)
    }

    /// Sleeps until the receiver's tail reaches `wake_at`, [`Self::wake`] is called, or
    /// `timeout` passes.
    pub fn sleep(&self, bell: u32, wake_at: u64, timeout: Duration) {
        self.map.u64(WAKE_AT).store(wake_at, SeqCst);
        self.map.u32(SENDER_SLEEPS).store(1, SeqCst);
        // The receiver may have got there before it could see that we sleep.
        if self.map.u64(TAIL).load(SeqCst) >= wake_at {
            self.map.u32(SENDER_SLEEPS).store(0, SeqCst);
            return;
        }
        sleep_on(self.map.u32(SPACE_BELL), bell, timeout);
    }

    /// Wakes a sleeping sender of this process (a flush, a closed link, an answer).
    pub fn wake(&self) {
        bump_and_wake(self.map.u32(SPACE_BELL));
    }
}

/// The receiving end: read by one streaming thread, flushed by others.
pub struct Receiver {
    map: Mapping,
    cap: u64,
    /// Where the next entry starts: ours, whatever the shared word says.
    tail: AtomicU64,
}

/// One frame copied out of the ring, where its entry ends, and how many frames for the
/// stream sent on the socket come before it.
pub struct Entry {
    pub bytes: Vec<u8>,
    pub end: u64,
    pub items: u64,
}

impl Receiver {
    /// Maps the ring a sender made: a memfd sealed against shrinking, of exactly the size it
    /// says, so that no access to it can fault.
    pub fn map(fd: OwnedFd, capacity: u32) -> Result<Receiver, RingError> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) || !capacity.is_power_of_two() {
            return Err(broken(format!("a capacity of {capacity} bytes")));
        }
        let len = CONTROL + capacity as usize;
        crate::memory::check_memfd(fd.as_fd(), len as u64)
            .map_err(|e| broken(format!("its memory: {e}")))?;
        let map = Mapping::new(fd.as_fd(), len).map_err(|e| RingError::Setup(e.to_string()))?;
        // The sender may have written already: positions start at 0 on both sides.
        Ok(Receiver {
            map,
            cap: capacity as u64,
            tail: AtomicU64::new(0),
        })
    }

    /// Where the sender's head is, checked against our tail.
    pub fn head(&self) -> Result<u64, RingError> {
        let tail = self.tail.load(SeqCst);
        let head = self.map.u64(HEAD).load(SeqCst);
        if head < tail || head - tail > self.cap || !head.is_multiple_of(ENTRY_HEADER) {
            return Err(broken(format!(
                "its write position moved to {head}, our read position is {tail}"
            )));
        }
        Ok(head)
    }

    pub fn tail(&self) -> u64 {
        self.tail.load(SeqCst)
    }

    /// Copies out the next frame, if there is one; the entry stays until [`Self::finish`].
    pub fn next(&self) -> Result<Option<Entry>, RingError> {
        let head = self.head()?;
        let mut tail = self.tail.load(SeqCst);
        loop {
            if head == tail {
                return Ok(None);
            }
            let at = (tail % self.cap) as usize;
            let mut h = [0u8; ENTRY_HEADER as usize];
            unsafe {
                std::ptr::copy_nonoverlapping(self.map.data().add(at), h.as_mut_ptr(), h.len())
            };
            let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as u64;
            let kind = u32::from_le_bytes(h[4..8].try_into().unwrap());
            let items = u64::from_le_bytes(h[8..].try_into().unwrap());
            let room_to_end = self.cap - at as u64;
            match kind {
                KIND_WRAP if room_to_end <= head - tail => {
                    tail += room_to_end;
                    continue;
                }
                KIND_FRAME if padded(len) <= room_to_end && padded(len) <= head - tail => {
                    let mut bytes = vec![0u8; len as usize];
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            self.map.data().add(at + ENTRY_HEADER as usize),
                            bytes.as_mut_ptr(),
                            len as usize,
                        )
                    };
                    return Ok(Some(Entry {
                        bytes,
                        end: tail + padded(len),
                        items,
                    }));
                }
                _ => {
                    return Err(broken(format!(
                        "an entry of kind {kind} and {len} bytes at {tail}, written up to {head}"
                    )));
                }
            }
        }
    }

    /// The entry ending at `end` is done with (pushed, or dropped): its room goes back to the
    /// sender, woken if it waits for it. An entry discarded meanwhile stays discarded.
    pub fn finish(&self, end: u64) {
        let tail = self.tail.fetch_max(end, SeqCst).max(end);
        self.map.u64(TAIL).store(tail, SeqCst);
        if self.map.u32(SENDER_SLEEPS).load(SeqCst) != 0
            && tail >= self.map.u64(WAKE_AT).load(SeqCst)
        {
            self.map.u32(SENDER_SLEEPS).store(0, SeqCst);
            bump_and_wake(self.map.u32(SPACE_BELL));
        }
    }

    /// Drops everything written so far (a flush).
    pub fn discard(&self) -> Result<(), RingError> {
        let head = self.head()?;
        self.finish(head);
        Ok(())
    }

    /// While refusing, the sender drops what it would write here.
    pub fn set_refusing(&self, refusing: bool) {
        self.map.u32(REFUSING).store(refusing as u32, SeqCst);
        if refusing {
            bump_and_wake(self.map.u32(SPACE_BELL));
        }
    }

    pub fn bell(&self) -> u32 {
        self.map.u32(DOORBELL).load(SeqCst)
    }

    /// Sleeps until the sender writes past `seen` (its head when the caller found nothing
    /// to do), [`Self::wake`] is called, or `timeout` passes. `bell` was read before that.
    pub fn sleep(&self, bell: u32, seen: u64, timeout: Duration) {
        self.map.u32(RECEIVER_SLEEPS).store(1, SeqCst);
        // A frame written before the sender could see that we sleep.
        if self.written() != seen {
            self.map.u32(RECEIVER_SLEEPS).store(0, SeqCst);
            return;
        }
        sleep_on(self.map.u32(DOORBELL), bell, timeout);
        self.map.u32(RECEIVER_SLEEPS).store(0, SeqCst);
    }

    /// How far the sender wrote, unchecked: only to notice that it wrote more.
    pub fn written(&self) -> u64 {
        self.map.u64(HEAD).load(SeqCst)
    }

    /// Wakes our own streaming thread (something for it came another way).
    pub fn wake(&self) {
        bump_and_wake(self.map.u32(DOORBELL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    fn pair() -> (Sender, Receiver, Mapping) {
        let tx = Sender::create().unwrap();
        let rx = Receiver::map(tx.fd().try_clone_to_owned().unwrap(), tx.capacity()).unwrap();
        // What a hostile peer sees and writes.
        let peer = Mapping::new(tx.fd(), CONTROL + CAPACITY as usize).unwrap();
        (tx, rx, peer)
    }

    #[test]
    fn frames_come_out_in_order_across_the_end_of_the_ring() {
        let (tx, rx, _) = pair();
        let mut sent = 0u64;
        for round in 0..2000u64 {
            let len = 1 + (round as usize * 7919) % 9000;
            let frame: Vec<u8> = (0..len).map(|i| (i as u64 ^ round) as u8).collect();
            assert_eq!(tx.room(len, 1024, 0).unwrap(), None);
            tx.write(
                &[
                    IoSlice::new(&frame[..len / 2]),
                    IoSlice::new(&frame[len / 2..]),
                ],
                round,
            );
            sent += 1;
            let e = rx.next().unwrap().unwrap();
            assert_eq!(e.bytes, frame);
            assert_eq!(e.items, round);
            rx.finish(e.end);
            assert!(rx.next().unwrap().is_none());
        }
        assert_eq!(sent, 2000);
        assert!(
            tx.head() > 4 * CAPACITY as u64,
            "the test wrapped around a few times"
        );
    }

    #[test]
    fn the_window_and_the_room_hold_the_sender_back() {
        let (tx, rx, _) = pair();
        tx.write(&[IoSlice::new(b"one")], 0);
        tx.write(&[IoSlice::new(b"two")], 0);
        // Two unfinished entries: a window of 2 is full, and the sender wants to be woken
        // only when half of it is free.
        let at = tx.room(3, 2, 0).unwrap().expect("full");
        let first = rx.next().unwrap().unwrap();
        assert!(at >= first.end);
        rx.finish(first.end);
        assert_eq!(tx.room(3, 2, 0).unwrap(), None);
        // Buffers in flight on the socket count in the same window.
        assert!(tx.room(3, 2, 1).unwrap().is_some());
        // A frame larger than the room left waits for it.
        let big = vec![0u8; tx.capacity() as usize / 4 - 64];
        let mut written = 0;
        while tx.room(big.len(), 1024, 0).unwrap().is_none() {
            tx.write(&[IoSlice::new(&big)], 0);
            written += 1;
        }
        assert!((3..=4).contains(&written), "{written}");
    }

    #[test]
    fn a_flush_drops_what_was_written() {
        let (tx, rx, _) = pair();
        for _ in 0..10 {
            tx.write(&[IoSlice::new(b"stale")], 0);
        }
        rx.discard().unwrap();
        assert!(rx.next().unwrap().is_none());
        tx.write(&[IoSlice::new(b"fresh")], 0);
        let e = rx.next().unwrap().unwrap();
        assert_eq!(e.bytes, b"fresh");
        // A push that began before the flush does not move the tail back.
        rx.finish(ENTRY_HEADER * 2);
        assert_eq!(rx.next().unwrap().unwrap().bytes, b"fresh");
    }

    #[test]
    fn positions_and_entries_the_sender_breaks_are_errors() {
        let (tx, rx, peer) = pair();
        tx.write(&[IoSlice::new(b"ok")], 0);
        // A head behind our tail, or more than a ring ahead of it, or not aligned.
        for head in [CAPACITY as u64 + 64, 8] {
            peer.u64(HEAD).store(head, SeqCst);
            assert!(matches!(rx.next(), Err(RingError::Broken(_))), "{head}");
        }
        let e = {
            peer.u64(HEAD).store(tx.head(), SeqCst);
            rx.next().unwrap().unwrap()
        };
        rx.finish(e.end);
        peer.u64(HEAD).store(0, SeqCst);
        assert!(rx.next().is_err());
        // Entries: unknown kind, longer than what was written, running past the end.
        let at = e.end as usize;
        for (len, kind) in [(4u32, 9u32), (4096, KIND_FRAME), (CAPACITY, KIND_FRAME)] {
            let mut h = [0u8; 16];
            h[..4].copy_from_slice(&len.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            unsafe { std::ptr::copy_nonoverlapping(h.as_ptr(), peer.data().add(at), 16) };
            peer.u64(HEAD).store(e.end + 64, SeqCst);
            assert!(rx.next().is_err(), "{len} {kind}");
        }
    }

    #[test]
    fn what_the_receiver_breaks_is_an_error_for_the_sender() {
        let (tx, _rx, peer) = pair();
        tx.write(&[IoSlice::new(b"x")], 0);
        // A tail ahead of the head, then behind where it was.
        peer.u64(TAIL).store(tx.head() + 16, SeqCst);
        assert!(tx.room(1, 8, 0).is_err());
        peer.u64(TAIL).store(tx.head(), SeqCst);
        assert!(tx.room(1, 8, 0).unwrap().is_none());
        peer.u64(TAIL).store(0, SeqCst);
        assert!(tx.room(1, 8, 0).is_err());
    }

    #[test]
    fn the_receiver_checks_the_memory_it_maps() {
        let unsealed = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&unsealed, CONTROL as u64 + CAPACITY as u64).unwrap();
        assert!(Receiver::map(unsealed, CAPACITY).is_err());
        let small = crate::memory::sealed_memfd("t", CONTROL + 4096).unwrap();
        assert!(Receiver::map(small, CAPACITY).is_err());
        let tx = Sender::create().unwrap();
        for capacity in [0, 1000, MAX_CAPACITY * 2] {
            assert!(Receiver::map(tx.fd().try_clone_to_owned().unwrap(), capacity).is_err());
        }
    }

    #[test]
    fn a_sleeping_receiver_is_woken_by_a_write() {
        let (tx, rx, _) = pair();
        let rx = std::sync::Arc::new(rx);
        let bell = rx.bell();
        let seen = rx.written();
        let t = std::thread::spawn({
            let rx = rx.clone();
            move || {
                let start = std::time::Instant::now();
                rx.sleep(bell, seen, Duration::from_secs(30));
                start.elapsed()
            }
        });
        tx.write(&[IoSlice::new(b"wake up")], 0);
        assert!(t.join().unwrap() < Duration::from_secs(20));
        assert_eq!(rx.next().unwrap().unwrap().bytes, b"wake up");
    }
}
