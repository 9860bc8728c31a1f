//! Scheduler choices on this host: the fair class and its baseline variants side by side.

mod common;

use common::*;

#[test]
fn fair_class_baselines_side_by_side() {
    if !have_root("fair_class_baselines_side_by_side") {
        return;
    }
    let fair = if kernel_is_eevdf() { "eevdf" } else { "cfs" };
    let dir = temp_dir("baselines");
    let json = dir.join("trials.json");
    let schedulers = [
        "",
        ":collector-fifo",
        ":collector-nice",
        ":attack-nice",
        ":attack-quota",
    ]
    .map(|variant| format!("{fair}{variant}"))
    .join(",");
    let before = snapshot();
    let out = aegis(&[
        "attack",
        "--threads",
        "2",
        "--duration",
        "1",
        "--ring-size",
        "64KiB",
        "--scheduler",
        &schedulers,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let trials = read_trials(&json);
    let names: Vec<&str> = trials
        .iter()
        .map(|t| t["scheduler"].as_str().unwrap())
        .collect();
    assert_eq!(names, schedulers.split(',').collect::<Vec<_>>());
    assert!(trials[0]["applied_policy"].is_null());
    let fifo = &trials[1]["applied_policy"];
    assert_eq!(fifo["policy_target"], "collector");
    assert_eq!(fifo["policy"], "SCHED_FIFO");
    assert_eq!(fifo["policy_rt_priority"], 50);
    assert_eq!(trials[1]["policy_restored"], true);
    assert_eq!(trials[2]["applied_policy"]["policy_nice"], -20);
    assert_eq!(trials[2]["policy_restored"], true);
    assert_eq!(trials[3]["applied_policy"]["policy_target"], "attack");
    assert_eq!(trials[3]["applied_policy"]["policy_nice"], 19);
    assert_eq!(trials[4]["applied_policy"]["attack_cpu_quota_pct"], 50);
    for t in &trials {
        assert_adds_up(t);
        assert!(t["sched_ext_ops"].is_null());
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn sched_ext_schedulers_need_sched_ext_or_a_guest() {
    if std::path::Path::new("/sys/kernel/sched_ext").exists() {
        skip(
            "sched_ext_schedulers_need_sched_ext_or_a_guest",
            "this kernel has sched_ext, so there is no refusal to check",
        );
        return;
    }
    for name in ["scx_rustland", "aegis", "scx:/usr/bin/true"] {
        let out = aegis(&["attack", "--scheduler", name]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("needs sched_ext") && err.contains("--vm"),
            "{name}: {err}"
        );
    }
}
