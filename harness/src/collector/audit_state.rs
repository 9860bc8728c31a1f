//! The kernel's audit configuration, as `auditctl` shows it, saved before an auditd trial
//! changes it and put back afterwards on every exit path.
//!
//! The audit subsystem is machine-wide: its enabled flag, failure mode, rate limit, backlog
//! limit and backlog wait time, its rule lists, and the registered audit daemon. An auditd
//! trial changes all but the last through `auditctl` (and registers its own auditd), so
//! [`AuditGuard`] saves them first and restores them when dropped: after success, an error,
//! a panic (unwinding), SIGINT or SIGTERM. A SIGKILL of the harness cannot run any code, so
//! the saved state is also written to [`STATE_FILE`]; the next `aegis-bench attack` finds it
//! there, sees its owner is gone, and restores it ([`recover_stale`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::InputError;

pub const AUDITCTL: &str = "auditctl";
/// Where the state to restore waits while an auditd trial runs.
pub const STATE_FILE: &str = "/run/aegis-bench-audit-state.json";
/// auditd writes its pid here (a fixed path; `-c` does not move it) and removes it on a clean
/// exit.
pub const AUDITD_PID_FILE: &str = "/run/auditd.pid";

/// `auditctl -s`, parsed. Settings first, then the counters that change on their own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatus {
    /// 0 off, 1 on, 2 on and locked until reboot.
    pub enabled: u32,
    /// What the kernel does on a critical error: 0 silent, 1 printk, 2 panic.
    pub failure: u32,
    /// The registered audit daemon (0: none).
    pub pid: u32,
    /// Records per second before the kernel starts losing them (0: no limit).
    pub rate_limit: u32,
    pub backlog_limit: u32,
    /// In jiffies.
    pub backlog_wait_time: u64,
    /// Counter: records the kernel lost since boot.
    pub lost: u64,
    /// Counter: records queued for the daemon right now.
    pub backlog: u64,
    /// Counter: jiffies tasks spent waiting for backlog room, since boot or the last reset.
    pub backlog_wait_time_actual: u64,
}

impl AuditStatus {
    pub fn parse(text: &str) -> Result<Self> {
        let mut status = AuditStatus::default();
        let mut seen = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let number = || -> Result<u64> {
                value
                    .parse()
                    .with_context(|| format!("auditctl -s: '{line}' is not a number"))
            };
            match key {
                "enabled" => status.enabled = number()? as u32,
                "failure" => status.failure = number()? as u32,
                "pid" => status.pid = number()? as u32,
                "rate_limit" => status.rate_limit = number()? as u32,
                "backlog_limit" => status.backlog_limit = number()? as u32,
                "lost" => status.lost = number()?,
                "backlog" => status.backlog = number()?,
                "backlog_wait_time" => status.backlog_wait_time = number()?,
                "backlog_wait_time_actual" => status.backlog_wait_time_actual = number()?,
                _ => continue,
            }
            seen.push(key);
        }
        for needed in [
            "enabled",
            "failure",
            "pid",
            "rate_limit",
            "backlog_limit",
            "lost",
            "backlog",
            "backlog_wait_time",
        ] {
            if !seen.contains(&needed) {
                bail!("auditctl -s printed no '{needed}' line:\n{text}");
            }
        }
        Ok(status)
    }

    /// The settings alone (what a run must leave as found), without the counters.
    pub fn settings(&self) -> AuditStatus {
        AuditStatus {
            lost: 0,
            backlog: 0,
            backlog_wait_time_actual: 0,
            ..self.clone()
        }
    }
}

/// Where a program is: root's PATH has the sbin directories, a test runner's may not.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs `auditctl ARGS` and returns its standard output.
pub fn auditctl(args: &[&str]) -> Result<String> {
    let program = find_program(AUDITCTL).context("auditctl is not installed")?;
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {AUDITCTL} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{AUDITCTL} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn status() -> Result<AuditStatus> {
    AuditStatus::parse(&auditctl(&["-s"])?)
}

/// The loaded rules, one `auditctl` argument line each (`auditctl -l`), in kernel order.
pub fn rules() -> Result<Vec<String>> {
    let text = auditctl(&["-l"])?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "No rules")
        .map(String::from)
        .collect())
}

/// Everything an auditd trial changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    pub status: AuditStatus,
    pub rules: Vec<String>,
}

impl AuditState {
    pub fn read() -> Result<Self> {
        Ok(AuditState {
            status: status()?,
            rules: rules()?,
        })
    }

    /// Puts the rules and settings back. Audit is switched off while the rules are replaced
    /// and its previous flag set last, so no half-restored rule set ever audits anything.
    pub fn restore(&self, work_dir: &Path) -> Result<()> {
        auditctl(&["-e", "0"])?;
        auditctl(&["-D"])?;
        if !self.rules.is_empty() {
            // `auditctl -l` prints each rule in the syntax `auditctl -R` reads back.
            let file = work_dir.join("restore.rules");
            std::fs::write(&file, self.rules.join("\n") + "\n")
                .with_context(|| format!("writing {}", file.display()))?;
            auditctl(&["-R", path_str(&file)?])?;
            std::fs::remove_file(&file).ok();
        }
        let s = &self.status;
        auditctl(&["-f", &s.failure.to_string()])?;
        auditctl(&["-r", &s.rate_limit.to_string()])?;
        auditctl(&["-b", &s.backlog_limit.to_string()])?;
        auditctl(&["--backlog_wait_time", &s.backlog_wait_time.to_string()])?;
        auditctl(&["-e", &s.enabled.to_string()])?;
        let now = AuditState::read()?;
        if now.status.settings() != self.status.settings() || now.rules != self.rules {
            bail!(
                "the audit state read back differs from the one saved:\nsaved: {self:?}\nnow:   {now:?}"
            );
        }
        Ok(())
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// What [`STATE_FILE`] holds: the state to restore and who saved it.
#[derive(Serialize, Deserialize)]
struct SavedState {
    owner_pid: u32,
    /// Field 22 of `/proc/<pid>/stat`, so a reused pid is not mistaken for the owner.
    owner_start_ticks: u64,
    /// The auditd the owner started, whose pid file a SIGKILL leaves behind.
    #[serde(default)]
    auditd_pid: Option<u32>,
    state: AuditState,
}

/// Removes [`AUDITD_PID_FILE`] if it names `pid` (an auditd of ours that could not remove it
/// itself: killed, or gone with a killed harness).
pub fn remove_daemon_pid_file(pid: u32) {
    let names_it =
        std::fs::read_to_string(AUDITD_PID_FILE).is_ok_and(|text| text.trim() == pid.to_string());
    if names_it && !alive(pid) {
        let _ = std::fs::remove_file(AUDITD_PID_FILE);
    }
}

/// Fields 3 onwards of `/proc/<pid>/stat` (the command name, field 2, may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(String::from).collect())
}

fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` runs: a zombie nobody reaps (an orphan whose new parent does not wait, as
/// PID 1 in some containers) is dead for our purposes.
fn alive(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|fields| fields.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

fn owner_alive(saved: &SavedState) -> bool {
    alive(saved.owner_pid) && start_ticks(saved.owner_pid) == Some(saved.owner_start_ticks)
}

/// Restores the audit state an aegis-bench killed mid-trial left behind, if any. Returns
/// whether it did; fails with an [`InputError`] if `need_audit` and a live aegis-bench run
/// holds the audit subsystem.
pub fn recover_stale(need_audit: bool, work_dir: &Path) -> Result<bool> {
    let text = match std::fs::read_to_string(STATE_FILE) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err).context(format!("reading {STATE_FILE}")),
    };
    let Some(saved) = parse_saved(&text, need_audit)? else {
        return Ok(false);
    };
    if owner_alive(&saved) {
        if need_audit {
            return Err(InputError(format!(
                "another aegis-bench (pid {}) is running an auditd trial; the audit subsystem \
                 is machine-wide, so wait for it to finish",
                saved.owner_pid
            ))
            .into());
        }
        return Ok(false);
    }
    // Its auditd died with it (PR_SET_PDEATHSIG); the rules and settings stayed.
    saved
        .state
        .restore(work_dir)
        .context("restoring the audit state a killed aegis-bench left")?;
    if let Some(pid) = saved.auditd_pid {
        remove_daemon_pid_file(pid);
    }
    std::fs::remove_file(STATE_FILE).with_context(|| format!("removing {STATE_FILE}"))?;
    Ok(true)
}

/// The saved state in `text`. A damaged file cannot be restored from: a run that needs audit
/// stops and says how to fix it by hand; any other run warns and goes on (it changes no audit
/// state).
fn parse_saved(text: &str, need_audit: bool) -> Result<Option<SavedState>> {
    match serde_json::from_str(text) {
        Ok(saved) => Ok(Some(saved)),
        Err(err) => {
            let fix = format!(
                "{STATE_FILE} is damaged ({err}): the audit rules and settings of a killed run                  may still be in force; check them with `auditctl -s` and `auditctl -l`                  (`auditctl -D` removes every rule), then delete that file"
            );
            if need_audit {
                return Err(InputError(fix).into());
            }
            crate::say!("warning: {fix}");
            Ok(None)
        }
    }
}

/// Restores the saved audit state when dropped (see the module docs).
pub struct AuditGuard {
    saved: Option<AuditState>,
    work_dir: PathBuf,
}

fn write_saved(state: &AuditState, auditd_pid: Option<u32>) -> Result<()> {
    let saved = SavedState {
        owner_pid: std::process::id(),
        owner_start_ticks: start_ticks(std::process::id())
            .context("reading this process's start time")?,
        auditd_pid,
        state: state.clone(),
    };
    crate::files::write_atomically(Path::new(STATE_FILE), &serde_json::to_vec_pretty(&saved)?)
        .context("saving the audit state before changing it")
}

impl AuditGuard {
    /// Saves the current state, in memory and in [`STATE_FILE`].
    pub fn save(work_dir: &Path) -> Result<Self> {
        let state = AuditState::read()?;
        write_saved(&state, None)?;
        Ok(AuditGuard {
            saved: Some(state),
            work_dir: work_dir.to_path_buf(),
        })
    }

    /// Notes the auditd this run started, so that its pid file can be removed after a SIGKILL.
    pub fn record_daemon(&self, pid: u32) -> Result<()> {
        write_saved(self.saved.as_ref().expect("not yet restored"), Some(pid))
    }

    /// Restores now, reporting failure (instead of only printing it, as dropping does).
    pub fn restore(mut self) -> Result<()> {
        let state = self.saved.take().expect("restored once");
        state.restore(&self.work_dir)?;
        std::fs::remove_file(STATE_FILE).with_context(|| format!("removing {STATE_FILE}"))?;
        Ok(())
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        if let Some(state) = self.saved.take() {
            match state.restore(&self.work_dir) {
                Ok(()) => {
                    let _ = std::fs::remove_file(STATE_FILE);
                }
                Err(err) => crate::say!(
                    "error: could not restore the audit state: {err:#}; it is saved in \
                     {STATE_FILE} and the next `aegis-bench attack` restores it"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "enabled 0\nfailure 1\npid 0\nrate_limit 0\nbacklog_limit 64\nlost 7\n\
                          backlog 0\nbacklog_wait_time 15000\nbacklog_wait_time_actual 0\n\
                          loginuid_immutable 0 unlocked\n";

    #[test]
    fn a_damaged_state_file_names_the_fix_and_blocks_only_audit_runs() {
        let Err(err) = parse_saved("{\"owner_pid\": ", true) else {
            panic!("a damaged file parsed");
        };
        let why = err.downcast_ref::<InputError>().unwrap().0.clone();
        assert!(
            why.contains("auditctl -l") && why.contains("delete that file"),
            "{why}"
        );
        assert!(parse_saved("not json", false).unwrap().is_none());
    }

    #[test]
    fn parses_auditctl_status() {
        let status = AuditStatus::parse(STATUS).unwrap();
        assert_eq!(status.backlog_limit, 64);
        assert_eq!(status.backlog_wait_time, 15000);
        assert_eq!(status.lost, 7);
        assert_eq!(status.settings().lost, 0);
        assert_eq!(status.settings().backlog_limit, 64);
    }

    #[test]
    fn a_missing_line_is_an_error() {
        let text = STATUS.replace("lost 7\n", "");
        let err = AuditStatus::parse(&text).unwrap_err().to_string();
        assert!(err.contains("no 'lost' line"), "{err}");
    }

    #[test]
    fn start_ticks_of_self() {
        assert!(start_ticks(std::process::id()).is_some());
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
