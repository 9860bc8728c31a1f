//! Disarm: the attack's cgroup emptied, the workload finished, a baseline's changes put back,
//! `--trace-scope all`'s switch turned off, the collector drained and stopped, the scheduler
//! stopped, ground truth read and detached.
//! [`Disarmed`] keeps only the stopped collector, whose log the account step searches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use attacks::{AttackReport, FloodSpec};
use workloads::WorkloadResult;

use crate::collector::RunningCollector;
use crate::measure::perf_counters::Totals;
use crate::results::collector::CollectorStats;
use crate::sched::policy::FairVariant;

use super::account::GroupTruth;
use super::fire::Fired;
use super::trial::Setup;
use crate::results::scope::TraceGroup;
use crate::results::trial::{Counters, CpuCost, PolicyOutcome, RunDelayOutcome};

/// A trial with nothing left running: what the account step needs.
pub(super) struct Disarmed {
    /// Stopped; dropped once its log has been searched for the canary.
    pub(super) collector: Box<dyn RunningCollector>,
    pub(super) log_path: PathBuf,
    /// The syscalls the collector records for the attack.
    pub(super) traced: BTreeSet<u32>,
    pub(super) stats: CollectorStats,
    /// Ground truth in the attack's cgroup, by syscall number.
    pub(super) truth_counts: BTreeMap<u32, u64>,
    /// Ground truth's count of the LSM hooks, for a collector that records them.
    pub(super) hook_counts: Option<BTreeMap<u32, u64>>,
    /// `--trace-scope all`: ground truth of the other groups.
    pub(super) group_truth: Option<GroupTruth>,
    pub(super) report: AttackReport,
    pub(super) flood_spec: Option<FloodSpec>,
    pub(super) canary: PathBuf,
    pub(super) sched_ext_ops: Option<String>,
    /// The workload's result beside the attack and its wall-clock seconds.
    pub(super) beside: Option<(WorkloadResult, f64)>,
    pub(super) run_delay: RunDelayOutcome,
    pub(super) cost: CpuCost,
    /// `collector_cpu_s` per second of flood.
    pub(super) collector_cpu_share: Option<f64>,
    pub(super) counters: Counters,
    pub(super) policy: PolicyOutcome,
    /// The sched_ext scheduler's own counters.
    pub(super) scheduler_stats: Option<serde_json::Value>,
}

impl Fired<'_> {
    /// Stops everything in order; when a step fails, what is still held is released in the
    /// order of [`Fired`]'s fields.
    pub(super) fn disarm(mut self, setup: &Setup<'_>) -> Result<Disarmed> {
        let armed = &mut self.armed;
        // Nothing may still run in the cgroup when the counts are read.
        armed.cgroup.kill_all(Duration::from_secs(10))?;
        // The workload ends with the attack (same duration); the scheduler stays until it has.
        let beside = match self.beside.take() {
            Some(running) => Some(running.finish()?),
            None => None,
        };
        let attack_cpu_s = armed.cgroup.cpu_usage_s();
        if let Some(running) = armed.scx.as_mut() {
            running.check_alive()?;
        }
        let policy_restored = match armed.collector_policy.take() {
            Some(changed) => Some(changed.restore()? > 0),
            // Attack-side policies die with the attack's processes.
            None => None,
        };
        let log_path = armed.collector.log_path();
        let traced = armed.collector.traced_syscalls();
        let trace_all = armed.trace_all;
        if trace_all {
            // Both programs still attached: from here on neither counts anything but the
            // attack's (empty) cgroup.
            armed.truth.switch_off()?;
        }
        let mut stats = armed.collector.stop()?;
        // Read once it has drained and exited, like its CPU time.
        let collector_totals = self
            .collector_counters
            .take()
            .map(|counters| counters.finish("the collector"))
            .unwrap_or_default();
        let scheduler_stats = match armed.scx.take() {
            Some(running) => {
                running.stop()?;
                crate::sched::aegis::read_stats(&armed.aegis_stats_file)?
            }
            None => self.freeze_stats.take(),
        };
        armed.truth.check_complete()?;
        let truth_counts = armed.truth.counts(armed.cgroup.id())?;
        let hook_counts = armed
            .hooks
            .then(|| armed.truth.hook_counts(armed.cgroup.id()))
            .transpose()?;
        if armed.record_tids {
            let tids = armed.truth.attack_tids()?;
            let matched = armed
                .collector
                .match_attack(&tids, &truth_counts, &mut stats);
            if matched.is_err() {
                // What the collector wrote is the evidence of an account that did not add up.
                super::account::keep_failed_log(setup, &log_path);
            }
            matched?;
        }
        let group_truth = if trace_all {
            Some(GroupTruth {
                workload: armed.truth.group_counts(TraceGroup::Workload)?,
                rest: armed.truth.group_counts(TraceGroup::Rest)?,
                cpus: libbpf_rs::num_possible_cpus()? as u64,
            })
        } else {
            None
        };
        // Detached before the cgroup it counts goes, and the quota group after it.
        drop(self.armed.truth);
        drop(self.armed.cgroup);
        drop(self.armed.quota_group);
        let flood_s = self.report.flood_secs();
        Ok(Disarmed {
            collector: self.armed.collector,
            log_path,
            traced,
            cost: CpuCost::measured(&stats, attack_cpu_s),
            collector_cpu_share: (flood_s > 0.0).then(|| stats.cpu_s() / flood_s),
            stats,
            truth_counts,
            hook_counts,
            group_truth,
            report: self.report,
            flood_spec: self.flood_spec,
            canary: self.canary,
            sched_ext_ops: self.armed.sched_ext_ops,
            beside,
            run_delay: self.run_delay,
            counters: Counters::measured(collector_totals, self.attack_totals),
            policy: PolicyOutcome {
                applied_policy: self.armed.variant.map(FairVariant::applied),
                policy_restored,
            },
            scheduler_stats,
        })
    }
}

impl CpuCost {
    /// From the collector's final statistics and the CPU time of the attack's cgroup.
    fn measured(stats: &CollectorStats, attack_cpu_s: Option<f64>) -> Self {
        Self {
            collector_cpu_s: stats.cpu_s(),
            collector_consuming_cpu_s: stats.consuming_cpu_s,
            collector_sleeps: stats.consuming_sleeps,
            collector_preemptions: stats.consuming_preemptions,
            attack_cpu_s,
            received_per_collector_cpu_s: if stats.cpu_s() > 0.0 {
                stats.received as f64 / stats.cpu_s()
            } else {
                0.0
            },
            collector_wakeups: stats.wakeups,
            collector_wakeup_age_ns: stats.wakeup_age_histogram.clone(),
            collector_stall_ns: stats.stall_histogram.clone(),
            collector_self_detected_lost: stats.self_detected_lost,
        }
    }
}

impl Counters {
    /// The perf counters of the collector's and the attack's threads.
    fn measured(collector: Totals, attack: Totals) -> Self {
        Self {
            collector_context_switches: collector.context_switches,
            collector_cpu_migrations: collector.cpu_migrations,
            attack_context_switches: attack.context_switches,
            attack_cpu_migrations: attack.cpu_migrations,
            collector_cycles: collector.cycles,
            collector_instructions: collector.instructions,
            hardware_counters_unavailable: collector.hardware_unavailable,
        }
    }
}
