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
