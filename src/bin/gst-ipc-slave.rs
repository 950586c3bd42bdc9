// SPDX-License-Identifier: MPL-2.0
//! gst-ipc-slave: hosts a slave pipeline for an rsipcpipelinesink in another process.
//!
//! ```text
//! gst-ipc-slave [--fd N | --fdin N --fdout M] [--dump FILE] [--verbose] DESCRIPTION...
//! ```
//!
//! Builds `rsipcslavepipeline.( rsipcpipelinesrc fdin=N fdout=M ! DESCRIPTION )` and runs until
//! the master goes away (exit 0 once the master has stopped it, 1 on any error). Its state is
//! the master's business. `--dump` writes one line per buffer and event that crossed, for
//! tests; `--verbose` prints them, for people.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstrsipcpipeline::dump;

struct Args {
    fdin: i32,
    fdout: i32,
    dump: Option<String>,
    verbose: bool,
    description: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut fdin, mut fdout, mut dump, mut verbose) = (-1, -1, None, false);
    let mut rest = Vec::new();
    let num = |v: Option<String>| -> Result<i32, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| "expected a file descriptor number".to_string())
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fd" => {
                fdin = num(args.next())?;
                fdout = fdin;
            }
            "--fdin" => fdin = num(args.next())?,
            "--fdout" => fdout = num(args.next())?,
            "--dump" => dump = Some(args.next().ok_or("--dump needs a file")?),
            "--verbose" => verbose = true,
            _ => {
                rest.push(a);
                rest.extend(args.by_ref());
            }
        }
    }
    if fdin < 0 || fdout < 0 || rest.is_empty() {
        return Err(
            "usage: gst-ipc-slave [--fd N | --fdin N --fdout M] [--dump FILE] [--verbose] DESCRIPTION"
                .into(),
        );
    }
    Ok(Args {
        fdin,
        fdout,
        dump,
        verbose,
        description: rest.join(" "),
    })
}

fn describe(info: &gst::PadProbeInfo) -> Option<String> {
    match &info.data {
        Some(gst::PadProbeData::Buffer(b)) => Some(dump::buffer_line(b)),
        Some(gst::PadProbeData::Event(e)) => Some(dump::event_line(e)),
        _ => None,
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // Rust ignores SIGPIPE before main; a C slave application leaves it at its default.
    // Do the same, so that a write to a dead master would kill us as it would kill a C slave:
    // the elements must never raise it.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    gst::init().expect("GStreamer initialisation");
    gstrsipcpipeline::plugin_register_static().expect("registering rsipcpipeline");

    // The fds are set only once the pipeline is complete and observed, so nothing that
    // crosses can be missed.
    let launch = format!(
        "rsipcslavepipeline.( rsipcpipelinesrc name=ipcsrc ! {} )",
        args.description
    );
    let pipeline = match gst::parse::launch(&launch) {
        Ok(p) => p.downcast::<gst::Pipeline>().expect("a pipeline"),
        Err(e) => {
            eprintln!("gst-ipc-slave: invalid slave pipeline: {e}");
            std::process::exit(2);
        }
    };
    // Keep the bus alive at NULL: the end of the connection is reported after the master
    // has taken this pipeline down.
    pipeline.set_auto_flush_bus(false);

    let pid = std::process::id();
    if args.dump.is_some() || args.verbose {
        let dump = args
            .dump
            .as_ref()
            .map(|p| Arc::new(Mutex::new(File::create(p).expect("creating the dump file"))));
        let verbose = args.verbose;
        let src = pipeline.by_name("ipcsrc").unwrap();
        let start = std::time::Instant::now();
        src.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(line) = describe(info) {
                    if let Some(f) = &dump {
                        let mut f = f.lock().unwrap();
                        let _ = writeln!(f, "{line}");
                        let _ = f.flush();
                    }
                    if verbose {
                        eprintln!(
                            "[slave  pid {pid}] {:>8.3} ms  received {line}",
                            start.elapsed().as_secs_f64() * 1e3
                        );
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    let src = pipeline.by_name("ipcsrc").unwrap();
    src.set_property("fdin", args.fdin);
    src.set_property("fdout", args.fdout);

    let bus = pipeline.bus().unwrap();
    let code = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        if let gst::MessageView::Error(e) = msg.view() {
            let origin = msg
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            let from_link = msg.src().is_some_and(|s| s.name() == "ipcsrc");
            if !from_link {
                // The master saw it too and decides what to do, as with an error in a bin.
                eprintln!(
                    "gst-ipc-slave: error from {origin}: {} ({:?})",
                    e.error(),
                    e.debug()
                );
                continue;
            }
            let (_, state, _) = pipeline.state(gst::ClockTime::ZERO);
            if state <= gst::State::Ready {
                // The master stopped us and went away: a normal end.
                break 0;
            }
            eprintln!("gst-ipc-slave: {} while running", e.error());
            break 1;
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    std::process::exit(code);
}
