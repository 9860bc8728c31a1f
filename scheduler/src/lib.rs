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
//! Not built yet: the Aegis policy in the simulator, DQN training and the
//! `scx_aegis` BPF scheduler and loader (issues 4 and 5).
//! The harness uses only [`sim`] (for `calibrate` and `sim --validate`).

pub mod aegis;
pub mod dqn;
pub mod sim;
