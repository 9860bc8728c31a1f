//! `run --matrix --vm`: the matrix run in a guest.
//!
//! The matrix is validated on the host (everything but the scheduler names, which the guest's
//! kernel judges), then sent into the guest with the results so far when resuming. The guest
//! runs `aegis-bench run` on its copy and the output directory comes back to `--out`.

use std::path::Path;

use anyhow::Result;

use super::args::GuestArgs;
use super::attack::GUEST_WORKLOADS;
use super::run_in_guest;
use crate::error::InputError;
use crate::run::matrix::{Matrix, Shard};

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
}

/// Runs `shard` of `matrix` in a guest and returns the guest command's exit status.
pub fn run(args: &GuestMatrixRun<'_>, matrix: &Matrix, shard: Shard) -> Result<i32> {
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
    let shard_trials = trials.div_ceil(u64::from(shard.count));
    let workloads = matrix
        .file
        .workloads
        .iter()
        .filter(|w| *w != "none")
        .count() as u64;
    let baselines = matrix.file.schedulers.len() as u64 * workloads;
    let per_trial_s = 3 * matrix.file.duration_s.ceil() as u64 + PER_TRIAL_S;
    let timeout_s = BASE_TIMEOUT_S + (shard_trials + baselines) * per_trial_s;
    let mut spec = args.guest.spec(timeout_s)?;
    spec.timeout_hint = format!(
        "`run --vm` allowed {timeout_s} s for {shard_trials} trial(s); split the matrix with \
         --shard, or continue with --resume"
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
    // Resuming: the finished trials go in, so the guest skips them.
    if args.resume && args.out.is_dir() {
        for entry in std::fs::read_dir(args.out)? {
            let path = entry?.path();
            if path.is_file() {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                spec.files_in
                    .push((format!("{GUEST_OUT}/{name}"), std::fs::read(&path)?));
            }
        }
    }
    let mut guest_args: Vec<String> = ["run", "--matrix", GUEST_MATRIX, "--out", GUEST_OUT]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if args.resume {
        guest_args.push("--resume".into());
    }
    if args.keep_going {
        guest_args.push("--keep-going".into());
    }
    if shard != Shard::WHOLE {
        guest_args.push("--shard".into());
        guest_args.push(shard.to_string());
    }
    crate::say!(
        "vm: running `aegis-bench {}` in a {} guest ({shard_trials} trial(s))",
        shell_words::join(&guest_args),
        spec.kernel.name()
    );
    run_in_guest(
        &spec,
        &guest_args,
        &[(GUEST_OUT.into(), args.out.to_path_buf())],
    )
}
