// SPDX-License-Identifier: MPL-2.0
//! What the receiving end of a transport measures: arrivals, bytes, the latency of every
//! buffer (from its stamp), and the CPU time of its process.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use serde::{Deserialize, Serialize};

use crate::benchsrc::{monotonic_ns, read_stamp};

/// One side's report; the slave prints it as a JSON line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Arrivals {
    pub received: u64,
    pub bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub lat_p50_ns: u64,
    pub lat_p99_ns: u64,
    /// CPU time of the receiving process (user + system) when the last buffer arrived.
    pub cpu_ns: u64,
}

struct Counter {
    want: u64,
    arrivals: Arrivals,
    latencies: Vec<u64>,
    done: Option<mpsc::Sender<Arrivals>>,
}

/// Counts the buffers that reach `pad`; the receiver gets the report once `want` arrived.
pub fn watch(pad: &gst::Pad, want: u64) -> mpsc::Receiver<Arrivals> {
    let (tx, rx) = mpsc::channel();
    let counter = Arc::new(Mutex::new(Counter {
        want,
        arrivals: Arrivals::default(),
        latencies: Vec::with_capacity(want as usize),
        done: Some(tx),
    }));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let now = monotonic_ns();
        let Some(gst::PadProbeData::Buffer(b)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let mut c = counter.lock().unwrap();
        let a = &mut c.arrivals;
        if a.received == 0 {
            a.first_ns = now;
        }
        a.received += 1;
        a.bytes += b.size() as u64;
        a.last_ns = now;
        if let Some((made, _)) = read_stamp(b) {
            c.latencies.push(now.saturating_sub(made));
        }
        if c.arrivals.received == c.want
            && let Some(tx) = c.done.take()
        {
            let mut report = c.arrivals.clone();
            let (p50, p99) = percentiles(&mut c.latencies);
            report.lat_p50_ns = p50;
            report.lat_p99_ns = p99;
            report.cpu_ns = process_cpu_ns();
            let _ = tx.send(report);
        }
        gst::PadProbeReturn::Ok
    });
    rx
}

pub fn percentiles(v: &mut [u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// User and system CPU time of this process, all threads.
pub fn process_cpu_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

/// What a transport achieved, in the units the report shows.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Measures {
    pub buffers_per_s: f64,
    pub mb_per_s: f64,
    pub lat_p50_us: f64,
    pub lat_p99_us: f64,
    pub master_cpu_us_per_buffer: f64,
    pub slave_cpu_us_per_buffer: f64,
}

impl Measures {
    /// Nothing measured (the run failed).
    pub const NONE: Measures = Measures {
        buffers_per_s: f64::NAN,
        mb_per_s: f64::NAN,
        lat_p50_us: f64::NAN,
        lat_p99_us: f64::NAN,
        master_cpu_us_per_buffer: f64::NAN,
        slave_cpu_us_per_buffer: f64::NAN,
    };
}

/// The median of some numbers (of repetitions).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
