//! The BPF Q-network (bpf/aegis_qnet.h) is bit-exact with the Rust reference: thousands of
//! random networks and states through BPF_PROG_TEST_RUN on this kernel. Needs root (CI is root).

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, ProgramInput};
use rand::{Rng, SeedableRng};
use scheduler::aegis::qnet::{QNet, BPF_BYTES, NR_ACTIONS, STATE_LEN};

mod skel {
    #![allow(clippy::all, dead_code, non_camel_case_types)]
    include!(concat!(env!("OUT_DIR"), "/aegis_qnet_test.skel.rs"));
}

#[test]
fn bpf_inference_matches_the_rust_reference() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP bpf_inference_matches_the_rust_reference: needs root to load BPF; CI runs it as root");
        return;
    }
    let mut object = MaybeUninit::uninit();
    let skel = skel::AegisQnetTestSkelBuilder::default()
        .open(&mut object)
        .and_then(|open| open.load())
        .expect("loading the Q-network test program");
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut compared = 0;
    let mut bpf_ns = 0u128;
    for _ in 0..50 {
        let net = QNet::random(&mut rng, i16::MIN..i16::MAX, -(1 << 20)..(1 << 20));
        let bytes = net.to_bpf_bytes();
        assert_eq!(bytes.len(), BPF_BYTES);
        skel.maps
            .qnet_weights
            .update(&0u32.to_ne_bytes(), &bytes, MapFlags::ANY)
            .unwrap();
        for _ in 0..100 {
            let state: [u8; STATE_LEN] = rng.gen();
            // struct qnet_test_ctx: state[8], q[9] (i64), action (u32), padded to 8 bytes.
            let mut ctx = vec![0u8; STATE_LEN + NR_ACTIONS * 8 + 8];
            ctx[..STATE_LEN].copy_from_slice(&state);
            let started = std::time::Instant::now();
            let out = skel
                .progs
                .aegis_qnet_test
                .test_run(ProgramInput {
                    context_in: Some(&mut ctx),
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            assert_eq!(out.return_value, 0);
            bpf_ns += started.elapsed().as_nanos();
            let q: Vec<i64> = (0..NR_ACTIONS)
                .map(|k| i64::from_le_bytes(ctx[STATE_LEN + 8 * k..][..8].try_into().unwrap()))
                .collect();
            let action =
                u32::from_le_bytes(ctx[STATE_LEN + NR_ACTIONS * 8..][..4].try_into().unwrap());
            assert_eq!(q, net.q_values(&state).to_vec(), "state {state:?}");
            assert_eq!(action as usize, net.act(&state).index());
            compared += 1;
        }
    }
    assert_eq!(compared, 5000);
    // The kernel reports no duration for syscall programs: this wall time includes the bpf()
    // syscall around the run, an upper bound for the README.
    eprintln!(
        "BPF inference: <= {} ns per decision (mean wall time of 5000 test runs)",
        bpf_ns / 5000
    );
}

/// `struct levels_test_ctx` of bpf/aegis_qnet_test.bpf.c, field for field.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct LevelsTestCtx {
    production_rate_per_s: u64,
    base_wait_ns: u64,
    ring_fill_pct: u32,
    collector_cpu_pct: u32,
    runnable: [u32; 3],
    oldest_wait_us: [u32; 2],
    provenance: u32,
    recent_syscalls: u32,
    producer_syscalls_per_window: u32,
    last_state: [u8; STATE_LEN],
    state: [u8; STATE_LEN],
    bound_ns: [u64; 3],
    level: u32,
    distance: u32,
}

/// A value spread over all magnitudes, so every log2 bucket and both saturation ends occur.
fn any_magnitude(rng: &mut impl Rng, max_bits: u32) -> u64 {
    let bits = rng.gen_range(0..=max_bits);
    if bits == 0 {
        0
    } else {
        rng.gen::<u64>() >> (64 - bits)
    }
}

#[test]
fn bpf_level_logic_matches_the_rust_reference() {
    use scheduler::aegis::gate::DeltaGate;
    use scheduler::aegis::levels::{Backbone, Level, TaskSignals};
    use scheduler::aegis::qnet::State;

    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP bpf_level_logic_matches_the_rust_reference: needs root to load BPF; CI runs it as root");
        return;
    }
    let mut object = MaybeUninit::uninit();
    let skel = skel::AegisQnetTestSkelBuilder::default()
        .open(&mut object)
        .and_then(|open| open.load())
        .expect("loading the level test program");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..5000 {
        let state = State {
            production_rate_per_s: any_magnitude(&mut rng, 40),
            ring_fill_pct: rng.gen_range(0..=120),
            collector_cpu_pct: rng.gen_range(0..=120),
            runnable: [0; 3].map(|_| any_magnitude(&mut rng, 12) as u32),
            oldest_wait_us: [0; 2].map(|_| any_magnitude(&mut rng, 32) as u32),
        };
        let backbone = Backbone {
            producer_syscalls_per_window: any_magnitude(&mut rng, 16) as u32,
            base_wait_ns: any_magnitude(&mut rng, 40),
        };
        let signals = TaskSignals {
            provenance: rng.gen_bool(0.2),
            recent_syscalls: any_magnitude(&mut rng, 20) as u32,
        };
        let last: [u8; STATE_LEN] = rng.gen();
        let mut ctx = LevelsTestCtx {
            production_rate_per_s: state.production_rate_per_s,
            base_wait_ns: backbone.base_wait_ns,
            ring_fill_pct: state.ring_fill_pct,
            collector_cpu_pct: state.collector_cpu_pct,
            runnable: state.runnable,
            oldest_wait_us: state.oldest_wait_us,
            provenance: signals.provenance as u32,
            recent_syscalls: signals.recent_syscalls,
            producer_syscalls_per_window: backbone.producer_syscalls_per_window,
            last_state: last,
            ..LevelsTestCtx::default()
        };
        // SAFETY: a repr(C) struct of integers viewed as bytes for the kernel to fill in.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                (&mut ctx as *mut LevelsTestCtx).cast::<u8>(),
                std::mem::size_of::<LevelsTestCtx>(),
            )
        };
        let out = skel
            .progs
            .aegis_levels_test
            .test_run(ProgramInput {
                context_in: Some(bytes),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        assert_eq!(out.return_value, 0);

        let quantized = state.quantize();
        assert_eq!(ctx.state, quantized, "{state:?}");
        let level = backbone.classify(signals);
        assert_eq!(
            ctx.level as usize,
            level.index(),
            "{signals:?} {backbone:?}"
        );
        for l in Level::ALL {
            assert_eq!(ctx.bound_ns[l.index()], backbone.wait_bound_ns(l));
        }
        // The delta gate runs the network exactly when the distance exceeds delta.
        let delta = rng.gen_range(0..64);
        let mut gate = DeltaGate::new(delta);
        assert!(gate.should_run(&last));
        assert_eq!(gate.should_run(&quantized), ctx.distance > delta);
    }
}
