//! The trial record assembled from its parts, each filled by the stage that measured it:
//! identity here (from the plan), accounting and workload by the account step, collector
//! cost, counters and policy by disarm, run delay by fire.

use attacks::FloodSpec;

use crate::results::trial::{
    Accounting, CpuCost, Environment, FloodOutcome, PolicyOutcome, RunDelayOutcome, Trial, TrialId,
    WorkloadOutcome,
};
use crate::sched::SchedulerSpec;

use super::account::AccountingFields;
use super::disarm::{CollectorFields, CounterFields, PolicyFields};
use super::plan::ProducerPlan;
use super::trial::Setup;

/// The record's fields naming the trial and where it ran.
pub(super) struct IdentityFields {
    trial_id: String,
    scheduler: String,
    sched_ext_ops: Option<String>,
    collector: String,
    collector_version: Option<String>,
    flood: String,
    cmd: Option<String>,
    threads: u32,
    ring_size_bytes: u64,
    repetition: u32,
    requested_duration_s: f64,
    count: Option<u64>,
    rate: Option<u64>,
    started_at: String,
    scheduler_args: Option<String>,
}

impl IdentityFields {
    /// The trial `setup` describes, run as `flood_spec`, with the scheduler and collector
    /// versions found while it ran.
    pub(super) fn of(
        setup: &Setup<'_>,
        flood_spec: Option<&FloodSpec>,
        sched_ext_ops: Option<String>,
        collector_version: Option<String>,
    ) -> Self {
        let (plan, spec) = (setup.plan, setup.spec);
        Self {
            trial_id: plan.trial_id(spec),
            scheduler: plan.scheduler_name(spec),
            sched_ext_ops,
            collector: spec.collector.name().to_string(),
            collector_version,
            flood: flood_spec.map_or("cmd".to_string(), |flood| flood.kind.name().to_string()),
            cmd: match &plan.producer {
                ProducerPlan::Command(argv) => Some(shell_words::join(argv)),
                ProducerPlan::Flood { .. } => None,
            },
            threads: spec.threads,
            // 0 for a collector without a ring (the field is an interface).
            ring_size_bytes: spec.buffer.ring_bytes().unwrap_or(0),
            repetition: spec.repetition,
            requested_duration_s: plan.duration.as_secs_f64(),
            count: flood_spec.and_then(|f| f.count),
            rate: flood_spec.and_then(|f| f.rate_per_s),
            started_at: setup.started_at.clone(),
            scheduler_args: match &spec.scheduler {
                SchedulerSpec::SchedExt { .. } if !plan.scx_args.is_empty() => {
                    Some(shell_words::join(&plan.scx_args))
                }
                _ => None,
            },
        }
    }
}

/// The record from its parts: each sub-record of [`Trial`] from the part that measured it.
pub(super) fn record(
    identity: IdentityFields,
    accounting: AccountingFields,
    collector: CollectorFields,
    policy: PolicyFields,
    beside: WorkloadOutcome,
    run_delay: RunDelayOutcome,
    counters: CounterFields,
) -> Trial {
    let id = identity;
    Trial {
        id: TrialId {
            trial_id: id.trial_id,
            scheduler: id.scheduler,
            sched_ext_ops: id.sched_ext_ops,
            collector: id.collector,
            collector_version: id.collector_version,
            flood: id.flood,
            cmd: id.cmd,
            threads: id.threads,
            ring_size_bytes: id.ring_size_bytes,
            repetition: id.repetition,
        },
        accounting: Accounting {
            generated: accounting.generated,
            traced_syscalls: accounting.traced_syscalls,
            received: accounting.received,
            dropped: accounting.dropped,
            loss_pct: accounting.loss_pct,
            canary_recorded: accounting.canary_recorded,
            canary_create_recorded: accounting.canary_create_recorded,
            canary_unlink_recorded: accounting.canary_unlink_recorded,
            canary_path: accounting.canary_path,
            attack_rate: accounting.attack_rate,
            attack_syscalls: accounting.attack_syscalls,
            delivered_per_s: accounting.delivered_per_s,
        },
        cost: CpuCost {
            collector_cpu_s: collector.collector_cpu_s,
            collector_consuming_cpu_s: collector.collector_consuming_cpu_s,
            collector_sleeps: collector.collector_sleeps,
            collector_preemptions: collector.collector_preemptions,
            attack_cpu_s: counters.attack_cpu_s,
            received_per_collector_cpu_s: collector.received_per_collector_cpu_s,
            collector_wakeups: collector.collector_wakeups,
            collector_wakeup_age_ns: collector.collector_wakeup_age_ns,
            collector_stall_ns: collector.collector_stall_ns,
            collector_self_detected_lost: collector.collector_self_detected_lost,
        },
        attack: FloodOutcome {
            duration_s: accounting.duration_s,
            requested_duration_s: id.requested_duration_s,
            count: id.count,
            rate: id.rate,
            truth_by_syscall: accounting.truth_by_syscall,
            attack_by_syscall: accounting.attack_by_syscall,
            incidental_syscalls: accounting.incidental_syscalls,
        },
        env: Environment::here(),
        policy: PolicyOutcome {
            applied_policy: policy.applied_policy,
            policy_restored: policy.policy_restored,
        },
        audit: collector.audit,
        scheduler_stats: policy.scheduler_stats,
        started_at: id.started_at,
        beside,
        run_delay,
        counters: counters.counters,
        scheduler_args: id.scheduler_args,
        collector_cpu_share: collector.collector_cpu_share,
    }
}
