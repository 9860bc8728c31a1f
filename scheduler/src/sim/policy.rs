//! Fair-class policies for the simulator, modelled on Linux's EEVDF (>= 6.6) and CFS (< 6.6).
//!
//! Virtual time is in "virtual nanoseconds": a task of weight `w` advances `ran_ns * 1024 / w`.

/// A task's scheduling state, owned by the engine and updated by the policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entity {
    pub weight: u64,
    pub vruntime: u64,
    /// EEVDF's virtual deadline.
    pub deadline: u64,
    /// EEVDF's lag, kept across sleeps (virtual ns; positive = owed service).
    pub lag: i64,
    /// EEVDF: V when the task last went to sleep (how far the queue moved while it slept).
    pub slept_at_avg_vruntime: u64,
    /// Whether the task ever ran (CFS places new tasks at `min_vruntime`).
    pub started: bool,
    /// Registered as a provenance task (the collector).
    pub provenance: bool,
    /// The task's syscalls per window of its own CPU time, measured over the last window in
    /// which it ran at least [`crate::aegis::levels::MIN_RATE_RUN_NS`], or the window in
    /// progress once that one's rate is higher ([`crate::aegis::levels::rate_so_far`]; a BPF
    /// `sys_enter` counter and the task's runtime give the same).
    pub recent_syscalls: u32,
    /// When the task last became runnable.
    pub runnable_since_ns: u64,
    /// CPU time since the task last went to sleep (scx_rustland's `exec_runtime`).
    pub exec_ns: u64,
    /// The user-space scheduler's own task (only with [`Policy::user_space`]).
    pub user_scheduler: bool,
}

/// What a policy may look at besides the entity it decides about.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueView {
    /// Weighted mean vruntime over queued (runnable and running) tasks: EEVDF's V.
    pub avg_vruntime: u64,
    /// Smallest vruntime over queued tasks.
    pub min_vruntime: u64,
    pub total_weight: u64,
    pub nr_queued: usize,
    pub cpus: usize,
    pub now_ns: u64,
    /// Collector ring buffer fill, 0..=100.
    pub ring_fill_pct: u32,
    /// Events produced per second over the last window.
    pub production_rate_per_s: u64,
    /// Collector CPU over the last window, percent of one CPU.
    pub collector_cpu_pct: u32,
    /// Runnable (not running) tasks per Aegis level (classified as the default backbone does).
    pub runnable_by_level: [u32; 3],
    /// The longest current wait among runnable tasks of each Aegis level.
    pub oldest_wait_ns_by_level: [u64; 3],
    /// Events produced and dropped, and CPU time of ordinary tasks, in the last window.
    pub window_produced: u64,
    pub window_dropped: u64,
    pub window_ordinary_cpu_ns: u64,
    pub nr_ordinary_tasks: u32,
    pub nr_producers: u32,
}

/// Scheduling decided in user space (scx_rustland and its kin): the engine's part of it.
///
/// A task that becomes runnable (wakes, or is put back at the end of its slice) first travels
/// to the user-space scheduler: it reaches the scheduler's queue `round_trip_ns` later (the
/// BPF -> user -> BPF path, lumped before the decision). The user-space scheduler is a task of
/// its own (kind `scheduler`): it is woken when its queue is not empty, needs a CPU like any
/// other task, and spends `decision_cost_ns` of CPU time per task it dispatches, taking them
/// in the order [`Policy::pick`] gives over the queued tasks. Only then is a task dispatchable
/// and can be picked by a CPU. The scheduler itself is dispatched directly (no round trip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserSpace {
    pub round_trip_ns: u64,
    pub decision_cost_ns: u64,
}

/// A scheduling policy over one global run queue.
pub trait Policy {
    fn name(&self) -> &'static str;
    /// The task becomes runnable (first start or wakeup).
    fn place(&mut self, e: &mut Entity, view: &QueueView);
    /// The task goes to sleep.
    fn sleep(&mut self, e: &mut Entity, view: &QueueView);
    /// Charges `ran_ns` of CPU time.
    fn charge(&mut self, e: &mut Entity, ran_ns: u64);
    /// Index into `candidates` (never empty) of the task to run next.
    fn pick(&self, candidates: &[&Entity], view: &QueueView) -> usize;
    /// Called every tick on a running task: whether to reschedule now.
    fn tick(&mut self, e: &mut Entity, ran_since_pick_ns: u64, view: &QueueView) -> bool;
    /// Whether a task that just woke should preempt a running one.
    fn preempts(&self, woken: &Entity, running: &Entity, view: &QueueView) -> bool;
    /// A ring fill (percent) at which a runnable provenance task is reconsidered for
    /// preemption: when the fill reaches it while the provenance task waits, the engine asks
    /// [`Policy::preempts`] again (the moment a BPF scheduler would see the ring cross it).
    fn preempt_fill_pct(&self) -> Option<u32> {
        None
    }
    /// A ring fill (percent) from which the policy holds some tasks back ([`Policy::holds`]):
    /// the engine stops when the fill reaches it and takes the CPU from running tasks the
    /// policy then holds.
    fn hold_fill_pct(&self) -> Option<u32> {
        None
    }
    /// Whether `e`, runnable (`running`: on a CPU), must not run now: a held task is not
    /// picked (a CPU with nothing else to run stays idle) and a running one is preempted when
    /// the fill reaches [`Policy::hold_fill_pct`].
    fn holds(&self, _e: &Entity, _running: bool, _view: &QueueView) -> bool {
        false
    }
    /// Called at the end of every signal window (see `SimConfig::window_ns`).
    fn window(&mut self, _view: &QueueView) {}
    /// Called when a task is put on a CPU.
    fn on_pick(&mut self, _e: &Entity, _now_ns: u64) {}
    /// `Some` when scheduling decisions are made in user space (see [`UserSpace`]); read once,
    /// when the simulation starts.
    fn user_space(&self) -> Option<UserSpace> {
        None
    }

    /// Whether each CPU has its own run queue (Linux's fair class) rather than the engine's
    /// one global queue: a task waits on its CPU, a waking task goes to an idle CPU or back
    /// to its last one and can preempt only there, an idle CPU pulls from the busiest queue,
    /// and each tick evens the queues out. [`QueueView`]'s vruntime figures are then the
    /// CPU's.
    fn per_cpu_run_queues(&self) -> bool {
        false
    }
}

fn scale_factor(cpus: usize) -> u64 {
    // Linux scales latency tunables by 1 + ilog2(cpus), capped at 8 CPUs.
    1 + (cpus.clamp(1, 8) as u64).ilog2() as u64
}

fn to_virtual(ns: u64, weight: u64) -> u64 {
    ns * 1024 / weight.max(1)
}

/// Earliest Eligible Virtual Deadline First.
#[derive(Clone, Debug)]
pub struct Eevdf {
    pub base_slice_ns: u64,
    pub tick_ns: u64,
    /// One run queue per CPU, as in Linux (see [`Policy::per_cpu_run_queues`]).
    pub per_cpu_run_queues: bool,
    /// Inflate a waking task's lag by (W + w) / W on placement, as Linux's place_entity
    /// does, so that it ends up exactly its lag behind the queue's new average.
    pub inflate_placement_lag: bool,
}

impl Eevdf {
    /// The simple model: one global queue, lag not inflated on placement (what the
    /// evaluation and the training use; README, sim-to-real).
    pub fn new(cpus: usize, tick_ns: u64) -> Self {
        Eevdf {
            base_slice_ns: 750_000 * scale_factor(cpus),
            tick_ns,
            per_cpu_run_queues: false,
            inflate_placement_lag: false,
        }
    }

    /// The model closest to Linux's fair class, the one `sim validate` checks by default:
    /// a run queue per CPU and Linux's lag placement (run it with the kernel's tick).
    pub fn like_linux(cpus: usize, tick_ns: u64) -> Self {
        Eevdf {
            per_cpu_run_queues: true,
            inflate_placement_lag: true,
            ..Eevdf::new(cpus, tick_ns)
        }
    }

    /// How far lag may go either way: a slice plus a tick of service (virtual ns).
    pub fn lag_limit(&self, weight: u64) -> i64 {
        to_virtual(self.base_slice_ns + self.tick_ns, weight) as i64
    }

    fn eligible(e: &Entity, view: &QueueView) -> bool {
        e.vruntime <= view.avg_vruntime
    }
}

impl Policy for Eevdf {
    fn name(&self) -> &'static str {
        "eevdf"
    }

    fn place(&mut self, e: &mut Entity, view: &QueueView) {
        let mut lag = e
            .lag
            .clamp(-self.lag_limit(e.weight), self.lag_limit(e.weight));
        if lag < 0 && e.started {
            // DELAY_DEQUEUE (on since Linux 6.12): a task that sleeps owing service stays
            // queued, ineligible, until V has moved past it, and is then dequeued with its
            // lag clipped to zero (DELAY_ZERO). So a negative lag is paid off while asleep.
            let queue_moved = view.avg_vruntime.saturating_sub(e.slept_at_avg_vruntime);
            lag = (lag + queue_moved as i64).min(0);
        }
        // Joining the queue pulls its average towards the newcomer, so (as Linux's
        // place_entity does) the lag is inflated by (W + w) / W first: after placement the
        // task is exactly `lag` behind the new average, not about half of it.
        if self.inflate_placement_lag && view.total_weight > 0 {
            lag = lag * (view.total_weight + e.weight) as i64 / view.total_weight as i64;
        }
        e.vruntime = (view.avg_vruntime as i64 - lag).max(0) as u64;
        e.deadline = e.vruntime + to_virtual(self.base_slice_ns, e.weight);
        e.started = true;
    }

    fn sleep(&mut self, e: &mut Entity, view: &QueueView) {
        let lag = view.avg_vruntime as i64 - e.vruntime as i64;
        e.lag = lag.clamp(-self.lag_limit(e.weight), self.lag_limit(e.weight));
        e.slept_at_avg_vruntime = view.avg_vruntime;
    }

    fn charge(&mut self, e: &mut Entity, ran_ns: u64) {
        e.vruntime += to_virtual(ran_ns, e.weight);
    }

    fn pick(&self, candidates: &[&Entity], view: &QueueView) -> usize {
        let best = |only_eligible: bool| {
            candidates
                .iter()
                .enumerate()
                .filter(|(_, e)| !only_eligible || Self::eligible(e, view))
                .min_by_key(|(i, e)| (e.deadline, *i))
                .map(|(i, _)| i)
        };
        best(true).or_else(|| best(false)).unwrap_or(0)
    }

    fn tick(&mut self, e: &mut Entity, _ran: u64, _view: &QueueView) -> bool {
        if e.vruntime >= e.deadline {
            e.deadline = e.vruntime + to_virtual(self.base_slice_ns, e.weight);
            true
        } else {
            false
        }
    }

    fn preempts(&self, woken: &Entity, running: &Entity, view: &QueueView) -> bool {
        Self::eligible(woken, view) && woken.deadline < running.deadline
    }

    fn per_cpu_run_queues(&self) -> bool {
        self.per_cpu_run_queues
    }
}

/// The Completely Fair Scheduler.
#[derive(Clone, Debug)]
pub struct Cfs {
    pub latency_ns: u64,
    pub min_granularity_ns: u64,
    pub wakeup_granularity_ns: u64,
    /// Monotonic floor of queued vruntimes.
    min_vruntime: u64,
}

impl Cfs {
    pub fn new(cpus: usize) -> Self {
        let factor = scale_factor(cpus);
        Cfs {
            latency_ns: 6_000_000 * factor,
            min_granularity_ns: 750_000 * factor,
            wakeup_granularity_ns: 1_000_000 * factor,
            min_vruntime: 0,
        }
    }

    fn slice_ns(&self, e: &Entity, view: &QueueView) -> u64 {
        let share = self.latency_ns as u128 * e.weight as u128 * view.cpus.max(1) as u128
            / view.total_weight.max(1) as u128;
        (share as u64).clamp(self.min_granularity_ns, self.latency_ns)
    }
}

impl Policy for Cfs {
    fn name(&self) -> &'static str {
        "cfs"
    }

    fn place(&mut self, e: &mut Entity, view: &QueueView) {
        self.min_vruntime = self.min_vruntime.max(view.min_vruntime);
        if !e.started {
            e.vruntime = self.min_vruntime;
            e.started = true;
        } else {
            // Sleeper credit: at most half a latency period behind.
            let floor = self.min_vruntime.saturating_sub(self.latency_ns / 2);
            e.vruntime = e.vruntime.max(floor);
        }
    }

    fn sleep(&mut self, _e: &mut Entity, view: &QueueView) {
        self.min_vruntime = self.min_vruntime.max(view.min_vruntime);
    }

    fn charge(&mut self, e: &mut Entity, ran_ns: u64) {
        e.vruntime += to_virtual(ran_ns, e.weight);
    }

    fn pick(&self, candidates: &[&Entity], _view: &QueueView) -> usize {
        candidates
            .iter()
            .enumerate()
            .min_by_key(|(i, e)| (e.vruntime, *i))
            .map_or(0, |(i, _)| i)
    }

    fn tick(&mut self, e: &mut Entity, ran_since_pick_ns: u64, view: &QueueView) -> bool {
        self.min_vruntime = self.min_vruntime.max(view.min_vruntime);
        ran_since_pick_ns >= self.slice_ns(e, view)
    }

    fn preempts(&self, woken: &Entity, running: &Entity, _view: &QueueView) -> bool {
        running.vruntime > woken.vruntime + to_virtual(self.wakeup_granularity_ns, woken.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eevdf_inflated_placement_leaves_the_task_its_lag_behind_the_new_average() {
        let mut eevdf = Eevdf::new(2, 1_000_000);
        eevdf.inflate_placement_lag = true;
        // One task of weight 1024 queued at V = 10 ms; a waker owed 0.5 ms joins.
        let view = QueueView {
            avg_vruntime: 10_000_000,
            total_weight: 1024,
            nr_queued: 1,
            ..QueueView::default()
        };
        let mut task = Entity {
            weight: 1024,
            lag: 500_000,
            started: true,
            ..Entity::default()
        };
        eevdf.place(&mut task, &view);
        let new_average = (10_000_000 + task.vruntime) / 2;
        assert_eq!(new_average - task.vruntime, 500_000);
        // Without the inflation it ends up only half its lag behind.
        eevdf.inflate_placement_lag = false;
        eevdf.place(&mut task, &view);
        assert_eq!((10_000_000 + task.vruntime) / 2 - task.vruntime, 250_000);
    }

    #[test]
    fn eevdf_forgives_a_sleepers_debt_as_the_queue_moves_on() {
        let mut eevdf = Eevdf::new(2, 1_000_000);
        let view_at = |avg_vruntime: u64| QueueView {
            avg_vruntime,
            ..QueueView::default()
        };
        let task_at = |vruntime: u64| Entity {
            weight: 1024,
            vruntime,
            started: true,
            ..Entity::default()
        };
        // A task that ran ahead of V by 1 ms goes to sleep owing service.
        let mut task = task_at(11_000_000);
        eevdf.sleep(&mut task, &view_at(10_000_000));
        assert_eq!(task.lag, -1_000_000);
        // Woken after V moved 0.4 ms: 0.6 ms still owed, it is placed behind V.
        let mut early = task.clone();
        eevdf.place(&mut early, &view_at(10_400_000));
        assert_eq!(early.vruntime, 11_000_000);
        // Woken after V moved past it: the debt is gone, not turned into credit.
        let mut late = task.clone();
        eevdf.place(&mut late, &view_at(15_000_000));
        assert_eq!(late.vruntime, 15_000_000);
        // A task owed service keeps its credit across the sleep.
        let mut owed = task_at(9_500_000);
        eevdf.sleep(&mut owed, &view_at(10_000_000));
        eevdf.place(&mut owed, &view_at(20_000_000));
        assert_eq!(owed.vruntime, 19_500_000);
    }
}
