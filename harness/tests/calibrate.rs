//! End to end: `aegis-bench calibrate` then `aegis-bench sim validate` on real attacks.
//! Needs root (CI is root).

mod common;

use std::path::Path;

use common::*;

#[test]
fn calibrate_then_validate_writes_points() {
    if !have_root("calibrate_then_validate_writes_points") {
        return;
    }
    let dir = temp_dir("calibrate");
    let calibration = dir.join("calibration.json");
    let before = snapshot();
    let cal = calibrate_quick(&calibration);
    validate_quick(&dir, &calibration);
    replay_saved_trials(&dir, &calibration, &cal);
    assert_eq!(snapshot(), before, "the runs left state behind");
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `calibrate --quick` into `calibration`; returns what it wrote.
fn calibrate_quick(calibration: &Path) -> serde_json::Value {
    let out = aegis(&[
        "calibrate",
        "--quick",
        "--count",
        "20000",
        "--out",
        calibration.to_str().unwrap(),
    ]);
    assert_success(&out);
    let cal = read_json(calibration);
    let cost = cal["syscall_cost_ns"]["openat"].as_f64().unwrap();
    assert!(cost > 10.0 && cost < 1e6, "openat cost {cost} ns");
    assert!(cal["collector_per_event_cost_ns"].as_f64().unwrap() > 0.0);
    assert!(cal["pipe_wakeup_latency_ns"].as_f64().unwrap() > 0.0);
    assert!(cal["wakeup_latency_ns"].as_f64().unwrap() >= 0.0);
    assert!(cal["producer_notify_cost_ns"].as_f64().unwrap() >= 0.0);
    // The built-in collector timed the first record of its batches in the small-ring runs.
    let ages = cal["wakeup_latency_histogram"]["counts"]
        .as_array()
        .expect("measured wakeup latencies");
    assert!(
        ages.iter().map(|b| b[1].as_u64().unwrap()).sum::<u64>() > 0,
        "{ages:?}"
    );
    // Every run measured the collector's consuming alone (from attach through the drain),
    // its sleeps and its preemptions.
    for run in cal["runs"].as_array().expect("calibration runs") {
        let consuming_cpu_s = run["collector_cpu_s"].as_f64().unwrap();
        assert!(consuming_cpu_s > 0.0, "{run}");
        assert!(run["collector_sleeps"].as_u64().is_some(), "{run}");
        assert!(run["collector_preemptions"].as_u64().is_some(), "{run}");
    }
    for field in ["machine", "kernel", "date", "git_rev"] {
        assert!(
            !cal[field].as_str().unwrap().is_empty(),
            "{field} missing: {cal}"
        );
    }
    cal
}

/// `sim validate --quick` with new real runs at two intensities.
fn validate_quick(dir: &Path, calibration: &Path) {
    let report = dir.join("validate.json");
    let out = aegis(&[
        "sim",
        "validate",
        "--quick",
        "--threads",
        "1,4",
        "--duration",
        "0.3",
        "--seeds",
        "1",
        "--eevdf-model",
        "simple",
        "--per-cpu-run-queues",
        "--calibration",
        calibration.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_success(&out);
    let stdout = stdout(&out);
    assert!(stdout.contains("max error"), "{stdout}");
    let report = read_json(&report);
    assert_eq!(report["per_cpu_run_queues"], true);
    assert_eq!(report["eevdf_model"], "simple");
    assert_eq!(report["inflate_placement_lag"], false);
    assert_eq!(report["tick_ns"], 1_000_000);
    // Calibrated here a moment ago: no warning about another machine.
    assert_eq!(report["calibration_from_this_host"], true, "{report}");
    assert!(!stderr(&out).contains("warning:"), "{}", stderr(&out));
    let points = report["points"].as_array().expect("a points list");
    assert_eq!(points.len(), 2, "{report}");
    for (point, threads) in points.iter().zip([1, 4]) {
        assert_eq!(point["threads"], threads);
        let real = point["real_loss_pct"].as_f64().expect("real_loss_pct");
        let sim = point["sim_loss_pct"].as_f64().expect("sim_loss_pct");
        assert!((0.0..=100.0).contains(&real) && (0.0..=100.0).contains(&sim));
        let error = point["error_pp"].as_f64().unwrap();
        assert!((error - (real - sim).abs()).abs() < 1e-9);
    }
}

/// The same replayed from saved trials: no new runs, the simulator with the kernel's tick.
/// Spelled the old way (`sim --validate`), which still works.
fn replay_saved_trials(dir: &Path, calibration: &Path, cal: &serde_json::Value) {
    let trials = dir.join("trials.json");
    let out = aegis(&[
        "attack",
        "--flood",
        "openat",
        "--threads",
        "2",
        "--duration",
        "0.3",
        "--ring-size",
        "64KiB",
        "--collector",
        "builtin",
        "--json",
        trials.to_str().unwrap(),
    ]);
    assert_success(&out);
    let replayed = dir.join("replayed.json");
    let out = aegis(&[
        "sim",
        "--validate",
        "--real-trials",
        trials.to_str().unwrap(),
        "--seeds",
        "1",
        "--calibration",
        calibration.to_str().unwrap(),
        "--json",
        replayed.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert!(!stderr(&out).contains("validate: aegis-bench attack"));
    let replayed = read_json(&replayed);
    // The default model: Linux-like, with the kernel's tick where its config is readable.
    assert_eq!(replayed["eevdf_model"], "linux");
    assert_eq!(replayed["inflate_placement_lag"], true);
    let tick_ns = cal["kernel_tick_ns"].as_u64().unwrap_or(1_000_000);
    assert_eq!(replayed["tick_ns"], tick_ns, "{replayed}");
    assert_eq!(replayed["real_trials_file"], trials.to_str().unwrap());
    let point = &replayed["points"][0];
    assert_eq!(point["threads"], 2);
    assert!(
        point["real_collector_sleeps"].as_u64().unwrap() > 0,
        "{point}"
    );
    assert!(point["real_long_waits"].as_u64().is_some(), "{point}");
    assert!(point["sim_long_waits"].as_u64().is_some(), "{point}");
}

#[test]
fn validate_refuses_files_that_are_not_real_trials() {
    let dir = temp_dir("not-trials");
    let calibration = dir.join("calibration.json");
    // A calibration is JSON but not a trial list.
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../results/calibration.json"),
        &calibration,
    )
    .unwrap();
    let out = aegis(&[
        "sim",
        "validate",
        "--real-trials",
        calibration.to_str().unwrap(),
        "--calibration",
        calibration.to_str().unwrap(),
        "--json",
        dir.join("v.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("aegis-bench attack --json"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn validate_without_calibration_names_the_fix() {
    let dir = temp_dir("no-calibration");
    let missing = dir.join("missing.json");
    let json = dir.join("v.json");
    let args = [
        "--calibration",
        missing.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    let out = aegis(&[&["sim", "validate"], &args[..]].concat());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("aegis-bench calibrate"),
        "{}",
        stderr(&out)
    );
    // The old spelling says the same.
    let old = aegis(&[&["sim", "--validate"], &args[..]].concat());
    assert_eq!(
        (old.status.code(), stderr(&old)),
        (out.status.code(), stderr(&out))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
