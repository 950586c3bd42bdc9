// SPDX-License-Identifier: MPL-2.0
//! The example programs, run as a user runs them: `ipcpipeline1` (fork, one socketpair, a
//! slave that never sets its state) and `ipc-play` (each stream decoded in a sandboxed slave
//! of its own, keys from the terminal).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let path: PathBuf = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds it)",
        path.display()
    );
    Command::new(path)
}

#[test]
fn ipcpipeline1_plays_to_the_end_in_two_processes() {
    let out = example("ipcpipeline1")
        .arg("--video-sink=fakesink")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[master] end of stream"), "{stdout}");
}

/// A WebM file with VP8 video and Vorbis audio, `seconds` long.
fn movie(seconds: u32) -> tempfile::NamedTempFile {
    init();
    make_file(
        ".webm",
        &format!(
            "videotestsrc num-buffers={v} ! video/x-raw,width=64,height=48,framerate=10/1 ! \
             vp8enc ! queue ! webmmux name=mux ! filesink location={{location}} \
             audiotestsrc num-buffers={a} samplesperbuffer=4410 ! audio/x-raw,rate=44100 ! \
             vorbisenc ! queue ! mux.",
            v = seconds * 10,
            a = seconds * 10
        ),
    )
}

/// ipc-play with sinks that sync, its output lines arriving on a channel.
fn ipc_play(file: &std::path::Path) -> (std::process::Child, mpsc::Receiver<String>) {
    ipc_play_with(&[], file)
}

fn ipc_play_with(
    options: &[&str],
    file: &std::path::Path,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = example("ipc-play")
        .args([
            "--video-sink=fakesink sync=true",
            "--audio-sink=fakesink sync=true",
        ])
        .args(options)
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn expect_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line with {what:?}"),
        }
    }
}

/// Both streams are decoded in slave processes of their own, in real time (the slaves run on
/// the master's clock even though their sinks were added while it was on its way to
/// PLAYING), and the player ends at EOS.
#[test]
fn ipc_play_decodes_each_stream_in_its_own_process_in_real_time() {
    let file = movie(2);
    let started = Instant::now();
    let (mut child, rx) = ipc_play(file.path());
    let video = expect_line(&rx, "video/x-vp8 decoded in slave process");
    let audio = expect_line(&rx, "audio/x-vorbis decoded in slave process");
    assert_ne!(pid_in(&video), pid_in(&audio));
    expect_line(&rx, "end of stream");
    assert!(child.wait().unwrap().success());
    // Rendering 2 s of media against the clock cannot take less.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900), "played in {took:?}");
}

/// `--upstream`: the file is read and demuxed in a strict sandbox of its own, and each
/// stream is decoded in a slave of its own: four processes, in real time, to EOS; seeks
/// reach the demuxer in the upstream slave.
#[test]
fn ipc_play_upstream_reads_and_demuxes_in_a_slave_of_its_own() {
    let file = movie(3);
    let started = Instant::now();
    let (mut child, rx) = ipc_play_with(&["--upstream", "--sandbox=strict"], file.path());
    expect_line(&rx, "source and demuxer in an upstream slave (strict)");
    let video = expect_line(&rx, "video/x-vp8 decoded in slave process");
    let audio = expect_line(&rx, "audio/x-vorbis decoded in slave process");
    assert_ne!(pid_in(&video), pid_in(&audio));
    // The master's children: the upstream slave and the two decoding slaves.
    let slaves = slaves_of(child.id());
    assert_eq!(slaves.len(), 3, "{slaves:?}");
    let mut keys = child.stdin.take().unwrap();
    keys.write_all(b"\x1b[C").unwrap();
    expect_line(&rx, "ipc-play: seek to");
    expect_line(&rx, "end of stream");
    assert!(child.wait().unwrap().success());
    // A seek of 5 s in a 3 s file ends it at once; the first second plays against the clock.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500), "played in {took:?}");
}

fn pid_in(line: &str) -> u32 {
    line.split("slave process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// Keys: space pauses and plays again, → seeks, q quits before the end.
#[test]
fn ipc_play_answers_keys() {
    let file = movie(10);
    let (mut child, rx) = ipc_play(file.path());
    let mut keys = child.stdin.take().unwrap();
    expect_line(&rx, "ipc-play: Playing");
    keys.write_all(b" ").unwrap();
    expect_line(&rx, "ipc-play: Paused");
    keys.write_all(b" ").unwrap();
    expect_line(&rx, "ipc-play: Playing");
    keys.write_all(b"\x1b[C").unwrap();
    let seek = expect_line(&rx, "ipc-play: seek to");
    assert!(seek.contains("rate 1"), "{seek}");
    keys.write_all(b"q").unwrap();
    assert!(child.wait().unwrap().success());
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        !rest.iter().any(|l| l.contains("end of stream")),
        "{rest:?}"
    );
}
