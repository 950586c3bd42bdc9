// SPDX-License-Identifier: MPL-2.0
//! One measurement: N buffers of one size through one transport, master in this process,
//! receiver in a child process (this program again, in slave mode) or in this process for
//! the in-process references.

use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstrsipcpipeline::launcher;
use serde::Serialize;

use crate::benchsrc::monotonic_ns;
use crate::stats::{self, Arrivals, Measures};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// A queue between two elements of one pipeline.
    Queue,
    /// memcpy of the same size, the floor of any copying transport.
    Memcpy,
    /// Our elements, source memory is plain system memory.
    RsCopy,
    /// Our elements, the source allocates from what our sink offers.
    RsPool,
    /// The C ipcpipeline of gst-plugins-bad.
    CIpc,
    /// shmsink/shmsrc, source memory is plain system memory.
    Shm,
    /// shmsink/shmsrc, the source allocates from shmsink's shared memory.
    ShmPool,
}

impl Path {
    pub const ALL: [Path; 7] = [
        Path::Queue,
        Path::Memcpy,
        Path::RsCopy,
        Path::RsPool,
        Path::CIpc,
        Path::Shm,
        Path::ShmPool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Path::Queue => "queue",
            Path::Memcpy => "memcpy",
            Path::RsCopy => "rs-copy",
            Path::RsPool => "rs-pool",
            Path::CIpc => "c-ipcpipeline",
            Path::Shm => "shm",
            Path::ShmPool => "shm-pool",
        }
    }

    pub fn parse(s: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == s)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Size {
    pub name: &'static str,
    pub bytes: usize,
    pub caps: &'static str,
    /// Buffers per throughput run: enough for a second or so on the slowest transport.
    pub count: u64,
}

pub const SIZES: [Size; 5] = [
    Size {
        name: "188 B",
        bytes: 188,
        caps: "application/x-bench",
        count: 20000,
    },
    Size {
        name: "4 KiB",
        bytes: 4096,
        caps: "application/x-bench",
        count: 20000,
    },
    Size {
        name: "64 KiB",
        bytes: 65536,
        caps: "application/x-bench",
        count: 5000,
    },
    Size {
        name: "1080p I420",
        bytes: 1920 * 1080 * 3 / 2,
        caps: "video/x-raw,format=I420,width=1920,height=1080,framerate=30/1",
        count: 400,
    },
    Size {
        name: "4K I420",
        bytes: 3840 * 2160 * 3 / 2,
        caps: "video/x-raw,format=I420,width=3840,height=2160,framerate=30/1",
        count: 120,
    },
];

/// What one run measured. `None` fields: the transport did not get there (stalled).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub path: Path,
    pub size: usize,
    pub buffers: u64,
    pub seconds: f64,
    #[serde(flatten)]
    pub m: Measures,
    pub error: Option<String>,
}

/// A transport that has not delivered by then is reported as stalled (shmsink does, with small
/// buffers, on GStreamer 1.22).
const RUN_DEADLINE: Duration = Duration::from_secs(15);

/// Throughput run when `interval` is 0, latency run (paced buffers) otherwise.
pub fn run(path: Path, size: &Size, count: u64, interval_ns: u64) -> Outcome {
    let result = match path {
        Path::Memcpy => Ok(memcpy(size.bytes, count)),
        Path::Queue => in_process(size, count, interval_ns),
        _ => across(path, size, count, interval_ns),
    };
    match result {
        Ok((master_cpu, a)) => {
            let seconds = (a.last_ns.saturating_sub(a.first_ns)) as f64 / 1e9;
            let per_s = if seconds > 0.0 {
                (a.received.saturating_sub(1)) as f64 / seconds
            } else {
                f64::NAN
            };
            Outcome {
                path,
                size: size.bytes,
                buffers: a.received,
                seconds,
                m: Measures {
                    buffers_per_s: per_s,
                    mb_per_s: per_s * size.bytes as f64 / 1e6,
                    lat_p50_us: a.lat_p50_ns as f64 / 1e3,
                    lat_p99_us: a.lat_p99_ns as f64 / 1e3,
                    master_cpu_us_per_buffer: master_cpu as f64 / 1e3 / count as f64,
                    slave_cpu_us_per_buffer: a.cpu_ns as f64 / 1e3 / count as f64,
                },
                error: None,
            }
        }
        Err(e) => Outcome {
            path,
            size: size.bytes,
            buffers: 0,
            seconds: f64::NAN,
            m: Measures::NONE,
            error: Some(e),
        },
    }
}

fn source(path: Path, size: &Size, count: u64, interval_ns: u64) -> String {
    let downstream = matches!(path, Path::RsPool | Path::ShmPool | Path::Queue);
    format!(
        "benchsrc num-buffers={count} blocksize={} caps=\"{}\" downstream-memory={downstream} \
         interval={interval_ns}",
        size.bytes, size.caps
    )
}

fn memcpy(bytes: usize, count: u64) -> (u64, Arrivals) {
    let src = vec![7u8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut lat = Vec::with_capacity(count as usize);
    let cpu0 = stats::process_cpu_ns();
    let first = monotonic_ns();
    for _ in 0..count {
        let t = monotonic_ns();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        lat.push(monotonic_ns() - t);
    }
    let last = monotonic_ns();
    let cpu = stats::process_cpu_ns() - cpu0;
    let (p50, p99) = stats::percentiles(&mut lat);
    (
        0,
        Arrivals {
            received: count,
            bytes: count * bytes as u64,
            first_ns: first,
            last_ns: last,
            lat_p50_ns: p50,
            lat_p99_ns: p99,
            cpu_ns: cpu,
        },
    )
}

fn in_process(size: &Size, count: u64, interval_ns: u64) -> Result<(u64, Arrivals), String> {
    let pipeline = launch(&format!(
        "{} ! queue ! fakesink name=out sync=false",
        source(Path::Queue, size, count, interval_ns)
    ))?;
    let out = pipeline.by_name("out").unwrap().static_pad("sink").unwrap();
    let done = stats::watch(&out, count);
    let cpu0 = stats::process_cpu_ns();
    let result = play_until(&pipeline, &done);
    let cpu = stats::process_cpu_ns() - cpu0;
    let _ = pipeline.set_state(gst::State::Null);
    result.map(|mut a| {
        // One process does both ends: its CPU time is the transport's.
        a.cpu_ns = 0;
        (cpu, a)
    })
}

fn launch(description: &str) -> Result<gst::Pipeline, String> {
    gst::parse::launch(description)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())
}

/// Plays until the receiver reported `count` buffers; errors and deadlines end it early.
fn play_until(
    pipeline: &gst::Pipeline,
    done: &mpsc::Receiver<Arrivals>,
) -> Result<Arrivals, String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "could not start".to_string())?;
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        if let Ok(a) = done.try_recv() {
            return Ok(a);
        }
        if Instant::now() >= deadline {
            return Err("stalled".into());
        }
        if let Some(m) =
            bus.timed_pop_filtered(gst::ClockTime::from_mseconds(5), &[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = m.view()
        {
            return Err(e.error().to_string());
        }
    }
}

/// A transport between two processes: the receiver is this program in slave mode.
fn across(
    path: Path,
    size: &Size,
    count: u64,
    interval_ns: u64,
) -> Result<(u64, Arrivals), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let socket_path = dir.path().join("shm");
    let (ours, theirs) = launcher::socketpair().map_err(|e| e.to_string())?;
    let fd = ours.as_raw_fd();
    let (sink, slave_kind) = match path {
        Path::RsCopy | Path::RsPool => (
            format!("rsipcpipelinesink name=sink fdin={fd} fdout={fd}"),
            "rs",
        ),
        Path::CIpc => (
            format!("ipcpipelinesink name=sink fdin={fd} fdout={fd}"),
            "c",
        ),
        _ => (
            format!(
                "shmsink name=sink socket-path={} wait-for-connection=true sync=false shm-size={}",
                socket_path.display(),
                (size.bytes * 16).max(4 << 20)
            ),
            "shm",
        ),
    };
    let pipeline = launch(&format!(
        "{} ! {sink}",
        source(path, size, count, interval_ns)
    ))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--slave", slave_kind, "--count", &count.to_string()])
        .args(["--socket-path", &socket_path.display().to_string()])
        .stdout(Stdio::piped());
    // shmsink makes its socket when it starts: the receiver connects after that.
    if slave_kind == "shm" {
        pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| "shmsink could not start".to_string())?;
    }
    let mut child = launcher::spawn_with_fds(&mut cmd, &[&theirs]).map_err(|e| e.to_string())?;
    drop(theirs);
    // The C ipcpipeline can spin for ever inside set_state (a full socket, a lost reply):
    // killing the receiver makes its writes fail, which ends any call of ours.
    let (finished, watchdog) = mpsc::channel::<()>();
    let pid = child.id() as libc::pid_t;
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(RUN_DEADLINE * 2) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(serde_json::from_str::<Arrivals>(&line).map_err(|e| e.to_string()));
    });
    let cpu0 = stats::process_cpu_ns();
    let result = pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "could not start".to_string())
        .and_then(|_| wait_report(&pipeline, &rx));
    let cpu = stats::process_cpu_ns() - cpu0;
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(sink) = pipeline.by_name("sink")
        && sink.has_property("fdin")
    {
        sink.emit_by_name::<()>("disconnect", &[]);
    }
    drop(pipeline);
    drop(ours);
    let _ = finished.send(());
    let _ = child.kill();
    let _ = child.wait();
    result.map(|a| (cpu, a))
}

fn wait_report(
    pipeline: &gst::Pipeline,
    rx: &mpsc::Receiver<Result<Arrivals, String>>,
) -> Result<Arrivals, String> {
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(r) => return r,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("receiver died".into()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= deadline {
            return Err("stalled".into());
        }
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = m.view()
        {
            return Err(e.error().to_string());
        }
    }
}

/// Slave mode: the receiving pipeline of one transport, on fd 3 or the shm socket. Prints
/// its report once `count` buffers arrived and lives until the master goes away.
pub fn slave(kind: &str, count: u64, socket_path: &str) -> ! {
    let description = match kind {
        "rs" => {
            "rsipcslavepipeline.( rsipcpipelinesrc fdin=3 fdout=3 ! fakesink name=out sync=false )"
                .to_string()
        }
        "c" => "ipcslavepipeline.( ipcpipelinesrc fdin=3 fdout=3 ! fakesink name=out sync=false )"
            .to_string(),
        _ => format!("shmsrc socket-path={socket_path} ! fakesink name=out sync=false"),
    };
    let pipeline = launch(&description).unwrap_or_else(|e| {
        eprintln!("ipc-bench slave: {e}");
        std::process::exit(2)
    });
    let out = pipeline.by_name("out").unwrap().static_pad("sink").unwrap();
    let done = stats::watch(&out, count);
    if kind == "shm" {
        // Nobody drives a shmsrc pipeline but itself.
        let _ = pipeline.set_state(gst::State::Playing);
    }
    if let Ok(report) = done.recv() {
        println!("{}", serde_json::to_string(&report).unwrap());
    }
    // The master tears down and kills us; until then, keep the pipeline up.
    loop {
        std::thread::park();
    }
}
