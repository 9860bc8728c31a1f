//! The built-in collector's compact architecture (`--collector builtin-compact`), eAudit-like:
//! see `bpf/collector_compact.bpf.c` for the kernel side. User space receives whole batches,
//! appends them to the log as they are (no re-encoding), and decodes each record once to
//! count it and to check the sequence numbers, so it detects lost batches itself.
//!
//! # Log format (little-endian)
//! ```text
//! file   := "AEGCMPT1" cgroup_id:u64 batch*
//! batch  := bytes:u32 cpu:u16 nr_records:u16 batch_seq:u64 first_event_seq:u64 base_ts_ns:u64
//!           record{nr_records}                               (bytes counts the whole batch)
//! record := len:u16 syscall_nr:u16 pid:u32 tid:u32 ts_delta_ns:u32 arg0:u32
//!           payload_kind:u16 payload_len:u16 payload[payload_len] padding to len
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::mem::MaybeUninit;
use std::path::Path;
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{ProgramInput, RingBufferBuilder};

use super::consumer::{write_json_atomically, ConsumerConfig};
use super::CollectorStats;
use crate::bpf_intf::{traced_syscall_table, MAX_SYSCALL_NR};
use crate::provlog::{PayloadKind, ProvEvent};
use crate::skel::collector_compact::CollectorCompactSkelBuilder;

pub const MAGIC: &[u8; 8] = b"AEGCMPT1";
pub const BATCH_HEADER_BYTES: usize = 32;
pub const RECORD_HEADER_BYTES: usize = 24;

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

fn u16_at(raw: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(raw[at..at + 2].try_into().unwrap())
}
fn u32_at(raw: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(raw[at..at + 4].try_into().unwrap())
}
fn u64_at(raw: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(raw[at..at + 8].try_into().unwrap())
}

/// A batch header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub bytes: u32,
    pub cpu: u16,
    pub nr_records: u16,
    pub batch_seq: u64,
    pub first_event_seq: u64,
    pub base_ts_ns: u64,
}

impl BatchHeader {
    pub fn decode(raw: &[u8]) -> Result<Self> {
        if raw.len() < BATCH_HEADER_BYTES {
            bail!("batch of {} bytes is shorter than its header", raw.len());
        }
        Ok(BatchHeader {
            bytes: u32_at(raw, 0),
            cpu: u16_at(raw, 4),
            nr_records: u16_at(raw, 6),
            batch_seq: u64_at(raw, 8),
            first_event_seq: u64_at(raw, 16),
            base_ts_ns: u64_at(raw, 24),
        })
    }
}

/// Calls `each` for every record of a batch, as a [`ProvEvent`] (args beyond the first are 0,
/// comm is empty: the compact encoding leaves them out).
pub fn for_each_record(
    batch: &[u8],
    cgroup_id: u64,
    mut each: impl FnMut(&ProvEvent<'_>),
) -> Result<BatchHeader> {
    let header = BatchHeader::decode(batch)?;
    if header.bytes as usize != batch.len() {
        bail!("batch says {} bytes but is {}", header.bytes, batch.len());
    }
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..header.nr_records {
        if at + RECORD_HEADER_BYTES > batch.len() {
            bail!("batch ends inside a record");
        }
        let len = u16_at(batch, at) as usize;
        let payload_len = u16_at(batch, at + 22) as usize;
        if len < RECORD_HEADER_BYTES + payload_len || at + len > batch.len() {
            bail!("corrupt record length {len}");
        }
        let payload_kind = match u16_at(batch, at + 20) {
            0 => PayloadKind::None,
            1 => PayloadKind::Path,
            other => bail!("unknown payload kind {other}"),
        };
        let event = ProvEvent {
            ts_ns: header.base_ts_ns + u32_at(batch, at + 12) as u64,
            cgroup_id,
            pid: u32_at(batch, at + 4),
            tid: u32_at(batch, at + 8),
            syscall_nr: u16_at(batch, at + 2) as u32,
            payload_kind,
            args: [u32_at(batch, at + 16) as u64, 0, 0, 0, 0, 0],
            comm: [0; 16],
            payload: &batch[at + RECORD_HEADER_BYTES..at + RECORD_HEADER_BYTES + payload_len],
        };
        each(&event);
        at += len;
    }
    if at != batch.len() {
        bail!("batch has {} trailing bytes", batch.len() - at);
    }
    Ok(header)
}

/// Walks a batch's records, adding each to `counts` by syscall number, reading only what
/// counting and framing validation need. A corrupt batch fails the trial (decode errors are
/// never accepted), so counts from its first records do not matter.
fn count_records(batch: &[u8], counts: &mut [u64; MAX_SYSCALL_NR]) -> Result<BatchHeader> {
    let header = BatchHeader::decode(batch)?;
    if header.bytes as usize != batch.len() {
        bail!("batch says {} bytes but is {}", header.bytes, batch.len());
    }
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..header.nr_records {
        let Some(rec) = batch.get(at..at + RECORD_HEADER_BYTES) else {
            bail!("batch ends inside a record");
        };
        let len = u16::from_le_bytes([rec[0], rec[1]]) as usize;
        let payload_len = u16::from_le_bytes([rec[22], rec[23]]) as usize;
        if len < RECORD_HEADER_BYTES + payload_len || at + len > batch.len() {
            bail!("corrupt record length {len}");
        }
        let nr = u16::from_le_bytes([rec[2], rec[3]]) as usize;
        if let Some(count) = counts.get_mut(nr) {
            *count += 1;
        }
        at += len;
    }
    if at != batch.len() {
        bail!("batch has {} trailing bytes", batch.len() - at);
    }
    Ok(header)
}

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
    received_by_syscall: Box<[u64; MAX_SYSCALL_NR]>,
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
            received: 0,
            batches: 0,
            decode_errors: 0,
            io_error: None,
        })
    }

    /// Counts the batch's records (reading only what counting and validation need) and
    /// appends the batch to the log as it is.
    #[inline]
    pub fn consume(&mut self, batch: &[u8]) {
        match count_records(batch, &mut self.received_by_syscall) {
            Ok(header) => {
                self.sequence.observe(&header);
                self.received += header.nr_records as u64;
                self.batches += 1;
                if let Err(err) = self.out.write_all(batch) {
                    self.io_error.get_or_insert(err);
                }
            }
            Err(_) => self.decode_errors += 1,
        }
    }

    pub fn finish(mut self) -> Result<(W, CollectorStats)> {
        if let Some(err) = self.io_error.take() {
            return Err(err).context("writing the compact provenance log");
        }
        self.out.flush()?;
        let stats = CollectorStats {
            received: self.received,
            received_by_syscall: self
                .received_by_syscall
                .iter()
                .enumerate()
                .filter(|(_, count)| **count > 0)
                .map(|(nr, count)| (nr as u32, *count))
                .collect(),
            decode_errors: self.decode_errors,
            self_detected_lost: Some(self.sequence.gap_events),
            ..CollectorStats::default()
        };
        Ok((self.out, stats))
    }
}

/// Reads a compact log, calling `each` for every record.
pub fn read_log(path: &Path, mut each: impl FnMut(&ProvEvent<'_>)) -> Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut head = [0u8; 16];
    input
        .read_exact(&mut head)
        .context("reading the compact log header")?;
    if &head[..8] != MAGIC {
        bail!("not a compact provenance log (expected the AEGCMPT1 header)");
    }
    let cgroup_id = u64_at(&head, 8);
    let mut batch = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err.into()),
        }
        let bytes = u32::from_le_bytes(len) as usize;
        if !(BATCH_HEADER_BYTES..=1 << 20).contains(&bytes) {
            bail!("corrupt compact log: batch length {bytes}");
        }
        batch.clear();
        batch.extend_from_slice(&len);
        batch.resize(bytes, 0);
        input.read_exact(&mut batch[4..])?;
        for_each_record(&batch, cgroup_id, &mut each)?;
    }
}

pub fn is_compact_log(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
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
    }
    open.maps
        .events
        .set_max_entries(config.ring_bytes as u32)
        .context("sizing the ring buffer")?;
    let mut skel = open
        .load()
        .context("loading the compact collector BPF program")?;
    let _pin = super::consumer::PinnedRing::pin(&mut skel.maps.events, config.pin_ring.as_deref())?;
    skel.attach()
        .context("attaching the compact collector to raw_syscalls/sys_enter")?;

    let log = BufWriter::with_capacity(1 << 20, File::create(&config.log)?);
    let consumer = Rc::new(RefCell::new(CompactConsumer::new(log, config.cgroup_id)?));
    let mut builder = RingBufferBuilder::new();
    let callback_consumer = consumer.clone();
    builder.add(&skel.maps.events, move |batch: &[u8]| {
        callback_consumer.borrow_mut().consume(batch);
        0
    })?;
    let ring = builder.build()?;
    println!("ready");
    io::stdout().flush()?;
    let usage_at_ready = super::consumer::ProcessUsage::now()?;

    let wakeups = super::consumer::poll_until_stopped(&ring, || consumer.borrow().batches, || {})?;
    // The attack is over: flush every CPU's partial batch, then drain.
    let mut context = [0u8; 8];
    skel.progs
        .aegis_compact_flush
        .test_run(ProgramInput {
            context_in: Some(&mut context),
            ..Default::default()
        })
        .context("flushing the per-CPU batches (BPF_PROG_TEST_RUN)")?;
    ring.consume().context("draining the ring buffer")?;
    let usage_after_drain = super::consumer::ProcessUsage::now()?;
    drop(ring);
    let dropped = super::consumer::sum_per_cpu_counter(&skel.maps.dropped_events)?;
    let forced_wakeups = skel
        .maps
        .bss_data
        .as_ref()
        .map_or(0, |bss| bss.nr_forced_wakeups);
    drop(skel);

    let consumer = Rc::try_unwrap(consumer)
        .map_err(|_| anyhow::anyhow!("ring buffer callback still holds the consumer"))?
        .into_inner();
    let (log, mut stats) = consumer.finish()?;
    let log = log.into_inner().map_err(|err| err.into_error())?;
    stats.log_bytes = log.metadata()?.len();
    stats.dropped = dropped;
    stats.wakeups = wakeups;
    stats.forced_wakeups = Some(forced_wakeups);
    usage_after_drain.record_consuming_since(&usage_at_ready, &mut stats);
    super::consumer::fill_cpu_usage(&mut stats)?;
    write_json_atomically(&config.stats, &stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cpu: u16, batch_seq: u64, first_event_seq: u64, paths: &[&[u8]]) -> Vec<u8> {
        let mut records = Vec::new();
        for path in paths {
            let len = (RECORD_HEADER_BYTES + path.len() + 3) & !3;
            let mut rec = vec![0u8; len];
            rec[0..2].copy_from_slice(&(len as u16).to_le_bytes());
            rec[2..4].copy_from_slice(&(libc::SYS_openat as u16).to_le_bytes());
            rec[4..8].copy_from_slice(&7u32.to_le_bytes());
            rec[20..22].copy_from_slice(&1u16.to_le_bytes());
            rec[22..24].copy_from_slice(&(path.len() as u16).to_le_bytes());
            rec[24..24 + path.len()].copy_from_slice(path);
            records.extend(rec);
        }
        let mut out = vec![0u8; BATCH_HEADER_BYTES];
        out[0..4].copy_from_slice(&((BATCH_HEADER_BYTES + records.len()) as u32).to_le_bytes());
        out[4..6].copy_from_slice(&cpu.to_le_bytes());
        out[6..8].copy_from_slice(&(paths.len() as u16).to_le_bytes());
        out[8..16].copy_from_slice(&batch_seq.to_le_bytes());
        out[16..24].copy_from_slice(&first_event_seq.to_le_bytes());
        out.extend(records);
        out
    }

    #[test]
    fn decodes_batches_and_detects_gaps() {
        let mut consumer = CompactConsumer::new(Vec::new(), 5).unwrap();
        consumer.consume(&batch(0, 0, 0, &[b"/a", b"/bb"]));
        // Batch 1 of CPU 0 (events 2..5) was lost.
        consumer.consume(&batch(0, 2, 5, &[b"/ccc"]));
        consumer.consume(&batch(1, 0, 0, &[b"/d"]));
        let (log, stats) = consumer.finish().unwrap();
        assert_eq!(stats.received, 4);
        assert_eq!(stats.self_detected_lost, Some(3));
        assert_eq!(stats.received_by_syscall[&(libc::SYS_openat as u32)], 4);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, &log).unwrap();
        assert!(is_compact_log(&path));
        let mut paths = Vec::new();
        read_log(&path, |e| {
            paths.push(String::from_utf8_lossy(e.payload).into_owned())
        })
        .unwrap();
        assert_eq!(paths, ["/a", "/bb", "/ccc", "/d"]);
    }

    #[test]
    fn rejects_corrupt_batches() {
        let mut bad = batch(0, 0, 0, &[b"/a"]);
        bad[6] = 3; // claims three records
        assert!(for_each_record(&bad, 0, |_| {}).is_err());
    }
}
