//! Disarm: the attack's cgroup emptied, the workload finished, a baseline's changes put back,
//! the collector drained and stopped, the scheduler stopped, ground truth read and detached.
//! [`Disarmed`] keeps only the stopped collector, whose log the account step searches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use attacks::{AttackReport, FloodSpec};
use scheduler::sim::LatencyHistogram;
use workloads::WorkloadResult;

use crate::collector::RunningCollector;
use crate::measure::perf_counters::Totals;
use crate::results::collector::{AuditOutcome, CollectorStats};
use crate::results::policy::AppliedPolicy;
use crate::sched::policy::FairVariant;

use super::fire::Fired;
use crate::results::trial::{Counters, RunDelayOutcome};

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
    pub(super) report: AttackReport,
    pub(super) flood_spec: Option<FloodSpec>,
    pub(super) canary: PathBuf,
    pub(super) sched_ext_ops: Option<String>,
    /// The workload's result beside the attack and its wall-clock seconds.
    pub(super) beside: Option<(WorkloadResult, f64)>,
    pub(super) run_delay: RunDelayOutcome,
    pub(super) collector_cost: CollectorFields,
    pub(super) counters: CounterFields,
    pub(super) policy: PolicyFields,
}

impl Fired<'_> {
    /// Stops everything in order; when a step fails, what is still held is released in the
    /// order of [`Fired`]'s fields.
    pub(super) fn disarm(mut self) -> Result<Disarmed> {
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
        let stats = armed.collector.stop()?;
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
            None => None,
        };
        armed.truth.check_complete()?;
        let truth_counts = armed.truth.counts(armed.cgroup.id())?;
        // Detached before the cgroup it counts goes, and the quota group after it.
        drop(self.armed.truth);
        drop(self.armed.cgroup);
        drop(self.armed.quota_group);
        let flood_s = self.report.flood_secs();
        Ok(Disarmed {
            collector: self.armed.collector,
            log_path,
            traced,
            collector_cost: CollectorFields::measured(&stats, flood_s),
            stats,
            truth_counts,
            report: self.report,
            flood_spec: self.flood_spec,
            canary: self.canary,
            sched_ext_ops: self.armed.sched_ext_ops,
            beside,
            run_delay: self.run_delay,
            counters: CounterFields::measured(attack_cpu_s, collector_totals, self.attack_totals),
            policy: PolicyFields {
                applied_policy: self.armed.variant.map(FairVariant::applied),
                policy_restored,
                scheduler_stats,
            },
        })
    }
}

/// The record's fields on what the collector cost and reported of itself.
pub(super) struct CollectorFields {
    pub(super) collector_cpu_s: f64,
    pub(super) collector_consuming_cpu_s: Option<f64>,
    pub(super) collector_sleeps: Option<u64>,
    pub(super) collector_preemptions: Option<u64>,
    pub(super) received_per_collector_cpu_s: f64,
    pub(super) collector_wakeups: u64,
    pub(super) collector_wakeup_age_ns: Option<LatencyHistogram>,
    pub(super) collector_stall_ns: Option<LatencyHistogram>,
    pub(super) collector_self_detected_lost: Option<u64>,
    pub(super) collector_cpu_share: Option<f64>,
    pub(super) audit: Option<AuditOutcome>,
}

impl CollectorFields {
    /// From the collector's final statistics and the seconds the flood ran.
    fn measured(stats: &CollectorStats, flood_s: f64) -> Self {
        Self {
            collector_cpu_s: stats.cpu_s(),
            collector_consuming_cpu_s: stats.consuming_cpu_s,
            collector_sleeps: stats.consuming_sleeps,
            collector_preemptions: stats.consuming_preemptions,
            received_per_collector_cpu_s: if stats.cpu_s() > 0.0 {
                stats.received as f64 / stats.cpu_s()
            } else {
                0.0
            },
            collector_wakeups: stats.wakeups,
            collector_wakeup_age_ns: stats.wakeup_age_histogram.clone(),
            collector_stall_ns: stats.stall_histogram.clone(),
            collector_self_detected_lost: stats.self_detected_lost,
            collector_cpu_share: (flood_s > 0.0).then(|| stats.cpu_s() / flood_s),
            audit: stats.audit.clone(),
        }
    }
}

/// The record's fields from the kernel's counters: the attack cgroup's CPU time and the perf
/// counters of the collector's and the attack's threads.
pub(super) struct CounterFields {
    /// CPU seconds the attack's cgroup used (recorded with the collector's cost).
    pub(super) attack_cpu_s: Option<f64>,
    pub(super) counters: Counters,
}

impl CounterFields {
    fn measured(attack_cpu_s: Option<f64>, collector: Totals, attack: Totals) -> Self {
        Self {
            attack_cpu_s,
            counters: Counters {
                collector_context_switches: collector.context_switches,
                collector_cpu_migrations: collector.cpu_migrations,
                attack_context_switches: attack.context_switches,
                attack_cpu_migrations: attack.cpu_migrations,
                collector_cycles: collector.cycles,
                collector_instructions: collector.instructions,
                hardware_counters_unavailable: collector.hardware_unavailable,
            },
        }
    }
}

/// The record's fields on the scheduling policy: the fair-class baseline applied and whether
/// it was put back, and the sched_ext scheduler's own counters.
pub(super) struct PolicyFields {
    pub(super) applied_policy: Option<AppliedPolicy>,
    pub(super) policy_restored: Option<bool>,
    pub(super) scheduler_stats: Option<serde_json::Value>,
}
