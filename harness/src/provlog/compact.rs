//! The compact log (`--collector builtin-compact`, eAudit-like): per-CPU batches as
//! `bpf/collector_compact.bpf.c` flushes them, appended to the log as they are.
//!
//! # Format (little-endian)
//! ```text
//! file   := "AEGCMPT1" cgroup_id:u64 batch*
//! batch  := bytes:u32 cpu:u16 nr_records:u16 batch_seq:u64 first_event_seq:u64 base_ts_ns:u64
//!           record{nr_records}                               (bytes counts the whole batch)
//! record := len:u16 syscall_nr:u16 pid:u32 tid:u32 ts_delta_ns:u32 arg0:u32
//!           payload_kind:u8 group:u8 payload_len:u16 payload[payload_len] padding to len
//! ```
//! `cgroup_id` is the attack's; `group` says whose a record is, as in the full format (only
//! `--trace-scope all` records groups other than the attack's, whose cgroup ids the compact
//! records leave out: they read back with cgroup id 0).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{check_group, u16_at, u32_at, u64_at, PayloadKind, ProvEvent};
use crate::bpf_intf::{GROUP_ATTACK, MAX_SYSCALL_NR, NR_GROUPS};

pub const MAGIC: &[u8; 8] = b"AEGCMPT1";
pub const BATCH_HEADER_BYTES: usize = 32;
pub const RECORD_HEADER_BYTES: usize = 24;

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

/// Checks a batch's framing and calls `each` with its header, every record's bytes (header,
/// payload and padding) and the record's payload length.
#[inline]
fn for_each_raw_record(
    batch: &[u8],
    mut each: impl FnMut(&BatchHeader, &[u8], usize) -> Result<()>,
) -> Result<BatchHeader> {
    let header = BatchHeader::decode(batch)?;
    if header.bytes as usize != batch.len() {
        bail!("batch says {} bytes but is {}", header.bytes, batch.len());
    }
    let mut at = BATCH_HEADER_BYTES;
    for _ in 0..header.nr_records {
        let Some(rec) = batch.get(at..at + RECORD_HEADER_BYTES) else {
            bail!("batch ends inside a record");
        };
        let len = u16_at(rec, 0) as usize;
        let payload_len = u16_at(rec, 22) as usize;
        if len < RECORD_HEADER_BYTES + payload_len || at + len > batch.len() {
            bail!("corrupt record length {len}");
        }
        each(&header, &batch[at..at + len], payload_len)?;
        at += len;
    }
    if at != batch.len() {
        bail!("batch has {} trailing bytes", batch.len() - at);
    }
    Ok(header)
}

/// Calls `each` for every record of a batch, as a [`ProvEvent`] (args beyond the first are 0,
/// comm is empty: the compact encoding leaves them out).
pub fn for_each_record(
    batch: &[u8],
    cgroup_id: u64,
    mut each: impl FnMut(&ProvEvent<'_>),
) -> Result<BatchHeader> {
    for_each_raw_record(batch, |header, rec, payload_len| {
        let payload_kind = match rec[20] {
            0 => PayloadKind::None,
            1 => PayloadKind::Path,
            other => bail!("unknown payload kind {other}"),
        };
        let group = check_group(rec[21])?;
        let Some(ts_ns) = header.base_ts_ns.checked_add(u32_at(rec, 12) as u64) else {
            bail!("timestamp past 2^64 ns (base {})", header.base_ts_ns);
        };
        each(&ProvEvent {
            ts_ns,
            cgroup_id: if group == GROUP_ATTACK { cgroup_id } else { 0 },
            pid: u32_at(rec, 4),
            tid: u32_at(rec, 8),
            syscall_nr: u16_at(rec, 2) as u32,
            payload_kind,
            group,
            args: [u32_at(rec, 16) as u64, 0, 0, 0, 0, 0],
            comm: [0; 16],
            payload: &rec[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + payload_len],
        });
        Ok(())
    })
}

/// Walks a batch's records, adding each to `groups` by group and the attack's to `counts` by
/// syscall number, reading only what counting and framing validation need. On a corrupt batch
/// the counts of its first records are already added: a collector fails the trial on any
/// decode error.
pub fn count_records(
    batch: &[u8],
    counts: &mut [u64; MAX_SYSCALL_NR],
    groups: &mut [u64; NR_GROUPS],
) -> Result<BatchHeader> {
    for_each_raw_record(batch, |_, rec, _| {
        let group = check_group(rec[21])?;
        groups[group as usize] += 1;
        if group == GROUP_ATTACK {
            if let Some(count) = counts.get_mut(u16_at(rec, 2) as usize) {
                *count += 1;
            }
        }
        Ok(())
    })
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
        let Some(len) = super::read_length(&mut input)? else {
            return Ok(());
        };
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

/// A batch of openat records with these paths, as the BPF side flushes it.
#[cfg(test)]
pub(crate) fn test_batch(
    cpu: u16,
    batch_seq: u64,
    first_event_seq: u64,
    paths: &[&[u8]],
) -> Vec<u8> {
    let mut records = Vec::new();
    for path in paths {
        let len = (RECORD_HEADER_BYTES + path.len() + 3) & !3;
        let mut rec = vec![0u8; len];
        rec[0..2].copy_from_slice(&(len as u16).to_le_bytes());
        rec[2..4].copy_from_slice(&(libc::SYS_openat as u16).to_le_bytes());
        rec[4..8].copy_from_slice(&7u32.to_le_bytes());
        rec[20] = 1; // a path
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_past_2_to_the_64_is_an_error_not_a_wrap() {
        let mut batch = test_batch(0, 0, 0, &[b"/a"]);
        batch[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let rec = BATCH_HEADER_BYTES;
        batch[rec + 12..rec + 16].copy_from_slice(&5u32.to_le_bytes());
        let err = for_each_record(&batch, 0, |_| {}).unwrap_err();
        assert!(err.to_string().contains("timestamp"), "{err}");
    }

    #[test]
    fn reads_back_a_log_of_batches() {
        let mut log = MAGIC.to_vec();
        log.extend(5u64.to_le_bytes());
        log.extend(test_batch(0, 0, 0, &[b"/a", b"/bb"]));
        log.extend(test_batch(1, 0, 0, &[b"/ccc"]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, &log).unwrap();
        assert!(is_compact_log(&path));
        let mut seen = Vec::new();
        read_log(&path, |e| {
            seen.push((e.cgroup_id, String::from_utf8_lossy(e.payload).into_owned()))
        })
        .unwrap();
        assert_eq!(
            seen,
            [(5, "/a".into()), (5, "/bb".into()), (5, "/ccc".into())]
        );
    }

    #[test]
    fn counts_records_by_syscall() {
        let (mut counts, mut groups) = ([0; MAX_SYSCALL_NR], [0; NR_GROUPS]);
        let mut batch = test_batch(2, 4, 9, &[b"/a", b"/b", b"/c"]);
        // The third record is the rest of the machine's (--trace-scope all).
        let third = BATCH_HEADER_BYTES + 2 * (RECORD_HEADER_BYTES + 4);
        batch[third + 21] = 2;
        let header = count_records(&batch, &mut counts, &mut groups).unwrap();
        assert_eq!((header.cpu, header.batch_seq, header.nr_records), (2, 4, 3));
        assert_eq!(counts[libc::SYS_openat as usize], 2);
        assert_eq!(counts.iter().sum::<u64>(), 2);
        assert_eq!(groups, [2, 0, 1]);
        let mut seen = Vec::new();
        for_each_record(&batch, 5, |e| seen.push((e.group, e.cgroup_id))).unwrap();
        assert_eq!(seen, [(0, 5), (0, 5), (2, 0)]);
    }

    #[test]
    fn rejects_corrupt_batches() {
        let mut bad = test_batch(0, 0, 0, &[b"/a"]);
        bad[6] = 3; // claims three records
        assert!(for_each_record(&bad, 0, |_| {}).is_err());
        assert!(count_records(&bad, &mut [0; MAX_SYSCALL_NR], &mut [0; NR_GROUPS]).is_err());
        let mut no_group = test_batch(0, 0, 0, &[b"/a"]);
        no_group[BATCH_HEADER_BYTES + 21] = 3;
        assert!(for_each_record(&no_group, 0, |_| {}).is_err());
    }
}
