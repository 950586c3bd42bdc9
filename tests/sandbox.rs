// SPDX-License-Identifier: MPL-2.0
//! The sandbox of spawned slaves: a slave element that tries the network, a file outside its
//! allow-list, or a program is refused, and the refusal reaches the master as the element's
//! ERROR; the same element without a sandbox succeeds, so the refusals are the sandbox's;
//! decoding still works in the strict sandbox; a missing kernel feature is a WARNING.
//!
//! The slave element is `rsipcsandboxprobe` from the test plugin in `tests/probe`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gst::prelude::*;

/// The directory with the plugin libraries and the helper that `cargo build` made.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        target.join("libgstrsipcsandboxprobe.so").exists(),
        "the probe plugin is not built: run `cargo build` first (scripts/test does)"
    );
    target
}

/// A helper that also loads the probe plugin: the real one, started by a script that sets the
/// plugin path after running `before` (shell, may be empty).
fn probing_helper(dir: &Path, before: &str) -> PathBuf {
    let target = target_dir();
    let script = dir.join("probing-helper");
    let body = format!(
        "#!/bin/sh\n{before}\nGST_PLUGIN_PATH='{t}' GST_REGISTRY='{t}/gst-launch-registry.bin' \
         exec '{t}/gst-ipc-slave' \"$@\"\n",
        t = target.display()
    );
    std::fs::write(&script, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

struct Outcome {
    /// What the probe did, or the ERROR that refused it.
    result: Result<(), String>,
    /// The WARNINGs the master got.
    warnings: Vec<String>,
}

/// Runs a slave `rsipcsandboxprobe attempt=<attempt>` in `level`, and tells what happened.
fn attempt(helper: &Path, level: &str, allow: &str, attempt: &str) -> Outcome {
    let (pipeline, sink) = spawned_master(
        "audiotestsrc num-buffers=3",
        &format!("rsipcsandboxprobe attempt={attempt} ! fakesink"),
    );
    sink.set_property("slave-helper", helper.display().to_string());
    sink.set_property_from_str("sandbox", level);
    sink.set_property("sandbox-allow", allow);
    // A refusal fails the slave's way to PAUSED, and so ours.
    let _ = pipeline.set_state(gst::State::Playing);
    let pid = slave_pid(&sink);
    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    let result = loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(DEADLINE.as_secs()))
            .unwrap_or_else(|| panic!("{level} {attempt}: no outcome"));
        match msg.view() {
            gst::MessageView::Element(e)
                if e.structure()
                    .is_some_and(|s| s.name() == "rsipc-sandbox-probe") =>
            {
                break Ok(());
            }
            gst::MessageView::Error(e) => {
                let origin = e
                    .details()
                    .and_then(|d| d.get::<String>("ipc-origin").ok())
                    .unwrap_or_default();
                // The master's source may report first that its data was refused.
                if origin.ends_with("/GstRsIpcSandboxProbe:rsipcsandboxprobe0") {
                    break Err(e.error().message().to_string());
                }
            }
            gst::MessageView::Warning(w) => warnings.push(w.error().message().to_string()),
            _ => {}
        }
    };
    null_at_once(&pipeline, std::time::Duration::from_secs(1));
    drop(sink);
    reaped(pid);
    Outcome { result, warnings }
}

fn refused(o: &Outcome, reason: &str, what: &str) {
    match &o.result {
        Err(text) => assert!(text.contains(reason), "{what}: {text}"),
        Ok(()) => panic!("{what} was allowed"),
    }
}

struct Targets {
    dir: tempfile::TempDir,
    listener: std::net::TcpListener,
}

impl Targets {
    fn new() -> Targets {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), b"not for the slave").unwrap();
        std::fs::create_dir(dir.path().join("allowed")).unwrap();
        std::fs::write(dir.path().join("allowed/media"), b"for the slave").unwrap();
        Targets {
            dir,
            listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn connect(&self) -> String {
        format!("connect:{}", self.listener.local_addr().unwrap())
    }
}

/// Every level refuses the network, files outside the allow-list (read and write), starting a
/// program and replacing the slave by one; each refusal is the element's ERROR with the reason.
#[test]
fn a_sandboxed_slave_is_refused_the_network_other_files_and_programs() {
    init();
    let t = Targets::new();
    let helper = probing_helper(t.dir.path(), "");
    let allow = t.path("allowed");
    for level in ["default", "strict"] {
        let run = |what: &str| attempt(&helper, level, &allow, what);
        refused(
            &run(&t.connect()),
            "Operation not permitted",
            "a TCP connection",
        );
        refused(
            &run(&format!("read:{}", t.path("secret"))),
            "Permission denied",
            "read",
        );
        refused(
            &run(&format!("write:{}", t.path("new"))),
            "Permission denied",
            "write",
        );
        refused(
            &run("spawn:/bin/true"),
            "Operation not permitted",
            "a program",
        );
        refused(
            &run("execve:/bin/true"),
            "Operation not permitted",
            "execve",
        );
    }
}

/// The same probe without a sandbox does all of it: the refusals above are the sandbox's.
#[test]
fn without_a_sandbox_the_probe_does_it_all() {
    init();
    let t = Targets::new();
    let helper = probing_helper(t.dir.path(), "");
    for what in [
        t.connect(),
        format!("read:{}", t.path("secret")),
        format!("write:{}", t.path("new")),
        "spawn:/bin/true".to_string(),
    ] {
        let o = attempt(&helper, "none", "", &what);
        assert_eq!(o.result, Ok(()), "{what}");
    }
    assert_eq!(
        std::fs::read(t.path("new")).unwrap(),
        b"written from the slave"
    );
}

/// `sandbox-allow` opens what it names, for reading and writing, and nothing next to it.
#[test]
fn the_allow_list_opens_exactly_what_it_names() {
    init();
    let t = Targets::new();
    let helper = probing_helper(t.dir.path(), "");
    for level in ["default", "strict"] {
        let allow = format!("{},{}", t.path("allowed"), t.path("secret"));
        let run = |what: String| attempt(&helper, level, &allow, &what).result;
        assert_eq!(run(format!("read:{}", t.path("allowed/media"))), Ok(()));
        assert_eq!(run(format!("read:{}", t.path("secret"))), Ok(()));
        assert_eq!(run(format!("write:{}", t.path("allowed/out"))), Ok(()));
        let o = attempt(
            &helper,
            level,
            &t.path("allowed"),
            &format!("read:{}", t.path("secret")),
        );
        refused(
            &o,
            "Permission denied",
            "a file next to the allowed directory",
        );
    }
}

/// Where the kernel refuses a part of the sandbox (here: no user namespaces left), the master
/// gets a WARNING that says so, and the rest still holds.
#[test]
fn a_missing_kernel_feature_is_a_warning_not_silence() {
    init();
    let t = Targets::new();
    // The helper starts in a user namespace of its own in which no further one may be made.
    let helper = probing_helper(
        t.dir.path(),
        "[ -z \"$RSIPC_NO_USERNS\" ] && RSIPC_NO_USERNS=1 exec unshare --user --map-root-user \
         sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"' \"$0\" \"$@\"",
    );
    let o = attempt(&helper, "default", "", &t.connect());
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("sandbox is weaker than asked: no new user and network namespaces")),
        "{:?}",
        o.warnings
    );
    refused(&o, "Operation not permitted", "a TCP connection");
}

/// A generated VP8 file, demuxed in the master and decoded in a strict sandbox, gives the
/// frames an unsplit pipeline gives. The slave runs under seccomp with no new privileges, in
/// a network namespace of its own, and holds none of the master's other fds.
#[test]
fn decoding_in_a_strict_sandbox_gives_the_unsplit_frames() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("movie.webm");
    let encode = pipeline(&format!(
        "videotestsrc num-buffers=40 pattern=ball ! video/x-raw,width=160,height=120 ! \
         vp8enc ! webmmux ! filesink location={}",
        file.display()
    ));
    encode.set_state(gst::State::Playing).unwrap();
    wait_eos(&encode);
    encode.set_state(gst::State::Null).unwrap();
    let decode = "decodebin ! videoconvert ! video/x-raw,format=RGB";

    let unsplit = dir.path().join("unsplit.rgb");
    let p = pipeline(&format!(
        "filesrc location={} ! matroskademux ! {decode} ! filesink location={}",
        file.display(),
        unsplit.display()
    ));
    p.set_state(gst::State::Playing).unwrap();
    wait_eos(&p);
    p.set_state(gst::State::Null).unwrap();

    // A file of ours that a careless spawn would hand down.
    let stray = tempfile::NamedTempFile::new().unwrap();
    let stray_fd = unsafe {
        libc::open(
            std::ffi::CString::new(stray.path().to_str().unwrap())
                .unwrap()
                .as_ptr(),
            libc::O_RDONLY,
        )
    };
    assert!(stray_fd >= 0);

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let (pipeline, sink) = spawned_master(
        &format!("filesrc location={} ! matroskademux", file.display()),
        &format!("{decode} ! filesink location={}/split.rgb", out.display()),
    );
    sink.set_property_from_str("sandbox", "strict");
    sink.set_property("sandbox-allow", out.display().to_string());
    pipeline.set_state(gst::State::Paused).unwrap();
    wait_state(&pipeline, gst::State::Paused);
    let pid = slave_pid(&sink);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    assert!(status.contains("\nNoNewPrivs:\t1\n"), "{status}");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).unwrap();
    assert_ne!(ns(&pid.to_string()), ns("self"));
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert_ne!(target, stray.path(), "the slave holds a file of the master");
    }
    unsafe { libc::close(stray_fd) };

    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    null_at_once(&pipeline, std::time::Duration::from_secs(1));
    drop(sink);
    reaped(pid);
    let expected = std::fs::read(&unsplit).unwrap();
    assert_eq!(expected.len(), 40 * 160 * 120 * 3);
    assert!(std::fs::read(out.join("split.rgb")).unwrap() == expected);
}
