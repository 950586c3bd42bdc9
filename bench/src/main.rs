// SPDX-License-Identifier: MPL-2.0
//! ipc-bench: moves the same stamped buffers through our elements, the C ipcpipeline,
//! shmsink/shmsrc, an in-process queue and a plain memcpy, interleaved and repeated, and
//! reports throughput, latency and CPU time per buffer.
//!
//! ```text
//! ipc-bench [--reps N] [--quick] [--paths a,b,...] [--sizes 0,1,...] [--out DIR]
//! ```
//!
//! Writes `DIR/bench.json`, `DIR/bench.md` (the table) and `DIR/bench.png` (the plot);
//! DIR defaults to `target/bench`. `--quick` runs a tenth of the buffers once, to try it.

mod benchsrc;
mod report;
mod run;
mod stats;

use gst::glib;
use gst::prelude::*;
use run::{Path, SIZES};

glib::wrapper! {
    pub struct BenchSrcElement(ObjectSubclass<benchsrc::BenchSrc>)
        @extends gst_base::BaseSrc, gst::Element, gst::Object;
}

struct Args {
    reps: usize,
    quick: bool,
    paths: Vec<Path>,
    sizes: Vec<usize>,
    out: std::path::PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: ipc-bench [--reps N] [--quick] [--paths {}] [--sizes 0..{}] [--out DIR]",
        Path::ALL.map(|p| p.name()).join(","),
        SIZES.len() - 1
    );
    std::process::exit(2)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        reps: 3,
        quick: false,
        paths: Path::ALL.to_vec(),
        sizes: (0..SIZES.len()).collect(),
        out: "target/bench".into(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--reps" => a.reps = value().parse().unwrap_or_else(|_| usage()),
            "--quick" => a.quick = true,
            "--paths" => {
                a.paths = value()
                    .split(',')
                    .map(|p| Path::parse(p).unwrap_or_else(|| usage()))
                    .collect()
            }
            "--sizes" => {
                a.sizes = value()
                    .split(',')
                    .map(|s| {
                        s.parse()
                            .ok()
                            .filter(|i| *i < SIZES.len())
                            .unwrap_or_else(|| usage())
                    })
                    .collect()
            }
            "--out" => a.out = value().into(),
            _ => usage(),
        }
    }
    if a.quick {
        a.reps = 1;
    }
    a
}

fn main() {
    // The C ipcpipeline writes to its socket without MSG_NOSIGNAL: a dying receiver must not
    // take the benchmark down with it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    gst::init().expect("GStreamer");
    gstrsipcpipeline::plugin_register_static().expect("rsipcpipeline");
    gst::Element::register(
        None,
        "benchsrc",
        gst::Rank::NONE,
        BenchSrcElement::static_type(),
    )
    .expect("benchsrc");

    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("--slave") {
        let v: Vec<String> = argv.collect();
        let get = |k: &str| {
            v.iter()
                .position(|a| a == k)
                .and_then(|i| v.get(i + 1))
                .cloned()
                .unwrap_or_default()
        };
        run::slave(
            &get("--slave"),
            get("--count").parse().unwrap_or(1),
            &get("--socket-path"),
        );
    }
    let args = parse_args(argv);
    std::fs::create_dir_all(&args.out).expect("output directory");
    let sizes: Vec<run::Size> = args.sizes.iter().map(|&i| SIZES[i].clone()).collect();

    let (mut throughput, mut latency) = (Vec::new(), Vec::new());
    for rep in 0..args.reps {
        for size in &sizes {
            for &path in &args.paths {
                let count = if args.quick {
                    size.count / 10
                } else {
                    size.count
                };
                let t = run::run(path, size, count.max(10), 0);
                eprintln!(
                    "rep {} {:>10} {:>14}: {:>10.0} buffers/s {:>9.1} MB/s{}",
                    rep + 1,
                    size.name,
                    path.name(),
                    t.m.buffers_per_s,
                    t.m.mb_per_s,
                    t.error
                        .as_deref()
                        .map(|e| format!("  ({e})"))
                        .unwrap_or_default()
                );
                throughput.push(t);
                // Latency without queueing: paced buffers, one every interval.
                let (n, interval) = if size.bytes > 1 << 20 {
                    (60, 20_000_000)
                } else {
                    (400, 1_000_000)
                };
                latency.push(run::run(
                    path,
                    size,
                    if args.quick { n / 4 } else { n },
                    interval,
                ));
            }
        }
    }

    let cells = report::cells(&sizes, &args.paths, &throughput, &latency);
    let table = report::table(&cells);
    let machine = report::Machine::this();
    let header = format!(
        "{} cores, {}, Linux {}, GStreamer {}, {}; medians of {} interleaved repetitions\n\n",
        machine.cores, machine.cpu, machine.kernel, machine.gstreamer, machine.date, args.reps
    );
    println!("{header}{table}");
    std::fs::write(args.out.join("bench.md"), format!("{header}{table}")).expect("bench.md");
    let report = report::Report {
        machine,
        repetitions: args.reps,
        cells: cells.clone(),
        throughput_runs: throughput,
        latency_runs: latency,
    };
    std::fs::write(
        args.out.join("bench.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .expect("bench.json");
    if let Err(e) = report::plot(&cells, &args.paths, &args.out.join("bench.png")) {
        eprintln!("ipc-bench: no plot: {e}");
    }
}
