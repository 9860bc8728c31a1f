//! The simulator's records: what `sim validate` (real against simulated loss), `sim evaluate`
//! (every simulated scheduler against the bound and the fair-share reference) and `train` (the
//! model) write. Field names are an interface: the checked-in `results/sim-*.json` files are
//! read back with these types, and renamed fields keep their old names as aliases (the
//! `oracle*` fields of `sim evaluate` are the `fair_share*` ones).

use std::path::PathBuf;

use scheduler::aegis::levels::NR_LEVELS;
use scheduler::dqn::TrainedModel;
use scheduler::sim::{Calibration, EevdfModel, SimConfig};
use serde::{Deserialize, Serialize};

/// Reports that predate the choice of EEVDF model simulated the simple one.
fn simple_model() -> EevdfModel {
    EevdfModel::Simple
}

/// One intensity of `sim validate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub threads: u32,
    /// Mean over the repetitions.
    pub real_loss_pct: f64,
    pub real_loss_pct_min: f64,
    pub real_loss_pct_max: f64,
    pub real_loss_pct_by_repetition: Vec<f64>,
    pub sim_loss_pct: f64,
    /// |real - sim| in percentage points.
    pub error_pp: f64,
    pub scheduler: String,
    /// Means over the repetitions.
    pub real_generated: u64,
    pub real_dropped: u64,
    pub real_duration_s: f64,
    pub real_collector_cpu_s: f64,
    /// Polls of the real collector that found records.
    pub real_collector_wakeups: u64,
    /// Times the real collector slept (voluntary context switches), when measured: what a
    /// simulated wakeup is.
    #[serde(default)]
    pub real_collector_sleeps: Option<u64>,
    pub sim_collector_wakeups: u64,
    /// Batches whose first record waited at least 500 us (the waits in which a 64 KiB ring
    /// fills): real (from the collector's own timing, when measured) and simulated.
    #[serde(default)]
    pub real_long_waits: Option<u64>,
    #[serde(default)]
    pub sim_long_waits: u64,
    /// Simulated loss per seed, averaged into `sim_loss_pct`.
    pub sim_loss_pct_by_seed: Vec<f64>,
    pub sim_produced: u64,
    pub sim_dropped: u64,
    pub sim_collector_cpu_s: f64,
    pub sim_config: SimConfig,
}

/// Everything `sim validate` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub points: Vec<ValidationPoint>,
    pub max_error_pp: f64,
    pub target_error_pp: f64,
    pub target_met: bool,
    pub flood: String,
    pub ring_size_bytes: u64,
    pub cpus: usize,
    pub calibration_file: PathBuf,
    pub calibration: Calibration,
    /// The simulated EEVDF (`--eevdf-model`), and what it amounts to below.
    #[serde(default = "simple_model")]
    pub eevdf_model: EevdfModel,
    /// Whether the simulated EEVDF had one run queue per CPU.
    #[serde(default)]
    pub per_cpu_run_queues: bool,
    /// The simulator's tick (the kernel's in the `linux` model, when the calibration has it).
    #[serde(default)]
    pub tick_ns: u64,
    /// The real trials replayed (`--real-trials`); none when they were run for this report.
    #[serde(default)]
    pub real_trials_file: Option<PathBuf>,
    /// Whether the calibration was measured on this machine, kernel and CPU count.
    #[serde(default)]
    pub calibration_from_this_host: bool,
    /// Whether waking tasks were placed with Linux's lag inflation.
    #[serde(default)]
    pub inflate_placement_lag: bool,
    pub git_rev: String,
    pub date: String,
}

/// One policy at one configuration of `sim evaluate`, averaged over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub policy: String,
    pub cpus: usize,
    pub producers: usize,
    pub hogs: usize,
    pub sleepers: usize,
    pub seeds: u64,
    pub loss_pct: f64,
    pub loss_pct_min: f64,
    pub loss_pct_max: f64,
    pub produced: u64,
    pub dropped: u64,
    pub collector_cpu_s: f64,
    pub collector_wakeups: u64,
    pub producer_cpu_s: f64,
    /// Hogs' and sleepers' CPU, all of them.
    pub ordinary_cpu_s: f64,
    /// The user-space scheduler's own CPU (rustland; 0 for the others).
    pub scheduler_cpu_s: f64,
    /// CPU idle while tasks travelled through user space (rustland; 0 for the others).
    pub idle_in_round_trip_cpu_s: f64,
    /// Ordinary tasks' CPU without the attack / with it under this policy.
    pub ordinary_slowdown: f64,
    /// The bound's ordinary CPU at each seed's operating point ([`scheduler::sim::bound`]),
    /// summed over seeds, over the ordinary tasks' CPU, summed over seeds: at least 1 for
    /// every run of every policy by construction; 1 = no scheduler could have slowed the
    /// ordinary tasks less while the producers issued as many events and the collector
    /// recorded as many. (0 in reports written before the bound.)
    #[serde(default)]
    pub slowdown_vs_bound: f64,
    /// The bound's ordinary CPU (mean over seeds) and the least slowdown of the ordinary tasks
    /// it allows (their CPU without the attack / the bound's).
    #[serde(default)]
    pub bound_ordinary_cpu_s: f64,
    #[serde(default)]
    pub bound_slowdown: f64,
    /// Fair-share ordinary CPU / this policy's ([`scheduler::sim::fair_share`]). Not a bound:
    /// below 1 the ordinary tasks got more than their fair share (the producers less, or
    /// events were lost). Formerly `slowdown_vs_oracle`.
    #[serde(alias = "slowdown_vs_oracle")]
    pub slowdown_vs_fair_share: f64,
    /// Events the producers issued / events they issue at the fair share: below 1 they were
    /// held below their fair share. (0 in reports written before it.)
    #[serde(default)]
    pub producer_progress_vs_fair_share: f64,
    /// Jain's index over the ordinary tasks' CPU times, each relative to its fair share.
    pub fairness_jain: f64,
    /// The fair-share reference's numbers (formerly `oracle_*`).
    #[serde(alias = "oracle_collector_cpu_s")]
    pub fair_share_collector_cpu_s: f64,
    #[serde(alias = "oracle_slowdown")]
    pub fair_share_slowdown: f64,
    #[serde(alias = "oracle_ordinary_cpu_s")]
    pub fair_share_ordinary_cpu_s: f64,
    #[serde(alias = "oracle_producer_cpu_s")]
    pub fair_share_producer_cpu_s: f64,
    #[serde(alias = "oracle_events")]
    pub fair_share_events: u64,
    #[serde(alias = "oracle_producers_capped")]
    pub fair_share_producers_capped: bool,
    /// Aegis only: the longest wait per level (provenance, ordinary, producer), ms, the largest
    /// over seeds: until a pick, or until the end of the run for a task never picked again.
    pub max_wait_ms_by_level: Option<[f64; NR_LEVELS]>,
    pub bound_violations: Option<u64>,
    /// Aegis with the network: inferences run and skipped by the delta gate, over all seeds.
    pub nr_inferences: Option<u64>,
    pub nr_skipped: Option<u64>,
    pub sched_events: u64,
}

/// Everything `sim evaluate` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
    /// Full Aegis and its ablations (same fields as `rows`).
    pub ablations: Vec<EvalRow>,
    pub flood: String,
    pub ring_size_bytes: u64,
    pub ring_capacity_events: u64,
    /// The collector wakeup latency simulated (the calibration's unless overridden); with a
    /// measured distribution, its mean.
    pub wakeup_latency_ns: u64,
    /// Whether each wakeup's latency was drawn from the calibration's measured distribution.
    #[serde(default)]
    pub wakeup_latency_measured: bool,
    pub duration_s: f64,
    pub seeds: u64,
    pub rustland_round_trip_ns: u64,
    pub rustland_decision_cost_ns: u64,
    pub aegis_delta: u32,
    /// The EEVDF row's model (`--eevdf-model`).
    #[serde(default = "simple_model")]
    pub eevdf_model: EevdfModel,
    /// What the bound is (`slowdown_vs_bound`); empty in reports written before it.
    #[serde(default)]
    pub bound: String,
    /// What the fair-share reference is (formerly `oracle`).
    #[serde(alias = "oracle")]
    pub fair_share: String,
    pub fairness: String,
    /// Each compared policy over all the configurations of `rows` (empty in reports written
    /// before it).
    #[serde(default)]
    pub summary: Vec<PolicySummary>,
    pub calibration_file: PathBuf,
    pub calibration: Calibration,
    pub model_file: PathBuf,
    pub git_rev: String,
    pub date: String,
    pub elapsed_s: f64,
    /// Scheduling events simulated, and per second of one core's simulation time.
    pub sched_events: u64,
    pub sched_events_per_core_s: f64,
}

/// One policy of `sim evaluate` over all its configurations. Ratios are summarized by side of
/// 1: rows below 1 and rows at or above 1 each get their own geometric mean, so no mean mixes
/// values on both sides of 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySummary {
    pub policy: String,
    pub configurations: usize,
    /// The arithmetic mean of the rows' `loss_pct` (a percentage, not a ratio).
    pub loss_pct_mean: f64,
    pub slowdown_vs_bound: SidesOfOne,
    pub slowdown_vs_fair_share: SidesOfOne,
    pub producer_progress_vs_fair_share: SidesOfOne,
    /// The arithmetic mean of the rows' `fairness_jain` (an index in (0, 1]).
    pub fairness_jain_mean: f64,
}

/// Ratios split at 1: how many fall below it, how many at or above, and each side's geometric
/// mean (`None` for an empty side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SidesOfOne {
    pub below: usize,
    pub below_geomean: Option<f64>,
    pub at_or_above: usize,
    pub at_or_above_geomean: Option<f64>,
}

impl SidesOfOne {
    pub fn of(ratios: &[f64]) -> Self {
        let (below, above): (Vec<f64>, Vec<f64>) = ratios.iter().partition(|r| **r < 1.0);
        SidesOfOne {
            below: below.len(),
            below_geomean: crate::stats::geometric_mean(&below),
            at_or_above: above.len(),
            at_or_above_geomean: crate::stats::geometric_mean(&above),
        }
    }

    /// "<1: 0.512 (n=3); >=1: 1.104 (n=12)", a side without rows as "-".
    pub fn display(&self) -> String {
        let side = |n: usize, mean: Option<f64>| match mean {
            Some(mean) if n > 0 => format!("{mean:.3} (n={n})"),
            _ => "-".into(),
        };
        format!(
            "<1: {}; >=1: {}",
            side(self.below, self.below_geomean),
            side(self.at_or_above, self.at_or_above_geomean)
        )
    }
}

/// What `train` writes: the scheduler's model, and its provenance. `fixed_network` is the key
/// scx_aegis's loader reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelFile {
    #[serde(flatten)]
    pub model: TrainedModel,
    /// The revision of the code that trained it (`git describe --always --dirty`).
    pub git_rev: String,
    /// When training finished (RFC 3339, UTC).
    pub created_at: String,
    /// Wall-clock seconds training and evaluation took.
    pub train_seconds: f64,
    /// The command line that makes this model again.
    pub command: String,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::de::DeserializeOwned;

    use super::*;
    use crate::results::trial::Trial;

    /// Reads `file` (relative to the workspace) as a `T` and writes it back: the same JSON.
    fn round_trips<T: Serialize + DeserializeOwned>(file: &Path) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let record: T =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let read: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Through text, as a file is: an f32 is written as its shortest decimal.
        let written: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert!(
            written == read,
            "{} changed on the way back",
            file.display()
        );
    }

    /// Every checked-in simulator result, by the record it holds.
    #[test]
    fn checked_in_sim_results_read_and_write_back_unchanged() {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
        let mut seen = 0;
        for entry in std::fs::read_dir(&results).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let file = Path::new("results").join(&name);
            match name.as_str() {
                _ if !name.ends_with(".json") => continue,
                "calibration.json" | "sim-validate-calibration.json" => {
                    round_trips::<Calibration>(&file)
                }
                "sim-validate-trials.json" => round_trips::<Vec<Trial>>(&file),
                _ if name.starts_with("sim-validate") => round_trips::<ValidationReport>(&file),
                _ if name.starts_with("sim-evaluate") => round_trips::<EvalReport>(&file),
                _ => continue,
            }
            seen += 1;
        }
        assert!(seen >= 8, "found {seen} simulator results under results/");
    }

    #[test]
    fn ratios_are_summarized_by_side_of_one() {
        let sides = SidesOfOne::of(&[0.5, 2.0, 1.0, 0.125]);
        assert_eq!((sides.below, sides.at_or_above), (2, 2));
        // 0.5 and 0.125: 0.25; 2 and 1: sqrt 2. One mean over all four would say 0.5 (the
        // geometric) or 0.906 (the arithmetic), neither what either side did.
        assert!((sides.below_geomean.unwrap() - 0.25).abs() < 1e-12);
        assert!((sides.at_or_above_geomean.unwrap() - 2f64.sqrt()).abs() < 1e-12);
        let above_only = SidesOfOne::of(&[1.0, 1.5]);
        assert_eq!((above_only.below, above_only.below_geomean), (0, None));
        assert_eq!(
            above_only.display(),
            format!("<1: -; >=1: {:.3} (n=2)", 1.5f64.sqrt())
        );
    }

    /// Reports written before the bound name the fair-share fields `oracle*`: they still read.
    #[test]
    fn evaluate_reports_with_the_old_oracle_names_still_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/sim-evaluate.json");
        let mut value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let new: EvalReport = serde_json::from_value(value.clone()).unwrap();
        let object = value.as_object_mut().unwrap();
        for key in ["bound", "summary"] {
            object.remove(key);
        }
        let text = object.remove("fair_share").unwrap();
        object.insert("oracle".into(), text);
        for row in object["rows"].as_array_mut().unwrap() {
            let row = row.as_object_mut().unwrap();
            for key in [
                "slowdown_vs_bound",
                "bound_ordinary_cpu_s",
                "bound_slowdown",
                "producer_progress_vs_fair_share",
            ] {
                row.remove(key);
            }
            let renamed: Vec<String> = row
                .keys()
                .filter(|k| k.starts_with("fair_share") || *k == "slowdown_vs_fair_share")
                .cloned()
                .collect();
            for key in renamed {
                let field = row.remove(&key).unwrap();
                let old = key
                    .replace("fair_share_", "oracle_")
                    .replace("vs_fair_share", "vs_oracle");
                row.insert(old, field);
            }
        }
        let old: EvalReport = serde_json::from_value(value).unwrap();
        assert_eq!(old.fair_share, new.fair_share);
        assert!(old.summary.is_empty());
        for (old, new) in old.rows.iter().zip(&new.rows) {
            assert_eq!(old.slowdown_vs_fair_share, new.slowdown_vs_fair_share);
            assert_eq!(
                old.fair_share_collector_cpu_s,
                new.fair_share_collector_cpu_s
            );
            assert_eq!(old.fair_share_events, new.fair_share_events);
            assert_eq!(old.slowdown_vs_bound, 0.0);
        }
    }

    #[test]
    fn the_shipped_model_reads_and_writes_back_unchanged() {
        round_trips::<ModelFile>(Path::new("scheduler/models/aegis.json"));
    }
}
