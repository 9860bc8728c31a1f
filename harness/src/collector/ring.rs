//! Ring-buffer plumbing shared by the built-in collector's two architectures, the full one
//! ([`super::consumer`]) and the compact one ([`super::compact`]): the pinned ring, serving it
//! as the `aegis-bench collect` process does (`ready`, poll until SIGTERM/SIGINT, drain),
//! per-CPU BPF counters, and the process's own CPU use written into its statistics.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags, RingBuffer, RingBufferBuilder};

use super::CollectorStats;
use crate::bpf_intf::{GROUP_ATTACK, MAX_SYSCALL_NR, NR_GROUPS};
use crate::results::scope::{Tally, TraceGroup};

/// The ring buffer's pin, removed when the collector exits (on error too).
pub struct PinnedRing(Option<PathBuf>);

impl PinnedRing {
    pub fn pin(map: &mut libbpf_rs::MapMut<'_>, path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(PinnedRing(None));
        };
        map.pin(path)
            .with_context(|| format!("pinning the ring buffer at {}", path.display()))?;
        Ok(PinnedRing(Some(path.to_path_buf())))
    }
}

impl Drop for PinnedRing {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            std::fs::remove_file(path).ok();
        }
    }
}

/// What reads the ring: one record of the full architecture, or one batch of the compact one,
/// per [`RingConsumer::consume`].
pub trait RingConsumer {
    fn consume(&mut self, raw: &[u8]);
    /// How much has been consumed so far; a poll that moves it is a wakeup.
    fn progress(&self) -> u64;
    /// Runs before each poll.
    fn start_batch(&mut self) {}
    /// Runs before the final drain, which is not a batch.
    fn stop_timing(&mut self) {}
}

/// What serving the ring measured.
pub struct Served {
    /// Polls that found something (the consumer's wakeups).
    pub wakeups: u64,
    at_ready: ProcessUsage,
    after_drain: ProcessUsage,
}

/// Serves the ring `events` with `consumer`: prints `ready`, polls until SIGTERM/SIGINT, runs
/// `flush` (to push out what the BPF side still holds), and drains what the ring holds.
/// Returns the consumer and what serving measured.
pub fn serve<C: RingConsumer>(
    events: &libbpf_rs::MapMut<'_>,
    consumer: C,
    flush: impl FnOnce() -> Result<()>,
) -> Result<(C, Served)> {
    let consumer = RefCell::new(consumer);
    let mut builder = RingBufferBuilder::new();
    builder.add(events, |raw: &[u8]| {
        consumer.borrow_mut().consume(raw);
        0
    })?;
    let ring = builder.build()?;
    println!("ready");
    std::io::stdout().flush()?;
    let at_ready = ProcessUsage::now()?;

    let wakeups = poll_until_stopped(&ring, &consumer)?;
    // Everything reserved before the attack stopped is in the ring (or, flushed, will be).
    consumer.borrow_mut().stop_timing();
    flush()?;
    ring.consume().context("draining the ring buffer")?;
    let after_drain = ProcessUsage::now()?;
    drop(ring);
    let served = Served {
        wakeups,
        at_ready,
        after_drain,
    };
    Ok((consumer.into_inner(), served))
}

/// Polls the ring buffer until SIGTERM/SIGINT; returns how many polls found something.
fn poll_until_stopped(ring: &RingBuffer<'_>, consumer: &RefCell<impl RingConsumer>) -> Result<u64> {
    let mut wakeups = 0u64;
    while crate::signals::received().is_none() {
        let before = consumer.borrow().progress();
        consumer.borrow_mut().start_batch();
        match ring.poll(Duration::from_millis(100)) {
            Ok(()) => {}
            // EINTR: the stop signal arrived during epoll_wait.
            Err(_) if crate::signals::received().is_some() => break,
            Err(err) => return Err(err).context("polling the ring buffer"),
        }
        if consumer.borrow().progress() > before {
            wakeups += 1;
        }
    }
    Ok(wakeups)
}

/// Completes a consumer's statistics with the wakeups and the process's CPU use, and writes
/// them as JSON to `path`, where the harness reads them.
pub fn write_stats(mut stats: CollectorStats, served: &Served, path: &Path) -> Result<()> {
    stats.wakeups = served.wakeups;
    served
        .after_drain
        .record_consuming_since(&served.at_ready, &mut stats);
    fill_cpu_usage(&mut stats)?;
    crate::files::write_json_atomically(path, &stats)
}

/// Entry `index` of a per-CPU array of u64, summed over CPUs.
pub fn sum_per_cpu_counter(map: &libbpf_rs::MapMut<'_>, index: u32) -> Result<u64> {
    let per_cpu = map
        .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)?
        .context("drop counter missing")?;
    Ok(per_cpu
        .iter()
        .map(|value| u64::from_ne_bytes(value[..8].try_into().unwrap()))
        .sum())
}

/// The BPF drop counters (`dropped_events`), by group.
pub fn dropped_by_group(map: &libbpf_rs::MapMut<'_>) -> Result<[u64; NR_GROUPS]> {
    let mut dropped = [0; NR_GROUPS];
    for (group, count) in dropped.iter_mut().enumerate() {
        *count = sum_per_cpu_counter(map, group as u32)?;
    }
    Ok(dropped)
}

/// Received and dropped by group, from per-group counts.
pub fn tallies(
    received: &[u64; NR_GROUPS],
    dropped: [u64; NR_GROUPS],
) -> BTreeMap<TraceGroup, Tally> {
    TraceGroup::ALL
        .iter()
        .map(|group| {
            let i = group.index();
            let tally = Tally {
                received: received[i],
                dropped: dropped[i],
            };
            (*group, tally)
        })
        .collect()
}

/// Puts the drops counted in BPF into a consumer's statistics (whose `by_group` holds what it
/// received of each group): `dropped` is the attack's, and `by_group` is kept under
/// `--trace-scope all` (`scoped`) only.
pub fn add_drops(stats: &mut CollectorStats, dropped: [u64; NR_GROUPS], scoped: bool) {
    stats.dropped = dropped[GROUP_ATTACK as usize];
    stats.by_group = match stats.by_group.take() {
        Some(received) if scoped => {
            let received = TraceGroup::ALL.map(|g| received.get(&g).map_or(0, |t| t.received));
            Some(tallies(&received, dropped))
        }
        _ => None,
    };
}

/// Records received, by syscall number, without the syscalls never seen.
pub fn by_syscall(counts: &[u64; MAX_SYSCALL_NR]) -> BTreeMap<u32, u64> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(nr, count)| (nr as u32, *count))
        .collect()
}

/// The collector process's use of the CPU so far, from getrusage.
#[derive(Clone, Copy, Debug)]
struct ProcessUsage {
    /// User + system CPU seconds.
    cpu_s: f64,
    /// Voluntary context switches (it slept).
    sleeps: u64,
    /// Involuntary context switches (it was preempted).
    preemptions: u64,
}

impl ProcessUsage {
    fn now() -> Result<ProcessUsage> {
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
        Ok(ProcessUsage {
            cpu_s: rusage_seconds(*usage.user_time().as_ref())
                + rusage_seconds(*usage.system_time().as_ref()),
            sleeps: usage.voluntary_context_switches() as u64,
            preemptions: usage.involuntary_context_switches() as u64,
        })
    }

    /// Records what was used since `start` as the consuming's share in `stats`.
    fn record_consuming_since(&self, start: &ProcessUsage, stats: &mut CollectorStats) {
        stats.consuming_cpu_s = Some(self.cpu_s - start.cpu_s);
        stats.consuming_sleeps = Some(self.sleeps.saturating_sub(start.sleeps));
        stats.consuming_preemptions = Some(self.preemptions.saturating_sub(start.preemptions));
    }
}

/// The collector process's own CPU time, from getrusage.
fn fill_cpu_usage(stats: &mut CollectorStats) -> Result<()> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    stats.cpu_user_s = rusage_seconds(*usage.user_time().as_ref());
    stats.cpu_system_s = rusage_seconds(*usage.system_time().as_ref());
    Ok(())
}

fn rusage_seconds(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}
