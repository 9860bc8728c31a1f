//! `run --matrix --vm`: the matrix run in a guest.
//!
//! The matrix is validated on the host (everything but the scheduler names, which the guest's
//! kernel judges), then sent into a guest with the results so far when resuming. The guest
//! runs `aegis-bench run` on its copy and the output directory comes back to `--out`. A matrix
//! of `boots = N` boots N guests in turn, each running its boot's trials (`--boot B`): every
//! repetition of every cell, in its own order. After each boot its trials are also written to
//! a file of their own, `bootB.jsonl` beside `trials.jsonl` (B from 0, as in the trial ids).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};

use super::args::GuestArgs;
use super::attack::GUEST_WORKLOADS;
use super::{run_in_guest, GuestSpec};
use crate::error::InputError;
use crate::run::matrix::{run_order, Matrix, Shard};

/// Where the guest finds the matrix and writes its results.
const GUEST_MATRIX: &str = "/aegis/in/matrix.toml";
const GUEST_OUT: &str = "/aegis-out/run";
/// Boot and teardown.
const BASE_TIMEOUT_S: u64 = 120;
/// Per trial and per workload baseline: arming (BPF loads are slow under TCG) and accounting.
const PER_TRIAL_S: u64 = 30;

/// What `run --vm` was asked for besides the matrix and the shard.
pub struct GuestMatrixRun<'a> {
    pub guest: &'a GuestArgs,
    /// `--out`: where the guest's output directory comes back to.
    pub out: &'a Path,
    pub resume: bool,
    pub keep_going: bool,
    /// `--eaudit-dir`: the eAudit checkout, for matrices with the eaudit collector.
    pub eaudit_dir: Option<&'a Path>,
}

/// Runs `shard` of `matrix` in guests, one boot after another (`boots` in the matrix), and
/// returns the last failing guest command's exit status, or 0. Boots whose trials `--out`
/// already holds are not booted again.
pub fn run(args: &GuestMatrixRun<'_>, matrix: &Matrix, shard: Shard) -> Result<i32> {
    let spec = guest_spec(args, matrix, shard)?;
    let boots = matrix.file.boots;
    let mut status = 0;
    for boot in 0..boots {
        let missing = missing_trials(args.out, matrix, shard, boot)?;
        if missing == 0 {
            // A set measured before the per-boot files existed gets them on a rerun.
            if boots > 1 {
                write_boot_file(args.out, boot)?;
            }
            crate::say!(
                "vm: boot {}/{boots} is complete in {}",
                boot + 1,
                args.out.display()
            );
            continue;
        }
        let code = run_boot(args, &spec, shard, (boot, boots), missing)?;
        if boots > 1 {
            write_boot_file(args.out, boot)?;
        }
        if code != 0 {
            status = code;
            if !args.keep_going {
                break;
            }
        }
    }
    Ok(status)
}

/// Writes the trials of `boot` that `out` holds to `out/bootB.jsonl`, as they are in
/// `trials.jsonl`: the boot is the unit of replication, and its file can be read, compared or
/// merged on its own.
fn write_boot_file(out: &Path, boot: u32) -> Result<()> {
    let all = out.join(crate::export::jsonl::FILE_NAME);
    let Ok(text) = std::fs::read_to_string(&all) else {
        // The guest wrote nothing (it failed before the first trial).
        return Ok(());
    };
    let marker = format!("/boot{boot}/");
    let mut lines = String::new();
    for line in text.lines() {
        let trial: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("reading {}", all.display()))?;
        if trial["trial_id"]
            .as_str()
            .is_some_and(|id| id.contains(&marker))
        {
            lines.push_str(line);
            lines.push('\n');
        }
    }
    let path = out.join(boot_file_name(boot));
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))
}

/// `bootB.jsonl`.
pub fn boot_file_name(boot: u32) -> String {
    format!("boot{boot}.jsonl")
}

/// The guest every boot of the run uses: its timeout (for one boot's trials), the
/// workloads' tools, the sched_ext schedulers and the matrix.
fn guest_spec(args: &GuestMatrixRun<'_>, matrix: &Matrix, shard: Shard) -> Result<GuestSpec> {
    for name in &matrix.file.workloads {
        if name != "none" && !GUEST_WORKLOADS.contains(&name.as_str()) {
            return Err(InputError(format!(
                "workload {name} cannot run in a guest (its tools need more than their \
                 binaries); with --vm use none, {}",
                GUEST_WORKLOADS.join(", ")
            ))
            .into());
        }
    }
    let plans = matrix.plans(true)?;
    let trials: u64 = plans.iter().map(|p| p.trials().len() as u64).sum();
    let boot_trials = trials.div_ceil(u64::from(shard.count) * u64::from(matrix.file.boots));
    let workloads = matrix
        .file
        .workloads
        .iter()
        .filter(|w| *w != "none")
        .count() as u64;
    // One baseline per scheduler, workload and repetition.
    let baselines =
        matrix.file.schedulers.len() as u64 * workloads * u64::from(matrix.file.repetitions);
    let per_trial_s = 3 * matrix.file.duration_s.ceil() as u64 + PER_TRIAL_S;
    // eAudit trials also wait for BCC to compile its program.
    let eaudit_share = matrix
        .file
        .collectors
        .iter()
        .filter(|c| *c == "eaudit")
        .count() as u64;
    let eaudit_s = boot_trials * eaudit_share / matrix.file.collectors.len().max(1) as u64
        * super::attack::EAUDIT_START_S;
    let timeout_s = BASE_TIMEOUT_S + (boot_trials + baselines) * per_trial_s + eaudit_s;
    let mut spec = args.guest.spec(timeout_s)?;
    spec.timeout_hint = format!(
        "`run --vm` allowed {timeout_s} s for {boot_trials} trial(s) of a boot; split the \
         matrix with --shard, or continue with --resume"
    );
    for plan in &plans {
        for name in &plan.workloads {
            for path in crate::run::workload::tool_paths(name)? {
                if !spec.extra_binaries.contains(&path) {
                    spec.extra_binaries.push(path);
                }
            }
        }
    }
    let collectors = matrix
        .file
        .collectors
        .iter()
        .map(|name| crate::collector::CollectorKind::parse(name))
        .collect::<Result<Vec<_>, _>>()?;
    spec.add_collectors(&collectors, args.eaudit_dir)?;
    let facts = spec.kernel.facts();
    for entry in &matrix.file.schedulers {
        if let crate::sched::SchedulerSpec::SchedExt { binary, .. } =
            crate::sched::parse(entry.name(), &facts)?
        {
            if !spec.extra_binaries.contains(&binary) {
                spec.extra_binaries.push(binary);
            }
        }
    }
    spec.files_in
        .push((GUEST_MATRIX.to_string(), matrix.text.clone().into_bytes()));
    Ok(spec)
}

/// Trials of `boot` in this shard that `out` does not hold yet.
fn missing_trials(out: &Path, matrix: &Matrix, shard: Shard, boot: u32) -> Result<usize> {
    let plans = matrix.plans(true)?;
    let planned: Vec<String> = run_order(&plans, matrix.file.order_seed)
        .into_iter()
        .enumerate()
        .filter(|(position, p)| shard.owns(*position) && p.spec.boot == boot)
        .map(|(_, p)| p.id)
        .collect();
    let trials_file = out.join(crate::export::jsonl::FILE_NAME);
    let done: BTreeSet<String> = if trials_file.is_file() {
        crate::export::json::read(&trials_file)?
            .into_iter()
            .map(|t| t.id.trial_id)
            .collect()
    } else {
        BTreeSet::new()
    };
    Ok(planned.iter().filter(|id| !done.contains(*id)).count())
}

/// Boots one guest for boot `boot` of `boots`, with what `--out` holds so far, and returns its
/// command's exit status. The host has already checked the revision (`--allow-dirty`).
fn run_boot(
    args: &GuestMatrixRun<'_>,
    spec: &GuestSpec,
    shard: Shard,
    (boot, boots): (u32, u32),
    missing: usize,
) -> Result<i32> {
    let mut spec = spec.clone();
    // Resuming, or a later boot: the finished trials go in, so the guest skips them.
    let resume = args.out.join(crate::export::jsonl::FILE_NAME).is_file();
    if resume && args.out.is_dir() {
        for entry in std::fs::read_dir(args.out)? {
            let path = entry?.path();
            if path.is_file() {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                spec.files_in
                    .push((format!("{GUEST_OUT}/{name}"), std::fs::read(&path)?));
            }
        }
    }
    let mut guest_args: Vec<String> = [
        "run",
        "--matrix",
        GUEST_MATRIX,
        "--out",
        GUEST_OUT,
        "--allow-dirty",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if resume {
        guest_args.push("--resume".into());
    }
    if args.keep_going {
        guest_args.push("--keep-going".into());
    }
    if shard != Shard::WHOLE {
        guest_args.push("--shard".into());
        guest_args.push(shard.to_string());
    }
    if boots > 1 {
        guest_args.push("--boot".into());
        guest_args.push(boot.to_string());
    }
    crate::say!(
        "vm: boot {}/{boots}: running `aegis-bench {}` in a {} guest ({missing} trial(s))",
        boot + 1,
        shell_words::join(&guest_args),
        spec.kernel.name()
    );
    run_in_guest(
        &spec,
        &guest_args,
        &[(GUEST_OUT.into(), args.out.to_path_buf())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_boot_gets_a_file_of_its_own_trials() {
        let out = std::env::temp_dir().join(format!("aegis-boot-files-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let trial = |boot: u32, rep: u32| {
            format!(r#"{{"trial_id":"openat/aegis/builtin/16KiB/x8/none/boot{boot}/rep{rep}"}}"#)
        };
        let lines = [trial(0, 0), trial(1, 0), trial(0, 1), trial(10, 0)];
        std::fs::write(out.join("trials.jsonl"), lines.join("\n") + "\n").unwrap();
        write_boot_file(&out, 0).unwrap();
        write_boot_file(&out, 1).unwrap();
        let read = |boot| std::fs::read_to_string(out.join(boot_file_name(boot))).unwrap();
        assert_eq!(read(0), format!("{}\n{}\n", trial(0, 0), trial(0, 1)));
        // boot1 is not boot10.
        assert_eq!(read(1), format!("{}\n", trial(1, 0)));
        std::fs::remove_dir_all(out).unwrap();
    }
}
