// SPDX-License-Identifier: MPL-2.0
//! Starting slave processes with inherited fds: the helper binary for tests, the demo and
//! applications that do not want to fork by hand.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// The first fd number the child gets: 0-2 stay stdio.
pub const FIRST_CHILD_FD: i32 = 3;

/// Spawns `cmd` with `fds` as its fds 3, 4, ... (in order) and no other inherited fd of ours.
/// The fds are kept open in the caller: drop them after the spawn, so that the slave's death
/// closes the connection.
pub fn spawn_with_fds(cmd: &mut Command, fds: &[&OwnedFd]) -> io::Result<Child> {
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // Allocated here: after fork, only async-signal-safe calls, so no allocation.
    let mut high = vec![-1; raw.len()];
    unsafe {
        cmd.pre_exec(move || {
            // Move every source out of the target range first, so that mapping one fd cannot
            // overwrite another that is still to be mapped.
            for (h, &fd) in high.iter_mut().zip(&raw) {
                *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64);
                if *h < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, &h) in high.iter().enumerate() {
                // dup2 clears FD_CLOEXEC on the target: exactly these fds are inherited.
                if libc::dup2(h, FIRST_CHILD_FD + i as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Whatever a library of the master opened without close-on-exec stays behind
            // too: the slave gets its connections and stdio, nothing else.
            let first_closed = FIRST_CHILD_FD as libc::c_uint + raw.len() as libc::c_uint;
            if libc::syscall(libc::SYS_close_range, first_closed, libc::c_uint::MAX, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A connected pair of unix stream sockets, non-blocking and close-on-exec, as the C examples
/// and applications of the C plugin create them.
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// Where the helper binary is: where `GST_IPC_SLAVE` says, else in `dir`, else next to the
/// running executable or one directory up (cargo puts test binaries in `deps/`), else on the
/// PATH.
pub fn find_helper(dir: Option<&std::path::Path>) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("GST_IPC_SLAVE") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    dir.into_iter()
        .chain(exe.ancestors().skip(1).take(2))
        .map(|d| d.join(HELPER))
        .find(|p| p.exists())
        .unwrap_or_else(|| HELPER.into())
}

/// [`find_helper`] for programs: no plugin directory to look in.
pub fn helper_path() -> std::path::PathBuf {
    find_helper(None)
}

const HELPER: &str = "gst-ipc-slave";
