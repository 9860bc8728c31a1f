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
use crate::bpf_intf::MAX_SYSCALL_NR;

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

/// Completes a consumer's statistics with `dropped` (counted in BPF), the wakeups and the
/// process's CPU use, and writes them as JSON to `path`, where the harness reads them.
pub fn write_stats(
    mut stats: CollectorStats,
    served: &Served,
    dropped: u64,
    path: &Path,
) -> Result<()> {
    stats.dropped = dropped;
    stats.wakeups = served.wakeups;
    served
        .after_drain
        .record_consuming_since(&served.at_ready, &mut stats);
    fill_cpu_usage(&mut stats)?;
    crate::files::write_json_atomically(path, &stats)
}

/// A one-entry per-CPU array of u64, summed over CPUs.
pub fn sum_per_cpu_counter(map: &libbpf_rs::MapMut<'_>) -> Result<u64> {
    let per_cpu = map
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)?
        .context("drop counter missing")?;
    Ok(per_cpu
        .iter()
        .map(|value| u64::from_ne_bytes(value[..8].try_into().unwrap()))
        .sum())
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
