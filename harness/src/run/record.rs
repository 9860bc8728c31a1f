//! The trial record assembled from its parts, each filled by the stage that measured it:
//! identity here (from the plan), accounting and workload by the account step, collector
//! cost, counters and policy by disarm, run delay by fire.

use attacks::FloodSpec;

use crate::measure::kernel;
use crate::results::trial::Trial;
use crate::sched::SchedulerSpec;

use super::account::{AccountingFields, WorkloadFields};
use super::disarm::{CollectorFields, CounterFields, PolicyFields};
use super::fire::RunDelayFields;
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
    kernel: String,
    machine: String,
    git_rev: String,
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
            ring_size_bytes: spec.ring_bytes,
            repetition: spec.repetition,
            requested_duration_s: plan.duration.as_secs_f64(),
            count: flood_spec.and_then(|f| f.count),
            rate: flood_spec.and_then(|f| f.rate_per_s),
            kernel: kernel::release(),
            machine: kernel::hostname(),
            git_rev: crate::GIT_REV.to_string(),
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

/// Every field of the record from the part that holds it.
pub(super) fn record(
    identity: IdentityFields,
    accounting: AccountingFields,
    collector: CollectorFields,
    policy: PolicyFields,
    workload: WorkloadFields,
    run_delay: RunDelayFields,
    counters: CounterFields,
) -> Trial {
    Trial {
        trial_id: identity.trial_id,
        scheduler: identity.scheduler,
        sched_ext_ops: identity.sched_ext_ops,
        collector: identity.collector,
        collector_version: identity.collector_version,
        flood: identity.flood,
        cmd: identity.cmd,
        threads: identity.threads,
        ring_size_bytes: identity.ring_size_bytes,
        repetition: identity.repetition,
        requested_duration_s: identity.requested_duration_s,
        count: identity.count,
        rate: identity.rate,
        kernel: identity.kernel,
        machine: identity.machine,
        git_rev: identity.git_rev,
        started_at: identity.started_at,
        scheduler_args: identity.scheduler_args,
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
        duration_s: accounting.duration_s,
        truth_by_syscall: accounting.truth_by_syscall,
        attack_by_syscall: accounting.attack_by_syscall,
        incidental_syscalls: accounting.incidental_syscalls,
        collector_cpu_s: collector.collector_cpu_s,
        collector_consuming_cpu_s: collector.collector_consuming_cpu_s,
        collector_sleeps: collector.collector_sleeps,
        collector_preemptions: collector.collector_preemptions,
        received_per_collector_cpu_s: collector.received_per_collector_cpu_s,
        collector_wakeups: collector.collector_wakeups,
        collector_wakeup_age_ns: collector.collector_wakeup_age_ns,
        collector_stall_ns: collector.collector_stall_ns,
        collector_self_detected_lost: collector.collector_self_detected_lost,
        collector_cpu_share: collector.collector_cpu_share,
        audit: collector.audit,
        applied_policy: policy.applied_policy,
        policy_restored: policy.policy_restored,
        scheduler_stats: policy.scheduler_stats,
        workload: workload.workload,
        workload_throughput_per_s: workload.workload_throughput_per_s,
        workload_throughput_unit: workload.workload_throughput_unit,
        workload_alone_throughput_per_s: workload.workload_alone_throughput_per_s,
        workload_kept_fraction: workload.workload_kept_fraction,
        run_delay_max_ms: run_delay.run_delay_max_ms,
        run_delay_max_task: run_delay.run_delay_max_task,
        run_delay_max_sample_gap_ms: run_delay.run_delay_max_sample_gap_ms,
        run_delay_p50_ms: run_delay.run_delay_p50_ms,
        run_delay_p99_ms: run_delay.run_delay_p99_ms,
        run_delay_cdf_ms: run_delay.run_delay_cdf_ms,
        fairness_workload_jain: run_delay.fairness_workload_jain,
        fairness_workload_tasks: run_delay.fairness_workload_tasks,
        fairness_attack_jain: run_delay.fairness_attack_jain,
        fairness_attack_tasks: run_delay.fairness_attack_tasks,
        attack_cpu_s: counters.attack_cpu_s,
        collector_context_switches: counters.collector_context_switches,
        collector_cpu_migrations: counters.collector_cpu_migrations,
        attack_context_switches: counters.attack_context_switches,
        attack_cpu_migrations: counters.attack_cpu_migrations,
        collector_cycles: counters.collector_cycles,
        collector_instructions: counters.collector_instructions,
        hardware_counters_unavailable: counters.hardware_counters_unavailable,
    }
}
