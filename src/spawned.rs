// SPDX-License-Identifier: MPL-2.0
//! A slave process that a master element starts by itself from a launch description: the
//! helper binary on one end of a socketpair, its output kept apart and tagged, and its end
//! told (exit status or signal) and reaped; and the properties that say how
//! ([`SlaveProcess`]).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::launcher;
use crate::link::LinkSlot;
use crate::sandbox::{self, Policy};
use crate::settings::Settings;

pub struct SpawnedSlave {
    /// Ours to reap; `None` once reaped.
    child: Mutex<Option<Child>>,
    /// How it ended, once known.
    status: Mutex<Option<ExitStatus>>,
    pub pid: u32,
    /// The master's end of the connection.
    socket: OwnedFd,
}

impl SpawnedSlave {
    /// Starts `helper` hosting `description` in `sandbox`, connected to us. Each line it
    /// writes goes to our stderr prefixed with `tag` and its pid.
    /// `upstream`: the description is the part upstream of the master (it ends in our
    /// sink), not the part downstream of it.
    pub fn spawn(
        helper: &Path,
        description: &str,
        upstream: bool,
        sandbox: &Policy,
        tag: &str,
    ) -> std::io::Result<SpawnedSlave> {
        let (ours, theirs) = launcher::socketpair()?;
        let mut cmd = Command::new(helper);
        cmd.arg("--fd")
            .arg(launcher::FIRST_CHILD_FD.to_string())
            .args(upstream.then_some("--upstream"))
            .args(sandbox.to_args())
            .arg(description)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = launcher::spawn_with_fds(&mut cmd, &[&theirs])?;
        let pid = child.id();
        let tag = format!("[{tag} slave {pid}]");
        if let Some(out) = child.stdout.take() {
            forward_lines(out, tag.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(err, tag);
        }
        Ok(SpawnedSlave {
            child: Mutex::new(Some(child)),
            status: Mutex::new(None),
            pid,
            socket: ours,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// How the process ended, waiting for it at most `within`; `None` while it runs.
    pub fn exit_status(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = *self.status.lock().unwrap() {
                return Some(s);
            }
            {
                let mut child = self.child.lock().unwrap();
                if let Some(s) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    *self.status.lock().unwrap() = Some(s);
                    *child = None;
                    return Some(s);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            // A process that closed its socket is about to exit: poll briefly.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Ends the process now (it hangs, or broke the protocol) and tells how it ended.
    pub fn kill(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap();
        let c = child.as_mut()?;
        let _ = c.kill();
        let status = c.wait().ok()?;
        *child = None;
        *self.status.lock().unwrap() = Some(status);
        Some(status)
    }
}

/// How long a slave may take to exit once its master let go of it, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Whoever lets go of the slave last (the sink going to NULL, or a thread that was reading
/// its exit status) closes our end, so that it exits on its own, and has it reaped on a
/// thread of its own, killed after [`EXIT_GRACE`]: never a zombie, never a wait.
impl Drop for SpawnedSlave {
    fn drop(&mut self) {
        let Some(mut child) = self.child.get_mut().unwrap().take() else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("rsipc-reaper".into())
            .spawn(move || {
                let deadline = Instant::now() + EXIT_GRACE;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = child.kill();
                let _ = child.wait();
            });
    }
}

/// "exited with status 3", "killed by signal 9 (SIGKILL)".
pub fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGPIPE => " (SIGPIPE)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGSYS => " (SIGSYS)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        _ => format!("ended ({status})"),
    }
}

fn forward_lines(from: impl Read + Send + 'static, tag: String) {
    let _ = std::thread::Builder::new()
        .name("rsipc-slave-log".into())
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                match line {
                    Ok(l) => eprintln!("{tag} {l}"),
                    Err(_) => break,
                }
            }
        });
}

/// The helper binary: the `slave-helper` property if set, else what
/// [`launcher::find_helper`] finds, looking next to the plugin file first.
pub fn helper(property: Option<&str>, plugin_file: Option<PathBuf>) -> PathBuf {
    match property.filter(|p| !p.is_empty()) {
        Some(p) => p.into(),
        None => launcher::find_helper(plugin_file.as_deref().and_then(Path::parent)),
    }
}

/// What a master element that can start its own slave keeps: the properties that say how
/// (`slave-pipeline`, `slave-helper`, `sandbox`, `sandbox-allow`, `sandbox-memory-limit`, and
/// `slave-pid` to read), and the process while it runs.
#[derive(Default)]
pub struct SlaveProcess {
    settings: Mutex<SpawnSettings>,
    current: Mutex<Option<Arc<SpawnedSlave>>>,
}

#[derive(Default)]
struct SpawnSettings {
    description: Option<String>,
    helper: Option<String>,
    sandbox: Policy,
}

impl SlaveProcess {
    /// The properties; `part` says which part of the pipeline the description is.
    pub fn properties(part: &str) -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecString::builder("slave-pipeline")
                .nick("Slave pipeline")
                .blurb(&format!(
                    "Launch description of the slave pipeline ({part}), which the element \
                     then runs in a process of its own (the gst-ipc-slave helper), started \
                     when it leaves NULL and reaped when it returns there; fdin and fdout are \
                     then the element's own. Set in NULL"
                ))
                .build(),
            glib::ParamSpecString::builder("slave-helper")
                .nick("Slave helper")
                .blurb(
                    "Path of the helper that runs slave-pipeline; by default $GST_IPC_SLAVE, \
                     else gst-ipc-slave next to the plugin file, else on the PATH",
                )
                .build(),
            glib::ParamSpecEnum::builder::<sandbox::Level>("sandbox")
                .nick("Sandbox")
                .blurb(
                    "How tightly the slave process of slave-pipeline is locked in \
                     (see the README for exactly what each level allows)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("sandbox-allow")
                .nick("Sandbox allow-list")
                .blurb(
                    "Comma-separated files, directories and device nodes the sandboxed \
                     slave may read and write; a * in the last part matches any run of \
                     characters (/dev/dri/renderD*)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("sandbox-memory-limit")
                .nick("Sandbox memory limit")
                .blurb(
                    "Bytes of private memory the sandboxed slave may use (RLIMIT_DATA); \
                     0 for no limit",
                )
                .default_value(sandbox::DEFAULT_MEMORY_LIMIT)
                .mutable_ready()
                .build(),
            glib::ParamSpecInt::builder("slave-pid")
                .nick("Slave pid")
                .blurb("Process id of the slave process started for slave-pipeline, or -1")
                .minimum(-1)
                .default_value(-1)
                .read_only()
                .build(),
        ]
    }

    /// Sets one of [`SlaveProcess::properties`]; false for any other.
    pub fn set_property(&self, name: &str, value: &glib::Value) -> bool {
        let mut s = self.settings.lock().unwrap();
        match name {
            "slave-pipeline" => s.description = value.get().unwrap(),
            "slave-helper" => s.helper = value.get().unwrap(),
            "sandbox" => s.sandbox.level = value.get().unwrap(),
            "sandbox-allow" => {
                let list: Option<String> = value.get().unwrap();
                s.sandbox.allow = Policy::parse_allow(list.as_deref().unwrap_or(""));
            }
            "sandbox-memory-limit" => s.sandbox.memory_limit = value.get().unwrap(),
            _ => return false,
        }
        true
    }

    /// One of [`SlaveProcess::properties`]; `None` for any other.
    pub fn property(&self, name: &str) -> Option<glib::Value> {
        let s = self.settings.lock().unwrap();
        Some(match name {
            "slave-pipeline" => s.description.to_value(),
            "slave-helper" => s.helper.to_value(),
            "sandbox" => s.sandbox.level.to_value(),
            "sandbox-allow" => {
                let list: Vec<String> = s
                    .sandbox
                    .allow
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                (!list.is_empty()).then(|| list.join(",")).to_value()
            }
            "sandbox-memory-limit" => s.sandbox.memory_limit.to_value(),
            "slave-pid" => self.current().map_or(-1, |c| c.pid as i32).to_value(),
            _ => return None,
        })
    }

    /// Starts the slave process for `element`, when `slave-pipeline` is set: the fd of our end
    /// of its connection, or `None` when there is nothing to start.
    pub fn start(
        &self,
        element: &gst::Element,
        upstream: bool,
    ) -> Result<Option<RawFd>, gst::ErrorMessage> {
        let (description, helper_path, sandbox) = {
            let s = self.settings.lock().unwrap();
            let Some(d) = s.description.clone().filter(|d| !d.trim().is_empty()) else {
                return Ok(None);
            };
            (d, s.helper.clone(), s.sandbox.clone())
        };
        let plugin_file = element
            .factory()
            .and_then(|f| f.plugin())
            .and_then(|p| p.filename());
        let helper = helper(helper_path.as_deref(), plugin_file);
        let slave = SpawnedSlave::spawn(&helper, &description, upstream, &sandbox, &element.name())
            .map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::OpenReadWrite,
                    (
                        "Could not start the slave process {}: {e}",
                        helper.display()
                    )
                )
            })?;
        gst::info!(
            gst::CAT_DEFAULT,
            obj = element,
            "slave process {} runs {description:?}",
            slave.pid
        );
        let fd = slave.fd();
        *self.current.lock().unwrap() = Some(Arc::new(slave));
        Ok(Some(fd))
    }

    /// The process we started, while we hold it.
    pub fn current(&self) -> Option<Arc<SpawnedSlave>> {
        self.current.lock().unwrap().clone()
    }

    /// Lets go of the process we started, if any: `link` on its socket goes down first (the
    /// socket closes with the process), and the fds in `settings` are forgotten. It ends on
    /// its own once its connection is gone, and is reaped by whoever lets go of it last (we,
    /// or a thread reading its exit status).
    pub fn release(&self, link: &LinkSlot, settings: &Mutex<Settings>) {
        let Some(_slave) = self.current.lock().unwrap().take() else {
            return;
        };
        link.disconnect();
        let mut s = settings.lock().unwrap();
        s.fdin = -1;
        s.fdout = -1;
    }

    /// How the process we started ended, if it did (it does at once after its socket
    /// closed): "the slave process 123 exited with status 1".
    pub fn ending(&self) -> Option<String> {
        let slave = self.current()?;
        let status = slave.exit_status(Duration::from_millis(500))?;
        Some(format!(
            "the slave process {} {}",
            slave.pid,
            describe_exit(status)
        ))
    }
}
