//! One trial as typed stages: `Armed` (arm.rs) -> `Fired` (fire.rs) -> `Disarmed`
//! (disarm.rs) -> [`Trial`] (account.rs, record.rs). Each stage owns what it started, in the
//! order it must be released, so a trial that ends early (an error, a panic) puts the machine
//! back in that order.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::results::trial::{now_rfc3339, Trial};

use super::arm::Armed;
use super::plan::{Plan, TrialSpec};

/// What every stage of one trial reads: the plan, the trial's cell and where it works.
pub(super) struct Setup<'a> {
    pub(super) plan: &'a Plan,
    pub(super) spec: &'a TrialSpec,
    /// The cgroup2 root the attack's (and the workload's) cgroups are made under.
    pub(super) root: &'a Path,
    pub(super) serial: u32,
    pub(super) trial_dir: PathBuf,
    pub(super) started_at: String,
}

pub(super) fn run_trial(
    plan: &Plan,
    spec: &TrialSpec,
    root: &Path,
    work_dir: &Path,
    serial: u32,
    alone: Option<super::bench::Alone>,
) -> Result<Trial> {
    let trial_dir = work_dir.join(format!("trial-{serial}"));
    std::fs::create_dir_all(&trial_dir)?;
    let setup = Setup {
        plan,
        spec,
        root,
        serial,
        trial_dir,
        started_at: now_rfc3339(),
    };
    // The ground-truth program's BPF object lives here, declared before the stages that
    // borrow it, so it outlives them.
    let mut truth_object = MaybeUninit::uninit();
    let armed = Armed::arm(&setup, &mut truth_object)?;
    inject_fault("armed")?;
    let fired = armed.fire(&setup)?;
    let disarmed = fired.disarm(&setup)?;
    disarmed.account(&setup, alone)
}

/// Fault injection for the clean-up tests: `AEGIS_BENCH_INJECT_FAULT=panic` or `=error` fails
/// the trial once everything is armed (stage `armed`), `panic@workload` or `error@workload`
/// once the workload beside the attack has started (stage `workload`), so the tests can check
/// that every exit path puts the kernel back; `sigkill` (`sigkill@workload`) kills the harness
/// there, to check what dies with it and what the next run repairs.
pub(super) fn inject_fault(stage: &str) -> Result<()> {
    let wanted = std::env::var("AEGIS_BENCH_INJECT_FAULT").unwrap_or_default();
    let (kind, at) = wanted.split_once('@').unwrap_or((&wanted, "armed"));
    if at != stage {
        return Ok(());
    }
    match kind {
        "panic" => panic!("fault injected at {stage} (AEGIS_BENCH_INJECT_FAULT={wanted})"),
        "error" => anyhow::bail!("fault injected at {stage} (AEGIS_BENCH_INJECT_FAULT={wanted})"),
        "sigkill" => {
            crate::say!("fault injected at {stage}: SIGKILL (AEGIS_BENCH_INJECT_FAULT={wanted})");
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL)?;
            unreachable!("SIGKILL returned")
        }
        _ => Ok(()),
    }
}
