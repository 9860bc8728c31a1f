//! Aegis: a sched_ext scheduler with a multi-queue backbone driven by a Deep Q-Network.
//!
//! Not built yet. This crate will hold the policy core, the fixed-point Q-network, the
//! simulator and the `scx_aegis` loader (see `../shared/ARCHITECTURE.md`, issues 4 and 5).
//! Nothing here is used by the harness today.
