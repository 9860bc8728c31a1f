//! A standard workload (the `workloads` crate) run beside the attack, and alone for the
//! no-attack baseline: what the attack, and each scheduler, cost everyone else.
//!
//! The workload runs in a cgroup v2 group of its own, `aegis-bench-<pid>-<n>-workload`, never
//! in the attack's: ground truth and the collectors count by the attack's cgroup id, so the
//! workload's syscalls stay out of the attack's account (under `--trace-scope all` they are
//! the `workload` group's, by this cgroup's id). The harness starts `aegis-bench
//! workload-worker` (a helper in its own process group that dies with the harness), which
//! moves itself into that group, runs the real tool through the `workloads` crate and writes
//! the parsed [`WorkloadResult`] as JSON. Every process the tool starts inherits the group, so
//! emptying the group (`cgroup.kill`) stops all of it: [`RunningWorkload`] does that and
//! removes the group when dropped, on success, error, Ctrl-C and panic alike; after a SIGKILL
//! of the harness the next run removes the stale group like an attack's.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use workloads::{Amount, WorkloadResult};

use crate::collector::builtin::helper_command;
use crate::error::InputError;
use crate::measure::cgroup::AttackCgroup;

/// Extra time past the requested duration before a workload counts as hung (hackbench's last
/// round may start just before the deadline and run slowly beside a flood).
const GRACE: Duration = Duration::from_secs(60);

/// Validates `--workload` names: known, available on this machine, listed once each.
pub fn parse_names(names: &[String]) -> Result<Vec<&'static str>, InputError> {
    let mut picked: Vec<&'static str> = Vec::new();
    for name in names {
        let name = name.trim();
        let Some(workload) = workloads::by_name(name) else {
            return Err(InputError(format!(
                "unknown workload '{name}'; choose one of: {}",
                workloads::names().join(", ")
            )));
        };
        if !picked.contains(&workload.name()) {
            picked.push(workload.name());
        }
    }
    Ok(picked)
}

/// Fails with the Debian package to install when a tool of workload `name` is missing.
pub fn check_available(name: &str) -> Result<(), InputError> {
    let workload =
        workloads::by_name(name).ok_or_else(|| InputError(format!("unknown workload '{name}'")))?;
    workload
        .check_available()
        .map_err(|missing| InputError(format!("workload {name}: {missing}")))
}

/// The paths of the tools workload `name` runs, for copying them into a guest.
pub fn tool_paths(name: &str) -> Result<Vec<PathBuf>, InputError> {
    check_available(name)?;
    let workload = workloads::by_name(name).expect("checked above");
    Ok(workload
        .tools()
        .iter()
        .filter_map(|(tool, _)| workloads::find_tool(tool))
        .collect())
}

/// Throughput per second and its unit, from a workload's result.
pub fn throughput(result: &WorkloadResult) -> Result<(f64, String)> {
    match &result.throughput {
        Some((per_s, unit)) if per_s.is_finite() && *per_s > 0.0 => Ok((*per_s, unit.clone())),
        Some((per_s, unit)) => bail!(
            "workload {} reported a throughput of {per_s} {unit}; expected a positive number",
            result.name
        ),
        None => bail!("workload {} reported no throughput", result.name),
    }
}

/// The share of its no-attack throughput a workload kept beside the attack.
pub fn kept_fraction(beside_per_s: f64, alone_per_s: f64) -> Option<f64> {
    (alone_per_s > 0.0 && beside_per_s.is_finite()).then(|| beside_per_s / alone_per_s)
}

/// A workload running in its own cgroup. Dropping it kills the worker and everything in the
/// group and removes the group.
pub struct RunningWorkload {
    name: &'static str,
    child: Option<Child>,
    report: PathBuf,
    duration: Duration,
    started: Instant,
    // Dropped after `Drop::drop` has reaped the worker: empties and removes the group.
    cgroup: AttackCgroup,
}

impl RunningWorkload {
    /// The cgroup the workload runs in.
    pub fn cgroup_path(&self) -> &std::path::Path {
        self.cgroup.path()
    }

    /// Creates the group `aegis-bench-<pid>-<tag>-workload` under `root`, hands its id to
    /// `created` while it is still empty (ground truth classes it), and starts workload `name`
    /// in it for `duration`; its result goes to a file in `dir`.
    pub fn start(
        name: &'static str,
        root: &Path,
        tag: &str,
        duration: Duration,
        dir: &Path,
        created: impl FnOnce(u64) -> Result<()>,
    ) -> Result<Self> {
        let cgroup = AttackCgroup::create_named(root, &format!("{tag}-workload"))?;
        created(cgroup.id())?;
        let report = dir.join(format!("workload-{tag}.json"));
        let _ = std::fs::remove_file(&report);
        let secs = duration.as_secs_f64().to_string();
        let procs = cgroup.procs_file();
        let args: Vec<&std::ffi::OsStr> = vec![
            "workload-worker".as_ref(),
            "--name".as_ref(),
            name.as_ref(),
            "--duration".as_ref(),
            secs.as_ref(),
            "--cgroup-procs".as_ref(),
            procs.as_os_str(),
            "--report".as_ref(),
            report.as_os_str(),
        ];
        let child = helper_command(&args)?
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting workload {name}"))?;
        Ok(Self {
            name,
            child: Some(child),
            report,
            duration,
            started: Instant::now(),
            cgroup,
        })
    }

    /// Waits until the workload's tool runs and has used [`WORKING_CPU_S`] of CPU since it
    /// appeared in the group, so that an attack released next runs beside the tool's work and
    /// not beside its start-up. Without this, under a FIFO collector and eight flood threads in
    /// the guest, stress-ng started ~4 s late, ran its 4 s mostly after the flood and reported
    /// 1.07 of its throughput alone. Returns early if the worker exits (`finish` reports why).
    pub fn wait_until_working(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let worker = child.id();
        let deadline = Instant::now() + START_TIMEOUT;
        let mut cpu_when_tool_seen: Option<f64> = None;
        loop {
            crate::signals::check()?;
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            let used_s = self.cgroup.cpu_usage_s().unwrap_or(0.0);
            match cpu_when_tool_seen {
                None => {
                    let procs =
                        std::fs::read_to_string(self.cgroup.procs_file()).unwrap_or_default();
                    if procs
                        .split_whitespace()
                        .any(|pid| pid.parse::<u32>().is_ok_and(|pid| pid != worker))
                    {
                        cpu_when_tool_seen = Some(used_s);
                    }
                }
                Some(at_s) if used_s - at_s >= WORKING_CPU_S => {
                    // The tool's own clock started about now.
                    self.started = Instant::now();
                    return Ok(());
                }
                Some(_) => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "workload {} was not working {START_TIMEOUT:?} after it was started (its \
                     group used {used_s:.3} s of CPU, its tool {}); is the machine overloaded?",
                    self.name,
                    if cpu_when_tool_seen.is_some() {
                        "had started"
                    } else {
                        "had not started"
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the workload to finish (staying responsive to Ctrl-C) and returns its result
    /// and the wall-clock seconds from its start to its end.
    pub fn finish(mut self) -> Result<(WorkloadResult, f64)> {
        let limit = self.duration + GRACE;
        let child = self.child.as_mut().expect("running until finished");
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            crate::signals::check()?;
            if self.started.elapsed() > limit {
                bail!(
                    "workload {} was still running {limit:?} after it started; killed it",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall_s = self.started.elapsed().as_secs_f64();
        self.child = None;
        // Whatever the tool left behind does not outlive its run.
        self.cgroup.kill_all(Duration::from_secs(10))?;
        if !status.success() {
            bail!(
                "workload {} failed ({status}); see its message above",
                self.name
            );
        }
        let text = std::fs::read_to_string(&self.report)
            .with_context(|| format!("reading the result of workload {}", self.name))?;
        let result: WorkloadResult = serde_json::from_str(&text)
            .with_context(|| format!("parsing the result of workload {}", self.name))?;
        Ok((result, wall_s))
    }
}

/// CPU a workload's tool must use before the attack beside it is released.
pub const WORKING_CPU_S: f64 = 0.05;
/// How long a workload may take to start working (TCG guests start tools slowly).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A warning when a workload ran much longer than the attack beside it (a `compile` build or
/// a slow last hackbench round outlasting the flood): its throughput then also covers time
/// without the attack, and its kept fraction overstates what it kept.
pub fn outlasted(name: &str, wall_s: f64, attack_s: f64) -> Option<String> {
    (wall_s > 1.25 * attack_s + 0.5).then(|| {
        format!(
            "warning: workload {name} ran {wall_s:.1} s, the attack {attack_s:.1} s: its \
             throughput beside the attack partly covers time without it"
        )
    })
}

impl Drop for RunningWorkload {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Then `cgroup` drops: the tool's processes are killed with the group.
    }
}

/// `aegis-bench workload-worker`: joins the workload's cgroup, runs the tool for `duration`
/// and writes the result as JSON to `report` (through a temporary file, so the harness never
/// reads half of it).
pub fn worker(name: &str, duration: Duration, cgroup_procs: &Path, report: &Path) -> Result<()> {
    let workload = workloads::by_name(name).with_context(|| format!("unknown workload {name}"))?;
    // "0" moves the writing process; the tools it starts inherit the group.
    std::fs::write(cgroup_procs, "0")
        .with_context(|| format!("joining the workload's cgroup ({})", cgroup_procs.display()))?;
    let result = workload
        .run(Amount::Duration(duration))
        .with_context(|| format!("workload {name}"))?;
    crate::files::write_atomically(report, &serde_json::to_vec(&result)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_checked_and_deduplicated() {
        assert_eq!(
            parse_names(&strings(&["stress-ng-cpu", "hackbench", "stress-ng-cpu"])).unwrap(),
            ["stress-ng-cpu", "hackbench"]
        );
        let err = parse_names(&strings(&["hackbench", "stress"]))
            .unwrap_err()
            .0;
        assert_eq!(
            err,
            "unknown workload 'stress'; choose one of: stress-ng-cpu, hackbench, sysbench-cpu, \
             nginx-wrk, redis, compile"
        );
    }

    fn result(throughput: Option<(f64, &str)>) -> WorkloadResult {
        WorkloadResult {
            name: "stress-ng-cpu".into(),
            runtime_s: 2.0,
            throughput: throughput.map(|(v, u)| (v, u.to_string())),
            latency_p50_us: None,
            latency_p99_us: None,
            summary: String::new(),
        }
    }

    #[test]
    fn throughput_and_kept_fraction() {
        // What the worker writes and the harness reads back.
        let json = serde_json::to_string(&result(Some((2361.22, "bogo ops/s")))).unwrap();
        let back: WorkloadResult = serde_json::from_str(&json).unwrap();
        assert_eq!(
            throughput(&back).unwrap(),
            (2361.22, "bogo ops/s".to_string())
        );
        assert!(throughput(&result(None)).is_err());
        assert!(throughput(&result(Some((0.0, "bogo ops/s")))).is_err());
        assert!(throughput(&result(Some((f64::NAN, "bogo ops/s")))).is_err());
        assert_eq!(kept_fraction(500.0, 2000.0), Some(0.25));
        assert_eq!(kept_fraction(500.0, 0.0), None);
        assert_eq!(outlasted("stress-ng-cpu", 2.1, 2.0), None);
        let warning = outlasted("compile", 5.0, 1.0).unwrap();
        assert!(warning.contains("ran 5.0 s, the attack 1.0 s"), "{warning}");
    }
}
