//! The event loop: see the module docs of [`crate::sim`] for the model.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::latency::{LatencyHistogram, LatencySampler};
use super::policy::{Entity, Policy, QueueView, UserSpace};
use super::{weight_of_nice, SimConfig};
use crate::aegis::levels::{rate_so_far, window_rate, Backbone, TaskSignals};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Producer,
    Collector,
    Hog,
    Sleeper,
    /// The user-space scheduler's task (only under a [`Policy::user_space`] policy).
    Scheduler,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Producer => "producer",
            Kind::Collector => "collector",
            Kind::Hog => "hog",
            Kind::Sleeper => "sleeper",
            Kind::Scheduler => "scheduler",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Runnable,
    Running(usize),
    Sleeping,
    /// Woken, runnable once the wakeup latency has passed.
    Waking(u64),
}

/// Where a runnable task is on its way to a CPU. Without a user-space scheduler every runnable
/// task is `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Dispatchable: a CPU may pick it.
    Ready,
    /// On its way to the user-space scheduler; reaches its queue at this time.
    InTransit(u64),
    /// In the user-space scheduler's queue, waiting for its decision.
    Queued,
}

#[derive(Clone, Debug)]
struct Task {
    kind: Kind,
    entity: Entity,
    state: State,
    /// Meaningful while `state` is `Runnable`.
    stage: Stage,
    /// CPU time already spent toward the next syscall (producer) or event (collector).
    carry_ns: u64,
    /// Collector: CPU time still owed to the current wakeup's fixed cost.
    overhead_left_ns: u64,
    /// Sleeper: CPU time left in the current run phase.
    run_left_ns: u64,
    sleep_until_ns: u64,
    picked_at_ns: u64,
    /// The CPU whose run queue the task is on (with per-CPU run queues).
    home_cpu: usize,
    /// Time runnable or running in the current window, and its moving average as a fraction
    /// of the window (PELT's load, roughly: what load balancing weighs a task by).
    window_runnable_ns: u64,
    load: f64,
    window_syscalls: u32,
    window_ran_ns: u64,
    report: TaskReport,
}

/// Per-task outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub kind: String,
    pub cpu_ns: u64,
    pub wait_ns: u64,
    /// The longest time the task waited runnable: until a pick, or until the end of the run.
    pub max_wait_ns: u64,
    pub wakeups: u64,
    /// Syscalls issued (producer) or events consumed (collector).
    pub events: u64,
}

/// What a simulation run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    pub policy: String,
    pub produced: u64,
    pub consumed: u64,
    pub dropped: u64,
    pub ring_level_end: u64,
    pub max_ring_level: u64,
    pub loss_pct: f64,
    pub tasks: Vec<TaskReport>,
    /// Scheduling events handled (wakeups, sleeps, ticks, picks, preemptions).
    pub sched_events: u64,
    /// CPU time left idle while a dispatchable task was runnable (0 for a work-conserving
    /// engine).
    pub idle_with_runnable_ns: u64,
    /// CPU time left idle while tasks were on their way through a user-space scheduler (in
    /// transit or in its queue): the price of deciding in user space. 0 for other policies.
    #[serde(default)]
    pub idle_with_pending_ns: u64,
    /// Tasks the user-space scheduler dispatched (0 for other policies).
    #[serde(default)]
    pub user_decisions: u64,
    pub duration_ns: u64,
    /// From the moment the collector's ring stopped being empty while it slept until it ran
    /// again: what the built-in collector measures as the age of a batch's first record
    /// (`collector_wakeup_age_ns` of a real trial), for comparing the two.
    #[serde(default)]
    pub collector_wakeup_age_ns: LatencyHistogram,
}

impl SimResult {
    pub fn collector(&self) -> &TaskReport {
        self.tasks
            .iter()
            .find(|t| t.kind == "collector")
            .expect("one collector")
    }

    /// CPU time of the tasks of `kind`, summed.
    pub fn cpu_ns_of(&self, kind: &str) -> u64 {
        self.tasks
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.cpu_ns)
            .sum()
    }
}

struct Sim<'a> {
    config: &'a SimConfig,
    now_ns: u64,
    tasks: Vec<Task>,
    cpus: Vec<Option<usize>>,
    next_check_ns: Vec<u64>,
    collector: usize,
    ring_level: u64,
    produced: u64,
    consumed: u64,
    dropped: u64,
    max_ring_level: u64,
    sched_events: u64,
    idle_with_runnable_ns: u64,
    idle_with_pending_ns: u64,
    /// The user-space scheduler, if the policy has one: its model and task id.
    user_space: Option<(UserSpace, usize)>,
    user_decisions: u64,
    next_window_ns: u64,
    window_produced: u64,
    window_dropped: u64,
    window_collector_cpu_ns: u64,
    window_ordinary_cpu_ns: u64,
    signals: Signals,
    /// Draws wakeup latencies when the collector model has a measured distribution.
    latency: Option<(LatencySampler, StdRng)>,
    /// Draws the collector's stalls when the model has them.
    stalls: Option<(LatencySampler, StdRng)>,
    /// Events the collector consumes before its next stall.
    events_until_stall: u64,
    /// The collector is off its CPU in a stall (it resumes without a wakeup).
    collector_stalled: bool,
    /// One run queue per CPU ([`Policy::per_cpu_run_queues`]).
    per_cpu: bool,
    /// The task that last ran on each CPU (for the switch cost).
    last_on_cpu: Vec<Option<usize>>,
    /// When the sleeping collector's ring last stopped being empty (cleared once it runs).
    collector_notified_at_ns: Option<u64>,
    collector_wakeup_age_ns: LatencyHistogram,
}

/// Measurements of the last completed window.
#[derive(Clone, Copy, Debug, Default)]
struct Signals {
    production_rate_per_s: u64,
    collector_cpu_pct: u32,
    produced: u64,
    dropped: u64,
    ordinary_cpu_ns: u64,
}

/// What the running tasks did over one segment ([`Sim::run_cpus_for`]).
#[derive(Clone, Copy, Debug, Default)]
struct CpuProgress {
    /// Syscalls the running producers issued (events offered to the ring).
    produced: u64,
    /// Events the running collector had the CPU time to consume.
    consume_capacity: u64,
    idle_cpus: u64,
}

/// Runs one simulation.
pub fn simulate(config: &SimConfig, policy: &mut dyn Policy) -> SimResult {
    let mut sim = Sim::new(config);
    if let Some(user_space) = policy.user_space() {
        sim.add_user_scheduler(user_space);
    }
    sim.per_cpu = policy.per_cpu_run_queues() && sim.user_space.is_none();
    for id in 0..sim.tasks.len() {
        if sim.tasks[id].state == State::Runnable {
            let view = sim.view_of(Some(sim.tasks[id].home_cpu));
            policy.place(&mut sim.tasks[id].entity, &view);
            sim.route(id);
        }
    }
    sim.user_space_events(policy);
    sim.fill_idle_cpus(policy);
    while sim.now_ns < config.duration_ns {
        let next = sim
            .next_event_ns(policy.preempt_fill_pct(), policy.hold_fill_pct())
            .clamp(sim.now_ns + 1, config.duration_ns);
        sim.advance(next, policy);
        if sim.now_ns >= config.duration_ns {
            break;
        }
        sim.handle_events(policy);
        sim.fill_idle_cpus(policy);
    }
    sim.finish(policy.name())
}

impl Task {
    fn new(kind: Kind, nice: i32, state: State) -> Task {
        Task {
            kind,
            entity: Entity {
                weight: weight_of_nice(nice),
                ..Entity::default()
            },
            state,
            stage: Stage::Ready,
            carry_ns: 0,
            overhead_left_ns: 0,
            run_left_ns: 0,
            sleep_until_ns: 0,
            picked_at_ns: 0,
            home_cpu: 0,
            window_runnable_ns: 0,
            load: 0.0,
            window_syscalls: 0,
            window_ran_ns: 0,
            report: TaskReport {
                kind: kind.name().to_string(),
                ..TaskReport::default()
            },
        }
    }
}

/// The collector (task 0, asleep), the producers (runnable, each at a random point of its
/// first syscall), the hogs and the sleepers (asleep until a random moment), in that order.
fn initial_tasks(config: &SimConfig) -> Vec<Task> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut tasks = Vec::new();
    let mut collector = Task::new(Kind::Collector, config.collector.nice, State::Sleeping);
    collector.entity.provenance = true;
    tasks.push(collector);
    for _ in 0..config.producers {
        let mut producer = Task::new(Kind::Producer, 0, State::Runnable);
        // Producers start at different points of their first syscall.
        producer.carry_ns = rng.gen_range(0..config.syscall_cost_ns.max(1));
        tasks.push(producer);
    }
    for _ in 0..config.hogs {
        tasks.push(Task::new(Kind::Hog, 0, State::Runnable));
    }
    for _ in 0..config.sleepers {
        let mut sleeper = Task::new(Kind::Sleeper, 0, State::Sleeping);
        sleeper.sleep_until_ns = rng.gen_range(0..config.sleeper_sleep_ns.max(1));
        tasks.push(sleeper);
    }
    tasks
}

/// Draws the collector's wakeup latencies when the model has a measured distribution: its own
/// random stream, so such a distribution leaves the other draws as they were.
fn wakeup_latency_stream(config: &SimConfig) -> Option<(LatencySampler, StdRng)> {
    config
        .collector
        .wakeup_latency_histogram
        .as_ref()
        .map(|histogram| {
            (
                histogram.sampler(),
                StdRng::seed_from_u64(config.seed ^ 0x5eed_1a7e),
            )
        })
}

/// Draws the collector's stalls when the model has them (on a stream of their own too).
fn stall_stream(config: &SimConfig) -> Option<(LatencySampler, StdRng)> {
    config
        .collector
        .stall_histogram
        .as_ref()
        .filter(|_| config.collector.stalls_per_event > 0.0)
        .map(|histogram| {
            (
                histogram.sampler(),
                StdRng::seed_from_u64(config.seed ^ 0x057a_11ed),
            )
        })
}

impl<'a> Sim<'a> {
    fn new(config: &'a SimConfig) -> Self {
        let cpus = config.cpus.max(1);
        let mut sim = Sim {
            config,
            now_ns: 0,
            tasks: initial_tasks(config),
            cpus: vec![None; cpus],
            next_check_ns: vec![0; cpus],
            collector: 0,
            ring_level: 0,
            produced: 0,
            consumed: 0,
            dropped: 0,
            max_ring_level: 0,
            sched_events: 0,
            idle_with_runnable_ns: 0,
            idle_with_pending_ns: 0,
            user_space: None,
            user_decisions: 0,
            next_window_ns: config.window_ns.max(1),
            window_produced: 0,
            window_dropped: 0,
            window_collector_cpu_ns: 0,
            window_ordinary_cpu_ns: 0,
            signals: Signals::default(),
            latency: wakeup_latency_stream(config),
            stalls: stall_stream(config),
            events_until_stall: u64::MAX,
            collector_stalled: false,
            per_cpu: false,
            last_on_cpu: vec![None; cpus],
            collector_notified_at_ns: None,
            collector_wakeup_age_ns: LatencyHistogram::default(),
        };
        for (id, task) in sim.tasks.iter_mut().enumerate() {
            task.home_cpu = id % cpus;
        }
        sim.events_until_stall = sim.draw_events_until_stall();
        sim
    }

    /// Events until the next stall: exponential with mean 1 / `stalls_per_event` (the
    /// continuous stand-in for one chance per event).
    fn draw_events_until_stall(&mut self) -> u64 {
        let per_event = self.config.collector.stalls_per_event;
        match &mut self.stalls {
            Some((_, rng)) => {
                let uniform: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                ((-uniform.ln() / per_event).ceil() as u64).max(1)
            }
            None => u64::MAX,
        }
    }

    /// Adds the user-space scheduler's task (asleep until tasks reach its queue).
    fn add_user_scheduler(&mut self, user_space: UserSpace) {
        let id = self.tasks.len();
        let mut task = self.tasks[self.collector].clone();
        task.kind = Kind::Scheduler;
        task.entity = Entity {
            weight: weight_of_nice(0),
            user_scheduler: true,
            ..Entity::default()
        };
        task.state = State::Sleeping;
        task.report = TaskReport {
            kind: Kind::Scheduler.name().to_string(),
            ..TaskReport::default()
        };
        self.tasks.push(task);
        self.user_space = Some((user_space, id));
    }

    /// Sets where a task that just became runnable starts: dispatchable at once, or (under a
    /// user-space scheduler, for every task but the scheduler) on its way to the scheduler.
    fn route(&mut self, id: usize) {
        self.tasks[id].stage = match self.user_space {
            Some((user_space, scheduler)) if id != scheduler => {
                Stage::InTransit(self.now_ns + user_space.round_trip_ns)
            }
            _ => Stage::Ready,
        };
    }

    fn is_dispatchable(task: &Task) -> bool {
        task.state == State::Runnable && task.stage == Stage::Ready
    }

    fn view(&self) -> QueueView {
        self.view_of(None)
    }

    /// The view from `cpu`'s run queue: with per-CPU run queues its vruntime figures (V, the
    /// minimum, weight and count) are over the tasks on that CPU only.
    fn view_of(&self, cpu: Option<usize>) -> QueueView {
        let local = cpu.filter(|_| self.per_cpu);
        // Runnable counts per level as the Aegis backbone would classify the tasks.
        let classifier = Backbone::default();
        let mut weighted: u128 = 0;
        let mut view = QueueView {
            min_vruntime: u64::MAX,
            cpus: self.cpus.len(),
            now_ns: self.now_ns,
            ring_fill_pct: (self.ring_level * 100 / self.config.ring_capacity_events.max(1)) as u32,
            production_rate_per_s: self.signals.production_rate_per_s,
            collector_cpu_pct: self.signals.collector_cpu_pct,
            window_produced: self.signals.produced,
            window_dropped: self.signals.dropped,
            window_ordinary_cpu_ns: self.signals.ordinary_cpu_ns,
            nr_ordinary_tasks: (self.config.hogs + self.config.sleepers) as u32,
            nr_producers: self.config.producers as u32,
            ..QueueView::default()
        };
        for task in &self.tasks {
            if task.state == State::Runnable {
                let level = classifier.classify(TaskSignals {
                    provenance: task.entity.provenance,
                    recent_syscalls: task.entity.recent_syscalls,
                });
                view.runnable_by_level[level.index()] += 1;
                let waited = self.now_ns - task.entity.runnable_since_ns;
                let oldest = &mut view.oldest_wait_ns_by_level[level.index()];
                *oldest = (*oldest).max(waited);
            }
            if matches!(task.state, State::Runnable | State::Running(_))
                && local.is_none_or(|cpu| task.home_cpu == cpu)
            {
                weighted += task.entity.vruntime as u128 * task.entity.weight as u128;
                view.total_weight += task.entity.weight;
                view.nr_queued += 1;
                view.min_vruntime = view.min_vruntime.min(task.entity.vruntime);
            }
        }
        if view.nr_queued == 0 {
            view.min_vruntime = 0;
        } else {
            view.avg_vruntime = (weighted / view.total_weight.max(1) as u128) as u64;
        }
        view
    }

    fn running_producers(&self) -> impl Iterator<Item = &Task> {
        self.cpus
            .iter()
            .flatten()
            .map(|id| &self.tasks[*id])
            .filter(|t| t.kind == Kind::Producer)
    }

    /// The smallest ring level whose fill (`level * 100 / capacity`, as [`QueueView`] rounds
    /// it) is at least `pct`.
    fn fill_level(&self, pct: u32) -> u64 {
        (pct as u64 * self.config.ring_capacity_events).div_ceil(100)
    }

    /// How long until the running producers have issued `need` more syscalls (`need` > 0), if
    /// any producer runs.
    fn time_to_syscalls(&self, need: u64) -> Option<u64> {
        let cost = self.config.syscall_cost_ns.max(1);
        self.running_producers().next()?;
        let issued = |dt: u64| -> u64 {
            self.running_producers()
                .map(|p| (p.carry_ns + dt) / cost)
                .sum()
        };
        // One producer alone issues `need` syscalls within `need * cost`.
        let (mut lo, mut hi) = (1, need.saturating_mul(cost));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if issued(mid) >= need {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(lo)
    }

    /// The next moment something changes. `preempt_fill_pct` and `hold_fill_pct` are the
    /// policy's [`Policy::preempt_fill_pct`] and [`Policy::hold_fill_pct`].
    fn next_event_ns(&self, preempt_fill_pct: Option<u32>, hold_fill_pct: Option<u32>) -> u64 {
        let mut next = self.config.duration_ns.min(self.next_window_ns);
        for (cpu, running) in self.cpus.iter().enumerate() {
            if let Some(id) = running {
                next = next.min(self.next_check_ns[cpu]);
                let task = &self.tasks[*id];
                if task.kind == Kind::Sleeper {
                    next = next.min(self.now_ns + task.run_left_ns);
                }
            }
        }
        for task in &self.tasks {
            match (task.kind, task.state) {
                (Kind::Sleeper, State::Sleeping) => next = next.min(task.sleep_until_ns),
                (_, State::Waking(at)) => next = next.min(at),
                (_, State::Runnable) => {
                    if let Stage::InTransit(at) = task.stage {
                        next = next.min(at);
                    }
                }
                _ => {}
            }
        }
        if let Some((user_space, scheduler)) = self.user_space {
            // The user-space scheduler's next decision.
            let task = &self.tasks[scheduler];
            if matches!(task.state, State::Running(_)) {
                let cost = user_space.decision_cost_ns.max(1);
                next = next.min(self.now_ns + cost.saturating_sub(task.carry_ns).max(1));
            }
        }
        next = next.min(self.next_collector_event_ns(preempt_fill_pct));
        // The ring reaching the policy's hold line (running producers are then held).
        if let Some(pct) = hold_fill_pct {
            let target = self.fill_level(pct).min(self.config.ring_capacity_events);
            if self.ring_level < target {
                if let Some(dt) = self.time_to_rise(target - self.ring_level) {
                    next = next.min(self.now_ns + dt);
                }
            }
        }
        next
    }

    /// The next moment the collector's situation changes (`u64::MAX`: none foreseen): the
    /// first event wakes it, its wakeup overhead is paid, it reaches its next stall, its ring
    /// runs empty, or (waiting) the ring reaches the policy's preemption fill.
    fn next_collector_event_ns(&self, preempt_fill_pct: Option<u32>) -> u64 {
        let mut next = u64::MAX;
        let collector = &self.tasks[self.collector];
        let cost = self.config.syscall_cost_ns.max(1);
        match collector.state {
            // The first event into the empty ring wakes the collector.
            State::Sleeping if self.ring_level == 0 => {
                if let Some(first) = self
                    .running_producers()
                    .map(|p| p.overhead_left_ns + cost - p.carry_ns)
                    .min()
                {
                    next = next.min(self.now_ns + first);
                }
            }
            State::Running(_) if collector.overhead_left_ns > 0 => {
                next = next.min(self.now_ns + collector.overhead_left_ns);
            }
            State::Running(_) => {
                if self.stalls.is_some() {
                    // When the collector will have consumed up to its next stall.
                    let per_event = self.config.collector.per_event_cost_ns.max(1);
                    let stall_in = self
                        .events_until_stall
                        .saturating_mul(per_event)
                        .saturating_sub(collector.carry_ns);
                    next = next.min(self.now_ns.saturating_add(stall_in.max(1)));
                }
                // When the ring would run empty, if the collector outpaces the producers.
                let per_event = self.config.collector.per_event_cost_ns.max(1) as f64;
                let producing = self.running_producers().count() as f64 / cost as f64;
                let net = 1.0 / per_event - producing;
                if net > 0.0 {
                    let empty_in = (self.ring_level as f64 / net).ceil() as u64;
                    next = next.min(self.now_ns + empty_in.max(1));
                }
            }
            // A waiting collector: when the ring fill reaches the policy's preemption fill
            // (the collector consumes nothing meanwhile, so the level only rises).
            State::Runnable => {
                if let Some(pct) = preempt_fill_pct {
                    let target = self.fill_level(pct).min(self.config.ring_capacity_events);
                    if self.ring_level < target {
                        if let Some(dt) = self.time_to_syscalls(target - self.ring_level) {
                            next = next.min(self.now_ns + dt);
                        }
                    }
                }
            }
            _ => {}
        }
        next
    }

    /// How long until the ring has risen by `need` events, if it is rising: the running
    /// producers' syscalls, less what a running collector (past its overhead) drains.
    fn time_to_rise(&self, need: u64) -> Option<u64> {
        let collector = &self.tasks[self.collector];
        if !matches!(collector.state, State::Running(_)) || collector.overhead_left_ns > 0 {
            // Nothing drains meanwhile (a collector still paying its overhead drains later:
            // an early stop, re-planned then).
            return self.time_to_syscalls(need);
        }
        let cost = self.config.syscall_cost_ns.max(1) as f64;
        let per_event = self.config.collector.per_event_cost_ns.max(1) as f64;
        let net = self.running_producers().count() as f64 / cost - 1.0 / per_event;
        (net > 0.0).then(|| ((need as f64 / net).ceil() as u64).max(1))
    }

    /// Integrates the running tasks' progress up to `until_ns`.
    fn advance(&mut self, until_ns: u64, policy: &mut dyn Policy) {
        let dt = until_ns - self.now_ns;
        let progress = self.run_cpus_for(dt, policy);
        self.account_waiting(dt, progress.idle_cpus, policy);
        self.move_ring_traffic(progress.produced, progress.consume_capacity);
        self.now_ns = until_ns;
    }

    /// Charges `dt` of CPU to every running task and advances what it does with it: producers
    /// issue syscalls, the collector gains capacity to consume, sleepers run down their phase.
    fn run_cpus_for(&mut self, dt: u64, policy: &mut dyn Policy) -> CpuProgress {
        let window_ns = self.config.window_ns.max(1);
        let cost = self.config.syscall_cost_ns.max(1);
        let per_event = self.config.collector.per_event_cost_ns.max(1);
        let mut progress = CpuProgress::default();
        for cpu in 0..self.cpus.len() {
            let Some(id) = self.cpus[cpu] else {
                progress.idle_cpus += 1;
                continue;
            };
            let task = &mut self.tasks[id];
            task.report.cpu_ns += dt;
            task.window_ran_ns += dt;
            task.window_runnable_ns += dt;
            policy.charge(&mut task.entity, dt);
            match task.kind {
                Kind::Producer => {
                    let paid = task.overhead_left_ns.min(dt);
                    task.overhead_left_ns -= paid;
                    let total = task.carry_ns + dt - paid;
                    let syscalls = total / cost;
                    task.carry_ns = total % cost;
                    task.report.events += syscalls;
                    task.window_syscalls = task.window_syscalls.saturating_add(syscalls as u32);
                    progress.produced += syscalls;
                    // The scheduler's syscall counter sees the rate rise within the window.
                    if let Some(rate) =
                        rate_so_far(task.window_syscalls, task.window_ran_ns, window_ns)
                    {
                        task.entity.recent_syscalls = task.entity.recent_syscalls.max(rate);
                    }
                }
                Kind::Collector => {
                    self.window_collector_cpu_ns += dt;
                    let paid = task.overhead_left_ns.min(dt);
                    task.overhead_left_ns -= paid;
                    let total = task.carry_ns + dt - paid;
                    progress.consume_capacity = total / per_event;
                    task.carry_ns = total % per_event;
                }
                Kind::Sleeper => {
                    task.run_left_ns = task.run_left_ns.saturating_sub(dt);
                    self.window_ordinary_cpu_ns += dt;
                }
                Kind::Hog => self.window_ordinary_cpu_ns += dt,
                Kind::Scheduler => task.carry_ns += dt,
            }
        }
        progress
    }

    /// Charges `dt` of waiting to every runnable task, and the CPU time left idle beside
    /// dispatchable tasks (or tasks on their way through a user-space scheduler).
    fn account_waiting(&mut self, dt: u64, idle_cpus: u64, policy: &mut dyn Policy) {
        let (mut runnable, mut pending) = (0u64, 0u64);
        // Held tasks are runnable but not dispatchable: an idle CPU beside them is the
        // policy's choice, not lost work. (Asked only when a CPU idles: the view costs.)
        let holding = idle_cpus > 0
            && policy
                .hold_fill_pct()
                .is_some_and(|pct| self.ring_level >= self.fill_level(pct));
        let view = holding.then(|| self.view());
        for task in &mut self.tasks {
            if task.state == State::Runnable {
                task.report.wait_ns += dt;
                task.window_runnable_ns += dt;
                if task.stage != Stage::Ready {
                    pending += 1;
                } else if !view
                    .as_ref()
                    .is_some_and(|view| policy.holds(&task.entity, false, view))
                {
                    runnable += 1;
                }
            }
        }
        self.idle_with_runnable_ns += dt * idle_cpus.min(runnable);
        self.idle_with_pending_ns += dt * idle_cpus.saturating_sub(runnable).min(pending);
    }

    /// Ring traffic over a segment: `produced` events in, up to `consume_capacity` out. Within
    /// a segment the level only rises or only falls; what does not fit is dropped.
    fn move_ring_traffic(&mut self, produced: u64, consume_capacity: u64) {
        let available = self.ring_level + produced;
        let consumed = consume_capacity.min(available);
        if consumed < consume_capacity {
            // Ran dry mid-segment: the rest of its time found nothing to consume.
            self.tasks[self.collector].carry_ns = 0;
        }
        let mut level = available - consumed;
        let capacity = self.config.ring_capacity_events;
        if level > capacity {
            self.dropped += level - capacity;
            self.window_dropped += level - capacity;
            level = capacity;
        }
        self.tasks[self.collector].report.events += consumed;
        if self.stalls.is_some() {
            self.events_until_stall = self.events_until_stall.saturating_sub(consumed);
        }
        self.produced += produced;
        self.window_produced += produced;
        self.consumed += consumed;
        self.ring_level = level;
        self.max_ring_level = self.max_ring_level.max(level);
    }

    /// `id` becomes runnable; `woken` says whether that counts as a wakeup (a collector back
    /// from a stall is still in the batch it was reading).
    fn make_runnable(&mut self, id: usize, woken: bool, policy: &mut dyn Policy) {
        if self.per_cpu {
            // Back to its last CPU if idle, else to another idle one, else queued on its last.
            let last = self.tasks[id].home_cpu;
            if self.cpus[last].is_some() {
                if let Some(idle) = self.cpus.iter().position(Option::is_none) {
                    self.tasks[id].home_cpu = idle;
                }
            }
        }
        let view = self.view_of(Some(self.tasks[id].home_cpu));
        let task = &mut self.tasks[id];
        task.state = State::Runnable;
        task.entity.runnable_since_ns = self.now_ns;
        task.report.wakeups += u64::from(woken);
        policy.place(&mut task.entity, &view);
        self.sched_events += 1;
        self.route(id);
        if self.tasks[id].stage == Stage::Ready {
            self.try_preempt(id, policy);
        }
    }

    fn put_to_sleep(&mut self, id: usize, policy: &mut dyn Policy) {
        let view = self.view_of(Some(self.tasks[id].home_cpu));
        let task = &mut self.tasks[id];
        if let State::Running(cpu) = task.state {
            self.cpus[cpu] = None;
        }
        policy.sleep(&mut task.entity, &view);
        task.state = State::Sleeping;
        self.sched_events += 1;
    }

    /// A task that just became runnable takes a CPU from one it should preempt.
    fn try_preempt(&mut self, id: usize, policy: &mut dyn Policy) {
        if self.cpus.iter().any(Option::is_none) {
            return;
        }
        let view = self.view_of(Some(self.tasks[id].home_cpu));
        let home = self.tasks[id].home_cpu;
        let victim_cpu = (0..self.cpus.len())
            .filter(|cpu| !self.per_cpu || *cpu == home)
            .find(|cpu| {
                let running = self.cpus[*cpu].expect("all CPUs busy");
                policy.preempts(&self.tasks[id].entity, &self.tasks[running].entity, &view)
            });
        if let Some(cpu) = victim_cpu {
            let victim = self.cpus[cpu].take().expect("busy CPU");
            self.tasks[victim].state = State::Runnable;
            self.tasks[victim].entity.runnable_since_ns = self.now_ns;
            self.route(victim);
            self.run_on(cpu, id, policy);
        }
    }

    fn run_on(&mut self, cpu: usize, id: usize, policy: &mut dyn Policy) {
        policy.on_pick(&self.tasks[id].entity, self.now_ns);
        if let Some(previous) = self.last_on_cpu[cpu].replace(id) {
            let same_process = previous == id
                || (self.tasks[previous].kind == Kind::Producer
                    && self.tasks[id].kind == Kind::Producer);
            let pays = matches!(self.tasks[id].kind, Kind::Producer | Kind::Collector);
            if !same_process && pays {
                self.tasks[id].overhead_left_ns += self.config.collector.switch_cost_ns;
            }
        }
        if id == self.collector {
            if let Some(notified_at) = self.collector_notified_at_ns.take() {
                self.collector_wakeup_age_ns
                    .record(self.now_ns - notified_at);
            }
        }
        let task = &mut self.tasks[id];
        let waited = self.now_ns - task.entity.runnable_since_ns;
        task.report.max_wait_ns = task.report.max_wait_ns.max(waited);
        task.state = State::Running(cpu);
        task.picked_at_ns = self.now_ns;
        self.cpus[cpu] = Some(id);
        self.next_check_ns[cpu] = self.now_ns + self.config.tick_ns;
        self.sched_events += 1;
    }

    /// Ends a signal window: publishes rates and lets the policy decide.
    fn end_window(&mut self, policy: &mut dyn Policy) {
        let window = self.config.window_ns.max(1);
        self.signals = Signals {
            production_rate_per_s: self.window_produced * 1_000_000_000 / window,
            collector_cpu_pct: (self.window_collector_cpu_ns * 100 / window) as u32,
            produced: self.window_produced,
            dropped: self.window_dropped,
            ordinary_cpu_ns: self.window_ordinary_cpu_ns,
        };
        for task in &mut self.tasks {
            if let Some(rate) = window_rate(task.window_syscalls, task.window_ran_ns, window) {
                task.entity.recent_syscalls = rate;
            }
            task.window_syscalls = 0;
            task.window_ran_ns = 0;
            let runnable = task.window_runnable_ns.min(window) as f64 / window as f64;
            task.load = 0.5 * task.load + 0.5 * runnable;
            task.window_runnable_ns = 0;
        }
        self.window_produced = 0;
        self.window_dropped = 0;
        self.window_collector_cpu_ns = 0;
        self.window_ordinary_cpu_ns = 0;
        self.next_window_ns += window;
        let view = self.view();
        policy.window(&view);
        self.sched_events += 1;
    }

    /// Everything due at `now_ns`, in order: the window's end, the collector's stall, wakeup or
    /// sleep, other tasks' timers, the user-space scheduler, held tasks, and ticks.
    fn handle_events(&mut self, policy: &mut dyn Policy) {
        if self.now_ns >= self.next_window_ns {
            self.end_window(policy);
        }
        self.stall_collector_if_due(policy);
        self.collector_events(policy);
        self.task_timers(policy);
        self.user_space_events(policy);
        self.hold_running_tasks(policy);
        self.tick_due_cpus(policy);
    }

    /// A running collector that has consumed up to its drawn stall goes off its CPU for a
    /// drawn duration.
    fn stall_collector_if_due(&mut self, policy: &mut dyn Policy) {
        let now = self.now_ns;
        let collector = self.collector;
        if self.events_until_stall == 0 {
            if let State::Running(_) = self.tasks[collector].state {
                // A stall: off the CPU, reading nothing, back after the drawn duration.
                let stall_ns = match &mut self.stalls {
                    Some((sampler, rng)) => sampler.sample(rng),
                    None => 0,
                };
                self.put_to_sleep(collector, policy);
                self.tasks[collector].state = State::Waking(now + stall_ns.max(1));
                self.collector_stalled = true;
                self.events_until_stall = self.draw_events_until_stall();
            }
        }
    }

    /// The collector wakes (after its wakeup latency) once its ring has an event, sleeps once
    /// the ring is empty, and, waiting, preempts once the ring passes the policy's fill.
    fn collector_events(&mut self, policy: &mut dyn Policy) {
        let now = self.now_ns;
        let collector = self.collector;
        match self.tasks[collector].state {
            State::Sleeping if self.ring_level > 0 => {
                let latency_ns = match &mut self.latency {
                    Some((sampler, rng)) => sampler.sample(rng),
                    None => self.config.collector.wakeup_latency_ns,
                };
                self.tasks[collector].state = State::Waking(now + latency_ns);
                self.collector_notified_at_ns = Some(now);
                // The producer that just wrote (the least time into its next syscall) pays
                // for the notification.
                let notifier = self
                    .cpus
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|id| self.tasks[*id].kind == Kind::Producer)
                    .min_by_key(|id| self.tasks[*id].carry_ns);
                if let Some(id) = notifier {
                    self.tasks[id].overhead_left_ns += self.config.collector.notify_cost_ns;
                }
            }
            State::Running(_)
                if self.tasks[collector].overhead_left_ns == 0 && self.ring_level == 0 =>
            {
                self.tasks[collector].carry_ns = 0;
                self.put_to_sleep(collector, policy);
            }
            // Waiting while the ring filled past the policy's preemption fill: ask again.
            State::Runnable => {
                if let Some(pct) = policy.preempt_fill_pct() {
                    if self.ring_level >= self.fill_level(pct) {
                        self.try_preempt(collector, policy);
                    }
                }
            }
            _ => {}
        }
    }

    /// Tasks whose wakeup latency has passed become runnable; sleepers end their run phase or
    /// their sleep.
    fn task_timers(&mut self, policy: &mut dyn Policy) {
        let now = self.now_ns;
        let collector = self.collector;
        for id in 0..self.tasks.len() {
            match (self.tasks[id].kind, self.tasks[id].state) {
                (_, State::Waking(at)) if at <= now => {
                    let from_stall = id == collector && std::mem::take(&mut self.collector_stalled);
                    if id == collector && !from_stall {
                        self.tasks[id].overhead_left_ns = self.config.collector.wakeup_cost_ns;
                    }
                    self.make_runnable(id, !from_stall, policy);
                }
                (Kind::Sleeper, State::Running(_)) if self.tasks[id].run_left_ns == 0 => {
                    self.tasks[id].sleep_until_ns = now + self.config.sleeper_sleep_ns;
                    self.put_to_sleep(id, policy);
                }
                (Kind::Sleeper, State::Sleeping) if self.tasks[id].sleep_until_ns <= now => {
                    self.tasks[id].run_left_ns = self.config.sleeper_run_ns;
                    self.make_runnable(id, true, policy);
                }
                _ => {}
            }
        }
    }

    /// Ticks every CPU whose check is due: load balance, then the policy decides whether the
    /// running task keeps its CPU.
    fn tick_due_cpus(&mut self, policy: &mut dyn Policy) {
        let now = self.now_ns;
        for cpu in 0..self.cpus.len() {
            let Some(id) = self.cpus[cpu] else { continue };
            if self.next_check_ns[cpu] > now {
                continue;
            }
            let view = self.view_of(Some(cpu));
            let ran = now - self.tasks[id].picked_at_ns;
            self.sched_events += 1;
            self.balance_load_towards(cpu);
            let task = &mut self.tasks[id];
            if policy.tick(&mut task.entity, ran, &view) {
                task.state = State::Runnable;
                task.entity.runnable_since_ns = now;
                self.cpus[cpu] = None;
                self.route(id);
            } else {
                self.next_check_ns[cpu] = now + self.config.tick_ns;
            }
        }
    }

    /// At or past the policy's hold line: running tasks the policy holds give up their CPUs
    /// (the BPF scheduler kicks a held producer's CPU at its next syscall).
    fn hold_running_tasks(&mut self, policy: &mut dyn Policy) {
        let Some(pct) = policy.hold_fill_pct() else {
            return;
        };
        if self.ring_level < self.fill_level(pct) {
            return;
        }
        // One view for the global queue; per CPU only where each CPU has its own.
        let mut view = None;
        for cpu in 0..self.cpus.len() {
            let Some(id) = self.cpus[cpu] else { continue };
            if self.per_cpu || view.is_none() {
                view = Some(self.view_of(self.per_cpu.then_some(cpu)));
            }
            let view = view.as_ref().expect("set above");
            if policy.holds(&self.tasks[id].entity, true, view) {
                self.cpus[cpu] = None;
                let task = &mut self.tasks[id];
                task.state = State::Runnable;
                task.entity.runnable_since_ns = self.now_ns;
                self.sched_events += 1;
                self.route(id);
            }
        }
    }

    /// Under a user-space scheduler: tasks reach its queue, it wakes for them, dispatches one
    /// per `decision_cost_ns` of its CPU time in the policy's order, and sleeps when its queue
    /// is empty.
    fn user_space_events(&mut self, policy: &mut dyn Policy) {
        let Some((user_space, scheduler)) = self.user_space else {
            return;
        };
        let now = self.now_ns;
        let mut queued = 0;
        for task in &mut self.tasks {
            if task.state != State::Runnable {
                continue;
            }
            match task.stage {
                Stage::InTransit(at) if at <= now => {
                    task.stage = Stage::Queued;
                    self.sched_events += 1;
                    queued += 1;
                }
                Stage::Queued => queued += 1,
                _ => {}
            }
        }
        let cost = user_space.decision_cost_ns.max(1);
        if matches!(self.tasks[scheduler].state, State::Running(_)) {
            while queued > 0 && self.tasks[scheduler].carry_ns >= cost {
                self.tasks[scheduler].carry_ns -= cost;
                let chosen = self
                    .pick_where(policy, |task| {
                        task.state == State::Runnable && task.stage == Stage::Queued
                    })
                    .expect("a queued task is waiting for the user-space scheduler");
                self.tasks[chosen].stage = Stage::Ready;
                self.tasks[scheduler].report.events += 1;
                self.user_decisions += 1;
                self.sched_events += 1;
                queued -= 1;
                self.try_preempt(chosen, policy);
            }
            if queued == 0 {
                self.tasks[scheduler].carry_ns = 0;
                self.put_to_sleep(scheduler, policy);
            }
        } else if queued > 0 && self.tasks[scheduler].state == State::Sleeping {
            self.make_runnable(scheduler, true, policy);
        }
    }

    fn fill_idle_cpus(&mut self, policy: &mut dyn Policy) {
        // Queue lengths counted once, when an idle CPU first needs them, and kept as tasks
        // move (counting per idle CPU was cpus^2 x tasks on large machines).
        let mut queue_lengths: Option<Vec<usize>> = None;
        for cpu in 0..self.cpus.len() {
            if self.cpus[cpu].is_some() {
                continue;
            }
            if self.per_cpu {
                // An idle CPU first pulls a queued task from the busiest queue if its own is
                // empty (newidle balance).
                let own = |t: &Task| Self::is_dispatchable(t) && t.home_cpu == cpu;
                if !self.tasks.iter().any(own) {
                    let lengths = queue_lengths.get_or_insert_with(|| self.queue_lengths());
                    self.balance_towards(cpu, 1, lengths);
                }
                let view = self.view_of(Some(cpu));
                let Some(chosen) = self.pick_with(policy, &view, own) else {
                    continue;
                };
                self.run_on(cpu, chosen, policy);
                continue;
            }
            let Some(chosen) = self.pick_where(policy, Self::is_dispatchable) else {
                return;
            };
            self.run_on(cpu, chosen, policy);
        }
    }

    /// Tasks on each CPU's run queue, the running one included.
    fn queue_lengths(&self) -> Vec<usize> {
        let mut lengths = vec![0; self.cpus.len()];
        for task in &self.tasks {
            if matches!(task.state, State::Runnable | State::Running(_)) {
                lengths[task.home_cpu] += 1;
            }
        }
        lengths
    }

    /// With per-CPU run queues: moves one queued task to `cpu` from the busiest CPU if that
    /// one has at least `margin` more tasks (see [`Self::migrate`]); `queue_lengths` (from
    /// [`Self::queue_lengths`]) follows the move.
    fn balance_towards(&mut self, cpu: usize, margin: usize, queue_lengths: &mut [usize]) {
        if !self.per_cpu {
            return;
        }
        let queued = queue_lengths[cpu];
        let Some(busiest) = (0..self.cpus.len())
            .filter(|other| *other != cpu)
            .max_by_key(|other| (queue_lengths[*other], usize::MAX - other))
        else {
            return;
        };
        if queue_lengths[busiest] < queued + margin {
            return;
        }
        if let Some(id) = self.latest_queued_on(busiest, |_| true) {
            self.migrate(id, busiest, cpu);
            queue_lengths[busiest] -= 1;
            queue_lengths[cpu] += 1;
        }
    }

    /// The queued task on `cpu` that became runnable last (the cache-coldest, which Linux
    /// moves first) among those that satisfy `movable`.
    fn latest_queued_on(&self, cpu: usize, movable: impl Fn(&Task) -> bool) -> Option<usize> {
        (0..self.tasks.len())
            .filter(|id| {
                let t = &self.tasks[*id];
                Self::is_dispatchable(t) && t.home_cpu == cpu && movable(t)
            })
            .max_by_key(|id| (self.tasks[*id].entity.runnable_since_ns, *id))
    }

    /// The periodic balance: moves one queued task to `cpu` from the CPU with the most load
    /// if that narrows the gap (the task's load is less than the difference). Load counts
    /// sleeping tasks too, decaying, as PELT's blocked load does.
    fn balance_load_towards(&mut self, cpu: usize) {
        if !self.per_cpu {
            return;
        }
        // Every CPU's load in one pass over the tasks (per CPU it was cpus x tasks a tick).
        let mut load_on = vec![0.0f64; self.cpus.len()];
        for task in &self.tasks {
            load_on[task.home_cpu] += task.load;
        }
        let local = load_on[cpu];
        let Some((busiest, busiest_load)) = (0..self.cpus.len())
            .filter(|other| *other != cpu)
            .map(|other| (other, load_on[other]))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            return;
        };
        let gap = busiest_load - local;
        if let Some(id) = self.latest_queued_on(busiest, |t| t.load < gap) {
            self.migrate(id, busiest, cpu);
        }
    }

    /// Moves a queued task's run queue; it keeps its lag (its vruntime moves by the
    /// difference of the two queues' V).
    fn migrate(&mut self, id: usize, from: usize, to: usize) {
        let from_v = self.view_of(Some(from)).avg_vruntime as i64;
        self.tasks[id].home_cpu = to;
        let view = self.view_of(Some(to));
        let to_v = if view.nr_queued > 1 {
            view.avg_vruntime as i64
        } else {
            from_v
        };
        let entity = &mut self.tasks[id].entity;
        let shift = to_v - from_v;
        entity.vruntime = (entity.vruntime as i64 + shift).max(0) as u64;
        entity.deadline = (entity.deadline as i64 + shift).max(0) as u64;
        self.sched_events += 1;
    }

    /// The task the policy picks, seen from `view`, among those that satisfy `eligible`.
    fn pick_with(
        &self,
        policy: &mut dyn Policy,
        view: &QueueView,
        eligible: impl Fn(&Task) -> bool,
    ) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.tasks.len())
            .filter(|id| {
                let task = &self.tasks[*id];
                eligible(task) && !policy.holds(&task.entity, false, view)
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let entities: Vec<&Entity> = candidates
            .iter()
            .map(|id| &self.tasks[*id].entity)
            .collect();
        Some(candidates[policy.pick(&entities, view)])
    }

    /// The task the policy picks among those that satisfy `eligible`, if any.
    fn pick_where(
        &self,
        policy: &mut dyn Policy,
        eligible: impl Fn(&Task) -> bool,
    ) -> Option<usize> {
        self.pick_with(policy, &self.view(), eligible)
    }

    fn finish(mut self, policy: &str) -> SimResult {
        // A wait still going at the end counts too (a starved task is never picked).
        for task in &mut self.tasks {
            if task.state == State::Runnable {
                let waited = self.now_ns - task.entity.runnable_since_ns;
                task.report.max_wait_ns = task.report.max_wait_ns.max(waited);
            }
        }
        SimResult {
            policy: policy.to_string(),
            produced: self.produced,
            consumed: self.consumed,
            dropped: self.dropped,
            ring_level_end: self.ring_level,
            max_ring_level: self.max_ring_level,
            loss_pct: if self.produced == 0 {
                0.0
            } else {
                100.0 * self.dropped as f64 / self.produced as f64
            },
            tasks: self.tasks.into_iter().map(|t| t.report).collect(),
            sched_events: self.sched_events,
            idle_with_runnable_ns: self.idle_with_runnable_ns,
            idle_with_pending_ns: self.idle_with_pending_ns,
            user_decisions: self.user_decisions,
            duration_ns: self.config.duration_ns,
            collector_wakeup_age_ns: self.collector_wakeup_age_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Cfs, Eevdf, SimConfig};

    fn policies(config: &SimConfig) -> Vec<Box<dyn Policy>> {
        let mut per_cpu = Eevdf::new(config.cpus, config.tick_ns);
        per_cpu.per_cpu_run_queues = true;
        vec![
            Box::new(Eevdf::new(config.cpus, config.tick_ns)),
            Box::new(per_cpu),
            Box::new(Cfs::new(config.cpus)),
        ]
    }

    fn configs() -> Vec<SimConfig> {
        let base = SimConfig::default();
        vec![
            base.clone(),
            SimConfig {
                producers: 1,
                ring_capacity_events: 100_000,
                ..base.clone()
            },
            SimConfig {
                cpus: 8,
                producers: 16,
                hogs: 2,
                sleepers: 3,
                ..base.clone()
            },
            SimConfig {
                cpus: 1,
                producers: 2,
                sleepers: 2,
                seed: 9,
                ..base
            },
        ]
    }

    #[test]
    fn switch_cost_is_paid_only_where_processes_share_a_cpu() {
        let run = |cpus: usize, producers: usize, switch_cost_ns: u64| {
            let mut config = SimConfig {
                cpus,
                producers,
                ring_capacity_events: 100_000,
                ..SimConfig::default()
            };
            config.collector.switch_cost_ns = switch_cost_ns;
            simulate(&config, &mut Eevdf::like_linux(config.cpus, config.tick_ns))
        };
        // A CPU each: the collector and the producer never follow each other.
        let (free, charged) = (run(2, 1, 0), run(2, 1, 50_000));
        assert_eq!(free.collector().cpu_ns, charged.collector().cpu_ns);
        assert_eq!(free.produced, charged.produced);
        // One CPU: every switch between them costs both, so the producer makes less and the
        // collector spends more per event.
        let (free, charged) = (run(1, 1, 0), run(1, 1, 50_000));
        assert!(charged.produced < free.produced);
        let per_event = |r: &SimResult| r.collector().cpu_ns as f64 / r.consumed.max(1) as f64;
        assert!(per_event(&charged) > per_event(&free));
    }

    #[test]
    fn collector_wakeup_ages_span_latency_to_run() {
        // One producer, a CPU each: every wakeup runs at once, so each age is the wakeup
        // latency exactly, and there is one age per wakeup.
        let config = SimConfig {
            producers: 1,
            ..SimConfig::default()
        };
        let r = simulate(&config, &mut Eevdf::new(config.cpus, config.tick_ns));
        let ages = &r.collector_wakeup_age_ns;
        assert_eq!(ages.count(), r.collector().wakeups);
        let latency_ns = config.collector.wakeup_latency_ns;
        assert_eq!(ages.count_at_or_above(latency_ns), ages.count());
        assert_eq!(ages.count_at_or_above(latency_ns + latency_ns / 4), 0);
        // Outnumbered, the collector also waits for a CPU after its wakeup latency.
        let crowded = SimConfig {
            producers: 8,
            ..SimConfig::default()
        };
        let r = simulate(&crowded, &mut Eevdf::new(crowded.cpus, crowded.tick_ns));
        assert!(r.collector_wakeup_age_ns.count_at_or_above(500_000) > 0);
    }

    #[test]
    fn no_event_counted_twice_and_ring_within_capacity() {
        for config in configs() {
            for mut policy in policies(&config) {
                let r = simulate(&config, policy.as_mut());
                assert_eq!(
                    r.produced,
                    r.consumed + r.dropped + r.ring_level_end,
                    "{}",
                    r.policy
                );
                assert!(r.max_ring_level <= config.ring_capacity_events);
                let producer_syscalls: u64 = r
                    .tasks
                    .iter()
                    .filter(|t| t.kind == "producer")
                    .map(|t| t.events)
                    .sum();
                assert_eq!(producer_syscalls, r.produced);
                assert_eq!(r.collector().events, r.consumed);
            }
        }
    }

    #[test]
    fn work_conserving() {
        for config in configs() {
            for mut policy in policies(&config) {
                let r = simulate(&config, policy.as_mut());
                assert_eq!(r.idle_with_runnable_ns, 0, "{}", r.policy);
                // Always-runnable producers keep every CPU busy: all CPU time is accounted.
                if config.producers >= config.cpus {
                    let busy: u64 = r.tasks.iter().map(|t| t.cpu_ns).sum();
                    assert_eq!(
                        busy,
                        config.duration_ns * config.cpus as u64,
                        "{}",
                        r.policy
                    );
                }
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let config = SimConfig {
            sleepers: 3,
            ..SimConfig::default()
        };
        let run = |seed| {
            let config = SimConfig {
                seed,
                ..config.clone()
            };
            simulate(&config, &mut Eevdf::new(config.cpus, config.tick_ns))
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).tasks, run(8).tasks);
    }

    #[test]
    fn small_rings_lose_and_big_rings_do_not() {
        let small = SimConfig::default();
        let big = SimConfig {
            producers: 1,
            ring_capacity_events: 1 << 20,
            ..small.clone()
        };
        let eevdf = |c: &SimConfig| simulate(c, &mut Eevdf::new(c.cpus, c.tick_ns));
        assert!(eevdf(&small).loss_pct > 1.0);
        assert_eq!(eevdf(&big).dropped, 0);
    }

    #[test]
    fn notifying_the_collector_costs_the_producer() {
        let free = SimConfig {
            producers: 1,
            ring_capacity_events: 1 << 20,
            ..SimConfig::default()
        };
        let mut paying = free.clone();
        paying.collector.notify_cost_ns = 10_000;
        let eevdf = |c: &SimConfig| simulate(c, &mut Eevdf::new(c.cpus, c.tick_ns));
        let (free, paying) = (eevdf(&free), eevdf(&paying));
        let wakeups = paying.collector().wakeups;
        assert!(wakeups > 100, "{wakeups} wakeups");
        // Each notification takes 10 us of the producer's CPU from its syscalls.
        let lost = free.produced - paying.produced;
        let expected = wakeups * 10_000 / SimConfig::default().syscall_cost_ns;
        assert!(
            lost.abs_diff(expected) * 10 <= expected,
            "{lost} fewer syscalls, {expected} expected"
        );
    }

    #[test]
    fn wakeup_latency_is_drawn_from_a_measured_histogram() {
        let eevdf = |c: &SimConfig| simulate(c, &mut Eevdf::new(c.cpus, c.tick_ns));
        let with_latencies = |latencies_ns: &[u64]| {
            let mut histogram = crate::sim::LatencyHistogram::default();
            for ns in latencies_ns {
                histogram.record(*ns);
            }
            let mut config = SimConfig {
                producers: 1,
                ..SimConfig::default()
            };
            config.collector.wakeup_latency_ns = 0;
            config.collector.wakeup_latency_histogram = Some(histogram);
            eevdf(&config)
        };
        // All short: the collector always wakes before 290 events pile up.
        assert_eq!(with_latencies(&[10_000]).dropped, 0);
        // All about 3 ms: close to the fixed 3 ms latency.
        let mut fixed = SimConfig {
            producers: 1,
            ..SimConfig::default()
        };
        fixed.collector.wakeup_latency_ns = 3_000_000;
        let (drawn, fixed) = (
            with_latencies(&[3_000_000]).loss_pct,
            eevdf(&fixed).loss_pct,
        );
        assert!(
            fixed > 10.0 && (drawn - fixed).abs() < 5.0,
            "{drawn} vs {fixed}"
        );
        // One wakeup in ten long: in between.
        let mixed: Vec<u64> = (0..10)
            .map(|i| if i == 0 { 3_000_000 } else { 10_000 })
            .collect();
        let mixed = with_latencies(&mixed).loss_pct;
        assert!(mixed > 0.0 && mixed < drawn, "{mixed}");
    }

    #[test]
    fn per_cpu_queues_leave_the_collector_half_a_cpu_beside_one_producer() {
        // Two producers and the collector on 2 CPUs: one global fair queue gives the collector
        // up to two thirds of a CPU; per-CPU queues put it beside one producer, at most half.
        let mut config = SimConfig {
            producers: 2,
            ..SimConfig::default()
        };
        config.collector.per_event_cost_ns = 2_000;
        let collector_cpu_s = |per_cpu: bool| {
            let mut eevdf = Eevdf::new(config.cpus, config.tick_ns);
            eevdf.per_cpu_run_queues = per_cpu;
            simulate(&config, &mut eevdf).collector().cpu_ns as f64 / 1e9
        };
        let (global, per_cpu) = (collector_cpu_s(false), collector_cpu_s(true));
        assert!(global > 0.6, "global queue: {global} CPU-s");
        assert!(
            (0.4..=0.52).contains(&per_cpu),
            "per-CPU queues: {per_cpu} CPU-s"
        );
    }

    #[test]
    fn collector_stalls_drop_events_but_are_not_wakeups() {
        let eevdf = |c: &SimConfig| simulate(c, &mut Eevdf::new(c.cpus, c.tick_ns));
        let mut calm = SimConfig {
            producers: 1,
            ..SimConfig::default()
        };
        calm.collector.wakeup_latency_ns = 10_000;
        let mut stalling = calm.clone();
        let mut two_ms = crate::sim::LatencyHistogram::default();
        two_ms.record(2_000_000);
        stalling.collector.stall_histogram = Some(two_ms);
        stalling.collector.stalls_per_event = 1e-3;
        let (calm, stalled) = (eevdf(&calm), eevdf(&stalling));
        assert_eq!(calm.dropped, 0);
        // A 2 ms stall outlasts the 290-event ring at one producer's pace (~0.5 ms).
        assert!(stalled.loss_pct > 10.0, "{}", stalled.loss_pct);
        assert!(stalled.collector().cpu_ns < calm.collector().cpu_ns);
        // About one stall per thousand consumed events, none of them counted as a wakeup.
        let consumed = stalled.consumed as f64;
        assert!(
            stalled.collector().wakeups as f64 <= calm.collector().wakeups as f64 * 1.1,
            "{} vs {} wakeups",
            stalled.collector().wakeups,
            calm.collector().wakeups
        );
        assert!(consumed > 10_000.0);
        assert_eq!(eevdf(&stalling).dropped, stalled.dropped, "deterministic");
    }

    #[test]
    fn eevdf_lag_stays_within_its_bound() {
        // Equal-weight CPU-bound tasks: every queued task's lag stays within slice + tick.
        let config = SimConfig {
            hogs: 5,
            producers: 0,
            ..SimConfig::default()
        };
        let mut eevdf = Eevdf::new(config.cpus, config.tick_ns);
        let limit = eevdf.lag_limit(1024);
        let mut sim = Sim::new(&config);
        for id in 0..sim.tasks.len() {
            if sim.tasks[id].state == State::Runnable {
                let view = sim.view();
                eevdf.place(&mut sim.tasks[id].entity, &view);
            }
        }
        sim.fill_idle_cpus(&mut eevdf);
        let mut checks = 0;
        while sim.now_ns < 200_000_000 {
            let next = sim
                .next_event_ns(eevdf.preempt_fill_pct(), eevdf.hold_fill_pct())
                .clamp(sim.now_ns + 1, config.duration_ns);
            sim.advance(next, &mut eevdf);
            sim.handle_events(&mut eevdf);
            sim.fill_idle_cpus(&mut eevdf);
            let view = sim.view();
            for task in sim.tasks.iter().filter(|t| t.kind == Kind::Hog) {
                let lag = view.avg_vruntime as i64 - task.entity.vruntime as i64;
                assert!(
                    lag.abs() <= limit,
                    "lag {lag} beyond {limit} at {}",
                    sim.now_ns
                );
                checks += 1;
            }
        }
        assert!(checks > 500, "{checks} checks");
    }

    #[test]
    fn nice_collector_gets_more_cpu() {
        let plain = SimConfig::default();
        let mut favoured = plain.clone();
        favoured.collector.nice = -20;
        let eevdf = |c: &SimConfig| simulate(c, &mut Eevdf::new(c.cpus, c.tick_ns));
        let (a, b) = (eevdf(&plain), eevdf(&favoured));
        assert!(b.collector().cpu_ns > a.collector().cpu_ns);
        assert!(b.loss_pct < a.loss_pct, "{} vs {}", b.loss_pct, a.loss_pct);
    }
}
