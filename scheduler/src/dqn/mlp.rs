//! The float Q-network that training updates: the same shape as the fixed-point
//! [`crate::aegis::qnet::QNet`] (8 -> 16 ReLU -> 9), parameters in one flat vector so the
//! optimizer is a loop, with exact gradients (checked against finite differences in a test).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::aegis::qnet::{HIDDEN, NR_ACTIONS, STATE_LEN};

const W1: usize = 0;
const B1: usize = W1 + HIDDEN * STATE_LEN;
const W2: usize = B1 + HIDDEN;
const B2: usize = W2 + NR_ACTIONS * HIDDEN;
pub const NR_PARAMS: usize = B2 + NR_ACTIONS;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    pub params: Vec<f32>,
}

/// Intermediate values of a forward pass, for the backward pass.
pub struct Forward {
    pub pre: [f32; HIDDEN],
    pub hidden: [f32; HIDDEN],
    pub q: [f32; NR_ACTIONS],
}

impl Mlp {
    /// He-style uniform initialisation.
    pub fn new(rng: &mut impl Rng) -> Self {
        let mut params = vec![0.0; NR_PARAMS];
        let bound1 = (6.0 / STATE_LEN as f32).sqrt();
        let bound2 = (6.0 / HIDDEN as f32).sqrt();
        for p in &mut params[W1..B1] {
            *p = rng.gen_range(-bound1..bound1);
        }
        for p in &mut params[W2..B2] {
            *p = rng.gen_range(-bound2..bound2);
        }
        Mlp { params }
    }

    pub fn w1(&self, j: usize, i: usize) -> f32 {
        self.params[W1 + j * STATE_LEN + i]
    }
    pub fn b1(&self, j: usize) -> f32 {
        self.params[B1 + j]
    }
    pub fn w2(&self, k: usize, j: usize) -> f32 {
        self.params[W2 + k * HIDDEN + j]
    }
    pub fn b2(&self, k: usize) -> f32 {
        self.params[B2 + k]
    }

    pub fn forward(&self, x: &[f32; STATE_LEN]) -> Forward {
        let mut pre = [0.0; HIDDEN];
        let mut hidden = [0.0; HIDDEN];
        for j in 0..HIDDEN {
            let mut acc = self.b1(j);
            for (i, xi) in x.iter().enumerate() {
                acc += self.w1(j, i) * xi;
            }
            pre[j] = acc;
            hidden[j] = acc.max(0.0);
        }
        let mut q = [0.0; NR_ACTIONS];
        for (k, qk) in q.iter_mut().enumerate() {
            let mut acc = self.b2(k);
            for (j, h) in hidden.iter().enumerate() {
                acc += self.w2(k, j) * h;
            }
            *qk = acc;
        }
        Forward { pre, hidden, q }
    }

    /// Adds to `grad` the gradient of `0.5 * (q[action] - target)^2`, with the error clipped
    /// to [-1, 1] (the Huber loss DQN uses).
    pub fn backward(
        &self,
        x: &[f32; STATE_LEN],
        fwd: &Forward,
        action: usize,
        target: f32,
        grad: &mut [f32],
    ) {
        let err = (fwd.q[action] - target).clamp(-1.0, 1.0);
        grad[B2 + action] += err;
        for j in 0..HIDDEN {
            grad[W2 + action * HIDDEN + j] += err * fwd.hidden[j];
            if fwd.pre[j] > 0.0 {
                let back = err * self.w2(action, j);
                grad[B1 + j] += back;
                for (i, xi) in x.iter().enumerate() {
                    grad[W1 + j * STATE_LEN + i] += back * xi;
                }
            }
        }
    }
}

/// Adam over a flat parameter vector.
#[derive(Clone, Debug)]
pub struct Adam {
    pub learning_rate: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(learning_rate: f32) -> Self {
        Adam {
            learning_rate,
            m: vec![0.0; NR_PARAMS],
            v: vec![0.0; NR_PARAMS],
            t: 0,
        }
    }

    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const BETA1: f32 = 0.9;
        const BETA2: f32 = 0.999;
        self.t += 1;
        let correction1 = 1.0 - BETA1.powi(self.t);
        let correction2 = 1.0 - BETA2.powi(self.t);
        for i in 0..params.len() {
            self.m[i] = BETA1 * self.m[i] + (1.0 - BETA1) * grad[i];
            self.v[i] = BETA2 * self.v[i] + (1.0 - BETA2) * grad[i] * grad[i];
            let m_hat = self.m[i] / correction1;
            let v_hat = self.v[i] / correction2;
            params[i] -= self.learning_rate * m_hat / (v_hat.sqrt() + 1e-8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let net = Mlp::new(&mut rng);
        let x: [f32; STATE_LEN] = std::array::from_fn(|_| rng.gen_range(0.0..1.0));
        let (action, target) = (4, 0.3);
        let loss = |net: &Mlp| {
            let q = net.forward(&x).q[action];
            0.5 * (q - target) * (q - target)
        };
        // Keep the error inside the unclipped range for the comparison.
        assert!((net.forward(&x).q[action] - target).abs() < 1.0);
        let mut grad = vec![0.0; NR_PARAMS];
        net.backward(&x, &net.forward(&x), action, target, &mut grad);
        for p in (0..NR_PARAMS).step_by(7) {
            let h = 1e-3;
            let mut plus = net.clone();
            plus.params[p] += h;
            let mut minus = net.clone();
            minus.params[p] -= h;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h);
            assert!(
                (numeric - grad[p]).abs() < 2e-3,
                "param {p}: {numeric} vs {}",
                grad[p]
            );
        }
    }

    #[test]
    fn adam_fits_a_constant() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut net = Mlp::new(&mut rng);
        let mut adam = Adam::new(0.01);
        let x = [0.5; STATE_LEN];
        for _ in 0..500 {
            let mut grad = vec![0.0; NR_PARAMS];
            net.backward(&x, &net.forward(&x), 2, 0.7, &mut grad);
            adam.step(&mut net.params, &grad);
        }
        assert!((net.forward(&x).q[2] - 0.7).abs() < 0.01);
    }
}
