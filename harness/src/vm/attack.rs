//! `attack --vm`: the same attack, run in a guest.
//!
//! The flags are validated on the host first, so bad input fails before any boot, except
//! `--scheduler`: which schedulers exist depends on the kernel, so the guest judges those.
//! The guest gets the user's own command line minus the guest flags, with `--json`, `--csv`
//! and `--keep-logs` pointed at guest paths under `/aegis-out`; the files come back to the
//! paths the user gave. Rewriting the command line (rather than re-serializing the parsed
//! flags) keeps flags added to `attack` later working in guests without touching this file;
//! which tokens are flag values comes from clap's own definition of `attack`, which the
//! command passes in.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::args::GuestArgs;
use super::{run_in_guest, GuestSpec};
use crate::error::InputError;
use crate::export::Exporters;
use crate::results::trial::Trial;
use crate::run::{AttackOptions, Plan, ProducerPlan};

/// Flags that only describe the guest, dropped from the guest's command line.
const GUEST_FLAGS: &[&str] = &["vm", "vm-kernel", "cpus", "mem", "offline", "eaudit-dir"];
/// Output flags and the guest directory their files are written to.
const OUTPUT_FLAGS: &[(&str, &str)] = &[
    ("json", "/aegis-out/json"),
    ("csv", "/aegis-out/csv"),
    ("keep-logs", "/aegis-out/logs"),
];
/// Boot, plus the teardown of a guest run.
const BASE_TIMEOUT_S: u64 = 120;
/// Per trial: arming (BPF loads are slow under TCG), disarming and accounting.
const PER_TRIAL_S: u64 = 30;
/// Per eAudit trial: BCC compiling eAudit's BPF program, with room for a loaded host.
pub const EAUDIT_START_S: u64 = 480;
/// Workloads whose tools run in a guest from their binaries and shared libraries alone (the
/// servers get their configuration from the workload itself; `compile` needs a whole compiler).
pub const GUEST_WORKLOADS: &[&str] = &[
    "stress-ng-cpu",
    "hackbench",
    "sysbench-cpu",
    "nginx-wrk",
    "redis",
];

/// The guest path for an output flag's host value.
fn guest_output(flag: &str, guest_dir: &str, host: &Path) -> PathBuf {
    if flag == "keep-logs" {
        return PathBuf::from(guest_dir);
    }
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("trials.{flag}"));
    Path::new(guest_dir).join(name)
}

/// The guest's command line: `attack_args` (what followed `attack` on ours) without the guest
/// flags and with output paths rewritten to guest paths. `attack` is clap's definition of the
/// `attack` command, which says which flags take a value.
pub fn guest_command_line(
    attack: &clap::Command,
    attack_args: &[String],
) -> Result<Vec<String>, InputError> {
    let mut out = vec!["attack".to_string()];
    let mut tokens = attack_args.iter();
    while let Some(token) = tokens.next() {
        if token == "--" {
            out.push(token.clone());
            out.extend(tokens.by_ref().cloned());
            break;
        }
        let Some(body) = token.strip_prefix("--") else {
            out.push(token.clone());
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let Some(arg) = attack.get_arguments().find(|a| a.get_long() == Some(name)) else {
            // Unknown here means unknown to the guest too; let it say so.
            out.push(token.clone());
            continue;
        };
        let value = if arg.get_action().takes_values() {
            match inline_value.or_else(|| tokens.next().cloned()) {
                Some(value) => Some(value),
                None => return Err(InputError(format!("--{name} needs a value"))),
            }
        } else {
            None
        };
        if GUEST_FLAGS.contains(&name) {
            continue;
        }
        out.push(format!("--{name}"));
        if let Some(value) = value {
            match OUTPUT_FLAGS.iter().find(|(flag, _)| *flag == name) {
                Some((flag, dir)) => out.push(
                    guest_output(flag, dir, Path::new(&value))
                        .to_string_lossy()
                        .into_owned(),
                ),
                None => out.push(value),
            }
        }
    }
    Ok(out)
}

/// `scx:HOST_PATH` becomes `scx:/usr/local/bin/NAME`, where the guest has the binary.
fn guest_scheduler_paths(mut line: Vec<String>) -> Vec<String> {
    let mut i = 0;
    while i + 1 < line.len() {
        if line[i] == "--scheduler" {
            let rewritten: Vec<String> = line[i + 1]
                .split(',')
                .map(|name| match name.strip_prefix("scx:") {
                    Some(path) => {
                        let file = Path::new(path)
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        format!("scx:/usr/local/bin/{file}")
                    }
                    None => name.to_string(),
                })
                .collect();
            line[i + 1] = rewritten.join(",");
        }
        i += 1;
    }
    line
}

/// How many trials the plan runs under `schedulers` schedulers (the guest checks them).
fn trial_count(plan: &Plan, schedulers: usize) -> u64 {
    let threads = match &plan.producer {
        ProducerPlan::Flood { threads, .. } => threads.len(),
        ProducerPlan::Command(_) => 1,
    };
    u64::from(plan.repetitions)
        * u64::from(plan.boots)
        * schedulers.max(1) as u64
        * plan.collectors.len() as u64
        * plan.ring_sizes.len() as u64
        * threads as u64
        * plan.workloads.len().max(1) as u64
}

/// How many no-attack workload baselines a boot runs (one per scheduler, workload and
/// repetition).
fn alone_count(plan: &Plan, schedulers: usize) -> u64 {
    schedulers.max(1) as u64 * plan.workloads.len() as u64 * u64::from(plan.repetitions)
}

/// A workload that cannot run in a guest is refused before anything else is checked.
fn refuse_non_guest_workloads(names: &[&str]) -> Result<(), InputError> {
    for name in names {
        if !GUEST_WORKLOADS.contains(name) {
            return Err(InputError(format!(
                "workload {name} cannot run in a guest (its tools need more than their \
                 binaries); with --vm use {}",
                GUEST_WORKLOADS.join(", ")
            )));
        }
    }
    Ok(())
}

/// The tools of the requested workloads, to copy into the guest.
fn workload_binaries(plan: &Plan) -> Result<Vec<PathBuf>, InputError> {
    let mut binaries = Vec::new();
    for name in &plan.workloads {
        for path in crate::run::workload::tool_paths(name)? {
            if !binaries.contains(&path) {
                binaries.push(path);
            }
        }
    }
    Ok(binaries)
}

/// Runs `attack --vm`: `options` in the guest `guest`. `attack` is clap's definition of the
/// `attack` command and `attack_args` what followed `attack` on the command line.
pub fn run(
    options: &AttackOptions,
    guest: &GuestArgs,
    attack: &clap::Command,
    attack_args: &[String],
) -> Result<i32> {
    // Everything but the schedulers is checked here, before any boot.
    refuse_non_guest_workloads(&options.workloads)?;
    let plan = Plan::for_guest(&AttackOptions {
        schedulers: Vec::new(),
        ..options.clone()
    })?;
    let schedulers = options.schedulers.len();
    // The timeout is one boot's: each boot is its own guest.
    let trials = trial_count(&plan, schedulers) / u64::from(plan.boots);
    let duration_s = plan.duration.as_secs_f64().ceil() as u64;
    // eAudit's BCC compiles its BPF program at every start: about two minutes under TCG.
    let eaudit_trials = if plan
        .collectors
        .contains(&crate::collector::CollectorKind::Eaudit)
    {
        trial_count(&plan, schedulers)
            / (plan.collectors.len() * plan.ring_sizes.len().max(1)) as u64
            / u64::from(plan.boots)
    } else {
        0
    };
    let timeout_s = BASE_TIMEOUT_S
        + trials * (3 * duration_s + PER_TRIAL_S)
        + alone_count(&plan, schedulers) * (3 * duration_s + PER_TRIAL_S)
        + eaudit_trials * EAUDIT_START_S;
    let mut spec = guest.spec(timeout_s)?;
    // The workloads' tools go in with their libraries, at /usr/local/bin.
    spec.extra_binaries = workload_binaries(&plan)?;
    spec.add_collectors(&options.collectors, options.eaudit_dir.as_deref())?;
    spec.timeout_hint = format!(
        "`attack --vm` allowed {timeout_s} s for {trials} trial(s); for longer, run \
         `aegis-bench vm --timeout SECS -- attack ...` (without --vm)"
    );
    // Schedulers are checked against the guest's kernel; sched_ext binaries go in with it.
    let facts = spec.kernel.facts();
    for name in &options.schedulers {
        if let crate::sched::SchedulerSpec::SchedExt { binary, .. } =
            crate::sched::parse(name, &facts)?
        {
            if !spec.extra_binaries.contains(&binary) {
                spec.extra_binaries.push(binary);
            }
        }
    }
    let mut guest_args = guest_scheduler_paths(guest_command_line(attack, attack_args)?);
    // The host's checkout went in patched and built (`GuestSpec::add_collectors`).
    if options
        .collectors
        .contains(&crate::collector::CollectorKind::Eaudit)
    {
        guest_args.extend([
            "--eaudit-dir".to_string(),
            crate::collector::eaudit::GUEST_DIR.to_string(),
        ]);
    }
    if options.boots > 1 {
        return run_boots(options, &spec, guest_args);
    }
    let mut files_back = Vec::new();
    for (flag, dir) in OUTPUT_FLAGS {
        let host = match *flag {
            "json" => &options.json,
            "csv" => &options.csv,
            _ => &options.keep_logs,
        };
        if let Some(host) = host {
            files_back.push((guest_output(flag, dir, host), host.clone()));
        }
    }
    crate::say!(
        "vm: running `aegis-bench {}` in a {} guest",
        shell_words::join(&guest_args),
        spec.kernel.name()
    );
    run_in_guest(&spec, &guest_args, &files_back)
}

/// `attack --vm --boots N`: N guests in turn, each running boot B's trials (`--boot B`) and
/// sending back its JSON; after each boot the trials so far are written to `--json`/`--csv`
/// on the host (logs to `--keep-logs/bootB`), and the table of all of them ends the run.
fn run_boots(options: &AttackOptions, spec: &GuestSpec, guest_args: Vec<String>) -> Result<i32> {
    let boots = options.boots;
    let back = crate::run::work_dir::create_labeled("boots")
        .context("creating a directory for the guests' trials")?;
    let exporters = Exporters::new(options.json.clone(), options.csv.clone());
    let mut trials: Vec<Trial> = Vec::new();
    // Each guest writes its boot's trials to one JSON file, whatever the user asked for.
    let guest_args: Vec<String> = strip_outputs(guest_args);
    let mut status = 0;
    for boot in 0..boots {
        let mut args = guest_args.clone();
        args.extend(["--boot".to_string(), boot.to_string()]);
        args.extend(["--json".to_string(), BOOT_JSON.to_string()]);
        let host_json = back.path().join(format!("boot{boot}.json"));
        let mut files_back = vec![(PathBuf::from(BOOT_JSON), host_json.clone())];
        if let Some(logs) = &options.keep_logs {
            args.extend(["--keep-logs".to_string(), "/aegis-out/logs".to_string()]);
            files_back.push(("/aegis-out/logs".into(), logs.join(format!("boot{boot}"))));
        }
        crate::say!(
            "vm: boot {}/{boots}: running `aegis-bench {}` in a {} guest",
            boot + 1,
            shell_words::join(&args),
            spec.kernel.name()
        );
        let code = run_in_guest(spec, &args, &files_back)?;
        if host_json.is_file() {
            trials.extend(crate::export::json::read(&host_json)?);
            exporters.write(&trials)?;
        }
        if code != 0 {
            status = code;
            break;
        }
    }
    crate::out!("{}", crate::export::table::render(&trials));
    for path in exporters.paths() {
        crate::out!("wrote {}", path.display());
    }
    Ok(status)
}

/// Where each boot's guest writes its trials.
const BOOT_JSON: &str = "/aegis-out/boot/trials.json";

/// The guest command line without the output flags (and their values), which a
/// several-boot run sets per boot.
fn strip_outputs(line: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut tokens = line.into_iter();
    while let Some(token) = tokens.next() {
        if token == "--" {
            out.push(token);
            out.extend(tokens.by_ref());
            break;
        }
        if OUTPUT_FLAGS
            .iter()
            .any(|(flag, _)| token == format!("--{flag}"))
        {
            tokens.next();
            continue;
        }
        out.push(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_boot_sets_its_own_outputs() {
        let line = strip_outputs(strings(&[
            "attack",
            "--json",
            "/aegis-out/json/a.json",
            "--boots",
            "3",
            "--csv",
            "/x.csv",
            "--",
            "--json",
        ]));
        assert_eq!(line, strings(&["attack", "--boots", "3", "--", "--json"]));
    }

    #[test]
    fn scheduler_binaries_get_guest_paths() {
        let line = guest_scheduler_paths(strings(&[
            "attack",
            "--scheduler",
            "eevdf,scx:/opt/x/scx_simple,scx_rustland",
        ]));
        assert_eq!(line[2], "eevdf,scx:/usr/local/bin/scx_simple,scx_rustland");
    }

    #[test]
    fn counts_trials_for_the_timeout() {
        let plan = Plan::new(&AttackOptions {
            threads: vec![1, 4],
            ring_sizes: vec![64 << 10, 1 << 20],
            repetitions: 3,
            ..AttackOptions::default()
        })
        .unwrap();
        // Two schedulers (eevdf,aegis), counted as given.
        assert_eq!(trial_count(&plan, 2), 2 * 2 * 3 * 2);
        assert_eq!(alone_count(&plan, 2), 0);
        let boots = Plan::new(&AttackOptions {
            boots: 3,
            ..AttackOptions::default()
        })
        .unwrap();
        assert_eq!(trial_count(&boots, 1), 3);
    }

    #[test]
    fn workloads_bring_their_tools_into_the_guest() {
        let plan = Plan::new(&AttackOptions {
            workloads: vec!["stress-ng-cpu", "hackbench"],
            ..AttackOptions::default()
        })
        .unwrap();
        // Two schedulers (eevdf,scx_rustland), counted as given.
        assert_eq!(trial_count(&plan, 2), 2 * 2);
        assert_eq!(alone_count(&plan, 2), 2 * 2);
        let binaries = workload_binaries(&plan).unwrap();
        let names: Vec<String> = binaries
            .iter()
            .map(|b| b.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["stress-ng", "hackbench"]);
        assert!(binaries.iter().all(|b| b.is_absolute() && b.is_file()));
        let err = refuse_non_guest_workloads(&["compile"]).unwrap_err().0;
        assert!(
            err.contains("workload compile cannot run in a guest"),
            "{err}"
        );
        assert!(
            err.contains("stress-ng-cpu, hackbench, sysbench-cpu, nginx-wrk, redis"),
            "{err}"
        );
    }
}
