//! The hidden subcommands the harness starts as its child processes: `collect` (the built-in
//! collector), `attack-worker` (the attack) and `workload-worker` (a standard workload). The
//! two workers join their own cgroups, so that the harness counts them apart.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{CollectArgs, WorkerArgs, WorkloadWorkerArgs};
use crate::collector::consumer::{self, ConsumerConfig};
use crate::collector::SharedScope;
use crate::error::InputError;

/// `collect`: the built-in collector, full, compact or at the LSM hooks, until SIGTERM or
/// SIGINT.
pub fn collect(args: &CollectArgs) -> Result<()> {
    let config = ConsumerConfig {
        cgroup_id: args.cgroup_id,
        ring_bytes: args.ring_bytes,
        log: args.log.clone(),
        stats: args.stats.clone(),
        pin_ring: args.pin_ring.clone(),
        scope: args.scope_state_map_id.zip(args.scope_groups_map_id).map(
            |(state_map_id, groups_map_id)| SharedScope {
                state_map_id,
                groups_map_id,
            },
        ),
    };
    if args.compact {
        crate::collector::compact::run(&config)
    } else if args.lsm {
        consumer::run_lsm(&config)
    } else {
        consumer::run(&config)
    }
}

/// `attack-worker`: floods (or runs `--cmd`) until the duration is up; returns only on error.
pub fn attack_worker(args: WorkerArgs) -> Result<()> {
    let duration = worker_duration(args.duration)?;
    let config = attacks::WorkerConfig {
        flood: args.flood.map(|kind| attacks::FloodSpec {
            kind,
            threads: args.threads,
            duration,
            count: args.count,
            rate_per_s: args.rate,
            evade: args.evade,
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

/// `workload-worker`: runs one standard workload for the duration and reports its output.
pub fn workload_worker(args: &WorkloadWorkerArgs) -> Result<()> {
    crate::run::workload::worker(
        &args.name,
        worker_duration(args.duration)?,
        &args.cgroup_procs,
        &args.report,
    )
}

/// The hidden workers' `--duration`: the harness passes a checked one, but these are
/// commands too, and a negative or NaN number would otherwise panic in `Duration`.
fn worker_duration(seconds: f64) -> Result<Duration> {
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(InputError(format!(
            "--duration must be a number of seconds from 0 to 86400, not {seconds}"
        ))
        .into());
    }
    Ok(Duration::from_secs_f64(seconds))
}
