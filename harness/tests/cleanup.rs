//! The machine is left as found: after success, error, panic, SIGINT, SIGTERM, and even
//! SIGKILL of the harness (its helpers die with it; the next run removes the stale cgroup with
//! the workload tools or `--cmd` program still in it, the work directory and the audit state).
//! A matrix killed mid-trial is in `matrix.rs`, a guest's harness killed under scx_aegis in
//! `aegis.rs`, the host's harness killed beside a guest in `vm.rs`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn interrupt_and_check(extra: &[&str], signal: i32, expected_status: i32) {
    let before = snapshot();
    let mut child = start_long_attack(extra);
    unsafe { libc::kill(child.id() as i32, signal) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?} to stop",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(expected_status), "{status}");
    assert_restored(&before);
}

#[test]
fn sigint_mid_flood_restores_everything() {
    if have_root("sigint_mid_flood_restores_everything") {
        interrupt_and_check(&[], libc::SIGINT, 130);
    }
}

#[test]
fn sigint_mid_auditd_flood_restores_everything() {
    if have_root("sigint_mid_auditd_flood_restores_everything")
        && have_auditd("sigint_mid_auditd_flood_restores_everything")
    {
        interrupt_and_check(&["--collector", "auditd"], libc::SIGINT, 130);
    }
}

#[test]
fn sigterm_mid_auditd_flood_restores_everything() {
    if have_root("sigterm_mid_auditd_flood_restores_everything")
        && have_auditd("sigterm_mid_auditd_flood_restores_everything")
    {
        interrupt_and_check(&["--collector", "auditd"], libc::SIGTERM, 143);
    }
}

#[test]
fn sigterm_mid_flood_restores_everything() {
    if have_root("sigterm_mid_flood_restores_everything") {
        interrupt_and_check(&[], libc::SIGTERM, 143);
    }
}

#[test]
fn interrupted_run_keeps_the_trials_already_measured() {
    if !have_root("interrupted_run_keeps_the_trials_already_measured") {
        return;
    }
    let dir = temp_dir("keep-trials");
    let json = dir.join("trials.json");
    let before = snapshot();
    let status = interrupt_when_stderr_says(
        &[
            "attack",
            "--threads",
            "1",
            "--duration",
            "1",
            "--ring-size",
            "1MiB",
            "--repetitions",
            "3",
            "--json",
            json.to_str().unwrap(),
        ],
        "trial 2/3",
    );
    assert_eq!(status, Some(130));
    assert_restored(&before);
    assert_eq!(
        read_trials(&json).len(),
        1,
        "the first trial survives the interrupt"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn panic_and_error_mid_trial_restore_everything() {
    if !have_root("panic_and_error_mid_trial_restore_everything") {
        return;
    }
    let mut collectors = vec!["builtin"];
    if have_auditd("panic_and_error_mid_trial_restore_everything") {
        collectors.push("auditd");
    }
    for (fault, status, collector) in [("panic", 101), ("error", 1)]
        .into_iter()
        .flat_map(|(f, s)| collectors.iter().map(move |c| (f, s, *c)))
    {
        let before = snapshot();
        let out = Command::new(BIN)
            .args(["attack", "--duration", "1", "--collector", collector])
            .env("AEGIS_BENCH_INJECT_FAULT", fault)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(status),
            "{fault} with {collector}: {}",
            stderr(&out)
        );
        assert_restored(&before);
    }
}

#[test]
fn sigkill_of_the_harness_takes_its_helpers_along() {
    if !have_root("sigkill_of_the_harness_takes_its_helpers_along") {
        return;
    }
    let before = snapshot();
    let mut child = start_long_attack(&[]);
    let killed = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    // Its private work directory (logs of every syscall) stays behind a SIGKILL.
    let work_dirs = || work_dirs_of(killed, "");
    let left = work_dirs();
    assert_eq!(left.len(), 1, "{left:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&left[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", left[0].display());
    // Helpers die with the harness (PR_SET_PDEATHSIG) and their BPF programs with them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = snapshot();
        if now.helper_processes.is_empty() && now.bpf_programs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left running: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing could remove the cgroup (or unmount tracefs) then; the next run does.
    let out = next_run_removes_stale_groups(1);
    assert!(
        stderr(&out).contains("the work directory of an aegis-bench that was killed"),
        "{}",
        stderr(&out)
    );
    assert!(work_dirs().is_empty(), "{:?}", work_dirs());
    let after = snapshot();
    assert!(after.attack_cgroups.is_empty(), "{after:?}");
    unmount_tracefs_a_kill_left(&before);
    assert_restored(&before);
}

#[test]
fn sigkill_mid_auditd_trial_is_repaired_by_the_next_run() {
    let test = "sigkill_mid_auditd_trial_is_repaired_by_the_next_run";
    if !have_root(test) || !have_auditd(test) {
        return;
    }
    let before = snapshot();
    let mut child = start_long_attack(&["--collector", "auditd"]);
    child.kill().unwrap();
    child.wait().unwrap();
    // auditd dies with the harness; the audit rules and settings cannot be put back then.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !snapshot().helper_processes.is_empty() {
        assert!(Instant::now() < deadline, "left running: {:?}", snapshot());
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = audit_snapshot().unwrap();
    assert!(left.saved_state_file, "{left:?}");
    assert_ne!(Some(&left), before.audit.as_ref());
    // The next run, whatever its collector, restores them (and removes the stale cgroup).
    let out = aegis(&["attack", "--threads", "1", "--duration", "0.2"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("restored the audit rules and settings"),
        "{}",
        stderr(&out)
    );
    unmount_tracefs_a_kill_left(&before);
    assert_restored(&before);
}

#[test]
fn concurrent_runs_share_tracefs_and_put_it_back() {
    if !have_root("concurrent_runs_share_tracefs_and_put_it_back") {
        return;
    }
    let before = snapshot();
    let run = |duration: &'static str| {
        std::thread::spawn(move || {
            aegis(&[
                "attack",
                "--threads",
                "1",
                "--duration",
                duration,
                "--ring-size",
                "1MiB",
            ])
        })
    };
    // The short run finishes while the long one still uses tracefs: it must not unmount it.
    let long = run("2");
    std::thread::sleep(Duration::from_millis(300));
    let short = run("0.3");
    assert_success(&short.join().unwrap());
    assert_success(&long.join().unwrap());
    assert_restored(&before);
}

/// Whether a helper of the harness with pid `harness` runs: its command line names the
/// harness's cgroups (`aegis-bench-<pid>-...`), so other runs on the machine do not count.
fn helper_of(harness: u32, kind: &str) -> bool {
    let tag = format!("aegis-bench-{harness}-");
    snapshot()
        .helper_processes
        .iter()
        .any(|p| p.contains(kind) && p.contains(&tag))
}

#[test]
fn sigint_beside_a_workload_restores_everything() {
    if !have_root("sigint_beside_a_workload_restores_everything") {
        return;
    }
    // Once during the workload's no-attack baseline, once while it runs beside the flood.
    for during_flood in [false, true] {
        let before = snapshot();
        let mut child = Command::new(BIN)
            .args([
                "attack",
                "--threads",
                "1",
                "--duration",
                "2",
                "--ring-size",
                "1MiB",
                "--workload",
                "stress-ng-cpu",
            ])
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let workload = helper_of(child.id(), "workload-worker");
            let attack = helper_of(child.id(), "attack-worker");
            if workload && attack == during_flood {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "workload did not start (during flood: {during_flood})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "during flood: {during_flood}");
        assert_restored(&before);
    }
}

#[test]
fn panic_and_error_beside_a_workload_restore_everything() {
    if !have_root("panic_and_error_beside_a_workload_restore_everything") {
        return;
    }
    for (fault, status) in [("panic@workload", 101), ("error@workload", 1)] {
        let before = snapshot();
        let out = Command::new(BIN)
            .args([
                "attack",
                "--threads",
                "1",
                "--duration",
                "1",
                "--ring-size",
                "1MiB",
                "--workload",
                "stress-ng-cpu",
            ])
            .env("AEGIS_BENCH_INJECT_FAULT", fault)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(status), "{fault}: {err}");
        assert!(err.contains("fault injected at workload"), "{fault}: {err}");
        assert_restored(&before);
    }
}

#[test]
fn sigkill_beside_a_workload_is_repaired_by_the_next_run() {
    if !have_root("sigkill_beside_a_workload_is_repaired_by_the_next_run") {
        return;
    }
    let before = snapshot();
    let mut child = Command::new(BIN)
        .args([
            "attack",
            "--threads",
            "1",
            "--duration",
            "2",
            "--ring-size",
            "1MiB",
            "--workload",
            "stress-ng-cpu",
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(helper_of(child.id(), "workload-worker") && helper_of(child.id(), "attack-worker")) {
        assert!(Instant::now() < deadline, "the workload did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let group = snapshot()
        .attack_cgroups
        .into_iter()
        .find(|g| {
            g.starts_with(&format!("aegis-bench-{}-", child.id())) && g.ends_with("-workload")
        })
        .expect("the workload's cgroup");
    child.kill().unwrap();
    child.wait().unwrap();
    // The workload's tools do not die with the harness; they are left in their group.
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/unified/{group}/cgroup.procs"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{group}/cgroup.procs")))
        .unwrap();
    let left: Vec<String> = procs.lines().map(String::from).collect();
    // The next run kills them with the stale group.
    next_run_removes_stale_groups(2);
    // No stress-ng process of the group survives.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Some(pid) = left.iter().find(|pid| runs_as(pid, "stress-ng")) {
        assert!(Instant::now() < deadline, "pid {pid} of {group} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    unmount_tracefs_a_kill_left(&before);
    assert_restored(&before);
}

#[test]
fn sigkill_beside_a_cmd_producer_is_repaired_by_the_next_run() {
    if !have_root("sigkill_beside_a_cmd_producer_is_repaired_by_the_next_run") {
        return;
    }
    let before = snapshot();
    // A `sleep` no other program on the machine runs: its argument is this test's own.
    let marker = format!(
        "{}.{}",
        3000 + std::process::id() % 1000,
        std::process::id()
    );
    let mut child = Command::new(BIN)
        .args([
            "attack",
            "--cmd",
            &format!("sleep {marker}"),
            "--duration",
            "60",
            "--ring-size",
            "1MiB",
        ])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sleeps = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| c == format!("sleep\0{marker}\0").as_bytes())
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeps().is_empty() {
        assert!(Instant::now() < deadline, "the --cmd program did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The program is not the harness's child (the attack worker started it in the attack's
    // cgroup), so it outlives the harness: the next run finds it in the stale group and ends it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !sleeps().is_empty(),
        "the --cmd program died with the harness"
    );
    next_run_removes_stale_groups(1);
    // Gone or a zombie that init has yet to reap.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeps().iter().any(|pid| runs_as(pid, "sleep")) {
        assert!(Instant::now() < deadline, "the --cmd program still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    unmount_tracefs_a_kill_left(&before);
    assert_restored(&before);
}

/// The run after a kill: a short attack that must succeed and say it removed `groups` stale
/// attack cgroups. Returns its output.
fn next_run_removes_stale_groups(groups: usize) -> std::process::Output {
    let out = aegis(&[
        "attack",
        "--threads",
        "1",
        "--duration",
        "0.2",
        "--ring-size",
        "1MiB",
    ]);
    assert_success(&out);
    assert!(
        stderr(&out).contains(&format!("removed {groups} attack cgroup")),
        "{}",
        stderr(&out)
    );
    out
}

/// A killed run could not unmount the tracefs it mounted, and the next run found it mounted.
fn unmount_tracefs_a_kill_left(before: &Snapshot) {
    if !before.tracefs_mounted && snapshot().tracefs_mounted {
        nix::mount::umount2("/sys/kernel/tracing", nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
}

/// Whether process `pid` runs a program whose name contains `name` and is not a zombie (init
/// reaps those in its own time); a pid reused by another program does not count.
fn runs_as(pid: &str, name: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let (comm, rest) = stat.rsplit_once(')').unwrap_or(("", ""));
    comm.contains(name) && !rest.trim_start().starts_with('Z')
}
