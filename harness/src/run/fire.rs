//! Fire: the producer floods from its cgroup, its threads and the collector's counted by perf
//! counters and, with `--watch-run-delay`, their waits on a run queue sampled; a workload
//! beside the attack starts once the attack worker has joined its cgroup. [`Fired`] owns what
//! is still running when the flood ends.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use attacks::{AttackReport, FloodSpec};
use indicatif::{ProgressBar, ProgressStyle};

use crate::collector::RunningCollector;
use crate::measure::perf_counters::{Counted, ProcessCounters, Totals};
use crate::measure::run_delay::{RunDelayReport, RunDelayWatch, Watched};
use crate::measure::truth::GroundTruth;
use crate::results::scope::TraceGroup;
use crate::results::trial::RunDelayOutcome;
use crate::run::producer::{self, Producer};
use crate::run::workload::RunningWorkload;
use crate::sched::freeze::Freezer;
use crate::sched::FairVariant;

use super::arm::Armed;
use super::plan::ProducerPlan;
use super::trial::{inject_fault, Setup};

/// A trial whose flood has ended. Fields drop in declaration order: a trial that ends early
/// stops the workload and closes the collector's counters before releasing what [`Armed`]
/// holds.
pub(super) struct Fired<'t> {
    /// The workload beside the attack, still to be waited for.
    pub(super) beside: Option<RunningWorkload>,
    /// Read once the collector has drained and exited.
    pub(super) collector_counters: Option<ProcessCounters>,
    pub(super) armed: Armed<'t>,
    pub(super) report: AttackReport,
    /// The flood run (`None` for a `--cmd` producer).
    pub(super) flood_spec: Option<FloodSpec>,
    pub(super) canary: PathBuf,
    pub(super) attack_totals: Totals,
    pub(super) run_delay: RunDelayOutcome,
    /// What `freeze-on-fill` did, as the trial's `scheduler_stats`.
    pub(super) freeze_stats: Option<serde_json::Value>,
}

impl<'t> Armed<'t> {
    /// Runs the producer to its end; once its worker is in its cgroup and before it floods,
    /// a collector scoped by pid learns its pid and the workload starts (in its own cgroup),
    /// so both begin with the flood.
    pub(super) fn fire(mut self, setup: &Setup<'_>) -> Result<Fired<'t>> {
        let plan = setup.plan;
        // In the trial's private (0700) directory: no other user can create it first, and its
        // random name is not guessable from the worker's arguments.
        let canary = setup
            .trial_dir
            .join(format!("canary-{:016x}", rand::random::<u64>()));
        let flood_spec = flood_spec(setup);
        let producer = match (&flood_spec, &plan.producer) {
            (Some(flood), _) => Producer::Flood(flood),
            (None, ProducerPlan::Command(argv)) => Producer::Command {
                argv,
                duration: plan.duration,
            },
            (None, ProducerPlan::Flood { .. }) => unreachable!("flood plans carry a spec"),
        };
        // The collector's threads exist once it is attached; its counters run through its drain.
        let collector_counters = (self.collector.pid() != 0).then(|| {
            let all = [Counted::SOFTWARE, Counted::HARDWARE].concat();
            ProcessCounters::open(self.collector.pid(), &all)
        });
        let run_delay = self.watch_run_delay(plan.watch_run_delay)?;
        let bar = progress_bar(plan.duration);
        let needs_pid = self.collector.needs_attack_pid();
        let mut beside: Option<RunningWorkload> = None;
        let mut freezer: Option<Freezer> = None;
        let mut attack_counters = None;
        let collector = &mut self.collector;
        let truth = &self.truth;
        let attack_cgroup = self.cgroup.path().to_path_buf();
        let freeze_on_fill = self.variant == Some(FairVariant::FreezeOnFill);
        let mut on_joined = |pid: u32| -> Result<()> {
            // The worker's threads exist and are parked at the gate: counted from before the
            // flood, with anything they start later inherited.
            attack_counters = Some(ProcessCounters::open(pid, &Counted::SOFTWARE));
            if needs_pid {
                collector.attack_joined(pid)?;
            }
            if let Some(name) = setup.spec.workload {
                let workload = start_workload(setup, name, truth)?;
                if let Some(watch) = &run_delay {
                    watch.add_cgroup("workload", workload.cgroup_path().to_path_buf());
                }
                beside = Some(workload);
                inject_fault("workload")?;
            }
            if freeze_on_fill {
                freezer = Some(start_freezer(
                    collector.as_ref(),
                    &attack_cgroup,
                    plan.duration,
                )?);
            }
            Ok(())
        };
        // Always gated: the attack's perf counters are opened at the gate.
        let report = producer::run(
            &producer,
            &self.placement,
            &self.cgroup.procs_file(),
            &setup.trial_dir,
            &canary,
            Some(&mut on_joined as producer::OnJoined<'_>),
            |elapsed| bar.set_position(elapsed.as_millis() as u64),
        );
        bar.finish_and_clear();
        let freeze_stats = match freezer {
            Some(freezer) => Some(serde_json::to_value(freezer.finish()?)?),
            None => None,
        };
        let run_delay = run_delay.map(RunDelayWatch::finish);
        // The worker has exited: every flood thread's count is final.
        let attack_totals = attack_counters
            .map(|counters| counters.finish("the attack"))
            .unwrap_or_default();
        let report = report?;
        Ok(Fired {
            beside,
            collector_counters,
            armed: self,
            report,
            flood_spec,
            canary,
            attack_totals,
            run_delay: RunDelayOutcome::measured(run_delay.as_ref()),
            freeze_stats,
        })
    }
}

impl Armed<'_> {
    /// `--watch-run-delay`'s observer of the attack's cgroup and the collector, if asked for.
    fn watch_run_delay(&self, wanted: bool) -> Result<Option<RunDelayWatch>> {
        if !wanted {
            return Ok(None);
        }
        Ok(Some(RunDelayWatch::start(Watched {
            cgroups: vec![("attack", self.cgroup.path().to_path_buf())],
            pids: vec![("collector", self.collector.pid())],
        })?))
    }
}

/// Starts workload `name` beside the attack and waits until it is at work (the flood is
/// released next). Under `--trace-scope all` its cgroup is classed while still empty, so no
/// event sees its group change.
fn start_workload(
    setup: &Setup<'_>,
    name: &'static str,
    truth: &GroundTruth<'_>,
) -> Result<RunningWorkload> {
    let trace_all = setup.plan.trace_scope.is_all();
    let mut workload = RunningWorkload::start(
        name,
        setup.root,
        &setup.serial.to_string(),
        setup.plan.duration,
        &setup.trial_dir,
        |cgroup_id| {
            if trace_all {
                truth.classify(cgroup_id, TraceGroup::Workload)
            } else {
                Ok(())
            }
        },
    )?;
    workload.wait_until_working()?;
    Ok(workload)
}

/// `freeze-on-fill`'s freezer on the collector's pinned ring, for a flood of `duration`.
fn start_freezer(
    collector: &dyn RunningCollector,
    attack_cgroup: &std::path::Path,
    duration: Duration,
) -> Result<Freezer> {
    let pin = collector
        .pinned_ring()
        .context("freeze-on-fill needs a collector whose ring is pinned")?;
    // A little past the flood's end at most: it never holds the attack past it.
    let until = std::time::Instant::now() + duration + Duration::from_secs(1);
    Freezer::start(&pin, attack_cgroup, until)
}

/// The plan's flood at this trial's thread count; `None` for a `--cmd` producer.
fn flood_spec(setup: &Setup<'_>) -> Option<FloodSpec> {
    match &setup.plan.producer {
        ProducerPlan::Flood { spec, .. } => Some(FloodSpec {
            threads: setup.spec.threads,
            ..spec.clone()
        }),
        ProducerPlan::Command(_) => None,
    }
}

fn progress_bar(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("  flooding [{bar:30}] {elapsed_precise}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

impl RunDelayOutcome {
    fn measured(report: Option<&RunDelayReport>) -> Self {
        let workload = report.and_then(|r| r.fairness("workload"));
        let attack = report.and_then(|r| r.fairness("attack"));
        Self {
            run_delay_max_ms: report.map(|r| r.max_wait_ms),
            run_delay_max_task: report.and_then(|r| r.max_wait_task.clone()),
            run_delay_max_sample_gap_ms: report.map(|r| r.max_sample_gap_ms),
            run_delay_p50_ms: report.and_then(|r| r.p50_wait_ms),
            run_delay_p99_ms: report.and_then(|r| r.p99_wait_ms),
            run_delay_cdf_ms: report
                .map(|r| r.cdf_ms.clone())
                .filter(|cdf| !cdf.is_empty()),
            fairness_workload_jain: workload.map(|(jain, _)| jain),
            fairness_workload_tasks: workload.map(|(_, tasks)| tasks),
            fairness_attack_jain: attack.map(|(jain, _)| jain),
            fairness_attack_tasks: attack.map(|(_, tasks)| tasks),
            run_delay_waits_ns: report
                .map(|r| r.waits_ns.clone())
                .filter(|waits| !waits.is_empty()),
            cpu_s_by_group: report
                .map(|r| r.cpu_s_by_group())
                .filter(|groups| !groups.is_empty()),
        }
    }
}
