//! The Linux audit daemon as a collector: Debian's `auditd`, run in the foreground
//! (`auditd -n -s nochange -c DIR`) with a private configuration and log file in the trial's
//! work directory, fed by audit rules scoped to the attack alone.
//!
//! **Scoping.** Audit has no cgroup filter, and the harness, auditd and the attack are
//! separate processes. The rules match the attack worker's pid (`-F pid=`, which audit compares
//! with the thread group id, so every flood thread) and its parent pid (`-F ppid=`, the
//! children a fork or execve flood starts), and nothing else. The worker's pid is only known
//! once it runs, and the worker does work of its own before it joins the cgroup (which ground
//! truth does not count), so the rules go in while the worker holds at a gate inside the cgroup
//! (see `producer.rs`): everything the rules can match is counted by ground truth, and everything
//! ground truth counts in the cgroup is the worker or one of its children. A `--cmd` producer
//! may start grandchildren that no rule can follow, so auditd refuses it.
//!
//! **What is recorded.** The flood's syscalls plus the canary's (`openat`, `close`,
//! `unlinkat`), for 64-bit calls. Ground truth is summed over the same numbers.
//!
//! **Loss.** The kernel counts every record it drops (backlog full after the wait time, out of
//! memory, rate limit) in the audit status `lost`, machine-wide. An exclude rule
//! (`-a always,exclude -F msgtype!=SYSCALL -F msgtype!=PATH`) keeps every other record type out
//! of the queue before that count is taken, so during a trial the only records that can be lost
//! are the attack's SYSCALL records and their PATH records. One event is one SYSCALL record,
//! then `items` PATH records; if the SYSCALL record is lost the kernel emits nothing more for
//! that event. So:
//! - received = the attack's SYSCALL records in the log,
//! - lost records = `lost` after − `lost` before,
//! - PATH records missing = Σ `items` − PATH records present, over the received events,
//! - dropped events = lost records − PATH records missing,
//!
//! and the trial's accounting checks received + dropped = ground truth. A SYSCALL or PATH
//! record of any other process in the log fails the trial (it could have been one of the lost
//! records), as does a loss the socket between kernel and daemon counts (`Drops` in
//! `/proc/net/netlink`), which the audit `lost` counter would not see.
//!
//! **Settings.** The backlog limit and the backlog wait time are the trial's parameters:
//! with a wait time the kernel slows the attack down instead of losing records, without one it
//! loses them. The rate limit is 0 and the failure mode printk (never panic) during a trial.
//! Everything is put back afterwards ([`AuditGuard`]), on every exit path.
//!
//! **Drain.** auditd stops reading its netlink socket on SIGTERM, so before stopping it the
//! harness waits until the kernel's backlog is empty and the socket's receive queue is empty.

pub use crate::results::collector::AuditOutcome;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::audit_log::{self, AttackFilter};
use super::audit_state::{self, auditctl, find_program, AuditGuard, AuditStatus};
use super::builtin::external_helper_command;
use super::{AuditSettings, CanarySeen, CollectorSetup, CollectorStats, RunningCollector};
use crate::error::InputError;

pub const AUDITD: &str = "auditd";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The kernel refuses a wait time beyond ten times its default of 60 s (auditctl(8)).
pub const MAX_BACKLOG_WAIT_TIME_MS: u64 = 600_000;
/// Only these record types reach the queue during a trial (see the module docs).
const EXCLUDE_RULE: &[&str] = &[
    "-a",
    "always,exclude",
    "-F",
    "msgtype!=SYSCALL",
    "-F",
    "msgtype!=PATH",
];
/// While auditd starts: the same, letting through the `auditctl -m` message that tells when
/// auditd is ready (see [`AuditdCollector::wait_until_reading`]).
const STARTUP_EXCLUDE_RULE: &[&str] = &[
    "-a",
    "always,exclude",
    "-F",
    "msgtype!=SYSCALL",
    "-F",
    "msgtype!=PATH",
    "-F",
    "msgtype!=USER",
];
/// The netlink protocol number of NETLINK_AUDIT, the `Eth` column of `/proc/net/netlink`.
const NETLINK_AUDIT: u32 = 9;

/// Whether auditd can run a trial here, and if not, why (one line).
pub fn check_available() -> Result<(), InputError> {
    for program in [AUDITD, audit_state::AUDITCTL] {
        if find_program(program).is_none() {
            return Err(InputError(format!(
                "collector 'auditd' needs {program}, which is not installed: apt-get install \
                 auditd (or `make setup`)"
            )));
        }
    }
    let status = audit_state::status().map_err(|err| {
        InputError(format!(
            "collector 'auditd' cannot use the kernel's audit subsystem: {err:#}"
        ))
    })?;
    usable(&status)
}

fn usable(status: &AuditStatus) -> Result<(), InputError> {
    if status.enabled == 2 {
        return Err(InputError(
            "collector 'auditd' cannot run: audit is locked (auditctl -s: enabled 2) until \
             reboot, so its rules cannot be changed"
                .into(),
        ));
    }
    if status.pid != 0 {
        return Err(InputError(format!(
            "collector 'auditd' cannot run: an audit daemon (pid {}) is already registered with \
             the kernel; stop it first (systemctl stop auditd) and start it again afterwards",
            status.pid
        )));
    }
    Ok(())
}

/// Validates one backlog setting and converts the wait time to jiffies exactly.
pub fn settings(
    backlog_limit: u32,
    backlog_wait_time_ms: u64,
    hz: Option<u64>,
) -> Result<AuditSettings, InputError> {
    if backlog_wait_time_ms > MAX_BACKLOG_WAIT_TIME_MS {
        return Err(InputError(format!(
            "--audit-backlog-wait-time {backlog_wait_time_ms} is beyond the kernel's limit of \
             {MAX_BACKLOG_WAIT_TIME_MS} ms; e.g. --audit-backlog-wait-time 60000"
        )));
    }
    let backlog_wait_time_jiffies = match (backlog_wait_time_ms, hz) {
        (0, _) => 0,
        (ms, Some(hz)) if (ms * hz) % 1000 == 0 => ms * hz / 1000,
        (ms, Some(hz)) => {
            return Err(InputError(format!(
                "--audit-backlog-wait-time {ms} is not a whole number of jiffies on this kernel \
                 (HZ={hz}): use a multiple of {} ms",
                1000 / gcd(1000, hz)
            )))
        }
        (_, None) => {
            return Err(InputError(
                "--audit-backlog-wait-time needs this kernel's HZ (no /proc/config.gz or \
                 /boot/config-*); only 0 can be used here"
                    .into(),
            ))
        }
    };
    Ok(AuditSettings {
        backlog_limit,
        backlog_wait_time_ms,
        backlog_wait_time_jiffies,
    })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The private configuration: the log in `dir`, no plugins, nothing rotated or suspended
/// (a full disk would show up as received records missing, which fails the accounting).
/// The rest are Debian's defaults.
fn write_config(dir: &Path, log: &Path) -> Result<()> {
    let plugins = dir.join("plugins.d");
    std::fs::create_dir_all(&plugins).with_context(|| format!("creating {}", plugins.display()))?;
    let config = format!(
        "local_events = yes\n\
         write_logs = yes\n\
         log_file = {log}\n\
         log_group = root\n\
         log_format = RAW\n\
         flush = INCREMENTAL_ASYNC\n\
         freq = 50\n\
         max_log_file = 0\n\
         num_logs = 0\n\
         priority_boost = 4\n\
         name_format = NONE\n\
         max_log_file_action = IGNORE\n\
         space_left = 75\n\
         space_left_action = IGNORE\n\
         admin_space_left = 50\n\
         admin_space_left_action = IGNORE\n\
         disk_full_action = IGNORE\n\
         disk_error_action = SYSLOG\n\
         tcp_listen_queue = 5\n\
         tcp_max_per_addr = 1\n\
         tcp_client_max_idle = 0\n\
         transport = TCP\n\
         distribute_network = no\n\
         q_depth = 2000\n\
         overflow_action = SYSLOG\n\
         max_restarts = 10\n\
         plugin_dir = {plugins}\n\
         end_of_event_timeout = 2\n",
        log = log.display(),
        plugins = plugins.display(),
    );
    let file = dir.join("auditd.conf");
    std::fs::write(&file, config).with_context(|| format!("writing {}", file.display()))?;
    // auditd refuses a configuration others can write.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// `Rmem` and `Drops` of auditd's audit netlink socket, from `/proc/net/netlink`.
fn socket_queue(auditd_pid: u32) -> Result<(u64, u64)> {
    let table =
        std::fs::read_to_string("/proc/net/netlink").context("reading /proc/net/netlink")?;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        if number(1) == Some(u64::from(NETLINK_AUDIT)) && number(2) == Some(u64::from(auditd_pid)) {
            let (rmem, drops) = (number(4), number(8));
            return rmem
                .zip(drops)
                .context("unexpected /proc/net/netlink layout");
        }
    }
    bail!("auditd (pid {auditd_pid}) has no audit netlink socket in /proc/net/netlink")
}

/// User + system CPU seconds of a live process.
pub(super) fn cpu_seconds(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')').context("malformed /proc/pid/stat")? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/pid/stat")?
            .parse::<f64>()?
            / ticks)
    };
    // utime and stime are fields 14 and 15, i.e. 12 and 13 after the command name.
    Ok((field(11)?, field(12)?))
}

pub struct AuditdCollector {
    /// The daemon; `None` once stopped.
    child: Option<Child>,
    /// Restores the audit state; `None` once restored.
    guard: Option<AuditGuard>,
    log: PathBuf,
    stderr_log: PathBuf,
    traced: BTreeSet<u32>,
    settings: AuditSettings,
    key: String,
    /// The attack's pid and the `auditctl` arguments of its rules, once installed.
    attack: Option<(u32, Vec<Vec<String>>)>,
    before: Option<AuditStatus>,
    version: String,
}

impl AuditdCollector {
    pub fn start(setup: &CollectorSetup<'_>) -> Result<Self> {
        let flood = setup
            .flood
            .context("auditd scopes its rules by process and cannot follow a --cmd producer")?;
        let settings = setup
            .buffer
            .audit()
            .context("auditd needs its backlog settings")?;
        let traced = flood
            .syscalls()
            .iter()
            .chain(attacks::flood::CANARY_SYSCALLS)
            .map(|nr| *nr as u32)
            .collect();
        let dir = setup.work_dir.join("auditd");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("audit.log");
        write_config(&dir, &log)?;
        let version = auditctl(&["-v"])
            .map(|text| text.trim().replace("auditctl version", "auditd"))
            .unwrap_or_else(|_| "auditd".to_string());

        // Checked again: the state may have changed since the plan was made.
        usable(&audit_state::status()?)?;
        let guard = AuditGuard::save(setup.work_dir)?;
        let mut collector = AuditdCollector {
            child: None,
            guard: Some(guard),
            stderr_log: dir.join("auditd.stderr"),
            log,
            traced,
            settings,
            key: format!("aegis-bench-{}", std::process::id()),
            attack: None,
            before: None,
            version,
        };
        // From here on, any error drops `collector`, which stops auditd and restores.
        auditctl(&["-e", "0"])?;
        auditctl(&["-D"])?;
        auditctl(STARTUP_EXCLUDE_RULE)?;
        auditctl(&["-f", "1"])?;
        auditctl(&["-r", "0"])?;
        auditctl(&["-b", &settings.backlog_limit.to_string()])?;
        auditctl(&[
            "--backlog_wait_time",
            &settings.backlog_wait_time_jiffies.to_string(),
        ])?;
        collector.spawn_daemon(&dir)?;
        auditctl(&["-e", "1"])?;
        collector.wait_until_reading()?;
        // The strict rule first: with both in place a USER record is already excluded.
        auditctl(EXCLUDE_RULE)?;
        let mut delete = STARTUP_EXCLUDE_RULE.to_vec();
        delete[0] = "-d";
        auditctl(&delete)?;
        Ok(collector)
    }

    /// Returns once auditd reads its socket like any record. Right after registering with the
    /// kernel, auditd 3.0.9 waits up to 100 ms for a reply and then reads (and discards) one
    /// message from its socket, whatever it is; a record arriving then would vanish without
    /// the kernel counting it lost (seen here: the flood's first SYSCALL record). So one
    /// message of ours goes first, and the kernel queue and the socket are drained behind it:
    /// whether auditd discards it or logs it, the discarding read is over.
    fn wait_until_reading(&self) -> Result<()> {
        auditctl(&["-m", "aegis-bench: checking that auditd reads its socket"])?;
        self.drain(self.pid())?;
        Ok(())
    }

    fn spawn_daemon(&mut self, dir: &Path) -> Result<()> {
        let program = find_program(AUDITD).context("auditd is not installed")?;
        let stderr = std::fs::File::create(&self.stderr_log)?;
        let child = external_helper_command(
            &program,
            &[
                "-n".as_ref(),
                "-s".as_ref(),
                "nochange".as_ref(),
                "-c".as_ref(),
                dir.as_os_str(),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id();
        self.child = Some(child);
        if let Some(guard) = &self.guard {
            guard.record_daemon(pid)?;
        }
        // Ready once the kernel knows it as its audit daemon.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            crate::signals::check()?;
            if audit_state::status()?.pid == pid {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().expect("just spawned").try_wait()? {
                self.child = None;
                bail!(
                    "auditd exited ({status}) before registering with the kernel: {}",
                    self.daemon_messages()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "auditd did not register with the kernel within {READY_TIMEOUT:?}: {}",
                    self.daemon_messages()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn daemon_messages(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.stderr_log) {
            let _ = file.read_to_string(&mut text);
        }
        let text = text.trim();
        if text.is_empty() {
            "(no message)".to_string()
        } else {
            text.lines().collect::<Vec<_>>().join("; ")
        }
    }

    fn filter(&self) -> Result<AttackFilter> {
        let (pid, _) = self
            .attack
            .as_ref()
            .context("the attack never joined, so auditd recorded nothing for it")?;
        Ok(AttackFilter {
            pid: *pid,
            key: self.key.clone(),
        })
    }

    /// Deletes the attack's rules (the exclude rule keeps the change itself out of the log).
    fn remove_attack_rules(&mut self) -> Result<()> {
        if let Some((_, rules)) = &self.attack {
            for rule in rules {
                let mut args: Vec<&str> = rule.iter().map(String::as_str).collect();
                args[0] = "-d";
                auditctl(&args)?;
            }
        }
        Ok(())
    }

    /// Waits until every record the kernel queued has been read by auditd.
    fn drain(&self, pid: u32) -> Result<AuditStatus> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut empty_polls = 0;
        loop {
            crate::signals::check()?;
            let status = audit_state::status()?;
            let (rmem, _) = socket_queue(pid)?;
            empty_polls = if status.backlog == 0 && rmem == 0 {
                empty_polls + 1
            } else {
                0
            };
            // Twice in a row: kauditd may hold one record between the queue and the socket.
            if empty_polls >= 2 {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "auditd did not drain within {DRAIN_TIMEOUT:?} (kernel backlog {}, socket \
                     queue {rmem} bytes)",
                    status.backlog
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_daemon(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("auditd failed ({status}): {}", self.daemon_messages());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                audit_state::remove_daemon_pid_file(child.id());
                bail!("auditd did not exit within {EXIT_TIMEOUT:?} of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl RunningCollector for AuditdCollector {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |child| child.id())
    }

    fn traced_syscalls(&self) -> BTreeSet<u32> {
        self.traced.clone()
    }

    fn needs_attack_pid(&self) -> bool {
        true
    }

    fn attack_joined(&mut self, pid: u32) -> Result<()> {
        let syscalls: Vec<String> = self
            .traced
            .iter()
            .map(|nr| crate::syscalls::name(*nr))
            .collect();
        let rules: Vec<Vec<String>> = ["pid", "ppid"]
            .iter()
            .map(|field| {
                [
                    "-a",
                    "always,exit",
                    "-F",
                    "arch=b64",
                    "-S",
                    &syscalls.join(","),
                    "-F",
                    &format!("{field}={pid}"),
                    "-k",
                    &self.key,
                ]
                .map(String::from)
                .to_vec()
            })
            .collect();
        // Nothing of the attack's is recorded before the rules are in: read `lost` now.
        self.before = Some(audit_state::status()?);
        self.attack = Some((pid, Vec::new()));
        for rule in rules {
            let args: Vec<&str> = rule.iter().map(String::as_str).collect();
            auditctl(&args)?;
            self.attack.as_mut().expect("set above").1.push(rule);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<CollectorStats> {
        let pid = self.pid();
        if pid == 0 {
            bail!("auditd was already stopped");
        }
        self.remove_attack_rules()?;
        let after = self.drain(pid)?;
        let (_, socket_drops) = socket_queue(pid)?;
        let (cpu_user_s, cpu_system_s) = cpu_seconds(pid)?;
        self.stop_daemon()?;
        if let Some(guard) = self.guard.take() {
            guard.restore()?;
        }
        if socket_drops > 0 {
            bail!(
                "accounting does not add up: auditd's netlink socket dropped {socket_drops} \
                 messages, which the audit lost counter does not count"
            );
        }
        let before = self
            .before
            .clone()
            .context("the attack never joined, so auditd recorded nothing for it")?;
        let summary = audit_log::summarize(&self.log, &self.filter()?)?;
        if summary.foreign_records > 0 {
            bail!(
                "accounting does not add up: the audit log holds {} SYSCALL/PATH records of \
                 other processes, so the kernel's lost counter may count theirs too (the first: \
                 {})",
                summary.foreign_records,
                summary.first_foreign.as_deref().unwrap_or("?")
            );
        }
        let lost_records = after.lost - before.lost;
        let path_records_missing = summary.path_records_missing();
        if path_records_missing > lost_records {
            bail!(
                "accounting does not add up: {path_records_missing} PATH records are missing \
                 from the audit log but the kernel lost only {lost_records} records"
            );
        }
        let hz = crate::measure::kernel::hz().unwrap_or(0);
        let waited_jiffies = after
            .backlog_wait_time_actual
            .saturating_sub(before.backlog_wait_time_actual);
        let log_bytes = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        Ok(CollectorStats {
            received: summary.received(),
            received_by_syscall: summary.received_by_syscall.clone(),
            dropped: lost_records - path_records_missing,
            decode_errors: 0,
            wakeups: 0,
            cpu_user_s,
            cpu_system_s,
            log_bytes,
            audit: Some(AuditOutcome {
                settings: self.settings,
                lost_records,
                path_records_missing,
                backlog_wait_actual_ms: if hz > 0 {
                    waited_jiffies as f64 * 1000.0 / hz as f64
                } else {
                    0.0
                },
                auditd_version: self.version.clone(),
            }),
            ..CollectorStats::default()
        })
    }

    fn find_canary(&self, canary: &Path) -> Result<CanarySeen> {
        audit_log::find_canary(&self.log, &self.filter()?, canary)
    }

    fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    fn version(&self) -> Option<String> {
        Some(self.version.clone())
    }
}

impl Drop for AuditdCollector {
    /// On every path that did not stop cleanly: no more rules for the attack, auditd stopped,
    /// then the audit state restored by the guard.
    fn drop(&mut self) {
        if self.guard.is_none() {
            return;
        }
        if let Err(err) = self.remove_attack_rules() {
            crate::say!("warning: removing the attack's audit rules: {err:#}");
        }
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            audit_state::remove_daemon_pid_file(child.id());
        }
        // The guard restores the rules and settings as it drops.
        self.guard.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_time_converts_to_whole_jiffies() {
        let s = settings(8192, 60_000, Some(250)).unwrap();
        assert_eq!(s.backlog_wait_time_jiffies, 15_000);
        assert_eq!(settings(64, 0, None).unwrap().backlog_wait_time_jiffies, 0);
        let err = settings(64, 6, Some(250)).unwrap_err().0;
        assert!(err.contains("multiple of 4 ms"), "{err}");
        let err = settings(64, 5, None).unwrap_err().0;
        assert!(err.contains("only 0"), "{err}");
        assert!(settings(64, 700_000, Some(250)).is_err());
    }

    #[test]
    fn a_locked_or_taken_audit_subsystem_is_refused() {
        let mut status = AuditStatus {
            enabled: 2,
            ..AuditStatus::default()
        };
        assert!(usable(&status).unwrap_err().0.contains("locked"));
        status.enabled = 1;
        status.pid = 1234;
        assert!(usable(&status).unwrap_err().0.contains("pid 1234"));
        status.pid = 0;
        assert!(usable(&status).is_ok());
    }
}
