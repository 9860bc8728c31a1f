//! The fixed-point Q-network and its action space.
//!
//! A two-layer MLP, `STATE_LEN -> HIDDEN (ReLU) -> NR_ACTIONS`. Inputs are bytes (each state
//! feature quantized to 0..=255); weights are `i16` scaled by 2^[`WEIGHT_SHIFT`]; hidden
//! activations are shifted back to input scale; accumulators and Q-values are `i64`, wide
//! enough that no weights can overflow them, so the BPF version is bit-exact without relying on
//! wrapping arithmetic.

/// State features, each 0..=255 (see [`State`]).
pub const STATE_LEN: usize = 8;
pub const HIDDEN: usize = 16;
/// 3 collector boosts x 3 producer throttles.
pub const NR_ACTIONS: usize = 9;
pub const WEIGHT_SHIFT: u32 = 8;
/// `sizeof(struct aegis_qnet)`.
pub const BPF_BYTES: usize =
    HIDDEN * STATE_LEN * 2 + HIDDEN * 4 + NR_ACTIONS * HIDDEN * 2 + NR_ACTIONS * 4;

/// What the scheduler observes, before quantization.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct State {
    /// Events produced per second by the tasks in the producer level.
    pub production_rate_per_s: u64,
    /// Collector ring buffer fill, 0..=100 %.
    pub ring_fill_pct: u32,
    /// Collector CPU share over the last window, 0..=100 % of one CPU.
    pub collector_cpu_pct: u32,
    pub runnable: [u32; 3],
    pub oldest_wait_us: [u32; 2],
}

impl State {
    /// Quantizes to bytes: rates and waits on a log2 scale, percentages linearly.
    pub fn quantize(&self) -> [u8; STATE_LEN] {
        // Bits of v times 8, saturated: 2^31 and up map to 255, not 256.
        let log2 = |v: u64| -> u8 { ((64 - v.leading_zeros()) * 8).min(255) as u8 };
        let pct = |p: u32| -> u8 { (p.min(100) * 255 / 100) as u8 };
        let count = |n: u32| -> u8 { n.min(255) as u8 };
        [
            log2(self.production_rate_per_s.min(u32::MAX as u64)),
            pct(self.ring_fill_pct),
            pct(self.collector_cpu_pct),
            count(self.runnable[0]),
            count(self.runnable[1]),
            count(self.runnable[2]),
            log2(self.oldest_wait_us[0] as u64),
            log2(self.oldest_wait_us[1] as u64),
        ]
    }
}

/// Ring fill (percent of the collector's ring buffer) from which, under `collector_boost` 1,
/// a runnable provenance task preempts a running producer. The BPF scheduler mirrors it.
pub const PREEMPT_FILL_PCT: u32 = 50;

/// Ring fill (percent) from which producers are held back whatever the action, while the
/// collector is alive: a queued producer is not dispatched unless it is past its wait bound,
/// and a running one gives up its CPU. The BPF scheduler's `AEGIS_HOLD_FILL_PCT` (the default
/// of `scx_aegis --hold-fill-pct`); the simulator's Aegis holds at the same fill.
pub const HOLD_FILL_PCT: u32 = 75;

/// The base time slice: ordinary tasks get it; provenance and producer slices are scaled from
/// it by the action.
pub const BASE_SLICE_NS: u64 = 3_000_000;

/// What the network decides: 3 collector boosts x 3 producer throttles, the contract the BPF
/// scheduler implements.
///
/// | `collector_boost` | provenance slice | a runnable provenance task preempts a running producer |
/// |---|---|---|
/// | 0 | base | never (it is only served first when a CPU picks) |
/// | 1 | base << 1 | once the ring is at least [`PREEMPT_FILL_PCT`] % full: the collector is woken as the ring fills and drains it in big batches |
/// | 2 | base << 2 | at once on wakeup (SCHED_FIFO-like) |
///
/// `producer_throttle` t: producer slice = base >> t.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    /// 0..=2: how strongly provenance tasks are favoured (see the table above).
    pub collector_boost: u8,
    /// 0..=2: how hard producers are held back (slice divided by 2^throttle).
    pub producer_throttle: u8,
}

impl Action {
    pub fn from_index(index: usize) -> Self {
        Action {
            collector_boost: (index / 3) as u8,
            producer_throttle: (index % 3) as u8,
        }
    }

    pub fn index(self) -> usize {
        self.collector_boost as usize * 3 + self.producer_throttle as usize
    }

    /// Slice of a provenance task under this action.
    pub fn provenance_slice_ns(self, base_ns: u64) -> u64 {
        base_ns << self.collector_boost
    }

    /// Slice of a producer under this action.
    pub fn producer_slice_ns(self, base_ns: u64) -> u64 {
        base_ns >> self.producer_throttle
    }

    /// Whether a runnable provenance task preempts a running producer at this ring fill.
    pub fn provenance_preempts(self, ring_fill_pct: u32) -> bool {
        match self.collector_boost {
            0 => false,
            1 => ring_fill_pct >= PREEMPT_FILL_PCT,
            _ => true,
        }
    }
}

/// Weights in the layout the BPF map holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QNet {
    pub w1: [[i16; STATE_LEN]; HIDDEN],
    pub b1: [i32; HIDDEN],
    pub w2: [[i16; HIDDEN]; NR_ACTIONS],
    pub b2: [i32; NR_ACTIONS],
}

impl QNet {
    pub fn zeroed() -> Self {
        QNet {
            w1: [[0; STATE_LEN]; HIDDEN],
            b1: [0; HIDDEN],
            w2: [[0; HIDDEN]; NR_ACTIONS],
            b2: [0; NR_ACTIONS],
        }
    }

    /// An untrained network with weights drawn from `weights` and biases from `biases`: for
    /// tests and benchmarks of the mechanics, never a policy.
    pub fn random(
        rng: &mut impl rand::Rng,
        weights: std::ops::Range<i16>,
        biases: std::ops::Range<i32>,
    ) -> Self {
        let mut net = QNet::zeroed();
        net.w1
            .iter_mut()
            .flatten()
            .for_each(|w| *w = rng.gen_range(weights.clone()));
        net.b1
            .iter_mut()
            .for_each(|b| *b = rng.gen_range(biases.clone()));
        net.w2
            .iter_mut()
            .flatten()
            .for_each(|w| *w = rng.gen_range(weights.clone()));
        net.b2
            .iter_mut()
            .for_each(|b| *b = rng.gen_range(biases.clone()));
        net
    }

    /// Q-values for a quantized state.
    pub fn q_values(&self, state: &[u8; STATE_LEN]) -> [i64; NR_ACTIONS] {
        let mut hidden = [0i64; HIDDEN];
        for (j, h) in hidden.iter_mut().enumerate() {
            let mut acc = self.b1[j] as i64;
            for (i, x) in state.iter().enumerate() {
                acc += self.w1[j][i] as i64 * *x as i64;
            }
            // ReLU, back to input scale.
            *h = acc.max(0) >> WEIGHT_SHIFT;
        }
        let mut q = [0i64; NR_ACTIONS];
        for (k, out) in q.iter_mut().enumerate() {
            let mut acc = self.b2[k] as i64;
            for (j, h) in hidden.iter().enumerate() {
                acc += self.w2[k][j] as i64 * *h;
            }
            *out = acc;
        }
        q
    }

    /// The layout of `struct aegis_qnet` in `bpf/aegis_qnet.h` (little-endian, no padding),
    /// as the BPF weights map holds it.
    pub fn to_bpf_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BPF_BYTES);
        self.w1
            .iter()
            .flatten()
            .for_each(|w| out.extend(w.to_le_bytes()));
        self.b1.iter().for_each(|b| out.extend(b.to_le_bytes()));
        self.w2
            .iter()
            .flatten()
            .for_each(|w| out.extend(w.to_le_bytes()));
        self.b2.iter().for_each(|b| out.extend(b.to_le_bytes()));
        out
    }

    /// The greedy action; ties go to the lower index.
    pub fn act(&self, state: &[u8; STATE_LEN]) -> Action {
        let q = self.q_values(state);
        let mut best = 0;
        for k in 1..NR_ACTIONS {
            if q[k] > q[best] {
                best = k;
            }
        }
        Action::from_index(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for index in 0..NR_ACTIONS {
            assert_eq!(Action::from_index(index).index(), index);
        }
    }

    #[test]
    fn action_contract() {
        let act = |collector_boost, producer_throttle| Action {
            collector_boost,
            producer_throttle,
        };
        let base = BASE_SLICE_NS;
        assert_eq!(
            [0, 1, 2].map(|b| act(b, 0).provenance_slice_ns(base)),
            [base, base * 2, base * 4]
        );
        assert_eq!(
            [0, 1, 2].map(|t| act(0, t).producer_slice_ns(base)),
            [base, base / 2, base / 4]
        );
        for fill in [0, 49, 50, 100] {
            assert!(!act(0, 2).provenance_preempts(fill));
            assert_eq!(
                act(1, 0).provenance_preempts(fill),
                fill >= PREEMPT_FILL_PCT
            );
            assert!(act(2, 1).provenance_preempts(fill));
        }
    }

    #[test]
    fn quantizes_into_bytes() {
        let s = State {
            production_rate_per_s: 300_000,
            ring_fill_pct: 50,
            collector_cpu_pct: 100,
            runnable: [1, 2, 300],
            oldest_wait_us: [0, 1 << 20],
        };
        let q = s.quantize();
        assert_eq!(q[1], 127);
        assert_eq!(q[2], 255);
        assert_eq!(q[5], 255);
        assert_eq!(q[6], 0);
        assert!(q[0] > q[7] / 2);
    }

    #[test]
    fn evaluates_a_known_network() {
        let mut net = QNet::zeroed();
        // Hidden 0 = ring fill; action 6 (boost 2) scores it, action 0 scores its absence.
        net.w1[0][1] = 1 << WEIGHT_SHIFT;
        net.w2[6][0] = 4;
        net.b2[0] = 200;
        let mut state = [0u8; STATE_LEN];
        assert_eq!(net.act(&state), Action::from_index(0));
        state[1] = 255;
        assert_eq!(net.q_values(&state)[6], 4 * 255);
        assert_eq!(
            net.act(&state),
            Action {
                collector_boost: 2,
                producer_throttle: 0
            }
        );
    }
}
