//! The Aegis policy core: the reference the BPF scheduler is checked against, and the policy
//! the simulator runs (the same code, not a copy).
//!
//! - [`levels`]: the multi-queue backbone: provenance tasks above ordinary tasks above
//!   producers, and the exponential waiting-time rule that bounds every task's wait.
//! - [`qnet`]: the fixed-point Q-network (BPF has no floats) and its action space.
//! - [`gate`]: delta-based inference reduction: the network runs only when the quantized
//!   state moved far enough since the last inference.
//!
//! Everything here is integer arithmetic without allocation, so it can be mirrored line for
//! line in BPF C (`bpf/aegis*.bpf.c`, not built yet) and compared bit-exactly.

pub mod gate;
pub mod levels;
pub mod qnet;
