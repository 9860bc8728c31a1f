//! The shipped model (`scheduler/models/aegis.json`, made by `aegis-bench train`) loads, has
//! the shapes the kernel side expects, and its fixed-point network picks one of the actions.
//! This checks the file, not the policy's quality (see scheduler/models/README.md for that).

use scheduler::aegis::qnet::{Action, State, NR_ACTIONS, STATE_LEN};
use scheduler::dqn::mlp::NR_PARAMS;
use scheduler::dqn::TrainedModel;

fn shipped() -> (TrainedModel, serde_json::Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/aegis.json");
    let text = std::fs::read_to_string(path).expect("the shipped model");
    (
        serde_json::from_str(&text).expect("a TrainedModel"),
        serde_json::from_str(&text).expect("JSON"),
    )
}

#[test]
fn shipped_model_loads_with_the_right_shapes() {
    let (model, raw) = shipped();
    assert_eq!(model.float_network.params.len(), NR_PARAMS);
    let fixed = &raw["fixed_network"];
    let rows = |key: &str| fixed[key].as_array().unwrap().len();
    assert_eq!(rows("w1"), 16);
    assert_eq!(rows("b1"), 16);
    assert_eq!(rows("w2"), NR_ACTIONS);
    assert_eq!(rows("b2"), NR_ACTIONS);
    assert!(fixed["w1"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row.as_array().unwrap().len() == STATE_LEN));
    assert_eq!(model.seed, model.config.seed);
    assert_eq!(model.training_rewards.len(), model.config.episodes);
    assert!(model.learning_curve.len() >= 2);
    assert!(model.evaluation.iter().any(|s| s.policy == "aegis-dqn"));
    assert!(model.quantization.argmax_agreement > 0.9);
}

#[test]
fn shipped_network_picks_an_action() {
    let (model, _) = shipped();
    let states = [
        State::default(),
        State {
            production_rate_per_s: 2_000_000,
            ring_fill_pct: 90,
            collector_cpu_pct: 100,
            runnable: [1, 0, 6],
            oldest_wait_us: [0, 20_000],
        },
        State {
            production_rate_per_s: 50_000,
            ring_fill_pct: 5,
            collector_cpu_pct: 10,
            runnable: [0, 2, 1],
            oldest_wait_us: [3_000, 500],
        },
    ];
    for state in states {
        let q = state.quantize();
        let action = model.fixed_network.act(&q);
        assert!(action.index() < NR_ACTIONS);
        assert_eq!(Action::from_index(action.index()), action);
        assert_eq!(
            model.fixed_network.to_bpf_bytes().len(),
            scheduler::aegis::qnet::BPF_BYTES
        );
    }
}
