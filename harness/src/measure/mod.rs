//! What a trial measures besides the collector: ground truth, run delays, perf counters,
//! fairness, and the kernel facts, cgroups and mounts the measuring needs. Nothing here runs
//! a trial or reads the command line.

pub mod cgroup;
pub mod fairness;
pub mod kernel;
pub mod mounts;
pub mod perf_counters;
pub mod run_delay;
pub mod truth;
