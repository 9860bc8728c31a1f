//! The fair-share reference: what every task gets when a lossless scheduler favours nobody
//! but the collector. **Not a bound**: a scheduler that gives the producers less than their
//! fair share gives the ordinary tasks more than this reference does, without losing anything
//! (Aegis on 2 CPUs). The bound on the ordinary tasks' slowdown, with the producers' progress
//! counted, is [`bound`](super::bound); this module is the point of comparison for *who got
//! what*: ordinary tasks and producers against their fair shares.
//!
//! # Derivation
//!
//! Take a configuration ([`SimConfig`]): `M` CPUs for `T` ns (`S = M * T` ns of CPU),
//! `N_p` producers each issuing one event per `c_p` ns of CPU (`syscall_cost_ns`), `N_h`
//! hogs, `N_s` sleepers that run `r` ns then sleep `s` ns, a ring of `K` events, and a
//! collector paying `c_e` ns per event and `c_w` ns per wakeup.
//!
//! 1. **Collector CPU for `E` events, one wakeup per ring-full.** Every event must be
//!    consumed: `E * c_e`. A collector that sleeps whenever it has drained the ring wakes
//!    once per batch of at most `K` events, hence `need(E) = E * c_e + ceil(E / K) * c_w`.
//!    (A scheduler that keeps the collector runnable while the producers run can record with
//!    fewer wakeups; the bound counts one wakeup in all.)
//! 2. **One collector thread.** The collector can use at most one CPU: `need(E) <= T`, so at
//!    most `E_max` events (the largest `E` with `need(E) <= T`) can be recorded this way, and
//!    the producers are held to `P_cap = E_max * c_p` ns of CPU in total.
//! 3. **Everyone else shares fairly.** Producers, hogs and sleepers are ordinary runnable
//!    tasks to a fair scheduler; the reference favours nobody but the collector, and gives it
//!    exactly `need(E)`. Max-min fair sharing (water-filling) at level `x`: a producer or hog
//!    gets `min(x, T)`, a sleeper `min(x, T * r / (r + s))` (all it can use), producers
//!    together at most `P_cap`; with `P(x)` the producers' CPU and `E(x) = floor(P(x) / c_p)`
//!    the events they issue, the machine is used
//!    `U(x) = P(x) + need(E(x)) + N_h * min(x, T) + N_s * min(x, T r / (r + s))`.
//!    `U` does not decrease in `x`; the level is `x = T` if `U(T) <= S` (no contention), else
//!    the largest `x` with `U(x) <= S` (bisection).
//! 4. **Slowdown at the fair share.** Without the attack (no producers, no collector) the
//!    ordinary tasks would get `O_alone` (the same water-filling over them alone); with it, at
//!    the fair share, `O(x)`: `slowdown = O_alone / O(x) >= 1`.
//!
//! A scheduler's ordinary tasks compare with it as `slowdown_vs_fair_share = O(x) / O_policy`
//! and its producers as `producer_progress_vs_fair_share = E_policy / E(x)`: either can fall
//! on either side of 1 (below 1 in the first, the policy gave ordinary tasks more than their
//! fair share, by holding the producers or by losing events).
//!
//! Not in the reference: the collector's wakeup latency and the scheduler's own overhead.

use serde::{Deserialize, Serialize};

use super::SimConfig;

/// The fair-share reference for one configuration. CPU times in ns over the whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FairShare {
    /// `need(E)`: the least collector CPU that loses none of the `events`.
    pub collector_cpu_ns: f64,
    /// Events the producers issue at the fair share, and the wakeups recording them takes.
    pub events: u64,
    pub wakeups: u64,
    /// The fair level `x` (ns of CPU per task, before each task's own cap).
    pub fair_share_ns: f64,
    /// Producers' CPU, all of them.
    pub producer_cpu_ns: f64,
    /// Whether the producers had to be held below their fair share because one collector
    /// thread could not have recorded more (step 2).
    pub producers_capped: bool,
    /// Each hog's and each sleeper's CPU.
    pub hog_cpu_ns: f64,
    pub sleeper_cpu_ns: f64,
    /// Ordinary tasks' (hogs' and sleepers') CPU, all of them, at the fair share and without
    /// the attack.
    pub ordinary_cpu_ns: f64,
    pub ordinary_alone_cpu_ns: f64,
    /// `ordinary_alone_cpu_ns / ordinary_cpu_ns` (1 when there are no ordinary tasks).
    pub slowdown: f64,
}

/// The collector CPU (ns) that records `events` events without loss: `events * per_event +
/// ceil(events / capacity) * per_wakeup`.
pub fn collector_need_ns(events: u64, config: &SimConfig) -> f64 {
    let wakeups = events.div_ceil(config.ring_capacity_events.max(1));
    events as f64 * config.collector.per_event_cost_ns as f64
        + wakeups as f64 * config.collector.wakeup_cost_ns as f64
}

/// The most events one collector thread can record in `duration_ns` (step 2).
fn max_events(config: &SimConfig) -> u64 {
    let budget = config.duration_ns as f64;
    let (mut lo, mut hi) = (
        0u64,
        config.duration_ns / config.collector.per_event_cost_ns.max(1),
    );
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if collector_need_ns(mid, config) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The fair-share reference for `config` (see the module docs for the derivation).
pub fn fair_share(config: &SimConfig) -> FairShare {
    let t = config.duration_ns as f64;
    let total = config.cpus.max(1) as f64 * t;
    let cost = config.syscall_cost_ns.max(1) as f64;
    let cycle = (config.sleeper_run_ns + config.sleeper_sleep_ns).max(1) as f64;
    let sleeper_demand = t * config.sleeper_run_ns as f64 / cycle;
    let (producers, hogs, sleepers) = (
        config.producers as f64,
        config.hogs as f64,
        config.sleepers as f64,
    );
    let producer_cap = max_events(config) as f64 * cost;
    // Everything at fair level x: (producers' CPU, events, collector CPU, ordinary CPU).
    let at = |x: f64| {
        let producer_cpu = (producers * x.min(t)).min(producer_cap);
        // (A millionth of an event of slack: bisection approaches the level from below.)
        let events = (producer_cpu / cost + 1e-6).floor() as u64;
        let ordinary = hogs * x.min(t) + sleepers * x.min(sleeper_demand);
        (
            producer_cpu,
            events,
            collector_need_ns(events, config),
            ordinary,
        )
    };
    let used = |x: f64| {
        let (p, _, c, o) = at(x);
        p + c + o
    };
    let x = largest_level(t, total, used);
    let (producer_cpu_ns, events, collector_cpu_ns, ordinary_cpu_ns) = at(x);
    let ordinary_alone_cpu_ns = {
        let alone = |x: f64| hogs * x.min(t) + sleepers * x.min(sleeper_demand);
        alone(largest_level(t, total, alone))
    };
    FairShare {
        collector_cpu_ns,
        events,
        wakeups: events.div_ceil(config.ring_capacity_events.max(1)),
        fair_share_ns: x,
        producer_cpu_ns,
        producers_capped: producers * x.min(t) > producer_cap,
        hog_cpu_ns: x.min(t),
        sleeper_cpu_ns: x.min(sleeper_demand),
        ordinary_cpu_ns,
        ordinary_alone_cpu_ns,
        slowdown: if ordinary_cpu_ns > 0.0 {
            ordinary_alone_cpu_ns / ordinary_cpu_ns
        } else {
            1.0
        },
    }
}

/// The largest level `x` in `0..=cap` with `used(x) <= total` (`used` does not decrease).
fn largest_level(cap: f64, total: f64, used: impl Fn(f64) -> f64) -> f64 {
    if used(cap) <= total {
        return cap;
    }
    let (mut lo, mut hi) = (0.0, cap);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if used(mid) <= total {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-3 {
            break;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::CollectorModel;

    /// Costs chosen so the hand computation comes out round: every event costs the collector
    /// `c_e + c_w / K` = 1500 + 50000 / 100 = 2000 ns, half a producer's 4000 ns.
    fn config(cpus: usize, producers: usize, hogs: usize, sleepers: usize) -> SimConfig {
        SimConfig {
            cpus,
            duration_ns: 1_000_000_000,
            producers,
            hogs,
            sleepers,
            syscall_cost_ns: 4_000,
            ring_capacity_events: 100,
            collector: CollectorModel {
                per_event_cost_ns: 1_500,
                wakeup_cost_ns: 50_000,
                switch_cost_ns: 0,
                wakeup_latency_ns: 20_000,
                notify_cost_ns: 0,
                stall_histogram: None,
                stalls_per_event: 0.0,
                wakeup_latency_histogram: None,
                nice: 0,
            },
            sleeper_run_ns: 200_000,
            sleeper_sleep_ns: 800_000,
            ..SimConfig::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn collector_need_counts_one_wakeup_per_ring_full() {
        let c = config(2, 1, 0, 0);
        assert_eq!(collector_need_ns(0, &c), 0.0);
        // 1 event: 1500 + one wakeup.
        assert_eq!(collector_need_ns(1, &c), 51_500.0);
        // 100 events fit one ring: one wakeup; 101 need two.
        assert_eq!(collector_need_ns(100, &c), 200_000.0);
        assert_eq!(collector_need_ns(101, &c), 251_500.0);
    }

    #[test]
    fn contended_two_cpus_one_producer_one_hog() {
        // U(x) = x (producer) + x/4000 * 2000 (collector) + x (hog) = 2.5 x = 2 s: x = 0.8 s.
        // E = 0.8e9 / 4000 = 200,000 events, 2,000 wakeups, collector 0.3 + 0.1 = 0.4 s.
        // Alone the hog gets a whole CPU (1 s): slowdown 1 / 0.8 = 1.25.
        let o = fair_share(&config(2, 1, 1, 0));
        assert!(close(o.fair_share_ns, 0.8e9), "{o:?}");
        assert_eq!(o.events, 200_000);
        assert_eq!(o.wakeups, 2_000);
        assert!(close(o.collector_cpu_ns, 0.4e9), "{o:?}");
        assert!(close(o.producer_cpu_ns, 0.8e9));
        assert!(close(o.ordinary_cpu_ns, 0.8e9));
        assert!(close(o.ordinary_alone_cpu_ns, 1e9));
        assert!(close(o.slowdown, 1.25), "{o:?}");
        assert!(!o.producers_capped);
    }

    #[test]
    fn uncontended_machine_costs_ordinary_tasks_nothing() {
        // 8 CPUs, 1 producer and 1 hog: each gets all of T = 1 s; E = 250,000 events, 2,500
        // wakeups: collector 0.375 + 0.125 = 0.5 s.
        let o = fair_share(&config(8, 1, 1, 0));
        assert_eq!(o.fair_share_ns, 1e9);
        assert_eq!(o.events, 250_000);
        assert_eq!(o.collector_cpu_ns, 0.5e9);
        assert_eq!(o.slowdown, 1.0);
    }

    #[test]
    fn one_collector_thread_caps_the_producers() {
        // 4 CPUs, 8 producers, 2 hogs, 1 sleeper (it can use 0.2 s). Fair sharing alone would
        // give U(x) = 8x + 4x (collector) + 2x + 0.2 s = 4 s, x = 0.271 s, and a collector
        // needing 4x = 1.09 s: more than one thread has. need(E) <= 1 s gives E_max = 500,000
        // (500,000 x 2000 ns = 1 s), so the producers are held to 500,000 x 4000 ns = 2 s in
        // all and the collector takes a whole CPU. Then U(x) = 2 + 1 + 2x + 0.2 = 4 s: x = 0.4 s
        // for each hog, 0.2 s for the sleeper, 1 s of ordinary CPU where alone they would get
        // 1 + 1 + 0.2 = 2.2 s: slowdown 2.2.
        let o = fair_share(&config(4, 8, 2, 1));
        assert!(o.producers_capped);
        assert_eq!(o.events, 500_000);
        assert!(close(o.collector_cpu_ns, 1e9));
        assert!(close(o.producer_cpu_ns, 2e9));
        assert!(close(o.sleeper_cpu_ns, 0.2e9), "{o:?}");
        assert!(close(o.hog_cpu_ns, 0.4e9), "{o:?}");
        assert!(close(o.ordinary_cpu_ns, 1e9));
        assert!(close(o.ordinary_alone_cpu_ns, 2.2e9));
        assert!(close(o.slowdown, 2.2), "{o:?}");
        // With 8 CPUs the same attack leaves the ordinary tasks all they can use.
        let roomy = fair_share(&config(8, 8, 2, 1));
        assert!(roomy.producers_capped);
        assert_eq!(roomy.fair_share_ns, 1e9);
        assert!(close(roomy.slowdown, 1.0));
    }

    #[test]
    fn no_ordinary_tasks_no_slowdown_and_no_attack_no_collector() {
        let o = fair_share(&config(2, 4, 0, 0));
        assert_eq!(o.slowdown, 1.0);
        assert_eq!(o.ordinary_cpu_ns, 0.0);
        let quiet = fair_share(&config(2, 0, 3, 0));
        assert_eq!(quiet.collector_cpu_ns, 0.0);
        assert!(close(quiet.hog_cpu_ns, 2e9 / 3.0));
        assert!(close(quiet.slowdown, 1.0));
    }
}
