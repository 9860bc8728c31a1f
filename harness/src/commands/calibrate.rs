//! `aegis-bench calibrate`: measures what the simulator (`scheduler::sim`) needs to model this
//! machine:
//! - the producer's CPU time per traced event, from short real attacks with one flood thread
//!   and a 64 MiB ring (nothing lost): `syscall_cost_ns = 1e9 / (traced events/s of one
//!   producer)`;
//! - the built-in collector's CPU time per event and per wakeup, by a least-squares fit of
//!   `collector_cpu_s = fixed + per_event * received + per_wakeup * wakeups` over those runs
//!   plus a paced run (`--rate`) in which nearly every event costs a wakeup; the collector's
//!   CPU is its consuming alone (from attach through the final drain, not the loading of its
//!   BPF object), and each run is repeated (`--repetitions`, interleaved) for the fits;
//! - the producer's CPU per collector wakeup (the notification: irq_work, then waking a task on
//!   another CPU), fitted together with its per-syscall cost over the runs' producer CPU, a
//!   lossy small-ring run with few wakeups per event among them;
//! - the wakeup latency as a distribution: the built-in collector records how long the first
//!   record of each batch waited in the ring (runs with a 64 KiB ring); the simulator draws each
//!   wakeup's latency from it. The single latency fitted to reproduce the small-ring runs' loss,
//!   and the pipe round-trip median, are kept for comparison.
//!
//! `sim validate` (commands/sim/validate.rs) checks the simulator with these parameters
//! against real runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use attacks::FloodKind;
use comfy_table::Table;
use scheduler::sim::calibration::{
    fit_collector_costs, fit_producer_costs, fit_switch_cost, fit_wakeup_latency,
};
use scheduler::sim::{Calibration, CalibrationRun, LatencyHistogram, WakeupFit};

use crate::cli::CalibrateArgs;
use crate::collector::CollectorKind;
use crate::results::trial::{now_rfc3339, Trial};
use crate::run::{run_attack, AttackOptions, Plan};
use crate::size::parse_ring_size;
use crate::{measure::kernel, GIT_REV};

/// Ring bytes of one built-in collector record (8-byte ring header included): records with a
/// path carry a 352-byte payload, the others are 104 bytes (`bpf/intf.h`).
pub fn record_bytes(syscall: &str) -> f64 {
    match syscall {
        "open" | "openat" | "openat2" | "creat" | "execve" | "execveat" | "unlink" | "unlinkat"
        | "rename" | "renameat" | "renameat2" | "stat" | "newfstatat" | "statx" | "connect" => {
            360.0
        }
        _ => 104.0,
    }
}

/// The 64 MiB ring the calibration runs use: large enough that one producer loses nothing.
const CALIBRATION_RING: &str = "64MiB";

/// The ring of the lossy calibration run: fills often, so the collector wakes for large batches.
const FEW_WAKEUPS_RING: &str = "16KiB";

/// The ring of the run the wakeup latency is fitted to (the one `sim validate` uses).
const FIT_RING: &str = "64KiB";

/// Runs `aegis-bench attack` with `options` in this process and returns its trials.
pub(crate) fn real_attack(options: &AttackOptions) -> Result<Vec<Trial>> {
    run_attack(&Plan::new(options)?)
}

fn calibration_run(trial: &Trial) -> CalibrationRun {
    let ring_bytes_written = trial
        .attack
        .truth_by_syscall
        .iter()
        .filter(|(name, _)| trial.accounting.traced_syscalls.contains(name))
        .map(|(name, count)| *count as f64 * record_bytes(name))
        .sum();
    CalibrationRun {
        flood: trial.id.flood.clone(),
        threads: trial.id.threads,
        rate: trial.attack.rate,
        count: trial.attack.count,
        generated: trial.accounting.generated,
        received: trial.accounting.received,
        dropped: trial.accounting.dropped,
        duration_s: trial.attack.duration_s,
        // The consuming alone: loading the BPF object costs the collector a fixed ~0.1-0.2 s
        // that the fit would otherwise have to separate from the per-event cost.
        collector_cpu_s: trial
            .cost
            .collector_consuming_cpu_s
            .unwrap_or(trial.cost.collector_cpu_s),
        collector_wakeups: trial.cost.collector_wakeups,
        collector_sleeps: trial.cost.collector_sleeps,
        collector_preemptions: trial.cost.collector_preemptions,
        producer_cpu_s: trial.cost.attack_cpu_s,
        ring_bytes_written,
    }
}

/// What to measure, from the command line.
#[derive(Clone, Debug)]
pub struct CalibrateOptions {
    /// Where the calibration goes.
    pub out: PathBuf,
    /// Flood kinds to measure the costs of; the first one's small-ring runs fit the latency.
    pub floods: Vec<FloodKind>,
    /// Iterations of the larger unpaced run (the smaller one does a quarter).
    pub count: u64,
    /// Times each cost-measuring run is repeated.
    pub repetitions: u32,
    /// Pipe wakeup rounds.
    pub rounds: u32,
    /// Seconds of each run the wakeup latency is fitted to.
    pub fit_duration: f64,
}

impl CalibrateOptions {
    pub fn from_args(args: &CalibrateArgs) -> Result<Self> {
        let (count, rounds) = if args.quick {
            (args.count.min(50_000), 500)
        } else {
            (args.count, 2_000)
        };
        if count < 100 {
            bail!("--count must be at least 100");
        }
        let repetitions = args.repetitions.unwrap_or(if args.quick { 1 } else { 3 });
        if repetitions == 0 {
            bail!("--repetitions must be at least 1");
        }
        Ok(Self {
            out: args.out.clone(),
            floods: args.flood.clone(),
            count,
            repetitions,
            rounds,
            fit_duration: if args.quick { 0.5 } else { 1.0 },
        })
    }
}

/// The calibration runs of one flood kind.
type FloodRuns = (String, Vec<CalibrationRun>);

/// The costs fitted to the runs.
struct Costs {
    /// The collector's fixed CPU (s), per event and per wakeup (ns).
    collector: (f64, f64, f64),
    collector_switch_ns: f64,
    syscall_ns: BTreeMap<String, f64>,
    producer_notify_ns: f64,
}

/// `aegis-bench calibrate`: measures, fits, writes the calibration and prints its table.
pub fn calibrate(args: &CalibrateArgs) -> Result<Calibration> {
    let options = CalibrateOptions::from_args(args)?;
    let mut notes = Vec::new();
    let runs_by_flood = run_floods(&options, &mut notes)?;
    let fit_trials = run_fit_trials(&options)?;
    let mut runs: Vec<CalibrationRun> = runs_by_flood
        .iter()
        .flat_map(|(_, r)| r.iter().cloned())
        .collect();
    runs.extend(fit_trials.iter().map(calibration_run));
    let costs = fit_costs(&runs, &runs_by_flood, &mut notes)?;
    crate::say!("calibrate: wakeup latency, {} pipe rounds", options.rounds);
    let pipe_wakeup_latency_ns = wakeup_latency_ns(options.rounds)?;
    notes.extend(method_notes());
    let (fixed_s, per_event_ns, per_wakeup_ns) = costs.collector;
    let mut calibration = Calibration {
        machine: kernel::hostname(),
        kernel: kernel::release(),
        cpus: online_cpus(),
        date: now_rfc3339(),
        git_rev: GIT_REV.to_string(),
        syscall_cost_ns: costs.syscall_ns,
        ring_bytes_per_event: ring_bytes_per_event(&runs_by_flood),
        collector_per_event_cost_ns: per_event_ns,
        collector_wakeup_cost_ns: per_wakeup_ns,
        collector_switch_cost_ns: costs.collector_switch_ns,
        collector_fixed_cpu_s: fixed_s,
        wakeup_latency_ns: pipe_wakeup_latency_ns,
        pipe_wakeup_latency_ns,
        wakeup_latency_rounds: options.rounds,
        kernel_tick_ns: kernel::hz()
            .filter(|hz| *hz > 0)
            .map(|hz| 1_000_000_000 / hz),
        wakeup_latency_fit: None,
        wakeup_latency_histogram: None,
        producer_notify_cost_ns: costs.producer_notify_ns,
        collector_stall_histogram: None,
        collector_stalls_per_event: 0.0,
        runs,
        notes,
    };
    let latency_ns = fit_latency(&mut calibration, &options, &fit_trials)?;
    calibration
        .save(&options.out)
        .map_err(anyhow::Error::msg)
        .context("writing the calibration")?;
    crate::out!("{}", calibration_table(&calibration, latency_ns));
    crate::out!("wrote {}", options.out.display());
    Ok(calibration)
}

/// Per flood kind, the cost-measuring runs, their repetitions interleaved.
fn run_floods(options: &CalibrateOptions, notes: &mut Vec<String>) -> Result<Vec<FloodRuns>> {
    let (count, repetitions) = (options.count, options.repetitions);
    let mut runs_by_flood = Vec::new();
    for flood in &options.floods {
        let kind = *flood;
        let flood = flood.name().to_string();
        // Two unpaced sizes (separates the collector's fixed cost from its per-event cost)
        // and one paced run (a wakeup per few events: separates the per-wakeup cost).
        let mut flood_runs = Vec::new();
        // And one lossy run of several producers with a small ring (few collector wakeups per
        // event: separates the producer's per-syscall cost from what notifying costs it).
        let plan = [
            (1, Some(count / 4), None, 30.0, CALIBRATION_RING),
            (1, Some(count), None, 60.0, CALIBRATION_RING),
            (1, Some(2_000u64), Some(2_000u64), 5.0, CALIBRATION_RING),
            (4, None, None, 1.0, FEW_WAKEUPS_RING),
        ];
        // Repetitions interleaved, so that a slow spell of the machine does not fall on
        // one kind of run only.
        for (threads, count, rate, duration, ring) in
            (0..repetitions).flat_map(|_| plan.iter().copied())
        {
            let attack = AttackOptions {
                flood: kind,
                threads: vec![threads],
                duration_s: duration,
                count,
                rate,
                ring_sizes: vec![parse_ring_size(ring)?],
                collectors: vec![CollectorKind::Builtin],
                ..AttackOptions::default()
            };
            crate::say!(
                "calibrate: aegis-bench attack --flood {flood} --threads {threads} --duration \
                 {duration} --ring-size {ring} --collector builtin{}{}",
                count.map(|n| format!(" --count {n}")).unwrap_or_default(),
                rate.map(|n| format!(" --rate {n}")).unwrap_or_default()
            );
            let trial = real_attack(&attack)?
                .into_iter()
                .next()
                .context("the calibration attack ran no trial")?;
            if trial.accounting.dropped > 0 && ring == CALIBRATION_RING {
                notes.push(format!(
                    "{flood} run (count {count:?}, rate {rate:?}) lost {} of {} events even with a \
                     {CALIBRATION_RING} ring",
                    trial.accounting.dropped, trial.accounting.generated
                ));
            }
            flood_runs.push(calibration_run(&trial));
        }
        runs_by_flood.push((flood, flood_runs));
    }
    Ok(runs_by_flood)
}

/// Ring bytes per traced event of each flood kind, over all its runs.
fn ring_bytes_per_event(runs_by_flood: &[FloodRuns]) -> BTreeMap<String, f64> {
    runs_by_flood
        .iter()
        .map(|(flood, flood_runs)| {
            let (bytes, all_events) = flood_runs.iter().fold((0f64, 0u64), |(b, e), r| {
                (b + r.ring_bytes_written, e + r.generated)
            });
            (flood.clone(), bytes / all_events.max(1) as f64)
        })
        .collect()
}

/// One small-ring run of the first flood kind: the collector's cost at the ring size the
/// validation uses (cache-hot, many wakeups), and the loss the wakeup latency is fitted to.
fn run_fit_trials(options: &CalibrateOptions) -> Result<Vec<Trial>> {
    let fit_flood = options.floods[0].name().to_string();
    let fit_duration = options.fit_duration;
    let fit_repetitions = options.repetitions;
    let attack = AttackOptions {
        flood: options.floods[0],
        threads: vec![1],
        duration_s: fit_duration,
        ring_sizes: vec![parse_ring_size(FIT_RING)?],
        collectors: vec![CollectorKind::Builtin],
        repetitions: fit_repetitions,
        ..AttackOptions::default()
    };
    crate::say!(
        "calibrate: aegis-bench attack --flood {fit_flood} --threads 1 --duration {fit_duration} \
         --ring-size {FIT_RING} --collector builtin --repetitions {fit_repetitions}"
    );
    let fit_trials = real_attack(&attack)?;
    if fit_trials.is_empty() {
        bail!("the calibration attack ran no trial");
    }
    Ok(fit_trials)
}

/// The collector's costs, the switch cost and each flood's producer costs, fitted to `runs`
/// (all of them) and `runs_by_flood` (the cost-measuring ones).
fn fit_costs(
    runs: &[CalibrationRun],
    runs_by_flood: &[FloodRuns],
    notes: &mut Vec<String>,
) -> Result<Costs> {
    // The collector's own costs where it had a CPU to itself; what sharing one with
    // producers adds on top is the switch cost, which the producers pay too.
    let cpus = online_cpus();
    let uncontended: Vec<CalibrationRun> = runs
        .iter()
        .filter(|r| !r.is_contended(cpus))
        .cloned()
        .collect();
    let collector_costs = fit_collector_costs(&uncontended);
    let switch_cost_ns = fit_switch_cost(runs, cpus, collector_costs);
    if switch_cost_ns.is_none() {
        notes.push(format!(
            "no run shared the collector's CPU with producers on this {cpus}-CPU machine (or \
             none measured its sleeps): collector_switch_cost_ns is 0"
        ));
    }
    let switch_cost_ns = switch_cost_ns.unwrap_or(0.0);
    let mut syscall_cost_ns = BTreeMap::new();
    let mut notify_cost_ns = None;
    for (flood, flood_runs) in runs_by_flood {
        // Producer cost from the unpaced runs only: its CPU time where measured (on a shared
        // machine wall-clock time also counts the time the producer waited for a CPU).
        let (events, seconds) = flood_runs
            .iter()
            .filter(|r| r.rate.is_none() && r.threads == 1)
            .fold((0u64, 0f64), |(e, s), r| {
                (
                    e + r.generated,
                    s + r.producer_cpu_s.unwrap_or(r.duration_s),
                )
            });
        if events == 0 || seconds <= 0.0 {
            bail!("the {flood} calibration runs generated no traced events");
        }
        match fit_producer_costs(flood_runs, cpus, switch_cost_ns) {
            Some((per_syscall_ns, per_notify_ns)) => {
                syscall_cost_ns.insert(flood.clone(), per_syscall_ns);
                notify_cost_ns.get_or_insert(per_notify_ns);
            }
            None => {
                notes.push(format!(
                    "{flood}: the producer's per-syscall and per-notification costs could not \
                     be separated; syscall_cost_ns is its CPU per event, notifications included"
                ));
                syscall_cost_ns.insert(flood.clone(), seconds * 1e9 / events as f64);
            }
        }
    }
    Ok(Costs {
        collector: collector_costs,
        collector_switch_ns: switch_cost_ns,
        syscall_ns: syscall_cost_ns,
        producer_notify_ns: notify_cost_ns.unwrap_or(0.0),
    })
}

/// How each parameter was measured, for the calibration's `notes`.
fn method_notes() -> Vec<String> {
    vec![
        "syscall_cost_ns: the attack cgroup's CPU time (cpu.stat usage_usec) per traced event \
         with one flood thread and a 64MiB ring; it includes the tracing programs' cost"
            .into(),
        "collector costs: least-squares fit of collector_cpu_s (its consuming, from attach \
         through the drain) = fixed + per_event * received + per_wakeup * sleeps over the runs \
         where it had a CPU of its own (two unpaced sizes, one paced at 2000/s, the 64KiB \
         runs); coefficients that come out negative are dropped and the rest refitted"
            .into(),
        "collector_switch_cost_ns: in the runs with as many producers as CPUs, the collector's \
         CPU beyond those costs per switch (its sleeps and preemptions: each hands its CPU to a \
         producer and takes it back); producers are charged the same per switch before their \
         costs are fitted"
            .into(),
        "pipe_wakeup_latency_ns: median time from a pipe write until the reader thread blocked \
         on it returns from read (threads not pinned)"
            .into(),
        "producer_notify_cost_ns and syscall_cost_ns: least squares of the attack cgroup's CPU \
         time = per_syscall * traced events + per_notify * collector wakeups over the unpaced \
         runs (one of them lossy, with several producers and a small ring, so that the \
         wakeups per event differ)"
            .into(),
        "wakeup_latency_histogram (what the simulator draws each wakeup's latency from): the \
         age of the first record of every batch the built-in collector read in the small-ring \
         runs, log-scale buckets"
            .into(),
        format!(
            "wakeup_latency_ns (used only without a histogram): fitted so that the simulator \
             (EEVDF, 3 seeds) reproduces the mean loss of real 1-thread {FIT_RING}-ring runs; \
             the pipe latency underestimates the ring's, whose notification goes through \
             irq_work"
        ),
    ]
}

/// Fits the single wakeup latency that reproduces the small-ring runs' mean loss, and keeps
/// those runs' measured wakeup latencies and collector stalls; returns the fitted latency.
fn fit_latency(
    calibration: &mut Calibration,
    options: &CalibrateOptions,
    fit_trials: &[Trial],
) -> Result<u64> {
    let fit_flood = options.floods[0].name().to_string();
    let fit_n = fit_trials.len() as f64;
    let fit_loss_pct = fit_trials
        .iter()
        .map(|t| t.accounting.loss_pct)
        .sum::<f64>()
        / fit_n;
    let fit_duration_s = fit_trials.iter().map(|t| t.attack.duration_s).sum::<f64>() / fit_n;
    let fit_trial = &fit_trials[0];
    let seeds = 3;
    crate::say!("calibrate: fitting the ring's wakeup latency to the {FIT_RING} run");
    let (latency_ns, sim_loss_pct) = fit_wakeup_latency(
        calibration,
        &fit_flood,
        online_cpus(),
        1,
        fit_trial.id.ring_size_bytes,
        (fit_duration_s * 1e9) as u64,
        fit_loss_pct,
        seeds,
        50_000_000,
    )
    .map_err(anyhow::Error::msg)?;
    calibration.wakeup_latency_ns = latency_ns as f64;
    calibration.wakeup_latency_fit = Some(WakeupFit {
        flood: fit_flood,
        threads: 1,
        ring_size_bytes: fit_trial.id.ring_size_bytes,
        real_loss_pct: fit_loss_pct,
        real_loss_pct_by_repetition: fit_trials.iter().map(|t| t.accounting.loss_pct).collect(),
        sim_loss_pct,
        seeds,
    });
    let merged = |field: fn(&Trial) -> Option<&LatencyHistogram>| {
        LatencyHistogram::merged(fit_trials.iter().filter_map(field))
    };
    let measured = merged(|t| t.cost.collector_wakeup_age_ns.as_ref());
    calibration.wakeup_latency_histogram = Some(measured).filter(|h| !h.is_empty());
    let stalls = merged(|t| t.cost.collector_stall_ns.as_ref());
    let received: u64 = fit_trials.iter().map(|t| t.accounting.received).sum();
    calibration.collector_stalls_per_event = stalls.count() as f64 / received.max(1) as f64;
    calibration.collector_stall_histogram = Some(stalls).filter(|h| !h.is_empty());
    Ok(latency_ns)
}

/// The parameters as printed; `latency_ns` is the fitted wakeup latency.
fn calibration_table(calibration: &Calibration, latency_ns: u64) -> Table {
    let mut table = Table::new();
    table.set_header(["parameter", "value"]);
    for (flood, ns) in &calibration.syscall_cost_ns {
        table.add_row([format!("syscall_cost_ns[{flood}]"), format!("{ns:.0}")]);
    }
    for (flood, bytes) in &calibration.ring_bytes_per_event {
        table.add_row([
            format!("ring_bytes_per_event[{flood}]"),
            format!("{bytes:.1}"),
        ]);
    }
    table.add_row([
        "collector_per_event_cost_ns".into(),
        format!("{:.0}", calibration.collector_per_event_cost_ns),
    ]);
    table.add_row([
        "collector_wakeup_cost_ns".into(),
        format!("{:.0}", calibration.collector_wakeup_cost_ns),
    ]);
    table.add_row([
        "collector_fixed_cpu_s".into(),
        format!("{:.4}", calibration.collector_fixed_cpu_s),
    ]);
    table.add_row([
        "collector_switch_cost_ns".into(),
        format!("{:.0}", calibration.collector_switch_cost_ns),
    ]);
    table.add_row([
        "producer_notify_cost_ns".into(),
        format!("{:.0}", calibration.producer_notify_cost_ns),
    ]);
    add_histogram_rows(&mut table, calibration);
    table.add_row([
        "pipe_wakeup_latency_ns".into(),
        format!("{:.0}", calibration.pipe_wakeup_latency_ns),
    ]);
    let fit = calibration
        .wakeup_latency_fit
        .as_ref()
        .expect("fitted before printing");
    table.add_row([
        format!(
            "wakeup_latency_ns (fit: real loss {:.2}%, sim {:.2}%)",
            fit.real_loss_pct, fit.sim_loss_pct
        ),
        format!("{latency_ns}"),
    ]);
    table
}

/// The measured collector stalls and wakeup latencies, where there are any.
fn add_histogram_rows(table: &mut Table, calibration: &Calibration) {
    if let Some(stalls) = &calibration.collector_stall_histogram {
        table.add_row([
            "collector stalls over 100 us: per 1000 events, p50 / p99".into(),
            format!(
                "{:.3}, {:.0} / {:.0} us",
                calibration.collector_stalls_per_event * 1e3,
                stalls.quantile_ns(0.5) as f64 / 1e3,
                stalls.quantile_ns(0.99) as f64 / 1e3
            ),
        ]);
    }
    if let Some(ages) = &calibration.wakeup_latency_histogram {
        table.add_row([
            format!(
                "wakeup latency measured ({} batches): p50 / p99 / p99.99",
                ages.count()
            ),
            format!(
                "{:.1} / {:.1} / {:.1} us",
                ages.quantile_ns(0.5) as f64 / 1e3,
                ages.quantile_ns(0.99) as f64 / 1e3,
                ages.quantile_ns(0.9999) as f64 / 1e3
            ),
        ]);
    }
}

/// CPUs this process may run on.
pub(crate) fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Median of `rounds` wakeups: the main thread writes the (monotonic) time into a pipe a
/// reader thread is blocked on; the reader subtracts it from its own time after `read`
/// returns, then acknowledges. Between rounds the main thread sleeps 200 us so the reader is
/// asleep again (a wakeup, not a pipe that already has data).
pub fn wakeup_latency_ns(rounds: u32) -> Result<f64> {
    use std::io::{Read, Write};
    let (to_reader_r, to_reader_w) = nix::unistd::pipe().context("pipe")?;
    let (ack_r, ack_w) = nix::unistd::pipe().context("pipe")?;
    let mut to_reader_w = std::fs::File::from(to_reader_w);
    let mut ack_r = std::fs::File::from(ack_r);
    let base = Instant::now();
    let monotonic_ns = move || base.elapsed().as_nanos() as u64;
    let reader = std::thread::spawn(move || -> std::io::Result<Vec<u64>> {
        let mut input = std::fs::File::from(to_reader_r);
        let mut ack = std::fs::File::from(ack_w);
        let mut samples = Vec::new();
        let mut buf = [0u8; 8];
        loop {
            match input.read_exact(&mut buf) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(err) => return Err(err),
            }
            let now = monotonic_ns();
            samples.push(now.saturating_sub(u64::from_ne_bytes(buf)));
            ack.write_all(&[1])?;
        }
        Ok(samples)
    });
    let mut ack = [0u8; 1];
    for _ in 0..rounds {
        std::thread::sleep(std::time::Duration::from_micros(200));
        to_reader_w.write_all(&monotonic_ns().to_ne_bytes())?;
        ack_r.read_exact(&mut ack)?;
    }
    drop(to_reader_w);
    let mut samples = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the wakeup-latency reader panicked"))??;
    if samples.is_empty() {
        bail!("no wakeup-latency samples");
    }
    samples.sort_unstable();
    Ok(samples[samples.len() / 2] as f64)
}
