//! Delta-based inference reduction: re-run the network only when the quantized state moved
//! more than `delta` (L1 distance) since the state of the last inference.

use super::qnet::STATE_LEN;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaGate {
    pub delta: u32,
    last: Option<[u8; STATE_LEN]>,
    pub nr_run: u64,
    pub nr_skipped: u64,
}

impl DeltaGate {
    pub fn new(delta: u32) -> Self {
        DeltaGate {
            delta,
            last: None,
            nr_run: 0,
            nr_skipped: 0,
        }
    }

    /// Whether to run the network for `state`; records the decision.
    pub fn should_run(&mut self, state: &[u8; STATE_LEN]) -> bool {
        let moved = match &self.last {
            None => u32::MAX,
            Some(last) => last
                .iter()
                .zip(state)
                .map(|(a, b)| a.abs_diff(*b) as u32)
                .sum(),
        };
        if moved > self.delta {
            self.last = Some(*state);
            self.nr_run += 1;
            true
        } else {
            self.nr_skipped += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_first_then_only_on_movement() {
        let mut gate = DeltaGate::new(10);
        let mut state = [100u8; STATE_LEN];
        assert!(gate.should_run(&state));
        state[0] = 105;
        assert!(!gate.should_run(&state));
        state[1] = 106;
        assert!(
            gate.should_run(&state),
            "moved 11 in total from the last inference"
        );
        assert_eq!((gate.nr_run, gate.nr_skipped), (2, 1));
        let mut always = DeltaGate::new(0);
        assert!(always.should_run(&state) && !always.should_run(&state));
    }
}
