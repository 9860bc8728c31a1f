//! The Aegis policy core: the reference the BPF scheduler (`bpf/aegis.bpf.c`, loaded by
//! scx_aegis) is checked against, and the policy the simulator runs (the same code, not a
//! copy). The algorithm is described in `docs/aegis.md`.
//!
//! - [`levels`]: the multi-queue backbone: provenance tasks above ordinary tasks above
//!   producers, and the exponential waiting-time rule that bounds every task's wait.
//! - [`qnet`]: the fixed-point Q-network (BPF has no floats) and its action space.
//! - [`gate`]: delta-based inference reduction: the network runs only when the quantized
//!   state moved far enough since the last inference.
//!
//! Everything here is integer arithmetic without allocation, so it is mirrored line for line
//! in BPF C (`bpf/aegis_levels.h`, `bpf/aegis_qnet.h`) and compared bit-exactly through
//! BPF_PROG_TEST_RUN (`tests/bpf_qnet.rs`).

pub mod gate;
pub mod levels;
pub mod qnet;
