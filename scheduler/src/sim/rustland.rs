//! A rustland-like policy: deadline scheduling decided in user space.
//!
//! Modelled on scx_rustland (sched-ext/scx, `scheds/rust/scx_rustland`), whose BPF part only
//! forwards tasks to a Rust scheduler in user space and dispatches what it sends back:
//!
//! - **The round trip.** Every task that becomes runnable (wakes up, or is put back at the end
//!   of its slice) reaches the user-space scheduler only [`Rustland::round_trip_ns`] later
//!   (default 50 us: BPF ring buffer -> user space -> dispatch back to BPF, lumped before the
//!   decision). The engine implements this part ([`Policy::user_space`], [`UserSpace`]).
//! - **The scheduler is a task.** It is woken when tasks reach its queue, needs a CPU like
//!   everyone else (it is dispatched directly, without the round trip, ahead of the other
//!   dispatchable tasks, but preempts nobody), and spends [`Rustland::decision_cost_ns`] of
//!   CPU per task it dispatches. Its CPU time is reported as the task of kind `scheduler`.
//! - **Deadlines.** `deadline = vruntime + min(exec_ns, 100 x slice)`: `vruntime` advances by
//!   the weighted CPU time a task uses (`ran_ns * 1024 / weight`), and a task that wakes up is
//!   given at most one slice of credit (`vruntime >= newest vruntime - slice`); `exec_ns` is the
//!   CPU time since the task last slept. Tasks that sleep often (the collector, interactive
//!   tasks) get early deadlines; CPU-bound ones (producers, hogs) accumulate `exec_ns` up to the
//!   cap and go last. The scheduler dispatches in deadline order, and CPUs pick the
//!   dispatched task with the earliest deadline.
//! - **Slices, no preemption.** A dispatched task runs for the minimum slice scaled by its
//!   weight (`slice_min * weight / 1024`, 1 ms at nice 0, as current scx_rustland dispatches;
//!   the 20 ms `slice` only bounds sleep credit and the `exec_ns` cap) and is then put back
//!   through user space if anything else waits (else it keeps its CPU); a waking task never
//!   preempts a running one.
//!
//! Left out: scx_rustland_core's in-kernel shortcuts (a waking task sent straight to an idle
//! CPU by the BPF part), per-CPU queues and topology. The model is the "everything through user
//! space" path, which is what a flood exercises.

use super::policy::{Entity, Policy, QueueView, UserSpace};

/// Defaults: a 50 us round trip, 2 us of user-space CPU per decision, scx_rustland's 20 ms
/// slice and 1 ms minimum (dispatched) slice.
pub const DEFAULT_ROUND_TRIP_NS: u64 = 50_000;
pub const DEFAULT_DECISION_COST_NS: u64 = 2_000;
pub const DEFAULT_SLICE_NS: u64 = 20_000_000;
pub const DEFAULT_SLICE_MIN_NS: u64 = 1_000_000;

/// `exec_ns` counts toward the deadline up to this many slices (scx_rustland's cap).
const EXEC_CAP_SLICES: u64 = 100;

#[derive(Clone, Debug)]
pub struct Rustland {
    pub round_trip_ns: u64,
    pub decision_cost_ns: u64,
    pub slice_ns: u64,
    pub slice_min_ns: u64,
    /// The largest vruntime seen: waking tasks are placed at most one slice behind it.
    vruntime_now: u64,
}

impl Default for Rustland {
    fn default() -> Self {
        Rustland::new(DEFAULT_ROUND_TRIP_NS, DEFAULT_DECISION_COST_NS)
    }
}

impl Rustland {
    pub fn new(round_trip_ns: u64, decision_cost_ns: u64) -> Self {
        Rustland {
            round_trip_ns,
            decision_cost_ns,
            slice_ns: DEFAULT_SLICE_NS,
            slice_min_ns: DEFAULT_SLICE_MIN_NS,
            vruntime_now: 0,
        }
    }

    fn deadline(&self, e: &Entity) -> u64 {
        e.vruntime + e.exec_ns.min(self.slice_ns * EXEC_CAP_SLICES)
    }

    /// The slice a task of `weight` is dispatched with.
    pub fn slice_of(&self, weight: u64) -> u64 {
        self.slice_min_ns * weight / 1024
    }
}

impl Policy for Rustland {
    fn name(&self) -> &'static str {
        "rustland"
    }

    fn place(&mut self, e: &mut Entity, _view: &QueueView) {
        let floor = self
            .vruntime_now
            .saturating_sub(self.slice_ns * 1024 / e.weight.max(1));
        e.vruntime = e.vruntime.max(floor);
        e.deadline = self.deadline(e);
        e.started = true;
    }

    fn sleep(&mut self, e: &mut Entity, _view: &QueueView) {
        e.exec_ns = 0;
    }

    fn charge(&mut self, e: &mut Entity, ran_ns: u64) {
        e.vruntime += ran_ns * 1024 / e.weight.max(1);
        e.exec_ns += ran_ns;
        self.vruntime_now = self.vruntime_now.max(e.vruntime);
    }

    fn pick(&self, candidates: &[&Entity], _view: &QueueView) -> usize {
        candidates
            .iter()
            .enumerate()
            .min_by_key(|(i, e)| (!e.user_scheduler, e.deadline, *i))
            .map_or(0, |(i, _)| i)
    }

    fn tick(&mut self, e: &mut Entity, ran_since_pick_ns: u64, view: &QueueView) -> bool {
        if e.user_scheduler {
            // It runs until its queue is empty (the engine puts it to sleep then).
            return false;
        }
        let waiting: u64 = view.runnable_by_level.iter().map(|n| *n as u64).sum();
        if waiting > 0 && ran_since_pick_ns >= self.slice_of(e.weight) {
            // Back through user space, with the deadline its CPU use earned.
            e.deadline = self.deadline(e);
            true
        } else {
            false
        }
    }

    fn preempts(&self, _woken: &Entity, _running: &Entity, _view: &QueueView) -> bool {
        false
    }

    fn user_space(&self) -> Option<UserSpace> {
        Some(UserSpace {
            round_trip_ns: self.round_trip_ns,
            decision_cost_ns: self.decision_cost_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{simulate, SimConfig};

    fn alone(config: SimConfig, rustland: &mut Rustland) -> crate::sim::SimResult {
        simulate(&config, rustland)
    }

    #[test]
    fn a_waking_task_runs_after_the_round_trip_and_one_decision() {
        // One sleeper, nothing else to run (the collector never wakes: no producers): every
        // wakeup waits exactly the round trip plus one decision of the user-space scheduler.
        let config = SimConfig {
            producers: 0,
            sleepers: 1,
            duration_ns: 100_000_000,
            ..SimConfig::default()
        };
        for (round_trip_ns, decision_cost_ns) in [(50_000, 2_000), (120_000, 7_000), (0, 1)] {
            let mut rustland = Rustland::new(round_trip_ns, decision_cost_ns);
            let r = alone(config.clone(), &mut rustland);
            let sleeper = r.tasks.iter().find(|t| t.kind == "sleeper").unwrap();
            assert!(sleeper.wakeups > 50, "{sleeper:?}");
            assert_eq!(sleeper.max_wait_ns, round_trip_ns + decision_cost_ns);
            // Every wakeup waited the same: total wait = wakeups x (round trip + decision),
            // less the part of a last wait cut off by the end of the run.
            let per_wakeup = round_trip_ns + decision_cost_ns;
            assert!(sleeper.wait_ns <= sleeper.wakeups * per_wakeup);
            assert!(sleeper.wait_ns + per_wakeup >= sleeper.wakeups * per_wakeup);
            // The scheduler decided once per wakeup and was paid for it.
            let scheduler = r.tasks.iter().find(|t| t.kind == "scheduler").unwrap();
            assert!(r.user_decisions >= sleeper.wakeups - 1);
            assert!(r.user_decisions <= sleeper.wakeups);
            assert_eq!(scheduler.events, r.user_decisions);
            assert_eq!(scheduler.cpu_ns, r.user_decisions * decision_cost_ns);
        }
    }

    #[test]
    fn work_conserving_except_for_the_round_trip() {
        let configs = [
            SimConfig::default(),
            SimConfig {
                cpus: 8,
                producers: 16,
                hogs: 2,
                sleepers: 3,
                ..SimConfig::default()
            },
            SimConfig {
                cpus: 4,
                producers: 1,
                hogs: 1,
                sleepers: 6,
                seed: 5,
                ..SimConfig::default()
            },
        ];
        for config in configs {
            let r = simulate(&config, &mut Rustland::default());
            // No CPU idles while a dispatched task waits.
            assert_eq!(r.idle_with_runnable_ns, 0, "{config:?}");
            // All CPU time is either used or idle for want of a dispatchable task: with
            // always-runnable tasks on every CPU, only the round trip idles CPUs.
            let busy: u64 = r.tasks.iter().map(|t| t.cpu_ns).sum();
            let total = config.duration_ns * config.cpus as u64;
            if config.producers + config.hogs >= config.cpus {
                assert_eq!(busy + r.idle_with_pending_ns, total, "{config:?}");
                assert!(r.idle_with_pending_ns < total / 20, "{r:?}");
            }
            assert_eq!(r.produced, r.consumed + r.dropped + r.ring_level_end);
            assert!(r.user_decisions > 0);
        }
    }

    #[test]
    fn a_zero_round_trip_with_many_runnable_tasks_idles_nothing() {
        // More runnable tasks than CPUs and no round trip: the scheduler's decisions are the
        // only thing between a task and a CPU, so no CPU ever waits for one.
        let config = SimConfig {
            cpus: 2,
            producers: 0,
            hogs: 4,
            ..SimConfig::default()
        };
        let r = simulate(&config, &mut Rustland::new(0, 1_000));
        let busy: u64 = r.tasks.iter().map(|t| t.cpu_ns).sum();
        // Only at the start, while the scheduler makes its first decision, does the second
        // CPU wait.
        assert_eq!(r.idle_with_pending_ns, 1_000);
        assert_eq!(busy, config.duration_ns * 2 - 1_000);
    }

    #[test]
    fn sleepers_go_first_and_hogs_share_fairly() {
        let config = SimConfig {
            cpus: 2,
            producers: 0,
            hogs: 4,
            sleepers: 2,
            ..SimConfig::default()
        };
        let r = simulate(&config, &mut Rustland::default());
        let cpu = |kind: &str| -> Vec<u64> {
            r.tasks
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| t.cpu_ns)
                .collect()
        };
        // A sleeper wants 200 us of every 1 ms; its early deadline gets it nearly all of that
        // although four hogs compete for the two CPUs.
        // A sleeper wants 200 us of every 1 ms. Its early deadline puts it ahead of the four
        // hogs as soon as it is dispatched: it waits at most the round trip, a CPU for the
        // scheduler, the decisions, and a CPU for itself (each freed within a 1 ms slice).
        let rustland = Rustland::default();
        let bound =
            rustland.round_trip_ns + 2 * rustland.slice_min_ns + 10 * rustland.decision_cost_ns;
        for t in r.tasks.iter().filter(|t| t.kind == "sleeper") {
            assert!(t.max_wait_ns <= bound, "{t:?}");
        }
        for s in cpu("sleeper") {
            assert!(s > config.duration_ns / 8, "{s}");
        }
        let hogs = cpu("hog");
        let (min, max) = (hogs.iter().min().unwrap(), hogs.iter().max().unwrap());
        assert!(*max - *min < config.duration_ns / 20, "{hogs:?}");
    }

    #[test]
    fn deadline_favours_tasks_that_sleep() {
        let mut rustland = Rustland::default();
        let view = QueueView::default();
        let mut hog = Entity {
            weight: 1024,
            ..Entity::default()
        };
        let mut sleeper = hog.clone();
        rustland.charge(&mut hog, 5_000_000);
        rustland.charge(&mut sleeper, 5_000_000);
        rustland.sleep(&mut sleeper, &view);
        rustland.place(&mut hog, &view);
        rustland.place(&mut sleeper, &view);
        assert_eq!(hog.vruntime, sleeper.vruntime);
        assert_eq!(sleeper.deadline, sleeper.vruntime);
        assert_eq!(hog.deadline, hog.vruntime + 5_000_000);
        assert_eq!(rustland.pick(&[&hog, &sleeper], &view), 1);
        // The user-space scheduler itself goes first.
        let scheduler = Entity {
            user_scheduler: true,
            deadline: u64::MAX,
            ..Entity::default()
        };
        assert_eq!(rustland.pick(&[&hog, &sleeper, &scheduler], &view), 2);
        // Sleep credit is capped at one slice.
        let mut late = Entity {
            weight: 1024,
            ..Entity::default()
        };
        rustland.charge(&mut hog, 100_000_000);
        rustland.place(&mut late, &view);
        assert_eq!(late.vruntime, hog.vruntime - DEFAULT_SLICE_NS);
    }
}
