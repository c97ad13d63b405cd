//! Confinement of the running daemon (Linux): Landlock limits file access to the paths the
//! daemon needs, `no_new_privs` is set, and a seccomp allow-list stops every system call the
//! daemon does not make while serving.
//!
//! Landlock applies to the calling thread and the threads it creates later; this kernel ABI
//! (before Linux 7.0's TSYNC) cannot restrict threads that already exist, so it is applied in
//! `main` before the runtime starts any thread. The seccomp filter is installed after the keys
//! are loaded and the listener is bound, on every thread at once (`SECCOMP_FILTER_FLAG_TSYNC`).
//!
//! A system call off the list fails with `EPERM` rather than killing the process: a payment
//! daemon killed mid-request by a rarely used path is an outage, while a refused call surfaces
//! as an error with its cause (a logged 5xx). `SECCOMP_FILTER_FLAG_LOG` makes the kernel log
//! every refusal, so a missing entry is found, not guessed.

use std::path::{Path, PathBuf};

/// What seccomp does with a system call off the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// Refused with `EPERM`, and logged by the kernel.
    Enforce,
    /// Allowed, and logged by the kernel: to find what a new deployment (another PKCS#11
    /// module) needs. Never for production.
    LogOnly,
    /// No filter.
    Off,
}

/// The files the daemon may reach after confinement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAccess {
    /// Read, write, create and delete beneath these (the store's folder, the token store).
    pub read_write: Vec<PathBuf>,
    /// Read beneath these (policies, TLS files, the PKCS#11 module, system libraries).
    pub read_only: Vec<PathBuf>,
}

/// System paths every deployment reads: shared libraries the PKCS#11 module loads when it
/// initializes, the dynamic loader's cache, OpenSSL's configuration, name resolution (a
/// PostgreSQL host name), and what the runtime reads to size itself.
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/share/zoneinfo",
    "/etc/ld.so.cache",
    "/etc/ssl",
    "/usr/lib/ssl",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/localtime",
    "/proc/self",
    "/sys/fs/cgroup",
    "/sys/devices/system/cpu",
    "/dev/null",
    "/dev/urandom",
];

/// What Landlock enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Every access right asked is enforced.
    Full,
    /// The kernel's ABI enforces some of them.
    Partial,
    /// The kernel has no Landlock: file access is not confined (logged at start).
    Unsupported,
}

impl LandlockOutcome {
    /// For the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Partial => "partial",
            Self::Unsupported => "unsupported",
        }
    }
}

/// Confinement failed: the daemon does not start unconfined when it was asked to confine.
#[derive(Debug)]
pub struct ConfineError(String);

impl std::fmt::Display for ConfineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfineError {}

/// Restricts the calling thread, and every thread it starts later, to `access` (Landlock),
/// and sets `no_new_privs`. Paths that do not exist are skipped. Call before any other
/// thread exists.
#[cfg(target_os = "linux")]
pub fn restrict_files(access: &FileAccess) -> Result<LandlockOutcome, ConfineError> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V7;
    let err =
        |what: &str, e: landlock::RulesetError| ConfineError(format!("Landlock: {what}: {e}"));
    let existing = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths.iter().filter(|p| p.exists()).cloned().collect()
    };
    let mut read_only = existing(&access.read_only);
    read_only.extend(
        SYSTEM_READ_ONLY
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists()),
    );
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| err("handled rights", e))?
        .create()
        .map_err(|e| err("create", e))?
        .add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi)))
        .map_err(|e| err("read-only paths", e))?
        .add_rules(path_beneath_rules(
            existing(&access.read_write),
            AccessFs::from_all(abi) & !AccessFs::Execute,
        ))
        .map_err(|e| err("read-write paths", e))?
        .restrict_self()
        .map_err(|e| err("restrict", e))?;
    if !status.no_new_privs {
        return Err(ConfineError("no_new_privs could not be set".into()));
    }
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockOutcome::Full,
        RulesetStatus::PartiallyEnforced => LandlockOutcome::Partial,
        RulesetStatus::NotEnforced => LandlockOutcome::Unsupported,
    })
}

/// Not Linux: nothing is confined.
#[cfg(not(target_os = "linux"))]
pub fn restrict_files(_access: &FileAccess) -> Result<LandlockOutcome, ConfineError> {
    Ok(LandlockOutcome::Unsupported)
}

/// The system calls the daemon makes while serving (tokio, hyper, rustls, SQLite, the
/// PostgreSQL client, SoftHSM2 and its OpenSSL), found by running the whole test suite with
/// [`SeccompMode::LogOnly`] and reading the kernel's log.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub const ALLOWED_SYSCALLS: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_openat,
    libc::SYS_open,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_lseek,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_fchmod,
    libc::SYS_fchown,
    libc::SYS_getcwd,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_pipe2,
    libc::SYS_ioctl,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mlock,
    libc::SYS_munlock,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_getrandom,
    libc::SYS_eventfd2,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_prlimit64,
    libc::SYS_getrlimit,
    libc::SYS_prctl,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_membarrier,
    libc::SYS_restart_syscall,
];

/// Other architectures: no allow-list is kept for them yet, so the filter is not installed
/// (logged at start).
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub const ALLOWED_SYSCALLS: &[libc::c_long] = &[];

/// Installs the allow-list on every thread of the process. `Ok(false)` when there is no list
/// for this architecture or the mode is off.
#[cfg(target_os = "linux")]
pub fn install_seccomp(mode: SeccompMode) -> Result<bool, ConfineError> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
    use std::collections::BTreeMap;
    let mismatch = match mode {
        SeccompMode::Off => return Ok(false),
        SeccompMode::Enforce => SeccompAction::Errno(libc::EPERM as u32),
        SeccompMode::LogOnly => SeccompAction::Log,
    };
    if ALLOWED_SYSCALLS.is_empty() {
        return Ok(false);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| ConfineError(format!("seccomp: {e}")))?;
    let mut rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = ALLOWED_SYSCALLS
        .iter()
        .map(|nr| (*nr, Vec::new()))
        .collect();
    // Arguments narrowed where serving needs less than the whole call (rules for one call are
    // alternatives): a thread, never a new namespace (a user namespace would hand the process
    // capabilities inside it); sockets of the local, IP and netlink families only.
    let seccomp_err = |e: seccompiler::BackendError| ConfineError(format!("seccomp rule: {e}"));
    let arg0 = |op, value| {
        seccompiler::SeccompCondition::new(0, seccompiler::SeccompCmpArgLen::Qword, op, value)
            .and_then(|c| seccompiler::SeccompRule::new(vec![c]))
            .map_err(seccomp_err)
    };
    rules.insert(
        libc::SYS_clone,
        vec![arg0(
            seccompiler::SeccompCmpOp::MaskedEq(CLONE_NAMESPACES),
            0,
        )?],
    );
    let families = [
        libc::AF_UNIX,
        libc::AF_INET,
        libc::AF_INET6,
        libc::AF_NETLINK,
    ];
    rules.insert(
        libc::SYS_socket,
        families
            .iter()
            .map(|f| arg0(seccompiler::SeccompCmpOp::Eq, u64::from(f.unsigned_abs())))
            .collect::<Result<_, _>>()?,
    );
    let program = |rules, mismatch, matched| -> Result<BpfProgram, ConfineError> {
        SeccompFilter::new(rules, mismatch, matched, arch)
            .map_err(|e| ConfineError(format!("seccomp filter: {e}")))?
            .try_into()
            .map_err(|e: seccompiler::BackendError| ConfineError(format!("seccomp program: {e}")))
    };
    // clone3 passes its flags in memory a filter cannot read: it answers ENOSYS, after which
    // glibc creates threads with clone, whose flags the rule above checks. A second filter,
    // since one filter has one action for what it matches (the kernel takes the strictest).
    let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let enosys = match mode {
        SeccompMode::LogOnly => SeccompAction::Log,
        _ => SeccompAction::Errno(libc::ENOSYS as u32),
    };
    apply_to_all_threads(&program(clone3, SeccompAction::Allow, enosys)?)?;
    // Last: once it is in force, `seccomp` itself is off the list.
    apply_to_all_threads(&program(rules, mismatch, SeccompAction::Allow)?)?;
    Ok(true)
}

/// The `clone` flags that make a new namespace (clone(2)): refused while serving.
#[cfg(target_os = "linux")]
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32 as u64;

/// Not Linux: no filter.
#[cfg(not(target_os = "linux"))]
pub fn install_seccomp(_mode: SeccompMode) -> Result<bool, ConfineError> {
    Ok(false)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, TSYNC | LOG, program)` after `no_new_privs`.
#[cfg(target_os = "linux")]
fn apply_to_all_threads(program: &[seccompiler::sock_filter]) -> Result<(), ConfineError> {
    let len = u16::try_from(program.len())
        .map_err(|_| ConfineError("seccomp program too long".into()))?;
    // SAFETY: PR_SET_NO_NEW_PRIVS takes one integer argument; the rest are ignored.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(ConfineError(format!(
            "no_new_privs: {}",
            std::io::Error::last_os_error()
        )));
    }
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    let flags = libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_LOG;
    // SAFETY: `prog` points at `len` valid BPF instructions that outlive the call; the kernel
    // copies them and keeps no reference.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::addr_of!(prog),
        )
    };
    match rc {
        0 => Ok(()),
        // TSYNC: the id of a thread that could not be synchronized.
        tid if tid > 0 => Err(ConfineError(format!(
            "seccomp: thread {tid} could not take the filter"
        ))),
        _ => Err(ConfineError(format!(
            "seccomp: {}",
            std::io::Error::last_os_error()
        ))),
    }
}

/// What the confined process can no longer do, probed from inside after confinement, without
/// side effects: `execve` with a null path (EFAULT if it were allowed), opening `/etc/shadow`,
/// and creating a file beside the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// `execve`'s error.
    pub execve: String,
    /// Opening `/etc/shadow` for reading.
    pub shadow: String,
    /// Creating a file in the data directory's parent.
    pub write_outside: String,
    /// `clone` asking for a new user namespace.
    pub user_namespace: String,
    /// A socket of a family serving never uses (AF_ALG, the kernel's crypto API).
    pub other_socket: String,
    /// Starting and joining a thread, as the runtime does while serving.
    pub thread: String,
}

/// Probes the confinement (see [`Probes`]). `outside` is a folder outside every read-write path.
#[cfg(target_os = "linux")]
pub fn probe(outside: &Path) -> Probes {
    let describe = |r: std::io::Result<()>| match r {
        Ok(()) => "allowed".to_owned(),
        Err(e) => e.raw_os_error().map_or_else(|| e.to_string(), errno_name),
    };
    // SAFETY: execve with null pointers never executes anything: the kernel fails it with
    // EFAULT, or seccomp with EPERM before the kernel looks at the arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_execve,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<*const libc::c_char>(),
            std::ptr::null::<*const libc::c_char>(),
        )
    };
    let execve = if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    let shadow = std::fs::File::open("/etc/shadow").map(drop);
    let probe_file = outside.join(format!(".payhsm-confinement-probe-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe_file)
        .map(|_| {
            let _ = std::fs::remove_file(&probe_file);
        });
    // CLONE_THREAD with CLONE_NEWUSER is invalid (EINVAL) once past seccomp: nothing is made.
    // SAFETY: the kernel refuses these flags before creating anything.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_ulong::from((libc::CLONE_NEWUSER | libc::CLONE_THREAD).unsigned_abs()),
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    let user_namespace = if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    // SAFETY: socket(2) takes three integers; a descriptor it returns is closed at once.
    let fd = unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) };
    let other_socket = if fd >= 0 {
        // SAFETY: `fd` was just returned by socket(2) and is used nowhere else.
        unsafe { libc::close(fd) };
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    let thread = std::thread::Builder::new()
        .name("payhsm-probe".into())
        .spawn(|| ())
        .and_then(|t| {
            t.join()
                .map_err(|_| std::io::Error::other("the probe thread panicked"))
        });
    Probes {
        execve: describe(execve),
        shadow: describe(shadow),
        write_outside: describe(written),
        user_namespace: describe(user_namespace),
        other_socket: describe(other_socket),
        thread: describe(thread),
    }
}

/// Not Linux: nothing to probe.
#[cfg(not(target_os = "linux"))]
pub fn probe(_outside: &Path) -> Probes {
    Probes {
        execve: "unconfined".into(),
        shadow: "unconfined".into(),
        write_outside: "unconfined".into(),
        user_namespace: "unconfined".into(),
        other_socket: "unconfined".into(),
        thread: "unconfined".into(),
    }
}

fn errno_name(code: i32) -> String {
    match code {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::ENOENT => "ENOENT".into(),
        other => format!("errno {other}"),
    }
}
