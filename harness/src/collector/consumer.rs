//! The built-in collector's process (`aegis-bench collect`): loads `collector.bpf.c`, consumes
//! its ring buffer, decodes every record and appends it to the provenance log. Under
//! `--trace-scope all` it reuses ground truth's scope maps ([`SharedScope`]) and counts what it
//! received and dropped of each group.
//!
//! Protocol with the harness: prints `ready` on stdout once attached; on SIGTERM or SIGINT it
//! drains what the ring still holds, writes its [`CollectorStats`] as JSON (atomically) and
//! exits 0.

use std::io::Write;
use std::mem::MaybeUninit;
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use scheduler::sim::LatencyHistogram;

use super::ring::{self, PinnedRing, RingConsumer};
use super::{CollectorStats, SharedScope};
use crate::bpf_intf::{traced_syscall_table, GROUP_ATTACK, MAX_SYSCALL_NR, NR_GROUPS};
use crate::provlog::{LogWriter, ProvEvent};
use crate::skel::collector::CollectorSkelBuilder;
use crate::skel::collector_lsm::CollectorLsmSkelBuilder;

/// What `aegis-bench collect` is asked to do (either architecture).
pub struct ConsumerConfig {
    pub cgroup_id: u64,
    pub ring_bytes: u64,
    pub log: PathBuf,
    pub stats: PathBuf,
    /// Pin the ring buffer map here (bpffs) so a scheduler (scx_aegis) can read its fill.
    pub pin_ring: Option<PathBuf>,
    /// `--trace-scope all`: ground truth's maps to trace the whole machine with.
    pub scope: Option<SharedScope>,
}

/// Decodes records and writes the log; shared by the ring-buffer callback and the benchmark.
pub struct Consumer<W: Write> {
    log: LogWriter<W>,
    /// The attack's records by syscall number.
    received_by_syscall: Box<[u64; MAX_SYSCALL_NR]>,
    /// Records by group (`enum trace_group`).
    received_by_group: [u64; NR_GROUPS],
    /// Records of every group.
    pub received: u64,
    pub decode_errors: u64,
    pub io_error: Option<std::io::Error>,
    /// Set before each poll: the next record is the first of a batch.
    batch_pending: bool,
    /// Age of the first record of each batch when it was read: how long the first event into
    /// an empty ring waited for the collector (the simulator's wakeup latency).
    wakeup_ages: LatencyHistogram,
    /// Records read so far in the current batch.
    batch_records: u32,
    /// When the clock was last read in the current batch.
    last_read_ns: u64,
    /// Gaps over [`STALL_MIN_NS`] between two clock reads of one batch: the collector stopped
    /// reading (preempted, blocked writing its log) while records waited in the ring.
    stalls: LatencyHistogram,
}

/// A gap longer than this between two clock reads of one batch counts as a stall (the
/// [`STALL_CHECK_EVERY`] records between them take a few microseconds to read and log, some
/// tens in a debug build; what overflows a 64 KiB ring under a flood is 0.2 ms and up).
const STALL_MIN_NS: u64 = 100_000;

/// Records between two clock reads within a batch: reading CLOCK_MONOTONIC costs about as much
/// as decoding a record, so it is not done for each (`cargo bench --bench consumer`).
const STALL_CHECK_EVERY: u32 = 16;

impl<W: Write> Consumer<W> {
    pub fn new(log: LogWriter<W>) -> Self {
        Self {
            log,
            received_by_syscall: Box::new([0; MAX_SYSCALL_NR]),
            received_by_group: [0; NR_GROUPS],
            received: 0,
            decode_errors: 0,
            io_error: None,
            batch_pending: false,
            wakeup_ages: LatencyHistogram::default(),
            batch_records: 0,
            last_read_ns: 0,
            stalls: LatencyHistogram::default(),
        }
    }

    pub fn finish(self) -> Result<(W, CollectorStats)> {
        if let Some(err) = self.io_error {
            return Err(err).context("writing the provenance log");
        }
        let out = self.log.finish().context("flushing the provenance log")?;
        let stats = CollectorStats {
            received: self.received_by_group[GROUP_ATTACK as usize],
            by_group: Some(ring::tallies(&self.received_by_group, [0; NR_GROUPS])),
            received_by_syscall: ring::by_syscall(&self.received_by_syscall),
            decode_errors: self.decode_errors,
            wakeup_age_histogram: Some(self.wakeup_ages).filter(|h| !h.is_empty()),
            stall_histogram: Some(self.stalls).filter(|h| !h.is_empty()),
            ..CollectorStats::default()
        };
        Ok((out, stats))
    }
}

impl<W: Write> RingConsumer for Consumer<W> {
    /// The next record consumed starts a batch (called before each poll).
    fn start_batch(&mut self) {
        self.batch_pending = true;
        self.batch_records = 0;
    }

    /// Records read from now on are outside any timed batch (the final drain).
    fn stop_timing(&mut self) {
        self.batch_pending = false;
        self.last_read_ns = 0;
    }

    /// Handles one ring-buffer record.
    #[inline]
    fn consume(&mut self, raw: &[u8]) {
        match ProvEvent::decode(raw) {
            Ok(event) => {
                if self.batch_pending {
                    // Records carry bpf_ktime_get_ns(), CLOCK_MONOTONIC.
                    let now = monotonic_now_ns();
                    self.batch_pending = false;
                    if now >= event.ts_ns {
                        self.wakeup_ages.record(now - event.ts_ns);
                    }
                    self.last_read_ns = now;
                } else if self.batch_records % STALL_CHECK_EVERY == 0 && self.last_read_ns > 0 {
                    let now = monotonic_now_ns();
                    if now.saturating_sub(self.last_read_ns) > STALL_MIN_NS {
                        self.stalls.record(now - self.last_read_ns);
                    }
                    self.last_read_ns = now;
                }
                self.batch_records = self.batch_records.wrapping_add(1);
                if let Err(err) = self.log.append(&event) {
                    self.io_error.get_or_insert(err);
                }
                self.received += 1;
                self.received_by_group[event.group as usize] += 1;
                if event.group == GROUP_ATTACK {
                    if let Some(count) = self.received_by_syscall.get_mut(event.syscall_nr as usize)
                    {
                        *count += 1;
                    }
                }
            }
            Err(_) => self.decode_errors += 1,
        }
    }

    fn progress(&self) -> u64 {
        self.received
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock of bpf_ktime_get_ns()).
fn monotonic_now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
    })
}

/// Runs the collector until SIGTERM/SIGINT.
pub fn run(config: &ConsumerConfig) -> Result<()> {
    crate::signals::install()?;
    let mut object = MaybeUninit::uninit();
    let mut open = CollectorSkelBuilder::default()
        .open(&mut object)
        .context("opening the collector BPF object")?;
    {
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("collector BPF object has no .rodata")?;
        rodata.target_cgroup_id = config.cgroup_id;
        rodata.traced_syscalls = traced_syscall_table();
        rodata.trace_all = config.scope.is_some() as u8;
    }
    open.maps
        .events
        .set_max_entries(config.ring_bytes as u32)
        .context("sizing the ring buffer")?;
    if let Some(scope) = &config.scope {
        scope.reuse(&mut open.maps.scope_state, &mut open.maps.scope_groups)?;
    }
    let mut skel = open.load().context("loading the collector BPF program")?;
    let _pin = PinnedRing::pin(&mut skel.maps.events, config.pin_ring.as_deref())?;
    skel.attach()
        .context("attaching the collector to raw_syscalls/sys_enter")?;
    let drained = drain(&skel.maps.events, &skel.maps.dropped_events, config)?;
    drop(skel);
    drained.finish(config)
}

/// Runs the collector at the BPF-LSM hooks (`builtin-lsm`) until SIGTERM/SIGINT: the same
/// records, ring and log as [`run`], written by `collector_lsm.bpf.c`.
pub fn run_lsm(config: &ConsumerConfig) -> Result<()> {
    crate::signals::install()?;
    let mut object = MaybeUninit::uninit();
    let mut open = CollectorLsmSkelBuilder::default()
        .open(&mut object)
        .context("opening the LSM collector BPF object")?;
    open.maps
        .rodata_data
        .as_deref_mut()
        .context("LSM collector BPF object has no .rodata")?
        .target_cgroup_id = config.cgroup_id;
    open.maps
        .events
        .set_max_entries(config.ring_bytes as u32)
        .context("sizing the ring buffer")?;
    let mut skel = open
        .load()
        .context("loading the LSM collector BPF programs (needs BPF-LSM and BTF)")?;
    let _pin = PinnedRing::pin(&mut skel.maps.events, config.pin_ring.as_deref())?;
    skel.attach()
        .context("attaching the collector to the BPF-LSM hooks")?;
    let drained = drain(&skel.maps.events, &skel.maps.dropped_events, config)?;
    drop(skel);
    drained.finish(config)
}

/// What one run read from its ring, before its BPF object is detached.
struct Drained {
    consumer: Consumer<std::io::BufWriter<std::fs::File>>,
    served: ring::Served,
    dropped: [u64; NR_GROUPS],
    scoped: bool,
}

/// Serves the ring into the log until SIGTERM/SIGINT and reads the drop counters.
fn drain(
    events: &libbpf_rs::MapMut<'_>,
    dropped_events: &libbpf_rs::MapMut<'_>,
    config: &ConsumerConfig,
) -> Result<Drained> {
    let consumer = Consumer::new(LogWriter::create(&config.log)?);
    let (consumer, served) = ring::serve(events, consumer, || Ok(()))?;
    Ok(Drained {
        consumer,
        served,
        dropped: ring::dropped_by_group(dropped_events)?,
        scoped: config.scope.is_some(),
    })
}

impl Drained {
    /// Flushes the log and writes the statistics.
    fn finish(self, config: &ConsumerConfig) -> Result<()> {
        let (log_file, mut stats) = self.consumer.finish()?;
        ring::add_drops(&mut stats, self.dropped, self.scoped);
        let log_file = log_file.into_inner().map_err(|err| err.into_error())?;
        log_file.sync_all().ok();
        stats.log_bytes = log_file.metadata()?.len();
        ring::write_stats(stats, &self.served, &config.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf_intf::{offset, EVENT_HEADER_BYTES};

    /// A close record stamped `ts_ns`.
    fn record(ts_ns: u64) -> Vec<u8> {
        let mut raw = vec![0u8; EVENT_HEADER_BYTES];
        raw[offset::TS_NS..][..8].copy_from_slice(&ts_ns.to_le_bytes());
        raw[offset::SYSCALL_NR..][..4].copy_from_slice(&(libc::SYS_close as u32).to_le_bytes());
        raw
    }

    #[test]
    fn the_first_record_of_each_batch_gives_the_wakeup_latency() {
        let mut consumer = Consumer::new(LogWriter::new(Vec::new()).unwrap());
        // A batch whose first record was written 3 ms ago, then one written 50 us ago.
        for age_ns in [3_000_000, 50_000] {
            consumer.start_batch();
            for _ in 0..40 {
                consumer.consume(&record(monotonic_now_ns() - age_ns));
            }
        }
        // The final drain is not a batch: nothing timed there.
        consumer.stop_timing();
        consumer.consume(&record(1));
        let (_, stats) = consumer.finish().unwrap();
        assert_eq!(stats.received, 81);
        let ages = stats.wakeup_age_histogram.expect("batch ages");
        assert_eq!(ages.count(), 2);
        assert!(ages.quantile_ns(0.0) >= 45_000 && ages.quantile_ns(0.0) < 1_000_000);
        assert!(ages.quantile_ns(1.0) >= 2_700_000, "{ages:?}");
        // Reading 40 records in a row stalls nowhere.
        assert!(
            stats.stall_histogram.is_none(),
            "{:?}",
            stats.stall_histogram
        );
    }

    #[test]
    fn a_pause_inside_a_batch_is_a_stall() {
        let mut consumer = Consumer::new(LogWriter::new(Vec::new()).unwrap());
        consumer.start_batch();
        for i in 0..2 * STALL_CHECK_EVERY {
            if i == STALL_CHECK_EVERY / 2 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            consumer.consume(&record(monotonic_now_ns()));
        }
        let (_, stats) = consumer.finish().unwrap();
        let stalls = stats.stall_histogram.expect("one stall");
        assert_eq!(stalls.count(), 1);
        assert!(stalls.quantile_ns(1.0) >= 1_800_000, "{stalls:?}");
    }
}
