//! Attack rate against a plain loop of the same syscall: the cost of tallying every call.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use attacks::flood::{FloodKind, FloodState};
use attacks::SyscallTally;

fn flood_rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("openat_close");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plain_loop", |b| {
        b.iter(|| unsafe {
            let fd = libc::openat(
                libc::AT_FDCWD,
                c"/dev/null".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            );
            libc::close(fd);
        })
    });
    let mut state = FloodState::new(FloodKind::Openat, std::path::Path::new("/dev/null")).unwrap();
    let mut tally = SyscallTally::default();
    group.bench_function("attack_iteration", |b| b.iter(|| state.iterate(&mut tally)));
    group.finish();
}

criterion_group!(benches, flood_rate);
criterion_main!(benches);
