//! Built-in collector consumer throughput: decode ring-buffer records and append them to a
//! provenance log on disk, on one core. The figure bounds how fast the "full" architecture can
//! drain; README.md reports it.

use std::io::BufWriter;

use aegis_bench::bpf_intf::{offset, EVENT_HEADER_BYTES, EVENT_WITH_PAYLOAD_BYTES};
use aegis_bench::collector::consumer::Consumer;
use aegis_bench::collector::ring::RingConsumer;
use aegis_bench::provlog::LogWriter;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const BATCH: usize = 10_000;

/// Records as the BPF side writes them for an openat flood: openat with its path, then close.
fn flood_records() -> Vec<Vec<u8>> {
    let mut records = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        let openat = i % 2 == 0;
        let mut raw = vec![
            0u8;
            if openat {
                EVENT_WITH_PAYLOAD_BYTES
            } else {
                EVENT_HEADER_BYTES
            }
        ];
        raw[offset::TS_NS..][..8].copy_from_slice(&(i as u64 * 1000).to_le_bytes());
        raw[offset::PID..][..4].copy_from_slice(&4242u32.to_le_bytes());
        let nr = if openat {
            libc::SYS_openat
        } else {
            libc::SYS_close
        } as u32;
        raw[offset::SYSCALL_NR..][..4].copy_from_slice(&nr.to_le_bytes());
        raw[offset::COMM..][..7].copy_from_slice(b"flood-0");
        if openat {
            let path = b"/dev/null";
            raw[offset::PAYLOAD_KIND..][..2].copy_from_slice(&1u16.to_le_bytes());
            raw[offset::PAYLOAD_LEN..][..2].copy_from_slice(&(path.len() as u16).to_le_bytes());
            raw[EVENT_HEADER_BYTES..][..path.len()].copy_from_slice(path);
        }
        records.push(raw);
    }
    records
}

fn consumer_throughput(c: &mut Criterion) {
    let records = flood_records();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("decode_and_log_to_file", |b| {
        b.iter_batched(
            || {
                let file = std::fs::File::create(dir.path().join("bench.log")).unwrap();
                Consumer::new(LogWriter::new(BufWriter::with_capacity(1 << 20, file)).unwrap())
            },
            |mut consumer| {
                for raw in &records {
                    consumer.consume(raw);
                }
                assert_eq!(consumer.received, BATCH as u64);
                consumer.finish().unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut consumer = Consumer::new(LogWriter::new(std::io::sink()).unwrap());
            for raw in &records {
                consumer.consume(raw);
            }
            consumer.received
        })
    });
    group.finish();
}

/// The same events as compact records packed in ~2 KiB batches, as collector_compact.bpf.c
/// flushes them.
fn compact_batches() -> Vec<Vec<u8>> {
    use aegis_bench::provlog::compact::{BATCH_HEADER_BYTES, RECORD_HEADER_BYTES};
    let mut batches = Vec::new();
    let mut records = Vec::new();
    let mut nr_records = 0u16;
    let mut first_event_seq = 0u64;
    let mut flush = |records: &mut Vec<u8>, nr_records: &mut u16, seq: &mut u64| {
        let mut batch = vec![0u8; BATCH_HEADER_BYTES];
        batch[0..4].copy_from_slice(&((BATCH_HEADER_BYTES + records.len()) as u32).to_le_bytes());
        batch[6..8].copy_from_slice(&nr_records.to_le_bytes());
        batch[8..16].copy_from_slice(&(batches.len() as u64).to_le_bytes());
        batch[16..24].copy_from_slice(&seq.to_le_bytes());
        batch.append(records);
        *seq += *nr_records as u64;
        *nr_records = 0;
        batches.push(batch);
    };
    for i in 0..BATCH {
        let openat = i % 2 == 0;
        let path: &[u8] = if openat { b"/dev/null" } else { b"" };
        let len = (RECORD_HEADER_BYTES + path.len() + 3) & !3;
        let mut rec = vec![0u8; len];
        rec[0..2].copy_from_slice(&(len as u16).to_le_bytes());
        let nr = if openat {
            libc::SYS_openat
        } else {
            libc::SYS_close
        } as u16;
        rec[2..4].copy_from_slice(&nr.to_le_bytes());
        if openat {
            rec[20..22].copy_from_slice(&1u16.to_le_bytes());
            rec[22..24].copy_from_slice(&(path.len() as u16).to_le_bytes());
            rec[24..24 + path.len()].copy_from_slice(path);
        }
        records.extend(rec);
        nr_records += 1;
        if records.len() >= 2048 {
            flush(&mut records, &mut nr_records, &mut first_event_seq);
        }
    }
    flush(&mut records, &mut nr_records, &mut first_event_seq);
    batches
}

fn compact_consumer_throughput(c: &mut Criterion) {
    use aegis_bench::collector::compact::CompactConsumer;
    let batches = compact_batches();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("compact_decode_and_log_to_file", |b| {
        b.iter_batched(
            || {
                let file = std::fs::File::create(dir.path().join("bench.log")).unwrap();
                CompactConsumer::new(BufWriter::with_capacity(1 << 20, file), 1).unwrap()
            },
            |mut consumer| {
                for batch in &batches {
                    consumer.consume(batch);
                }
                assert_eq!(consumer.received, BATCH as u64);
                consumer.finish().unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, consumer_throughput, compact_consumer_throughput);
criterion_main!(benches);
