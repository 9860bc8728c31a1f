//! Aegis: a sched_ext scheduler with a multi-queue backbone driven by a Deep Q-Network, and the
//! test bed it is trained and judged in. The algorithm is described once, in `docs/aegis.md`.
//!
//! - [`aegis`]: the policy core (levels, exponential waiting bound, fixed-point Q-network,
//!   delta gate) that the BPF scheduler mirrors bit for bit;
//! - [`sim`]: the discrete-event simulator of CPUs, super producers, a ring buffer and a
//!   collector, with EEVDF, CFS, rustland-like and Aegis policies: the test bed and the
//!   training environment of the Aegis policy;
//! - [`sim::calibration`]: the machine parameters `aegis-bench calibrate` measures, and the
//!   simulator configuration derived from them (the harness depends on this crate for it);
//! - [`dqn`]: DQN training of the Q-network in the simulator (`aegis-bench train`), its
//!   fixed-point export and evaluation; the shipped model is `models/aegis.json`;
//! - [`stats`]: the statistics record scx_aegis writes (`--stats-file`), for its readers.
//!
//! The sched_ext scheduler itself is the `scx_aegis` crate beside this one: the BPF program
//! (`bpf/aegis.bpf.c`) and its loader, which links this crate.

pub mod aegis;
pub mod dqn;
pub mod sim;
pub mod stats;
