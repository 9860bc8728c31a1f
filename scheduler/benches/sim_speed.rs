//! Simulator speed: scheduling events per second on one core.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scheduler::sim::{simulate, Aegis, Cfs, Eevdf, Rustland, SimConfig};

fn sim_speed(c: &mut Criterion) {
    let config = SimConfig {
        cpus: 8,
        producers: 16,
        hogs: 4,
        sleepers: 8,
        duration_ns: 200_000_000,
        ..SimConfig::default()
    };
    let events = simulate(&config, &mut Eevdf::new(config.cpus, config.tick_ns)).sched_events;
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(events));
    group.bench_function("eevdf_8cpu_200ms", |b| {
        b.iter(|| simulate(&config, &mut Eevdf::new(config.cpus, config.tick_ns)))
    });
    // The model `sim validate` checks: per-CPU queues, Linux's lag placement, a 4 ms tick
    // (HZ 250) and a switch cost between processes.
    let mut linux = config.clone();
    linux.tick_ns = 4_000_000;
    linux.collector.switch_cost_ns = 12_000;
    let events = simulate(&linux, &mut Eevdf::like_linux(linux.cpus, linux.tick_ns)).sched_events;
    group.throughput(Throughput::Elements(events));
    group.bench_function("eevdf_linux_8cpu_200ms", |b| {
        b.iter(|| simulate(&linux, &mut Eevdf::like_linux(linux.cpus, linux.tick_ns)))
    });
    let events = simulate(&config, &mut Cfs::new(config.cpus)).sched_events;
    group.throughput(Throughput::Elements(events));
    group.bench_function("cfs_8cpu_200ms", |b| {
        b.iter(|| simulate(&config, &mut Cfs::new(config.cpus)))
    });
    let events = simulate(&config, &mut Rustland::default()).sched_events;
    group.throughput(Throughput::Elements(events));
    group.bench_function("rustland_8cpu_200ms", |b| {
        b.iter(|| simulate(&config, &mut Rustland::default()))
    });
    let events = simulate(&config, &mut Aegis::new(None, config.tick_ns, 0)).sched_events;
    group.throughput(Throughput::Elements(events));
    group.bench_function("aegis_no_net_8cpu_200ms", |b| {
        b.iter(|| simulate(&config, &mut Aegis::new(None, config.tick_ns, 0)))
    });
    group.finish();
}

criterion_group!(benches, sim_speed);
criterion_main!(benches);
