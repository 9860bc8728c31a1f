//! `aegis-bench sim evaluate`: every simulated scheduler against the bound and the fair-share
//! reference, across attack intensities and machine sizes, and the Aegis ablations. It only
//! simulates (no root).
//!
//! Each configuration is this machine's calibrated attack (`results/calibration.json`, see
//! `aegis-bench calibrate`: producer CPU per event, collector CPU per event and per wakeup,
//! wakeup latency, ring capacity of a `--ring-size` ring of openat records) on `cpus` CPUs,
//! with `producers` flood threads beside an ordinary load of `max(1, cpus / 2)` CPU hogs and
//! `max(1, cpus / 4)` sleepers (200 us of CPU, then 800 us asleep). Policies:
//!
//! - `eevdf`, `cfs`: Linux's fair class (>= 6.6 and before);
//! - `rustland`: deadline scheduling decided in user space, with a 50 us round trip and 2 us of
//!   user-space CPU per decision ([`scheduler::sim::rustland`]);
//! - `aegis-no-net`: Aegis's levels and waiting bound with its fixed action (boost 1,
//!   throttle 0);
//! - `aegis-dqn`: Aegis with the shipped Q-network, loaded as scx_aegis loads it (the
//!   `fixed_network` of the model JSON), with scx_aegis's default delta gate (8).
//!
//! Per row, averaged over seeds: loss %, the ordinary tasks' CPU against the bound at each
//! seed's operating point ([`scheduler::sim::bound`]; `slowdown_vs_bound = bound ordinary CPU
//! / policy ordinary CPU`, at least 1 for every run by construction, 1 = no scheduler could
//! slow the ordinary tasks less while the producers issued as many events and the collector
//! recorded as many), against the fair-share reference ([`scheduler::sim::fair_share`], not a
//! bound: `slowdown_vs_fair_share` for the ordinary tasks and `producer_progress_vs_fair_share`
//! for the producers, either side of 1), Jain's fairness index over the ordinary tasks' CPU
//! times, each divided by its fair share (a sleeper can use only a fifth of a CPU; raw CPU
//! times would count that as unfairness), and the fair share's numbers. Per policy over the
//! configurations (`summary`): the mean loss, and every ratio split at 1, each side with its
//! geometric mean, so no mean mixes values on both sides of 1.
//!
//! Ablations, at two configurations with as many hogs as CPUs (so that strict levels alone
//! would starve the producers): full Aegis (the DQN, waiting bound, delta gate 8) against
//! Aegis without the waiting bound (maximum wait seen per level) and without delta gating
//! (inferences run and skipped, loss).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};
use scheduler::aegis::levels::{Level, NR_LEVELS};
use scheduler::aegis::qnet::QNet;
use scheduler::sim::rustland::{DEFAULT_DECISION_COST_NS, DEFAULT_ROUND_TRIP_NS};
use scheduler::sim::{
    bound, fair_share, simulate, Aegis, AegisStats, Bound, Calibration, Cfs, EevdfModel, FairShare,
    OperatingPoint, Policy, Rustland, SimConfig, SimResult,
};
use serde::{Deserialize, Serialize};

use super::FLOOD;
use crate::cli::EvaluateArgs;
use crate::files::write_atomically;
use crate::measure::fairness::jain_index;
use crate::results::sim::{EvalReport, EvalRow, PolicySummary, SidesOfOne};
use crate::results::trial::now_rfc3339;
use crate::size::parse_size;
use crate::GIT_REV;

/// scx_aegis's default `--delta`: the delta gate of full Aegis.
pub const AEGIS_DELTA: u32 = 8;

/// A simulated scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    Eevdf,
    Cfs,
    Rustland,
    AegisNoNet,
    AegisDqn,
    /// Ablation: the DQN without the waiting bound.
    AegisDqnNoWaitingBound,
    /// Ablation: the DQN without delta gating (inference every window, [`Aegis::gating`]).
    AegisDqnNoDeltaGating,
}

impl PolicyKind {
    pub const COMPARED: [PolicyKind; 5] = [
        PolicyKind::Eevdf,
        PolicyKind::Cfs,
        PolicyKind::Rustland,
        PolicyKind::AegisNoNet,
        PolicyKind::AegisDqn,
    ];
    pub const ABLATIONS: [PolicyKind; 3] = [
        PolicyKind::AegisDqn,
        PolicyKind::AegisDqnNoWaitingBound,
        PolicyKind::AegisDqnNoDeltaGating,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Eevdf => "eevdf",
            PolicyKind::Cfs => "cfs",
            PolicyKind::Rustland => "rustland",
            PolicyKind::AegisNoNet => "aegis-no-net",
            PolicyKind::AegisDqn => "aegis-dqn",
            PolicyKind::AegisDqnNoWaitingBound => "aegis-dqn-no-waiting-bound",
            PolicyKind::AegisDqnNoDeltaGating => "aegis-dqn-no-delta-gating",
        }
    }

    /// Runs one simulation; Aegis variants also return what Aegis did.
    fn run(
        self,
        config: &SimConfig,
        network: &QNet,
        eevdf_model: EevdfModel,
    ) -> (SimResult, Option<AegisStats>) {
        let aegis = |gating: bool, bound: bool| {
            let mut aegis = Aegis::new(Some(network.clone()), config.tick_ns, AEGIS_DELTA);
            aegis.gating = gating;
            if !bound {
                // A bound no run reaches: strict levels alone.
                aegis.backbone.base_wait_ns = u64::MAX >> 8;
            }
            aegis
        };
        let mut aegis = match self {
            PolicyKind::Eevdf => {
                return plain(config, eevdf_model.policy(config.cpus, config.tick_ns))
            }
            PolicyKind::Cfs => return plain(config, Cfs::new(config.cpus)),
            PolicyKind::Rustland => return plain(config, Rustland::default()),
            PolicyKind::AegisNoNet => Aegis::new(None, config.tick_ns, 0),
            PolicyKind::AegisDqn => aegis(true, true),
            PolicyKind::AegisDqnNoWaitingBound => aegis(true, false),
            PolicyKind::AegisDqnNoDeltaGating => aegis(false, true),
        };
        let result = simulate(config, &mut aegis);
        (result, Some(aegis.stats))
    }
}

fn plain(config: &SimConfig, mut policy: impl Policy) -> (SimResult, Option<AegisStats>) {
    (simulate(config, &mut policy), None)
}

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub calibration: Calibration,
    pub calibration_file: PathBuf,
    pub network: QNet,
    pub model_file: PathBuf,
    pub cpus: Vec<usize>,
    /// Flood threads per configuration; `None`: 1, 4, 8 and one per CPU.
    pub producers: Option<Vec<usize>>,
    pub seeds: u64,
    pub duration_ns: u64,
    pub ring_bytes: u64,
    /// (cpus, producers) of the ablations.
    pub ablation_configs: Vec<(usize, usize)>,
    /// Simulations run at once.
    pub jobs: usize,
    /// Replaces the calibration's collector wakeup latency.
    pub wakeup_latency_ns: Option<u64>,
    /// The EEVDF row's model; `Linux` also runs every policy at the kernel's tick.
    pub eevdf_model: EevdfModel,
}

impl EvalOptions {
    /// Reads the calibration and the model `args` name and fills in the defaults.
    pub fn from_args(args: &EvaluateArgs) -> Result<Self> {
        let (common, only) = (&args.common, &args.only);
        let calibration = Calibration::load(&common.calibration)
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!(
                    "no calibration at {}: run `aegis-bench calibrate --out {}` first (as \
                     root), or pass --calibration FILE",
                    common.calibration.display(),
                    common.calibration.display()
                )
            })?;
        let network = load_network(&only.model)?;
        let ring_bytes = parse_size(&common.ring_size)
            .with_context(|| format!("--ring-size {}", common.ring_size))?;
        let quick = common.quick;
        let options = EvalOptions {
            calibration,
            calibration_file: common.calibration.clone(),
            network,
            model_file: only.model.clone(),
            cpus: only.cpus.clone().unwrap_or_else(|| {
                if quick {
                    vec![2, 8]
                } else {
                    vec![2, 8, 64, 128]
                }
            }),
            producers: common
                .threads
                .as_ref()
                .map(|t| t.iter().map(|n| *n as usize).collect())
                .or_else(|| quick.then(|| vec![1, 4])),
            seeds: common.seeds,
            duration_ns: (common.duration.unwrap_or(if quick { 0.1 } else { 1.0 }) * 1e9) as u64,
            ring_bytes,
            ablation_configs: if quick {
                vec![(2, 4)]
            } else {
                vec![(2, 4), (8, 8)]
            },
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            wakeup_latency_ns: only.wakeup_latency_us.map(|us| (us * 1e3).round() as u64),
            eevdf_model: common.eevdf_model.map_or(EevdfModel::Linux, Into::into),
        };
        if options.duration_ns == 0 {
            return crate::error::input_error("--duration must be positive");
        }
        Ok(options)
    }
}

/// The configuration simulated for `cpus` CPUs and `producers` flood threads, and its
/// ordinary load (see the module docs).
pub fn eval_config(
    options: &EvalOptions,
    cpus: usize,
    producers: usize,
    hogs: usize,
) -> Result<SimConfig> {
    let mut config = SimConfig::from_calibration(
        &options.calibration,
        FLOOD,
        cpus,
        producers,
        options.ring_bytes,
        options.duration_ns,
    )
    .map_err(anyhow::Error::msg)?;
    config.hogs = hogs;
    config.sleepers = (cpus / 4).max(1);
    if let Some(tick_ns) = options.eevdf_model.tick_ns(&options.calibration) {
        config.tick_ns = tick_ns;
    }
    if let Some(latency) = options.wakeup_latency_ns {
        // A fixed latency in place of the measured distribution.
        config.collector.wakeup_latency_ns = latency;
        config.collector.wakeup_latency_histogram = None;
    }
    Ok(config)
}

/// The default load beside the attack: half as many hogs as CPUs.
pub fn default_hogs(cpus: usize) -> usize {
    (cpus / 2).max(1)
}

/// Producer counts for `cpus` CPUs: the given list, or 1, 4, 8 and one per CPU.
pub fn intensities(options: &EvalOptions, cpus: usize) -> Vec<usize> {
    let mut list = options
        .producers
        .clone()
        .unwrap_or_else(|| vec![1, 4, 8, cpus]);
    list.sort_unstable();
    list.dedup();
    list
}

/// One group of simulations (all seeds of one policy at one configuration).
struct Group {
    policy: PolicyKind,
    config: SimConfig,
    ablation: bool,
}

struct Outcome {
    result: SimResult,
    stats: Option<AegisStats>,
    seconds: f64,
}

/// Runs the evaluation; `progress(done, total)` after every simulation.
pub fn evaluate(options: &EvalOptions, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<EvalReport> {
    let started = Instant::now();
    let groups = groups(options)?;
    let seeds = options.seeds.max(1);
    let jobs: Vec<(usize, u64)> = (0..groups.len())
        .flat_map(|g| (1..=seeds).map(move |seed| (g, seed)))
        .collect();
    let outcomes = run_jobs(options, &groups, &jobs, progress);
    let summaries = summarize_groups(&groups, &jobs, &outcomes);
    report(options, seeds, summaries, started)
}

/// Every policy compared at every configuration, then the ablations.
fn groups(options: &EvalOptions) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    for &cpus in &options.cpus {
        for producers in intensities(options, cpus) {
            let config = eval_config(options, cpus, producers, default_hogs(cpus))?;
            for policy in PolicyKind::COMPARED {
                groups.push(Group {
                    policy,
                    config: config.clone(),
                    ablation: false,
                });
            }
        }
    }
    for &(cpus, producers) in &options.ablation_configs {
        let config = eval_config(options, cpus, producers, cpus)?;
        for policy in PolicyKind::ABLATIONS {
            groups.push(Group {
                policy,
                config: config.clone(),
                ablation: true,
            });
        }
    }
    Ok(groups)
}

/// Runs the `jobs` (group, seed) on `options.jobs` threads; the outcomes in the jobs' order.
fn run_jobs(
    options: &EvalOptions,
    groups: &[Group],
    jobs: &[(usize, u64)],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Vec<Outcome> {
    let total = jobs.len() as u64;
    let outcomes: Vec<Mutex<Option<Outcome>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(group, seed)) = jobs.get(index) else {
                    break;
                };
                let group = &groups[group];
                let config = SimConfig {
                    seed,
                    ..group.config.clone()
                };
                let t0 = Instant::now();
                let (result, stats) =
                    group
                        .policy
                        .run(&config, &options.network, options.eevdf_model);
                let outcome = Outcome {
                    result,
                    stats,
                    seconds: t0.elapsed().as_secs_f64(),
                };
                *outcomes[index].lock().expect("no panics while holding it") = Some(outcome);
                let finished = done.fetch_add(1, Ordering::Relaxed) as u64 + 1;
                progress(finished, total);
            });
        }
    });
    outcomes
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("no panics while holding it")
                .expect("every job ran")
        })
        .collect()
}

/// The rows of the report and what simulating them took.
struct Summaries {
    rows: Vec<EvalRow>,
    ablations: Vec<EvalRow>,
    sched_events: u64,
    /// Seconds of simulation, summed over the threads.
    sim_seconds: f64,
}

/// One row per group, from the outcomes of its seeds.
fn summarize_groups(groups: &[Group], jobs: &[(usize, u64)], outcomes: &[Outcome]) -> Summaries {
    let mut summaries = Summaries {
        rows: Vec::new(),
        ablations: Vec::new(),
        sched_events: 0,
        sim_seconds: 0.0,
    };
    for (g, group) in groups.iter().enumerate() {
        let runs: Vec<&Outcome> = jobs
            .iter()
            .zip(outcomes)
            .filter(|((job_group, _), _)| *job_group == g)
            .map(|(_, outcome)| outcome)
            .collect();
        summaries.sim_seconds += runs.iter().map(|o| o.seconds).sum::<f64>();
        let row = summarize(group.policy, &group.config, &runs);
        summaries.sched_events += row.sched_events;
        if group.ablation {
            summaries.ablations.push(row);
        } else {
            summaries.rows.push(row);
        }
    }
    summaries
}

/// The report around the rows: what was simulated, and how.
fn report(
    options: &EvalOptions,
    seeds: u64,
    summaries: Summaries,
    started: Instant,
) -> Result<EvalReport> {
    let ring_capacity_events = options
        .calibration
        .ring_capacity_events(FLOOD, options.ring_bytes)
        .map_err(anyhow::Error::msg)?;
    let collector = eval_config(options, 1, 1, 0)?.collector;
    let wakeup_latency_ns = match &collector.wakeup_latency_histogram {
        Some(measured) => measured.mean_ns().round() as u64,
        None => collector.wakeup_latency_ns,
    };
    let Summaries {
        rows,
        ablations,
        sched_events,
        sim_seconds,
    } = summaries;
    let summary = summarize_policies(&rows);
    Ok(EvalReport {
        wakeup_latency_ns,
        wakeup_latency_measured: collector.wakeup_latency_histogram.is_some(),
        rows,
        ablations,
        flood: FLOOD.into(),
        ring_size_bytes: options.ring_bytes,
        ring_capacity_events,
        duration_s: options.duration_ns as f64 / 1e9,
        seeds,
        rustland_round_trip_ns: DEFAULT_ROUND_TRIP_NS,
        rustland_decision_cost_ns: DEFAULT_DECISION_COST_NS,
        aegis_delta: AEGIS_DELTA,
        eevdf_model: options.eevdf_model,
        bound: "the most CPU any scheduler can give the ordinary tasks (hogs, sleepers) at a \
                run's operating point (events the producers issued, events the collector \
                recorded): min(what they can use, all CPU - producers' least CPU for the events \
                issued - the collector's least CPU for the events recorded, one wakeup); \
                slowdown_vs_bound = bound / policy ordinary CPU, summed over seeds, >= 1 for \
                every run by construction (scheduler::sim::bound)"
            .into(),
        fair_share: "not a bound: the lossless max-min fair split, the collector given \
                     events x per-event cost + ceil(events / ring capacity) x per-wakeup cost \
                     on at most one CPU, producers capped at what it can record, everyone else \
                     max-min fair; fair_share_slowdown = ordinary tasks' CPU without the \
                     attack / at the fair share; slowdown_vs_fair_share and \
                     producer_progress_vs_fair_share fall on either side of 1 \
                     (scheduler::sim::fair_share)"
            .into(),
        fairness: "Jain's index over hogs' and sleepers' CPU times, each divided by its fair \
                   share"
            .into(),
        summary,
        calibration_file: options.calibration_file.clone(),
        calibration: options.calibration.clone(),
        model_file: options.model_file.clone(),
        git_rev: GIT_REV.to_string(),
        date: now_rfc3339(),
        elapsed_s: started.elapsed().as_secs_f64(),
        sched_events,
        sched_events_per_core_s: if sim_seconds > 0.0 {
            sched_events as f64 / sim_seconds
        } else {
            0.0
        },
    })
}

/// Averages the seeds of one policy at one configuration and sets the bound and the fair-share
/// reference beside it.
fn summarize(policy: PolicyKind, config: &SimConfig, runs: &[&Outcome]) -> EvalRow {
    let fair: FairShare = fair_share(config);
    let n = runs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&SimResult) -> f64| runs.iter().map(|r| f(&r.result)).sum::<f64>() / n;
    let ordinary_cpu_ns = mean(&ordinary_ns);
    // Each seed against the bound at its own operating point.
    let bounds: Vec<Bound> = runs
        .iter()
        .map(|r| bound(config, OperatingPoint::of(&r.result)))
        .collect();
    let bound_ordinary_cpu_ns = bounds.iter().map(|b| b.ordinary_cpu_ns).sum::<f64>() / n;
    let losses: Vec<f64> = runs.iter().map(|r| r.result.loss_pct).collect();
    let fairness = mean(&|r: &SimResult| {
        let shares: Vec<f64> = r
            .tasks
            .iter()
            .filter_map(|t| match t.kind.as_str() {
                "hog" => Some(t.cpu_ns as f64 / fair.hog_cpu_ns.max(1.0)),
                "sleeper" => Some(t.cpu_ns as f64 / fair.sleeper_cpu_ns.max(1.0)),
                _ => None,
            })
            .collect();
        jain_index(&shares).unwrap_or(0.0)
    });
    let stats: Vec<&AegisStats> = runs.iter().filter_map(|r| r.stats.as_ref()).collect();
    let is_aegis = !stats.is_empty();
    let has_network = is_aegis && policy != PolicyKind::AegisNoNet;
    let sum_u64 = |f: &dyn Fn(&SimResult) -> u64| runs.iter().map(|r| f(&r.result)).sum::<u64>();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
    let produced = mean(&|r| r.produced as f64);
    EvalRow {
        policy: policy.name().into(),
        cpus: config.cpus,
        producers: config.producers,
        hogs: config.hogs,
        sleepers: config.sleepers,
        seeds: runs.len() as u64,
        loss_pct: losses.iter().sum::<f64>() / n,
        loss_pct_min: losses.iter().copied().fold(f64::INFINITY, f64::min),
        loss_pct_max: losses.iter().copied().fold(0.0, f64::max),
        produced: produced.round() as u64,
        dropped: (mean(&|r| r.dropped as f64)).round() as u64,
        collector_cpu_s: mean(&|r| r.collector().cpu_ns as f64) / 1e9,
        collector_wakeups: mean(&|r| r.collector().wakeups as f64).round() as u64,
        producer_cpu_s: mean(&|r| r.cpu_ns_of("producer") as f64) / 1e9,
        ordinary_cpu_s: ordinary_cpu_ns / 1e9,
        scheduler_cpu_s: mean(&|r| r.cpu_ns_of("scheduler") as f64) / 1e9,
        idle_in_round_trip_cpu_s: mean(&|r| r.idle_with_pending_ns as f64) / 1e9,
        ordinary_slowdown: ratio(fair.ordinary_alone_cpu_ns, ordinary_cpu_ns),
        slowdown_vs_bound: ratio(bound_ordinary_cpu_ns, ordinary_cpu_ns),
        bound_ordinary_cpu_s: bound_ordinary_cpu_ns / 1e9,
        bound_slowdown: ratio(fair.ordinary_alone_cpu_ns, bound_ordinary_cpu_ns),
        slowdown_vs_fair_share: ratio(fair.ordinary_cpu_ns, ordinary_cpu_ns),
        producer_progress_vs_fair_share: ratio(produced, fair.events as f64),
        fairness_jain: fairness,
        fair_share_collector_cpu_s: fair.collector_cpu_ns / 1e9,
        fair_share_slowdown: fair.slowdown,
        fair_share_ordinary_cpu_s: fair.ordinary_cpu_ns / 1e9,
        fair_share_producer_cpu_s: fair.producer_cpu_ns / 1e9,
        fair_share_events: fair.events,
        fair_share_producers_capped: fair.producers_capped,
        max_wait_ms_by_level: is_aegis.then(|| max_waits_ms(runs, &stats)),
        bound_violations: is_aegis.then(|| stats.iter().map(|s| s.bound_violations).sum()),
        nr_inferences: has_network.then(|| stats.iter().map(|s| s.nr_inferences).sum()),
        nr_skipped: has_network.then(|| stats.iter().map(|s| s.nr_skipped).sum()),
        sched_events: sum_u64(&|r| r.sched_events),
    }
}

/// The ordinary tasks' (hogs' and sleepers') CPU in a run.
fn ordinary_ns(r: &SimResult) -> f64 {
    (r.cpu_ns_of("hog") + r.cpu_ns_of("sleeper")) as f64
}

/// The longest wait per level over the runs, ms: Aegis's own record (waits that ended in a
/// pick, by the level the task had then), and the engine's per task, which also counts a wait
/// still going at the end (a producer starved without the waiting bound is never picked):
/// collector = provenance, hogs and sleepers = ordinary, producers = producer.
fn max_waits_ms(runs: &[&Outcome], stats: &[&AegisStats]) -> [f64; NR_LEVELS] {
    let mut max_wait_ms = [0.0; NR_LEVELS];
    for s in stats {
        for (slot, wait) in max_wait_ms.iter_mut().zip(s.max_wait_ns) {
            *slot = f64::max(*slot, wait as f64 / 1e6);
        }
    }
    for task in runs.iter().flat_map(|r| &r.result.tasks) {
        let level = match task.kind.as_str() {
            "collector" => Level::Provenance,
            "hog" | "sleeper" => Level::Ordinary,
            "producer" => Level::Producer,
            _ => continue,
        };
        let slot = &mut max_wait_ms[level.index()];
        *slot = f64::max(*slot, task.max_wait_ns as f64 / 1e6);
    }
    max_wait_ms
}

/// Each policy of `rows` over its configurations, in the rows' order of policies.
pub fn summarize_policies(rows: &[EvalRow]) -> Vec<PolicySummary> {
    let mut policies: Vec<&str> = Vec::new();
    for row in rows {
        if !policies.contains(&row.policy.as_str()) {
            policies.push(&row.policy);
        }
    }
    policies
        .into_iter()
        .map(|policy| {
            let of: Vec<&EvalRow> = rows.iter().filter(|r| r.policy == policy).collect();
            let n = of.len().max(1) as f64;
            let sides = |f: &dyn Fn(&EvalRow) -> f64| {
                SidesOfOne::of(&of.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            PolicySummary {
                policy: policy.into(),
                configurations: of.len(),
                loss_pct_mean: of.iter().map(|r| r.loss_pct).sum::<f64>() / n,
                slowdown_vs_bound: sides(&|r| r.slowdown_vs_bound),
                slowdown_vs_fair_share: sides(&|r| r.slowdown_vs_fair_share),
                producer_progress_vs_fair_share: sides(&|r| r.producer_progress_vs_fair_share),
                fairness_jain_mean: of.iter().map(|r| r.fairness_jain).sum::<f64>() / n,
            }
        })
        .collect()
}

/// The fixed-point Q-network in a model file, read the way scx_aegis reads `--model`: the
/// file's `fixed_network` (what `aegis-bench train` writes), or the file itself as a `QNet`.
pub fn load_network(path: &Path) -> Result<QNet> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the model {} (`aegis-bench train` makes one; --model FILE)",
            path.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let network = value.get("fixed_network").cloned().unwrap_or(value);
    serde_json::from_value(network).with_context(|| {
        format!(
            "{} holds no fixed-point Q-network (a QNet, or an object with `fixed_network`)",
            path.display()
        )
    })
}

/// `aegis-bench sim evaluate`.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    let json = args
        .common
        .json
        .as_ref()
        .context("--evaluate needs --json FILE for its report")?;
    let options = EvalOptions::from_args(args)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "evaluate [{elapsed_precise}] {bar:30} {pos}/{len} simulations, ETA {eta}",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let report = evaluate(&options, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    let mut bytes = serde_json::to_vec_pretty(&report).context("serializing the report")?;
    bytes.push(b'\n');
    write_atomically(json, &bytes)?;
    let (png, svg) = crate::figures::sim_eval::figure_paths(json);
    crate::figures::sim_eval::draw_evaluation(&report, &png, &svg)?;
    print_tables(&report);
    crate::out!(
        "{} simulations of {} s ({} seeds per row, ring {} events, wakeup latency {}{:.0} us); \
         {:.1} M scheduling events, {:.2} M/s per core; {:.1} s; wrote {}, {} and {}",
        (report.rows.len() + report.ablations.len()) as u64 * report.seeds,
        report.duration_s,
        report.seeds,
        report.ring_capacity_events,
        if report.wakeup_latency_measured {
            "measured, mean "
        } else {
            ""
        },
        report.wakeup_latency_ns as f64 / 1e3,
        report.sched_events as f64 / 1e6,
        report.sched_events_per_core_s / 1e6,
        report.elapsed_s,
        json.display(),
        png.display(),
        svg.display()
    );
    Ok(())
}

/// The comparison table and the ablation table, as printed.
pub fn tables(report: &EvalReport) -> (Table, Table) {
    let mut main = Table::new();
    main.set_header([
        "CPUs",
        "producers",
        "policy",
        "loss %",
        "slowdown vs bound",
        "slowdown vs fair share",
        "producer events vs fair share",
        "Jain (ordinary)",
        "collector CPU s",
        "fair-share collector CPU s",
        "fair-share slowdown",
    ]);
    for r in &report.rows {
        main.add_row([
            r.cpus.to_string(),
            r.producers.to_string(),
            r.policy.clone(),
            format!("{:.2}", r.loss_pct),
            format!("{:.3}", r.slowdown_vs_bound),
            format!("{:.3}", r.slowdown_vs_fair_share),
            format!("{:.3}", r.producer_progress_vs_fair_share),
            format!("{:.3}", r.fairness_jain),
            format!("{:.3}", r.collector_cpu_s),
            format!("{:.3}", r.fair_share_collector_cpu_s),
            format!("{:.3}", r.fair_share_slowdown),
        ]);
    }
    let mut ablations = Table::new();
    ablations.set_header([
        "CPUs",
        "producers",
        "hogs",
        "variant",
        "loss %",
        "slowdown vs bound",
        "slowdown vs fair share",
        "max wait ms (prov/ord/prod)",
        "bound violations",
        "inferences run/skipped",
    ]);
    for r in &report.ablations {
        let waits = r.max_wait_ms_by_level.map_or("-".into(), |w| {
            format!("{:.1} / {:.1} / {:.1}", w[0], w[1], w[2])
        });
        ablations.add_row([
            r.cpus.to_string(),
            r.producers.to_string(),
            r.hogs.to_string(),
            r.policy.clone(),
            format!("{:.2}", r.loss_pct),
            format!("{:.3}", r.slowdown_vs_bound),
            format!("{:.3}", r.slowdown_vs_fair_share),
            waits,
            r.bound_violations.map_or("-".into(), |v| v.to_string()),
            match (r.nr_inferences, r.nr_skipped) {
                (Some(run), Some(skipped)) => format!("{run} / {skipped}"),
                _ => "-".into(),
            },
        ]);
    }
    (main, ablations)
}

/// Each policy over the configurations: ratios by side of 1, each side its geometric mean.
pub fn summary_table(report: &EvalReport) -> Table {
    let mut table = Table::new();
    table.set_header([
        "policy",
        "configurations",
        "mean loss %",
        "slowdown vs bound",
        "slowdown vs fair share",
        "producer events vs fair share",
        "mean Jain",
    ]);
    for s in &report.summary {
        table.add_row([
            s.policy.clone(),
            s.configurations.to_string(),
            format!("{:.3}", s.loss_pct_mean),
            s.slowdown_vs_bound.display(),
            s.slowdown_vs_fair_share.display(),
            s.producer_progress_vs_fair_share.display(),
            format!("{:.3}", s.fairness_jain_mean),
        ]);
    }
    table
}

fn print_tables(report: &EvalReport) {
    let (main, ablations) = tables(report);
    crate::out!("{main}");
    crate::out!(
        "Over the configurations (geometric means of the rows below 1 and of those at or above \
         1, never one mean across 1):"
    );
    crate::out!("{}", summary_table(report));
    crate::out!("Ablations (full Aegis = DQN + waiting bound + delta gate {AEGIS_DELTA}):");
    crate::out!("{ablations}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn calibration() -> Calibration {
        Calibration {
            machine: "test".into(),
            kernel: "test".into(),
            cpus: 2,
            date: "2026-01-01T00:00:00Z".into(),
            git_rev: "test".into(),
            syscall_cost_ns: BTreeMap::from([("openat".into(), 5_000.0)]),
            producer_notify_cost_ns: 0.0,
            collector_stall_histogram: None,
            collector_stalls_per_event: 0.0,
            ring_bytes_per_event: BTreeMap::from([("openat".into(), 232.0)]),
            collector_per_event_cost_ns: 1_700.0,
            collector_wakeup_cost_ns: 7_000.0,
            collector_switch_cost_ns: 0.0,
            collector_fixed_cpu_s: 0.0,
            wakeup_latency_ns: 500_000.0,
            pipe_wakeup_latency_ns: 9_000.0,
            kernel_tick_ns: None,
            wakeup_latency_rounds: 0,
            wakeup_latency_fit: None,
            wakeup_latency_histogram: None,
            runs: vec![],
            notes: vec![],
        }
    }

    fn shipped_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scheduler/models/aegis.json")
    }

    #[test]
    fn the_linux_model_changes_eevdf_and_the_tick_only() {
        let options = |eevdf_model| EvalOptions {
            calibration: Calibration {
                kernel_tick_ns: Some(4_000_000),
                ..calibration()
            },
            calibration_file: "calibration.json".into(),
            network: load_network(&shipped_model()).expect("the shipped model"),
            model_file: shipped_model(),
            cpus: vec![2],
            producers: Some(vec![2]),
            seeds: 1,
            duration_ns: 50_000_000,
            ring_bytes: 64 << 10,
            ablation_configs: vec![],
            jobs: 1,
            wakeup_latency_ns: None,
            eevdf_model,
        };
        let linux = evaluate(&options(EevdfModel::Linux), &|_, _| {}).unwrap();
        let simple = evaluate(&options(EevdfModel::Simple), &|_, _| {}).unwrap();
        assert_eq!(linux.eevdf_model, EevdfModel::Linux);
        assert_eq!(simple.eevdf_model, EevdfModel::Simple);
        let row = |report: &EvalReport, policy: &str| {
            let row = report.rows.iter().find(|r| r.policy == policy).unwrap();
            (row.loss_pct, row.collector_wakeups)
        };
        assert_ne!(row(&linux, "eevdf"), row(&simple, "eevdf"));
        // The kernel's 4 ms tick reaches the other policies too (CFS ticks its slices).
        assert_ne!(row(&linux, "cfs"), row(&simple, "cfs"));
    }

    #[test]
    fn quick_evaluation_has_the_json_shape() {
        let options = EvalOptions {
            calibration: calibration(),
            calibration_file: "calibration.json".into(),
            network: load_network(&shipped_model()).expect("the shipped model"),
            model_file: shipped_model(),
            cpus: vec![2, 8],
            producers: Some(vec![1, 4]),
            seeds: 1,
            duration_ns: 50_000_000,
            ring_bytes: 64 << 10,
            ablation_configs: vec![(2, 4)],
            jobs: 2,
            wakeup_latency_ns: None,
            eevdf_model: EevdfModel::Simple,
        };
        let calls = AtomicUsize::new(0);
        let report = evaluate(&options, &|done, total| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert!(done <= total);
        })
        .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 2 * 2 * 5 + 3);
        let value = serde_json::to_value(&report).unwrap();
        let rows = value["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2 * 2 * 5);
        for row in rows {
            for key in [
                "policy",
                "cpus",
                "producers",
                "loss_pct",
                "slowdown_vs_bound",
                "bound_slowdown",
                "slowdown_vs_fair_share",
                "producer_progress_vs_fair_share",
                "fairness_jain",
                "fair_share_collector_cpu_s",
                "fair_share_slowdown",
            ] {
                assert!(!row[key].is_null(), "{key} missing in {row}");
            }
            let loss = row["loss_pct"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&loss));
            let jain = row["fairness_jain"].as_f64().unwrap();
            assert!(jain > 0.0 && jain <= 1.0 + 1e-9, "{row}");
            assert!(row["fair_share_slowdown"].as_f64().unwrap() >= 1.0 - 1e-9);
            assert!(row["bound_slowdown"].as_f64().unwrap() >= 1.0 - 1e-9);
            assert!(row["slowdown_vs_fair_share"].as_f64().unwrap() > 0.0);
        }
        // No evaluated policy, ablations included, scores below the bound.
        for row in report.rows.iter().chain(&report.ablations) {
            assert!(row.slowdown_vs_bound >= 1.0, "{row:?}");
            assert!(row.bound_ordinary_cpu_s >= row.ordinary_cpu_s, "{row:?}");
        }
        // One summary per policy; ratios by side of 1, the bound's all at or above.
        assert_eq!(report.summary.len(), 5);
        for s in &report.summary {
            assert_eq!(s.configurations, 4);
            assert_eq!(s.slowdown_vs_bound.below, 0, "{s:?}");
            let sides = s.slowdown_vs_fair_share;
            assert_eq!(sides.below + sides.at_or_above, 4);
            assert!(sides.below_geomean.is_none_or(|m| m < 1.0), "{s:?}");
            assert!(sides.at_or_above_geomean.is_none_or(|m| m >= 1.0), "{s:?}");
        }
        let policies: Vec<&str> = rows.iter().map(|r| r["policy"].as_str().unwrap()).collect();
        for name in ["eevdf", "cfs", "rustland", "aegis-no-net", "aegis-dqn"] {
            assert_eq!(policies.iter().filter(|p| **p == name).count(), 4, "{name}");
        }
        // Only rustland pays for a user-space scheduler; only the DQN counts inferences.
        for row in rows {
            let user_space = row["scheduler_cpu_s"].as_f64().unwrap() > 0.0;
            assert_eq!(user_space, row["policy"] == "rustland", "{row}");
            assert_eq!(
                row["nr_inferences"].is_null(),
                row["policy"] != "aegis-dqn",
                "{row}"
            );
        }
        let ablations = value["ablations"].as_array().unwrap();
        assert_eq!(ablations.len(), 3);
        let gate_off = &ablations[2];
        assert_eq!(gate_off["policy"], "aegis-dqn-no-delta-gating");
        assert_eq!(gate_off["nr_skipped"], 0);
        assert!(ablations[0]["max_wait_ms_by_level"].is_array());
        // The tables render.
        let (main, ablation) = tables(&report);
        assert!(main.to_string().contains("rustland"));
        assert!(summary_table(&report).to_string().contains("aegis-dqn"));
        assert!(ablation.to_string().contains("no-waiting-bound"));
    }

    #[test]
    fn intensities_scale_with_cpus_and_dedup() {
        let options = EvalOptions {
            calibration: calibration(),
            calibration_file: PathBuf::new(),
            network: QNet::zeroed(),
            model_file: PathBuf::new(),
            cpus: vec![],
            producers: None,
            seeds: 1,
            duration_ns: 1,
            ring_bytes: 65536,
            ablation_configs: vec![],
            jobs: 1,
            wakeup_latency_ns: Some(20_000),
            eevdf_model: EevdfModel::Simple,
        };
        assert_eq!(intensities(&options, 2), vec![1, 2, 4, 8]);
        assert_eq!(intensities(&options, 8), vec![1, 4, 8]);
        assert_eq!(intensities(&options, 128), vec![1, 4, 8, 128]);
        let config = eval_config(&options, 64, 8, default_hogs(64)).unwrap();
        assert_eq!((config.hogs, config.sleepers), (32, 16));
        assert_eq!(config.ring_capacity_events, 282);
        assert_eq!(config.collector.wakeup_latency_ns, 20_000);
    }
}
