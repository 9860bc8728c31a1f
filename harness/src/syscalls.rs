//! Which syscalls the built-in collector records, and syscall names for humans.
//!
//! [`TRACED`] is the single list: the collector's BPF side receives it as a per-number table
//! before load, and the harness sums ground truth over the same numbers.

use libc::c_long;

/// What the collector copies from user memory besides the six raw arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    None,
    /// A NUL-terminated path in argument `n`.
    Path(u8),
    /// A socket address in argument `n` (length in argument 2).
    Sockaddr(u8),
}

#[derive(Clone, Copy, Debug)]
pub struct TracedSyscall {
    pub nr: c_long,
    pub payload: Payload,
}

const fn traced(nr: c_long, payload: Payload) -> TracedSyscall {
    TracedSyscall { nr, payload }
}

use Payload::{None as NoPayload, Path, Sockaddr};

/// The flood syscalls plus the ones provenance needs (process, file and network lineage).
pub const TRACED: &[TracedSyscall] = &[
    traced(libc::SYS_read, NoPayload),
    traced(libc::SYS_write, NoPayload),
    traced(libc::SYS_open, Path(0)),
    traced(libc::SYS_openat, Path(1)),
    traced(libc::SYS_openat2, Path(1)),
    traced(libc::SYS_creat, Path(0)),
    traced(libc::SYS_close, NoPayload),
    traced(libc::SYS_stat, Path(0)),
    traced(libc::SYS_lstat, Path(0)),
    traced(libc::SYS_newfstatat, Path(1)),
    traced(libc::SYS_statx, Path(1)),
    traced(libc::SYS_unlink, Path(0)),
    traced(libc::SYS_unlinkat, Path(1)),
    traced(libc::SYS_rename, Path(0)),
    traced(libc::SYS_renameat, Path(1)),
    traced(libc::SYS_renameat2, Path(1)),
    traced(libc::SYS_execve, Path(0)),
    traced(libc::SYS_execveat, Path(1)),
    traced(libc::SYS_clone, NoPayload),
    traced(libc::SYS_clone3, NoPayload),
    traced(libc::SYS_fork, NoPayload),
    traced(libc::SYS_vfork, NoPayload),
    traced(libc::SYS_exit, NoPayload),
    traced(libc::SYS_exit_group, NoPayload),
    traced(libc::SYS_socket, NoPayload),
    traced(libc::SYS_connect, Sockaddr(1)),
    traced(libc::SYS_accept, NoPayload),
    traced(libc::SYS_accept4, NoPayload),
    traced(libc::SYS_setuid, NoPayload),
    traced(libc::SYS_setgid, NoPayload),
];

/// `AEGIS_LSM_NO_SYSCALL` (`bpf/intf.h`): the syscall number of a BPF-LSM hook run outside any
/// syscall.
pub const LSM_NO_SYSCALL: u32 = 511;

/// The syscalls that reach the BPF-LSM hooks `builtin-lsm` records (file_open, path_unlink,
/// bprm_check_security, socket_connect) from user space.
pub const REACHING_LSM_HOOKS: &[c_long] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
    libc::SYS_open_by_handle_at,
    libc::SYS_uselib,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_connect,
];

pub fn is_traced(nr: u32) -> bool {
    TRACED.iter().any(|t| t.nr as u32 == nr)
}

/// The syscalls whose records hold the canary: creating and removing a file by path.
pub fn creates_file(nr: u32) -> bool {
    [
        libc::SYS_open,
        libc::SYS_openat,
        libc::SYS_openat2,
        libc::SYS_creat,
    ]
    .iter()
    .any(|n| *n as u32 == nr)
}

pub fn removes_file(nr: u32) -> bool {
    [libc::SYS_unlink, libc::SYS_unlinkat]
        .iter()
        .any(|n| *n as u32 == nr)
}

/// The x86_64 name of a syscall number, for the ones this project meets.
pub fn name(nr: u32) -> String {
    let known: &[(c_long, &str)] = &[
        (libc::SYS_read, "read"),
        (libc::SYS_write, "write"),
        (libc::SYS_open, "open"),
        (libc::SYS_close, "close"),
        (libc::SYS_stat, "stat"),
        (libc::SYS_fstat, "fstat"),
        (libc::SYS_lstat, "lstat"),
        (libc::SYS_mmap, "mmap"),
        (libc::SYS_mprotect, "mprotect"),
        (libc::SYS_munmap, "munmap"),
        (libc::SYS_brk, "brk"),
        (libc::SYS_rt_sigaction, "rt_sigaction"),
        (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
        (libc::SYS_pread64, "pread64"),
        (libc::SYS_access, "access"),
        (libc::SYS_madvise, "madvise"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_socket, "socket"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_accept, "accept"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_fork, "fork"),
        (libc::SYS_vfork, "vfork"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_exit, "exit"),
        (libc::SYS_wait4, "wait4"),
        (libc::SYS_rename, "rename"),
        (libc::SYS_creat, "creat"),
        (libc::SYS_unlink, "unlink"),
        (libc::SYS_setuid, "setuid"),
        (libc::SYS_setgid, "setgid"),
        (libc::SYS_prctl, "prctl"),
        (libc::SYS_arch_prctl, "arch_prctl"),
        (libc::SYS_futex, "futex"),
        (libc::SYS_set_tid_address, "set_tid_address"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_exit_group, "exit_group"),
        (libc::SYS_openat, "openat"),
        (libc::SYS_newfstatat, "newfstatat"),
        (libc::SYS_unlinkat, "unlinkat"),
        (libc::SYS_renameat, "renameat"),
        (libc::SYS_set_robust_list, "set_robust_list"),
        (libc::SYS_accept4, "accept4"),
        (libc::SYS_pipe2, "pipe2"),
        (libc::SYS_prlimit64, "prlimit64"),
        (libc::SYS_renameat2, "renameat2"),
        (libc::SYS_getrandom, "getrandom"),
        (libc::SYS_execveat, "execveat"),
        (libc::SYS_statx, "statx"),
        (libc::SYS_rseq, "rseq"),
        (libc::SYS_sigaltstack, "sigaltstack"),
        (libc::SYS_getpid, "getpid"),
        (libc::SYS_gettid, "gettid"),
        (libc::SYS_sched_yield, "sched_yield"),
        (libc::SYS_poll, "poll"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_fcntl, "fcntl"),
        (libc::SYS_dup2, "dup2"),
        (libc::SYS_getcwd, "getcwd"),
        (libc::SYS_kill, "kill"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_openat2, "openat2"),
        (libc::SYS_open_by_handle_at, "open_by_handle_at"),
        (libc::SYS_uselib, "uselib"),
        (libc::SYS_execveat, "execveat"),
        (LSM_NO_SYSCALL as c_long, "no_syscall"),
    ];
    known
        .iter()
        .find(|(n, _)| *n as u32 == nr)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traced_numbers_are_unique_and_named() {
        for (i, t) in TRACED.iter().enumerate() {
            assert!(
                !name(t.nr as u32).starts_with("syscall_"),
                "{} unnamed",
                t.nr
            );
            assert!(
                TRACED[i + 1..].iter().all(|u| u.nr != t.nr),
                "{} twice",
                t.nr
            );
        }
        assert!(creates_file(libc::SYS_openat as u32) && removes_file(libc::SYS_unlinkat as u32));
    }
}
