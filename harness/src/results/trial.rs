//! One trial's record: what `attack` and `run` write to JSON and CSV (the identities a
//! trial must satisfy before it becomes one are in `run::account`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::collector::AuditOutcome;
use crate::results::scope::{LossByGroup, TraceScope};
use crate::syscalls;

/// One trial as written to JSON and CSV. Field names are an interface: keep them. The record
/// is grouped into sub-records, each filled by the stage or module that measured it and
/// flattened into one JSON object, so the fields and their order are those of the flat
/// record (the golden test checks it byte for byte).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    #[serde(flatten)]
    pub id: TrialId,
    #[serde(flatten)]
    pub accounting: Accounting,
    #[serde(flatten)]
    pub cost: CpuCost,
    #[serde(flatten)]
    pub attack: FloodOutcome,
    #[serde(flatten)]
    pub env: Environment,
    #[serde(flatten)]
    pub policy: PolicyOutcome,
    /// auditd only: its backlog settings, the kernel's lost records, PATH records missing,
    /// time tasks waited for backlog room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditOutcome>,
    /// sysdig only: its driver's events and drops over the whole machine, the attack's events
    /// missing from its capture, and how long reading the capture back took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysdig: Option<crate::results::collector::SysdigOutcome>,
    /// eaudit only: its `lost` bytes, recorded syscalls and failed ring outputs (all of the
    /// whole machine), and the attack's events missing from its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eaudit: Option<crate::results::collector::EauditOutcome>,
    /// The sched_ext scheduler's own counters at the end of the trial (`scx_aegis
    /// --stats-file`: per-level queued/dispatched/promoted and max waits, inferences run and
    /// skipped, the current action); `None` for schedulers that do not report them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_stats: Option<serde_json::Value>,
    pub started_at: String,
    #[serde(flatten)]
    pub beside: WorkloadOutcome,
    #[serde(flatten)]
    pub run_delay: RunDelayOutcome,
    #[serde(flatten)]
    pub counters: Counters,
    /// The sched_ext scheduler's arguments (`--scx-args`, or a matrix scheduler's
    /// `scx_args`), when any were given.
    #[serde(default)]
    pub scheduler_args: Option<String>,
    /// `collector_cpu_s / duration_s`: the collector's CPU time per second of flood, as a
    /// fraction of one CPU (its drain after the flood counts too, so it can pass 1).
    #[serde(default)]
    pub collector_cpu_share: Option<f64>,
}

/// A trial `run --keep-going` set aside, in `OUT/failures.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub trial_id: String,
    pub error: String,
    pub started_at: String,
}

impl Failure {
    /// The failures a run directory's `failures.jsonl` lists (none without the file).
    pub fn read_all(path: &std::path::Path) -> anyhow::Result<Vec<Failure>> {
        use anyhow::Context;
        if !path.is_file() {
            return Ok(Vec::new());
        }
        let text = crate::files::read_input(path)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).with_context(|| format!("parsing {}", path.display()))
            })
            .collect()
    }
}

/// What the trial was: its cell (scheduler, collector, attack, buffer) and repetition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialId {
    /// The trial's cell and repetition, unique within a run:
    /// `attack/scheduler/collector/buffer/xTHREADS/workload/repN` (see [`trial_id`]); `run
    /// --resume` and `merge` match trials by it.
    #[serde(default)]
    pub trial_id: String,
    pub scheduler: String,
    /// `/sys/kernel/sched_ext/root/ops` while the trial ran, if a sched_ext scheduler was on.
    pub sched_ext_ops: Option<String>,
    pub collector: String,
    /// The collector program and version (`auditd 3.0.9`); `None` for the built-in one.
    #[serde(default)]
    pub collector_version: Option<String>,
    /// Flood kind, or `cmd` for a `--cmd` producer.
    pub flood: String,
    pub cmd: Option<String>,
    pub threads: u32,
    /// The collector's BPF ring buffer; 0 for a collector without one (auditd: see `audit`).
    pub ring_size_bytes: u64,
    pub repetition: u32,
    /// Which boot of the run (0-based; `boots` in a matrix, `attack --vm --boots`): the unit
    /// of replication. Left out of the JSON when 0 (runs of one boot).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub boot: u32,
    /// `all` when the collector traced the whole machine (`--trace-scope all`); left out for
    /// `attack`, the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_scope: Option<TraceScope>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// What was generated, recorded and lost, and whether the canary was seen: filled by the account step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// Events the collector should have recorded: ground truth over its traced syscalls.
    pub generated: u64,
    /// The syscalls `generated` sums over: those the collector records for the attack.
    #[serde(default)]
    pub traced_syscalls: Vec<String>,
    pub received: u64,
    pub dropped: u64,
    pub loss_pct: f64,
    /// The canary's creation and its unlink are both in the collector's log.
    pub canary_recorded: bool,
    pub canary_create_recorded: bool,
    pub canary_unlink_recorded: bool,
    pub canary_path: Option<String>,
    /// Syscalls per second the attack issued (its own tally over its flood time).
    pub attack_rate: f64,
    pub attack_syscalls: u64,
    /// Events per second the collector recorded over the flood time.
    pub delivered_per_s: f64,
    /// `--trace-scope all`: generated, received, dropped and loss of the attack, the workload,
    /// the rest of the machine and their total (the fields above are the attack's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_by_group: Option<LossByGroup>,
    /// `--trace-scope all`: the most events the groups' `unmatched_at_switch` may add up to
    /// (in absolute value): one per possible CPU for each of the two switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_at_switch_bound: Option<u64>,
}

/// CPU the collector and the attack used, and how the collector slept and woke.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuCost {
    /// The collector process's CPU seconds over the whole trial, loading and log flush included.
    pub collector_cpu_s: f64,
    /// Built-in and compact collectors: CPU seconds from attach through the final drain, the
    /// consuming alone (what `calibrate` fits the per-event cost to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_consuming_cpu_s: Option<f64>,
    /// Over the same span: how often the collector slept (voluntary context switches) and
    /// was preempted (involuntary ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_sleeps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_preemptions: Option<u64>,
    /// CPU seconds the attack's cgroup used (`cpu.stat` usage_usec): the producers' CPU time.
    #[serde(default)]
    pub attack_cpu_s: Option<f64>,
    /// Records received per CPU-second the collector used: its drain efficiency.
    pub received_per_collector_cpu_s: f64,
    pub collector_wakeups: u64,
    /// Built-in collector: how long the first record of each batch waited in the ring before
    /// the collector read it, as a log-scale histogram (`[[lower_ns, count], ...]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_wakeup_age_ns: Option<scheduler::sim::LatencyHistogram>,
    /// Built-in collector: gaps over 100 us within 16 records of one batch, when it stopped
    /// reading while records waited (preempted, or blocked writing its log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_stall_ns: Option<scheduler::sim::LatencyHistogram>,
    /// Records the collector itself found missing from sequence gaps (compact architecture).
    pub collector_self_detected_lost: Option<u64>,
}

/// How the attack ran: its time, its bounds and every syscall counted, by ground truth and by itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FloodOutcome {
    /// Seconds the flood ran (first to last syscall of the worker).
    pub duration_s: f64,
    pub requested_duration_s: f64,
    pub count: Option<u64>,
    pub rate: Option<u64>,
    /// The adaptive attacker (`--evade`), if any: `spin:200`, `spread:16`, `hogs:4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evade: Option<String>,
    /// Ground truth in the attack's cgroup, by syscall name (traced or not).
    pub truth_by_syscall: BTreeMap<String, u64>,
    /// The attack's own tally, by syscall name.
    pub attack_by_syscall: BTreeMap<String, u64>,
    /// Syscalls in the cgroup the attack did not tally itself (thread exits, futexes, code run
    /// by an exec'd program), explained rather than compared.
    pub incidental_syscalls: u64,
}

/// Where and with what the trial ran: the machine (a guest's under `--vm`), its boot, the
/// build, the physical host and the Aegis model. The fields after `git_rev` are left out of
/// the JSON when unknown (records written before they existed, QEMU on bare metal, a model
/// for schedulers without one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub kernel: String,
    pub machine: String,
    pub git_rev: String,
    /// The kernel's `/proc/sys/kernel/random/boot_id`: trials with one boot id ran in one boot
    /// (the unit of replication, see docs/results.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The CPU model and online CPUs of the machine the trial ran on (a guest's vCPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `release` or `debug`: the aegis-bench build that ran the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_profile: Option<String>,
    /// The physical machine: this one on bare metal, QEMU's host for a guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpus: Option<u32>,
    /// QEMU's version, for a trial run in a guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_version: Option<String>,
    /// SHA-256 of the Q-network model scx_aegis loaded (its stats' `model_sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
}

/// The physical machine a run's trials ran on, as the guest runner hands it to the guest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub machine: String,
    pub kernel: String,
    pub cpu_model: Option<String>,
    pub cpus: Option<u32>,
    pub qemu_version: Option<String>,
}

/// The fair-class baseline a trial applied, and whether it was put back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    /// The fair-class baseline policy the trial applied (`eevdf:collector-fifo`, ...).
    pub applied_policy: Option<crate::results::policy::AppliedPolicy>,
    /// Whether the threads whose policy was changed were put back (read back to check).
    pub policy_restored: Option<bool>,
}

/// The standard workload beside the attack: filled from the workload tool's own output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadOutcome {
    /// The standard workload run beside the attack (`--workload`), or `None`.
    #[serde(default)]
    pub workload: Option<String>,
    /// The workload's throughput beside the attack, parsed from its tool's output, per second
    /// (in `workload_throughput_unit`).
    #[serde(default)]
    pub workload_throughput_per_s: Option<f64>,
    /// `bogo ops/s` (stress-ng-cpu), `messages/s` (hackbench), ...
    #[serde(default)]
    pub workload_throughput_unit: Option<String>,
    /// The same workload's throughput alone for as long, under the same scheduler, with no
    /// attack, measured in the same run.
    #[serde(default)]
    pub workload_alone_throughput_per_s: Option<f64>,
    /// `workload_throughput_per_s / workload_alone_throughput_per_s`: the share of its
    /// throughput the workload kept beside the attack.
    #[serde(default)]
    pub workload_kept_fraction: Option<f64>,
    /// A server's p99 request latency beside the attack and alone, from its load tool (wrk,
    /// redis-benchmark); absent for workloads without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_latency_p99_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_alone_latency_p99_us: Option<f64>,
}

/// Waits on a run queue and fairness, from the run-delay watch (`--watch-run-delay`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunDelayOutcome {
    /// With `--watch-run-delay`: the longest wait on a run queue of any attack, workload or
    /// collector thread, from /proc schedstat sampled every 5 ms; an upper bound that exceeds
    /// the true longest wait by at most `run_delay_max_sample_gap_ms`.
    #[serde(default)]
    pub run_delay_max_ms: Option<f64>,
    /// `comm/tid` of the thread that waited that long.
    #[serde(default)]
    pub run_delay_max_task: Option<String>,
    /// The longest gap between two samples.
    #[serde(default)]
    pub run_delay_max_sample_gap_ms: Option<f64>,
    /// Median and 99th percentile of those threads' waits on a run queue (waits that ended in
    /// the same sampling interval counted at their mean).
    #[serde(default)]
    pub run_delay_p50_ms: Option<f64>,
    #[serde(default)]
    pub run_delay_p99_ms: Option<f64>,
    /// With `--watch-run-delay`: the waits' distribution as `[fraction, ms]` points (the
    /// fraction of waits at or below `ms`), for CDF figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_delay_cdf_ms: Option<Vec<[f64; 2]>>,
    /// With `--watch-run-delay`: Jain's fairness index, (sum x)^2 / (n sum x^2), over the CPU
    /// time of the workload's equal-weight tasks (its leaf tasks: not the parents that only
    /// start and wait for them) during the trial; 1 is perfectly fair, 1/n is one task taking
    /// everything.
    #[serde(default)]
    pub fairness_workload_jain: Option<f64>,
    #[serde(default)]
    pub fairness_workload_tasks: Option<u32>,
    /// The same over the flood's threads.
    #[serde(default)]
    pub fairness_attack_jain: Option<f64>,
    #[serde(default)]
    pub fairness_attack_tasks: Option<u32>,
    /// With `--watch-run-delay`: every wait as a log-scale histogram (`{"counts": [[lower_ns,
    /// count], ...]}`), which adds up across trials for pooled CDFs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_delay_waits_ns: Option<scheduler::sim::LatencyHistogram>,
    /// With `--watch-run-delay`: CPU seconds the `attack`, `workload` and `collector` tasks got
    /// during the trial (from the same samples), for fairness between the groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_by_group: Option<BTreeMap<String, f64>>,
}

/// Perf counters of the collector's and the attack's threads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Software counters (perf events) of the collector's and the attack's threads.
    #[serde(default)]
    pub collector_context_switches: Option<u64>,
    #[serde(default)]
    pub collector_cpu_migrations: Option<u64>,
    #[serde(default)]
    pub attack_context_switches: Option<u64>,
    #[serde(default)]
    pub attack_cpu_migrations: Option<u64>,
    /// Hardware counters of the collector, where the machine has a PMU.
    #[serde(default)]
    pub collector_cycles: Option<u64>,
    #[serde(default)]
    pub collector_instructions: Option<u64>,
    /// Why the hardware counters are missing (`no PMU: ...`), when they are.
    #[serde(default)]
    pub hardware_counters_unavailable: Option<String>,
}

/// Names instead of numbers, for people and for JSON.
pub fn by_name(counts: &BTreeMap<u32, u64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .map(|(nr, count)| (syscalls::name(*nr), *count))
        .collect()
}

/// The current time as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::gmtime_r(&now, &mut tm) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A plain trial for other modules' tests: EEVDF, the built-in collector, `threads` openat
/// threads, `loss_pct` lost, and with `workload` its name and kept fraction.
#[cfg(test)]
pub fn example_trial(
    scheduler: &str,
    threads: u32,
    loss_pct: f64,
    workload: Option<(&str, f64)>,
) -> Trial {
    let mut t = serde_json::json!({
        "trial_id": format!("openat/{scheduler}/builtin/ring64KiB/x{threads}/none/rep0"),
        "scheduler": scheduler, "sched_ext_ops": null, "collector": "builtin",
        "flood": "openat", "cmd": null, "threads": threads, "ring_size_bytes": 65536,
        "repetition": 0, "generated": 100, "received": 100, "dropped": 0,
        "loss_pct": loss_pct, "canary_recorded": true, "canary_create_recorded": true,
        "canary_unlink_recorded": true, "canary_path": null, "attack_rate": 5.0,
        "attack_syscalls": 10, "delivered_per_s": 5.0, "collector_cpu_s": 0.1,
        "received_per_collector_cpu_s": 100.0, "collector_wakeups": 1,
        "collector_self_detected_lost": null, "duration_s": 2.0,
        "requested_duration_s": 2.0, "count": null, "rate": null,
        "truth_by_syscall": {}, "attack_by_syscall": {}, "incidental_syscalls": 0,
        "kernel": "6.18", "machine": "m", "git_rev": "r", "applied_policy": null,
        "policy_restored": null, "started_at": "2026-12-03T00:00:00Z"
    });
    if let Some((name, kept)) = workload {
        t["workload"] = name.into();
        t["workload_kept_fraction"] = kept.into();
    }
    serde_json::from_value(t).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
    }
}
