//! Built-in collector consumer throughput: decode ring-buffer records and append them to a
//! provenance log on disk, on one core. The figure bounds how fast the "full" architecture can
//! drain; README.md reports it.

use std::io::BufWriter;

use aegis_bench::bpf_intf::{offset, EVENT_HEADER_BYTES, EVENT_WITH_PAYLOAD_BYTES};
use aegis_bench::collector::consumer::Consumer;
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

criterion_group!(benches, consumer_throughput);
criterion_main!(benches);
