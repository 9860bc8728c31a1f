//! The `aegis-bench` command. See the crate docs of `aegis_bench` for how a trial runs.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use aegis_bench::cli::{Cli, Command};
use aegis_bench::commands::{doctor, log, worker};
use aegis_bench::error::exit_status;
use aegis_bench::vm;

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
        Command::Report(args) => return guest_exit(aegis_bench::commands::report::report(&args)),
        Command::Calibrate(args) => aegis_bench::commands::calibrate::calibrate(&args).map(|_| ()),
        Command::Sim(args) => aegis_bench::commands::sim::sim(&args),
        Command::Train(args) => aegis_bench::commands::train::train(&args).map(|_| ()),
        Command::Figures(args) => aegis_bench::commands::figures::figures(&args),
        Command::Doctor => {
            doctor::print();
            Ok(())
        }
        Command::Log(args) => log::log(&args),
        Command::Collect(args) => worker::collect(&args),
        Command::AttackWorker(args) => worker::attack_worker(args),
        Command::WorkloadWorker(args) => worker::workload_worker(&args),
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
