//! One trial: arm, fire, disarm, account.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use attacks::FloodSpec;
use indicatif::{ProgressBar, ProgressStyle};

use crate::collector::{self, CollectorSetup};
use crate::measure::cgroup::AttackCgroup;
use crate::measure::kernel;
use crate::measure::run_delay::{RunDelayWatch, Watched};
use crate::measure::truth::GroundTruth;
use crate::results::trial::{by_name, now_rfc3339, Trial};
use crate::run::producer::{self, Placement, Producer};
use crate::run::workload::{self, RunningWorkload};
use crate::sched::policy::{
    ChangedThreads, CpuQuotaGroup, FairVariant, ATTACK_NICE, ATTACK_QUOTA_PCT,
};
use crate::sched::scx::RunningScx;
use crate::sched::SchedulerSpec;

use super::account::{account, Measured};
use super::plan::{Plan, ProducerPlan, TrialSpec};

pub(super) fn run_trial(
    plan: &Plan,
    spec: &TrialSpec,
    root: &Path,
    work_dir: &Path,
    serial: u32,
    alone_per_s: Option<f64>,
) -> Result<Trial> {
    let trial_dir = work_dir.join(format!("trial-{serial}"));
    std::fs::create_dir_all(&trial_dir)?;
    let started_at = now_rfc3339();

    // Arm.
    let cgroup = AttackCgroup::create(root, serial)?;
    let mut truth_object = MaybeUninit::uninit();
    let truth = GroundTruth::attach(&mut truth_object, cgroup.id())?;
    let flood_kind = match &plan.producer {
        ProducerPlan::Flood { spec, .. } => Some(spec.kind),
        ProducerPlan::Command(_) => None,
    };
    let mut collector = collector::start(
        spec.collector,
        &CollectorSetup {
            cgroup_id: cgroup.id(),
            ring_bytes: spec.ring_bytes,
            work_dir: &trial_dir,
            flood: flood_kind,
            audit: spec.audit,
            pin_ring: match &spec.scheduler {
                SchedulerSpec::SchedExt { name, .. } if name == "aegis" => {
                    crate::sched::aegis::ring_pin_path(serial)
                }
                _ => None,
            },
        },
    )?;
    // Collector-side baselines change the collector's threads; attack-side ones are applied
    // by the attack worker to itself before it joins the cgroup.
    let variant = spec.scheduler.variant();
    let collector_policy = match variant {
        Some(v @ (FairVariant::CollectorFifo | FairVariant::CollectorNice)) => {
            Some(ChangedThreads::apply(collector.pid(), v)?)
        }
        _ => None,
    };
    let quota_group = match variant {
        Some(FairVariant::AttackQuota) => Some(CpuQuotaGroup::create(serial, ATTACK_QUOTA_PCT)?),
        _ => None,
    };
    let placement = Placement {
        nice: (variant == Some(FairVariant::AttackNice)).then_some(ATTACK_NICE),
        extra_cgroup_procs: quota_group.iter().map(|g| g.procs_file()).collect(),
    };
    let aegis_stats_file = trial_dir.join("scx_aegis-stats.json");
    let mut scx = match &spec.scheduler {
        SchedulerSpec::SchedExt { name, binary } => {
            let mut args = match name.as_str() {
                "aegis" => crate::sched::aegis::args(
                    collector.pid(),
                    collector.pinned_ring().as_deref(),
                    &aegis_stats_file,
                ),
                _ => Vec::new(),
            };
            args.extend(plan.scx_args.iter().cloned());
            Some(RunningScx::start(name, binary, &args, &trial_dir)?)
        }
        SchedulerSpec::Fair { .. } => None,
    };
    let sched_ext_ops = match &scx {
        Some(running) => Some(running.ops().to_string()),
        None => kernel::sched_ext_ops(),
    };
    inject_fault("armed")?;

    // Fire.
    let canary = PathBuf::from(format!("/tmp/aegis-canary-{:016x}", rand::random::<u64>()));
    let flood_spec = match &plan.producer {
        ProducerPlan::Flood { spec: base, .. } => Some(FloodSpec {
            threads: spec.threads,
            ..base.clone()
        }),
        ProducerPlan::Command(_) => None,
    };
    let producer = match (&flood_spec, &plan.producer) {
        (Some(flood), _) => Producer::Flood(flood),
        (None, ProducerPlan::Command(argv)) => Producer::Command {
            argv,
            duration: plan.duration,
        },
        (None, ProducerPlan::Flood { .. }) => unreachable!("flood plans carry a spec"),
    };
    // The collector's threads exist once it is attached; its counters run through its drain.
    let collector_counters = (collector.pid() != 0).then(|| {
        use crate::measure::perf_counters::{Counted, ProcessCounters};
        let all = [Counted::SOFTWARE, Counted::HARDWARE].concat();
        ProcessCounters::open(collector.pid(), &all)
    });
    let run_delay = if plan.watch_run_delay {
        Some(RunDelayWatch::start(Watched {
            cgroups: vec![("attack", cgroup.path().to_path_buf())],
            pids: vec![("collector", collector.pid())],
        })?)
    } else {
        None
    };
    let bar = progress_bar(plan.duration);
    // Once the worker is in its cgroup and before it floods, a collector scoped by pid learns
    // its pid, and the workload starts (in its own cgroup), so both begin with the flood.
    let needs_pid = collector.needs_attack_pid();
    let mut beside: Option<RunningWorkload> = None;
    let mut attack_counters = None;
    let mut on_joined = |pid: u32| -> Result<()> {
        // The worker's threads exist and are parked at the gate: counted from before the
        // flood, with anything they start later inherited.
        attack_counters = Some(crate::measure::perf_counters::ProcessCounters::open(
            pid,
            &crate::measure::perf_counters::Counted::SOFTWARE,
        ));
        if needs_pid {
            collector.attack_joined(pid)?;
        }
        if let Some(name) = spec.workload {
            let mut workload =
                RunningWorkload::start(name, root, &serial.to_string(), plan.duration, &trial_dir)?;
            // The flood is released when this returns: the workload is at work by then.
            workload.wait_until_working()?;
            if let Some(watch) = &run_delay {
                watch.add_cgroup("workload", workload.cgroup_path().to_path_buf());
            }
            beside = Some(workload);
            inject_fault("workload")?;
        }
        Ok(())
    };
    // Always gated: the attack's perf counters are opened at the gate.
    let report = producer::run(
        &producer,
        &placement,
        &cgroup.procs_file(),
        &trial_dir,
        &canary,
        Some(&mut on_joined as producer::OnJoined<'_>),
        |elapsed| bar.set_position(elapsed.as_millis() as u64),
    );
    bar.finish_and_clear();
    let run_delay = run_delay.map(RunDelayWatch::finish);
    // The worker has exited: every flood thread's count is final.
    let attack_totals = attack_counters
        .map(|counters| counters.finish("the attack"))
        .unwrap_or_default();
    let report = report?;

    // Disarm: nothing may still run in the cgroup when the counts are read.
    cgroup.kill_all(Duration::from_secs(10))?;
    // The workload ends with the attack (same duration); the scheduler stays until it has.
    let beside_result = match beside.take() {
        Some(running) => Some(running.finish()?),
        None => None,
    };
    let attack_cpu_s = cgroup.cpu_usage_s();
    if let Some(running) = scx.as_mut() {
        running.check_alive()?;
    }
    let policy_restored = match collector_policy {
        Some(changed) => Some(changed.restore()? > 0),
        // Attack-side policies die with the attack's processes.
        None => None,
    };
    let log_path = collector.log_path();
    let traced = collector.traced_syscalls();
    let stats = collector.stop()?;
    // Read once it has drained and exited, like its CPU time.
    let collector_totals = collector_counters
        .map(|counters| counters.finish("the collector"))
        .unwrap_or_default();
    let scheduler_stats = match scx.take() {
        Some(running) => {
            running.stop()?;
            crate::sched::aegis::read_stats(&aegis_stats_file)?
        }
        None => None,
    };
    truth.check_complete()?;
    let truth_counts = truth.counts(cgroup.id())?;
    drop(truth);
    drop(cgroup);
    drop(quota_group);

    // Account.
    let accounted = account(&Measured {
        truth: &truth_counts,
        attack: &report,
        collector: &stats,
        traced: &traced,
    })?;
    let canary_seen = collector.find_canary(&canary)?;
    let collector_version = collector.version();
    drop(collector);
    let kept_log = match &plan.keep_logs {
        Some(dir) => {
            let kept = dir.join(format!("trial-{serial}-{}.log", spec.collector.name()));
            std::fs::copy(&log_path, &kept)
                .with_context(|| format!("keeping {}", kept.display()))?;
            Some(kept)
        }
        None => None,
    };
    std::fs::remove_file(&log_path).ok();
    if let Some(kept) = kept_log {
        crate::say!("  log kept in {}", kept.display());
    }

    let (workload_per_s, workload_unit) = match &beside_result {
        Some((result, wall_s)) => {
            if let Some(warning) = workload::outlasted(&result.name, *wall_s, report.flood_secs()) {
                crate::say!("  {warning}");
            }
            let (per_s, unit) = workload::throughput(result)?;
            (Some(per_s), Some(unit))
        }
        None => (None, None),
    };
    let workload_kept_fraction = workload_per_s
        .zip(alone_per_s)
        .and_then(|(beside, alone)| workload::kept_fraction(beside, alone));
    if let (Some(name), Some(per_s), Some(unit)) = (spec.workload, workload_per_s, &workload_unit) {
        crate::say!(
            "  {name} beside the attack: {per_s:.1} {unit}, {} of its throughput alone",
            workload_kept_fraction.map_or("?".to_string(), |kept| format!("{kept:.2}"))
        );
    }

    let workload_fairness = run_delay.as_ref().and_then(|r| r.fairness("workload"));
    let attack_fairness = run_delay.as_ref().and_then(|r| r.fairness("attack"));
    let flood_s = report.flood_secs();
    let attack_syscalls: u64 = report.syscalls.values().sum();
    let per_s = |n: u64| {
        if flood_s > 0.0 {
            n as f64 / flood_s
        } else {
            0.0
        }
    };
    Ok(Trial {
        trial_id: plan.trial_id(spec),
        scheduler: plan.scheduler_name(spec),
        sched_ext_ops,
        collector: spec.collector.name().to_string(),
        collector_version,
        flood: flood_spec
            .as_ref()
            .map_or("cmd".to_string(), |flood| flood.kind.name().to_string()),
        cmd: match &plan.producer {
            ProducerPlan::Command(argv) => Some(shell_words::join(argv)),
            ProducerPlan::Flood { .. } => None,
        },
        threads: spec.threads,
        ring_size_bytes: spec.ring_bytes,
        repetition: spec.repetition,
        generated: accounted.generated,
        traced_syscalls: traced.iter().map(|nr| crate::syscalls::name(*nr)).collect(),
        received: stats.received,
        dropped: stats.dropped,
        loss_pct: accounted.loss_pct,
        canary_recorded: canary_seen.created && canary_seen.unlinked,
        canary_create_recorded: canary_seen.created,
        canary_unlink_recorded: canary_seen.unlinked,
        canary_path: report.canary.as_ref().map(|c| c.path.clone()),
        attack_rate: per_s(attack_syscalls),
        attack_syscalls,
        delivered_per_s: per_s(stats.received),
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
        duration_s: flood_s,
        requested_duration_s: plan.duration.as_secs_f64(),
        count: flood_spec.as_ref().and_then(|f| f.count),
        rate: flood_spec.as_ref().and_then(|f| f.rate_per_s),
        truth_by_syscall: by_name(&truth_counts),
        attack_by_syscall: by_name(&report.syscalls),
        incidental_syscalls: accounted.incidental_syscalls,
        kernel: kernel::release(),
        machine: kernel::hostname(),
        git_rev: crate::GIT_REV.to_string(),
        applied_policy: variant.map(FairVariant::applied),
        policy_restored,
        audit: stats.audit.clone(),
        scheduler_stats,
        started_at,
        workload: spec.workload.map(String::from),
        workload_throughput_per_s: workload_per_s,
        workload_throughput_unit: workload_unit,
        workload_alone_throughput_per_s: spec.workload.and(alone_per_s),
        workload_kept_fraction,
        run_delay_max_ms: run_delay.as_ref().map(|r| r.max_wait_ms),
        run_delay_max_task: run_delay.as_ref().and_then(|r| r.max_wait_task.clone()),
        run_delay_max_sample_gap_ms: run_delay.as_ref().map(|r| r.max_sample_gap_ms),
        run_delay_p50_ms: run_delay.as_ref().and_then(|r| r.p50_wait_ms),
        run_delay_p99_ms: run_delay.as_ref().and_then(|r| r.p99_wait_ms),
        run_delay_cdf_ms: run_delay
            .as_ref()
            .map(|r| r.cdf_ms.clone())
            .filter(|cdf| !cdf.is_empty()),
        fairness_workload_jain: workload_fairness.map(|(jain, _)| jain),
        fairness_workload_tasks: workload_fairness.map(|(_, tasks)| tasks),
        fairness_attack_jain: attack_fairness.map(|(jain, _)| jain),
        fairness_attack_tasks: attack_fairness.map(|(_, tasks)| tasks),
        collector_context_switches: collector_totals.context_switches,
        collector_cpu_migrations: collector_totals.cpu_migrations,
        attack_context_switches: attack_totals.context_switches,
        attack_cpu_migrations: attack_totals.cpu_migrations,
        collector_cycles: collector_totals.cycles,
        collector_instructions: collector_totals.instructions,
        hardware_counters_unavailable: collector_totals.hardware_unavailable,
        collector_cpu_share: (flood_s > 0.0).then(|| stats.cpu_s() / flood_s),
        scheduler_args: match &spec.scheduler {
            SchedulerSpec::SchedExt { .. } if !plan.scx_args.is_empty() => {
                Some(shell_words::join(&plan.scx_args))
            }
            _ => None,
        },
    })
}

/// Fault injection for the clean-up tests: `AEGIS_BENCH_INJECT_FAULT=panic` or `=error` fails
/// the trial once everything is armed (stage `armed`), `panic@workload` or `error@workload`
/// once the workload beside the attack has started (stage `workload`), so the tests can check
/// that every exit path puts the kernel back.
fn inject_fault(stage: &str) -> Result<()> {
    let wanted = std::env::var("AEGIS_BENCH_INJECT_FAULT").unwrap_or_default();
    let (kind, at) = wanted.split_once('@').unwrap_or((&wanted, "armed"));
    if at != stage {
        return Ok(());
    }
    match kind {
        "panic" => panic!("fault injected at {stage} (AEGIS_BENCH_INJECT_FAULT={wanted})"),
        "error" => anyhow::bail!("fault injected at {stage} (AEGIS_BENCH_INJECT_FAULT={wanted})"),
        _ => Ok(()),
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
