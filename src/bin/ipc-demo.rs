// SPDX-License-Identifier: MPL-2.0
//! ipc-demo: a pipeline split across two processes, printing what crosses.
//!
//! The master (this process) runs `videotestsrc ! capsfilter ! rsipcpipelinesink`; the slave
//! (gst-ipc-slave, spawned with one end of a socketpair) runs
//! `rsipcslavepipeline.( rsipcpipelinesrc ! videoconvert ! fakesink sync=true )`.
//! Both print each frame with their pid; the master prints a summary at the end.

use std::time::Instant;

use gst::prelude::*;
use gstrsipcpipeline::launcher;

fn main() {
    let frames: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    gst::init().expect("GStreamer initialisation");
    gstrsipcpipeline::plugin_register_static().expect("registering rsipcpipeline");
    let pid = std::process::id();

    let (ours, theirs) = launcher::socketpair().expect("socketpair");
    let mut child = launcher::spawn_with_fds(
        std::process::Command::new(launcher::helper_path()).args([
            "--fd",
            "3",
            "--verbose",
            "videoconvert ! fakesink sync=true",
        ]),
        &[&theirs],
    )
    .expect("spawning gst-ipc-slave (build it with cargo build first)");
    drop(theirs);
    println!("[master pid {pid}] spawned slave pid {}", child.id());

    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! \
         video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
         rsipcpipelinesink name=sink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    sink.set_property("fdin", std::os::fd::AsRawFd::as_raw_fd(&ours));
    sink.set_property("fdout", std::os::fd::AsRawFd::as_raw_fd(&ours));

    let start = Instant::now();
    sink.static_pad("sink").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let t = start.elapsed().as_secs_f64() * 1e3;
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => println!(
                    "[master pid {pid}] {t:>8.3} ms  sent buffer pts={} size={}",
                    b.pts().display(),
                    b.size()
                ),
                Some(gst::PadProbeData::Event(e)) => match e.view() {
                    gst::EventView::Caps(c) => {
                        println!("[master pid {pid}] {t:>8.3} ms  sent caps {}", c.caps())
                    }
                    _ => println!(
                        "[master pid {pid}] {t:>8.3} ms  sent event {}",
                        e.type_().name()
                    ),
                },
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );

    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let bus = pipeline.bus().unwrap();
    let mut ok = true;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => {
                println!(
                    "[master pid {pid}] EOS from the slave after {:.1} ms",
                    start.elapsed().as_secs_f64() * 1e3
                );
                break;
            }
            gst::MessageView::Error(e) => {
                println!("[master pid {pid}] error: {} ({:?})", e.error(), e.debug());
                ok = false;
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // The connection ends when both the element and we let go of our end.
    drop(pipeline);
    drop(sink);
    drop(ours);
    let status = child.wait().expect("waiting for the slave");
    println!(
        "[master pid {pid}] {frames} frames of 320x240 I420 crossed in {:.1} ms; slave exited with {status}",
        start.elapsed().as_secs_f64() * 1e3
    );
    std::process::exit(if ok && status.success() { 0 } else { 1 });
}
