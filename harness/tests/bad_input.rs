//! Bad input: one line that names the problem and the fix, exit status 2, nothing left behind.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

fn assert_input_error(out: &std::process::Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
}

/// A file of the repository, as an argument (tests run in harness/).
fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn check(args: &[&str], needle: &str) {
    let before = if nix::unistd::geteuid().is_root() {
        Some(snapshot())
    } else {
        None
    };
    let out = aegis(args);
    assert_input_error(&out, needle);
    if let Some(before) = before {
        assert_restored(&before);
    }
}

#[test]
fn unknown_flood() {
    check(
        &["attack", "--flood", "opn"],
        "unknown flood 'opn'; choose one of: openat",
    );
}

#[test]
fn zero_duration() {
    check(
        &["attack", "--duration", "0"],
        "--duration must be a positive number",
    );
}

#[test]
fn unparsable_ring_size() {
    check(&["attack", "--ring-size", "lots"], "e.g. 64KiB");
}

#[test]
fn too_small_ring_size() {
    check(&["attack", "--ring-size", "1KiB"], "too small");
}

#[test]
fn ring_size_not_a_power_of_two() {
    check(&["attack", "--ring-size", "100KiB"], "use 64KiB or 128KiB");
}

#[test]
fn cfs_on_an_eevdf_kernel_names_vm_kernel() {
    if kernel_is_eevdf() {
        check(&["attack", "--scheduler", "cfs"], "--vm-kernel cfs");
    } else {
        check(&["attack", "--scheduler", "eevdf"], "--vm-kernel eevdf");
    }
}

#[test]
fn unknown_collector() {
    check(
        &["attack", "--collector", "nope"],
        "unknown collector 'nope'",
    );
}

#[test]
fn unknown_workload_names_the_valid_ones() {
    check(
        &["attack", "--workload", "stress-ng-cpu,stress"],
        "unknown workload 'stress'; choose one of: stress-ng-cpu, hackbench, sysbench-cpu, \
         nginx-wrk, redis, compile",
    );
}

#[test]
fn workload_needs_whole_seconds() {
    check(
        &["attack", "--workload", "hackbench", "--duration", "1.5"],
        "--workload needs a whole number of seconds for --duration",
    );
}

#[test]
fn not_root() {
    if !nix::unistd::geteuid().is_root() {
        check(&["attack"], "needs root");
        return;
    }
    // Run a copy of the binary as nobody (the build tree may not be readable by nobody).
    let dir = temp_dir("not-root");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("aegis-bench");
    std::fs::copy(BIN, &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = snapshot();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["attack", "--flood", "openat"])
        .current_dir(&dir)
        .output()
        .expect("setpriv (util-linux)");
    assert_input_error(&out, "needs root: run it with sudo");
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn tracefs_unmountable() {
    if !have_root("tracefs_unmountable") {
        return;
    }
    // In a private mount namespace, hide /sys/kernel behind an empty tmpfs: tracefs (and the
    // debugfs copy) are gone and their mount point does not exist, so mounting tracefs fails.
    let before = snapshot();
    let script = format!(
        "umount -l /sys/kernel/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null; \
         mount -t tmpfs none /sys/kernel && exec {BIN} attack --duration 1"
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("unshare (util-linux)");
    assert_input_error(&out, "cannot mount tracefs");
    assert_restored(&before);
}

#[test]
fn a_scheduler_named_twice() {
    check(
        &["attack", "--scheduler", "eevdf,eevdf"],
        "--scheduler names eevdf twice: list each value once",
    );
}

#[test]
fn a_thread_count_named_twice() {
    check(&["attack", "--threads", "1,4,1"], "--threads names 1 twice");
}

#[test]
fn json_and_csv_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    let path = path.to_str().unwrap();
    check(
        &["attack", "--json", path, "--csv", path],
        "--json and --csv both name",
    );
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

#[test]
fn an_output_that_is_a_device_is_refused_before_anything_runs() {
    // As root, renaming the results over /dev/null would replace the device.
    check(
        &["attack", "--json", "/dev/null"],
        "--json /dev/null: exists and is not a regular file",
    );
    use std::os::unix::fs::FileTypeExt;
    let null = std::fs::symlink_metadata("/dev/null").unwrap();
    assert!(null.file_type().is_char_device());
}

#[test]
fn an_output_through_a_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, "precious").unwrap();
    let link = dir.path().join("trials.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    check(&["attack", "--csv", link.to_str().unwrap()], "is a symlink");
    let logs = dir.path().join("logs");
    std::os::unix::fs::symlink(dir.path(), &logs).unwrap();
    check(
        &["attack", "--keep-logs", logs.to_str().unwrap()],
        "--keep-logs",
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
}

#[test]
fn an_output_under_a_file_is_refused_before_a_trial_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let json = file.join("trials.json");
    check(
        &["attack", "--json", json.to_str().unwrap()],
        "is not a directory",
    );
    check(
        &["attack", "--keep-logs", file.to_str().unwrap()],
        "--keep-logs",
    );
}

#[test]
fn a_matrix_that_is_a_device_is_refused_not_read_forever() {
    check(
        &[
            "run",
            "--matrix",
            "/dev/zero",
            "--out",
            "/nonexistent/x",
            "--dry-run",
        ],
        "not a regular file",
    );
}

#[test]
fn a_crafted_shard_count_in_run_json_is_refused_by_merge() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part");
    std::fs::create_dir(&part).unwrap();
    std::fs::write(part.join("trials.jsonl"), "{}\n").unwrap();
    std::fs::write(part.join("matrix.toml"), "duration_s = 1\n").unwrap();
    std::fs::write(
        part.join("run.json"),
        r#"{"matrix_sha256": "x", "shard": {"index": 1, "count": 4294967295},
            "trials_planned": 1, "trials_done": 1, "git_rev": "x"}"#,
    )
    .unwrap();
    let out = dir.path().join("merged");
    check(
        &[
            "merge",
            "--out",
            out.to_str().unwrap(),
            part.to_str().unwrap(),
        ],
        "not i/n",
    );
    assert!(!out.exists());
}

#[test]
fn figures_of_a_device_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figures");
    check(
        &[
            "figures",
            "--results",
            "/dev/zero",
            "--out",
            out.to_str().unwrap(),
        ],
        "/dev/zero",
    );
}

#[test]
fn attack_counts_and_rates_of_zero() {
    check(&["attack", "--rate", "0"], "--rate must be at least 1");
    check(&["attack", "--count", "0"], "--count must be at least 1");
    check(
        &["attack", "--repetitions", "0"],
        "--repetitions must be at least 1",
    );
    check(&["attack", "--threads", "0"], "--threads 0 is out of range");
    check(
        &["attack", "--duration", "nan"],
        "--duration must be a positive number",
    );
}

#[test]
fn a_flood_and_a_cmd_at_once() {
    check(&["attack", "--flood", "stat", "--cmd", "true"], "--cmd");
}

#[test]
fn scx_args_without_a_sched_ext_scheduler() {
    check(
        &["attack", "--scheduler", "eevdf", "--scx-args", "--no-model"],
        "--scx-args goes to sched_ext schedulers",
    );
}

#[test]
fn shards_that_do_not_split_the_matrix() {
    for shard in ["0/3", "4/3", "1/0", "2"] {
        check(
            &[
                "run",
                "--matrix",
                &repo("matrices/ci.toml"),
                "--out",
                "/nonexistent/x",
                "--shard",
                shard,
                "--dry-run",
            ],
            "is not i/n",
        );
    }
}

#[test]
fn a_matrix_that_is_missing_or_not_toml() {
    check(
        &["run", "--matrix", "no/such.toml", "--out", "/nonexistent/x"],
        "cannot read the matrix no/such.toml",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "duration_s = [\n").unwrap();
    check(
        &[
            "run",
            "--matrix",
            bad.to_str().unwrap(),
            "--out",
            "/nonexistent/x",
            "--dry-run",
        ],
        "line 1, column",
    );
}

#[test]
fn gate_without_its_files_or_with_bad_thresholds() {
    check(
        &[
            "gate",
            "--baseline",
            "/nonexistent",
            "--current",
            "/nonexistent",
        ],
        "cannot read the trials of --baseline /nonexistent",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("thresholds.toml");
    std::fs::write(&bad, "alpha = \n").unwrap();
    check(
        &[
            "gate",
            "--baseline",
            &repo("results/ci-baseline"),
            "--current",
            &repo("results/ci-baseline"),
            "--thresholds",
            bad.to_str().unwrap(),
        ],
        "thresholds file",
    );
}

#[test]
fn merge_of_a_directory_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    check(
        &[
            "merge",
            "--out",
            dir.path().join("m").to_str().unwrap(),
            "/nonexistent",
        ],
        "has no trials.jsonl",
    );
}

#[test]
fn log_of_a_missing_file() {
    check(
        &["log", "/nonexistent.log"],
        "cannot open log /nonexistent.log",
    );
}

#[test]
fn train_with_no_episodes() {
    check(
        &["train", "--episodes", "0"],
        "--episodes must be at least 1",
    );
}

#[test]
fn a_worker_given_a_negative_or_nan_duration() {
    for duration in ["-1", "NaN", "inf"] {
        let out = aegis(&[
            "workload-worker",
            "--name",
            "hackbench",
            &format!("--duration={duration}"),
            "--cgroup-procs",
            "/nonexistent/cgroup.procs",
            "--report",
            "/nonexistent/report.json",
        ]);
        assert_input_error(
            &out,
            "--duration must be a number of seconds from 0 to 86400",
        );
        let out = aegis(&[
            "attack-worker",
            "--cgroup-procs",
            "/nonexistent/cgroup.procs",
            "--report",
            "/nonexistent/report.json",
            "--canary",
            "/nonexistent/canary",
            "--scratch",
            "/nonexistent",
            &format!("--duration={duration}"),
        ]);
        assert_input_error(
            &out,
            "--duration must be a number of seconds from 0 to 86400",
        );
    }
}

#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    // `doctor | true`: the reader may be gone before doctor prints; printing then must not
    // panic (status 101).
    let out = Command::new("bash")
        .args(["-c", "\"$0\" doctor | true; exit ${PIPESTATUS[0]}"])
        .arg(env!("CARGO_BIN_EXE_aegis-bench"))
        .output()
        .unwrap();
    assert_ne!(
        out.status.code(),
        Some(101),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cmd_program_that_does_not_exist() {
    check(
        &["attack", "--cmd", "no-such-program-aegis --flag"],
        "--cmd program no-such-program-aegis is not an executable file on the PATH",
    );
}

#[test]
fn boots_need_a_guest_and_at_least_one() {
    check(&["attack", "--boots", "0"], "--boots must be at least 1");
    check(&["attack", "--boots", "3"], "3 boots need --vm");
    check(
        &["attack", "--boots", "2", "--boot", "2"],
        "--boot 2 is not one of the 2 boot(s)",
    );
}

#[test]
fn a_matrix_of_several_boots_needs_a_guest() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = dir.path().join("m.toml");
    std::fs::write(
        &matrix,
        "duration_s = 1\nboots = 2\nschedulers = [\"eevdf\"]\n[[attack]]\nflood = \"openat\"\nthreads = [1]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    check(
        &[
            "run",
            "--allow-dirty",
            "--matrix",
            matrix.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "2 boots need --vm",
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn report_names_a_missing_file_or_a_bad_block() {
    let dir = tempfile::tempdir().unwrap();
    check(
        &["report", dir.path().join("none.md").to_str().unwrap()],
        "cannot read",
    );
    let page = dir.path().join("page.md");
    std::fs::write(
        &page,
        "<!-- report: loss no/such/run -->\n<!-- /report -->\n",
    )
    .unwrap();
    check(&["report", page.to_str().unwrap()], "no/such/run");
    std::fs::write(&page, "<!-- report: loss results/paper/run -->\nno end\n").unwrap();
    check(
        &["report", page.to_str().unwrap()],
        "has no `<!-- /report -->` line",
    );
}

#[test]
fn an_absurd_number_of_repetitions() {
    check(
        &["attack", "--repetitions", "4000000000"],
        "lower --repetitions or --boots",
    );
}

#[test]
fn an_evader_out_of_range_or_unknown_or_beside_a_cmd() {
    check(&["attack", "--evade", "spin:0"], "e.g. --evade spin:200");
    check(
        &["attack", "--evade", "hide:3"],
        "'hide:3' is not an evader",
    );
    check(&["attack", "--evade", "spin:200", "--cmd", "true"], "--cmd");
    let dir = temp_dir("bad-evade");
    let matrix = dir.join("matrix.toml");
    std::fs::write(
        &matrix,
        "duration_s = 1\nschedulers = [\"eevdf\"]\n[[attack]]\nflood = \"openat\"\nthreads = [1]\nevade = \"spread:0\"\n",
    )
    .unwrap();
    check(
        &[
            "run",
            "--matrix",
            matrix.to_str().unwrap(),
            "--out",
            "unused",
            "--dry-run",
        ],
        "e.g. --evade spin:200",
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn trace_scope_all_with_a_collector_other_than_the_built_in_ones() {
    check(
        &[
            "attack",
            "--trace-scope",
            "all",
            "--collector",
            "builtin,auditd",
        ],
        "--trace-scope all needs a built-in collector (builtin, builtin-compact), and 'auditd'",
    );
    check(
        &["attack", "--trace-scope", "machine"],
        "'machine' is not a trace scope",
    );
}

#[test]
fn eaudit_dir_for_a_matrix_needs_a_guest() {
    check(
        &[
            "run",
            "--matrix",
            &repo("matrices/collectors-real-7.toml"),
            "--out",
            "/tmp/aegis-never-written",
            "--eaudit-dir",
            "/tmp",
        ],
        "--eaudit-dir only applies to guest runs",
    );
    assert!(!std::path::Path::new("/tmp/aegis-never-written").exists());
}

#[test]
fn the_userland_of_a_kernel_without_headers_is_refused() {
    check(
        &[
            "vm",
            "--vm-kernel",
            "sched-ext",
            "--userland",
            "debian",
            "--exec",
            "--",
            "true",
        ],
        "no published linux-headers package",
    );
}
