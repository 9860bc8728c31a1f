//! End to end: `aegis-bench train --quick` writes a model that parses, with its learning-curve
//! figures beside it, and `sim evaluate --quick` a report with its figures. No root needed
//! (simulation only).

mod common;

use common::*;

#[test]
fn quick_training_writes_model_and_figures() {
    let dir = temp_dir("train");
    let out_path = dir.join("models").join("quick.json");
    let out = aegis(&[
        "train",
        "--quick",
        "--seed",
        "7",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert_success(&out);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(model["seed"], 7);
    assert_eq!(model["config"]["seed"], 7);
    assert_eq!(model["config"]["episodes"], 12);
    assert_eq!(model["training_rewards"].as_array().unwrap().len(), 12);
    assert!(model["learning_curve"].as_array().unwrap().len() >= 2);
    let w1 = model["fixed_network"]["w1"].as_array().unwrap();
    assert_eq!(w1.len(), 16);
    assert!(w1.iter().all(|row| row.as_array().unwrap().len() == 8));
    assert_eq!(model["fixed_network"]["b2"].as_array().unwrap().len(), 9);
    let policies: Vec<&str> = model["evaluation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["policy"].as_str().unwrap())
        .collect();
    for name in ["eevdf", "aegis-no-net", "aegis-dqn"] {
        assert!(policies.contains(&name), "{policies:?}");
    }
    assert!(model["command"].as_str().unwrap().contains("--quick"));
    for figure in ["quick-learning-curve.png", "quick-learning-curve.svg"] {
        let path = dir.join("models").join(figure);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 1000, "{figure}: {len} bytes");
    }
    let svg = std::fs::read_to_string(dir.join("models/quick-learning-curve.svg")).unwrap();
    assert!(svg.contains("training episode"), "axis label missing");
    assert!(stdout(&out).contains("aegis-dqn"), "{}", stdout(&out));
    // No temporary files left beside the model.
    let names: Vec<_> = std::fs::read_dir(dir.join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn zero_episodes_is_bad_input() {
    let dir = temp_dir("train-zero");
    let out = aegis(&[
        "train",
        "--episodes",
        "0",
        "--out",
        dir.join("m.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!dir.join("m.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_calibration_is_named_with_its_fix() {
    let dir = temp_dir("train-calibration");
    let out = aegis(&[
        "train",
        "--quick",
        "--calibration",
        dir.join("missing.json").to_str().unwrap(),
        "--out",
        dir.join("m.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("missing.json") && err.contains("aegis-bench calibrate"),
        "{err}"
    );
    assert!(!dir.join("m.json").exists());
    let bad_cpus = aegis(&[
        "train",
        "--quick",
        "--cpus",
        "0",
        "--out",
        dir.join("m.json").to_str().unwrap(),
    ]);
    assert_eq!(bad_cpus.status.code(), Some(2), "{}", stderr(&bad_cpus));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quick_evaluation_writes_report_and_figures() {
    let dir = temp_dir("evaluate");
    let json = dir.join("eval").join("sim-evaluate.json");
    let out = aegis(&[
        "sim",
        "evaluate",
        "--quick",
        "--calibration",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../results/calibration.json"),
        "--model",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scheduler/models/aegis.json"
        ),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["eevdf_model"], "linux");
    let rows = report["rows"].as_array().unwrap();
    // 2 and 8 CPUs x 1 and 4 producers x five policies.
    assert_eq!(rows.len(), 20);
    for figure in ["png", "svg"] {
        let path = json.with_extension(figure);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 1_000, "{} is {len} bytes", path.display());
    }
    assert!(
        stdout(&out).contains("sim-evaluate.png"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn evaluate_in_the_old_spelling_says_the_same() {
    let dir = temp_dir("evaluate-old");
    let json = dir.join("e.json");
    let args = [
        "--calibration",
        "/nonexistent/calibration.json",
        "--json",
        json.to_str().unwrap(),
    ];
    let new = aegis(&[&["sim", "evaluate"], &args[..]].concat());
    assert_eq!(new.status.code(), Some(1), "{}", stderr(&new));
    assert!(
        stderr(&new).contains("aegis-bench calibrate"),
        "{}",
        stderr(&new)
    );
    let old = aegis(&[&["sim", "--evaluate"], &args[..]].concat());
    assert_eq!(
        (old.status.code(), stderr(&old)),
        (new.status.code(), stderr(&new))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
