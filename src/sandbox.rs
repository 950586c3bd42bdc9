// SPDX-License-Identifier: MPL-2.0
//! The sandbox a spawned slave process locks itself into, in two steps: [`enter`] while the
//! process still has one thread (namespaces, resource limits, no new privileges), then
//! [`lock_down`] once GStreamer, the registry and the slave pipeline's elements are loaded
//! (Landlock, then seccomp). What the kernel lacks is reported as a [`Degraded`] note: the
//! `default` level carries on with a warning, `strict` refuses to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gst::glib;

/// How tightly a spawned slave is sandboxed.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsIpcPipelineSandbox")]
pub enum Level {
    #[enum_value(
        name = "No sandbox: the slave can do what the master can",
        nick = "none"
    )]
    None,
    #[default]
    #[enum_value(
        name = "No network, no programs, no new processes, files read-only in system \
                directories and read-write in sandbox-allow; unix sockets such as display \
                and sound servers stay reachable",
        nick = "default"
    )]
    Default,
    #[enum_value(
        name = "As default, but no sockets at all, and only plugin and library directories \
                and sandbox-allow readable; refuses to run without Landlock and seccomp",
        nick = "strict"
    )]
    Strict,
}

impl Level {
    pub fn nick(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Default => "default",
            Level::Strict => "strict",
        }
    }

    pub fn from_nick(s: &str) -> Option<Level> {
        [Level::None, Level::Default, Level::Strict]
            .into_iter()
            .find(|l| l.nick() == s)
    }
}

/// A spawned slave may use this much private memory (`RLIMIT_DATA`) unless told otherwise.
pub const DEFAULT_MEMORY_LIMIT: u64 = 2 << 30;
/// Open fds a sandboxed slave may hold: far above what a pipeline and a full window of fd
/// memory need, far below what would hurt the machine.
const MAX_FDS: u64 = 4096;

/// What the helper is told on its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    /// Files, directories and device nodes the slave may read and write; a `*` in the last
    /// component matches any run of characters (`/dev/dri/renderD*`).
    pub allow: Vec<PathBuf>,
    /// Bytes of private memory; 0 for no limit.
    pub memory_limit: u64,
}

/// The sink's defaults: the default level, the default memory limit, nothing allowed.
impl Default for Policy {
    fn default() -> Self {
        Policy {
            level: Level::default(),
            allow: Vec::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl Policy {
    /// The helper's arguments that carry this policy.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--sandbox".to_string(), self.level.nick().to_string()];
        if self.level == Level::None {
            return args;
        }
        for p in &self.allow {
            args.push("--allow".into());
            args.push(p.display().to_string());
        }
        args.push("--memory-limit".into());
        args.push(self.memory_limit.to_string());
        args
    }

    /// Paths of a `sandbox-allow` property: separated by commas, blanks around them ignored.
    pub fn parse_allow(list: &str) -> Vec<PathBuf> {
        list.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    }
}

/// Something the sandbox could not do on this kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded(pub String);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot set {what}: {source}")]
    Limit {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot forbid new privileges: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] seccompiler::Error),
    #[error("seccomp filter: {0}")]
    SeccompFilter(#[from] seccompiler::BackendError),
    #[error("the strict sandbox cannot be enforced here: {0}")]
    StrictUnavailable(String),
}

/// The first step, before any thread exists (a new user namespace needs a single thread):
/// new user, network and IPC namespaces where the kernel allows them (strict adds a mount
/// namespace), resource limits, no new privileges.
pub fn enter(policy: &Policy) -> Result<Vec<Degraded>, SandboxError> {
    let mut notes = Vec::new();
    if policy.level == Level::None {
        return Ok(notes);
    }
    use rustix::process::Resource;
    use rustix::thread::UnshareFlags;
    let mut flags = UnshareFlags::NEWUSER | UnshareFlags::NEWNET | UnshareFlags::NEWIPC;
    if policy.level == Level::Strict {
        flags |= UnshareFlags::NEWNS;
    }
    // Our user id stays unmapped in the new namespace: its capabilities there then apply to
    // no file at all, while the kernel still checks file access against our real ids.
    // SAFETY: no FILES flag, so every fd stays valid in every thread (there is one anyway).
    if let Err(e) = unsafe { rustix::thread::unshare_unsafe(flags) } {
        notes.push(Degraded(format!(
            "no new user and network namespaces ({e}); the network is still refused by seccomp"
        )));
    }
    set_limit(Resource::Nofile, MAX_FDS, "the open file limit")?;
    set_limit(Resource::Core, 0, "the core dump limit")?;
    if policy.memory_limit > 0 {
        set_limit(Resource::Data, policy.memory_limit, "the memory limit")?;
    }
    rustix::thread::set_no_new_privs(true).map_err(|e| SandboxError::NoNewPrivs(e.into()))?;
    Ok(notes)
}

/// Lowers `resource` to `max`, never raising a limit we were given.
fn set_limit(
    resource: rustix::process::Resource,
    max: u64,
    what: &'static str,
) -> Result<(), SandboxError> {
    let given = rustix::process::getrlimit(resource);
    let max = given.maximum.map_or(max, |m| m.min(max));
    let lim = rustix::process::Rlimit {
        current: Some(given.current.map_or(max, |c| c.min(max))),
        maximum: Some(max),
    };
    rustix::process::setrlimit(resource, lim).map_err(|e| SandboxError::Limit {
        what,
        source: e.into(),
    })
}

/// The second step, once every plugin the pipeline names is loaded and before the slave
/// starts any thread of its own: Landlock (this thread and those it starts later), then
/// seccomp (every thread). `plugin_dirs` stay readable, so that decodebin can still load
/// the decoder it picks.
pub fn lock_down(policy: &Policy, plugin_dirs: &[PathBuf]) -> Result<Vec<Degraded>, SandboxError> {
    let mut notes = Vec::new();
    if policy.level == Level::None {
        return Ok(notes);
    }
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        notes.push(Degraded(format!(
            "{threads} threads exist already; Landlock restricts only the first and the \
             threads it starts"
        )));
    }
    notes.extend(landlock_rules(policy, plugin_dirs)?);
    match seccomp_filters(policy.level) {
        Err(e) if policy.level == Level::Default => notes.push(Degraded(format!(
            "seccomp is not available here ({e}): network, programs and new processes are \
             not refused"
        ))),
        r => r?,
    }
    if policy.level == Level::Strict
        && let Some(Degraded(why)) = notes.first()
    {
        return Err(SandboxError::StrictUnavailable(why.clone()));
    }
    Ok(notes)
}

/// Read-only for every level: what loading a plugin and its libraries takes.
const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
];

/// Read-only for `default` too: data and configuration that elements commonly read (fonts,
/// locales, sound and GPU driver configuration, the CPU topology).
const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/opt",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/fonts",
    "/etc/localtime",
    "/etc/alsa",
    "/etc/pulse",
    "/etc/drirc",
    "/etc/glvnd",
    "/etc/vulkan",
    "/etc/OpenCL",
    "/etc/machine-id",
    "/sys/devices/system/cpu",
    "/run/udev",
];

fn landlock_rules(policy: &Policy, plugin_dirs: &[PathBuf]) -> Result<Vec<Degraded>, SandboxError> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    let mut read_only: Vec<PathBuf> = LIBRARY_DIRS.iter().map(PathBuf::from).collect();
    read_only.extend(plugin_dirs.iter().cloned());
    for var in [
        "GST_PLUGIN_PATH",
        "GST_PLUGIN_SYSTEM_PATH",
        "LD_LIBRARY_PATH",
    ] {
        if let Some(v) = std::env::var_os(var) {
            read_only.extend(std::env::split_paths(&v));
        }
    }
    if policy.level == Level::Default {
        read_only.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
    }
    let allowed: Vec<PathBuf> = policy.allow.iter().flat_map(|p| expand(p)).collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(&allowed, AccessFs::from_all(abi)))?
        .restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => vec![],
        RulesetStatus::PartiallyEnforced => vec![Degraded(
            "Landlock is older than version 6 here: some file, network or signal restrictions \
             are not enforced"
                .into(),
        )],
        _ => vec![Degraded(
            "Landlock is not available here: the filesystem is not restricted".into(),
        )],
    })
}

/// `/dev/dri/renderD*` → every matching path; any other path as it is.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return vec![pattern.into()];
    };
    let name = name.to_string_lossy();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.into()];
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .filter_map(|e| {
            let n = e.ok()?.file_name();
            let n = n.to_string_lossy();
            (n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix))
                .then(|| dir.join(&*n))
        })
        .collect()
}

/// Two filters, as one filter has one answer: `clone3` says "not implemented", so that the C
/// library falls back to `clone`, whose flags a filter can read; everything else forbidden
/// says "not permitted", so that the element that tried reports it.
fn seccomp_filters(level: Level) -> Result<(), SandboxError> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
        SeccompFilter, SeccompRule,
    };
    let arch = std::env::consts::ARCH.try_into()?;
    let always = || Vec::<SeccompRule>::new();

    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, always());
    let not_implemented = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;

    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_mknod,
        libc::SYS_mknodat,
    ] {
        denied.insert(nr, always());
    }
    // A new process, not a new thread.
    denied.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            Len::Qword,
            Op::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )?])?],
    );
    match level {
        Level::Strict => {
            denied.insert(libc::SYS_socket, always());
            denied.insert(libc::SYS_connect, always());
        }
        // Only unix sockets can be made, so only they can be connected.
        _ => {
            denied.insert(
                libc::SYS_socket,
                vec![SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    Len::Dword,
                    Op::Ne,
                    libc::AF_UNIX as u64,
                )?])?],
            );
        }
    }
    let not_permitted = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    for filter in [not_implemented, not_permitted] {
        let program: BpfProgram = filter.try_into()?;
        seccompiler::apply_filter_all_threads(&program)?;
    }
    Ok(())
}

/// The directories the registry loads plugins from, so that they stay readable.
pub fn plugin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = gst::Registry::get()
        .plugins()
        .into_iter()
        .filter_map(|p| p.filename()?.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_arguments_name_every_setting() {
        let p = Policy {
            level: Level::Strict,
            allow: Policy::parse_allow(" /dev/dri/renderD*, /srv/media ,,"),
            memory_limit: 1 << 20,
        };
        assert_eq!(
            p.to_args(),
            [
                "--sandbox",
                "strict",
                "--allow",
                "/dev/dri/renderD*",
                "--allow",
                "/srv/media",
                "--memory-limit",
                "1048576"
            ]
        );
        assert_eq!(Level::from_nick("strict"), Some(Level::Strict));
        assert_eq!(Level::from_nick("tight"), None);
    }

    #[test]
    fn a_star_in_the_last_component_matches_files() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["renderD128", "renderD129", "card0"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let mut found = expand(&dir.path().join("renderD*"));
        found.sort();
        assert_eq!(
            found,
            [dir.path().join("renderD128"), dir.path().join("renderD129")]
        );
        assert_eq!(expand(Path::new("/no/star")), [PathBuf::from("/no/star")]);
    }
}
