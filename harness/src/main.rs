//! The `aegis-bench` command. See the crate docs of `aegis_bench` for how a trial runs.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use aegis_bench::cli::{Cli, CollectArgs, Command, LogArgs, WorkerArgs, WorkloadWorkerArgs};
use aegis_bench::collector::consumer::{self, ConsumerConfig};
use aegis_bench::error::exit_status;
use aegis_bench::provlog::for_each_event;
use aegis_bench::{commands::doctor, syscalls, vm};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            // One line that names the problem (clap's hint lines are left out), status 2.
            let rendered = err.render().to_string();
            aegis_bench::say!(
                "{}",
                rendered.lines().next().unwrap_or("error: bad arguments")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        // Guest runs (`attack --vm`, `run --vm`) exit with the guest command's status; `gate`
        // with 1 on a regression.
        Command::Attack(args) => return guest_exit(aegis_bench::commands::attack::run(&args)),
        Command::Vm(args) => return guest_exit(vm::run_vm_command(&args)),
        Command::Run(args) => return guest_exit(aegis_bench::commands::run::run(&args)),
        Command::Gate(args) => return guest_exit(aegis_bench::commands::gate::gate(&args)),
        Command::Merge(args) => aegis_bench::commands::merge::merge(&args),
        Command::Calibrate(args) => aegis_bench::commands::calibrate::calibrate(&args).map(|_| ()),
        Command::Sim(args) => aegis_bench::commands::calibrate::sim(&args),
        Command::Train(args) => aegis_bench::commands::train::train(&args).map(|_| ()),
        Command::Figures(args) => aegis_bench::figures::figures(&args),
        Command::Doctor => {
            doctor::print();
            Ok(())
        }
        Command::Log(args) => print_log(&args),
        Command::Collect(args) => collect(&args),
        Command::AttackWorker(args) => attack_worker(args),
        Command::WorkloadWorker(args) => workload_worker(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            aegis_bench::say!("error: {err:#}");
            ExitCode::from(exit_status(&err) as u8)
        }
    }
}

/// The exit code of a guest run: the guest command's status, or ours if the run failed.
fn guest_exit(result: Result<i32>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(err) => {
            aegis_bench::say!("error: {err:#}");
            ExitCode::from(exit_status(&err) as u8)
        }
    }
}

fn collect(args: &CollectArgs) -> Result<()> {
    let config = ConsumerConfig {
        cgroup_id: args.cgroup_id,
        ring_bytes: args.ring_bytes,
        log: args.log.clone(),
        stats: args.stats.clone(),
        pin_ring: args.pin_ring.clone(),
    };
    if args.compact {
        aegis_bench::collector::compact::run(&config)
    } else {
        consumer::run(&config)
    }
}

fn attack_worker(args: WorkerArgs) -> Result<()> {
    let duration = Duration::from_secs_f64(args.duration);
    let config = attacks::WorkerConfig {
        flood: args.flood.map(|kind| attacks::FloodSpec {
            kind,
            threads: args.threads,
            duration,
            count: args.count,
            rate_per_s: args.rate,
        }),
        cmd: (!args.cmd.is_empty()).then_some(args.cmd),
        duration,
        cgroup_procs: args.cgroup_procs,
        report: args.report,
        canary_path: args.canary,
        scratch_dir: args.scratch,
        nice: args.nice,
        extra_cgroup_procs: args.extra_cgroup_procs,
        gate: args.gate,
    };
    match attacks::worker::run(&config) {
        Ok(never) => match never {},
        Err(err) => Err(err).context("attack worker"),
    }
}

fn workload_worker(args: &WorkloadWorkerArgs) -> Result<()> {
    aegis_bench::run::workload::worker(
        &args.name,
        Duration::from_secs_f64(args.duration),
        &args.cgroup_procs,
        &args.report,
    )
}

fn print_log(args: &LogArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut counts = std::collections::BTreeMap::<u32, u64>::new();
    let filter = args.path_contains.as_deref().map(str::as_bytes);
    let mut closed = false;
    for_each_event(&args.file, |event| {
        if closed {
            return;
        }
        if args.summary {
            *counts.entry(event.syscall_nr).or_default() += 1;
            return;
        }
        if let Some(needle) = filter {
            let hit = event
                .path()
                .is_some_and(|path| path.windows(needle.len()).any(|w| w == needle));
            if !hit {
                return;
            }
        }
        // A closed pipe (`| head`) is not an error.
        closed = writeln!(out, "{event}").is_err();
    })?;
    if args.summary {
        let total: u64 = counts.values().sum();
        for (nr, count) in &counts {
            writeln!(out, "{:>12}  {}", count, syscalls::name(*nr))?;
        }
        writeln!(out, "{total:>12}  records")?;
    }
    out.flush().ok();
    Ok(())
}
