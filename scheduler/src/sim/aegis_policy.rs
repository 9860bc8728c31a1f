//! Aegis in the simulator: the policy core of [`crate::aegis`] driving the engine.
//!
//! Levels come from [`Backbone::classify`] (the collector is registered as provenance; a task
//! whose syscalls in the last window cross the threshold is a producer). Picks follow
//! [`Backbone::choose`]. Slices and preemption follow the current [`Action`] (its docs hold the
//! contract the BPF scheduler implements): provenance slices are `base << collector_boost`;
//! under boost 0 a provenance task never preempts, under boost 1 a runnable provenance task
//! preempts a running producer once the ring is [`PREEMPT_FILL_PCT`] % full (on wakeup, or
//! when the fill reaches it while the task waits: [`Policy::preempt_fill_pct`]), under boost 2
//! at once on wakeup; producer slices are `base >> producer_throttle`. Whatever the action,
//! producers are held back from [`HOLD_FILL_PCT`] % of the ring (the collector, always alive
//! here, drains first): a queued producer is not picked unless it is past its wait bound, a
//! running one gives up its CPU, and a CPU with only held producers to run stays idle, as the
//! BPF scheduler's dispatch and `sys_enter` kick do. A task is overdue half a tick before its
//! bound, and while the collector has a backlog (the ring past [`PREEMPT_FILL_PCT`] % or the
//! hold line) half a tick later, at its bound (as `promote_after_ns` in the BPF scheduler). An
//! overdue task takes a CPU at the next tick (the BPF scheduler also kicks one at once with a
//! timer, so the simulator's waits past a bound can be up to a tick longer than the kernel's).
//! At the end of every window the quantized state goes through
//! the [`DeltaGate`] and, if it moved, the Q-network picks the next action. Without a network
//! the action stays fixed: levels and the waiting bound only (the ablation baseline).
//!
//! Not modelled: the BPF scheduler's deferred collector wakeup (`--wake-fill-pct`: a collector
//! woken by a producer's event into a nearly empty ring waits for the ring to fill before it
//! takes an idle CPU) and its deadline timer's requeueing of overdue tasks queued deeper than
//! its scans look. Here a woken collector takes an idle CPU at once, and every queued task is
//! seen.

use crate::aegis::gate::DeltaGate;
use crate::aegis::levels::{Backbone, Level, TaskSignals, NR_LEVELS};
use crate::aegis::qnet::{Action, QNet, State, BASE_SLICE_NS, HOLD_FILL_PCT, PREEMPT_FILL_PCT};

use super::policy::{Entity, Policy, QueueView};

/// What Aegis did during a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AegisStats {
    pub max_wait_ns: [u64; NR_LEVELS],
    /// Picks of a task that had waited longer than its level's bound plus one tick.
    pub bound_violations: u64,
    pub nr_inferences: u64,
    pub nr_skipped: u64,
    /// Windows spent under each action index.
    pub action_windows: Vec<u64>,
}

pub struct Aegis {
    pub backbone: Backbone,
    pub base_slice_ns: u64,
    pub tick_ns: u64,
    pub network: Option<QNet>,
    pub gate: DeltaGate,
    /// `false`: run the network every window, the gate only counting (the no-gating ablation;
    /// a gate with delta 0 still skips windows whose state did not change at all).
    pub gating: bool,
    pub action: Action,
    /// The fill producers are held back from ([`HOLD_FILL_PCT`]; `None`: never, an ablation).
    pub hold_fill_pct: Option<u32>,
    pub stats: AegisStats,
    min_vruntime: u64,
}

impl Aegis {
    /// `network: None` is the levels + waiting bound baseline with a fixed action.
    pub fn new(network: Option<QNet>, tick_ns: u64, delta: u32) -> Self {
        Aegis {
            backbone: Backbone::default(),
            base_slice_ns: BASE_SLICE_NS,
            tick_ns,
            network,
            gate: DeltaGate::new(delta),
            gating: true,
            action: Action {
                collector_boost: 1,
                producer_throttle: 0,
            },
            hold_fill_pct: Some(HOLD_FILL_PCT),
            stats: AegisStats {
                action_windows: vec![0; crate::aegis::qnet::NR_ACTIONS],
                ..AegisStats::default()
            },
            min_vruntime: 0,
        }
    }

    pub fn level_of(&self, e: &Entity) -> Level {
        self.backbone.classify(TaskSignals {
            provenance: e.provenance,
            recent_syscalls: e.recent_syscalls,
        })
    }

    fn slice_ns(&self, level: Level) -> u64 {
        match level {
            Level::Provenance => self.action.provenance_slice_ns(self.base_slice_ns),
            Level::Ordinary => self.base_slice_ns,
            Level::Producer => self.action.producer_slice_ns(self.base_slice_ns),
        }
    }

    /// Whether producers are held back at this view's ring fill.
    fn holding(&self, view: &QueueView) -> bool {
        self.hold_fill_pct
            .is_some_and(|pct| view.ring_fill_pct >= pct)
    }

    /// A wait as the overdue rule counts it: a task is promoted half a tick before its bound
    /// (the kernel's timer and kick take time), and while the collector has a backlog it yields
    /// half a tick more, so it is promoted at its bound. As `promote_after_ns` in the BPF
    /// scheduler; [`Backbone::choose`] and `overdue_ns` take this in place of the wait.
    fn promotion_wait_ns(&self, waited_ns: u64, view: &QueueView) -> u64 {
        let lead_ns = self.tick_ns / 2;
        let backlog = view.ring_fill_pct >= PREEMPT_FILL_PCT || self.holding(view);
        let yield_ns = if backlog { self.tick_ns / 2 } else { 0 };
        (waited_ns + lead_ns).saturating_sub(yield_ns)
    }

    /// The state the network sees, from the engine's view.
    pub fn observe(&self, view: &QueueView) -> State {
        State {
            production_rate_per_s: view.production_rate_per_s,
            ring_fill_pct: view.ring_fill_pct,
            collector_cpu_pct: view.collector_cpu_pct,
            runnable: view.runnable_by_level,
            oldest_wait_us: [
                (view.oldest_wait_ns_by_level[1] / 1_000) as u32,
                (view.oldest_wait_ns_by_level[2] / 1_000) as u32,
            ],
        }
    }
}

impl Policy for Aegis {
    fn name(&self) -> &'static str {
        if self.network.is_some() {
            "aegis"
        } else {
            "aegis-no-net"
        }
    }

    fn place(&mut self, e: &mut Entity, view: &QueueView) {
        self.min_vruntime = self.min_vruntime.max(view.min_vruntime);
        e.vruntime = e.vruntime.max(self.min_vruntime);
        e.started = true;
    }

    fn sleep(&mut self, _e: &mut Entity, view: &QueueView) {
        self.min_vruntime = self.min_vruntime.max(view.min_vruntime);
    }

    fn charge(&mut self, e: &mut Entity, ran_ns: u64) {
        e.vruntime += ran_ns * 1024 / e.weight.max(1);
    }

    fn pick(&self, candidates: &[&Entity], view: &QueueView) -> usize {
        let mut queued = [(Level::Ordinary, 0u64, 0u64); 64];
        if candidates.len() > queued.len() {
            // More candidates than the scratch array: fall back to an allocation.
            let all: Vec<_> = candidates
                .iter()
                .map(|e| {
                    (
                        self.level_of(e),
                        self.promotion_wait_ns(view.now_ns - e.runnable_since_ns, view),
                        e.vruntime,
                    )
                })
                .collect();
            return self.backbone.choose(&all).unwrap_or(0);
        }
        for (slot, e) in queued.iter_mut().zip(candidates) {
            *slot = (
                self.level_of(e),
                self.promotion_wait_ns(view.now_ns - e.runnable_since_ns, view),
                e.vruntime,
            );
        }
        self.backbone
            .choose(&queued[..candidates.len()])
            .unwrap_or(0)
    }

    fn tick(&mut self, e: &mut Entity, ran_since_pick_ns: u64, view: &QueueView) -> bool {
        self.min_vruntime = self.min_vruntime.max(view.min_vruntime);
        // An overdue waiting task takes the CPU at the next tick, a draining collector's too.
        let someone_overdue = Level::ALL.iter().any(|level| {
            let wait_ns = self.promotion_wait_ns(view.oldest_wait_ns_by_level[level.index()], view);
            self.backbone.overdue_ns(*level, wait_ns) > 0
        });
        someone_overdue || ran_since_pick_ns >= self.slice_ns(self.level_of(e))
    }

    fn preempts(&self, woken: &Entity, running: &Entity, view: &QueueView) -> bool {
        self.level_of(woken) == Level::Provenance
            && self.level_of(running) == Level::Producer
            && self.action.provenance_preempts(view.ring_fill_pct)
    }

    fn preempt_fill_pct(&self) -> Option<u32> {
        (self.action.collector_boost == 1).then_some(PREEMPT_FILL_PCT)
    }

    fn hold_fill_pct(&self) -> Option<u32> {
        self.hold_fill_pct
    }

    fn holds(&self, e: &Entity, running: bool, view: &QueueView) -> bool {
        self.holding(view)
            && self.level_of(e) == Level::Producer
            && (running
                || self.backbone.overdue_ns(
                    Level::Producer,
                    self.promotion_wait_ns(view.now_ns - e.runnable_since_ns, view),
                ) == 0)
    }

    fn window(&mut self, view: &QueueView) {
        if let Some(network) = &self.network {
            let state = self.observe(view).quantize();
            let run = if self.gating {
                self.gate.should_run(&state)
            } else {
                self.gate.nr_run += 1;
                true
            };
            if run {
                self.action = network.act(&state);
            }
            self.stats.nr_inferences = self.gate.nr_run;
            self.stats.nr_skipped = self.gate.nr_skipped;
        }
        self.stats.action_windows[self.action.index()] += 1;
    }

    fn on_pick(&mut self, e: &Entity, now_ns: u64) {
        let level = self.level_of(e);
        let waited = now_ns - e.runnable_since_ns;
        let max = &mut self.stats.max_wait_ns[level.index()];
        *max = (*max).max(waited);
        if waited > self.backbone.wait_bound_ns(level) + self.tick_ns {
            self.stats.bound_violations += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::policy::{Entity, QueueView};
    use crate::sim::{simulate, Eevdf, SimConfig};
    use rand::SeedableRng;

    /// An untrained network with seeded random weights: exercises the mechanics only.
    fn random_network(seed: u64) -> QNet {
        QNet::random(
            &mut rand::rngs::StdRng::seed_from_u64(seed),
            -256..256,
            0..1,
        )
    }

    #[test]
    fn levels_alone_protect_the_collector() {
        let config = SimConfig::default();
        let eevdf = simulate(&config, &mut Eevdf::new(config.cpus, config.tick_ns));
        let mut aegis = Aegis::new(None, config.tick_ns, 0);
        let aegis_run = simulate(&config, &mut aegis);
        assert_eq!(aegis_run.policy, "aegis-no-net");
        assert!(
            aegis_run.loss_pct < eevdf.loss_pct / 2.0,
            "aegis {} vs eevdf {}",
            aegis_run.loss_pct,
            eevdf.loss_pct
        );
    }

    #[test]
    fn no_task_waits_past_its_bound_plus_a_tick() {
        let config = SimConfig {
            hogs: 2,
            sleepers: 2,
            producers: 4,
            ..SimConfig::default()
        };
        for collector_boost in 0..3u8 {
            let mut aegis = Aegis::new(None, config.tick_ns, 0);
            aegis.action = Action {
                collector_boost,
                producer_throttle: 0,
            };
            simulate(&config, &mut aegis);
            assert_eq!(
                aegis.stats.bound_violations, 0,
                "boost {collector_boost}: {:?}",
                aegis.stats
            );
            for level in Level::ALL {
                let bound = aegis.backbone.wait_bound_ns(level) + config.tick_ns;
                assert!(
                    aegis.stats.max_wait_ns[level.index()] <= bound,
                    "{:?}",
                    aegis.stats
                );
            }
        }
    }

    fn with_action(collector_boost: u8, producer_throttle: u8, tick_ns: u64) -> Aegis {
        let mut aegis = Aegis::new(None, tick_ns, 0);
        aegis.action = Action {
            collector_boost,
            producer_throttle,
        };
        aegis
    }

    #[test]
    fn preemption_follows_the_boost_and_the_ring_fill() {
        let collector = Entity {
            provenance: true,
            ..Entity::default()
        };
        let producer = Entity {
            recent_syscalls: 100_000,
            ..Entity::default()
        };
        let ordinary = Entity::default();
        let at_fill = |ring_fill_pct| QueueView {
            ring_fill_pct,
            ..QueueView::default()
        };
        for fill in [0, PREEMPT_FILL_PCT - 1, PREEMPT_FILL_PCT, 100] {
            let view = at_fill(fill);
            let boost = |b| with_action(b, 0, 1_000_000);
            assert!(!boost(0).preempts(&collector, &producer, &view));
            assert_eq!(
                boost(1).preempts(&collector, &producer, &view),
                fill >= PREEMPT_FILL_PCT
            );
            assert!(boost(2).preempts(&collector, &producer, &view));
            // Only producers are preempted, and only by provenance tasks.
            assert!(!boost(2).preempts(&collector, &ordinary, &view));
            assert!(!boost(2).preempts(&producer, &producer, &view));
        }
        assert_eq!(with_action(0, 0, 1).preempt_fill_pct(), None);
        assert_eq!(
            with_action(1, 2, 1).preempt_fill_pct(),
            Some(PREEMPT_FILL_PCT)
        );
        assert_eq!(with_action(2, 0, 1).preempt_fill_pct(), None);
    }

    #[test]
    fn boost_one_serves_the_collector_when_the_ring_crosses_half_full() {
        // Every CPU runs a producer; the ring reaches half full (~65 us) long before a
        // producer's 3 ms slice ends, so only the fill crossing can get the collector a CPU in
        // time. A big ring marks the batches: the collector runs once per half ring.
        let config = SimConfig {
            producers: 2,
            ring_capacity_events: 2_000,
            ..SimConfig::default()
        };
        let run = |boost| {
            let mut aegis = with_action(boost, 0, config.tick_ns);
            // The boosts alone: the hold would keep boost 0 from overflowing too.
            aegis.hold_fill_pct = None;
            simulate(&config, &mut aegis)
        };
        let (never, half, fifo) = (run(0), run(1), run(2));
        // Boost 0 waits for a slice to end: the ring overflows.
        assert!(never.dropped > 0, "{never:?}");
        // Boost 1: the collector preempts at half full, so the ring hardly ever fills (only in
        // the first window, before the producers' syscall rate has been measured).
        assert!(
            half.loss_pct < 1.0 && half.loss_pct * 10.0 < never.loss_pct,
            "{} vs {}",
            half.loss_pct,
            never.loss_pct
        );
        assert!(
            half.max_ring_level >= config.ring_capacity_events / 2,
            "{}",
            half.max_ring_level
        );
        // ... in big batches: far fewer wakeups than the FIFO-like boost 2.
        let batch = |r: &crate::sim::SimResult| r.consumed / r.collector().wakeups.max(1);
        assert!(
            batch(&half) >= config.ring_capacity_events / 2,
            "{} events per wakeup",
            batch(&half)
        );
        assert!(
            half.collector().wakeups * 4 < fifo.collector().wakeups,
            "{} vs {} wakeups",
            half.collector().wakeups,
            fifo.collector().wakeups
        );
    }

    #[test]
    fn the_hold_keeps_producers_off_the_cpus_while_the_ring_is_nearly_full() {
        // One producer per CPU and a collector that never preempts (boost 0): without the
        // hold, producers keep their CPUs for whole slices while the ring overflows.
        let config = SimConfig {
            cpus: 8,
            producers: 8,
            hogs: 1,
            ..SimConfig::default()
        };
        let run = |hold_fill_pct| {
            let mut aegis = with_action(0, 0, config.tick_ns);
            aegis.hold_fill_pct = hold_fill_pct;
            let result = simulate(&config, &mut aegis);
            (result, aegis.stats)
        };
        let (held, stats) = run(Some(HOLD_FILL_PCT));
        let (free, _) = run(None);
        assert!(
            held.loss_pct * 5.0 < free.loss_pct,
            "{} vs {}",
            held.loss_pct,
            free.loss_pct
        );
        assert_eq!(
            held.produced,
            held.consumed + held.dropped + held.ring_level_end
        );
        assert!(held.max_ring_level <= config.ring_capacity_events);
        // CPUs idle beside held producers (by design: not counted as lost work) ...
        let busy: u64 = held.tasks.iter().map(|t| t.cpu_ns).sum();
        assert!(busy < config.duration_ns * config.cpus as u64);
        assert_eq!(held.idle_with_runnable_ns, 0);
        // ... and the hold starves nobody: every level within its bound plus a tick.
        assert_eq!(stats.bound_violations, 0, "{stats:?}");
        for level in Level::ALL {
            let bound = Backbone::default().wait_bound_ns(level) + config.tick_ns;
            assert!(stats.max_wait_ns[level.index()] <= bound, "{stats:?}");
        }
    }

    #[test]
    fn held_producers_are_picked_once_overdue_and_preempted_when_running() {
        let aegis = with_action(1, 0, 1_000_000);
        let bound = aegis.backbone.wait_bound_ns(Level::Producer);
        let producer = Entity {
            recent_syscalls: 100_000,
            runnable_since_ns: 0,
            ..Entity::default()
        };
        let ordinary = Entity::default();
        let view = |ring_fill_pct, now_ns| QueueView {
            ring_fill_pct,
            now_ns,
            ..QueueView::default()
        };
        assert!(!aegis.holds(&producer, false, &view(HOLD_FILL_PCT - 1, 0)));
        assert!(aegis.holds(&producer, false, &view(HOLD_FILL_PCT, 0)));
        assert!(aegis.holds(&producer, true, &view(100, bound + 1)));
        // Past its bound it may be picked (and is preempted again once it runs).
        assert!(!aegis.holds(&producer, false, &view(100, bound + 1)));
        assert!(!aegis.holds(&ordinary, true, &view(100, 0)));
        let mut never = with_action(1, 0, 1_000_000);
        never.hold_fill_pct = None;
        assert!(!never.holds(&producer, true, &view(100, 0)));
    }

    #[test]
    fn delta_gate_skips_inferences() {
        let config = SimConfig::default();
        // Windows that end before the run does.
        let windows = (config.duration_ns - 1) / config.window_ns;
        let run = |delta| {
            let mut aegis = Aegis::new(Some(random_network(3)), config.tick_ns, delta);
            simulate(&config, &mut aegis);
            aegis.stats
        };
        let every = run(0);
        let gated = run(64);
        assert_eq!(every.nr_inferences + every.nr_skipped, windows);
        assert_eq!(gated.nr_inferences + gated.nr_skipped, windows);
        assert!(
            gated.nr_inferences < every.nr_inferences,
            "{gated:?} vs {every:?}"
        );
        // Without gating the network runs every window, and acts as delta 0 does (a state
        // that did not move gives the same action).
        let mut ungated = Aegis::new(Some(random_network(3)), config.tick_ns, 0);
        ungated.gating = false;
        let result = simulate(&config, &mut ungated);
        assert_eq!(ungated.stats.nr_inferences, windows);
        assert_eq!(ungated.stats.nr_skipped, 0);
        let mut zero = Aegis::new(Some(random_network(3)), config.tick_ns, 0);
        assert_eq!(simulate(&config, &mut zero), result);
        assert_eq!(zero.stats.action_windows, ungated.stats.action_windows);
    }
}
