//! The syscall patterns a super producer can flood with.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use libc::{c_long, SYS_clone, SYS_close, SYS_connect, SYS_execve, SYS_exit_group};
use libc::{SYS_newfstatat, SYS_openat, SYS_read, SYS_socket, SYS_wait4, SYS_write};

/// The syscalls the canary issues (see `worker::perform_canary`): collectors that record a
/// per-flood set of syscalls add these so the canary can be found in their logs.
pub const CANARY_SYSCALLS: &[c_long] = &[SYS_openat, SYS_close, libc::SYS_unlinkat];
use serde::{Deserialize, Serialize};

use crate::SyscallTally;

/// One flood pattern. Each iteration issues the syscalls listed in [`FloodKind::describe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodKind {
    /// `openat("/dev/null")` + `close`.
    Openat,
    /// `openat` a small file + 1-byte `read` + `close`.
    OpenReadClose,
    /// 1-byte `write` into a pipe + 1-byte `read` back.
    Rdwr,
    /// 1-byte `write` to /dev/null.
    Devnull,
    /// `clone` + `execve("/bin/true")` in the child + `wait4`.
    Execve,
    /// `clone` + `exit_group` in the child + `wait4`.
    Fork,
    /// UDP `socket` + `connect` to 127.0.0.1:9 + `close`.
    Connect,
    /// `newfstatat` of a small file.
    Stat,
}

impl FloodKind {
    pub const ALL: [FloodKind; 8] = [
        FloodKind::Openat,
        FloodKind::OpenReadClose,
        FloodKind::Rdwr,
        FloodKind::Devnull,
        FloodKind::Execve,
        FloodKind::Fork,
        FloodKind::Connect,
        FloodKind::Stat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FloodKind::Openat => "openat",
            FloodKind::OpenReadClose => "open-read-close",
            FloodKind::Rdwr => "rdwr",
            FloodKind::Devnull => "devnull",
            FloodKind::Execve => "execve",
            FloodKind::Fork => "fork",
            FloodKind::Connect => "connect",
            FloodKind::Stat => "stat",
        }
    }

    /// What one iteration does, for help texts.
    pub fn describe(self) -> &'static str {
        match self {
            FloodKind::Openat => "openat(/dev/null) + close",
            FloodKind::OpenReadClose => "openat(small file) + read 1 byte + close",
            FloodKind::Rdwr => "1-byte write to a pipe + 1-byte read back",
            FloodKind::Devnull => "1-byte write to /dev/null",
            FloodKind::Execve => "clone + execve(/bin/true) + wait4",
            FloodKind::Fork => "clone + exit_group in the child + wait4",
            FloodKind::Connect => "UDP socket + connect(127.0.0.1:9) + close",
            FloodKind::Stat => "newfstatat(small file)",
        }
    }

    /// Every syscall number one iteration issues, in the attack's cgroup (the child's
    /// `execve`/`exit_group` included). Collectors that record a chosen set of syscalls (auditd
    /// rules) trace these plus [`CANARY_SYSCALLS`].
    pub fn syscalls(self) -> &'static [c_long] {
        match self {
            FloodKind::Openat => &[SYS_openat, SYS_close],
            FloodKind::OpenReadClose => &[SYS_openat, SYS_read, SYS_close],
            FloodKind::Rdwr => &[SYS_write, SYS_read],
            FloodKind::Devnull => &[SYS_write],
            FloodKind::Execve => &[SYS_clone, SYS_execve, SYS_wait4, SYS_exit_group],
            FloodKind::Fork => &[SYS_clone, SYS_wait4, SYS_exit_group],
            FloodKind::Connect => &[SYS_socket, SYS_connect, SYS_close],
            FloodKind::Stat => &[SYS_newfstatat],
        }
    }

    /// Whether the flood runs code we did not write (the exec'd program), whose syscalls the
    /// tally cannot see. For such floods only [`FloodKind::exact_syscalls`] are compared.
    pub fn runs_foreign_code(self) -> bool {
        self == FloodKind::Execve
    }

    /// Syscall numbers whose ground-truth count must equal the tally exactly. `None` means every
    /// tallied number.
    pub fn exact_syscalls(self) -> Option<&'static [u32]> {
        const EXECVE_EXACT: &[u32] = &[
            SYS_clone as u32,
            SYS_execve as u32,
            SYS_exit_group as u32,
            SYS_wait4 as u32,
        ];
        self.runs_foreign_code().then_some(EXECVE_EXACT)
    }
}

impl fmt::Display for FloodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown flood '{0}'; choose one of: openat, open-read-close, rdwr, devnull, execve, fork, connect, stat")]
pub struct UnknownFlood(String);

impl FromStr for FloodKind {
    type Err = UnknownFlood;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FloodKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownFlood(s.to_string()))
    }
}

/// How hard and how long to flood.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloodSpec {
    pub kind: FloodKind,
    pub threads: u32,
    /// The flood stops after this long at the latest.
    pub duration: Duration,
    /// If set, the flood stops after this many iterations in total (split across threads).
    pub count: Option<u64>,
    /// If set, iterations per second in total (split across threads).
    pub rate_per_s: Option<u64>,
    /// How the flood evades a producer rule.
    #[serde(default, skip_serializing_if = "crate::Evade::is_none")]
    pub evade: crate::Evade,
}

/// Everything one flood thread needs, opened before the flood so that iterating only issues
/// the flood's own syscalls.
pub struct FloodState {
    kind: FloodKind,
    path: CString,
    pipe_fds: [libc::c_int; 2],
    devnull_fd: libc::c_int,
    exec_path: CString,
    exec_argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
    loopback: libc::sockaddr_in,
    buf: [u8; 64],
}

// The raw pointers point into CStrings owned by the same struct.
unsafe impl Send for FloodState {}

impl FloodState {
    /// Opens what `kind` needs. `small_file` must exist and hold at least one byte.
    pub fn new(kind: FloodKind, small_file: &std::path::Path) -> io::Result<Self> {
        let path = match kind {
            FloodKind::Openat => CString::new("/dev/null").unwrap(),
            _ => CString::new(small_file.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::other("NUL in small file path"))?,
        };
        let mut pipe_fds = [-1; 2];
        if kind == FloodKind::Rdwr
            && unsafe { libc::pipe2(pipe_fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let devnull_fd = if kind == FloodKind::Devnull {
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            fd
        } else {
            -1
        };
        let exec_path = CString::new("/bin/true").unwrap();
        let loopback = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 9u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut state = FloodState {
            kind,
            path,
            pipe_fds,
            devnull_fd,
            exec_path,
            exec_argv: [std::ptr::null(); 2],
            envp: [std::ptr::null()],
            loopback,
            buf: [b'x'; 64],
        };
        state.exec_argv[0] = state.exec_path.as_ptr();
        Ok(state)
    }

    /// Runs one iteration of the flood, tallying every syscall issued.
    #[inline]
    pub fn iterate(&mut self, tally: &mut SyscallTally) {
        // SAFETY: every pointer passed below points into `self`, which outlives the call.
        unsafe {
            match self.kind {
                FloodKind::Openat | FloodKind::OpenReadClose => {
                    let fd = libc::syscall(
                        SYS_openat,
                        libc::AT_FDCWD,
                        self.path.as_ptr(),
                        libc::O_RDONLY | libc::O_CLOEXEC,
                    );
                    tally.add(SYS_openat);
                    if fd >= 0 {
                        if self.kind == FloodKind::OpenReadClose {
                            libc::syscall(SYS_read, fd, self.buf.as_mut_ptr(), 1);
                            tally.add(SYS_read);
                        }
                        libc::syscall(SYS_close, fd);
                        tally.add(SYS_close);
                    }
                }
                FloodKind::Rdwr => {
                    libc::syscall(SYS_write, self.pipe_fds[1], self.buf.as_ptr(), 1);
                    tally.add(SYS_write);
                    libc::syscall(SYS_read, self.pipe_fds[0], self.buf.as_mut_ptr(), 1);
                    tally.add(SYS_read);
                }
                FloodKind::Devnull => {
                    libc::syscall(SYS_write, self.devnull_fd, self.buf.as_ptr(), 1);
                    tally.add(SYS_write);
                }
                FloodKind::Execve | FloodKind::Fork => self.clone_child(tally),
                FloodKind::Connect => {
                    let fd = libc::syscall(
                        SYS_socket,
                        libc::AF_INET,
                        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                        0,
                    );
                    tally.add(SYS_socket);
                    if fd >= 0 {
                        libc::syscall(
                            SYS_connect,
                            fd,
                            &self.loopback as *const libc::sockaddr_in,
                            std::mem::size_of::<libc::sockaddr_in>(),
                        );
                        tally.add(SYS_connect);
                        libc::syscall(SYS_close, fd);
                        tally.add(SYS_close);
                    }
                }
                FloodKind::Stat => {
                    let mut st: libc::stat = std::mem::zeroed();
                    libc::syscall(
                        SYS_newfstatat,
                        libc::AT_FDCWD,
                        self.path.as_ptr(),
                        &mut st as *mut libc::stat,
                        0,
                    );
                    tally.add(SYS_newfstatat);
                }
            }
        }
    }

    /// A raw `clone(SIGCHLD)` (what fork(3) does, without atfork handlers). The child issues
    /// exactly one more syscall of ours: `execve` (Execve) or `exit_group` (Fork, or a failed
    /// execve, which is then followed by `exit_group`).
    unsafe fn clone_child(&mut self, tally: &mut SyscallTally) {
        let pid = libc::syscall(SYS_clone, libc::SIGCHLD as c_long, 0, 0, 0, 0);
        tally.add(SYS_clone);
        if pid == 0 {
            if self.kind == FloodKind::Execve {
                libc::syscall(
                    SYS_execve,
                    self.exec_path.as_ptr(),
                    self.exec_argv.as_ptr(),
                    self.envp.as_ptr(),
                );
            }
            libc::syscall(SYS_exit_group, 0);
            unreachable!("exit_group returned");
        }
        if pid > 0 {
            let mut status = 0;
            libc::syscall(SYS_wait4, pid, &mut status as *mut libc::c_int, 0, 0);
            tally.add(SYS_wait4);
            if self.kind == FloodKind::Execve {
                tally.add(SYS_execve);
                // /bin/true exits with exit_group; so does the child if execve failed.
            }
            tally.add(SYS_exit_group);
        }
    }
}

impl FloodState {
    /// Closes the flood's descriptors, tallying the `close` calls (they happen in the cgroup).
    pub fn close(mut self, tally: &mut SyscallTally) {
        for fd in self.descriptors() {
            unsafe { libc::syscall(SYS_close, *fd) };
            tally.add(SYS_close);
            *fd = -1;
        }
    }

    fn descriptors(&mut self) -> impl Iterator<Item = &mut libc::c_int> {
        self.pipe_fds
            .iter_mut()
            .chain(std::iter::once(&mut self.devnull_fd))
            .filter(|fd| **fd >= 0)
    }
}

impl Drop for FloodState {
    /// Only for error paths before the flood; a flood ends with [`FloodState::close`].
    fn drop(&mut self) {
        for fd in self.descriptors() {
            unsafe { libc::close(*fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in FloodKind::ALL {
            assert_eq!(kind.name().parse::<FloodKind>().unwrap(), kind);
        }
        let err = "opn".parse::<FloodKind>().unwrap_err().to_string();
        assert!(
            err.contains("unknown flood 'opn'") && err.contains("openat"),
            "{err}"
        );
    }

    #[test]
    fn every_flood_tallies_its_syscalls() {
        let dir = tempfile_dir();
        let file = dir.join("small");
        std::fs::write(&file, b"hello").unwrap();
        for kind in FloodKind::ALL {
            let mut state = FloodState::new(kind, &file).unwrap();
            let mut tally = SyscallTally::default();
            for _ in 0..3 {
                state.iterate(&mut tally);
            }
            let expected: &[(c_long, u64)] = match kind {
                FloodKind::Openat => &[(SYS_openat, 3), (SYS_close, 3)],
                FloodKind::OpenReadClose => &[(SYS_openat, 3), (SYS_read, 3), (SYS_close, 3)],
                FloodKind::Rdwr => &[(SYS_write, 3), (SYS_read, 3)],
                FloodKind::Devnull => &[(SYS_write, 3)],
                FloodKind::Execve => &[
                    (SYS_clone, 3),
                    (SYS_execve, 3),
                    (SYS_wait4, 3),
                    (SYS_exit_group, 3),
                ],
                FloodKind::Fork => &[(SYS_clone, 3), (SYS_wait4, 3), (SYS_exit_group, 3)],
                FloodKind::Connect => &[(SYS_socket, 3), (SYS_connect, 3), (SYS_close, 3)],
                FloodKind::Stat => &[(SYS_newfstatat, 3)],
            };
            for (nr, count) in expected {
                assert_eq!(tally.get(*nr), *count, "{kind}: syscall {nr}");
            }
            let total: u64 = expected.iter().map(|(_, count)| count).sum();
            assert_eq!(tally.total(), total, "{kind}: no syscall tallied twice");
            let mut declared = kind.syscalls().to_vec();
            let mut made: Vec<c_long> = expected.iter().map(|(nr, _)| *nr).collect();
            declared.sort_unstable();
            made.sort_unstable();
            assert_eq!(
                declared, made,
                "{kind}: FloodKind::syscalls lists what it issues"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("attacks-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
