//! `aegis-bench sim validate`: runs real host attacks (EEVDF, built-in collector, openat,
//! 64 KiB ring) at several intensities, or replays saved ones, simulates each with the
//! calibrated parameters, and reports real and simulated loss side by side. A calibration
//! from another machine, kernel or CPU count is flagged: the costs move with all three (2x
//! between two of our VMs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use attacks::FloodKind;
use comfy_table::Table;
use scheduler::sim::{simulate, Calibration, EevdfModel, SimConfig};

use super::FLOOD;
use crate::cli::ValidateArgs;
use crate::collector::CollectorKind;
use crate::commands::calibrate::{online_cpus, real_attack};
use crate::files::write_atomically;
use crate::measure::kernel;
use crate::results::sim::{ValidationPoint, ValidationReport};
use crate::results::trial::{now_rfc3339, Trial};
use crate::run::AttackOptions;
use crate::size::parse_ring_size;
use crate::GIT_REV;

/// A batch whose first record waited this long counts as a long wait in the validation
/// report: at the validated floods a 64 KiB ring fills in about this time.
const LONG_WAIT_NS: u64 = 500_000;

/// The sim-to-real target, in percentage points of loss.
const TARGET_ERROR_PP: f64 = 5.0;

/// What to validate, from the command line and the calibration it names.
#[derive(Clone, Debug)]
pub struct ValidateOptions {
    pub json: PathBuf,
    pub calibration_file: PathBuf,
    pub calibration: Calibration,
    /// Whether the calibration was measured on this machine, kernel and CPU count.
    pub calibration_from_this_host: bool,
    /// This machine's CPUs, the simulated machine's too.
    pub cpus: usize,
    /// Flood threads, one intensity each.
    pub threads: Vec<u32>,
    /// Seconds each real flood runs.
    pub duration: f64,
    /// The collector's ring, as given: the attack parses it.
    pub ring_size: String,
    /// Real runs per intensity.
    pub repetitions: u32,
    /// Simulation seeds per intensity.
    pub seeds: u64,
    pub eevdf_model: EevdfModel,
    /// One run queue per CPU in the simple model too.
    pub per_cpu_run_queues: bool,
    /// Real trials to replay instead of running new ones.
    pub real_trials: Option<PathBuf>,
}

impl ValidateOptions {
    /// Reads the calibration (warning when it is another host's) and fills in the defaults.
    pub fn from_args(args: &ValidateArgs) -> Result<Self> {
        let common = &args.common;
        let json = common
            .json
            .clone()
            .context("--validate needs --json FILE for its report")?;
        let calibration = Calibration::load(&common.calibration)
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!(
                    "no calibration at {}: run `aegis-bench calibrate --out {}` first",
                    common.calibration.display(),
                    common.calibration.display()
                )
            })?;
        let calibration_from_this_host = from_this_host(&calibration, &common.calibration);
        let threads: Vec<u32> = if common.quick && common.threads.is_none() {
            vec![1, 4]
        } else {
            common
                .threads
                .clone()
                .unwrap_or_else(|| vec![1, 2, 3, 4, 6, 8])
        };
        Ok(Self {
            json,
            calibration_file: common.calibration.clone(),
            calibration,
            calibration_from_this_host,
            cpus: online_cpus(),
            threads,
            duration: common
                .duration
                .unwrap_or(if common.quick { 0.5 } else { 1.0 }),
            ring_size: common.ring_size.clone(),
            repetitions: args
                .only
                .repetitions
                .unwrap_or(if common.quick { 1 } else { 3 }),
            seeds: common.seeds,
            eevdf_model: common.eevdf_model.map_or(EevdfModel::Linux, Into::into),
            per_cpu_run_queues: args.only.per_cpu_run_queues,
            real_trials: args.only.real_trials.clone(),
        })
    }
}

/// Whether `calibration` was measured on this machine, kernel and CPU count; says so if not.
fn from_this_host(calibration: &Calibration, file: &Path) -> bool {
    let host = (kernel::hostname(), kernel::release(), online_cpus());
    let same =
        (&calibration.machine, &calibration.kernel, calibration.cpus) == (&host.0, &host.1, host.2);
    if !same {
        crate::say!(
            "warning: {} was measured on {} ({}, {} CPUs), this is {} ({}, {} CPUs): its \
             costs may not hold here; run `aegis-bench calibrate --out FILE` on this machine",
            file.display(),
            calibration.machine,
            calibration.kernel,
            calibration.cpus,
            host.0,
            host.1,
            host.2
        );
    }
    same
}

/// `aegis-bench sim validate`.
pub fn run(args: &ValidateArgs) -> Result<()> {
    let options = ValidateOptions::from_args(args)?;
    let trials = real_trials(&options)?;
    let started = Instant::now();
    let points = simulate_points(&options, &trials)?;
    let report = validation_report(options.clone(), &trials, points);
    let mut bytes = serde_json::to_vec_pretty(&report).context("serializing the report")?;
    bytes.push(b'\n');
    write_atomically(&options.json, &bytes)?;
    let (png, svg) = crate::figures::sim_to_real::figure_paths(&options.json);
    crate::figures::sim_to_real::draw_validation(&report, &png, &svg)?;
    crate::out!("{}", points_table(&report));
    crate::out!(
        "max error {:.2} pp (target <= {TARGET_ERROR_PP} pp): {}; simulated in {:.2} s",
        report.max_error_pp,
        if report.target_met { "met" } else { "NOT met" },
        started.elapsed().as_secs_f64()
    );
    crate::out!(
        "wrote {}, {} and {}",
        options.json.display(),
        png.display(),
        svg.display()
    );
    Ok(())
}

/// The real side: new host attacks, or the trials `--real-trials` names.
fn real_trials(options: &ValidateOptions) -> Result<Vec<Trial>> {
    let flood = FLOOD;
    let threads = &options.threads;
    let duration = options.duration;
    let repetitions = options.repetitions;
    let trials = match &options.real_trials {
        Some(path) => real_trials_from(path, flood)?,
        None => {
            let thread_list: Vec<String> = threads.iter().map(u32::to_string).collect();
            crate::say!(
                "validate: aegis-bench attack --flood {flood} --threads {} --duration {duration} \
                 --ring-size {} --collector builtin --scheduler eevdf --repetitions {repetitions}",
                thread_list.join(","),
                options.ring_size
            );
            real_attack(&AttackOptions {
                flood: FloodKind::Openat,
                threads: threads.clone(),
                duration_s: duration,
                ring_sizes: vec![parse_ring_size(&options.ring_size)?],
                collectors: vec![CollectorKind::Builtin],
                schedulers: vec!["eevdf".to_string()],
                repetitions,
                ..AttackOptions::default()
            })?
        }
    };
    Ok(trials)
}

/// Real trials saved by `aegis-bench attack --json`, checked to be what validation replays.
fn real_trials_from(path: &Path, flood: &str) -> Result<Vec<Trial>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--real-trials: reading {}", path.display()))?;
    let trials: Vec<Trial> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--real-trials: {} is not a trial list (write one with `aegis-bench attack --json \
             FILE`)",
            path.display()
        )
    })?;
    if trials.is_empty() {
        bail!("--real-trials: {} holds no trials", path.display());
    }
    for trial in &trials {
        let fair = matches!(trial.id.scheduler.as_str(), "eevdf" | "cfs");
        if trial.id.flood != flood || trial.id.collector != "builtin" || !fair {
            bail!(
                "--real-trials: {} holds a {} flood with the {} collector on {}; validation \
                 replays {flood} floods with the built-in collector on the kernel's fair class \
                 (`aegis-bench attack --flood {flood} --collector builtin --scheduler eevdf`)",
                path.display(),
                trial.id.flood,
                trial.id.collector,
                trial.id.scheduler
            );
        }
    }
    Ok(trials)
}

/// One point per intensity: the real trials at it beside their simulation.
fn simulate_points(options: &ValidateOptions, trials: &[Trial]) -> Result<Vec<ValidationPoint>> {
    let tick_ns = options.eevdf_model.tick_ns(&options.calibration);
    if options.eevdf_model == EevdfModel::Linux && tick_ns.is_none() {
        crate::say!(
            "warning: {} does not record the kernel's tick (it predates that, or CONFIG_HZ \
             was unreadable): simulating a 1 ms tick; recalibrate with `aegis-bench \
             calibrate` for the kernel's",
            options.calibration_file.display()
        );
    }
    let mut by_threads: BTreeMap<u32, Vec<&Trial>> = BTreeMap::new();
    for trial in trials {
        by_threads.entry(trial.id.threads).or_default().push(trial);
    }
    by_threads
        .iter()
        .map(|(threads, reps)| {
            let sim = simulate_intensity(options, tick_ns, *threads, reps)?;
            Ok(validation_point(*threads, reps, sim))
        })
        .collect()
}

/// The simulated side of one intensity, summed over the seeds.
struct Simulated {
    loss_pct_by_seed: Vec<f64>,
    produced: u64,
    dropped: u64,
    collector_ns: u64,
    wakeups: u64,
    long_waits: u64,
    config: SimConfig,
}

/// Simulates `threads` producers for as long as the real repetitions `reps` ran, per seed.
fn simulate_intensity(
    options: &ValidateOptions,
    tick_ns: Option<u64>,
    threads: u32,
    reps: &[&Trial],
) -> Result<Simulated> {
    let real_duration_s = reps.iter().map(|t| t.attack.duration_s).sum::<f64>() / reps.len() as f64;
    let mut by_seed = Vec::new();
    let (mut produced, mut dropped, mut collector_ns, mut wakeups) = (0u64, 0u64, 0u64, 0u64);
    let mut long_waits = 0u64;
    let mut sim_config = None;
    for seed in 1..=options.seeds.max(1) {
        let mut config = SimConfig::from_calibration(
            &options.calibration,
            FLOOD,
            options.cpus,
            threads as usize,
            reps[0].id.ring_size_bytes,
            (real_duration_s * 1e9) as u64,
        )
        .map_err(anyhow::Error::msg)?;
        config.seed = seed;
        if let Some(tick_ns) = tick_ns {
            config.tick_ns = tick_ns;
        }
        let mut policy = options.eevdf_model.policy(config.cpus, config.tick_ns);
        policy.per_cpu_run_queues |= options.per_cpu_run_queues;
        let result = simulate(&config, &mut policy);
        by_seed.push(result.loss_pct);
        produced += result.produced;
        dropped += result.dropped;
        collector_ns += result.collector().cpu_ns;
        wakeups += result.collector().wakeups;
        long_waits += result
            .collector_wakeup_age_ns
            .count_at_or_above(LONG_WAIT_NS);
        sim_config.get_or_insert(config);
    }
    Ok(Simulated {
        loss_pct_by_seed: by_seed,
        produced,
        dropped,
        collector_ns,
        wakeups,
        long_waits,
        config: sim_config.expect("at least one seed"),
    })
}

/// The real repetitions `reps` at `threads` (means) beside their simulation `sim` (means).
fn validation_point(threads: u32, reps: &[&Trial], sim: Simulated) -> ValidationPoint {
    let reps_n = reps.len() as f64;
    let mean = |f: &dyn Fn(&Trial) -> f64| reps.iter().map(|t| f(t)).sum::<f64>() / reps_n;
    let real_loss_pct = mean(&|t| t.accounting.loss_pct);
    let n = sim.loss_pct_by_seed.len() as f64;
    let sim_loss_pct = sim.loss_pct_by_seed.iter().sum::<f64>() / n;
    let real_by_rep: Vec<f64> = reps.iter().map(|t| t.accounting.loss_pct).collect();
    // Means of what the real collector measured, where every repetition measured it.
    let mean_measured = |f: &dyn Fn(&Trial) -> Option<u64>| {
        reps.iter()
            .map(|t| f(t))
            .sum::<Option<u64>>()
            .map(|sum| sum / reps.len() as u64)
    };
    ValidationPoint {
        threads,
        real_loss_pct,
        sim_loss_pct,
        error_pp: (real_loss_pct - sim_loss_pct).abs(),
        scheduler: reps[0].id.scheduler.clone(),
        real_loss_pct_min: real_by_rep.iter().copied().fold(f64::INFINITY, f64::min),
        real_loss_pct_max: real_by_rep.iter().copied().fold(0.0, f64::max),
        real_loss_pct_by_repetition: real_by_rep,
        real_generated: mean(&|t| t.accounting.generated as f64) as u64,
        real_dropped: mean(&|t| t.accounting.dropped as f64) as u64,
        real_duration_s: mean(&|t| t.attack.duration_s),
        real_collector_cpu_s: mean(&|t| {
            t.cost
                .collector_consuming_cpu_s
                .unwrap_or(t.cost.collector_cpu_s)
        }),
        real_collector_wakeups: mean(&|t| t.cost.collector_wakeups as f64) as u64,
        real_collector_sleeps: mean_measured(&|t| t.cost.collector_sleeps),
        real_long_waits: mean_measured(&|t| {
            t.cost
                .collector_wakeup_age_ns
                .as_ref()
                .map(|ages| ages.count_at_or_above(LONG_WAIT_NS))
        }),
        sim_long_waits: sim.long_waits / n as u64,
        sim_collector_wakeups: sim.wakeups / n as u64,
        sim_loss_pct_by_seed: sim.loss_pct_by_seed,
        sim_produced: sim.produced / n as u64,
        sim_dropped: sim.dropped / n as u64,
        sim_collector_cpu_s: sim.collector_ns as f64 / n / 1e9,
        sim_config: sim.config,
    }
}

fn validation_report(
    options: ValidateOptions,
    trials: &[Trial],
    points: Vec<ValidationPoint>,
) -> ValidationReport {
    let max_error_pp = points.iter().map(|p| p.error_pp).fold(0.0, f64::max);
    let linux = options.eevdf_model == EevdfModel::Linux;
    ValidationReport {
        target_met: max_error_pp <= TARGET_ERROR_PP,
        max_error_pp,
        target_error_pp: TARGET_ERROR_PP,
        flood: FLOOD.into(),
        ring_size_bytes: trials.first().map_or(0, |t| t.id.ring_size_bytes),
        cpus: options.cpus,
        calibration_file: options.calibration_file,
        calibration: options.calibration,
        eevdf_model: options.eevdf_model,
        per_cpu_run_queues: linux || options.per_cpu_run_queues,
        inflate_placement_lag: linux,
        calibration_from_this_host: options.calibration_from_this_host,
        tick_ns: points.first().map_or(0, |p| p.sim_config.tick_ns),
        real_trials_file: options.real_trials,
        git_rev: GIT_REV.to_string(),
        date: now_rfc3339(),
        points,
    }
}

/// Real against simulated, one row per intensity, as printed.
fn points_table(report: &ValidationReport) -> Table {
    let mut table = Table::new();
    table.set_header([
        "threads",
        "real loss % (mean)",
        "real min..max",
        "sim loss %",
        "error (pp)",
        "collector CPU s real / sim",
        "collector sleeps real / sim",
        "waits >= 0.5 ms real / sim",
    ]);
    for p in &report.points {
        table.add_row([
            p.threads.to_string(),
            format!("{:.2}", p.real_loss_pct),
            format!("{:.1}..{:.1}", p.real_loss_pct_min, p.real_loss_pct_max),
            format!("{:.2}", p.sim_loss_pct),
            format!("{:.2}", p.error_pp),
            format!(
                "{:.3} / {:.3}",
                p.real_collector_cpu_s, p.sim_collector_cpu_s
            ),
            format!(
                "{} / {}",
                p.real_collector_sleeps
                    .map_or("-".to_string(), |n| n.to_string()),
                p.sim_collector_wakeups
            ),
            format!(
                "{} / {}",
                p.real_long_waits.map_or("-".to_string(), |n| n.to_string()),
                p.sim_long_waits
            ),
        ]);
    }
    table
}
