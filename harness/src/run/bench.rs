//! The trial loop: a bench prepared once per run, each trial run and exported in turn, for
//! `attack` ([`run_attack`]) and `run --matrix` alike ([`Bench::run_all`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::collector::audit_state;
use crate::collector::{self, CollectorKind};
use crate::error::InputError;
use crate::export::{table, Exporters};
use crate::measure::cgroup::{self};
use crate::results::trial::Trial;
use crate::run::workload::{self, RunningWorkload};
use crate::sched::scx::RunningScx;
use crate::sched::SchedulerSpec;
use crate::{measure::mounts, signals};

use super::plan::{Plan, TrialSpec};
use super::trial::run_trial;
use super::work_dir;

/// Checks made after the flags and before anything is changed.
pub fn check_privileges() -> Result<(), InputError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(InputError(
            "aegis-bench attack loads BPF programs and creates cgroups, which needs root: run it \
             with sudo (or as root)"
                .into(),
        ));
    }
    Ok(())
}

/// The state shared by a run's trials: checked privileges, signal handling, a work
/// directory, stale state from a killed run cleaned up, tracefs mounted, and each workload's
/// no-attack throughput per scheduler and repetition (measured before the repetition's first
/// trial that needs it, so baselines interleave with the attacked runs and each trial's kept
/// fraction divides by its own repetition's baseline).
pub struct Bench {
    work_dir: tempfile::TempDir,
    root: PathBuf,
    _tracefs: mounts::TracefsGuard,
    /// (scheduler, workload, repetition, the workload alone).
    alone: Vec<(String, &'static str, u32, Alone)>,
    serial: u32,
}

impl Bench {
    /// Prepares the machine for trials; `uses_audit` when a trial will run auditd.
    pub fn open(uses_audit: bool) -> Result<Bench> {
        check_privileges()?;
        signals::install()?;
        work_dir::sweep_stale_and_say();
        let work_dir = work_dir::create()?;
        if audit_state::recover_stale(uses_audit, work_dir.path())? {
            crate::say!(
                "note: restored the audit rules and settings an aegis-bench that was killed left \
                 behind"
            );
        }
        if uses_audit {
            collector::check_available(CollectorKind::Auditd, None)?;
        }
        let root = cgroup::cgroup2_root()?;
        let stale = cgroup::remove_stale(&root);
        if stale > 0 {
            crate::say!(
                "note: removed {stale} attack cgroup(s) left by an aegis-bench that was killed"
            );
        }
        let tracefs = mounts::ensure_tracefs()?;
        if tracefs.mounted_by_us() {
            crate::say!(
                "note: mounted tracefs at {} for this run (unmounted afterwards)",
                mounts::TRACEFS
            );
        }
        Ok(Bench {
            work_dir,
            root,
            _tracefs: tracefs,
            alone: Vec::new(),
            serial: 0,
        })
    }

    /// Runs one trial of `plan` (its workload's baseline first, if not measured yet).
    pub fn run(&mut self, plan: &Plan, spec: &TrialSpec) -> Result<Trial> {
        signals::check()?;
        let scheduler = plan.scheduler_name(spec);
        let alone = match spec.workload {
            None => None,
            Some(name) => {
                let known = self
                    .alone
                    .iter()
                    .find(|(s, w, r, _)| *s == scheduler && *w == name && *r == spec.repetition)
                    .map(|(_, _, _, alone)| *alone);
                let alone = match known {
                    Some(alone) => alone,
                    None => {
                        let alone = run_alone(
                            plan,
                            &spec.scheduler,
                            name,
                            &self.root,
                            self.work_dir.path(),
                            self.alone.len() as u32,
                        )
                        .with_context(|| {
                            format!("workload {name} alone under {scheduler} (the baseline)")
                        })?;
                        self.alone
                            .push((scheduler.clone(), name, spec.repetition, alone));
                        alone
                    }
                };
                Some(alone)
            }
        };
        let serial = self.serial;
        self.serial += 1;
        run_trial(plan, spec, &self.root, self.work_dir.path(), serial, alone)
    }
}

/// A workload's no-attack baseline: its throughput per second and, for the servers, its p99
/// latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alone {
    pub per_s: f64,
    pub latency_p99_us: Option<f64>,
}

/// What differs between the runs that share the trial loop ([`Bench::run_all`]): how a trial
/// is announced, where the trials go after each one, and what a failed trial does to the run.
pub trait TrialSink {
    /// The progress line before trial `index` (0-based) of `total`, which starts now.
    fn announce(&mut self, index: usize, total: usize, plan: &Plan, spec: &TrialSpec) -> String;
    /// Exports the trials so far; called after each finished trial.
    fn export(&mut self, trials: &[Trial]) -> Result<()>;
    /// Trial `index` failed with `err` after `done` trials: `Ok` goes on with the next one,
    /// an error ends the run.
    fn failed(
        &mut self,
        index: usize,
        plan: &Plan,
        spec: &TrialSpec,
        err: anyhow::Error,
        done: usize,
    ) -> Result<()>;
    /// What a Ctrl-C between trials ends the run with, after `done` trials.
    fn interrupted(&mut self, err: anyhow::Error, _done: usize) -> anyhow::Error {
        err
    }
}

impl Bench {
    /// The trial loop of `attack` and `run --matrix`: runs `jobs` in order, appending each
    /// finished trial to `trials` and exporting them all after each one. A Ctrl-C between
    /// trials ends the run (one during a trial fails that trial, which cleans up first).
    pub fn run_all(
        &mut self,
        jobs: &[(&Plan, &TrialSpec)],
        trials: &mut Vec<Trial>,
        sink: &mut dyn TrialSink,
    ) -> Result<()> {
        for (index, (plan, spec)) in jobs.iter().enumerate() {
            if let Err(err) = signals::check() {
                return Err(sink.interrupted(err.into(), trials.len()));
            }
            crate::say!("{}", sink.announce(index, jobs.len(), plan, spec));
            match self.run(plan, spec) {
                Ok(trial) => {
                    trials.push(trial);
                    sink.export(trials)?;
                }
                Err(err) => sink.failed(index, plan, spec, err, trials.len())?,
            }
        }
        Ok(())
    }
}

/// `attack`'s trials: numbered progress lines, `--json`/`--csv` rewritten after each trial
/// (in plan order: the run order is shuffled, and each trial's `started_at` keeps it), and the
/// first failure ends the run.
struct AttackSink<'a> {
    plan: &'a Plan,
    exporters: Exporters,
}

impl TrialSink for AttackSink<'_> {
    fn announce(&mut self, index: usize, total: usize, plan: &Plan, spec: &TrialSpec) -> String {
        format!("trial {}/{total}: {}", index + 1, plan.describe(spec))
    }

    fn export(&mut self, trials: &[Trial]) -> Result<()> {
        self.exporters.write(&in_plan_order(self.plan, trials))
    }

    fn failed(
        &mut self,
        index: usize,
        _plan: &Plan,
        _spec: &TrialSpec,
        err: anyhow::Error,
        _done: usize,
    ) -> Result<()> {
        Err(err.context(format!("trial {}", index + 1)))
    }
}

/// Runs the plan and returns the trials (also printed and exported).
pub fn run_attack(plan: &Plan) -> Result<Vec<Trial>> {
    let mut bench = Bench::open(plan.collectors.contains(&CollectorKind::Auditd))?;
    if let Some(dir) = &plan.keep_logs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut sink = AttackSink {
        plan,
        exporters: Exporters::new(plan.json.clone(), plan.csv.clone()),
    };
    // Seeded random order within each repetition (as `run --matrix`'s), so no scheduler or
    // intensity always runs first; a guest of a several-boot run runs only its boot.
    let specs: Vec<TrialSpec> = super::matrix::run_order(std::slice::from_ref(plan), 0)
        .into_iter()
        .map(|planned| planned.spec)
        .filter(|spec| plan.boot.is_none_or(|boot| spec.boot == boot))
        .collect();
    let jobs: Vec<(&Plan, &TrialSpec)> = specs.iter().map(|spec| (plan, spec)).collect();
    let mut trials = Vec::with_capacity(specs.len());
    bench.run_all(&jobs, &mut trials, &mut sink)?;
    crate::out!("{}", table::render(&in_plan_order(plan, &trials)));
    for path in sink.exporters.paths() {
        crate::out!("wrote {}", path.display());
    }
    Ok(trials)
}

/// `trials` as the plan lists its cells (boot, repetition, scheduler, collector, buffer,
/// threads, workload), for the table and the files: the run order is shuffled.
fn in_plan_order(plan: &Plan, trials: &[Trial]) -> Vec<Trial> {
    let order: std::collections::HashMap<String, usize> = plan
        .trials()
        .iter()
        .enumerate()
        .map(|(index, spec)| (plan.trial_id(spec), index))
        .collect();
    let mut sorted = trials.to_vec();
    sorted.sort_by_key(|t| order.get(&t.id.trial_id).copied());
    sorted
}

/// Runs workload `name` alone, under `scheduler` and without attack or collector, for the
/// plan's duration: the no-attack baseline.
fn run_alone(
    plan: &Plan,
    scheduler: &SchedulerSpec,
    name: &'static str,
    root: &Path,
    work_dir: &Path,
    serial: u32,
) -> Result<Alone> {
    crate::say!(
        "  {name} alone under {} for {} s (the no-attack baseline)",
        scheduler.name(),
        plan.duration.as_secs_f64()
    );
    let dir = work_dir.join(format!("alone-{serial}"));
    std::fs::create_dir_all(&dir)?;
    let mut scx = match scheduler {
        SchedulerSpec::SchedExt { name, binary } => {
            // The user's scheduler arguments apply here too (an ablation is compared with its
            // own baseline); there is no collector to register.
            Some(RunningScx::start(name, binary, &plan.scx_args, &dir)?)
        }
        SchedulerSpec::Fair { .. } => None,
    };
    let running = RunningWorkload::start(
        name,
        root,
        &format!("alone{serial}"),
        plan.duration,
        &dir,
        |_| Ok(()),
    )?;
    let (result, _) = running.finish()?;
    if let Some(mut running) = scx.take() {
        running.check_alive()?;
        running.stop()?;
    }
    let (per_s, unit) = workload::throughput(&result)?;
    crate::say!("  {name} alone: {per_s:.1} {unit}");
    Ok(Alone {
        per_s,
        latency_p99_us: result.latency_p99_us,
    })
}
