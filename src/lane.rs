// SPDX-License-Identifier: MPL-2.0
//! An ordered worker thread. Frames that must not run on the reader thread but must keep their
//! order (state changes, messages, upstream events) are queued on one lane each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs a peer may have queued on one lane: a peer that sends state changes, messages or
/// events faster than they can be handled is cut off here instead of growing the queue.
pub const MAX_QUEUED_JOBS: usize = 4096;
/// Queries of a peer answered at once, each on a thread of its own.
pub const MAX_RUNNING_QUERIES: usize = 64;

/// The peer went over one of the limits above.
#[derive(Debug)]
pub struct Full(pub String);

pub struct Lane {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    queued: Arc<AtomicUsize>,
}

impl Lane {
    pub fn new(name: &str) -> Lane {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .ok();
        Lane {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues `job`; after [`Lane::stop`] it is dropped unrun.
    pub fn push(&self, job: impl FnOnce() + Send + 'static) {
        let queued = self.queued.clone();
        queued.fetch_add(1, Ordering::SeqCst);
        let job = move || {
            job();
            queued.fetch_sub(1, Ordering::SeqCst);
        };
        if let Some(tx) = &*self.tx.lock().unwrap() {
            let _ = tx.send(Box::new(job));
        }
    }

    /// [`Lane::push`] for work the peer asked for, refused beyond [`MAX_QUEUED_JOBS`].
    pub fn push_for_peer(&self, job: impl FnOnce() + Send + 'static) -> Result<(), Full> {
        let queued = self.queued.load(Ordering::SeqCst);
        if queued >= MAX_QUEUED_JOBS {
            return Err(Full(format!(
                "{queued} of its requests are waiting, the limit is {MAX_QUEUED_JOBS}"
            )));
        }
        self.push(job);
        Ok(())
    }

    /// Waits, at most `within`, until every job queued before this call has run. False when
    /// it gave up (the lane is blocked, or stopped).
    pub fn drain(&self, within: std::time::Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        self.push(move || {
            let _ = tx.send(());
        });
        rx.recv_timeout(within).is_ok()
    }

    /// Lets the queued jobs finish and ends the thread; waits for it unless called from it.
    pub fn stop(&self) {
        self.tx.lock().unwrap().take();
        if let Some(t) = self.thread.lock().unwrap().take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs each job on a thread of its own, for independent requests (queries) that may block
/// on each other's answers and so must not wait in one line; at most
/// [`MAX_RUNNING_QUERIES`] at once.
#[derive(Default)]
pub struct Spawner(Arc<AtomicUsize>);

impl Spawner {
    pub fn spawn(&self, name: &str, job: impl FnOnce() + Send + 'static) -> Result<(), Full> {
        let running = self.0.fetch_add(1, Ordering::SeqCst);
        if running >= MAX_RUNNING_QUERIES {
            self.0.fetch_sub(1, Ordering::SeqCst);
            return Err(Full(format!(
                "{running} of its queries are being answered, the limit is \
                 {MAX_RUNNING_QUERIES}"
            )));
        }
        let count = self.0.clone();
        let started = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                job();
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if started.is_err() {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}
