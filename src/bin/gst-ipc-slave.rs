// SPDX-License-Identifier: MPL-2.0
//! gst-ipc-slave: hosts a slave pipeline for an rsipcpipelinesink (or, with `--upstream`, an
//! rsipcupstreamsrc) in another process.
//!
//! ```text
//! gst-ipc-slave [--fd N | --fdin N --fdout M]... [--upstream] [--sandbox none|default|strict]
//!               [--allow PATH]... [--memory-limit BYTES] [--dump FILE] [--verbose]
//!               DESCRIPTION...
//! ```
//!
//! With one connection, builds `rsipcslavepipeline.( rsipcpipelinesrc fdin=N fdout=M !
//! DESCRIPTION )`, or with `--upstream` `rsipcslavepipeline.( DESCRIPTION ! rsipcupstreamsink
//! fdin=N fdout=M )`. With several (several master sinks, or several masters), DESCRIPTION is
//! the whole slave pipeline and names its srcs `ipcsrc0`, `ipcsrc1`, ... (its sinks
//! `ipcsink0`, ... with `--upstream`) in the order of the connections. Runs until every master goes away (exit 0 once the masters have stopped it, 1
//! on any error). Its state is the masters' business. `--dump` writes one line per buffer and
//! event that crossed, for tests (prefixed with the src's name when there are several), and
//! `pipeline ...` lines for the clock, base time and latency the slave pipeline runs with and
//! when it settles in PAUSED or PLAYING;
//! `--verbose` prints them, for people.
//!
//! `--sandbox` locks the process in (see `sandbox.rs` and the README): namespaces and limits
//! first, Landlock and seccomp once the pipeline's elements are loaded and before anything
//! crosses. What the kernel cannot do is printed and posted as a WARNING to the masters.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstrsipcpipeline::dump;
use gstrsipcpipeline::sandbox::{self, Degraded, Level, Policy};

struct Args {
    /// (fdin, fdout) of each connection.
    fds: Vec<(i32, i32)>,
    dump: Option<String>,
    verbose: bool,
    /// The slave is the upstream part: it ends in rsipcupstreamsinks.
    upstream: bool,
    sandbox: Policy,
    description: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut fds, mut fdin, mut dump, mut verbose) = (Vec::new(), None, None, false);
    let mut upstream = false;
    // Run by hand or by a C-style application, the helper locks in only when told.
    let mut sandbox = Policy {
        level: Level::None,
        ..Policy::default()
    };
    let mut rest = Vec::new();
    let num = |v: Option<String>| -> Result<i32, String> {
        v.and_then(|v| v.parse().ok())
            .filter(|n: &i32| *n >= 0)
            .ok_or_else(|| "expected a file descriptor number".to_string())
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fd" => {
                let fd = num(args.next())?;
                fds.push((fd, fd));
            }
            "--fdin" => fdin = Some(num(args.next())?),
            "--fdout" => {
                let fdout = num(args.next())?;
                fds.push((
                    fdin.take().ok_or("--fdout needs a --fdin before it")?,
                    fdout,
                ));
            }
            "--dump" => dump = Some(args.next().ok_or("--dump needs a file")?),
            "--verbose" => verbose = true,
            "--upstream" => upstream = true,
            "--sandbox" => {
                sandbox.level = args
                    .next()
                    .and_then(|l| Level::from_nick(&l))
                    .ok_or("--sandbox takes none, default or strict")?
            }
            "--allow" => sandbox
                .allow
                .push(args.next().ok_or("--allow needs a path")?.into()),
            "--memory-limit" => {
                sandbox.memory_limit = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--memory-limit needs a number of bytes")?
            }
            _ => {
                rest.push(a);
                rest.extend(args.by_ref());
            }
        }
    }
    if fds.is_empty() || fdin.is_some() || rest.is_empty() {
        return Err(
            "usage: gst-ipc-slave [--fd N | --fdin N --fdout M]... [--upstream] \
             [--sandbox none|default|strict] [--allow PATH]... [--memory-limit BYTES] \
             [--dump FILE] [--verbose] DESCRIPTION"
                .into(),
        );
    }
    Ok(Args {
        fds,
        dump,
        verbose,
        upstream,
        sandbox,
        description: rest.join(" "),
    })
}

/// Feeds the `rsipcupstreamsink name=ipcsink0` that ends an upstream slave pipeline with
/// every stream its description ends with, not only the first: each pad a last element (a
/// demuxer) adds and nothing links goes to a request pad of the sink of its own, released when
/// it is unlinked (the demuxer removed its pad); its own pad again when that one is free.
fn end_upstream(pipeline: &gst::Pipeline) {
    let sink = pipeline.by_name("ipcsink0").expect("the upstream sink");
    let tails: Vec<gst::Element> = pipeline
        .iterate_elements()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e != &sink
                && e.pad_template_list()
                    .iter()
                    .any(|t| t.presence() == gst::PadPresence::Sometimes)
        })
        .collect();
    let one_at_a_time = Arc::new(Mutex::new(()));
    for tail in tails {
        let (sink, lock) = (sink.downgrade(), one_at_a_time.clone());
        // After gst_parse_launch's own handler, which links the first stream.
        tail.connect_pad_added(move |_, pad| {
            let Some(sink) = sink.upgrade() else {
                return;
            };
            let _one = lock.lock().unwrap();
            if pad.direction() != gst::PadDirection::Src || pad.is_linked() {
                return;
            }
            let main = sink.static_pad("sink").unwrap();
            let target = if main.is_linked() {
                let extra = sink.request_pad_simple("sink_%u");
                if let Some(extra) = &extra {
                    let sink = sink.downgrade();
                    extra.connect_unlinked(move |extra, _| {
                        if let Some(sink) = sink.upgrade() {
                            sink.release_request_pad(extra);
                        }
                    });
                }
                extra
            } else {
                Some(main)
            };
            if let Some(Err(e)) = target.map(|t| pad.link(&t)) {
                eprintln!("gst-ipc-slave: cannot send {} on: {e:?}", pad.name());
            }
        });
    }
}

fn describe(info: &gst::PadProbeInfo) -> Option<String> {
    match &info.data {
        Some(gst::PadProbeData::Buffer(b)) => Some(dump::buffer_line(b)),
        Some(gst::PadProbeData::Event(e)) => match e.view() {
            // The latency the slave's sinks were configured with, on its way upstream.
            gst::EventView::Latency(l) => {
                Some(format!("pipeline latency {}", l.latency().nseconds()))
            }
            _ if info.mask.contains(gst::PadProbeType::EVENT_UPSTREAM) => None,
            _ => Some(dump::event_line(e)),
        },
        _ => None,
    }
}

/// One line a test can read: `line`, as it is, in the dump.
type Log = Arc<dyn Fn(&str) + Send + Sync>;

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
    let mut degraded = sandbox::enter(&args.sandbox).unwrap_or_else(|e| {
        eprintln!("gst-ipc-slave: sandbox: {e}");
        std::process::exit(2);
    });
    gst::init().expect("GStreamer initialisation");
    gstrsipcpipeline::plugin_register_static().expect("registering rsipcpipeline");

    // The fds are set only once the pipeline is complete and observed, so nothing that
    // crosses can be missed.
    let several = args.fds.len() > 1;
    let (end, pad) = if args.upstream {
        ("ipcsink", "sink")
    } else {
        ("ipcsrc", "src")
    };
    let launch = match (several, args.upstream) {
        (true, _) => format!("rsipcslavepipeline.( {} )", args.description),
        (false, false) => format!(
            "rsipcslavepipeline.( rsipcpipelinesrc name=ipcsrc0 ! {} )",
            args.description
        ),
        // Linked here to the first stream; to the others as they come, below.
        (false, true) => format!(
            "rsipcslavepipeline.( {} ! rsipcupstreamsink name=ipcsink0 )",
            args.description
        ),
    };
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
    if args.upstream && !several {
        end_upstream(&pipeline);
    }
    // Our elements at the ends of the slave pipeline, one per connection.
    let ends: Vec<gst::Element> = (0..args.fds.len())
        .map(|i| {
            pipeline.by_name(&format!("{end}{i}")).unwrap_or_else(|| {
                eprintln!("gst-ipc-slave: the slave pipeline has no {end}{i}");
                std::process::exit(2);
            })
        })
        .collect();

    let pid = std::process::id();
    let log: Option<Log> = (args.dump.is_some() || args.verbose).then(|| {
        let file = args
            .dump
            .as_ref()
            .map(|p| Mutex::new(File::create(p).expect("creating the dump file")));
        let (verbose, start) = (args.verbose, std::time::Instant::now());
        Arc::new(move |line: &str| {
            if let Some(f) = &file {
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
        }) as Log
    });
    if let Some(log) = &log {
        for e in &ends {
            let prefix = if several {
                format!("{} ", e.name())
            } else {
                String::new()
            };
            let log = log.clone();
            e.static_pad(pad).unwrap().add_probe(
                gst::PadProbeType::BUFFER
                    | gst::PadProbeType::EVENT_DOWNSTREAM
                    | gst::PadProbeType::EVENT_UPSTREAM
                    | gst::PadProbeType::EVENT_FLUSH,
                move |_, info| {
                    match describe(info) {
                        Some(line) if line.starts_with("pipeline ") => log(&line),
                        Some(line) => log(&format!("{prefix}{line}")),
                        None => {}
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
    }

    for p in &args.sandbox.allow {
        if !p.to_string_lossy().contains('*') && !p.exists() {
            // Landlock allows what exists; a file still to be written needs its directory.
            eprintln!(
                "gst-ipc-slave: sandbox: {} does not exist, so it stays out of reach; allow \
                 its directory for a file the slave creates",
                p.display()
            );
        }
    }
    // Every element is loaded and nothing runs yet: lock in before the first frame crosses.
    match sandbox::lock_down(&args.sandbox, &sandbox::plugin_dirs()) {
        Ok(notes) => degraded.extend(notes),
        Err(e) => {
            eprintln!("gst-ipc-slave: sandbox: {e}");
            std::process::exit(2);
        }
    }

    // Before connecting: the slave pipeline keeps them for the masters, ahead of anything
    // their state changes make it post.
    for Degraded(what) in degraded {
        eprintln!("gst-ipc-slave: sandbox weaker than asked: {what}");
        let _ = pipeline.post_message(
            gst::message::Warning::builder(
                gst::CoreError::Failed,
                &format!("The slave's sandbox is weaker than asked: {what}"),
            )
            .src(&pipeline)
            .build(),
        );
    }

    for (e, (fdin, fdout)) in ends.iter().zip(&args.fds) {
        e.set_property("fdin", fdin);
        e.set_property("fdout", fdout);
    }

    let bus = pipeline.bus().unwrap();
    let mut gone = std::collections::HashSet::new();
    let code = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        if let (gst::MessageView::StateChanged(sc), Some(log)) = (msg.view(), &log)
            && msg.src() == Some(pipeline.upcast_ref())
        {
            match sc.current() {
                gst::State::Playing => {
                    let clock = pipeline.clock().map(|c| c.type_().name().to_string());
                    log(&format!(
                        "pipeline playing base-time={} clock={}",
                        pipeline.base_time().map_or(-1, |t| t.nseconds() as i64),
                        clock.as_deref().unwrap_or("none")
                    ));
                }
                gst::State::Paused if sc.pending() == gst::State::VoidPending => {
                    log("pipeline paused")
                }
                _ => {}
            }
        }
        if let gst::MessageView::Error(e) = msg.view() {
            let origin = msg
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            let link = msg
                .src()
                .filter(|s| ends.iter().any(|e| e.upcast_ref::<gst::Object>() == *s));
            let Some(link) = link else {
                // The master saw it too and decides what to do, as with an error in a bin.
                eprintln!(
                    "gst-ipc-slave: error from {origin}: {} ({:?})",
                    e.error(),
                    e.debug()
                );
                continue;
            };
            gone.insert(link.name());
            let (_, state, _) = pipeline.state(gst::ClockTime::ZERO);
            if gone.len() < ends.len() {
                // Another master still drives us.
                continue;
            }
            if state <= gst::State::Ready {
                // The masters stopped us and went away: a normal end.
                break 0;
            }
            eprintln!("gst-ipc-slave: {} while running", e.error());
            break 1;
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    std::process::exit(code);
}
