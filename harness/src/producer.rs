//! Runs the attack worker (`aegis-bench attack-worker`, see [`attacks::worker`]) and waits for
//! it, staying responsive to Ctrl-C.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use attacks::worker::REPORT_BYTES;
use attacks::{AttackReport, FloodSpec};

use crate::collector::builtin::helper_command;

/// Extra time past the requested duration before a worker counts as hung.
const GRACE: Duration = Duration::from_secs(60);

/// Where and how the attack runs besides its counted cgroup.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    pub nice: Option<i32>,
    pub extra_cgroup_procs: Vec<std::path::PathBuf>,
}

pub enum Producer<'a> {
    Flood(&'a FloodSpec),
    Command {
        argv: &'a [String],
        duration: Duration,
    },
}

impl Producer<'_> {
    fn duration(&self) -> Duration {
        match self {
            Producer::Flood(spec) => spec.duration,
            Producer::Command { duration, .. } => *duration,
        }
    }
}

/// Worker arguments for one attack.
fn worker_args(
    producer: &Producer<'_>,
    placement: &Placement,
    cgroup_procs: &Path,
    report: &Path,
    canary: &Path,
    scratch: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["attack-worker".into()];
    let mut push = |flag: &str, value: OsString| {
        args.push(flag.into());
        args.push(value);
    };
    push("--cgroup-procs", cgroup_procs.into());
    push("--report", report.into());
    push("--canary", canary.into());
    push("--scratch", scratch.into());
    push(
        "--duration",
        producer.duration().as_secs_f64().to_string().into(),
    );
    if let Some(nice) = placement.nice {
        push("--nice", nice.to_string().into());
    }
    for extra in &placement.extra_cgroup_procs {
        push("--extra-cgroup-procs", extra.into());
    }
    match producer {
        Producer::Flood(spec) => {
            push("--flood", spec.kind.name().into());
            push("--threads", spec.threads.to_string().into());
            if let Some(count) = spec.count {
                push("--count", count.to_string().into());
            }
            if let Some(rate) = spec.rate_per_s {
                push("--rate", rate.to_string().into());
            }
        }
        Producer::Command { argv, .. } => {
            args.push("--".into());
            args.extend(argv.iter().map(OsString::from));
        }
    }
    args
}

/// Runs the attack to completion inside the cgroup whose `cgroup.procs` is given.
pub fn run(
    producer: &Producer<'_>,
    placement: &Placement,
    cgroup_procs: &Path,
    work_dir: &Path,
    canary: &Path,
    mut on_tick: impl FnMut(Duration),
) -> Result<AttackReport> {
    let report = work_dir.join("attack-report.json");
    std::fs::File::create(&report)?.set_len(REPORT_BYTES as u64)?;
    let args = worker_args(producer, placement, cgroup_procs, &report, canary, work_dir);
    let arg_refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mut child = helper_command(&arg_refs)?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the attack worker")?;
    let started = Instant::now();
    let limit = producer.duration() + GRACE;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Err(interrupted) = crate::signals::check() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(interrupted.into());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the attack worker was still running {limit:?} after it started; killed it");
        }
        on_tick(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        bail!("the attack worker failed ({status}); see its message above");
    }
    AttackReport::read(&report).context("reading the attack worker's report")
}
