//! Machine parameters measured by `aegis-bench calibrate`, and the simulator configuration
//! derived from them.
//!
//! The file is JSON (see [`Calibration`]); `aegis-bench sim validate` and anything else that
//! wants a simulation of *this* machine reads it with [`Calibration::load`] and turns it into a
//! [`SimConfig`] with [`SimConfig::from_calibration`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CollectorModel, LatencyHistogram, SimConfig};

/// Where `aegis-bench calibrate` writes by default (relative to the working directory).
pub const DEFAULT_CALIBRATION_PATH: &str = "results/calibration.json";

/// What `aegis-bench calibrate` measured. Field names are an interface: add, don't rename.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub machine: String,
    pub kernel: String,
    /// CPUs online when measured.
    pub cpus: usize,
    /// RFC 3339, UTC.
    pub date: String,
    pub git_rev: String,
    /// Producer CPU time per traced event, by flood kind (`openat`, ...), from runs of one
    /// producer thread with a ring that loses nothing: the attack cgroup's CPU time per traced
    /// event, or where that was not measured 1e9 / (traced events per second of the producer).
    pub syscall_cost_ns: BTreeMap<String, f64>,
    /// The built-in collector's stalls in the small-ring runs: gaps over 100 us within 16
    /// records of one batch (`collector_stall_ns` of their trials, merged), and how many per
    /// event received. The simulator draws them into its collector's running time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_stall_histogram: Option<LatencyHistogram>,
    #[serde(default)]
    pub collector_stalls_per_event: f64,
    /// Producer CPU per collector wakeup (the notification: irq_work and a remote wakeup),
    /// fitted with `syscall_cost_ns` over the runs' producer CPU (see
    /// [`fit_producer_costs`]); 0 in files from before it was measured.
    #[serde(default)]
    pub producer_notify_cost_ns: f64,
    /// Average ring-buffer bytes (record + 8-byte header) per traced event, by flood kind.
    pub ring_bytes_per_event: BTreeMap<String, f64>,
    /// Collector CPU time per event received (slope of the fit in [`fit_collector_costs`]).
    pub collector_per_event_cost_ns: f64,
    /// Collector CPU time per wakeup that found events (fit; 0 when not separable).
    pub collector_wakeup_cost_ns: f64,
    /// CPU a task pays on a CPU another process used since it last ran there (see
    /// [`crate::sim::CollectorModel::switch_cost_ns`]): what the collector spends beyond its
    /// per-event and per-wakeup costs in runs where it shares its CPU with producers, per
    /// switch ([`fit_switch_cost`]). 0 in calibrations that predate it.
    #[serde(default)]
    pub collector_switch_cost_ns: f64,
    /// Collector CPU time independent of the events (start-up, BPF load; fit intercept).
    pub collector_fixed_cpu_s: f64,
    /// The collector's wakeup latency the simulator uses: from the first event into an empty
    /// ring until the collector runs. Fitted (see [`fit_wakeup_latency`] and
    /// `wakeup_latency_fit`) when a small-ring run was made, else the pipe measurement.
    pub wakeup_latency_ns: f64,
    /// Median time from a write to a pipe until a thread blocked reading it runs.
    #[serde(default)]
    pub pipe_wakeup_latency_ns: f64,
    pub wakeup_latency_rounds: u32,
    /// The kernel's scheduler tick (1 / CONFIG_HZ), when its config is readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_tick_ns: Option<u64>,
    /// The small-ring runs `wakeup_latency_ns` was fitted to, if any.
    #[serde(default)]
    pub wakeup_latency_fit: Option<WakeupFit>,
    /// Measured wakeup latencies: the age of the first record of every batch the built-in
    /// collector read in the small-ring runs (see [`super::latency`]). When present the
    /// simulator draws each wakeup's latency from it and `wakeup_latency_ns` is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeup_latency_histogram: Option<LatencyHistogram>,
    /// The real runs the costs were derived from.
    pub runs: Vec<CalibrationRun>,
    /// How the numbers were obtained and what they approximate.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How `wakeup_latency_ns` was fitted: the latency at which the simulator reproduces the loss
/// of one real small-ring run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WakeupFit {
    pub flood: String,
    pub threads: u32,
    pub ring_size_bytes: u64,
    /// Mean over the repetitions.
    pub real_loss_pct: f64,
    #[serde(default)]
    pub real_loss_pct_by_repetition: Vec<f64>,
    pub sim_loss_pct: f64,
    pub seeds: u64,
}

/// One real attack run of the calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRun {
    pub flood: String,
    pub threads: u32,
    pub rate: Option<u64>,
    pub count: Option<u64>,
    /// Traced events (ground truth over the collector's traced syscalls).
    pub generated: u64,
    pub received: u64,
    pub dropped: u64,
    pub duration_s: f64,
    pub collector_cpu_s: f64,
    pub collector_wakeups: u64,
    /// Times the collector slept (voluntary context switches) and was preempted, when
    /// measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_sleeps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector_preemptions: Option<u64>,
    /// CPU seconds of the attack's cgroup (the producers), when measured.
    #[serde(default)]
    pub producer_cpu_s: Option<f64>,
    /// Ring bytes the generated events take (openat records are larger than close records):
    /// bytes written, not the ring's capacity (named `ring_bytes` in the JSON).
    #[serde(rename = "ring_bytes")]
    pub ring_bytes_written: f64,
}

impl CalibrationRun {
    /// What the simulator counts as a collector wakeup: a sleep that ended, when measured
    /// (only a sleeping collector is notified; a poll that finds records at once costs no
    /// one a wakeup), else the polls that found records.
    pub fn sim_wakeups(&self) -> u64 {
        self.collector_sleeps.unwrap_or(self.collector_wakeups)
    }

    /// Whether the collector shared its CPU with producers on a machine of `cpus` CPUs:
    /// with as many producers as CPUs, each time it ran it took the CPU from a producer.
    pub fn is_contended(&self, cpus: usize) -> bool {
        self.threads as usize >= cpus.max(1)
    }

    /// Switches between the collector and a producer in a contended run: each sleep or
    /// preemption hands its CPU to a producer, and each return takes it back.
    pub fn contended_switches(&self, cpus: usize) -> u64 {
        if self.is_contended(cpus) {
            self.sim_wakeups() + self.collector_preemptions.unwrap_or(0)
        } else {
            0
        }
    }
}

impl Calibration {
    pub fn load(path: &Path) -> Result<Calibration, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("reading {}: {err}", path.display()))?;
        serde_json::from_str(&text).map_err(|err| format!("parsing {}: {err}", path.display()))
    }

    /// Writes the file atomically (a temporary file in the same directory, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
        let name = path
            .file_name()
            .ok_or_else(|| format!("{} is not a file name", path.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let text = serde_json::to_string_pretty(self).map_err(|err| err.to_string())?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            format!("writing {}: {err}", path.display())
        })
    }

    /// Ring capacity in events of a `ring_bytes` ring flooded with `flood`.
    pub fn ring_capacity_events(&self, flood: &str, ring_bytes: u64) -> Result<u64, String> {
        let per_event = self
            .ring_bytes_per_event
            .get(flood)
            .copied()
            .filter(|b| *b > 0.0)
            .ok_or_else(|| format!("the calibration has no record size for flood {flood}"))?;
        Ok(((ring_bytes as f64 / per_event).floor() as u64).max(1))
    }
}

impl SimConfig {
    /// A simulation of this machine's producers of `flood` and the built-in collector, with
    /// the calibrated costs: `producers` flood threads on `cpus` CPUs for `duration_ns`, the
    /// ring holding `ring_bytes`. Everything else (tick, window, no hogs or sleepers) is the
    /// default.
    pub fn from_calibration(
        calibration: &Calibration,
        flood: &str,
        cpus: usize,
        producers: usize,
        ring_bytes: u64,
        duration_ns: u64,
    ) -> Result<SimConfig, String> {
        let syscall_cost_ns = calibration
            .syscall_cost_ns
            .get(flood)
            .copied()
            .filter(|c| c.is_finite() && *c > 0.0)
            .ok_or_else(|| format!("the calibration has no syscall cost for flood {flood}"))?;
        let round = |ns: f64| -> u64 {
            if ns.is_finite() && ns > 0.0 {
                ns.round() as u64
            } else {
                0
            }
        };
        Ok(SimConfig {
            cpus: cpus.max(1),
            duration_ns,
            producers,
            ring_capacity_events: calibration.ring_capacity_events(flood, ring_bytes)?,
            syscall_cost_ns: round(syscall_cost_ns).max(1),
            collector: CollectorModel {
                per_event_cost_ns: round(calibration.collector_per_event_cost_ns).max(1),
                wakeup_cost_ns: round(calibration.collector_wakeup_cost_ns),
                switch_cost_ns: round(calibration.collector_switch_cost_ns),
                wakeup_latency_ns: round(calibration.wakeup_latency_ns),
                notify_cost_ns: round(calibration.producer_notify_cost_ns),
                stall_histogram: calibration.collector_stall_histogram.clone(),
                stalls_per_event: calibration.collector_stalls_per_event,
                wakeup_latency_histogram: calibration.wakeup_latency_histogram.clone(),
                nice: 0,
            },
            ..SimConfig::default()
        })
    }
}

/// The wakeup latency (ns, within `0..=max_ns`) at which the simulator, configured from
/// `calibration` otherwise, loses `real_loss_pct` of the events of `producers` producers of
/// `flood` on `cpus` CPUs with a `ring_bytes` ring for `duration_ns` under `policy` (averaged
/// over `seeds` seeds). Bisection: the simulated loss does not fall as the latency grows.
/// Returns the latency and the simulated loss there.
#[allow(clippy::too_many_arguments)]
pub fn fit_wakeup_latency(
    calibration: &Calibration,
    flood: &str,
    cpus: usize,
    producers: usize,
    ring_bytes: u64,
    duration_ns: u64,
    real_loss_pct: f64,
    seeds: u64,
    max_ns: u64,
) -> Result<(u64, f64), String> {
    let base =
        SimConfig::from_calibration(calibration, flood, cpus, producers, ring_bytes, duration_ns)?;
    let loss_at = |latency_ns: u64| -> f64 {
        let mut total = 0.0;
        for seed in 1..=seeds.max(1) {
            let mut config = base.clone();
            config.seed = seed;
            config.collector.wakeup_latency_ns = latency_ns;
            let mut policy = super::Eevdf::new(config.cpus, config.tick_ns);
            total += super::simulate(&config, &mut policy).loss_pct;
        }
        total / seeds.max(1) as f64
    };
    let (mut lo, mut hi) = (0u64, max_ns);
    let lo_loss = loss_at(lo);
    if lo_loss >= real_loss_pct {
        return Ok((lo, lo_loss));
    }
    let hi_loss = loss_at(hi);
    if hi_loss <= real_loss_pct {
        return Ok((hi, hi_loss));
    }
    while hi - lo > 1_000 {
        let mid = lo + (hi - lo) / 2;
        if loss_at(mid) < real_loss_pct {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (lo_loss, hi_loss) = (loss_at(lo), loss_at(hi));
    Ok(
        if (lo_loss - real_loss_pct).abs() <= (hi_loss - real_loss_pct).abs() {
            (lo, lo_loss)
        } else {
            (hi, hi_loss)
        },
    )
}

/// Fits `collector_cpu_s = fixed + per_event * received + per_wakeup * wakeups` (wakeups as
/// [`CalibrationRun::sim_wakeups`] counts them) to the runs by
/// least squares and returns `(fixed_s, per_event_ns, per_wakeup_ns)`. Coefficients that come
/// out negative (noise, or runs that do not separate them) are dropped and the rest refitted,
/// so the result is never negative; with a single run everything is charged to the events.
pub fn fit_collector_costs(runs: &[CalibrationRun]) -> (f64, f64, f64) {
    let rows: Vec<([f64; 3], f64)> = runs
        .iter()
        .map(|r| {
            (
                [1.0, r.received as f64, r.sim_wakeups() as f64],
                r.collector_cpu_s,
            )
        })
        .collect();
    // Try the full model, then smaller ones, keeping the first with no negative coefficient.
    let models: [&[usize]; 4] = [&[0, 1, 2], &[1, 2], &[0, 1], &[1]];
    for model in models {
        if rows.len() < model.len() {
            continue;
        }
        if let Some(coef) = least_squares(&rows, model) {
            if coef.iter().all(|c| *c >= 0.0 && c.is_finite()) {
                let mut full = [0.0; 3];
                for (i, c) in model.iter().zip(coef) {
                    full[*i] = c;
                }
                return (full[0], full[1] * 1e9, full[2] * 1e9);
            }
        }
    }
    (0.0, 0.0, 0.0)
}

/// Fits `producer_cpu_s = per_syscall * generated + per_notify * wakeups` (the collector's
/// sleeps where measured, see [`CalibrationRun::sim_wakeups`]) over the runs that measured the producers' CPU and were not paced (a paced producer also pays for
/// its own sleeps). Returns `(per_syscall_ns, per_notify_ns)`, or `None` if the runs cannot
/// separate the two (all with the same wakeups per event) or a cost comes out negative.
pub fn fit_producer_costs(
    runs: &[CalibrationRun],
    cpus: usize,
    switch_cost_ns: f64,
) -> Option<(f64, f64)> {
    let rows: Vec<([f64; 3], f64)> = runs
        .iter()
        .filter(|r| r.rate.is_none())
        .filter_map(|r| {
            // Producers pay the switch cost too, each time they take the CPU back.
            let switching_s = r.contended_switches(cpus) as f64 * switch_cost_ns * 1e-9;
            let cpu_s = r.producer_cpu_s? - switching_s;
            Some(([r.generated as f64, r.sim_wakeups() as f64, 0.0], cpu_s))
        })
        .collect();
    let coef = least_squares(&rows, &[0, 1])?;
    (coef.iter().all(|c| c.is_finite() && *c > 0.0)).then(|| (coef[0] * 1e9, coef[1] * 1e9))
}

/// The switch cost: over the runs where the collector shared its CPU with producers (on
/// `cpus` CPUs), the collector's CPU beyond `fixed_s + per_event * received + per_wakeup *
/// wakeups` (its costs fitted where it had a CPU of its own), per switch. `None` without
/// such runs with their switches measured; never negative.
pub fn fit_switch_cost(
    runs: &[CalibrationRun],
    cpus: usize,
    (fixed_s, per_event_ns, per_wakeup_ns): (f64, f64, f64),
) -> Option<f64> {
    let (excess_s, switches) = runs
        .iter()
        .filter(|r| r.is_contended(cpus) && r.collector_sleeps.is_some())
        .fold((0.0, 0u64), |(excess_s, switches), r| {
            let modelled_s = fixed_s
                + (r.received as f64 * per_event_ns + r.sim_wakeups() as f64 * per_wakeup_ns)
                    * 1e-9;
            (
                excess_s + (r.collector_cpu_s - modelled_s),
                switches + r.contended_switches(cpus),
            )
        });
    (switches > 0).then(|| (excess_s * 1e9 / switches as f64).max(0.0))
}

/// Solves the normal equations for the chosen columns; `None` if singular.
fn least_squares(rows: &[([f64; 3], f64)], cols: &[usize]) -> Option<Vec<f64>> {
    let n = cols.len();
    let mut a = vec![vec![0.0; n + 1]; n];
    for (x, y) in rows {
        for i in 0..n {
            for j in 0..n {
                a[i][j] += x[cols[i]] * x[cols[j]];
            }
            a[i][n] += x[cols[i]] * y;
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..n {
        let pivot = (col..n).max_by(|p, q| a[*p][col].abs().total_cmp(&a[*q][col].abs()))?;
        a.swap(col, pivot);
        let scale = a.iter().map(|r| r[col].abs()).fold(0.0, f64::max);
        if a[col][col].abs() <= 1e-12 * scale.max(1e-300) {
            return None;
        }
        let pivot_row = a[col].clone();
        for (index, row) in a.iter_mut().enumerate() {
            if index != col {
                let factor = row[col] / pivot_row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= factor * p;
                }
            }
        }
    }
    Some((0..n).map(|i| a[i][n] / a[i][i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(received: u64, wakeups: u64, cpu_s: f64) -> CalibrationRun {
        CalibrationRun {
            flood: "openat".into(),
            threads: 1,
            rate: None,
            count: None,
            generated: received,
            received,
            dropped: 0,
            duration_s: 1.0,
            collector_cpu_s: cpu_s,
            collector_wakeups: wakeups,
            collector_sleeps: None,
            collector_preemptions: None,
            producer_cpu_s: None,
            ring_bytes_written: received as f64 * 232.0,
        }
    }

    fn sample() -> Calibration {
        let runs = vec![run(400_000, 3_000, 0.02 + 0.4 + 0.015)];
        Calibration {
            machine: "test".into(),
            kernel: "6.12.0".into(),
            cpus: 2,
            date: "2026-01-01T00:00:00Z".into(),
            git_rev: "abc".into(),
            syscall_cost_ns: BTreeMap::from([("openat".to_string(), 1_650.4)]),

            ring_bytes_per_event: BTreeMap::from([("openat".to_string(), 232.0)]),
            collector_per_event_cost_ns: 1_000.0,
            collector_wakeup_cost_ns: 5_000.0,
            collector_switch_cost_ns: 0.0,
            collector_fixed_cpu_s: 0.02,
            wakeup_latency_ns: 30_123.0,
            pipe_wakeup_latency_ns: 9_000.0,
            kernel_tick_ns: None,
            wakeup_latency_rounds: 2_000,
            wakeup_latency_fit: None,
            wakeup_latency_histogram: None,
            producer_notify_cost_ns: 0.0,
            collector_stall_histogram: None,
            collector_stalls_per_event: 0.0,
            runs,
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/calibration.json");
        let calibration = sample();
        calibration.save(&path).unwrap();
        assert_eq!(Calibration::load(&path).unwrap(), calibration);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("calibration.json")]);
        assert!(Calibration::load(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn sim_config_from_calibration() {
        let calibration = sample();
        let config =
            SimConfig::from_calibration(&calibration, "openat", 2, 4, 64 * 1024, 500_000_000)
                .unwrap();
        assert_eq!(config.cpus, 2);
        assert_eq!(config.producers, 4);
        assert_eq!(config.duration_ns, 500_000_000);
        assert_eq!(config.syscall_cost_ns, 1_650);
        // 65536 / 232 = 282.48
        assert_eq!(config.ring_capacity_events, 282);
        assert_eq!(config.collector.per_event_cost_ns, 1_000);
        assert_eq!(config.collector.wakeup_cost_ns, 5_000);
        assert_eq!(config.collector.wakeup_latency_ns, 30_123);
        assert_eq!(config.hogs, 0);
        assert!(
            SimConfig::from_calibration(&calibration, "fork", 2, 4, 65536, 1).is_err(),
            "a flood that was not calibrated is an error, not a guess"
        );
    }

    #[test]
    fn wakeup_latency_fit_reproduces_loss() {
        let calibration = sample();
        // The loss the simulator itself gives at a known latency is fitted back to it.
        let mut config =
            SimConfig::from_calibration(&calibration, "openat", 2, 1, 65536, 200_000_000).unwrap();
        config.collector.wakeup_latency_ns = 3_000_000;
        let target =
            crate::sim::simulate(&config, &mut crate::sim::Eevdf::new(2, config.tick_ns)).loss_pct;
        assert!(target > 0.0);
        let (latency, loss) = fit_wakeup_latency(
            &calibration,
            "openat",
            2,
            1,
            65536,
            200_000_000,
            target,
            1,
            20_000_000,
        )
        .unwrap();
        assert!((loss - target).abs() < 1.0, "{loss} vs {target}");
        assert!((2_500_000..=3_500_000).contains(&latency), "{latency}");
    }

    #[test]
    fn producer_fit_separates_syscalls_from_notifications() {
        // cpu = 900 ns/syscall + 12 us/wakeup, exactly; one lossy run with few wakeups.
        let run = |threads: u32, generated: u64, wakeups: u64, rate: Option<u64>| CalibrationRun {
            flood: "openat".into(),
            threads,
            rate,
            count: None,
            generated,
            received: generated,
            dropped: 0,
            duration_s: 1.0,
            collector_cpu_s: 0.1,
            collector_wakeups: wakeups,
            collector_sleeps: None,
            collector_preemptions: None,
            producer_cpu_s: Some(generated as f64 * 900e-9 + wakeups as f64 * 12e-6),
            ring_bytes_written: 0.0,
        };
        let runs = [
            run(1, 400_000, 44_000, None),
            run(1, 100_000, 11_000, None),
            run(4, 1_500_000, 9_000, None),
            // Paced: its sleeps would count as notification cost; left out of the fit.
            CalibrationRun {
                producer_cpu_s: Some(0.5),
                ..run(1, 4_000, 3_400, Some(2_000))
            },
        ];
        let (per_syscall_ns, per_notify_ns) = fit_producer_costs(&runs, 2, 0.0).unwrap();
        assert!((per_syscall_ns - 900.0).abs() < 1.0, "{per_syscall_ns}");
        assert!((per_notify_ns - 12_000.0).abs() < 10.0, "{per_notify_ns}");
        // Runs with one wakeups-per-event ratio cannot tell the two apart.
        assert_eq!(fit_producer_costs(&runs[..1], 2, 0.0), None);
        // Where the collector's sleeps were measured, the notifications are those: a poll
        // that found records without sleeping notified no one.
        let with_sleeps: Vec<CalibrationRun> = runs
            .iter()
            .map(|r| CalibrationRun {
                collector_sleeps: Some(r.collector_wakeups),
                collector_wakeups: r.collector_wakeups * 3 / 2,
                ..r.clone()
            })
            .collect();
        let (per_syscall_ns, per_notify_ns) = fit_producer_costs(&with_sleeps, 2, 0.0).unwrap();
        assert!((per_syscall_ns - 900.0).abs() < 1.0, "{per_syscall_ns}");
        assert!((per_notify_ns - 12_000.0).abs() < 10.0, "{per_notify_ns}");
    }

    #[test]
    fn switch_cost_is_what_sharing_a_cpu_adds_on_both_sides() {
        // Collector: 1 us/event, plus 15 us per switch when it shares its CPU (threads >= 2
        // CPUs). Producers: 900 ns/event, 12 us per notification, 15 us per switch.
        let run = |threads: u32, generated: u64, received: u64, sleeps: u64| {
            let contended = threads >= 2;
            let switches = if contended { sleeps + 10 } else { 0 };
            CalibrationRun {
                flood: "openat".into(),
                threads,
                rate: None,
                count: None,
                generated,
                received,
                dropped: generated - received,
                duration_s: 1.0,
                collector_cpu_s: (received as f64 * 1_000.0 + switches as f64 * 15_000.0) * 1e-9,
                collector_wakeups: sleeps * 3 / 2,
                collector_sleeps: Some(sleeps),
                collector_preemptions: Some(if contended { 10 } else { 0 }),
                producer_cpu_s: Some(
                    (generated as f64 * 900.0
                        + sleeps as f64 * 12_000.0
                        + switches as f64 * 15_000.0)
                        * 1e-9,
                ),
                ring_bytes_written: 0.0,
            }
        };
        let runs = [
            run(1, 400_000, 400_000, 60_000),
            run(1, 100_000, 100_000, 20_000),
            run(4, 700_000, 120_000, 10_000),
        ];
        let uncontended: Vec<CalibrationRun> = runs
            .iter()
            .filter(|r| !r.is_contended(2))
            .cloned()
            .collect();
        let collector = fit_collector_costs(&uncontended);
        assert!((collector.1 - 1_000.0).abs() < 1.0, "{collector:?}");
        let switch_ns = fit_switch_cost(&runs, 2, collector).unwrap();
        assert!((switch_ns - 15_000.0).abs() < 1.0, "{switch_ns}");
        let (per_syscall_ns, per_notify_ns) = fit_producer_costs(&runs, 2, switch_ns).unwrap();
        assert!((per_syscall_ns - 900.0).abs() < 1.0, "{per_syscall_ns}");
        assert!((per_notify_ns - 12_000.0).abs() < 10.0, "{per_notify_ns}");
        // On a machine with more CPUs than producers nothing was shared.
        assert_eq!(fit_switch_cost(&runs, 8, collector), None);
    }

    #[test]
    fn fit_recovers_costs() {
        // cpu = 0.02 s + 900 ns/event + 4 us/wakeup, exactly.
        let cpu = |events: u64, wakeups: u64| 0.02 + events as f64 * 900e-9 + wakeups as f64 * 4e-6;
        let runs = vec![
            run(100_000, 500, cpu(100_000, 500)),
            run(400_000, 900, cpu(400_000, 900)),
            run(5_000, 5_000, cpu(5_000, 5_000)),
        ];
        let (fixed, per_event, per_wakeup) = fit_collector_costs(&runs);
        assert!((fixed - 0.02).abs() < 1e-9, "{fixed}");
        assert!((per_event - 900.0).abs() < 1e-3, "{per_event}");
        assert!((per_wakeup - 4_000.0).abs() < 1e-3, "{per_wakeup}");
    }

    #[test]
    fn fit_never_negative() {
        // Wakeups anti-correlated with CPU: the wakeup term is dropped, not made negative.
        let runs = vec![run(100_000, 5_000, 0.10), run(200_000, 10, 0.20)];
        let (fixed, per_event, per_wakeup) = fit_collector_costs(&runs);
        assert!(fixed >= 0.0 && per_event > 0.0 && per_wakeup >= 0.0);
        assert!(fit_collector_costs(&[]) == (0.0, 0.0, 0.0));
        let (_, single, _) = fit_collector_costs(&[run(1_000_000, 10, 1.0)]);
        assert!((single - 1_000.0).abs() < 1e-6);
    }
}
