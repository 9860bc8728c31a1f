//! The statistics record of scx_aegis: what `--stats` prints (as [`ScxAegisStats::one_line`]) and
//! `--stats-file` writes (as JSON), without the BPF code that fills it, so that whoever reads
//! the file (the harness records it in every trial that runs Aegis) can deserialize it.
//!
//! scx_aegis writes `serde_json::to_writer_pretty` of an [`ScxAegisStats`] and a newline; fields
//! serialize in the order they are declared here, so reordering them changes the file. Fields
//! marked `#[serde(default)]` came later: records written before them (the CI baseline's) read
//! as zero or empty there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One level's counters (the per-CPU counters summed; waits: the maximum).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelStats {
    /// "provenance", "ordinary" or "producer".
    pub level: String,
    pub nr_queued: u64,
    pub nr_dispatched: u64,
    pub nr_promoted: u64,
    /// The most tasks seen in the level's DSQ at once (the overdue scan looks at the first
    /// AEGIS_SCAN_DEPTH).
    #[serde(default)]
    pub max_queued: u64,
    pub max_wait_us: u64,
    /// The task that waited max_wait_us: "comm (pid N, may run on K CPUs; queued PATH; after
    /// COMM ran X ms)", the last naming the task that left the CPU just before it; "" if none.
    #[serde(default)]
    pub max_wait_task: String,
    /// When that wait ended, in seconds since scx_aegis attached (0 if none).
    #[serde(default)]
    pub max_wait_ended_at_s: f64,
    pub wait_bound_us: u64,
    pub nr_bound_violations: u64,
    /// Of those, the waits during which a busy CPU went over two tick periods without a tick
    /// (under TCG: QEMU did not run the vCPU), which no scheduler could have served on time.
    pub nr_bound_violations_in_stalls: u64,
}

/// The action in force: its index (boost * 3 + throttle) and what it decodes to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionStats {
    pub index: u32,
    pub collector_boost: u8,
    pub producer_throttle: u8,
}

/// Producer syscalls made while the ring was past the hold line, by why the producer had a
/// CPU. Each can put an event into an almost full ring: where event loss comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PastHoldSyscalls {
    /// No provenance task was runnable or had run within a window, so producers were not held.
    pub collector_asleep: u64,
    /// The producer was past its wait bound and served anyway.
    pub promoted: u64,
    /// The producer woke onto an idle CPU (select_cpu dispatches directly).
    pub woken_on_idle_cpu: u64,
    /// The producer was already running when the ring crossed the line (until its kick lands).
    pub before_preemption: u64,
}

/// Collector wakeups that waited for the ring to fill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeferredWakes {
    pub deferred: u64,
    pub ended_at_fill: u64,
    pub ended_at_timeout: u64,
}

/// One BPF program's cost since scx_aegis attached (with `--prog-stats`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgStats {
    pub name: String,
    pub runs: u64,
    pub run_time_ms: f64,
    pub mean_run_ns: u64,
}

/// Everything scx_aegis reports: the per-CPU counters of the BPF side summed (waits: the
/// maximum), plus the current action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScxAegisStats {
    /// Where the policy comes from: "model PATH", "no model: fixed action N" or "no model".
    pub model: String,
    pub model_path: Option<PathBuf>,
    /// SHA-256 of the model file's text; `None` without a model (and in stats written before
    /// it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    pub levels: Vec<LevelStats>,
    pub nr_direct_dispatches: u64,
    pub nr_inferences_run: u64,
    pub nr_inferences_skipped: u64,
    pub nr_preempt_kicks: u64,
    pub nr_producer_syscalls: u64,
    pub nr_provenance_runs: u64,
    pub provenance_runtime_ms: f64,
    pub nr_overdue_scans: u64,
    pub nr_producer_holds: u64,
    pub past_hold_syscalls: PastHoldSyscalls,
    /// The longest a busy CPU went without a tick, and the ticks over twice the period late:
    /// a CPU that does not tick cannot enforce the wait bound.
    pub max_tick_gap_us: u64,
    pub nr_late_ticks: u64,
    /// CPUs the deadline timer kicked for a task that reached its wait bound between ticks.
    #[serde(default)]
    pub nr_deadline_kicks: u64,
    /// The latest the deadline timer's callback ran after the moment it was armed for.
    #[serde(default)]
    pub max_deadline_timer_late_us: u64,
    /// The longest a CPU the deadline timer kicked took to dispatch or tick (under TCG: a
    /// vCPU that QEMU did not run meanwhile; the next kick goes elsewhere).
    #[serde(default)]
    pub max_kick_to_dispatch_us: u64,
    /// Collector wakeups deferred until its ring filled (--wake-fill-pct), and how the
    /// deferrals ended: the ring reached the wake fill, or --max-wake-defer-us passed.
    #[serde(default)]
    pub collector_wakes_deferred: DeferredWakes,
    /// Overdue tasks the deadline timer found deeper than the scans look (16 per level) and
    /// moved to the front of their level.
    #[serde(default)]
    pub nr_requeued_overdue: u64,
    /// Per BPF program, with `--prog-stats`; empty (and absent from the JSON) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgStats>,
    pub current_action: ActionStats,
    pub ring_fill_pct: u32,
    pub wait_bound_tick_us: u64,
}

impl ScxAegisStats {
    /// The line `scx_aegis --stats` prints.
    pub fn one_line(&self) -> String {
        let levels: Vec<String> = self
            .levels
            .iter()
            .map(|l| {
                format!(
                    "{} q={} d={} promoted={} max_wait={}us/{}us",
                    l.level,
                    l.nr_queued,
                    l.nr_dispatched,
                    l.nr_promoted,
                    l.max_wait_us,
                    l.wait_bound_us
                )
            })
            .collect();
        format!(
            "[aegis] {} | inferences run={} skipped={} | action={} (boost {}, throttle {}) | fill={}% kicks={} deadline_kicks={} prov_runs={} prov_cpu={:.1}ms",
            levels.join(" | "),
            self.nr_inferences_run,
            self.nr_inferences_skipped,
            self.current_action.index,
            self.current_action.collector_boost,
            self.current_action.producer_throttle,
            self.ring_fill_pct,
            self.nr_preempt_kicks,
            self.nr_deadline_kicks,
            self.nr_provenance_runs,
            self.provenance_runtime_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

    /// Files written by scx_aegis's own `--stats-file` code before its record moved here: the
    /// values of a real trial (results/aegis/flood.json); the same with `--prog-stats`
    /// programs and no model; and the file that scx_aegis, run in a sched_ext guest with
    /// `--prog-stats --no-model`, wrote at exit. Then the `--stats` line printed for the second.
    const WRITTEN: [&str; 3] = [
        include_str!("../tests/data/scx_aegis_stats.json"),
        include_str!("../tests/data/scx_aegis_stats_prog_stats.json"),
        include_str!("../tests/data/scx_aegis_stats_guest.json"),
    ];
    const PRINTED: &str = "[aegis] provenance q=5484 d=5476 promoted=0 max_wait=1105us/16000us \
        | ordinary q=80 d=80 promoted=0 max_wait=4302us/32000us | producer q=10813 d=10799 \
        promoted=0 max_wait=21737us/64000us | inferences run=401 skipped=8 | action=4 (boost 1, \
        throttle 1) | fill=0% kicks=10639 deadline_kicks=0 prov_runs=5488 prov_cpu=1017.8ms";

    /// What scx_aegis writes for `stats`.
    fn as_written(stats: &ScxAegisStats) -> String {
        serde_json::to_string_pretty(stats).unwrap() + "\n"
    }

    #[test]
    fn what_scx_aegis_wrote_reads_back_and_writes_the_same_bytes() {
        for text in WRITTEN {
            let stats: ScxAegisStats = serde_json::from_str(text).unwrap();
            assert_eq!(as_written(&stats), text);
        }
        let with_programs: ScxAegisStats = serde_json::from_str(WRITTEN[1]).unwrap();
        assert_eq!(with_programs.programs.len(), 2);
        assert_eq!(with_programs.model_path, None);
        assert_eq!(with_programs.one_line(), PRINTED);
    }

    /// Every key of `recorded` is in `read` with the same value (`read` may have more).
    fn keeps_everything(recorded: &serde_json::Value, read: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (recorded, read) {
            (Value::Object(recorded), Value::Object(read)) => recorded
                .iter()
                .all(|(key, value)| read.get(key).is_some_and(|r| keeps_everything(value, r))),
            (Value::Array(recorded), Value::Array(read)) => {
                recorded.len() == read.len()
                    && recorded
                        .iter()
                        .zip(read)
                        .all(|(a, b)| keeps_everything(a, b))
            }
            _ => recorded == read,
        }
    }

    /// The checked-in trials' `scheduler_stats` (the harness keeps scx_aegis's file as JSON):
    /// each reads as a record that keeps every value; the current ones (all but the CI
    /// baseline's, written before the later fields) come back whole.
    #[test]
    fn the_checked_in_trials_scheduler_stats_read_as_the_record() {
        let files = [
            "results/aegis/flood.json",
            "results/aegis/workload.json",
            "results/paper/run/trials.jsonl",
            "results/ablations/run/trials.jsonl",
            "results/ci-baseline/trials.jsonl",
        ];
        let (mut read, mut whole) = (0, 0);
        for file in files {
            let path = format!("{REPO}/{file}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let trials: Vec<serde_json::Value> = if file.ends_with(".jsonl") {
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            } else {
                serde_json::from_str(&text).unwrap()
            };
            for recorded in trials.iter().filter_map(|t| t.get("scheduler_stats")) {
                if recorded.is_null() {
                    continue;
                }
                let stats: ScxAegisStats = serde_json::from_value(recorded.clone())
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                let back = serde_json::to_value(&stats).unwrap();
                assert!(keeps_everything(recorded, &back), "{file}: {recorded}");
                read += 1;
                if !file.starts_with("results/ci-baseline") {
                    assert_eq!(&back, recorded, "{file}");
                    whole += 1;
                }
            }
        }
        assert!(
            read > 50 && whole > 40,
            "{read} records read, {whole} whole"
        );
    }
}
