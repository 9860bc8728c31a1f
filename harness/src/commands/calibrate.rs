//! `aegis-bench calibrate` and `aegis-bench sim --validate`.
//!
//! *Calibrate* measures what the simulator (`scheduler::sim`) needs to model this machine:
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
//! *Validate* runs real host attacks (EEVDF, built-in collector, openat, 64 KiB ring) at
//! several intensities, simulates each with the calibrated parameters, and reports real and
//! simulated loss side by side. A calibration from another machine, kernel or CPU count is
//! flagged: the costs move with all three (2x between two of our VMs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use attacks::FloodKind;
use comfy_table::Table;
use scheduler::sim::calibration::{
    fit_collector_costs, fit_producer_costs, fit_switch_cost, fit_wakeup_latency,
};
use scheduler::sim::{
    simulate, Calibration, CalibrationRun, LatencyHistogram, SimConfig, WakeupFit,
};
use serde::{Deserialize, Serialize};

use crate::cli::{CalibrateArgs, EevdfModel, SimArgs};
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

/// The ring of the run the wakeup latency is fitted to (the one `sim --validate` uses).
const FIT_RING: &str = "64KiB";

/// A batch whose first record waited this long counts as a long wait in the validation
/// report: at the validated floods a 64 KiB ring fills in about this time.
const LONG_WAIT_NS: u64 = 500_000;

/// The sim-to-real target, in percentage points of loss.
pub const TARGET_ERROR_PP: f64 = 5.0;

/// Runs `aegis-bench attack` with `options` in this process and returns its trials.
fn real_attack(options: &AttackOptions) -> Result<Vec<Trial>> {
    run_attack(&Plan::new(options)?)
}

fn calibration_run(trial: &Trial) -> CalibrationRun {
    let ring_bytes = trial
        .truth_by_syscall
        .iter()
        .filter(|(name, _)| trial.traced_syscalls.contains(name))
        .map(|(name, count)| *count as f64 * record_bytes(name))
        .sum();
    CalibrationRun {
        flood: trial.flood.clone(),
        threads: trial.threads,
        rate: trial.rate,
        count: trial.count,
        generated: trial.generated,
        received: trial.received,
        dropped: trial.dropped,
        duration_s: trial.duration_s,
        // The consuming alone: loading the BPF object costs the collector a fixed ~0.1-0.2 s
        // that the fit would otherwise have to separate from the per-event cost.
        collector_cpu_s: trial
            .collector_consuming_cpu_s
            .unwrap_or(trial.collector_cpu_s),
        collector_wakeups: trial.collector_wakeups,
        collector_sleeps: trial.collector_sleeps,
        collector_preemptions: trial.collector_preemptions,
        producer_cpu_s: trial.attack_cpu_s,
        ring_bytes,
    }
}

pub fn calibrate(args: &CalibrateArgs) -> Result<Calibration> {
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
    let mut runs = Vec::new();
    let mut syscall_cost_ns = std::collections::BTreeMap::new();
    let mut ring_bytes_per_event = std::collections::BTreeMap::new();
    let mut notes = Vec::new();
    let mut notify_cost_ns = None;
    let mut runs_by_flood = Vec::new();
    for flood in &args.flood {
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
            let options = AttackOptions {
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
            let trial = real_attack(&options)?
                .into_iter()
                .next()
                .context("the calibration attack ran no trial")?;
            if trial.dropped > 0 && ring == CALIBRATION_RING {
                notes.push(format!(
                    "{flood} run (count {count:?}, rate {rate:?}) lost {} of {} events even with a \
                     {CALIBRATION_RING} ring",
                    trial.dropped, trial.generated
                ));
            }
            flood_runs.push(calibration_run(&trial));
        }
        let (bytes, all_events) = flood_runs.iter().fold((0f64, 0u64), |(b, e), r| {
            (b + r.ring_bytes, e + r.generated)
        });
        ring_bytes_per_event.insert(flood.clone(), bytes / all_events.max(1) as f64);
        runs_by_flood.push((flood, flood_runs));
    }
    // One small-ring run of the first flood kind: the collector's cost at the ring size the
    // validation uses (cache-hot, many wakeups), and the loss the wakeup latency is fitted to.
    let fit_flood = args.flood[0].name().to_string();
    let fit_duration = if args.quick { 0.5 } else { 1.0 };
    let fit_repetitions = repetitions;
    let options = AttackOptions {
        flood: args.flood[0],
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
    let fit_trials = real_attack(&options)?;
    if fit_trials.is_empty() {
        bail!("the calibration attack ran no trial");
    }
    runs.extend(runs_by_flood.iter().flat_map(|(_, r)| r.iter().cloned()));
    runs.extend(fit_trials.iter().map(calibration_run));
    let fit_n = fit_trials.len() as f64;
    let fit_loss_pct = fit_trials.iter().map(|t| t.loss_pct).sum::<f64>() / fit_n;
    let fit_duration_s = fit_trials.iter().map(|t| t.duration_s).sum::<f64>() / fit_n;
    let fit_trial = &fit_trials[0];
    // The collector's own costs where it had a CPU to itself; what sharing one with
    // producers adds on top is the switch cost, which the producers pay too.
    let cpus = online_cpus();
    let uncontended: Vec<CalibrationRun> = runs
        .iter()
        .filter(|r| !r.is_contended(cpus))
        .cloned()
        .collect();
    let collector_costs = fit_collector_costs(&uncontended);
    let (fixed_s, per_event_ns, per_wakeup_ns) = collector_costs;
    let switch_cost_ns = fit_switch_cost(&runs, cpus, collector_costs);
    if switch_cost_ns.is_none() {
        notes.push(format!(
            "no run shared the collector's CPU with producers on this {cpus}-CPU machine (or \
             none measured its sleeps): collector_switch_cost_ns is 0"
        ));
    }
    let switch_cost_ns = switch_cost_ns.unwrap_or(0.0);
    for (flood, flood_runs) in &runs_by_flood {
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
    crate::say!("calibrate: wakeup latency, {rounds} pipe rounds");
    let pipe_wakeup_latency_ns = wakeup_latency_ns(rounds)?;
    notes.push(
        "syscall_cost_ns: the attack cgroup's CPU time (cpu.stat usage_usec) per traced event \
         with one flood thread and a 64MiB ring; it includes the tracing programs' cost"
            .into(),
    );
    notes.push(
        "collector costs: least-squares fit of collector_cpu_s (its consuming, from attach \
         through the drain) = fixed + per_event * received + per_wakeup * sleeps over the runs \
         where it had a CPU of its own (two unpaced sizes, one paced at 2000/s, the 64KiB \
         runs); coefficients that come out negative are dropped and the rest refitted"
            .into(),
    );
    notes.push(
        "collector_switch_cost_ns: in the runs with as many producers as CPUs, the collector's \
         CPU beyond those costs per switch (its sleeps and preemptions: each hands its CPU to a \
         producer and takes it back); producers are charged the same per switch before their \
         costs are fitted"
            .into(),
    );
    notes.push(
        "pipe_wakeup_latency_ns: median time from a pipe write until the reader thread blocked \
         on it returns from read (threads not pinned)"
            .into(),
    );
    notes.push(
        "producer_notify_cost_ns and syscall_cost_ns: least squares of the attack cgroup's CPU \
         time = per_syscall * traced events + per_notify * collector wakeups over the unpaced \
         runs (one of them lossy, with several producers and a small ring, so that the \
         wakeups per event differ)"
            .into(),
    );
    notes.push(
        "wakeup_latency_histogram (what the simulator draws each wakeup's latency from): the \
         age of the first record of every batch the built-in collector read in the small-ring \
         runs, log-scale buckets"
            .into(),
    );
    notes.push(format!(
        "wakeup_latency_ns (used only without a histogram): fitted so that the simulator (EEVDF, 3 \
         seeds) reproduces the mean loss of real 1-thread {FIT_RING}-ring runs; the pipe latency \
         underestimates the ring's, whose notification goes through irq_work"
    ));
    let calibration = Calibration {
        machine: kernel::hostname(),
        kernel: kernel::release(),
        cpus: online_cpus(),
        date: now_rfc3339(),
        git_rev: GIT_REV.to_string(),
        syscall_cost_ns,
        ring_bytes_per_event,
        collector_per_event_cost_ns: per_event_ns,
        collector_wakeup_cost_ns: per_wakeup_ns,
        collector_switch_cost_ns: switch_cost_ns,
        collector_fixed_cpu_s: fixed_s,
        wakeup_latency_ns: pipe_wakeup_latency_ns,
        pipe_wakeup_latency_ns,
        wakeup_latency_rounds: rounds,
        kernel_tick_ns: kernel::hz()
            .filter(|hz| *hz > 0)
            .map(|hz| 1_000_000_000 / hz),
        wakeup_latency_fit: None,
        wakeup_latency_histogram: None,
        producer_notify_cost_ns: notify_cost_ns.unwrap_or(0.0),
        collector_stall_histogram: None,
        collector_stalls_per_event: 0.0,
        runs,
        notes,
    };
    let mut calibration = calibration;
    let seeds = 3;
    crate::say!("calibrate: fitting the ring's wakeup latency to the {FIT_RING} run");
    let (latency_ns, sim_loss_pct) = fit_wakeup_latency(
        &calibration,
        &fit_flood,
        online_cpus(),
        1,
        fit_trial.ring_size_bytes,
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
        ring_size_bytes: fit_trial.ring_size_bytes,
        real_loss_pct: fit_loss_pct,
        real_loss_pct_by_repetition: fit_trials.iter().map(|t| t.loss_pct).collect(),
        sim_loss_pct,
        seeds,
    });
    let merged = |field: fn(&Trial) -> Option<&LatencyHistogram>| {
        LatencyHistogram::merged(fit_trials.iter().filter_map(field))
    };
    let measured = merged(|t| t.collector_wakeup_age_ns.as_ref());
    calibration.wakeup_latency_histogram = Some(measured).filter(|h| !h.is_empty());
    let stalls = merged(|t| t.collector_stall_ns.as_ref());
    let received: u64 = fit_trials.iter().map(|t| t.received).sum();
    calibration.collector_stalls_per_event = stalls.count() as f64 / received.max(1) as f64;
    calibration.collector_stall_histogram = Some(stalls).filter(|h| !h.is_empty());
    calibration
        .save(&args.out)
        .map_err(anyhow::Error::msg)
        .context("writing the calibration")?;
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
        format!("{per_event_ns:.0}"),
    ]);
    table.add_row([
        "collector_wakeup_cost_ns".into(),
        format!("{per_wakeup_ns:.0}"),
    ]);
    table.add_row(["collector_fixed_cpu_s".into(), format!("{fixed_s:.4}")]);
    table.add_row([
        "collector_switch_cost_ns".into(),
        format!("{:.0}", calibration.collector_switch_cost_ns),
    ]);
    table.add_row([
        "producer_notify_cost_ns".into(),
        format!("{:.0}", calibration.producer_notify_cost_ns),
    ]);
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
    table.add_row([
        "pipe_wakeup_latency_ns".into(),
        format!("{pipe_wakeup_latency_ns:.0}"),
    ]);
    table.add_row([
        format!("wakeup_latency_ns (fit: real loss {fit_loss_pct:.2}%, sim {sim_loss_pct:.2}%)"),
        format!("{latency_ns}"),
    ]);
    println!("{table}");
    println!("wrote {}", args.out.display());
    Ok(calibration)
}

fn online_cpus() -> usize {
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

/// One intensity of `sim --validate`. Field names are an interface.
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
    /// The simulated EEVDF (`--eevdf-model`), and what it amounts to below; reports that
    /// predate the choice used the simple model.
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

pub fn sim(args: &SimArgs) -> Result<()> {
    if args.evaluate {
        return crate::commands::sim_eval::run(args);
    }
    if !args.validate {
        bail!("`aegis-bench sim` needs --validate (root) or --evaluate, and --json FILE");
    }
    let json = args
        .json
        .as_ref()
        .context("--validate needs --json FILE for its report")?;
    let calibration = Calibration::load(&args.calibration)
        .map_err(anyhow::Error::msg)
        .with_context(|| {
            format!(
                "no calibration at {}: run `aegis-bench calibrate --out {}` first",
                args.calibration.display(),
                args.calibration.display()
            )
        })?;
    let host = (kernel::hostname(), kernel::release(), online_cpus());
    let calibration_from_this_host =
        (&calibration.machine, &calibration.kernel, calibration.cpus) == (&host.0, &host.1, host.2);
    if !calibration_from_this_host {
        crate::say!(
            "warning: {} was measured on {} ({}, {} CPUs), this is {} ({}, {} CPUs): its \
             costs may not hold here; run `aegis-bench calibrate --out FILE` on this machine",
            args.calibration.display(),
            calibration.machine,
            calibration.kernel,
            calibration.cpus,
            host.0,
            host.1,
            host.2
        );
    }
    let threads: Vec<u32> = if args.quick && args.threads.is_none() {
        vec![1, 4]
    } else {
        args.threads
            .clone()
            .unwrap_or_else(|| vec![1, 2, 3, 4, 6, 8])
    };
    let duration = args.duration.unwrap_or(if args.quick { 0.5 } else { 1.0 });
    let flood = "openat";
    let repetitions = args.repetitions.unwrap_or(if args.quick { 1 } else { 3 });
    let trials = match &args.real_trials {
        Some(path) => real_trials_from(path, flood)?,
        None => {
            let thread_list: Vec<String> = threads.iter().map(u32::to_string).collect();
            crate::say!(
                "validate: aegis-bench attack --flood {flood} --threads {} --duration {duration} \
                 --ring-size {} --collector builtin --scheduler eevdf --repetitions {repetitions}",
                thread_list.join(","),
                args.ring_size
            );
            real_attack(&AttackOptions {
                flood: FloodKind::Openat,
                threads: threads.clone(),
                duration_s: duration,
                ring_sizes: vec![parse_ring_size(&args.ring_size)?],
                collectors: vec![CollectorKind::Builtin],
                schedulers: vec!["eevdf".to_string()],
                repetitions,
                ..AttackOptions::default()
            })?
        }
    };
    let eevdf_model = args.eevdf_model.unwrap_or(EevdfModel::Linux);
    let linux = eevdf_model == EevdfModel::Linux;
    let tick_ns = eevdf_model.tick_ns(&calibration);
    if linux && tick_ns.is_none() {
        crate::say!(
            "warning: {} does not record the kernel's tick (it predates that, or CONFIG_HZ \
             was unreadable): simulating a 1 ms tick; recalibrate with `aegis-bench \
             calibrate` for the kernel's",
            args.calibration.display()
        );
    }
    let cpus = online_cpus();
    let started = Instant::now();
    let mut points = Vec::new();
    let mut by_threads: std::collections::BTreeMap<u32, Vec<&Trial>> = Default::default();
    for trial in &trials {
        by_threads.entry(trial.threads).or_default().push(trial);
    }
    for (threads, reps) in &by_threads {
        let reps_n = reps.len() as f64;
        let mean = |f: &dyn Fn(&Trial) -> f64| reps.iter().map(|t| f(t)).sum::<f64>() / reps_n;
        let real_loss_pct = mean(&|t| t.loss_pct);
        let real_duration_s = mean(&|t| t.duration_s);
        let mut by_seed = Vec::new();
        let (mut produced, mut dropped, mut collector_ns, mut wakeups) = (0u64, 0u64, 0u64, 0u64);
        let mut long_waits = 0u64;
        let mut sim_config = None;
        for seed in 1..=args.seeds.max(1) {
            let mut config = SimConfig::from_calibration(
                &calibration,
                flood,
                cpus,
                *threads as usize,
                reps[0].ring_size_bytes,
                (real_duration_s * 1e9) as u64,
            )
            .map_err(anyhow::Error::msg)?;
            config.seed = seed;
            if let Some(tick_ns) = tick_ns {
                config.tick_ns = tick_ns;
            }
            let mut policy = eevdf_model.policy(config.cpus, config.tick_ns);
            policy.per_cpu_run_queues |= args.per_cpu_run_queues;
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
        let n = by_seed.len() as f64;
        let sim_loss_pct = by_seed.iter().sum::<f64>() / n;
        let real_by_rep: Vec<f64> = reps.iter().map(|t| t.loss_pct).collect();
        points.push(ValidationPoint {
            threads: *threads,
            real_loss_pct,
            sim_loss_pct,
            error_pp: (real_loss_pct - sim_loss_pct).abs(),
            scheduler: reps[0].scheduler.clone(),
            real_loss_pct_min: real_by_rep.iter().copied().fold(f64::INFINITY, f64::min),
            real_loss_pct_max: real_by_rep.iter().copied().fold(0.0, f64::max),
            real_loss_pct_by_repetition: real_by_rep,
            real_generated: mean(&|t| t.generated as f64) as u64,
            real_dropped: mean(&|t| t.dropped as f64) as u64,
            real_duration_s,
            real_collector_cpu_s: mean(&|t| {
                t.collector_consuming_cpu_s.unwrap_or(t.collector_cpu_s)
            }),
            real_collector_wakeups: mean(&|t| t.collector_wakeups as f64) as u64,
            real_collector_sleeps: reps
                .iter()
                .map(|t| t.collector_sleeps)
                .sum::<Option<u64>>()
                .map(|sum| sum / reps.len() as u64),
            real_long_waits: reps
                .iter()
                .map(|t| {
                    t.collector_wakeup_age_ns
                        .as_ref()
                        .map(|ages| ages.count_at_or_above(LONG_WAIT_NS))
                })
                .sum::<Option<u64>>()
                .map(|sum| sum / reps.len() as u64),
            sim_long_waits: long_waits / n as u64,
            sim_collector_wakeups: wakeups / n as u64,
            sim_loss_pct_by_seed: by_seed,
            sim_produced: produced / n as u64,
            sim_dropped: dropped / n as u64,
            sim_collector_cpu_s: collector_ns as f64 / n / 1e9,
            sim_config: sim_config.expect("at least one seed"),
        });
    }
    let max_error_pp = points.iter().map(|p| p.error_pp).fold(0.0, f64::max);
    let report = ValidationReport {
        target_met: max_error_pp <= TARGET_ERROR_PP,
        max_error_pp,
        target_error_pp: TARGET_ERROR_PP,
        flood: flood.into(),
        ring_size_bytes: trials.first().map_or(0, |t| t.ring_size_bytes),
        cpus,
        calibration_file: args.calibration.clone(),
        calibration,
        eevdf_model,
        per_cpu_run_queues: linux || args.per_cpu_run_queues,
        inflate_placement_lag: linux,
        calibration_from_this_host,
        tick_ns: points.first().map_or(0, |p| p.sim_config.tick_ns),
        real_trials_file: args.real_trials.clone(),
        git_rev: GIT_REV.to_string(),
        date: now_rfc3339(),
        points,
    };
    write_json_atomically(json, &report)?;
    let (png, svg) = crate::figures::sim_to_real::figure_paths(json);
    crate::figures::sim_to_real::draw_validation(&report, &png, &svg)?;
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
    println!("{table}");
    println!(
        "max error {:.2} pp (target <= {TARGET_ERROR_PP} pp): {}; simulated in {:.2} s",
        report.max_error_pp,
        if report.target_met { "met" } else { "NOT met" },
        started.elapsed().as_secs_f64()
    );
    println!(
        "wrote {}, {} and {}",
        json.display(),
        png.display(),
        svg.display()
    );
    Ok(())
}

pub fn simple_model() -> EevdfModel {
    EevdfModel::Simple
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
        let fair = matches!(trial.scheduler.as_str(), "eevdf" | "cfs");
        if trial.flood != flood || trial.collector != "builtin" || !fair {
            bail!(
                "--real-trials: {} holds a {} flood with the {} collector on {}; validation \
                 replays {flood} floods with the built-in collector on the kernel's fair class \
                 (`aegis-bench attack --flood {flood} --collector builtin --scheduler eevdf`)",
                path.display(),
                trial.flood,
                trial.collector,
                trial.scheduler
            );
        }
    }
    Ok(trials)
}

fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut file, value)?;
    std::io::Write::write_all(&mut file, b"\n")?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
