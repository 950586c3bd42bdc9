// SPDX-License-Identifier: MPL-2.0
//! An ordered worker thread. Frames that must not run on the reader thread but must keep their
//! order (state changes, messages, upstream events) are queued on one lane each.

use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

pub struct Lane {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
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
        }
    }

    /// Queues `job`; after [`Lane::stop`] it is dropped unrun.
    pub fn push(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &*self.tx.lock().unwrap() {
            let _ = tx.send(Box::new(job));
        }
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

/// Runs a job on a thread of its own, for independent requests (queries) that may block on
/// each other's answers and so must not wait in one line.
pub fn spawn(name: &str, job: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new().name(name.into()).spawn(job);
}
