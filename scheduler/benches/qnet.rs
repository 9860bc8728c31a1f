//! Fixed-point Q-network inference per decision (the Rust reference of bpf/aegis_qnet.h).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use scheduler::aegis::qnet::{QNet, STATE_LEN};

fn qnet(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let net = QNet::random(&mut rng, -512..512, -65536..65536);
    let states: Vec<[u8; STATE_LEN]> = (0..1024).map(|_| rng.gen()).collect();
    let mut i = 0;
    c.bench_function("qnet_fixed_point_decision", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            net.act(black_box(&states[i]))
        })
    });
}

criterion_group!(benches, qnet);
criterion_main!(benches);
