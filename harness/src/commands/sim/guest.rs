//! `sim validate --vm`: the real side measured in a sched_ext guest, where Aegis runs. One boot
//! calibrates (TCG's costs are not the host's, and they move from boot to boot, so the
//! calibration and the trials it is checked against share the boot) and then runs the real
//! trials; both files come back to the host, which simulates them as it replays any saved
//! trials. The guest runs `sim validate --measure-only` ([`measure`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use attacks::FloodKind;
use scheduler::sim::calibration::DEFAULT_CALIBRATION_PATH;

use super::validate::{real_trials, SimulatedAs, ValidateOptions};
use crate::cli::{CalibrateArgs, ValidateArgs};
use crate::vm::{run_in_guest, GuestKernel, GuestSpec, DEFAULT_CPUS, DEFAULT_MEM};

/// Where the guest writes the calibration and the trials.
const GUEST_CALIBRATION: &str = "/aegis-out/calibration.json";
const GUEST_TRIALS: &str = "/aegis-out/trials.json";
/// Boot and power-off, plus the calibration's runs under TCG.
const BASE_TIMEOUT_S: u64 = 180;
const CALIBRATION_TIMEOUT_S: u64 = 900;
/// Per trial: arming (scx_aegis's verification is slow under TCG), disarming, accounting.
const PER_TRIAL_S: u64 = 30;

/// In the guest: calibrate to `--calibration`, run the real trials to `--save-trials`, stop.
pub fn measure(args: &ValidateArgs) -> Result<()> {
    crate::commands::calibrate::calibrate(&CalibrateArgs {
        out: args.common.calibration.clone(),
        flood: vec![FloodKind::Openat],
        count: 200_000,
        repetitions: None,
        quick: args.common.quick,
    })?;
    let options = ValidateOptions::from_args(args)?;
    real_trials(&options)?;
    Ok(())
}

/// The guest's command line for `args` (the host's `sim validate --vm ...`).
fn guest_command_line(args: &ValidateArgs, schedulers: &[String]) -> Vec<String> {
    let mut line: Vec<String> = [
        "sim",
        "validate",
        "--measure-only",
        "--calibration",
        GUEST_CALIBRATION,
        "--save-trials",
        GUEST_TRIALS,
        "--ring-size",
        &args.common.ring_size,
        "--scheduler",
        &schedulers.join(","),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(threads) = &args.common.threads {
        let threads: Vec<String> = threads.iter().map(u32::to_string).collect();
        line.extend(["--threads".to_string(), threads.join(",")]);
    }
    if let Some(duration) = args.common.duration {
        line.extend(["--duration".to_string(), duration.to_string()]);
    }
    if let Some(repetitions) = args.only.repetitions {
        line.extend(["--repetitions".to_string(), repetitions.to_string()]);
    }
    if args.common.quick {
        line.push("--quick".to_string());
    }
    line
}

/// What `--vm` needs besides the guest: a report path, a calibration path of its own (the
/// guest's calibration must not replace the host's) and a trials path.
fn check_paths(args: &ValidateArgs) -> Result<(PathBuf, PathBuf)> {
    if args.common.json.is_none() {
        bail!("--validate needs --json FILE for its report");
    }
    let calibration = args.common.calibration.clone();
    if calibration == Path::new(DEFAULT_CALIBRATION_PATH) {
        bail!(
            "with --vm, give --calibration FILE: where the guest's calibration goes (not the \
             host's {DEFAULT_CALIBRATION_PATH})"
        );
    }
    let trials = args
        .only
        .save_trials
        .clone()
        .context("with --vm, give --save-trials FILE: where the guest's real trials go")?;
    Ok((calibration, trials))
}

/// On the host: one sched_ext guest boot measures the calibration and the real trials and
/// sends them back to `--calibration` and `--save-trials`.
pub fn measure_in_guest(args: &ValidateArgs) -> Result<()> {
    let (calibration, trials_file) = check_paths(args)?;
    let schedulers = args
        .only
        .scheduler
        .clone()
        .unwrap_or_else(|| vec!["eevdf".to_string()]);
    let facts = GuestKernel::SchedExt.facts();
    let mut binaries = Vec::new();
    for name in &schedulers {
        if SimulatedAs::of(name).is_none() {
            bail!("sim validate simulates eevdf, cfs and aegis; {name} has no simulated policy");
        }
        if let crate::sched::SchedulerSpec::SchedExt { binary, .. } =
            crate::sched::parse(name, &facts)?
        {
            binaries.push(binary);
        }
    }
    let plan = guest_plan(args, schedulers.len());
    let mut spec = GuestSpec::new(
        GuestKernel::SchedExt,
        DEFAULT_CPUS,
        DEFAULT_MEM,
        false,
        plan.timeout_s,
    )?;
    spec.extra_binaries = binaries;
    spec.timeout_hint = format!(
        "`sim validate --vm` allowed {} s for the calibration and {} trial(s)",
        plan.timeout_s, plan.trials
    );
    let guest_args = guest_command_line(args, &schedulers);
    crate::say!(
        "vm: running `aegis-bench {}` in a sched-ext guest",
        shell_words::join(&guest_args)
    );
    let files_back = [
        (PathBuf::from(GUEST_CALIBRATION), calibration),
        (PathBuf::from(GUEST_TRIALS), trials_file),
    ];
    let status = run_in_guest(&spec, &guest_args, &files_back)?;
    if status != 0 {
        bail!("the guest's calibration and real trials failed (status {status})");
    }
    Ok(())
}

/// How many trials the guest runs and how long it may take.
struct GuestPlan {
    trials: u64,
    timeout_s: u64,
}

fn guest_plan(args: &ValidateArgs, schedulers: usize) -> GuestPlan {
    let quick = args.common.quick;
    let intensities = args
        .common
        .threads
        .as_ref()
        .map_or(if quick { 2 } else { 6 }, Vec::len) as u64;
    let repetitions = u64::from(args.only.repetitions.unwrap_or(if quick { 1 } else { 3 }));
    let duration_s = args
        .common
        .duration
        .unwrap_or(if quick { 0.5 } else { 1.0 })
        .ceil() as u64;
    let trials = intensities * repetitions * schedulers as u64;
    GuestPlan {
        trials,
        timeout_s: BASE_TIMEOUT_S + CALIBRATION_TIMEOUT_S + trials * (3 * duration_s + PER_TRIAL_S),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, SimCommand};

    fn validate_args(args: &[&str]) -> ValidateArgs {
        let argv = ["aegis-bench", "sim", "validate"].iter().chain(args);
        let Command::Sim(sim) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!("parsed a sim command line");
        };
        let Some(SimCommand::Validate(args)) = sim.subcommand() else {
            unreachable!("parsed sim validate");
        };
        args
    }

    #[test]
    fn the_guest_measures_what_the_host_asked_for() {
        let args = validate_args(&[
            "--vm",
            "--json",
            "r.json",
            "--calibration",
            "c.json",
            "--save-trials",
            "t.json",
            "--scheduler",
            "eevdf,aegis",
            "--threads",
            "1,2,3,4,6,8",
            "--duration",
            "2",
            "--repetitions",
            "2",
            "--ring-size",
            "16KiB",
        ]);
        let line = guest_command_line(&args, &["eevdf".into(), "aegis".into()]);
        assert_eq!(
            shell_words::join(&line),
            "sim validate --measure-only --calibration /aegis-out/calibration.json \
             --save-trials /aegis-out/trials.json --ring-size 16KiB --scheduler eevdf,aegis \
             --threads 1,2,3,4,6,8 --duration 2 --repetitions 2"
        );
        // The guest's own parse of it.
        let guest = validate_args(&line[2..].iter().map(String::as_str).collect::<Vec<_>>());
        assert!(guest.only.measure_only && !guest.only.vm);
        let plan = guest_plan(&args, 2);
        assert_eq!(plan.trials, 24);
        assert_eq!(plan.timeout_s, 180 + 900 + 24 * (6 + 30));
        assert_eq!(check_paths(&args).unwrap().1, Path::new("t.json"));
    }

    #[test]
    fn the_guest_calibration_does_not_replace_the_hosts() {
        let args = validate_args(&["--vm", "--json", "r.json", "--save-trials", "t.json"]);
        let err = check_paths(&args).unwrap_err().to_string();
        assert!(err.contains("give --calibration FILE"), "{err}");
        let parsed = Cli::try_parse_from(["aegis-bench", "sim", "validate", "--vm"]);
        assert!(parsed.is_err(), "--vm without --save-trials");
    }
}
