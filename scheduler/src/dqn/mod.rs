//! Deep Q-learning for Aegis in the simulator.
//!
//! The agent acts once per signal window (10 ms of simulated time): it sees the quantized state
//! of [`crate::aegis::qnet::State`] (scaled to 0..1), picks one of the nine actions
//! (collector boost x producer throttle) epsilon-greedily, and is rewarded
//! `-(loss_weight * dropped/produced) - lambda * slowdown - mu * bound_violations` for the window,
//! where slowdown is how far the ordinary tasks' CPU time fell below their fair share. Training
//! uses a replay buffer, a target network synced every `target_sync` updates, the Huber loss and
//! Adam. Episodes are simulations with random intensity, ring size and background load. The
//! result is exported to the fixed-point network the kernel evaluates, with its quantization
//! error.
//!
//! The float network is hand-written ([`mlp`]): it has 297 parameters, and a framework such as
//! candle (measured here: an 8-minute release build) would cost more than the ~150 lines it
//! replaces; the gradients are checked against finite differences.

pub mod export;
pub mod mlp;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::aegis::qnet::{Action, QNet, NR_ACTIONS, STATE_LEN};
use crate::sim::policy::{Entity, Policy, QueueView};
use crate::sim::{simulate, Aegis, Cfs, EevdfModel, SimConfig, SimResult};
use export::QuantizationError;
use mlp::{Adam, Mlp, NR_PARAMS};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub seed: u64,
    pub episodes: usize,
    pub episode_ns: u64,
    pub gamma: f32,
    pub learning_rate: f32,
    pub batch: usize,
    pub replay_capacity: usize,
    pub target_sync: u64,
    pub epsilon_start: f64,
    pub epsilon_end: f64,
    pub loss_weight: f32,
    pub lambda_slowdown: f32,
    pub mu_violation: f32,
    /// Fixed validation configurations the greedy policy is scored on (the learning curve).
    pub validation_configs: usize,
    /// Validation points over the whole training (the first before any training).
    pub validation_points: usize,
    /// Evaluation configurations (never seen in training or validation).
    pub evaluation_configs: usize,
    /// The machine episodes are drawn around: costs, ring capacity and wakeup latencies (a
    /// calibrated [`SimConfig::from_calibration`] or the defaults).
    #[serde(default)]
    pub machine: SimConfig,
    /// CPU counts an episode may have (one drawn per episode).
    #[serde(default = "default_cpu_choices")]
    pub cpu_choices: Vec<usize>,
    /// The EEVDF the evaluation compares with (the machine's `tick_ns` is the matching tick;
    /// models trained before this field existed used the simple one).
    #[serde(default)]
    pub eevdf_model: EevdfModel,
}

fn default_cpu_choices() -> Vec<usize> {
    vec![2]
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            episodes: 3_000,
            episode_ns: 500_000_000,
            gamma: 0.9,
            learning_rate: 1e-3,
            batch: 32,
            replay_capacity: 20_000,
            target_sync: 250,
            epsilon_start: 1.0,
            epsilon_end: 0.05,
            loss_weight: 10.0,
            lambda_slowdown: 0.2,
            mu_violation: 1.0,
            validation_configs: 40,
            validation_points: 20,
            evaluation_configs: 40,
            machine: SimConfig::default(),
            cpu_choices: default_cpu_choices(),
            eevdf_model: EevdfModel::Simple,
        }
    }
}

#[derive(Clone, Copy)]
struct Transition {
    state: [f32; STATE_LEN],
    action: u8,
    reward: f32,
    next: [f32; STATE_LEN],
}

/// What one run of the simulator scores under a policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub policy: String,
    pub loss_pct: f64,
    /// Ordinary tasks' CPU time relative to the same configuration under EEVDF.
    pub ordinary_cpu_vs_eevdf: f64,
}

/// A trained model, as written under `scheduler/models/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    pub config: TrainConfig,
    /// The seed everything random in training came from (also in `config`).
    pub seed: u64,
    pub float_network: Mlp,
    /// The fixed-point network scx_aegis loads (the layout of [`QNet`]).
    pub fixed_network: QNet,
    pub quantization: QuantizationError,
    /// Mean reward per window of each training episode (exploring, on random configurations).
    pub training_rewards: Vec<f64>,
    /// (episode, mean reward per window) of the greedy policy on fixed validation
    /// configurations, measured `validation_points` times over the training: the learning
    /// curve.
    pub learning_curve: Vec<(usize, f64)>,
    /// The validation point whose network was kept (the best; later ones may have drifted).
    pub kept_episode: usize,
    /// Mean reward per window of Aegis without the network on the validation configurations.
    pub baseline_reward: f64,
    pub evaluation: Vec<Score>,
}

/// The per-window reward for a view.
///
/// The loss term is the window's dropped events over its production or, if larger, the
/// episode's usual production per window (`usual_produced`): a window in which starved
/// producers dropped half of a handful of events then weighs what those events are worth, so
/// the rewards of an episode add up to its overall loss, the figure the policy is judged by.
fn reward(
    config: &TrainConfig,
    view: &QueueView,
    usual_produced: f32,
    cpus: usize,
    violations: u64,
    window_ns: u64,
) -> f32 {
    let produced = (view.window_produced as f32).max(usual_produced).max(1.0);
    let loss = view.window_dropped as f32 / produced;
    let slowdown = if view.nr_ordinary_tasks == 0 {
        0.0
    } else {
        // Fair share: every always-runnable task (ordinary, producers, collector) alike.
        let tasks = (view.nr_ordinary_tasks + view.nr_producers + 1) as f32;
        let fair =
            window_ns as f32 * (cpus as f32).min(tasks) * view.nr_ordinary_tasks as f32 / tasks;
        (1.0 - view.window_ordinary_cpu_ns as f32 / fair).max(0.0)
    };
    -(config.loss_weight * loss)
        - config.lambda_slowdown * slowdown
        - config.mu_violation * violations as f32
}

fn features(aegis: &Aegis, view: &QueueView) -> [f32; STATE_LEN] {
    aegis.observe(view).quantize().map(|b| b as f32 / 255.0)
}

fn argmax(q: &[f32; NR_ACTIONS]) -> usize {
    (1..NR_ACTIONS).fold(0, |best, k| if q[k] > q[best] { k } else { best })
}

fn greedy(net: &Mlp, x: &[f32; STATE_LEN]) -> usize {
    argmax(&net.forward(x).q)
}

/// Who picks the action each window.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Epsilon-greedy on the online network, remembering and learning.
    Learn { epsilon: f64 },
    /// Greedy on the online network; nothing remembered or learned.
    Greedy,
    /// Always this action (a baseline).
    Fixed(usize),
}

/// The agent inside the simulator: Aegis schedules, the agent picks its action per window.
struct Learner<'a> {
    aegis: Aegis,
    config: &'a TrainConfig,
    cpus: usize,
    window_ns: u64,
    state: &'a mut LearnerState,
    rng: StdRng,
    mode: Mode,
    last: Option<([f32; STATE_LEN], usize)>,
    last_violations: u64,
    reward_sum: f64,
    windows: u64,
    usual_produced: f32,
}

impl Learner<'_> {
    fn remember(&mut self, t: Transition) {
        let state = &mut *self.state;
        if state.replay.len() < self.config.replay_capacity {
            state.replay.push(t);
        } else {
            state.replay[state.replay_next] = t;
        }
        state.replay_next = (state.replay_next + 1) % self.config.replay_capacity;
    }

    /// One Adam step on a minibatch, with double-DQN targets: the online network picks the
    /// next action, the target network values it.
    fn learn(&mut self) {
        let state = &mut *self.state;
        if state.replay.len() < self.config.batch * 4 {
            return;
        }
        let mut grad = vec![0.0; NR_PARAMS];
        for _ in 0..self.config.batch {
            let t = state.replay[self.rng.gen_range(0..state.replay.len())];
            let next_action = greedy(&state.online, &t.next);
            let next_value = state.target.forward(&t.next).q[next_action];
            let target = t.reward + self.config.gamma * next_value;
            let fwd = state.online.forward(&t.state);
            state
                .online
                .backward(&t.state, &fwd, t.action as usize, target, &mut grad);
        }
        grad.iter_mut().for_each(|g| *g /= self.config.batch as f32);
        state.adam.step(&mut state.online.params, &grad);
        state.updates += 1;
        if state.updates % self.config.target_sync == 0 {
            state.target.clone_from(&state.online);
        }
    }
}

impl Policy for Learner<'_> {
    fn name(&self) -> &'static str {
        "aegis-learning"
    }
    fn place(&mut self, e: &mut Entity, view: &QueueView) {
        self.aegis.place(e, view)
    }
    fn sleep(&mut self, e: &mut Entity, view: &QueueView) {
        self.aegis.sleep(e, view)
    }
    fn charge(&mut self, e: &mut Entity, ran_ns: u64) {
        self.aegis.charge(e, ran_ns)
    }
    fn pick(&self, candidates: &[&Entity], view: &QueueView) -> usize {
        self.aegis.pick(candidates, view)
    }
    fn tick(&mut self, e: &mut Entity, ran: u64, view: &QueueView) -> bool {
        self.aegis.tick(e, ran, view)
    }
    fn preempts(&self, woken: &Entity, running: &Entity, view: &QueueView) -> bool {
        self.aegis.preempts(woken, running, view)
    }
    fn preempt_fill_pct(&self) -> Option<u32> {
        self.aegis.preempt_fill_pct()
    }
    fn hold_fill_pct(&self) -> Option<u32> {
        self.aegis.hold_fill_pct()
    }
    fn holds(&self, e: &Entity, running: bool, view: &QueueView) -> bool {
        self.aegis.holds(e, running, view)
    }
    fn on_pick(&mut self, e: &Entity, now_ns: u64) {
        self.aegis.on_pick(e, now_ns)
    }

    fn window(&mut self, view: &QueueView) {
        let x = features(&self.aegis, view);
        let violations = self.aegis.stats.bound_violations - self.last_violations;
        self.last_violations = self.aegis.stats.bound_violations;
        // The usual production per window: a moving average over about ten windows.
        let produced = view.window_produced as f32;
        self.usual_produced = match self.windows {
            0 => produced,
            _ => 0.9 * self.usual_produced + 0.1 * produced,
        };
        let r = reward(
            self.config,
            view,
            self.usual_produced,
            self.cpus,
            violations,
            self.window_ns,
        );
        if let Some((state, action)) = self.last {
            self.reward_sum += r as f64;
            self.windows += 1;
            if matches!(self.mode, Mode::Learn { .. }) {
                self.remember(Transition {
                    state,
                    action: action as u8,
                    reward: r,
                    next: x,
                });
                self.learn();
            }
        }
        let action = match self.mode {
            Mode::Learn { epsilon } if self.rng.gen_bool(epsilon) => {
                self.rng.gen_range(0..NR_ACTIONS)
            }
            Mode::Learn { .. } | Mode::Greedy => greedy(&self.state.online, &x),
            Mode::Fixed(action) => action,
        };
        self.aegis.action = Action::from_index(action);
        self.last = Some((x, action));
    }
}

/// The learner's persistent parts, carried from episode to episode.
struct LearnerState {
    online: Mlp,
    target: Mlp,
    adam: Adam,
    replay: Vec<Transition>,
    replay_next: usize,
    updates: u64,
}

impl LearnerState {
    /// A fresh online network from `rng`, the target network a copy of it.
    fn new(config: &TrainConfig, rng: &mut StdRng) -> Self {
        let online = Mlp::new(rng);
        LearnerState {
            target: online.clone(),
            online,
            adam: Adam::new(config.learning_rate),
            replay: Vec::with_capacity(config.replay_capacity),
            replay_next: 0,
            updates: 0,
        }
    }
}

/// Runs one simulated episode with the agent acting; returns the mean reward per window and
/// the run.
fn run_episode(
    config: &TrainConfig,
    sim: &SimConfig,
    state: &mut LearnerState,
    mode: Mode,
    seed: u64,
) -> (f64, SimResult) {
    let mut learner = Learner {
        aegis: Aegis::new(None, sim.tick_ns, 0),
        config,
        cpus: sim.cpus,
        window_ns: sim.window_ns,
        state,
        rng: StdRng::seed_from_u64(seed),
        mode,
        last: None,
        last_violations: 0,
        reward_sum: 0.0,
        windows: 0,
        usual_produced: 0.0,
    };
    let result = simulate(sim, &mut learner);
    (learner.reward_sum / learner.windows.max(1) as f64, result)
}

/// A training or evaluation episode's simulator configuration: `config.machine` with a CPU
/// count from `config.cpu_choices`, 1-8 producers (or one per CPU), a ring of a half to four
/// times the machine's, and up to as many CPU hogs as CPUs and half as many sleepers.
pub fn episode_config(rng: &mut impl Rng, config: &TrainConfig, duration_ns: u64) -> SimConfig {
    let cpus = config.cpu_choices[rng.gen_range(0..config.cpu_choices.len().max(1))].max(1);
    let ring = config.machine.ring_capacity_events.max(2);
    let producers = if rng.gen_bool(0.2) {
        cpus
    } else {
        rng.gen_range(1..=8)
    };
    SimConfig {
        seed: rng.gen(),
        duration_ns,
        cpus,
        producers,
        ring_capacity_events: [ring / 2, ring, ring * 2, ring * 4][rng.gen_range(0..4)],
        hogs: rng.gen_range(0..=cpus),
        sleepers: rng.gen_range(0..=cpus.div_ceil(2)),
        ..config.machine.clone()
    }
}

/// The default action of Aegis without a network.
fn no_network_action() -> usize {
    Aegis::new(None, 1, 0).action.index()
}

/// Trains a model; `progress` is called after every episode with (episode, mean reward).
pub fn train(config: &TrainConfig, mut progress: impl FnMut(usize, f64)) -> TrainedModel {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut state = LearnerState::new(config, &mut rng);
    let mut validation_rng = StdRng::seed_from_u64(config.seed.wrapping_add(500));
    let validation: Vec<SimConfig> = (0..config.validation_configs.max(1))
        .map(|_| episode_config(&mut validation_rng, config, config.episode_ns))
        .collect();
    let validate = |state: &mut LearnerState, mode: Mode| {
        validation
            .iter()
            .map(|sim| run_episode(config, sim, state, mode, 0).0)
            .sum::<f64>()
            / validation.len() as f64
    };
    let baseline_reward = validate(&mut state, Mode::Fixed(no_network_action()));
    let mut training_rewards = Vec::with_capacity(config.episodes);
    let mut curve = Vec::new();
    let mut best: Option<(f64, usize, Mlp)> = None;
    let every = (config.episodes / config.validation_points.max(1)).max(1);
    for episode in 0..=config.episodes {
        if episode % every == 0 || episode == config.episodes {
            let mean = validate(&mut state, Mode::Greedy);
            curve.push((episode, mean));
            if best.as_ref().is_none_or(|(b, _, _)| mean > *b) {
                best = Some((mean, episode, state.online.clone()));
            }
        }
        if episode == config.episodes {
            break;
        }
        let sim = episode_config(&mut rng, config, config.episode_ns);
        let fraction = episode as f64 / config.episodes.max(1) as f64;
        let epsilon = config.epsilon_start
            + (config.epsilon_end - config.epsilon_start) * (fraction / 0.5).min(1.0);
        let (mean, _) = run_episode(config, &sim, &mut state, Mode::Learn { epsilon }, rng.gen());
        training_rewards.push(mean);
        progress(episode, mean);
    }
    let (_, kept_episode, kept) = best.expect("validated at least once");
    let (fixed_network, quantization) = export::measure(&kept, &mut rng, 10_000);
    let evaluation = evaluate(&fixed_network, config, config.seed.wrapping_add(1000));
    TrainedModel {
        config: config.clone(),
        seed: config.seed,
        float_network: kept,
        fixed_network,
        quantization,
        training_rewards,
        learning_curve: curve,
        kept_episode,
        baseline_reward,
        evaluation,
    }
}

/// Loss and ordinary tasks' CPU relative to EEVDF, averaged over `configs` evaluation
/// configurations that training never saw: EEVDF, CFS, Aegis without the network (its
/// default action, levels and waiting bound), Aegis held at each other fixed action of note
/// (SCHED_FIFO-like boost 2; the strongest throttle), and Aegis with `network`.
pub fn evaluate(network: &QNet, training: &TrainConfig, seed: u64) -> Vec<Score> {
    let mut rng = StdRng::seed_from_u64(seed);
    let configs: Vec<SimConfig> = (0..training.evaluation_configs.max(1))
        .map(|_| episode_config(&mut rng, training, training.episode_ns))
        .collect();
    let fixed = |index: usize| {
        let action = Action::from_index(index);
        (
            format!(
                "aegis-fixed-b{}t{}",
                action.collector_boost, action.producer_throttle
            ),
            index,
        )
    };
    let fixed_baselines = [fixed(2), fixed(6), fixed(8)];
    let mut names = vec!["eevdf".to_string(), "cfs".into(), "aegis-no-net".into()];
    names.extend(fixed_baselines.iter().map(|(name, _)| name.clone()));
    names.push("aegis-dqn".into());
    let mut totals = vec![(0.0, 0.0); names.len()];
    for config in &configs {
        let mut runs = vec![
            simulate(
                config,
                &mut training.eevdf_model.policy(config.cpus, config.tick_ns),
            ),
            simulate(config, &mut Cfs::new(config.cpus)),
            simulate(config, &mut Aegis::new(None, config.tick_ns, 0)),
        ];
        for (_, index) in &fixed_baselines {
            let mut aegis = Aegis::new(None, config.tick_ns, 0);
            aegis.action = Action::from_index(*index);
            runs.push(simulate(config, &mut aegis));
        }
        runs.push(simulate(
            config,
            &mut Aegis::new(Some(network.clone()), config.tick_ns, 0),
        ));
        let ordinary = |r: &SimResult| r.cpu_ns_of("hog") + r.cpu_ns_of("sleeper");
        let base = ordinary(&runs[0]);
        for (slot, run) in totals.iter_mut().zip(&runs) {
            slot.0 += run.loss_pct;
            slot.1 += if base == 0 {
                1.0
            } else {
                ordinary(run) as f64 / base as f64
            };
        }
    }
    let n = configs.len() as f64;
    names
        .into_iter()
        .zip(totals)
        .map(|(policy, (loss, cpu))| Score {
            policy,
            loss_pct: loss / n,
            ordinary_cpu_vs_eevdf: cpu / n,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_training_run_learns_and_exports() {
        let config = TrainConfig {
            episodes: 30,
            episode_ns: 200_000_000,
            validation_configs: 4,
            validation_points: 10,
            evaluation_configs: 4,
            ..TrainConfig::default()
        };
        let model = train(&config, |_, _| {});
        assert_eq!(model.training_rewards.len(), 30);
        // A point before training, every 3 episodes, and the end.
        assert_eq!(model.learning_curve.len(), 11);
        assert_eq!(model.learning_curve.last().unwrap().0, 30);
        assert!(model.learning_curve.iter().all(|(_, r)| r.is_finite()));
        assert!(
            model.quantization.argmax_agreement > 0.8,
            "{:?}",
            model.quantization
        );
        assert_eq!(model.evaluation.len(), 7);
        // Deterministic for a seed.
        assert_eq!(
            train(&config, |_, _| {}).learning_curve,
            model.learning_curve
        );
    }

    #[test]
    fn the_learner_at_a_fixed_action_schedules_as_aegis_does() {
        // The learner wraps Aegis: every Policy method must reach it (a missed one, such as
        // the producer hold, would train the network on another scheduler).
        let config = TrainConfig::default();
        let sim = SimConfig {
            cpus: 4,
            producers: 6,
            hogs: 2,
            sleepers: 1,
            duration_ns: 200_000_000,
            ..SimConfig::default()
        };
        let mut state = LearnerState::new(&config, &mut StdRng::seed_from_u64(1));
        let (_, mut learned) = run_episode(
            &config,
            &sim,
            &mut state,
            Mode::Fixed(no_network_action()),
            2,
        );
        let direct = simulate(&sim, &mut Aegis::new(None, sim.tick_ns, 0));
        learned.policy = direct.policy.clone();
        assert_eq!(learned, direct);
    }

    #[test]
    fn episodes_are_drawn_around_the_machine() {
        let mut machine = SimConfig {
            ring_capacity_events: 282,
            syscall_cost_ns: 909,
            ..SimConfig::default()
        };
        machine.collector.notify_cost_ns = 14_000;
        let config = TrainConfig {
            machine,
            cpu_choices: vec![2, 8],
            ..TrainConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let episodes: Vec<SimConfig> = (0..200)
            .map(|_| episode_config(&mut rng, &config, 1_000))
            .collect();
        for episode in &episodes {
            assert!([2, 8].contains(&episode.cpus));
            assert!([141, 282, 564, 1128].contains(&episode.ring_capacity_events));
            assert!(episode.hogs <= episode.cpus);
            assert!((1..=8).contains(&episode.producers));
            // The machine's costs are kept.
            assert_eq!(episode.syscall_cost_ns, 909);
            assert_eq!(episode.collector.notify_cost_ns, 14_000);
            assert_eq!(episode.duration_ns, 1_000);
        }
        assert!(episodes.iter().any(|e| e.cpus == 8 && e.producers == 8));
        assert!(episodes.iter().any(|e| e.cpus == 2));
    }
}
