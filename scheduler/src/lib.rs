//! Aegis: a sched_ext scheduler with a multi-queue backbone driven by a Deep Q-Network.
//!
//! Built so far: [`aegis`], the policy core (levels, waiting bound, fixed-point Q-network,
//! delta gate) that the BPF scheduler will mirror; [`sim`], the discrete-event simulator of CPUs, super producers, a ring buffer
//! and a collector, with EEVDF and CFS policies. It is the test bed and (later) the training
//! environment of the Aegis policy. Not built yet: the Aegis policy core, the fixed-point
//! Q-network, training and the `scx_aegis` loader (see `../shared/ARCHITECTURE.md`, issues 4
//! and 5). Nothing here is used by the harness today.

pub mod aegis;
pub mod sim;
