//! Aegis: a sched_ext scheduler with a multi-queue backbone driven by a Deep Q-Network.
//!
//! Built so far:
//! - [`aegis`]: the policy core (levels, exponential waiting bound, fixed-point Q-network,
//!   delta gate) that the BPF scheduler will mirror bit for bit;
//! - [`sim`]: the discrete-event simulator of CPUs, super producers, a ring buffer and a
//!   collector, with EEVDF and CFS policies: the test bed and (later) the training
//!   environment of the Aegis policy;
//! - [`sim::calibration`]: the machine parameters `aegis-bench calibrate` measures, and the
//!   simulator configuration derived from them (the harness depends on this crate for it).
//!
//! - [`dqn`]: DQN training of the Q-network in the simulator (`aegis-bench train`), its
//!   fixed-point export and evaluation; the shipped model is `models/aegis.json`.
//!
//! Not built here yet: the `scx_aegis` BPF scheduler and loader.

pub mod aegis;
pub mod dqn;
pub mod sim;
pub mod stats;
