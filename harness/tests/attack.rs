//! End to end: real BPF programs, real cgroups, real floods. Needs root (CI is root).

mod common;

use common::*;

#[test]
fn small_ring_and_four_producers_lose_events() {
    if !have_root("small_ring_and_four_producers_lose_events") {
        return;
    }
    let dir = temp_dir("small-ring");
    let json = dir.join("trials.json");
    let csv = dir.join("trials.csv");
    let before = snapshot();
    let out = aegis(&[
        "attack",
        "--flood",
        "openat",
        "--threads",
        "4",
        "--duration",
        "2",
        "--ring-size",
        "64KiB",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let trials = read_trials(&json);
    assert_eq!(trials.len(), 1);
    let t = &trials[0];
    for field in [
        "scheduler",
        "collector",
        "flood",
        "threads",
        "generated",
        "received",
        "dropped",
        "loss_pct",
        "canary_recorded",
        "attack_rate",
        "kernel",
        "git_rev",
    ] {
        assert!(t.get(field).is_some(), "JSON lacks {field}: {t}");
    }
    assert_eq!(t["scheduler"], "eevdf");
    assert_eq!(t["collector"], "builtin");
    assert_eq!(t["flood"], "openat");
    assert_eq!(t["threads"], 4);
    assert_adds_up(t);
    let dropped = u64_of(t, "dropped");
    assert!(
        dropped > 0,
        "a 64 KiB ring under 4 producers should overflow: {t}"
    );
    assert!(t["loss_pct"].as_f64().unwrap() > 0.0);
    assert!(t["canary_recorded"].is_boolean());
    assert!(t["attack_rate"].as_f64().unwrap() > 1000.0);
    // The table names the columns a reader needs.
    let table = stdout(&out);
    for column in [
        "generated",
        "received",
        "dropped",
        "loss %",
        "canary",
        "attack rate",
        "collector CPU",
    ] {
        assert!(table.contains(column), "table lacks {column}:\n{table}");
    }
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 2, "{csv_text}");
    assert!(csv_text.starts_with("scheduler,sched_ext_ops,collector,flood,cmd,threads"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn big_ring_and_one_producer_lose_nothing_and_record_the_canary() {
    if !have_root("big_ring_and_one_producer_lose_nothing_and_record_the_canary") {
        return;
    }
    let dir = temp_dir("big-ring");
    let json = dir.join("trials.json");
    let logs = dir.join("logs");
    let before = snapshot();
    // 100k iterations fit a 64 MiB ring even if the consumer never ran.
    let out = aegis(&[
        "attack",
        "--flood",
        "openat",
        "--threads",
        "1",
        "--duration",
        "30",
        "--count",
        "100000",
        "--ring-size",
        "64MiB",
        "--json",
        json.to_str().unwrap(),
        "--keep-logs",
        logs.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let t = &read_trials(&json)[0];
    assert_eq!(t["dropped"], 0, "{t}");
    assert_eq!(t["loss_pct"], 0.0);
    assert_eq!(t["canary_recorded"], true, "{t}");
    // 100000 flood openat calls plus the canary's one, counted by the kernel.
    assert_eq!(t["truth_by_syscall"]["openat"], 100_001, "{t}");
    assert_eq!(t["truth_by_syscall"]["close"], 100_001, "{t}");
    assert_eq!(t["generated"], t["received"]);

    // The kept log reads back and holds the canary's creation and unlink.
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let canary = t["canary_path"].as_str().unwrap();
    let out = aegis(&["log", log.to_str().unwrap(), "--path-contains", canary]);
    assert_success(&out);
    let lines = stdout(&out);
    assert!(
        lines.contains("openat(") && lines.contains("unlinkat("),
        "{lines}"
    );
    let out = aegis(&["log", log.to_str().unwrap(), "--summary"]);
    assert!(
        stdout(&out).contains(&format!("{}  records", t["received"])),
        "{}",
        stdout(&out)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn every_flood_accounts_exactly() {
    if !have_root("every_flood_accounts_exactly") {
        return;
    }
    let dir = temp_dir("floods");
    let before = snapshot();
    for flood in [
        "openat",
        "open-read-close",
        "rdwr",
        "devnull",
        "execve",
        "fork",
        "connect",
        "stat",
    ] {
        let json = dir.join(format!("{flood}.json"));
        let out = aegis(&[
            "attack",
            "--flood",
            flood,
            "--threads",
            "2",
            "--duration",
            "0.5",
            "--ring-size",
            "16MiB",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_success(&out);
        let t = &read_trials(&json)[0];
        assert_eq!(t["flood"], flood);
        assert!(u64_of(t, "generated") > 0, "{flood}: {t}");
        assert_adds_up(t);
    }
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn rate_limits_the_flood() {
    if !have_root("rate_limits_the_flood") {
        return;
    }
    let dir = temp_dir("rate");
    let json = dir.join("trials.json");
    let out = aegis(&[
        "attack",
        "--flood",
        "stat",
        "--threads",
        "2",
        "--duration",
        "1",
        "--rate",
        "2000",
        "--ring-size",
        "1MiB",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    let t = &read_trials(&json)[0];
    let newfstatat = t["attack_by_syscall"]["newfstatat"].as_u64().unwrap();
    // Paced to 2000/s for 1 s: never faster than the pace allows.
    assert!(
        (1000..=2100).contains(&newfstatat),
        "{newfstatat} calls: {t}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn cmd_runs_any_program_as_the_producer() {
    if !have_root("cmd_runs_any_program_as_the_producer") {
        return;
    }
    let dir = temp_dir("cmd");
    let json = dir.join("trials.json");
    let before = snapshot();
    let out = aegis(&[
        "attack",
        "--cmd",
        "sh -c 'for i in 1 2 3 4 5; do cat /etc/hostname; done'",
        "--duration",
        "2",
        "--ring-size",
        "4MiB",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let t = &read_trials(&json)[0];
    assert_eq!(t["flood"], "cmd");
    assert!(
        t["truth_by_syscall"]["execve"].as_u64().unwrap() >= 6,
        "{t}"
    );
    assert_eq!(t["dropped"], 0);
    assert_eq!(t["canary_recorded"], true);

    // A program that fails is a failed trial, not a good one, and the machine is put back.
    let out = aegis(&["attack", "--cmd", "sh -c 'exit 3'", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the --cmd program exited with status 3"),
        "{}",
        stderr(&out)
    );
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn compact_collector_accounts_exactly_and_drains_cheaper() {
    if !have_root("compact_collector_accounts_exactly_and_drains_cheaper") {
        return;
    }
    let dir = temp_dir("compact");
    let before = snapshot();
    // Lossless when the ring holds everything: the canary is in the compact log.
    let json = dir.join("big.json");
    let out = aegis(&[
        "attack",
        "--collector",
        "builtin-compact",
        "--threads",
        "1",
        "--count",
        "50000",
        "--duration",
        "30",
        "--ring-size",
        "64MiB",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    let t = &read_trials(&json)[0];
    assert_eq!(t["collector"], "builtin-compact");
    assert_eq!(t["dropped"], 0, "{t}");
    assert_eq!(t["canary_recorded"], true, "{t}");
    assert_eq!(t["truth_by_syscall"]["openat"], 50_001);

    // Under pressure, side by side: the compact consumer's own sequence check agrees with its
    // drop counter (checked by the accounting), and it drains far more per CPU-second.
    let json = dir.join("small.json");
    let out = aegis(&[
        "attack",
        "--collector",
        "builtin,builtin-compact",
        "--threads",
        "4",
        "--duration",
        "2",
        "--ring-size",
        "64KiB",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    // Trials run (and are written) in seeded random order: find each by its collector.
    let trials = read_trials(&json);
    let by = |name: &str| {
        trials
            .iter()
            .find(|t| t["collector"] == name)
            .unwrap_or_else(|| panic!("no {name} trial in {trials:?}"))
    };
    let (full, compact) = (by("builtin"), by("builtin-compact"));
    assert_eq!(compact["collector_self_detected_lost"], compact["dropped"]);
    let efficiency = |t: &serde_json::Value| t["received_per_collector_cpu_s"].as_f64().unwrap();
    assert!(
        efficiency(compact) >= 3.0 * efficiency(full),
        "compact {} vs full {} records per collector CPU-second",
        efficiency(compact),
        efficiency(full)
    );
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn workload_beside_the_attack_reports_the_share_it_kept() {
    if !have_root("workload_beside_the_attack_reports_the_share_it_kept") {
        return;
    }
    let dir = temp_dir("workload");
    let json = dir.join("trials.json");
    let csv = dir.join("trials.csv");
    let before = snapshot();
    let out = aegis(&[
        "attack",
        "--flood",
        "openat",
        "--threads",
        "2",
        "--duration",
        "2",
        "--ring-size",
        "1MiB",
        "--workload",
        "stress-ng-cpu",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_success(&out);
    // The workload's processes and its cgroup are gone with the attack's.
    assert_restored(&before);
    let trials = read_trials(&json);
    assert_eq!(trials.len(), 1);
    let t = &trials[0];
    // Its syscalls stayed out of the attack's account.
    assert_adds_up(t);
    assert_eq!(t["workload"], "stress-ng-cpu", "{t}");
    assert_eq!(t["workload_throughput_unit"], "bogo ops/s", "{t}");
    let f = |field: &str| {
        t[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {t}"))
    };
    let beside = f("workload_throughput_per_s");
    let alone = f("workload_alone_throughput_per_s");
    let kept = f("workload_kept_fraction");
    // stress-ng's cpu stressor does hundreds to thousands of bogo ops/s per CPU here.
    assert!(beside > 1.0 && beside.is_finite(), "{t}");
    assert!(alone > 10.0 && alone.is_finite(), "{t}");
    assert!(kept > 0.0 && kept <= 1.5, "{t}");
    assert!((kept - beside / alone).abs() < 1e-9, "{t}");
    let err = stderr(&out);
    assert!(
        err.contains("stress-ng-cpu alone under eevdf for 2 s"),
        "{err}"
    );
    // The flood is released once stress-ng is at work: its run covers the attack's, not its
    // own start-up followed by time without the attack.
    assert!(
        !err.contains("warning: workload stress-ng-cpu ran"),
        "{err}"
    );
    // The table gets the kept fraction; the CSV the new columns after the old ones.
    let table = stdout(&out);
    assert!(
        table.contains("kept") && table.contains(&format!("{kept:.2}")),
        "{table}"
    );
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let header = csv_text.lines().next().unwrap();
    assert!(header.starts_with("scheduler,sched_ext_ops,collector,flood,cmd,threads"));
    assert!(
        header.ends_with(
            ",workload,workload_throughput_per_s,workload_throughput_unit,\
             workload_alone_throughput_per_s,workload_kept_fraction,run_delay_max_ms,\
             run_delay_max_task,run_delay_max_sample_gap_ms,run_delay_p50_ms,run_delay_p99_ms,\
             run_delay_cdf_ms,fairness_workload_jain,fairness_workload_tasks,\
             fairness_attack_jain,fairness_attack_tasks,collector_context_switches,\
             collector_cpu_migrations,attack_context_switches,attack_cpu_migrations,\
             collector_cycles,collector_instructions,hardware_counters_unavailable,\
             scheduler_args,trial_id,collector_cpu_share,boot,boot_id,cpu_model,cpus,\
             build_profile,host_machine,host_kernel,host_cpu_model,host_cpus,qemu_version,\
             model_sha256,evade"
        ),
        "{header}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn evaders_are_counted_exactly_and_recorded() {
    if !have_root("evaders_are_counted_exactly_and_recorded") {
        return;
    }
    let dir = temp_dir("evade");
    let before = snapshot();
    for evade in ["spin:100", "spread:8", "hogs:1"] {
        let json = dir.join(format!("{evade}.json"));
        let out = aegis(&[
            "attack",
            "--evade",
            evade,
            "--threads",
            "2",
            "--duration",
            "0.5",
            "--ring-size",
            "1MiB",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_success(&out);
        assert!(
            stdout(&out).contains(&format!("openat+{evade}")),
            "{}",
            stdout(&out)
        );
        let t = &read_trials(&json)[0];
        assert_adds_up(t);
        assert_eq!(t["evade"], evade, "{t}");
        let id = t["trial_id"].as_str().unwrap();
        assert!(id.starts_with(&format!("openat+{evade}/")), "{id}");
        // Ground truth saw every process the spread evader cloned, and the attack counted it.
        assert_eq!(
            t["truth_by_syscall"]["clone"], t["attack_by_syscall"]["clone"],
            "{evade}: {t}"
        );
        assert_eq!(
            t["truth_by_syscall"]["openat"],
            t["attack_by_syscall"]["openat"]
        );
    }
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn trace_scope_all_accounts_for_every_group_and_attack_scope_records_none() {
    if !have_root("trace_scope_all_accounts_for_every_group_and_attack_scope_records_none") {
        return;
    }
    let dir = temp_dir("trace-scope");
    let json = dir.join("all.json");
    let before = snapshot();
    // hackbench is syscall-heavy (reads and writes on pipes), and a large ring keeps the
    // groups' loss low enough that every group has records.
    let out = aegis(&[
        "attack",
        "--trace-scope",
        "all",
        "--collector",
        "builtin,builtin-compact",
        "--threads",
        "2",
        "--duration",
        "2",
        "--ring-size",
        "8MiB",
        "--workload",
        "hackbench",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let trials = read_trials(&json);
    assert_eq!(trials.len(), 2);
    for t in &trials {
        assert_eq!(t["trace_scope"], "all", "{t}");
        assert_adds_up(t);
        let groups = &t["loss_by_group"];
        let group = |name: &str, field: &str| {
            groups[name][field]
                .as_i64()
                .unwrap_or_else(|| panic!("{name}.{field} in {t}"))
        };
        // The attack's group is the attack's numbers, exactly.
        for field in ["generated", "received", "dropped"] {
            assert_eq!(group("attack", field), u64_of(t, field) as i64, "{t}");
        }
        assert_eq!(group("attack", "unmatched_at_switch"), 0, "{t}");
        assert_eq!(groups["attack"]["loss_pct"], t["loss_pct"], "{t}");
        // The workload's and the rest's events were traced (the harness itself reads the
        // workload's cgroup files while the switch is on).
        assert!(group("workload", "generated") > 0, "{t}");
        assert!(group("rest", "generated") > 0, "{t}");
        // Each group adds up within the bound, and the total is their sum.
        let bound = u64_of(t, "unmatched_at_switch_bound") as i64;
        assert!(bound >= 2 && bound % 2 == 0, "{t}");
        let mut unmatched = 0;
        for name in ["attack", "workload", "rest"] {
            let off = group(name, "generated") - group(name, "received") - group(name, "dropped");
            assert_eq!(off, group(name, "unmatched_at_switch"), "{name}: {t}");
            unmatched += off.abs();
        }
        assert!(unmatched <= bound, "{t}");
        for field in ["generated", "received", "dropped", "unmatched_at_switch"] {
            let sum: i64 = ["attack", "workload", "rest"]
                .iter()
                .map(|name| group(name, field))
                .sum();
            assert_eq!(group("total", field), sum, "{field}: {t}");
        }
    }
    assert!(stderr(&out).contains("by group, generated/received/dropped: attack "));

    // The default scope records neither field.
    let json = dir.join("attack.json");
    let out = aegis(&[
        "attack",
        "--collector",
        "builtin,builtin-compact",
        "--threads",
        "1",
        "--count",
        "2000",
        "--duration",
        "10",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    for t in read_trials(&json) {
        assert_adds_up(&t);
        for field in ["trace_scope", "loss_by_group", "unmatched_at_switch_bound"] {
            assert!(t.get(field).is_none(), "{field} in {t}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}
