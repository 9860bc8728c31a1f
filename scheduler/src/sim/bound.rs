//! The bound: the most CPU any scheduler can give the ordinary tasks (hogs and sleepers) while
//! the producers make a given progress and the collector records a given number of events,
//! hence the least slowdown the ordinary tasks must accept there.
//!
//! # Derivation
//!
//! Take a configuration ([`SimConfig`]): `M` CPUs for `T` ns (`S = M * T` ns of CPU), `N_p`
//! producers issuing one event per `c_p` ns of CPU, `N_h` hogs, `N_s` sleepers that run `r` ns
//! then sleep `s` ns, a collector paying `c_e` ns per event consumed and `c_w` ns per wakeup.
//! A run is at the *operating point* `(E_p, E_c)`: the producers issued `E_p` events and the
//! collector recorded `E_c` of them (at zero loss `E_c = E_p`; the events still in the ring at
//! the end are neither). Whatever the scheduler:
//!
//! 1. **The producers used at least `P_min = E_p * c_p - N_p * (c_p - 1)` ns** (and at least
//!    0): a producer issues an event for every `c_p` ns of CPU it gets, and starts at most
//!    `c_p - 1` ns into its first syscall.
//! 2. **The collector used at least `C_min = E_c * c_e + c_w`** (0 if `E_c = 0`): it starts
//!    asleep, so recording anything costs at least one wakeup; one wakeup is enough for a
//!    scheduler that keeps it runnable until the end.
//! 3. **The ordinary tasks can use at most `D = N_h * T + N_s * min(T, r * ceil(T / (r + s)))`**:
//!    a task runs on one CPU at a time, and a sleeper starts at most `ceil(T / (r + s))` run
//!    phases of `r` ns in the run.
//! 4. Everything shares `S`: the ordinary tasks get at most `B = min(D, S - P_min - C_min)`
//!    (and at least 0). `B` is attainable up to what the derivation leaves out (switch,
//!    notification and stall costs, the last partial syscall): any split of `S` that gives no
//!    task more than `T` fits on `M` CPUs (McNaughton's wrap-around).
//!
//! So a run's ordinary tasks get at most `B` of its own operating point, by construction:
//! `slowdown_vs_bound = B / O_policy >= 1` for every run of every scheduler, and 1 means no
//! scheduler could have slowed the ordinary tasks less while the producers made that progress
//! with that loss. At zero loss it is the least slowdown of ordinary tasks at zero loss with the
//! producers' own progress counted; a policy cannot score below 1 by starving the producers
//! (their progress moves the bound) nor by losing events (unrecorded events cost the bound no
//! collector CPU either). How the CPU was split between producers and ordinary tasks is the
//! [fair-share reference](super::fair_share)'s question, and loss the loss column's.

use serde::{Deserialize, Serialize};

use super::{SimConfig, SimResult};

/// Where a run ended up: events the producers issued and the collector recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub issued: u64,
    pub recorded: u64,
}

impl OperatingPoint {
    /// A run's operating point.
    pub fn of(result: &SimResult) -> Self {
        OperatingPoint {
            issued: result.produced,
            recorded: result.consumed,
        }
    }
}

/// The bound at one operating point. CPU times in ns over the whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// `P_min` and `C_min` (steps 1 and 2).
    pub producer_cpu_min_ns: f64,
    pub collector_cpu_min_ns: f64,
    /// `D`: all the ordinary tasks could use.
    pub ordinary_demand_ns: f64,
    /// `B`: the most the ordinary tasks can get.
    pub ordinary_cpu_ns: f64,
    /// What the ordinary tasks get without the attack: `min(D, S)`.
    pub ordinary_alone_cpu_ns: f64,
    /// The least slowdown of the ordinary tasks: `min(D, S) / B` (1 without ordinary tasks).
    pub slowdown: f64,
}

/// The most CPU one sleeper can use in the run (step 3).
fn sleeper_demand_ns(config: &SimConfig) -> f64 {
    let t = config.duration_ns;
    let cycle = (config.sleeper_run_ns + config.sleeper_sleep_ns).max(1);
    t.min(config.sleeper_run_ns.saturating_mul(t.div_ceil(cycle))) as f64
}

/// The bound for `config` at `point` (see the module docs).
pub fn bound(config: &SimConfig, point: OperatingPoint) -> Bound {
    let t = config.duration_ns as f64;
    let total = config.cpus as f64 * t;
    let cost = config.syscall_cost_ns.max(1) as f64;
    let producer_cpu_min_ns =
        (point.issued as f64 * cost - config.producers as f64 * (cost - 1.0)).max(0.0);
    let collector_cpu_min_ns = if point.recorded == 0 {
        0.0
    } else {
        point.recorded as f64 * config.collector.per_event_cost_ns as f64
            + config.collector.wakeup_cost_ns as f64
    };
    let ordinary_demand_ns =
        config.hogs as f64 * t + config.sleepers as f64 * sleeper_demand_ns(config);
    let ordinary_cpu_ns = ordinary_demand_ns
        .min(total - producer_cpu_min_ns - collector_cpu_min_ns)
        .max(0.0);
    let ordinary_alone_cpu_ns = ordinary_demand_ns.min(total);
    Bound {
        producer_cpu_min_ns,
        collector_cpu_min_ns,
        ordinary_demand_ns,
        ordinary_cpu_ns,
        ordinary_alone_cpu_ns,
        slowdown: if ordinary_cpu_ns > 0.0 {
            ordinary_alone_cpu_ns / ordinary_cpu_ns
        } else if ordinary_alone_cpu_ns > 0.0 {
            f64::MAX
        } else {
            1.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{simulate, Aegis, Cfs, Eevdf, Policy, Rustland};

    fn config(cpus: usize, producers: usize, hogs: usize, sleepers: usize) -> SimConfig {
        SimConfig {
            cpus,
            producers,
            hogs,
            sleepers,
            duration_ns: 1_000_000_000,
            syscall_cost_ns: 4_000,
            ..SimConfig::default()
        }
    }

    #[test]
    fn hand_computed_bound() {
        // 2 CPUs, 1 producer, 1 hog, 1 sleeper (200 us of 1 ms: at most 0.2 s). The producers
        // issued 100,000 events (0.4 s less at most 3,999 ns of a first syscall begun before
        // the run), the collector recorded 90,000 (800 ns each, plus one 5 us wakeup).
        let c = config(2, 1, 1, 1);
        let b = bound(
            &c,
            OperatingPoint {
                issued: 100_000,
                recorded: 90_000,
            },
        );
        assert_eq!(b.producer_cpu_min_ns, 0.4e9 - 3_999.0);
        assert_eq!(b.collector_cpu_min_ns, 72e6 + 5_000.0);
        assert_eq!(b.ordinary_demand_ns, 1.2e9);
        // 2 s - 0.4 s - 0.072 s leaves more than the ordinary tasks can use.
        assert_eq!(b.ordinary_cpu_ns, 1.2e9);
        assert_eq!(b.slowdown, 1.0);
        // Four times the producers' progress: 1.6 s of producers, 0.32 s of collector (at zero
        // loss) leave 0.08 s (less a us): slowdown about 1.2 / 0.08 = 15.
        let busy = bound(
            &c,
            OperatingPoint {
                issued: 400_000,
                recorded: 400_000,
            },
        );
        let left = 2e9 - (1.6e9 - 3_999.0) - (0.32e9 + 5_000.0);
        assert!((busy.ordinary_cpu_ns - left).abs() < 1e-3, "{busy:?}");
        assert!((busy.slowdown - 1.2e9 / left).abs() < 1e-9);
        // Nothing issued, nothing recorded: the ordinary tasks alone.
        let quiet = bound(
            &c,
            OperatingPoint {
                issued: 0,
                recorded: 0,
            },
        );
        assert_eq!(quiet.collector_cpu_min_ns, 0.0);
        assert_eq!(quiet.ordinary_cpu_ns, 1.2e9);
    }

    /// Short runs of every simulated policy, on machines from contended to roomy and ordinary
    /// loads from one hog to more hogs than CPUs.
    fn cases() -> Vec<SimConfig> {
        let mut cases = Vec::new();
        for (cpus, producers, hogs, sleepers) in [
            (1, 1, 1, 1),
            (2, 1, 1, 1),
            (2, 4, 1, 1),
            (2, 8, 2, 1),
            (4, 2, 4, 2),
            (8, 8, 4, 2),
            (8, 16, 8, 4),
        ] {
            for seed in 1..=2 {
                cases.push(SimConfig {
                    seed,
                    duration_ns: 100_000_000,
                    ..SimConfig::default()
                });
                let last = cases.last_mut().expect("just pushed");
                (last.cpus, last.producers, last.hogs, last.sleepers) =
                    (cpus, producers, hogs, sleepers);
            }
        }
        cases
    }

    fn policies(config: &SimConfig) -> Vec<Box<dyn Policy>> {
        vec![
            Box::new(Eevdf::new(config.cpus, config.tick_ns)),
            Box::new(Eevdf::like_linux(config.cpus, config.tick_ns)),
            Box::new(Cfs::new(config.cpus)),
            Box::new(Rustland::default()),
            Box::new(Aegis::new(None, config.tick_ns, 0)),
        ]
    }

    #[test]
    fn no_policy_gives_ordinary_tasks_more_than_the_bound() {
        for config in cases() {
            for mut policy in policies(&config) {
                let result = simulate(&config, policy.as_mut());
                let ordinary = (result.cpu_ns_of("hog") + result.cpu_ns_of("sleeper")) as f64;
                let b = bound(&config, OperatingPoint::of(&result));
                assert!(
                    ordinary <= b.ordinary_cpu_ns,
                    "{}: ordinary {ordinary} ns above the bound {b:?} at {:?} ({config:?})",
                    result.policy,
                    OperatingPoint::of(&result)
                );
            }
        }
    }
}
