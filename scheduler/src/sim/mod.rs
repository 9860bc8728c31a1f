//! A seeded, deterministic discrete-event simulation of a super-producer attack.
//!
//! # Model
//! - `cpus` identical CPUs share one global run queue (an idealised SMP machine: no migration
//!   cost). A [`Policy`] orders the queue, sizes slices and decides wakeup preemption; the
//!   engine runs the chosen tasks. A policy may ask for one queue per CPU instead
//!   ([`Policy::per_cpu_run_queues`]; EEVDF optionally): tasks then wait on a CPU, wake to an
//!   idle or their last CPU, and are moved by idle pulls and a per-tick load balance.
//! - *Producers* are always runnable and issue one traced syscall every `syscall_cost_ns` of
//!   CPU time they get; each syscall tries to put one event into the ring.
//! - The *ring buffer* holds `ring_capacity_events`; an event that does not fit is dropped.
//! - The *collector* sleeps while the ring is empty. The first event into an empty ring wakes
//!   it (the kernel ring buffer's adaptive notification; the producer that wrote it pays
//!   `notify_cost_ns` of CPU for that) after a wakeup latency: drawn per
//!   wakeup from `wakeup_latency_histogram` when the model has one (measured by the built-in
//!   collector, see [`latency`]), else the fixed `wakeup_latency_ns`; each wakeup
//!   costs `wakeup_cost_ns` of its CPU time, then it consumes one event per `per_event_cost_ns`
//!   until the ring is empty again.
//! - *Hogs* are CPU-bound ordinary tasks; *sleepers* run `run_ns` then sleep `sleep_ns`.
//! - A policy may decide in user space ([`Policy::user_space`], [`Rustland`]): runnable tasks
//!   then reach a user-space scheduler task after a round-trip delay, and become dispatchable
//!   only once that task has spent CPU time on a decision for each.
//!
//! [`bound()`] gives, for a run's operating point (events the producers issued, events the
//! collector recorded), the most CPU any scheduler can give the ordinary tasks there: a lower
//! bound on their slowdown that no run can beat (see [`bound`](mod@bound)). [`fair_share()`]
//! gives the lossless max-min fair split of a configuration, a reference for who got what and
//! not a bound (see [`fair_share`](mod@fair_share)).
//!
//! Between two scheduling events every running task progresses at a constant rate, so ring
//! traffic is integrated exactly over each segment (a fluid model with integer event counts):
//! the engine stops at the moment the ring would empty, so within a segment the ring level
//! only rises (possibly to capacity, dropping the excess) or only falls. Every event is
//! produced once and ends up consumed, dropped, or still in the ring.

mod aegis_policy;
pub mod bound;
pub mod calibration;
mod engine;
pub mod fair_share;
pub mod latency;
pub mod policy;
pub mod rustland;

pub use aegis_policy::{Aegis, AegisStats};
pub use bound::{bound, Bound, OperatingPoint};
pub use calibration::{Calibration, CalibrationRun, WakeupFit};
pub use engine::{simulate, SimResult, TaskReport};
pub use fair_share::{fair_share, FairShare};
pub use latency::LatencyHistogram;
pub use policy::{Cfs, Eevdf, Policy, UserSpace};
pub use rustland::Rustland;

use serde::{Deserialize, Serialize};

/// Which simulated EEVDF stands for the kernel's, and at which tick every policy runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EevdfModel {
    /// The model `sim validate` checks against real runs: per-CPU queues, Linux's lag
    /// inflation on placement ([`Eevdf::like_linux`]), and the kernel's tick as `calibrate`
    /// recorded it.
    Linux,
    /// One global queue, no lag inflation ([`Eevdf::new`]), the simulator's 1 ms tick.
    #[default]
    Simple,
}

impl EevdfModel {
    /// The simulated EEVDF on `cpus` CPUs ticking every `tick_ns`.
    pub fn policy(self, cpus: usize, tick_ns: u64) -> Eevdf {
        match self {
            EevdfModel::Linux => Eevdf::like_linux(cpus, tick_ns),
            EevdfModel::Simple => Eevdf::new(cpus, tick_ns),
        }
    }

    /// The tick to simulate in place of the simulator's default: the kernel's (as `calibrate`
    /// recorded it) for `Linux`, none for `Simple`.
    pub fn tick_ns(self, calibration: &Calibration) -> Option<u64> {
        match self {
            EevdfModel::Linux => calibration.kernel_tick_ns,
            EevdfModel::Simple => None,
        }
    }
}

/// Everything a simulation run needs. All times in nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub cpus: usize,
    pub duration_ns: u64,
    pub seed: u64,
    /// Scheduler tick: preemption is checked at least this often.
    pub tick_ns: u64,
    /// Signal window: per-task syscall rates, production rate and collector CPU share are
    /// measured over it, and policies may decide at its end.
    pub window_ns: u64,
    pub ring_capacity_events: u64,
    pub producers: usize,
    pub syscall_cost_ns: u64,
    pub collector: CollectorModel,
    pub hogs: usize,
    pub sleepers: usize,
    pub sleeper_run_ns: u64,
    pub sleeper_sleep_ns: u64,
}

/// The collector's costs and nice value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectorModel {
    pub per_event_cost_ns: u64,
    pub wakeup_cost_ns: u64,
    /// CPU a task pays when it runs on a CPU that a task of another process used since it
    /// last ran there (switching address spaces: the TLB and caches refill), charged to the
    /// collector and to producers alike; producers are threads of one process.
    #[serde(default)]
    pub switch_cost_ns: u64,
    pub wakeup_latency_ns: u64,
    /// Producer CPU the notification costs: the producer whose event wakes the sleeping
    /// collector pays it (irq_work, then waking a task on another, possibly idle, CPU).
    #[serde(default)]
    pub notify_cost_ns: u64,
    /// Stalls of a running collector (preempted by others, blocked writing its log): after
    /// each consumed event one begins with this probability, and lasts a duration drawn from
    /// `stall_histogram`; meanwhile the collector is off its CPU and reads nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_histogram: Option<LatencyHistogram>,
    #[serde(default)]
    pub stalls_per_event: f64,
    /// Measured wakeup latencies to draw from instead of the fixed `wakeup_latency_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeup_latency_histogram: Option<LatencyHistogram>,
    pub nice: i32,
}

impl Default for SimConfig {
    /// A 2-CPU machine flooded by 4 producers with a 64 KiB ring of ~450-byte openat+close
    /// record pairs (~145 events), roughly what `make demo` runs.
    fn default() -> Self {
        SimConfig {
            cpus: 2,
            duration_ns: 1_000_000_000,
            seed: 1,
            tick_ns: 1_000_000,
            window_ns: 10_000_000,
            ring_capacity_events: 290,
            producers: 4,
            syscall_cost_ns: 1_800,
            collector: CollectorModel {
                per_event_cost_ns: 800,
                wakeup_cost_ns: 5_000,
                switch_cost_ns: 0,
                wakeup_latency_ns: 20_000,
                notify_cost_ns: 0,
                stall_histogram: None,
                stalls_per_event: 0.0,
                wakeup_latency_histogram: None,
                nice: 0,
            },
            hogs: 0,
            sleepers: 0,
            sleeper_run_ns: 200_000,
            sleeper_sleep_ns: 800_000,
        }
    }
}

/// Linux's `sched_prio_to_weight`: the load weight of nice -20..=19.
pub const NICE_TO_WEIGHT: [u64; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

pub fn weight_of_nice(nice: i32) -> u64 {
    NICE_TO_WEIGHT[(nice.clamp(-20, 19) + 20) as usize]
}
