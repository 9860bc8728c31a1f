//! Runs the attack worker (`aegis-bench attack-worker`, see [`attacks::worker`]) and waits for
//! it, staying responsive to Ctrl-C.
//!
//! With an `on_joined` hook the worker holds at a gate once it is in the attack's cgroup; the
//! hook gets its pid (a collector scoped by pid installs its rules then) and the flood starts
//! when the hook returns.

use std::ffi::OsString;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use attacks::worker::{GATE_BYTES, GATE_GO_OFFSET, GATE_JOINED_OFFSET, REPORT_BYTES};
use attacks::{AttackReport, FloodSpec};

use crate::collector::builtin::helper_command;

/// Extra time past the requested duration before a worker counts as hung.
const GRACE: Duration = Duration::from_secs(60);
/// How long the worker may take to reach the gate (it only maps files and spawns threads).
const GATE_REACH_TIMEOUT: Duration = Duration::from_secs(30);

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
    gate: Option<&Path>,
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
    if let Some(gate) = gate {
        push("--gate", gate.into());
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
            if !spec.evade.is_none() {
                push("--evade", spec.evade.to_string().into());
            }
        }
        Producer::Command { argv, .. } => {
            args.push("--".into());
            args.extend(argv.iter().map(OsString::from));
        }
    }
    args
}

/// Called with the worker's pid once it is in the cgroup, before its flood starts.
pub type OnJoined<'a> = &'a mut dyn FnMut(u32) -> Result<()>;

/// Runs the attack to completion inside the cgroup whose `cgroup.procs` is given.
pub fn run(
    producer: &Producer<'_>,
    placement: &Placement,
    cgroup_procs: &Path,
    work_dir: &Path,
    canary: &Path,
    on_joined: Option<OnJoined<'_>>,
    mut on_tick: impl FnMut(Duration),
) -> Result<AttackReport> {
    let report = work_dir.join("attack-report.json");
    std::fs::File::create(&report)?.set_len(REPORT_BYTES as u64)?;
    let gate = match on_joined {
        Some(_) => {
            let path = work_dir.join("attack-gate");
            std::fs::File::create(&path)?.set_len(GATE_BYTES as u64)?;
            Some(path)
        }
        None => None,
    };
    let args = worker_args(
        producer,
        placement,
        cgroup_procs,
        &report,
        canary,
        work_dir,
        gate.as_deref(),
    );
    let arg_refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let mut child = helper_command(&arg_refs)?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the attack worker")?;
    if let (Some(path), Some(on_joined)) = (&gate, on_joined) {
        // Any failure here kills the worker: it is parked in the cgroup and must not flood.
        let opened = open_gate(&mut child, path, on_joined);
        if let Err(err) = opened {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
    }
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

/// Waits until the worker is in the cgroup and holding at the gate, runs `on_joined`, and
/// lets the flood start.
fn open_gate(child: &mut std::process::Child, path: &Path, on_joined: OnJoined<'_>) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let deadline = Instant::now() + GATE_REACH_TIMEOUT;
    loop {
        crate::signals::check()?;
        let mut word = [0u8; 4];
        // The worker stores through a shared mapping of the same pages: a read sees it.
        file.read_exact_at(&mut word, GATE_JOINED_OFFSET as u64)?;
        if u32::from_ne_bytes(word) != 0 {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("the attack worker exited ({status}) before joining its cgroup; see its message above");
        }
        if Instant::now() > deadline {
            bail!("the attack worker did not join its cgroup within {GATE_REACH_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    on_joined(child.id())?;
    file.write_all_at(&1u32.to_ne_bytes(), GATE_GO_OFFSET as u64)
        .context("opening the attack's gate")?;
    Ok(())
}
