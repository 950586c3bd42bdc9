// SPDX-License-Identifier: MPL-2.0
//! Helpers for the multi-process tests: real slave processes (gst-ipc-slave), real pipelines,
//! and waits on conditions with generous deadlines instead of sleeps.
#![allow(dead_code)]

pub mod fake_peer;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstrsipcpipeline::launcher;

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // As in a C application: a SIGPIPE raised by the elements would kill the test.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        gst::init().unwrap();
        gstrsipcpipeline::plugin_register_static().unwrap();
    });
}

/// gst-launch-1.0 with our plugin (the library `cargo build` made, with the helper next to
/// it) and a registry of its own.
pub fn gst_launch() -> Command {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    assert!(
        target.join("libgstrsipcpipeline.so").exists(),
        "the plugin library is not built: run `cargo build` first (scripts/test does)"
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.env("GST_PLUGIN_PATH", target)
        .env("GST_REGISTRY", target.join("gst-launch-registry.bin"));
    cmd
}

/// A slave process and the master's end of its connection.
pub struct Slave {
    pub child: Child,
    /// The master's fds: (fdin, fdout), the same socket twice or two pipe ends.
    pub fds: (OwnedFd, Option<OwnedFd>),
    /// The master ends of the further connections of [`Slave::spawn_many`].
    pub more: Vec<OwnedFd>,
    pub dump: tempfile::NamedTempFile,
}

impl Slave {
    /// Spawns gst-ipc-slave on one end of a non-blocking socketpair.
    pub fn spawn(description: &str) -> Slave {
        Slave::launch(1, true, description)
    }

    /// Spawns gst-ipc-slave hosting an upstream slave (`--upstream`): `description` is the
    /// part before the rsipcupstreamsink that it adds.
    pub fn spawn_upstream(description: &str) -> Slave {
        Slave::launch(1, true, &format!("--upstream {description}"))
    }

    /// Spawns gst-ipc-slave on a socketpair without a dump (for very long streams).
    pub fn spawn_quiet(description: &str) -> Slave {
        Slave::launch(1, false, description)
    }

    /// Spawns gst-ipc-slave with `n` connections; `description` is the whole slave pipeline,
    /// with srcs named ipcsrc0 .. ipcsrc{n-1}. Attach each with [`Slave::attach_nth`].
    pub fn spawn_many(n: usize, description: &str) -> Slave {
        Slave::launch(n, true, description)
    }

    /// gst-ipc-slave on `n` socketpairs (its fds 3, 4, ...), writing a dump if asked.
    fn launch(n: usize, dump: bool, description: &str) -> Slave {
        let pairs: Vec<(OwnedFd, OwnedFd)> =
            (0..n).map(|_| launcher::socketpair().unwrap()).collect();
        let dump_file = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gst-ipc-slave"));
        for i in 0..n {
            cmd.args(["--fd", &(3 + i).to_string()]);
        }
        if dump {
            cmd.arg("--dump").arg(dump_file.path());
        }
        match description.strip_prefix("--upstream ") {
            Some(d) => cmd.args(["--upstream", d]),
            None => cmd.arg(description),
        };
        let theirs: Vec<&OwnedFd> = pairs.iter().map(|(_, t)| t).collect();
        let child = launcher::spawn_with_fds(&mut cmd, &theirs).unwrap();
        let mut ours = pairs.into_iter().map(|(o, _)| o);
        Slave {
            child,
            fds: (ours.next().unwrap(), None),
            more: ours.collect(),
            dump: dump_file,
        }
    }

    /// Connects `sink` to the slave's connection number `i` (0 is [`Slave::attach`]'s).
    pub fn attach_nth(&self, i: usize, sink: &gst::Element) {
        let fd = if i == 0 {
            self.fds.0.as_raw_fd()
        } else {
            self.more[i - 1].as_raw_fd()
        };
        sink.set_property("fdin", fd);
        sink.set_property("fdout", fd);
    }

    /// Spawns gst-ipc-slave connected by two pipes, one per direction.
    pub fn spawn_with_pipes(description: &str) -> Slave {
        let flags = rustix::pipe::PipeFlags::CLOEXEC;
        let (to_master_r, to_master_w) = rustix::pipe::pipe_with(flags).unwrap();
        let (to_slave_r, to_slave_w) = rustix::pipe::pipe_with(flags).unwrap();
        let dump = tempfile::NamedTempFile::new().unwrap();
        let child = launcher::spawn_with_fds(
            Command::new(env!("CARGO_BIN_EXE_gst-ipc-slave"))
                .args(["--fdin", "3", "--fdout", "4", "--dump"])
                .arg(dump.path())
                .arg(description),
            &[&to_slave_r, &to_master_w],
        )
        .unwrap();
        Slave {
            child,
            fds: (to_master_r, Some(to_slave_w)),
            more: Vec::new(),
            dump,
        }
    }

    pub fn attach(&self, sink: &gst::Element) {
        let fdin = self.fds.0.as_raw_fd();
        let fdout = self.fds.1.as_ref().map_or(fdin, |f| f.as_raw_fd());
        sink.set_property("fdin", fdin);
        sink.set_property("fdout", fdout);
    }

    /// The dump lines that start with `prefix` ("buffer", "event eos", "ipcsrc1 buffer"...).
    pub fn lines_with(&self, prefix: &str) -> Vec<String> {
        self.dump_lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.lines_with(prefix).len()
    }

    /// The lines the slave wrote for every buffer and event that crossed.
    pub fn dump_lines(&self) -> Vec<String> {
        self.all_lines()
            .into_iter()
            .filter(|l| !l.starts_with("pipeline "))
            .collect()
    }

    /// What the slave pipeline runs with: `playing base-time=N clock=TYPE` each time it
    /// reaches PLAYING, `latency N` each time its sinks are configured.
    pub fn pipeline_lines(&self) -> Vec<String> {
        self.all_lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("pipeline ").map(str::to_owned))
            .collect()
    }

    fn all_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dump.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Closes the master's end and waits for the slave to exit on its own.
    pub fn finish(self) -> std::process::ExitStatus {
        drop(self.fds);
        drop(self.more);
        wait_child(self.child)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// Waits for the child to exit, on a thread of its own so that the wait has a deadline.
pub fn wait_child(mut child: Child) -> std::process::ExitStatus {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(DEADLINE)
        .expect("slave did not exit")
        .unwrap()
}

/// A pipeline from a launch description.
pub fn pipeline(description: &str) -> gst::Pipeline {
    gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// Builds the master pipeline; its rsipcpipelinesink must be named `sink`.
pub fn master(description: &str, slave: &Slave) -> (gst::Pipeline, gst::Element) {
    let pipeline = pipeline(description);
    let sink = pipeline.by_name("sink").unwrap();
    slave.attach(&sink);
    (pipeline, sink)
}

/// Runs `description` (which has `{location}` where the file goes) to EOS, writing a file
/// with `suffix` made with Debian's plugins.
pub fn make_file(suffix: &str, description: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    let location = file.path().display().to_string();
    let p = pipeline(&description.replace("{location}", &location));
    p.set_state(gst::State::Playing).unwrap();
    wait_eos(&p);
    p.set_state(gst::State::Null).unwrap();
    file
}

/// Waits for the first message that `pred` accepts; panics on an unexpected ERROR.
pub fn wait_for(
    pipeline: &gst::Pipeline,
    within: Duration,
    mut pred: impl FnMut(&gst::Message) -> bool,
) -> Option<gst::Message> {
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + within;
    loop {
        // A pipeline that posts without end must not keep us here past the deadline.
        let left = deadline.checked_duration_since(Instant::now())?;
        let msg = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))?;
        if pred(&msg) {
            return Some(msg);
        }
        if let gst::MessageView::Error(e) = msg.view() {
            panic!(
                "unexpected error from {:?}: {} ({:?})",
                msg.src().map(|s| s.path_string()),
                e.error(),
                e.debug()
            );
        }
    }
}

pub fn wait_eos(pipeline: &gst::Pipeline) {
    wait_for(pipeline, DEADLINE, |m| m.type_() == gst::MessageType::Eos).expect("EOS");
}

#[track_caller]
pub fn wait_state(pipeline: &gst::Pipeline, state: gst::State) {
    // GStreamer's get_state answers FAILURE when it is woken by an intermediate commit (a
    // pipeline that lost its state in PLAYING commits PAUSED before it continues), although
    // nothing failed; asking again waits for the rest. A real failure stays.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (ret, current, _) =
            pipeline.state(gst::ClockTime::from_nseconds(left.as_nanos() as u64));
        // A live pipeline in PAUSED answers NO_PREROLL.
        let done = matches!(
            ret,
            Ok(gst::StateChangeSuccess::Success | gst::StateChangeSuccess::NoPreroll)
        );
        if (done && current == state) || Instant::now() >= deadline {
            assert!(done, "{ret:?} going to {state:?}");
            assert_eq!(current, state);
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What an ERROR message says.
pub struct ErrorInfo {
    pub error: gst::glib::Error,
    pub debug: Option<String>,
    pub details: Option<gst::Structure>,
}

/// The first ERROR posted by the element named `name`, skipping errors of other elements.
pub fn wait_error_from(pipeline: &gst::Pipeline, name: &str, within: Duration) -> ErrorInfo {
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + within;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no ERROR from {name} within {within:?}"));
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_nseconds(left.as_nanos() as u64),
                &[gst::MessageType::Error],
            )
            .unwrap_or_else(|| panic!("no ERROR from {name} within {within:?}"));
        if let gst::MessageView::Error(e) = msg.view()
            && msg.src().is_some_and(|s| s.name() == name)
        {
            return ErrorInfo {
                error: e.error(),
                debug: e.debug().map(|d| d.to_string()),
                details: e.details().map(|d| d.to_owned()),
            };
        }
    }
}

/// Asks for `state` and checks the answer GStreamer gives.
pub fn set_state(pipeline: &gst::Pipeline, state: gst::State, expected: gst::StateChangeSuccess) {
    assert_eq!(
        pipeline.set_state(state),
        Ok(expected),
        "going to {state:?}"
    );
}

/// Goes to NULL, which must succeed without waiting on anything, even with a dead peer.
pub fn null_at_once(pipeline: &gst::Pipeline, within: Duration) {
    let t = Instant::now();
    set_state(pipeline, gst::State::Null, gst::StateChangeSuccess::Success);
    assert!(t.elapsed() < within, "NULL took {:?}", t.elapsed());
}

/// The C plugin's teardown: NULL, `disconnect`, then the master's end of the connection is
/// closed and the slave exits on its own. Returns how it exited.
pub fn stop(pipeline: gst::Pipeline, slave: Slave) -> std::process::ExitStatus {
    set_state(
        &pipeline,
        gst::State::Null,
        gst::StateChangeSuccess::Success,
    );
    disconnect(&pipeline);
    drop(pipeline);
    slave.finish()
}

/// The last step of the C recipe after a lost slave: a new slave on the stopped master's
/// sink plays the whole stream, from the top, to EOS. Returns the buffers it received.
pub fn new_slave_plays_it_all(pipeline: gst::Pipeline, sink: gst::Element) -> usize {
    let second = Slave::spawn("fakesink sync=false");
    second.attach(&sink);
    drop(sink);
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_eos(&pipeline);
    let buffers = second.count("buffer");
    assert!(stop(pipeline, second).success());
    buffers
}

/// The C plugin's teardown recipe: stop every sink talking before its fds are closed.
pub fn disconnect(pipeline: &gst::Pipeline) {
    for e in pipeline.iterate_recurse().into_iter().flatten() {
        if e.factory().is_some_and(|f| f.name() == "rsipcpipelinesink") {
            e.emit_by_name::<()>("disconnect", &[]);
        }
    }
}

/// Every message until EOS (or an ERROR, which is returned too), with a deadline.
pub fn messages_until_eos(pipeline: &gst::Pipeline) -> Vec<gst::Message> {
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("EOS within the deadline");
        let msg = bus
            .timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
            .expect("EOS within the deadline");
        let end = matches!(msg.type_(), gst::MessageType::Eos | gst::MessageType::Error);
        out.push(msg);
        if end {
            return out;
        }
    }
}

/// Waits until `cond` holds, checking it every few milliseconds, up to the deadline.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Counts the buffers that go through `pad`.
pub fn count_buffers(pad: &gst::Pad) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    count
}

// --- slaves that the sink spawns (slave-pipeline) ----------------------------------------

/// The slave processes (the helper) whose parent is `parent`, zombies included.
pub fn slaves_of(parent: u32) -> Vec<(u32, char)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            (ppid == parent && head.contains("(gst-ipc-slave")).then_some((pid, state))
        })
        .collect()
}

/// Waits until the slave process `pid` is gone, reaped (not a zombie).
pub fn reaped(pid: u32) {
    let me = std::process::id();
    wait_until("the slave process reaped", || {
        !slaves_of(me).iter().any(|(p, _)| *p == pid)
    });
}

pub fn slave_pid(sink: &gst::Element) -> u32 {
    let pid = sink.property::<i32>("slave-pid");
    assert!(pid > 0);
    pid as u32
}

pub fn spawned_master(description: &str, slave: &str) -> (gst::Pipeline, gst::Element) {
    let pipeline = pipeline(&format!("{description} ! rsipcpipelinesink name=sink"));
    let sink = pipeline.by_name("sink").unwrap();
    sink.set_property("slave-pipeline", slave);
    (pipeline, sink)
}

pub fn kill(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

/// Waits for a new slave process, other than `old`, to take buffers (`sent` counts those
/// given to the sink), and returns its pid.
pub fn restarted(sink: &gst::Element, old: u32, sent: &std::sync::atomic::AtomicUsize) -> u32 {
    use std::sync::atomic::Ordering;
    let bus = sink
        .parent()
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
        .bus()
        .unwrap();
    wait_until("a new slave process", || {
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = m.view()
        {
            panic!("an error instead of a restart: {}", e.error());
        }
        let pid = sink.property::<i32>("slave-pid");
        pid > 0 && pid as u32 != old
    });
    // The restart happens on the streaming thread: buffers after it mean it is done.
    let before = sent.load(Ordering::SeqCst);
    wait_until("buffers after the restart", || {
        sent.load(Ordering::SeqCst) >= before + 3
    });
    sink.property::<i32>("slave-pid") as u32
}
