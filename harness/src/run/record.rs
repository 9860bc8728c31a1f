//! The parts of the trial record the plan decides (its identity, the flood's bounds, the
//! scheduler's arguments); the measured parts are filled by the stages that measured them.

use std::collections::BTreeMap;

use attacks::{AttackReport, FloodSpec};

use crate::results::trial::{by_name, FloodOutcome, TrialId};
use crate::sched::SchedulerSpec;

use super::account::Accounted;
use super::plan::ProducerPlan;
use super::trial::Setup;

/// The trial `setup` describes, run as `flood_spec`, with the scheduler and collector
/// versions found while it ran.
pub(super) fn trial_id(
    setup: &Setup<'_>,
    flood_spec: Option<&FloodSpec>,
    sched_ext_ops: Option<String>,
    collector_version: Option<String>,
) -> TrialId {
    let (plan, spec) = (setup.plan, setup.spec);
    TrialId {
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
        boot: spec.boot,
        trace_scope: plan.trace_scope.is_all().then_some(plan.trace_scope),
    }
}

/// How the attack ran: the plan's bounds beside what truth and the attack counted.
pub(super) fn flood_outcome(
    setup: &Setup<'_>,
    flood_spec: Option<&FloodSpec>,
    accounted: &Accounted,
    truth: &BTreeMap<u32, u64>,
    report: &AttackReport,
) -> FloodOutcome {
    FloodOutcome {
        duration_s: report.flood_secs(),
        requested_duration_s: setup.plan.duration.as_secs_f64(),
        count: flood_spec.and_then(|f| f.count),
        rate: flood_spec.and_then(|f| f.rate_per_s),
        evade: flood_spec
            .filter(|f| !f.evade.is_none())
            .map(|f| f.evade.to_string()),
        truth_by_syscall: by_name(truth),
        attack_by_syscall: by_name(&report.syscalls),
        incidental_syscalls: accounted.incidental_syscalls,
    }
}

/// `--scx-args`, as the trial records them: only when a sched_ext scheduler ran.
pub(super) fn scheduler_args(setup: &Setup<'_>) -> Option<String> {
    match &setup.spec.scheduler {
        SchedulerSpec::SchedExt { .. } if !setup.plan.scx_args.is_empty() => {
            Some(shell_words::join(&setup.plan.scx_args))
        }
        _ => None,
    }
}
