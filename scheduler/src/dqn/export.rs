//! From the float network to the fixed-point [`QNet`] the kernel evaluates.
//!
//! The float network sees each state byte as `x / 255`. With a hidden scale `H` and an output
//! scale `W`: `w1 = round(w1f * H * 256 / 255)`, `b1 = round(b1f * H * 256)`, so the fixed
//! hidden value `(b1 + sum w1 x) >> 8` approximates `H * hidden_f`; then `w2 = round(w2f * W)`
//! and `b2 = round(b2f * H * W)`, so the fixed Q-values approximate `H * W * q_f`. Both scales
//! are as large as the i16 weights allow (at most 256). Positive scaling keeps the argmax,
//! so what matters is how often the greedy action agrees.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::mlp::Mlp;
use crate::aegis::qnet::{QNet, HIDDEN, NR_ACTIONS, STATE_LEN, WEIGHT_SHIFT};

/// How far the fixed-point network is from the float one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizationError {
    pub hidden_scale: f64,
    pub output_scale: f64,
    pub states_compared: usize,
    /// Share of states where both networks pick the same action.
    pub argmax_agreement: f64,
    /// Mean |q_fixed / (H * W) - q_float| over all actions and states.
    pub mean_abs_q_error: f64,
}

pub fn quantize(net: &Mlp) -> (QNet, f64, f64) {
    let max_w1 = (0..HIDDEN)
        .flat_map(|j| (0..STATE_LEN).map(move |i| (j, i)))
        .map(|(j, i)| net.w1(j, i).abs())
        .fold(1e-6f32, f32::max) as f64;
    let max_w2 = (0..NR_ACTIONS)
        .flat_map(|k| (0..HIDDEN).map(move |j| (k, j)))
        .map(|(k, j)| net.w2(k, j).abs())
        .fold(1e-6f32, f32::max) as f64;
    let shift = (1u32 << WEIGHT_SHIFT) as f64;
    let hidden_scale = (32767.0 * 255.0 / (shift * max_w1)).min(256.0);
    let output_scale = (32767.0 / max_w2).min(256.0);
    let mut q = QNet::zeroed();
    for j in 0..HIDDEN {
        for i in 0..STATE_LEN {
            q.w1[j][i] = (net.w1(j, i) as f64 * hidden_scale * shift / 255.0).round() as i16;
        }
        q.b1[j] = (net.b1(j) as f64 * hidden_scale * shift).round() as i32;
    }
    for k in 0..NR_ACTIONS {
        for j in 0..HIDDEN {
            q.w2[k][j] = (net.w2(k, j) as f64 * output_scale).round() as i16;
        }
        q.b2[k] = (net.b2(k) as f64 * hidden_scale * output_scale).round() as i32;
    }
    (q, hidden_scale, output_scale)
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for k in 1..values.len() {
        if values[k] > values[best] {
            best = k;
        }
    }
    best
}

/// Compares the two networks on `states` random states.
pub fn measure(net: &Mlp, rng: &mut impl Rng, states: usize) -> (QNet, QuantizationError) {
    let (fixed, hidden_scale, output_scale) = quantize(net);
    let mut agree = 0;
    let mut abs_err = 0.0;
    for _ in 0..states {
        let bytes: [u8; STATE_LEN] = rng.gen();
        let x = bytes.map(|b| b as f32 / 255.0);
        let float_q = net.forward(&x).q;
        let fixed_q = fixed.q_values(&bytes);
        if fixed.act(&bytes).index() == argmax(&float_q) {
            agree += 1;
        }
        for k in 0..NR_ACTIONS {
            abs_err +=
                (fixed_q[k] as f64 / (hidden_scale * output_scale) - float_q[k] as f64).abs();
        }
    }
    let error = QuantizationError {
        hidden_scale,
        output_scale,
        states_compared: states,
        argmax_agreement: agree as f64 / states as f64,
        mean_abs_q_error: abs_err / (states * NR_ACTIONS) as f64,
    };
    (fixed, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fixed_point_tracks_the_float_network() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let net = Mlp::new(&mut rng);
        let (_, error) = measure(&net, &mut rng, 2000);
        assert!(error.argmax_agreement > 0.95, "{error:?}");
        assert!(error.mean_abs_q_error < 0.02, "{error:?}");
    }
}
