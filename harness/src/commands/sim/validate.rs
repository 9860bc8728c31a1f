//! `aegis-bench sim validate`: runs real attacks (built-in collector, openat, 64 KiB ring by
//! default) at several intensities under each `--scheduler` (EEVDF on the host; EEVDF and Aegis
//! in a sched_ext guest with `--vm`, see [`super::guest`]), or replays saved ones, simulates
//! each with the calibrated parameters and the scheduler's simulated policy, and reports real
//! and simulated loss and collector CPU side by side. A calibration from another machine,
//! kernel or CPU count than the real runs' is flagged: the costs move with all three (2x
//! between two of our VMs, more under TCG).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use attacks::FloodKind;
use comfy_table::Table;
use scheduler::aegis::qnet::QNet;
use scheduler::sim::{simulate, Aegis, Calibration, Cfs, EevdfModel, SimConfig, SimResult};

use super::evaluate::{load_network, AEGIS_DELTA};
use super::FLOOD;
use crate::cli::ValidateArgs;
use crate::collector::CollectorKind;
use crate::commands::calibrate::{online_cpus, real_attack};
use crate::files::write_atomically;
use crate::results::sim::{AegisSimSettings, ValidationPoint, ValidationReport};
use crate::results::trial::{now_rfc3339, Trial};
use crate::run::AttackOptions;
use crate::size::parse_ring_size;
use crate::GIT_REV;

/// A batch whose first record waited this long counts as a long wait in the validation
/// report: at the validated floods a 64 KiB ring fills in about this time.
const LONG_WAIT_NS: u64 = 500_000;

/// The sim-to-real target, in percentage points of loss (and of one CPU for the
/// collector's CPU).
const TARGET_ERROR_PP: f64 = 5.0;

/// scx_aegis's default `--producer-syscalls-per-window` (scheduler/scx_aegis/src/main.rs): the
/// simulated Aegis classifies producers as the real one does. The simulator's own default
/// (1,000, `Backbone::default`) is above what a producer makes under TCG.
const SCX_AEGIS_PRODUCER_SYSCALLS: u32 = 20;

/// A real scheduler `sim validate` knows how to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedAs {
    /// The kernel's EEVDF: the `--eevdf-model`.
    Eevdf,
    /// The kernel's CFS (a 6.1 guest): the simulator's CFS.
    Cfs,
    /// scx_aegis: the simulator's Aegis with the `--model` network, delta gate and producer
    /// threshold scx_aegis runs by default.
    Aegis,
}

impl SimulatedAs {
    /// The policy a trial's scheduler is simulated with, if any.
    pub fn of(scheduler: &str) -> Option<Self> {
        match scheduler {
            "eevdf" => Some(Self::Eevdf),
            "cfs" => Some(Self::Cfs),
            "aegis" => Some(Self::Aegis),
            _ => None,
        }
    }
}

/// What to validate, from the command line and the calibration it names.
#[derive(Clone, Debug)]
pub struct ValidateOptions {
    pub json: PathBuf,
    pub calibration_file: PathBuf,
    pub calibration: Calibration,
    /// Whether the calibration was measured on the real trials' machine, kernel and CPU count
    /// (set once the trials are known).
    pub calibration_from_this_host: bool,
    /// The real trials' CPUs, the simulated machine's too (set once the trials are known).
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
    /// The schedulers asked for (`None`: eevdf for new runs, all of a replayed file).
    pub schedulers: Option<Vec<String>>,
    /// Where new real trials are saved.
    pub save_trials: Option<PathBuf>,
    /// The network simulated Aegis runs.
    pub model_file: PathBuf,
}

impl ValidateOptions {
    /// Reads the calibration and fills in the defaults.
    pub fn from_args(args: &ValidateArgs) -> Result<Self> {
        let common = &args.common;
        // The guest's half of `--vm` measures only: it writes no report.
        let json = match &common.json {
            Some(json) => json.clone(),
            None if args.only.measure_only => PathBuf::new(),
            None => bail!("--validate needs --json FILE for its report"),
        };
        let calibration = Calibration::load(&common.calibration)
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!(
                    "no calibration at {}: run `aegis-bench calibrate --out {}` first",
                    common.calibration.display(),
                    common.calibration.display()
                )
            })?;
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
            calibration_from_this_host: false,
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
            schedulers: args.only.scheduler.clone(),
            save_trials: args.only.save_trials.clone(),
            model_file: common.model.clone(),
        })
    }

    /// The schedulers new real runs measure.
    pub fn schedulers_to_run(&self) -> Vec<String> {
        self.schedulers
            .clone()
            .unwrap_or_else(|| vec!["eevdf".to_string()])
    }
}

/// The machine, kernel and CPU count the real trials ran on (CPUs: this host's for trials
/// that predate recording them).
fn real_machine(trials: &[Trial]) -> (String, String, usize) {
    let env = &trials[0].env;
    let cpus = env.cpus.map_or_else(online_cpus, |n| n as usize);
    (env.machine.clone(), env.kernel.clone(), cpus)
}

/// Whether `calibration` was measured where the real trials ran; says so if not.
fn from_trials_machine(calibration: &Calibration, file: &Path, trials: &[Trial]) -> bool {
    let real = real_machine(trials);
    let same =
        (&calibration.machine, &calibration.kernel, calibration.cpus) == (&real.0, &real.1, real.2);
    if !same {
        crate::say!(
            "warning: {} was measured on {} ({}, {} CPUs), the real trials ran on {} ({}, {} \
             CPUs): its costs may not hold there; calibrate where the trials run (`aegis-bench \
             calibrate --out FILE`, or `sim validate --vm`)",
            file.display(),
            calibration.machine,
            calibration.kernel,
            calibration.cpus,
            real.0,
            real.1,
            real.2
        );
    }
    same
}

/// `aegis-bench sim validate`.
pub fn run(args: &ValidateArgs) -> Result<()> {
    if args.only.measure_only {
        return super::guest::measure(args);
    }
    let mut args = args.clone();
    if args.only.vm {
        super::guest::measure_in_guest(&args)?;
        // The guest's trials are replayed like any saved ones.
        args.only.real_trials = args.only.save_trials.take();
    }
    let mut options = ValidateOptions::from_args(&args)?;
    let trials = real_trials(&options)?;
    let (_, _, cpus) = real_machine(&trials);
    options.cpus = cpus;
    options.calibration_from_this_host =
        from_trials_machine(&options.calibration, &options.calibration_file, &trials);
    let started = Instant::now();
    let network = needs_network(&trials)
        .then(|| load_network(&options.model_file))
        .transpose()?;
    let points = simulate_points(&options, &trials, network.as_ref())?;
    let report = validation_report(options.clone(), &trials, points, network.is_some());
    let mut bytes = serde_json::to_vec_pretty(&report).context("serializing the report")?;
    bytes.push(b'\n');
    write_atomically(&options.json, &bytes)?;
    let (png, svg) = crate::figures::sim_to_real::figure_paths(&options.json);
    crate::figures::sim_to_real::draw_validation(&report, &png, &svg)?;
    crate::out!("{}", points_table(&report));
    crate::out!(
        "max error {:.2} pp of loss (target <= {TARGET_ERROR_PP} pp): {}; collector CPU {:.2} \
         pp of a CPU: {}; simulated in {:.2} s",
        report.max_error_pp,
        if report.target_met { "met" } else { "NOT met" },
        report.max_collector_cpu_error_pp,
        if report.collector_cpu_target_met {
            "met"
        } else {
            "NOT met"
        },
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

/// Whether any trial is simulated as Aegis (which needs the network).
fn needs_network(trials: &[Trial]) -> bool {
    trials
        .iter()
        .any(|t| SimulatedAs::of(&t.id.scheduler) == Some(SimulatedAs::Aegis))
}

/// The real side: new attacks on this machine (saved to `--save-trials`), or the trials
/// `--real-trials` names.
pub(super) fn real_trials(options: &ValidateOptions) -> Result<Vec<Trial>> {
    let trials = match &options.real_trials {
        Some(path) => real_trials_from(path, options.schedulers.as_deref())?,
        None => {
            let trials = run_real_trials(options)?;
            if let Some(path) = &options.save_trials {
                let mut bytes = serde_json::to_vec_pretty(&trials)?;
                bytes.push(b'\n');
                write_atomically(path, &bytes)?;
                crate::say!("validate: wrote the real trials to {}", path.display());
            }
            trials
        }
    };
    Ok(trials)
}

/// New real attacks, every scheduler at every intensity.
fn run_real_trials(options: &ValidateOptions) -> Result<Vec<Trial>> {
    let (flood, duration, repetitions) = (FLOOD, options.duration, options.repetitions);
    let schedulers = options.schedulers_to_run();
    for name in &schedulers {
        if SimulatedAs::of(name).is_none() {
            bail!(unsupported_scheduler(name));
        }
    }
    let thread_list: Vec<String> = options.threads.iter().map(u32::to_string).collect();
    crate::say!(
        "validate: aegis-bench attack --flood {flood} --threads {} --duration {duration} \
         --ring-size {} --collector builtin --scheduler {} --repetitions {repetitions}",
        thread_list.join(","),
        options.ring_size,
        schedulers.join(",")
    );
    real_attack(&AttackOptions {
        flood: FloodKind::Openat,
        threads: options.threads.clone(),
        duration_s: duration,
        ring_sizes: vec![parse_ring_size(&options.ring_size)?],
        collectors: vec![CollectorKind::Builtin],
        schedulers,
        repetitions,
        ..AttackOptions::default()
    })
}

fn unsupported_scheduler(name: &str) -> String {
    format!("sim validate simulates eevdf, cfs and aegis; {name} has no simulated policy here")
}

/// Real trials saved by `aegis-bench attack --json` (or `--save-trials`), checked to be what
/// validation replays; only those of `schedulers` when given.
fn real_trials_from(path: &Path, schedulers: Option<&[String]>) -> Result<Vec<Trial>> {
    let flood = FLOOD;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--real-trials: reading {}", path.display()))?;
    let mut trials: Vec<Trial> = serde_json::from_str(&text).with_context(|| {
        format!(
            "--real-trials: {} is not a trial list (write one with `aegis-bench attack --json \
             FILE`)",
            path.display()
        )
    })?;
    if let Some(schedulers) = schedulers {
        for name in schedulers {
            if !trials.iter().any(|t| &t.id.scheduler == name) {
                bail!("--real-trials: {} holds no {name} trials", path.display());
            }
        }
        trials.retain(|t| schedulers.contains(&t.id.scheduler));
    }
    if trials.is_empty() {
        bail!("--real-trials: {} holds no trials", path.display());
    }
    for trial in &trials {
        let known = SimulatedAs::of(&trial.id.scheduler).is_some();
        if trial.id.flood != flood || trial.id.collector != "builtin" || !known {
            bail!(
                "--real-trials: {} holds a {} flood with the {} collector on {}; validation \
                 replays {flood} floods with the built-in collector on eevdf, cfs or aegis \
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

/// One point per scheduler and intensity: the real trials at it beside their simulation.
fn simulate_points(
    options: &ValidateOptions,
    trials: &[Trial],
    network: Option<&QNet>,
) -> Result<Vec<ValidationPoint>> {
    let tick_ns = options.eevdf_model.tick_ns(&options.calibration);
    if options.eevdf_model == EevdfModel::Linux && tick_ns.is_none() {
        crate::say!(
            "warning: {} does not record the kernel's tick (it predates that, or CONFIG_HZ \
             was unreadable): simulating a 1 ms tick; recalibrate with `aegis-bench \
             calibrate` for the kernel's",
            options.calibration_file.display()
        );
    }
    // Schedulers in the order they first appear, intensities ascending.
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<(usize, u32), Vec<&Trial>> = BTreeMap::new();
    for trial in trials {
        let name = trial.id.scheduler.as_str();
        let rank = order.iter().position(|n| *n == name).unwrap_or_else(|| {
            order.push(name);
            order.len() - 1
        });
        groups
            .entry((rank, trial.id.threads))
            .or_default()
            .push(trial);
    }
    groups
        .iter()
        .map(|((_, threads), reps)| {
            let sim = simulate_intensity(options, tick_ns, network, *threads, reps)?;
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

/// One simulation of `config` under the policy the real scheduler `kind` is simulated with.
fn simulate_as(
    kind: SimulatedAs,
    options: &ValidateOptions,
    network: Option<&QNet>,
    config: &SimConfig,
) -> SimResult {
    match kind {
        SimulatedAs::Eevdf => {
            let mut policy = options.eevdf_model.policy(config.cpus, config.tick_ns);
            policy.per_cpu_run_queues |= options.per_cpu_run_queues;
            simulate(config, &mut policy)
        }
        SimulatedAs::Cfs => simulate(config, &mut Cfs::new(config.cpus)),
        SimulatedAs::Aegis => {
            let mut aegis = Aegis::new(network.cloned(), config.tick_ns, AEGIS_DELTA);
            aegis.backbone.producer_syscalls_per_window = SCX_AEGIS_PRODUCER_SYSCALLS;
            simulate(config, &mut aegis)
        }
    }
}

/// Simulates `threads` producers for as long as the real repetitions `reps` ran, per seed,
/// under the policy of their scheduler.
fn simulate_intensity(
    options: &ValidateOptions,
    tick_ns: Option<u64>,
    network: Option<&QNet>,
    threads: u32,
    reps: &[&Trial],
) -> Result<Simulated> {
    let scheduler = &reps[0].id.scheduler;
    let kind = SimulatedAs::of(scheduler).with_context(|| unsupported_scheduler(scheduler))?;
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
        let result = simulate_as(kind, options, network, &config);
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
    let real_cpu_s = |t: &Trial| {
        t.cost
            .collector_consuming_cpu_s
            .unwrap_or(t.cost.collector_cpu_s)
    };
    // Percent of one CPU over the run; the simulation ran as long as the mean real run.
    let real_collector_cpu_pct = mean(&|t| 100.0 * real_cpu_s(t) / t.attack.duration_s);
    let sim_collector_cpu_pct =
        100.0 * sim.collector_ns as f64 / n / sim.config.duration_ns.max(1) as f64;
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
        real_collector_cpu_s: mean(&|t| real_cpu_s(t)),
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
        real_collector_cpu_pct,
        sim_collector_cpu_pct,
        collector_cpu_error_pp: (real_collector_cpu_pct - sim_collector_cpu_pct).abs(),
        sim_config: sim.config,
    }
}

fn validation_report(
    options: ValidateOptions,
    trials: &[Trial],
    points: Vec<ValidationPoint>,
    simulated_aegis: bool,
) -> ValidationReport {
    let max_error_pp = points.iter().map(|p| p.error_pp).fold(0.0, f64::max);
    let max_cpu_error_pp = points
        .iter()
        .map(|p| p.collector_cpu_error_pp)
        .fold(0.0, f64::max);
    let mut schedulers: Vec<String> = Vec::new();
    let mut by_scheduler: BTreeMap<String, f64> = BTreeMap::new();
    for p in &points {
        if !schedulers.contains(&p.scheduler) {
            schedulers.push(p.scheduler.clone());
        }
        let max = by_scheduler.entry(p.scheduler.clone()).or_insert(0.0);
        *max = max.max(p.error_pp);
    }
    let linux = options.eevdf_model == EevdfModel::Linux;
    let (machine, kernel, _) = real_machine(trials);
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
        schedulers,
        max_error_pp_by_scheduler: by_scheduler,
        max_collector_cpu_error_pp: max_cpu_error_pp,
        collector_cpu_target_met: max_cpu_error_pp <= TARGET_ERROR_PP,
        aegis: simulated_aegis.then_some(AegisSimSettings {
            model_file: options.model_file,
            producer_syscalls_per_window: SCX_AEGIS_PRODUCER_SYSCALLS,
            delta: AEGIS_DELTA,
        }),
        real_machine: Some(machine),
        real_kernel: Some(kernel),
        git_rev: GIT_REV.to_string(),
        date: now_rfc3339(),
        points,
    }
}

/// Real against simulated, one row per intensity, as printed.
fn points_table(report: &ValidationReport) -> Table {
    let mut table = Table::new();
    table.set_header([
        "scheduler",
        "threads",
        "real loss % (mean)",
        "real min..max",
        "sim loss %",
        "error (pp)",
        "collector CPU % real / sim (error pp)",
        "collector sleeps real / sim",
        "waits >= 0.5 ms real / sim",
    ]);
    for p in &report.points {
        table.add_row([
            p.scheduler.clone(),
            p.threads.to_string(),
            format!("{:.2}", p.real_loss_pct),
            format!("{:.1}..{:.1}", p.real_loss_pct_min, p.real_loss_pct_max),
            format!("{:.2}", p.sim_loss_pct),
            format!("{:.2}", p.error_pp),
            format!(
                "{:.1} / {:.1} ({:.1})",
                p.real_collector_cpu_pct, p.sim_collector_cpu_pct, p.collector_cpu_error_pp
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
