// SPDX-License-Identifier: MPL-2.0
//! A slave process that the sink starts by itself from a launch description: the helper
//! binary on one end of a socketpair, its output kept apart and tagged, and its end told
//! (exit status or signal) and reaped.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::launcher;
use crate::sandbox::Policy;

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
    pub fn spawn(
        helper: &Path,
        description: &str,
        sandbox: &Policy,
        tag: &str,
    ) -> std::io::Result<SpawnedSlave> {
        let (ours, theirs) = launcher::socketpair()?;
        let mut cmd = Command::new(helper);
        cmd.arg("--fd")
            .arg(launcher::FIRST_CHILD_FD.to_string())
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
