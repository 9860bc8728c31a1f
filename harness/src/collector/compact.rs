//! The built-in collector's compact architecture (`--collector builtin-compact`), eAudit-like:
//! see `bpf/collector_compact.bpf.c` for the kernel side and [`crate::provlog::compact`] for
//! the log format. User space receives whole batches, appends them to the log as they are (no
//! re-encoding), and reads each record's framing once to count it (by group under
//! `--trace-scope all`), and the batches' sequence numbers to detect lost batches itself.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::ProgramInput;

use super::consumer::ConsumerConfig;
use super::ring::{self, PinnedRing, RingConsumer};
use super::CollectorStats;
use crate::bpf_intf::{traced_syscall_table, GROUP_ATTACK, MAX_SYSCALL_NR, NR_GROUPS};
use crate::provlog::compact::{count_records, BatchHeader, MAGIC};
use crate::skel::collector_compact::CollectorCompactSkelBuilder;

/// Syscalls whose records are flushed and delivered at once: the actions an attacker hides.
pub const IMPORTANT: &[libc::c_long] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_connect,
];

/// Per-CPU sequence tracking: what user space can tell about loss on its own.
#[derive(Default)]
struct SequenceCheck {
    next_event_seq: HashMap<u16, u64>,
    gap_events: u64,
}

impl SequenceCheck {
    fn observe(&mut self, header: &BatchHeader) {
        let expected = self.next_event_seq.entry(header.cpu).or_insert(0);
        if header.first_event_seq > *expected {
            self.gap_events += header.first_event_seq - *expected;
        }
        *expected = header.first_event_seq + header.nr_records as u64;
    }
}

/// Consumes batches: appends them to the log and counts their records.
pub struct CompactConsumer<W: Write> {
    out: W,
    sequence: SequenceCheck,
    /// The attack's records by syscall number.
    received_by_syscall: Box<[u64; MAX_SYSCALL_NR]>,
    /// Records by group (`enum trace_group`).
    received_by_group: [u64; NR_GROUPS],
    /// Records of every group.
    pub received: u64,
    pub batches: u64,
    pub decode_errors: u64,
    pub io_error: Option<io::Error>,
}

impl<W: Write> CompactConsumer<W> {
    pub fn new(mut out: W, cgroup_id: u64) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&cgroup_id.to_le_bytes())?;
        Ok(Self {
            out,
            sequence: SequenceCheck::default(),
            received_by_syscall: Box::new([0; MAX_SYSCALL_NR]),
            received_by_group: [0; NR_GROUPS],
            received: 0,
            batches: 0,
            decode_errors: 0,
            io_error: None,
        })
    }

    pub fn finish(mut self) -> Result<(W, CollectorStats)> {
        if let Some(err) = self.io_error.take() {
            return Err(err).context("writing the compact provenance log");
        }
        self.out.flush()?;
        let stats = CollectorStats {
            received: self.received_by_group[GROUP_ATTACK as usize],
            by_group: Some(ring::tallies(&self.received_by_group, [0; NR_GROUPS])),
            received_by_syscall: ring::by_syscall(&self.received_by_syscall),
            decode_errors: self.decode_errors,
            self_detected_lost: Some(self.sequence.gap_events),
            ..CollectorStats::default()
        };
        Ok((self.out, stats))
    }
}

impl<W: Write> RingConsumer for CompactConsumer<W> {
    /// Counts the batch's records (reading only what counting and validation need) and
    /// appends the batch to the log as it is.
    #[inline]
    fn consume(&mut self, batch: &[u8]) {
        // A corrupt batch is not received, in any group.
        let mut groups = [0; NR_GROUPS];
        match count_records(batch, &mut self.received_by_syscall, &mut groups) {
            Ok(header) => {
                self.sequence.observe(&header);
                self.received += header.nr_records as u64;
                for (total, count) in self.received_by_group.iter_mut().zip(groups) {
                    *total += count;
                }
                self.batches += 1;
                if let Err(err) = self.out.write_all(batch) {
                    self.io_error.get_or_insert(err);
                }
            }
            Err(_) => self.decode_errors += 1,
        }
    }

    fn progress(&self) -> u64 {
        self.batches
    }
}

/// Runs the compact collector until SIGTERM/SIGINT (see `consumer::run` for the protocol).
pub fn run(config: &ConsumerConfig) -> Result<()> {
    crate::signals::install()?;
    let nr_cpus = libbpf_rs::num_possible_cpus()? as u32;
    let mut object = MaybeUninit::uninit();
    let mut open = CollectorCompactSkelBuilder::default()
        .open(&mut object)
        .context("opening the compact collector BPF object")?;
    {
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("compact collector BPF object has no .rodata")?;
        rodata.target_cgroup_id = config.cgroup_id;
        rodata.traced_syscalls = traced_syscall_table();
        for nr in IMPORTANT {
            rodata.important_syscalls[*nr as usize] = 1;
        }
        rodata.nr_cpus = nr_cpus;
        rodata.trace_all = config.scope.is_some() as u8;
    }
    open.maps
        .events
        .set_max_entries(config.ring_bytes as u32)
        .context("sizing the ring buffer")?;
    if let Some(scope) = &config.scope {
        scope.reuse(&mut open.maps.scope_state, &mut open.maps.scope_groups)?;
    }
    let mut skel = open
        .load()
        .context("loading the compact collector BPF program")?;
    let _pin = PinnedRing::pin(&mut skel.maps.events, config.pin_ring.as_deref())?;
    skel.attach()
        .context("attaching the compact collector to raw_syscalls/sys_enter")?;

    let log = BufWriter::with_capacity(1 << 20, File::create(&config.log)?);
    let consumer = CompactConsumer::new(log, config.cgroup_id)?;
    // The attack is over: flush every CPU's partial batch before the drain.
    let flush = || {
        let mut context = [0u8; 8];
        skel.progs
            .aegis_compact_flush
            .test_run(ProgramInput {
                context_in: Some(&mut context),
                ..Default::default()
            })
            .context("flushing the per-CPU batches (BPF_PROG_TEST_RUN)")?;
        Ok(())
    };
    let (consumer, served) = ring::serve(&skel.maps.events, consumer, flush)?;
    let dropped = ring::dropped_by_group(&skel.maps.dropped_events)?;
    let forced_wakeups = skel
        .maps
        .bss_data
        .as_ref()
        .map_or(0, |bss| bss.nr_forced_wakeups);
    drop(skel);

    let (log, mut stats) = consumer.finish()?;
    ring::add_drops(&mut stats, dropped, config.scope.is_some());
    let log = log.into_inner().map_err(|err| err.into_error())?;
    stats.log_bytes = log.metadata()?.len();
    stats.forced_wakeups = Some(forced_wakeups);
    ring::write_stats(stats, &served, &config.stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provlog::compact::{read_log, test_batch};

    #[test]
    fn logs_batches_as_they_are_and_detects_gaps() {
        let mut consumer = CompactConsumer::new(Vec::new(), 5).unwrap();
        consumer.consume(&test_batch(0, 0, 0, &[b"/a", b"/bb"]));
        // Batch 1 of CPU 0 (events 2..5) was lost.
        consumer.consume(&test_batch(0, 2, 5, &[b"/ccc"]));
        consumer.consume(&test_batch(1, 0, 0, &[b"/d"]));
        let (log, stats) = consumer.finish().unwrap();
        assert_eq!(stats.received, 4);
        assert_eq!(stats.self_detected_lost, Some(3));
        assert_eq!(stats.received_by_syscall[&(libc::SYS_openat as u32)], 4);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, &log).unwrap();
        let mut paths = Vec::new();
        read_log(&path, |e| {
            paths.push(String::from_utf8_lossy(e.payload).into_owned())
        })
        .unwrap();
        assert_eq!(paths, ["/a", "/bb", "/ccc", "/d"]);
    }

    #[test]
    fn a_corrupt_batch_is_a_decode_error_and_not_logged() {
        let mut consumer = CompactConsumer::new(Vec::new(), 5).unwrap();
        let mut bad = test_batch(0, 0, 0, &[b"/a"]);
        bad[6] = 3; // claims three records
        consumer.consume(&bad);
        let (log, stats) = consumer.finish().unwrap();
        assert_eq!((stats.decode_errors, stats.received), (1, 0));
        assert_eq!(log.len(), 16);
    }
}
