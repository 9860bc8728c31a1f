//! CSV: one row per trial; per-syscall maps are flattened to `name=count;name=count`, and the
//! run-delay CDF to `fraction=ms;fraction=ms`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::Exporter;
use crate::results::trial::Trial;

pub struct CsvExporter {
    path: PathBuf,
}

impl CsvExporter {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[derive(Default, Serialize)]
struct Row<'a> {
    scheduler: &'a str,
    sched_ext_ops: &'a str,
    collector: &'a str,
    flood: &'a str,
    cmd: &'a str,
    threads: u32,
    ring_size_bytes: u64,
    repetition: u32,
    generated: u64,
    received: u64,
    dropped: u64,
    loss_pct: f64,
    canary_recorded: bool,
    attack_rate: f64,
    attack_syscalls: u64,
    delivered_per_s: f64,
    collector_cpu_s: f64,
    received_per_collector_cpu_s: f64,
    collector_wakeups: u64,
    duration_s: f64,
    requested_duration_s: f64,
    incidental_syscalls: u64,
    truth_by_syscall: String,
    attack_by_syscall: String,
    kernel: &'a str,
    machine: &'a str,
    git_rev: &'a str,
    policy_target: &'a str,
    policy: &'a str,
    policy_rt_priority: Option<i32>,
    policy_nice: Option<i32>,
    attack_cpu_quota_pct: Option<u32>,
    policy_restored: Option<bool>,
    started_at: &'a str,
    collector_version: &'a str,
    traced_syscalls: String,
    audit_backlog_limit: Option<u32>,
    audit_backlog_wait_time_ms: Option<u64>,
    audit_lost_records: Option<u64>,
    audit_path_records_missing: Option<u64>,
    audit_backlog_wait_actual_ms: Option<f64>,
    workload: &'a str,
    workload_throughput_per_s: Option<f64>,
    workload_throughput_unit: &'a str,
    workload_alone_throughput_per_s: Option<f64>,
    workload_kept_fraction: Option<f64>,
    run_delay_max_ms: Option<f64>,
    run_delay_max_task: &'a str,
    run_delay_max_sample_gap_ms: Option<f64>,
    run_delay_p50_ms: Option<f64>,
    run_delay_p99_ms: Option<f64>,
    run_delay_cdf_ms: String,
    fairness_workload_jain: Option<f64>,
    fairness_workload_tasks: Option<u32>,
    fairness_attack_jain: Option<f64>,
    fairness_attack_tasks: Option<u32>,
    collector_context_switches: Option<u64>,
    collector_cpu_migrations: Option<u64>,
    attack_context_switches: Option<u64>,
    attack_cpu_migrations: Option<u64>,
    collector_cycles: Option<u64>,
    collector_instructions: Option<u64>,
    hardware_counters_unavailable: &'a str,
    scheduler_args: &'a str,
    trial_id: &'a str,
    collector_cpu_share: Option<f64>,
    boot: u32,
    boot_id: &'a str,
    cpu_model: &'a str,
    cpus: Option<u32>,
    build_profile: &'a str,
    host_machine: &'a str,
    host_kernel: &'a str,
    host_cpu_model: &'a str,
    host_cpus: Option<u32>,
    qemu_version: &'a str,
    model_sha256: &'a str,
    evade: &'a str,
}

impl<'a> Row<'a> {
    /// The boot and provenance columns (the rest empty).
    fn provenance(t: &'a Trial) -> Row<'a> {
        let text = |value: &'a Option<String>| value.as_deref().unwrap_or("");
        Row {
            boot: t.id.boot,
            boot_id: text(&t.env.boot_id),
            cpu_model: text(&t.env.cpu_model),
            cpus: t.env.cpus,
            build_profile: text(&t.env.build_profile),
            host_machine: text(&t.env.host_machine),
            host_kernel: text(&t.env.host_kernel),
            host_cpu_model: text(&t.env.host_cpu_model),
            host_cpus: t.env.host_cpus,
            qemu_version: text(&t.env.qemu_version),
            model_sha256: text(&t.env.model_sha256),
            ..Row::default()
        }
    }
}

fn flatten(map: &BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(name, count)| format!("{name}={count}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// `0.5=1.234;0.99=30.5`: ms to the microsecond, which is finer than the 5 ms sampling.
fn flatten_cdf(points: Option<&[[f64; 2]]>) -> String {
    points
        .unwrap_or_default()
        .iter()
        .map(|[fraction, ms]| format!("{fraction}={ms:.3}"))
        .collect::<Vec<_>>()
        .join(";")
}

impl Exporter for CsvExporter {
    fn serialize(&self, trials: &[Trial]) -> Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for t in trials {
            writer.serialize(Row {
                scheduler: &t.id.scheduler,
                sched_ext_ops: t.id.sched_ext_ops.as_deref().unwrap_or(""),
                collector: &t.id.collector,
                flood: &t.id.flood,
                cmd: t.id.cmd.as_deref().unwrap_or(""),
                threads: t.id.threads,
                ring_size_bytes: t.id.ring_size_bytes,
                repetition: t.id.repetition,
                generated: t.accounting.generated,
                received: t.accounting.received,
                dropped: t.accounting.dropped,
                loss_pct: t.accounting.loss_pct,
                canary_recorded: t.accounting.canary_recorded,
                attack_rate: t.accounting.attack_rate,
                attack_syscalls: t.accounting.attack_syscalls,
                delivered_per_s: t.accounting.delivered_per_s,
                collector_cpu_s: t.cost.collector_cpu_s,
                received_per_collector_cpu_s: t.cost.received_per_collector_cpu_s,
                collector_wakeups: t.cost.collector_wakeups,
                duration_s: t.attack.duration_s,
                requested_duration_s: t.attack.requested_duration_s,
                incidental_syscalls: t.attack.incidental_syscalls,
                truth_by_syscall: flatten(&t.attack.truth_by_syscall),
                attack_by_syscall: flatten(&t.attack.attack_by_syscall),
                kernel: &t.env.kernel,
                machine: &t.env.machine,
                git_rev: &t.env.git_rev,
                policy_target: t
                    .policy
                    .applied_policy
                    .as_ref()
                    .map_or("", |p| &p.policy_target),
                policy: t.policy.applied_policy.as_ref().map_or("", |p| &p.policy),
                policy_rt_priority: t
                    .policy
                    .applied_policy
                    .as_ref()
                    .map(|p| p.policy_rt_priority),
                policy_nice: t.policy.applied_policy.as_ref().map(|p| p.policy_nice),
                attack_cpu_quota_pct: t
                    .policy
                    .applied_policy
                    .as_ref()
                    .and_then(|p| p.attack_cpu_quota_pct),
                policy_restored: t.policy.policy_restored,
                started_at: &t.started_at,
                collector_version: t.id.collector_version.as_deref().unwrap_or(""),
                traced_syscalls: t.accounting.traced_syscalls.join(";"),
                audit_backlog_limit: t.audit.as_ref().map(|a| a.settings.backlog_limit),
                audit_backlog_wait_time_ms: t
                    .audit
                    .as_ref()
                    .map(|a| a.settings.backlog_wait_time_ms),
                audit_lost_records: t.audit.as_ref().map(|a| a.lost_records),
                audit_path_records_missing: t.audit.as_ref().map(|a| a.path_records_missing),
                audit_backlog_wait_actual_ms: t.audit.as_ref().map(|a| a.backlog_wait_actual_ms),
                workload: t.beside.workload.as_deref().unwrap_or(""),
                workload_throughput_per_s: t.beside.workload_throughput_per_s,
                workload_throughput_unit: t
                    .beside
                    .workload_throughput_unit
                    .as_deref()
                    .unwrap_or(""),
                workload_alone_throughput_per_s: t.beside.workload_alone_throughput_per_s,
                workload_kept_fraction: t.beside.workload_kept_fraction,
                run_delay_max_ms: t.run_delay.run_delay_max_ms,
                run_delay_max_task: t.run_delay.run_delay_max_task.as_deref().unwrap_or(""),
                run_delay_max_sample_gap_ms: t.run_delay.run_delay_max_sample_gap_ms,
                run_delay_p50_ms: t.run_delay.run_delay_p50_ms,
                run_delay_p99_ms: t.run_delay.run_delay_p99_ms,
                run_delay_cdf_ms: flatten_cdf(t.run_delay.run_delay_cdf_ms.as_deref()),
                fairness_workload_jain: t.run_delay.fairness_workload_jain,
                fairness_workload_tasks: t.run_delay.fairness_workload_tasks,
                fairness_attack_jain: t.run_delay.fairness_attack_jain,
                fairness_attack_tasks: t.run_delay.fairness_attack_tasks,
                collector_context_switches: t.counters.collector_context_switches,
                collector_cpu_migrations: t.counters.collector_cpu_migrations,
                attack_context_switches: t.counters.attack_context_switches,
                attack_cpu_migrations: t.counters.attack_cpu_migrations,
                collector_cycles: t.counters.collector_cycles,
                collector_instructions: t.counters.collector_instructions,
                hardware_counters_unavailable: t
                    .counters
                    .hardware_counters_unavailable
                    .as_deref()
                    .unwrap_or(""),
                scheduler_args: t.scheduler_args.as_deref().unwrap_or(""),
                trial_id: &t.id.trial_id,
                collector_cpu_share: t.collector_cpu_share,
                evade: t.attack.evade.as_deref().unwrap_or(""),
                ..Row::provenance(t)
            })?;
        }
        Ok(writer.into_inner()?)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    #[test]
    fn new_measures_are_columns_and_the_cdf_is_one_cell() {
        let mut t = example_trial("eevdf", 2, 1.0, Some(("stress-ng-cpu", 0.8)));
        t.run_delay.run_delay_cdf_ms = Some(vec![[0.5, 1.25], [0.999, 30.0]]);
        t.run_delay.fairness_workload_jain = Some(0.97);
        t.run_delay.fairness_workload_tasks = Some(2);
        t.counters.collector_context_switches = Some(1234);
        t.counters.hardware_counters_unavailable =
            Some("no PMU: perf_event_open(cycles) failed".into());
        let bytes = CsvExporter::new("x.csv".into())
            .serialize(&[t, example_trial("eevdf", 1, 0.0, None)])
            .unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let header = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let cell = |row: usize, name: &str| {
            let column = header.iter().position(|h| h == name).unwrap();
            rows[row][column].to_string()
        };
        assert_eq!(cell(0, "run_delay_cdf_ms"), "0.5=1.250;0.999=30.000");
        assert_eq!(cell(0, "fairness_workload_jain"), "0.97");
        assert_eq!(cell(0, "fairness_workload_tasks"), "2");
        assert_eq!(cell(0, "collector_context_switches"), "1234");
        assert_eq!(cell(0, "collector_cycles"), "");
        assert!(cell(0, "hardware_counters_unavailable").starts_with("no PMU: "));
        // Without the measures, empty cells.
        assert_eq!(cell(1, "run_delay_cdf_ms"), "");
        assert_eq!(cell(1, "attack_context_switches"), "");
        assert_eq!(
            header.iter().next_back(),
            Some("evade"),
            "new columns go at the end, so scripts reading columns by position keep working"
        );
        assert_eq!(
            cell(1, "trial_id"),
            "openat/eevdf/builtin/ring64KiB/x1/none/rep0"
        );
    }
}
