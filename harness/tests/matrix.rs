//! `run --matrix`, `merge` and `gate` end to end, with real trials: a matrix split in two shards
//! on this host, one interrupted and resumed, then merged; a matrix SIGKILLed mid-trial and
//! resumed; and CI's own guest matrix gated
//! against the committed baseline, passing as it is and failing with each of three regressions
//! planted in the scheduler, each on its own metric (loss, waits, delivered events/s over the
//! control's). Needs root, like the other end-to-end tests; CI runs them.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn trial_ids(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("trials.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut ids: Vec<String> = text
        .lines()
        .map(|line| {
            let trial: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_adds_up(&trial);
            trial["trial_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// A small matrix of 1 s openat floods on this kernel's fair class, two repetitions, with the
/// attack's `threads` line given; written to `dir/matrix.toml`.
fn host_matrix(dir: &Path, threads: &str) -> PathBuf {
    let fair = if kernel_is_eevdf() { "eevdf" } else { "cfs" };
    let path = dir.join("matrix.toml");
    std::fs::write(
        &path,
        format!(
            "duration_s = 1\nrepetitions = 2\nschedulers = [\"{fair}\"]\n\n[[attack]]\n\
             flood = \"openat\"\n{threads}\nring_size = [\"1MiB\"]\n"
        ),
    )
    .unwrap();
    path
}

/// The ids of the trials a dry run of `matrix` plans, sorted.
fn planned_trial_ids(matrix: &str) -> Vec<String> {
    let dry = aegis(&["run", "--matrix", matrix, "--out", "unused", "--dry-run"]);
    assert_success(&dry);
    let mut planned: Vec<String> = stdout(&dry)
        .lines()
        .map(|line| line.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    planned.sort();
    planned
}

/// `run --matrix MATRIX --shard SHARD EXTRA... --out OUT`.
fn shard_args<'a>(
    matrix: &'a str,
    shard: &'a str,
    extra: &[&'a str],
    out: &'a Path,
) -> Vec<&'a str> {
    // Tests run from whatever tree they are in; their results are not published.
    let mut args = vec!["run", "--matrix", matrix, "--allow-dirty", "--shard", shard];
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    args
}

#[test]
fn an_interrupted_shard_resumes_and_the_shards_merge_into_the_whole_matrix() {
    if !have_root("an_interrupted_shard_resumes_and_the_shards_merge_into_the_whole_matrix") {
        return;
    }
    let dir = temp_dir("matrix-shards");
    let matrix = host_matrix(&dir, "threads = [1, 2]");
    let matrix = matrix.to_str().unwrap();
    let planned = planned_trial_ids(matrix);
    assert_eq!(planned.len(), 4, "{planned:?}");

    // Shard 1 of 2, interrupted once its first trial is written.
    let part1 = dir.join("part1");
    let before = snapshot();
    // The progress line before the second trial: the first is written.
    let status = interrupt_when_stderr_says(&shard_args(matrix, "1/2", &[], &part1), "] 1/2,");
    assert_eq!(status, Some(130));
    assert_restored(&before);
    assert_eq!(trial_ids(&part1).len(), 1, "the finished trial is kept");

    // Without --resume the directory is not overwritten.
    let refused = aegis(&shard_args(matrix, "1/2", &[], &part1));
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--resume"),
        "{}",
        stderr(&refused)
    );
    // The other shard's directory is not this shard's to resume.
    let wrong = aegis(&shard_args(matrix, "2/2", &["--resume"], &part1));
    assert_eq!(wrong.status.code(), Some(2), "{}", stderr(&wrong));

    let resumed = aegis(&shard_args(matrix, "1/2", &["--resume"], &part1));
    assert_success(&resumed);
    assert!(stderr(&resumed).contains("1 trial(s) done, 1 to run"));
    assert_eq!(trial_ids(&part1).len(), 2);

    let part2 = dir.join("part2");
    assert_success(&aegis(&shard_args(matrix, "2/2", &[], &part2)));
    assert_restored(&before);

    let merged = dir.join("merged");
    assert_success(&aegis(&[
        "merge",
        "--out",
        merged.to_str().unwrap(),
        part1.to_str().unwrap(),
        part2.to_str().unwrap(),
    ]));
    assert_eq!(trial_ids(&merged), planned, "every planned trial, once");
    let csv = std::fs::read_to_string(merged.join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and four rows");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["trials_done"], 4);
    assert_eq!(info["trials_planned"], 4);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_matrix_killed_mid_trial_resumes_without_repeating_or_losing_a_trial() {
    if !have_root("a_matrix_killed_mid_trial_resumes_without_repeating_or_losing_a_trial") {
        return;
    }
    let dir = temp_dir("matrix-sigkill");
    let matrix = host_matrix(&dir, "threads = [1, 2]");
    let matrix = matrix.to_str().unwrap();
    let planned = planned_trial_ids(matrix);
    assert_eq!(planned.len(), 4, "{planned:?}");
    let out = dir.join("run");
    let before = snapshot();
    let run = |extra: &[&'static str]| {
        let mut args = vec!["run", "--matrix", matrix, "--allow-dirty", "--out"];
        args.push(out.to_str().unwrap());
        args.extend(extra);
        args
    };
    // SIGKILL once the second trial has its attack cgroup: nothing can clean up.
    let mut child = std::process::Command::new(BIN)
        .args(run(&[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines.by_ref().any(|line| line.unwrap().contains("] 1/4,")),
        "the first trial did not finish"
    );
    std::thread::spawn(move || for _ in lines {});
    let tag = format!("aegis-bench-{}-", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !snapshot()
        .attack_cgroups
        .iter()
        .any(|g| g.starts_with(&tag))
    {
        assert!(Instant::now() < deadline, "the second trial did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().code(), None, "killed by the signal");
    assert_eq!(trial_ids(&out).len(), 1, "the finished trial is kept");

    let resumed = aegis(&run(&["--resume"]));
    assert_success(&resumed);
    let err = stderr(&resumed);
    assert!(err.contains("1 trial(s) done, 3 to run"), "{err}");
    assert!(err.contains("removed 1 attack cgroup"), "{err}");
    assert!(
        err.contains("the work directory of an aegis-bench that was killed"),
        "{err}"
    );
    assert_eq!(trial_ids(&out), planned, "every planned trial, once");
    let names: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = ["matrix.toml", "run.json", "trials.csv", "trials.jsonl"]
        .map(String::from)
        .into();
    assert_eq!(names, expected, "nothing half-written beside the results");
    if !before.tracefs_mounted && snapshot().tracefs_mounted {
        nix::mount::umount2("/sys/kernel/tracing", nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn keep_going_sets_failed_trials_aside_and_resume_retries_them() {
    if !have_root("keep_going_sets_failed_trials_aside_and_resume_retries_them") {
        return;
    }
    let dir = temp_dir("matrix-keep-going");
    let matrix = host_matrix(&dir, "threads = [1]");
    let out = dir.join("out");
    let run = |fault: Option<&str>, extra: &[&str]| {
        let mut command = std::process::Command::new(BIN);
        command
            .args(["run", "--allow-dirty", "--matrix", matrix.to_str().unwrap()])
            .arg("--out")
            .arg(&out)
            .args(extra)
            .env("RUST_BACKTRACE", "0");
        match fault {
            Some(fault) => command.env("AEGIS_BENCH_INJECT_FAULT", fault),
            None => command.env_remove("AEGIS_BENCH_INJECT_FAULT"),
        };
        command.output().unwrap()
    };
    let before = snapshot();
    // Every trial fails once armed; both are set aside and the run says so.
    let failed = run(Some("error"), &["--keep-going"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("2 trial(s) failed"),
        "{}",
        stderr(&failed)
    );
    assert_restored(&before);
    let failures = std::fs::read_to_string(out.join("failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 2, "{failures}");
    assert!(failures.contains("fault injected"), "{failures}");
    assert!(trial_ids(&out).is_empty());

    // Resumed without the fault, both run and the stale failures go.
    let resumed = run(None, &["--keep-going", "--resume"]);
    assert_success(&resumed);
    assert_eq!(trial_ids(&out).len(), 2);
    assert!(!out.join("failures.jsonl").exists());
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

/// A run of several boots goes boot by boot (`--boot B`, as the guests run it): a later boot
/// keeps the failures of the boots before it, and retrying a boot decides only its own again.
#[test]
fn failures_of_earlier_boots_stay_listed_until_their_boot_is_retried() {
    if !have_root("failures_of_earlier_boots_stay_listed_until_their_boot_is_retried") {
        return;
    }
    let dir = temp_dir("matrix-boot-failures");
    let fair = if kernel_is_eevdf() { "eevdf" } else { "cfs" };
    let matrix = dir.join("matrix.toml");
    std::fs::write(
        &matrix,
        format!(
            "duration_s = 0.5\nboots = 2\nschedulers = [\"{fair}\"]\n\n[[attack]]\n\
             flood = \"openat\"\nthreads = [1]\nring_size = [\"1MiB\"]\n"
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let run = |fault: Option<&str>, boot: &str| {
        let mut command = std::process::Command::new(BIN);
        command
            .args(["run", "--allow-dirty", "--keep-going", "--matrix"])
            .arg(&matrix)
            .arg("--out")
            .arg(&out)
            .args(["--boot", boot])
            .env("RUST_BACKTRACE", "0");
        if out.join("trials.jsonl").exists() || out.join("run.json").exists() {
            command.arg("--resume");
        }
        match fault {
            Some(fault) => command.env("AEGIS_BENCH_INJECT_FAULT", fault),
            None => command.env_remove("AEGIS_BENCH_INJECT_FAULT"),
        };
        command.output().unwrap()
    };
    let failed_ids = || -> Vec<String> {
        let text = std::fs::read_to_string(out.join("failures.jsonl")).unwrap_or_default();
        let mut ids: Vec<String> = text
            .lines()
            .map(|l| {
                let f: serde_json::Value = serde_json::from_str(l).unwrap();
                f["trial_id"].as_str().unwrap().to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    let boot0 = "openat/eevdf/builtin/ring1MiB/x1/none/boot0/rep0".replace("eevdf", fair);
    let boot1 = boot0.replace("boot0", "boot1");
    assert_eq!(run(Some("error"), "0").status.code(), Some(1));
    assert_eq!(failed_ids(), std::slice::from_ref(&boot0));
    let second = run(Some("error"), "1");
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("1 trial(s) failed in this run, 2 in all"),
        "{}",
        stderr(&second)
    );
    assert_eq!(failed_ids(), [boot0.clone(), boot1.clone()]);
    // Boot 0 again, without the fault: its trial runs, boot 1's failure stays.
    let retried = run(None, "0");
    assert_eq!(retried.status.code(), Some(1), "{}", stderr(&retried));
    assert_eq!(failed_ids(), [boot1]);
    assert_eq!(trial_ids(&out), [boot0]);
    std::fs::remove_dir_all(dir).ok();
}

/// Runs a repository matrix in a guest into `out`.
fn run_in_guest(matrix: &str, out: &Path) {
    let out_text = out.to_str().unwrap();
    let matrix = repo_file(matrix);
    assert_success(&aegis(&[
        "run",
        "--matrix",
        matrix.to_str().unwrap(),
        "--out",
        out_text,
        "--vm",
        "--allow-dirty",
    ]));
}

fn gate(current: &Path, report: &Path) -> std::process::Output {
    aegis(&[
        "gate",
        "--baseline",
        repo_file("results/ci-baseline").to_str().unwrap(),
        "--current",
        current.to_str().unwrap(),
        "--thresholds",
        repo_file("matrices/ci-gate.toml").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ])
}

/// `gate` of `current` against the CI baseline; returns its exit status and report.
fn gate_report(current: &Path) -> (Option<i32>, String) {
    let report = current.with_extension("md");
    let output = gate(current, &report);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\n{}\n{}",
            report.display(),
            stdout(&output),
            stderr(&output)
        )
    });
    // In the test log, for whoever reads CI's output.
    eprintln!("{text}");
    (output.status.code(), text)
}

#[test]
fn ci_matrix_passes_the_gate_unchanged() {
    if !have_root("ci_matrix_passes_the_gate_unchanged") {
        return;
    }
    let dir = temp_dir("matrix-gate");
    let current = dir.join("current");
    run_in_guest("matrices/ci.toml", &current);
    let (status, text) = gate_report(&current);
    assert_eq!(
        status,
        Some(0),
        "the CI matrix should pass against its baseline:\n{text}"
    );
    assert!(text.starts_with("# aegis-bench gate: PASS"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

/// Runs a planted regression's matrix in a guest and checks that the gate fails it with a
/// regression of `metric` (other rows may fail too: the cells it leaves out are missing).
fn planted_regression_fails_on(test: &str, matrix: &str, metric: &str) {
    if !have_root(test) {
        return;
    }
    let dir = temp_dir(test);
    let regressed = dir.join("regressed");
    run_in_guest(matrix, &regressed);
    let (status, text) = gate_report(&regressed);
    assert_eq!(status, Some(1), "{matrix} should fail the gate:\n{text}");
    assert!(
        text.lines().any(|line| line.starts_with("| openat/aegis/")
            && line.contains(&format!(" | {metric} | "))
            && line.ends_with("| **REGRESSION** |")),
        "{matrix}: the report names a regression of {metric}:\n{text}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Aegis without its hold rule loses events: past the 0.01 % bar.
#[test]
fn planted_no_hold_fails_the_gate_on_loss() {
    planted_regression_fails_on(
        "planted_no_hold_fails_the_gate_on_loss",
        "matrices/ci-planted-no-hold.toml",
        "loss_pct",
    );
}

/// Aegis without its waiting bound starves tasks again and again beside a CPU workload: many
/// waits of twice its longest claimed bound, where a vCPU stall makes one or two.
#[test]
fn planted_no_wait_bound_fails_the_gate_on_waits() {
    planted_regression_fails_on(
        "planted_no_wait_bound_fails_the_gate_on_waits",
        "matrices/ci-planted-no-wait-bound.toml",
        "waits_past_2x_bound",
    );
}

/// Aegis fixed to an over-throttling action delivers fewer events/s than beside the control.
#[test]
fn planted_over_throttle_fails_the_gate_on_the_delivered_ratio() {
    planted_regression_fails_on(
        "planted_over_throttle_fails_the_gate_on_the_delivered_ratio",
        "matrices/ci-planted-over-throttle.toml",
        "delivered_vs_fifo",
    );
}
