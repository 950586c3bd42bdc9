// SPDX-License-Identifier: MPL-2.0
//! ipcpipeline1: the C plugin's first example, with our elements, written the way a C
//! application of the plugin is: one socketpair, `fork()`, and a slave that never sets its
//! own state.
//!
//! ```text
//! cargo run --example ipcpipeline1 [-- --video-sink=ELEMENT]
//! ```
//!
//! The master (parent) plays `videotestsrc pattern=ball num-buffers=50` at 640x480 into
//! `rsipcpipelinesink`; the slave (child) shows it through `navseek seek-offset=1.0 !
//! autovideosink`. Arrow keys in the window seek: navseek turns them into seeks, which travel
//! upstream to the master. The master quits on EOS or ERROR; the slave quits once the master
//! has gone. The program name is the example's; its code is ours (MPL-2.0).

use std::os::fd::{AsRawFd, OwnedFd};

use gst::glib;
use gst::prelude::*;

fn main() {
    let video_sink = std::env::args()
        .find_map(|a| a.strip_prefix("--video-sink=").map(str::to_string))
        .unwrap_or_else(|| "autovideosink".into());
    // Before GStreamer starts any thread: after this fork each process is single-threaded.
    let (master_end, slave_end) =
        gstrsipcpipeline::launcher::socketpair().expect("creating the socketpair");
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(master_end);
            std::process::exit(slave(slave_end, &video_sink));
        }
        child => {
            drop(slave_end);
            let code = master(&master_end);
            // Closing our end is what tells the slave we are gone.
            drop(master_end);
            let mut status = 0;
            unsafe { libc::waitpid(child, &mut status, 0) };
            std::process::exit(code);
        }
    }
}

fn init() {
    gst::init().expect("GStreamer initialisation");
    gstrsipcpipeline::plugin_register_static().expect("registering rsipcpipeline");
}

/// The master pipeline; its state drives the slave's. Exit code 0 after EOS.
fn master(fd: &OwnedFd) -> i32 {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc pattern=ball num-buffers=50 ! video/x-raw,width=640,height=480 ! \
         rsipcpipelinesink name=ipcsink",
    )
    .expect("building the master pipeline");
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("ipcsink")
        .unwrap();
    sink.set_property("fdin", fd.as_raw_fd());
    sink.set_property("fdout", fd.as_raw_fd());
    let code = run(&pipeline, true);
    pipeline.set_state(gst::State::Null).unwrap();
    code
}

/// The slave pipeline: built, connected, and left alone. "The state of the slave pipeline
/// will change together with the state of the master."
fn slave(fd: OwnedFd, video_sink: &str) -> i32 {
    init();
    let n = fd.as_raw_fd();
    let pipeline = gst::parse::launch(&format!(
        "rsipcslavepipeline.( rsipcpipelinesrc fdin={n} fdout={n} ! \
         navseek seek-offset=1.0 ! {video_sink} )"
    ))
    .expect("building the slave pipeline");
    // The master takes the slave down to NULL before it closes the connection: keep the bus
    // alive at NULL, so that the end of the connection is seen.
    pipeline
        .downcast_ref::<gst::Pipeline>()
        .unwrap()
        .set_auto_flush_bus(false);
    let code = run(&pipeline, false);
    pipeline.set_state(gst::State::Null).unwrap();
    drop(fd);
    code
}

/// Runs a main loop until EOS (the master) or an ERROR; the slave's last ERROR is its src
/// noticing that the master has gone, which ends it normally.
fn run(pipeline: &gst::Element, is_master: bool) -> i32 {
    let main_loop = glib::MainLoop::new(None, false);
    let code = std::rc::Rc::new(std::cell::Cell::new(0));
    let who = if is_master { "master" } else { "slave" };
    let _watch = pipeline
        .bus()
        .unwrap()
        .add_watch_local({
            let (main_loop, code) = (main_loop.clone(), code.clone());
            let pipeline = pipeline.downgrade();
            move |_, msg| {
                match msg.view() {
                    gst::MessageView::Eos(_) if is_master => {
                        println!("[{who}] end of stream");
                        main_loop.quit();
                    }
                    gst::MessageView::Error(e) => {
                        let from_link = msg
                            .src()
                            .is_some_and(|s| s.type_().name() == "GstRsIpcPipelineSrc");
                        let stopped = pipeline
                            .upgrade()
                            .is_none_or(|p| p.current_state() <= gst::State::Ready);
                        if !(from_link && stopped) {
                            eprintln!("[{who}] error: {} ({:?})", e.error(), e.debug());
                            code.set(1);
                        }
                        main_loop.quit();
                    }
                    _ => {}
                }
                glib::ControlFlow::Continue
            }
        })
        .expect("watching the bus");
    if is_master {
        pipeline
            .set_state(gst::State::Playing)
            .expect("starting the master");
    }
    main_loop.run();
    code.get()
}
