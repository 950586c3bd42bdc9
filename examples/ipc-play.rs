// SPDX-License-Identifier: MPL-2.0
//! ipc-play: a player whose decoders and sinks each run in a sandboxed process of their own,
//! after the C plugin's `ipc-play` example.
//!
//! ```text
//! cargo run --example ipc-play -- [--video-sink=ELEM] [--audio-sink=ELEM]
//!                                 [--sandbox=none|default|strict] [--allow=PATHS]
//!                                 [--upstream] FILE-OR-URI
//! ```
//!
//! `--allow` is the slaves' `sandbox-allow`: what a display or sound sink needs beyond the
//! default sandbox (an X authority file, a PulseAudio cookie, `/dev/dri/renderD*`), or use
//! `--sandbox=none` for them.
//!
//! The master runs `uridecodebin`, stopped before any decoder: each stream it exposes, still
//! encoded, goes to an `rsipcpipelinesink` whose `slave-pipeline` decodes and renders it in a
//! slave process that the sink spawns and sandboxes. A crafted file that breaks a decoder
//! breaks only that process.
//!
//! With `--upstream`, the source and the demuxer leave the master too: an `rsipcupstreamsrc`
//! runs `urisourcebin ! parsebin` in a sandboxed slave of its own (which may read the file and
//! nothing else), and each elementary stream it exposes goes on to its decoding slave as
//! before. Then the master itself parses nothing that came from the file.
//!
//! Keys (in the terminal, or in the video window, whose key presses the slave sends up):
//! space pause/play, ← → seek 5 s, 0 back to the start, + - double or halve the rate,
//! q or Esc quit. The player prints each state it settles in and each seek.

use std::io::Read;
use std::sync::Arc;

use gst::glib;
use gst::prelude::*;

struct Options {
    video_sink: String,
    audio_sink: String,
    sandbox: String,
    allow: String,
    upstream: bool,
    uri: String,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        video_sink: "autovideosink".into(),
        audio_sink: "autoaudiosink".into(),
        sandbox: "default".into(),
        allow: String::new(),
        upstream: false,
        uri: String::new(),
    };
    for a in std::env::args().skip(1) {
        if let Some(v) = a.strip_prefix("--video-sink=") {
            o.video_sink = v.into();
        } else if let Some(v) = a.strip_prefix("--audio-sink=") {
            o.audio_sink = v.into();
        } else if let Some(v) = a.strip_prefix("--sandbox=") {
            o.sandbox = v.into();
        } else if let Some(v) = a.strip_prefix("--allow=") {
            o.allow = v.into();
        } else if a == "--upstream" {
            o.upstream = true;
        } else if a.starts_with("--") || !o.uri.is_empty() {
            return Err(format!("unexpected argument {a}"));
        } else if a.contains("://") {
            o.uri = a;
        } else {
            let path = std::fs::canonicalize(&a).map_err(|e| format!("{a}: {e}"))?;
            o.uri = glib::filename_to_uri(&path, None)
                .map_err(|e| e.to_string())?
                .into();
        }
    }
    if o.uri.is_empty() {
        return Err("usage: ipc-play [--video-sink=ELEM] [--audio-sink=ELEM] \
                    [--sandbox=none|default|strict] [--allow=PATHS] [--upstream] FILE-OR-URI"
            .into());
    }
    Ok(o)
}

fn main() {
    let opts = match options() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    gst::init().expect("GStreamer initialisation");
    gstrsipcpipeline::plugin_register_static().expect("registering rsipcpipeline");

    let pipeline = gst::Pipeline::new();
    if opts.upstream {
        add_upstream_slave(&pipeline, &opts);
    } else {
        add_decodebin(&pipeline, &opts);
    }

    let main_loop = glib::MainLoop::new(None, false);
    let bus = pipeline.bus().unwrap();
    let _watch = bus
        .add_watch({
            let (main_loop, pipeline) = (main_loop.clone(), pipeline.downgrade());
            move |_, msg| {
                if let Some(pipeline) = pipeline.upgrade() {
                    on_message(&pipeline, msg, &main_loop);
                }
                glib::ControlFlow::Continue
            }
        })
        .expect("watching the bus");
    let _raw = RawTerminal::enter();
    std::thread::spawn({
        let (main_loop, pipeline) = (main_loop.clone(), pipeline.clone());
        move || read_keys(&pipeline, &main_loop)
    });

    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!("ipc-play: cannot play {}", opts.uri);
    } else {
        main_loop.run();
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

/// uridecodebin, stopped before each decoder: each stream, still encoded, goes to a slave.
fn add_decodebin(pipeline: &gst::Pipeline, opts: &Arc<Options>) {
    let decodebin = gst::ElementFactory::make("uridecodebin")
        .property("uri", &opts.uri)
        .build()
        .expect("uridecodebin");
    pipeline.add(&decodebin).unwrap();
    // Expose each stream instead of plugging its decoder: the decoder goes to a slave.
    decodebin.connect("autoplug-select", false, |args| {
        let factory = args[3].get::<gst::ElementFactory>().ok()?;
        let decoder = factory.klass().contains("Decoder");
        let result = glib::EnumClass::with_type(glib::Type::from_name("GstAutoplugSelectResult")?)?;
        // GST_AUTOPLUG_SELECT_EXPOSE, GST_AUTOPLUG_SELECT_TRY.
        result.to_value(if decoder { 1 } else { 0 })
    });
    decodebin.connect_pad_added({
        let (pipeline, opts) = (pipeline.downgrade(), opts.clone());
        move |_, pad| {
            if let Some(pipeline) = pipeline.upgrade() {
                let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
                add_slave(&pipeline, pad, &caps, &opts);
            }
        }
    });
}

/// The source and the demuxer in a sandboxed upstream slave: each elementary stream it
/// exposes goes to a decoding slave, once its caps say what it is.
fn add_upstream_slave(pipeline: &gst::Pipeline, opts: &Arc<Options>) {
    // The slave may read the file it plays, and what --allow names.
    let file = glib::filename_from_uri(&opts.uri)
        .ok()
        .map(|(path, _)| path.display().to_string());
    let allow: Vec<&str> = file
        .iter()
        .map(String::as_str)
        .chain(Some(opts.allow.as_str()).filter(|a| !a.is_empty()))
        .collect();
    let upstream = gst::ElementFactory::make("rsipcupstreamsrc")
        .property(
            "slave-pipeline",
            format!("urisourcebin uri={} ! parsebin", opts.uri),
        )
        .property_from_str("sandbox", &opts.sandbox)
        .property("sandbox-allow", allow.join(","))
        .build()
        .expect("rsipcupstreamsrc");
    pipeline.add(&upstream).unwrap();
    let when_typed = {
        let (pipeline, opts) = (pipeline.downgrade(), opts.clone());
        move |pad: &gst::Pad| {
            let (pipeline, opts) = (pipeline.clone(), opts.clone());
            pad.add_probe(
                gst::PadProbeType::EVENT_DOWNSTREAM,
                move |pad, info| match (&info.data, pipeline.upgrade()) {
                    (Some(gst::PadProbeData::Event(e)), Some(pipeline)) => match e.view() {
                        gst::EventView::Caps(c) => {
                            add_slave(&pipeline, pad, c.caps(), &opts);
                            gst::PadProbeReturn::Remove
                        }
                        _ => gst::PadProbeReturn::Ok,
                    },
                    _ => gst::PadProbeReturn::Ok,
                },
            );
        }
    };
    when_typed(&upstream.static_pad("src").unwrap());
    upstream.connect_pad_added(move |_, pad| when_typed(pad));
    println!(
        "ipc-play: source and demuxer in an upstream slave ({})",
        opts.sandbox
    );
}

/// A sink with its own slave process for the stream of `pad`, of type `caps`.
fn add_slave(pipeline: &gst::Pipeline, pad: &gst::Pad, caps: &gst::CapsRef, opts: &Options) {
    let kind = caps
        .structure(0)
        .map_or("unknown", |s| s.name().as_str())
        .to_string();
    let slave = if kind.starts_with("video/") {
        format!(
            "decodebin ! videoconvert ! videoscale ! {}",
            opts.video_sink
        )
    } else if kind.starts_with("audio/") {
        format!(
            "decodebin ! audioconvert ! audioresample ! {}",
            opts.audio_sink
        )
    } else {
        "fakesink".to_string()
    };
    let queue = gst::ElementFactory::make("queue").build().unwrap();
    let sink = gst::ElementFactory::make("rsipcpipelinesink")
        .property("slave-pipeline", &slave)
        .property_from_str("sandbox", &opts.sandbox)
        .property("sandbox-allow", &opts.allow)
        .build()
        .unwrap();
    pipeline.add_many([&queue, &sink]).unwrap();
    gst::Element::link_many([&queue, &sink]).unwrap();
    for e in [&sink, &queue] {
        e.sync_state_with_parent().unwrap();
    }
    pad.link(&queue.static_pad("sink").unwrap()).unwrap();
    println!(
        "ipc-play: {kind} decoded in slave process {} ({slave})",
        sink.property::<i32>("slave-pid")
    );
}

fn on_message(pipeline: &gst::Pipeline, msg: &gst::Message, main_loop: &glib::MainLoop) {
    use gst::MessageView as V;
    match msg.view() {
        V::Eos(_) => {
            println!("ipc-play: end of stream");
            main_loop.quit();
        }
        V::Error(e) => {
            eprintln!("ipc-play: error from {}: {}", origin(msg), e.error());
            main_loop.quit();
        }
        V::Warning(w) => eprintln!("ipc-play: warning from {}: {}", origin(msg), w.error()),
        V::StateChanged(s)
            if msg.src() == Some(pipeline.upcast_ref())
                && s.pending() == gst::State::VoidPending
                && s.current() >= gst::State::Paused =>
        {
            println!("ipc-play: {:?}", s.current());
        }
        // Slaves are live or buffer: as gst-play does.
        V::Buffering(b) => {
            let target = if b.percent() < 100 {
                gst::State::Paused
            } else {
                gst::State::Playing
            };
            let _ = pipeline.set_state(target);
        }
        V::ClockLost(_) => {
            let _ = pipeline.set_state(gst::State::Paused);
            let _ = pipeline.set_state(gst::State::Playing);
        }
        V::Latency(_) => {
            let _ = pipeline.recalculate_latency();
        }
        V::RequestState(r) => {
            let _ = pipeline.set_state(r.requested_state());
        }
        // Key presses in the video window of a slave.
        V::Element(_) => {
            if let Ok(gst_video::NavigationMessage::Event(e)) =
                gst_video::NavigationMessage::parse(msg)
                && let Ok(gst_video::NavigationEvent::KeyPress { key, .. }) =
                    gst_video::NavigationEvent::parse(&e.event)
            {
                key_pressed(pipeline, main_loop, &key);
            }
        }
        _ => {}
    }
}

/// Which element of which process a message comes from.
fn origin(msg: &gst::Message) -> String {
    let details = match msg.view() {
        gst::MessageView::Error(e) => e.details(),
        gst::MessageView::Warning(w) => w.details(),
        _ => None,
    };
    details
        .and_then(|d| d.get::<String>("ipc-origin").ok())
        .or_else(|| msg.src().map(|s| s.path_string().to_string()))
        .unwrap_or_default()
}

/// Keys from the terminal: arrows arrive as ESC [ C and ESC [ D.
fn read_keys(pipeline: &gst::Pipeline, main_loop: &glib::MainLoop) {
    let mut stdin = std::io::stdin().lock();
    let mut byte = [0u8; 1];
    let mut next = || {
        stdin
            .read(&mut byte)
            .ok()
            .filter(|n| *n == 1)
            .map(|_| byte[0])
    };
    while let Some(b) = next() {
        let key = match b {
            0x1b => match (next(), next()) {
                (Some(b'['), Some(b'C')) => "Right",
                (Some(b'['), Some(b'D')) => "Left",
                _ => "Escape",
            },
            b' ' => "space",
            b'0' => "0",
            b'+' => "plus",
            b'-' => "minus",
            b'q' => "q",
            _ => continue,
        };
        key_pressed(pipeline, main_loop, key);
    }
}

fn key_pressed(pipeline: &gst::Pipeline, main_loop: &glib::MainLoop, key: &str) {
    let (_, state, pending) = pipeline.state(gst::ClockTime::ZERO);
    let position = pipeline
        .query_position::<gst::ClockTime>()
        .unwrap_or_default();
    let five = gst::ClockTime::from_seconds(5);
    match key {
        "space" => {
            let playing = state == gst::State::Playing || pending == gst::State::Playing;
            let target = if playing {
                gst::State::Paused
            } else {
                gst::State::Playing
            };
            let _ = pipeline.set_state(target);
        }
        "Right" => seek(pipeline, position + five, None),
        "Left" => seek(pipeline, position.saturating_sub(five), None),
        "0" => seek(pipeline, gst::ClockTime::ZERO, None),
        "plus" => seek(pipeline, position, Some(2.0)),
        "minus" => seek(pipeline, position, Some(0.5)),
        "q" | "Escape" => main_loop.quit(),
        _ => {}
    }
}

fn seek(pipeline: &gst::Pipeline, to: gst::ClockTime, rate_factor: Option<f64>) {
    static RATE: std::sync::Mutex<f64> = std::sync::Mutex::new(1.0);
    let mut rate = RATE.lock().unwrap();
    if let Some(f) = rate_factor {
        *rate = (*rate * f).clamp(0.125, 8.0);
    }
    println!("ipc-play: seek to {to} at rate {}", *rate);
    let _ = pipeline.seek(
        *rate,
        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
        gst::SeekType::Set,
        to,
        gst::SeekType::None,
        gst::ClockTime::NONE,
    );
}

/// The terminal in non-canonical mode without echo while we run, so that keys act at once.
struct RawTerminal(Option<libc::termios>);

impl RawTerminal {
    fn enter() -> RawTerminal {
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::isatty(0) } == 0 || unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return RawTerminal(None);
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) };
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}
