//! sched_ext schedulers run as their own binaries (scx_rustland, scx_aegis, any `scx:PATH`).
//!
//! Lifecycle per trial: refuse to start if another sched_ext scheduler is loaded; start the
//! binary with `RUST_BACKTRACE=0` (a failing scx binary can hang with backtraces on); wait for
//! `/sys/kernel/sched_ext/state` = `enabled` and read `root/ops`; check it is still running
//! after the attack (the kernel's watchdog may have kicked it out); stop it with SIGINT and
//! wait for `disabled`. Never linked into the harness.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::measure::kernel;

const ENABLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Enables slower than this are reported.
const SLOW_ENABLE: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running sched_ext scheduler; stopped on drop if not stopped explicitly.
pub struct RunningScx {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    ops: String,
}

/// Lines of the kernel log that mention sched_ext, the last few.
pub fn kernel_log_reason() -> String {
    let Ok(out) = Command::new("dmesg").output() else {
        return "kernel log unavailable".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("sched_ext")).collect();
    if lines.is_empty() {
        "no sched_ext messages in the kernel log".into()
    } else {
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }
}

fn tail(path: &Path, lines: usize) -> String {
    last_lines(
        std::fs::read_to_string(path).unwrap_or_default().lines(),
        lines,
    )
}

/// The last `n` of `lines`, on one line.
fn last_lines<'a>(lines: impl Iterator<Item = &'a str>, n: usize) -> String {
    let all: Vec<&str> = lines.collect();
    all[all.len().saturating_sub(n)..].join(" | ")
}

/// The end of the last verifier log in a scheduler's output (libbpf prints it between
/// `-- BEGIN PROG LOAD LOG --` and `-- END PROG LOAD LOG --` when the kernel rejects a
/// program): the instruction it stopped at and why. None if no program was rejected.
fn verifier_rejection(text: &str, lines: usize) -> Option<String> {
    let begin = text.rfind("-- BEGIN PROG LOAD LOG --")?;
    let log = &text[begin..];
    let log = &log[..log.find("-- END PROG LOAD LOG --").unwrap_or(log.len())];
    let body = log.lines().skip(1).filter(|l| !l.trim().is_empty());
    Some(last_lines(body, lines))
}

/// Why a scheduler exited before it was enabled: the verifier's verdict if there was one, and
/// the last lines it printed.
fn load_failure(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match verifier_rejection(&text, 12) {
        Some(verdict) => format!(
            "the verifier rejected a program: {verdict} || {}",
            last_lines(text.lines(), 3)
        ),
        None => last_lines(text.lines(), 3),
    }
}

impl RunningScx {
    /// Starts `binary` and waits until the kernel reports it enabled.
    pub fn start(name: &str, binary: &Path, args: &[String], work_dir: &Path) -> Result<Self> {
        match kernel::sched_ext_state().as_deref() {
            None => bail!(
                "this kernel has no sched_ext (no /sys/kernel/sched_ext); run in a guest with --vm"
            ),
            Some("disabled") => {}
            Some(state) => bail!(
                "another sched_ext scheduler is active (state {state}, ops {}); stop it first",
                kernel::sched_ext_ops().unwrap_or_default()
            ),
        }
        let log = work_dir.join(format!("{}.log", name.replace(['/', ':'], "_")));
        let log_file = File::create(&log)?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0);
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut running = RunningScx {
            name: name.to_string(),
            child: Some(child),
            log,
            ops: String::new(),
        };
        let started = Instant::now();
        let deadline = started + ENABLE_TIMEOUT;
        loop {
            crate::signals::check()?;
            if let Some(ops) = kernel::sched_ext_ops() {
                running.ops = ops;
                let took = started.elapsed();
                // Worth knowing when it eats into a guest's time budget.
                if took >= SLOW_ENABLE {
                    eprintln!(
                        "  note: {name} took {:.1} s to load and enable (the kernel verifies its \
                         BPF programs; slow under TCG)",
                        took.as_secs_f64()
                    );
                }
                return Ok(running);
            }
            if let Some(status) = running.child.as_mut().unwrap().try_wait()? {
                running.child = None;
                bail!(
                    "{name} exited ({status}) before sched_ext was enabled: {}; kernel: {}",
                    load_failure(&running.log),
                    kernel_log_reason()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{name} did not enable sched_ext within {ENABLE_TIMEOUT:?}: {}",
                    tail(&running.log, 3)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `root/ops` as the kernel named the scheduler.
    pub fn ops(&self) -> &str {
        &self.ops
    }

    /// Fails if the scheduler exited or the kernel disabled it since it started.
    pub fn check_alive(&mut self) -> Result<()> {
        let child = self.child.as_mut().context("scheduler already stopped")?;
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited during the trial ({status}): {}; kernel: {}",
                self.name,
                tail(&self.log, 3),
                kernel_log_reason()
            );
        }
        if kernel::sched_ext_ops().as_deref() != Some(self.ops.as_str()) {
            bail!(
                "the kernel disabled {} during the trial (state {}): {}",
                self.name,
                kernel::sched_ext_state().unwrap_or_default(),
                kernel_log_reason()
            );
        }
        Ok(())
    }

    /// SIGINT, then wait for the process and for `state` = `disabled`.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                if child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !matches!(
            kernel::sched_ext_state().as_deref(),
            Some("disabled") | None
        ) {
            if Instant::now() > deadline {
                bail!(
                    "sched_ext still {} after {} exited",
                    kernel::sched_ext_state().unwrap_or_default(),
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for RunningScx {
    fn drop(&mut self) {
        if let Err(err) = self.stop_inner() {
            crate::say!("warning: {err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::verifier_rejection;

    #[test]
    fn a_verifier_rejection_is_quoted_from_its_last_lines() {
        let text = "libbpf: prog 'aegis_dispatch': BPF program load failed: Invalid argument\n\
                    libbpf: prog 'aegis_dispatch': -- BEGIN PROG LOAD LOG --\n\
                    0: R1=ctx() R10=fp0\n\
                    \n\
                    1: (b7) r0 = 0\n\
                    BPF program is too large. Processed 1000001 insn\n\
                    -- END PROG LOAD LOG --\n\
                    Error: Invalid argument (os error 22)\n";
        assert_eq!(
            verifier_rejection(text, 2).as_deref(),
            Some("1: (b7) r0 = 0 | BPF program is too large. Processed 1000001 insn")
        );
        assert_eq!(verifier_rejection("Error: no such file", 2), None);
    }
}
