//! Stopping a real collector the harness started as its child (sysdig, eAudit): SIGINT, which
//! makes each flush what it holds and exit, then reaping it with its CPU time.

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How a collector ended: its exit code (128 + signal when killed) and CPU seconds.
pub struct Exited {
    pub code: i32,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
}

/// Sends SIGINT to `child` (the collector `what`) and waits up to `timeout` for it to exit.
pub fn interrupt_and_reap(child: Child, timeout: Duration, what: &str) -> Result<Exited> {
    let pid = child.id();
    kill(Pid::from_raw(pid as i32), Signal::SIGINT)?;
    // Reaped below with wait4 (for its rusage); the handle must not be waited on or killed.
    std::mem::forget(child);
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: plain wait4 on our own child with valid out-pointers.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid as i32 {
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            return Ok(Exited {
                code,
                cpu_user_s: seconds(usage.ru_utime),
                cpu_system_s: seconds(usage.ru_stime),
            });
        }
        if reaped < 0 {
            bail!("waiting for {what}: {}", std::io::Error::last_os_error());
        }
        if Instant::now() > deadline {
            bail!("{what} did not finish writing its log within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The BPF programs a collector's process holds open, and how often the kernel skipped them
/// (their `recursion_misses`; why that matters: `collector/eaudit.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramRuns {
    pub nr_programs: u64,
    pub nr_misses: u64,
}

/// Sums [`ProgramRuns`] over the BPF programs `pid` holds file descriptors for.
pub fn programs_of(pid: u32) -> Result<ProgramRuns> {
    use anyhow::Context;
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        // A descriptor closed while listing is not one of its programs.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        if let Some(id) = text
            .lines()
            .find_map(|line| line.strip_prefix("prog_id:"))
            .and_then(|id| id.trim().parse::<u32>().ok())
        {
            ids.insert(id);
        }
    }
    let mut runs = ProgramRuns::default();
    for info in libbpf_rs::query::ProgInfoIter::default().filter(|info| ids.contains(&info.id)) {
        runs.nr_programs += 1;
        runs.nr_misses += info.recursion_misses;
    }
    Ok(runs)
}
