//! Super-producer attacks: syscall floods that count every syscall they make.
//!
//! A flood is one syscall pattern ([`FloodKind`]) run by N threads for a duration or a total
//! count, optionally paced to a rate. Every syscall is issued directly with `syscall(2)` so the
//! number the kernel sees is the number we wrote, and each thread tallies each call in a
//! per-thread [`SyscallTally`] before anyone reads it. The harness compares these tallies with
//! an in-kernel ground-truth counter; a disagreement means the harness is wrong, and the trial
//! fails instead of printing a loss figure.
//!
//! Mid-flood, thread 0 performs the *canary*: it creates and unlinks a uniquely named file, the
//! action a real attacker wants hidden. Whether a collector's log holds it is reported per trial.
//!
//! An [`Evade`] shapes the flood to slip past a scheduler's producer rule (spinning between
//! syscalls, short-lived processes, CPU hogs beside it); see [`evade`].
//!
//! [`worker`] runs a whole attack inside one process that first moves itself into the attack's
//! cgroup, so everything it tallies happens inside that cgroup and nothing before does.

pub mod evade;
pub mod flood;
pub mod tally;
pub mod worker;

pub use evade::Evade;
pub use flood::{FloodKind, FloodSpec};
pub use tally::SyscallTally;
pub use worker::{AttackReport, CanaryRecord, WorkerConfig};
