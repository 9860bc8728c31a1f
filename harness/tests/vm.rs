//! The guest runner, end to end: real Debian kernels (downloaded into the user's cache on the
//! first run), real QEMU under TCG. Booting tests need root like the other end-to-end tests
//! (CI is root with access to the Debian archive); `make setup` installs QEMU and busybox.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// QEMU processes started by the aegis-bench with this pid (named `aegis-bench-guest-<pid>`).
fn guests_of(pid: u32) -> Vec<String> {
    let marker = format!("aegis-bench-guest-{pid}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("qemu-system") && c.contains(&marker))
        .collect()
}

fn assert_no_guest_left(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !guests_of(pid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "QEMU outlived aegis-bench: {:?}",
            guests_of(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts aegis-bench with piped stderr and returns once a stderr line contains `wanted`.
fn start_until(args: &[&str], wanted: &str) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(wanted) {
            break;
        }
        assert!(Instant::now() < deadline, "no '{wanted}' in: {seen:?}");
    }
    std::thread::spawn(move || for _ in lines {});
    (child, seen)
}

#[test]
fn sched_ext_guest_runs_an_attack_and_brings_the_json_back() {
    if !have_root("sched_ext_guest_runs_an_attack_and_brings_the_json_back") {
        return;
    }
    let dir = temp_dir("vm-sched-ext");
    let json = dir.join("nested/trials.json");
    let run = || {
        aegis(&[
            "attack",
            "--flood",
            "openat",
            "--threads",
            "2",
            "--duration",
            "1",
            "--ring-size",
            "64KiB",
            "--scheduler",
            "eevdf,scx_rustland",
            "--json",
            json.to_str().unwrap(),
            "--vm",
        ])
    };
    // The kernel's watchdog stops scx_rustland itself in some TCG trials (a runnable task
    // starved for seconds; see the failures table in docs/results.md): that is scx_rustland's,
    // not the runner's, so one fresh boot is allowed for it, and only for it.
    let out = once_more_if_it_failed_with(
        run,
        "disabled (runnable task stall)",
        "scx_rustland was stopped by the sched_ext watchdog",
    );
    assert_success(&out);
    // The guest's stdout (the table) and stderr (progress) are streamed to ours.
    assert!(stdout(&out).contains("openat"), "{}", stdout(&out));
    assert!(stderr(&out).contains("trial 2/2"), "{}", stderr(&out));
    let trials = read_trials(&json);
    assert_eq!(trials.len(), 2, "both rows from one guest");
    for t in &trials {
        assert!(
            t["kernel"].as_str().unwrap().contains("6.18"),
            "kernel: {}",
            t["kernel"]
        );
        assert!(u64_of(t, "generated") > 0, "{t}");
        assert_adds_up(t);
    }
    assert_eq!(trials[0]["scheduler"], "eevdf");
    assert!(trials[0]["sched_ext_ops"].is_null());
    // scx_rustland was enabled during its trial (and disabled again, or the run would fail).
    assert_eq!(trials[1]["scheduler"], "scx_rustland");
    let ops = trials[1]["sched_ext_ops"].as_str().unwrap_or_default();
    assert!(ops.starts_with("rustland"), "sched_ext_ops: {ops}");
}

#[test]
fn guest_runs_workloads_beside_the_attack() {
    if !have_root("guest_runs_workloads_beside_the_attack") {
        return;
    }
    let dir = temp_dir("vm-workload");
    let json = dir.join("trials.json");
    // stress-ng and hackbench are copied into the guest with their libraries.
    let out = aegis(&[
        "attack",
        "--threads",
        "2",
        "--duration",
        "1",
        "--ring-size",
        "1MiB",
        "--workload",
        "stress-ng-cpu,hackbench",
        "--json",
        json.to_str().unwrap(),
        "--vm",
    ]);
    assert_success(&out);
    let trials = read_trials(&json);
    assert_eq!(trials.len(), 2, "one trial per workload");
    for (t, (name, unit)) in trials
        .iter()
        .zip([("stress-ng-cpu", "bogo ops/s"), ("hackbench", "messages/s")])
    {
        assert!(t["kernel"].as_str().unwrap().contains("6.18"), "{t}");
        assert_adds_up(t);
        assert_eq!(t["workload"], name, "{t}");
        assert_eq!(t["workload_throughput_unit"], unit, "{t}");
        for field in [
            "workload_throughput_per_s",
            "workload_alone_throughput_per_s",
            "workload_kept_fraction",
        ] {
            let value = t[field].as_f64().unwrap_or_else(|| panic!("{field}: {t}"));
            assert!(value > 0.0 && value.is_finite(), "{field}: {t}");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// The back-pressure baseline (issue 25): the attack's cgroup frozen while the collector's
/// ring is full. A 16 KiB ring under 4 threads fills at once, so it must freeze, and the
/// trial's account must still add up with the attack thawed at its end.
#[test]
fn freeze_on_fill_freezes_the_attack_while_the_ring_is_full() {
    if !have_root("freeze_on_fill_freezes_the_attack_while_the_ring_is_full") {
        return;
    }
    let dir = temp_dir("vm-freeze");
    let json = dir.join("trials.json");
    let out = aegis(&[
        "attack",
        "--threads",
        "4",
        "--duration",
        "2",
        "--ring-size",
        "16KiB",
        "--scheduler",
        "eevdf:freeze-on-fill",
        "--json",
        json.to_str().unwrap(),
        "--vm",
    ]);
    assert_success(&out);
    let t = &read_trials(&json)[0];
    assert_adds_up(t);
    assert_eq!(t["applied_policy"]["attack_freeze_fill_pct"], 75, "{t}");
    let stats = &t["scheduler_stats"];
    assert!(stats["nr_freezes"].as_u64().unwrap() >= 1, "{t}");
    let frozen_s = stats["frozen_s"].as_f64().unwrap();
    assert!(frozen_s > 0.0 && frozen_s <= 3.5, "{t}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_scheduler_that_fails_to_attach_fails_the_trial_clearly() {
    if !have_root("a_scheduler_that_fails_to_attach_fails_the_trial_clearly") {
        return;
    }
    // /bin/false exits at once: it never enables sched_ext.
    let out = aegis(&[
        "attack",
        "--duration",
        "1",
        "--scheduler",
        "scx:/bin/false",
        "--vm",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("exited") && err.contains("before sched_ext was enabled"),
        "{err}"
    );
}

#[test]
fn guest_schedulers_are_checked_before_booting() {
    for (args, needle) in [
        (
            vec!["--vm", "--vm-kernel", "cfs", "--scheduler", "scx_rustland"],
            "use --vm-kernel sched-ext",
        ),
        (vec!["--vm", "--scheduler", "cfs"], "use --vm-kernel cfs"),
        (
            vec!["--vm", "--scheduler", "scx:/nonexistent/scx_x"],
            "does not exist",
        ),
    ] {
        let mut full = vec!["attack"];
        full.extend(args);
        let started = Instant::now();
        let out = aegis(&full);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no guest was booted"
        );
    }
}

#[test]
fn sched_ext_guest_has_sched_ext() {
    if !have_root("sched_ext_guest_has_sched_ext") {
        return;
    }
    let out = aegis(&["vm", "--", "doctor"]);
    assert_success(&out);
    let report = stdout(&out);
    let line = report
        .lines()
        .find(|l| l.starts_with("sched_ext "))
        .unwrap_or_else(|| panic!("no sched_ext line in:\n{report}"));
    assert!(
        line.contains(" ok ") && line.contains("state disabled"),
        "{line}"
    );
    assert!(report.contains("6.18"), "{report}");
}

#[test]
fn cfs_guest_runs_a_cfs_trial() {
    if !have_root("cfs_guest_runs_a_cfs_trial") {
        return;
    }
    let dir = temp_dir("vm-cfs");
    let json = dir.join("trials.json");
    let out = aegis(&[
        "attack",
        "--vm",
        "--vm-kernel",
        "cfs",
        "--scheduler",
        "cfs",
        "--threads",
        "2",
        "--duration",
        "1",
        "--ring-size",
        "64KiB",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    let trials = read_trials(&json);
    let t = &trials[0];
    assert_eq!(t["scheduler"], "cfs");
    assert!(
        t["kernel"].as_str().unwrap().starts_with("6.1."),
        "kernel: {}",
        t["kernel"]
    );
    assert_adds_up(t);
}

/// Debian's sysdig with its driver, built for the cfs guest's kernel on the first run, against
/// a short flood: every attack event found in its capture or dropped by its driver, the canary
/// in the capture, and the driver unloaded afterwards.
#[test]
fn sysdig_captures_the_attack_in_the_cfs_guest() {
    if !have_root("sysdig_captures_the_attack_in_the_cfs_guest") {
        return;
    }
    sysdig_records_the_attack(&["--vm-kernel", "cfs"], "cfs", "6.1.", "sysdig ");
}

/// Debian forky's sysdig 0.41 under Aegis in the sched-ext-7 guest, which it picks when no
/// kernel is named: its driver built in the guest's Debian userland, every attack event found
/// in its capture (exit records: 0.41 records no openat entries) or dropped by its driver, the
/// canary in the capture, and the driver unloaded and sched_ext off afterwards.
#[test]
fn sysdig_captures_the_attack_under_aegis_in_the_sched_ext_7_guest() {
    if !have_root("sysdig_captures_the_attack_under_aegis_in_the_sched_ext_7_guest") {
        return;
    }
    sysdig_records_the_attack(&["--scheduler", "aegis"], "aegis", "7.3.", "sysdig 0.41");
}

/// One sysdig trial with `extra` flags: exact accounting, no more attack events missing than
/// its driver dropped, the canary in its capture, and the guest left as found.
fn sysdig_records_the_attack(extra: &[&str], scheduler: &str, kernel: &str, version: &str) {
    let (trial, err) = collector_trial("sysdig", extra, scheduler, kernel);
    let t = &trial;
    assert!(
        t["collector_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(version)),
        "{}",
        t["collector_version"]
    );
    let sysdig = &t["sysdig"];
    assert!(
        sysdig["n_evts"].as_u64().unwrap() > u64_of(t, "received"),
        "{t}"
    );
    assert!(
        sysdig["attack_missed"].as_u64().unwrap() <= sysdig["n_drops"].as_u64().unwrap(),
        "{t}"
    );
    for line in [
        "aegis-guest: modules the command left loaded: none",
        "aegis-guest: sched_ext after the command: ",
    ] {
        assert!(err.contains(line), "expected `{line}` in:\n{err}");
    }
    assert!(
        !err.contains("aegis-guest: sched_ext after the command: enabled"),
        "{err}"
    );
}

/// The built-in collector at the BPF-LSM hooks under Aegis in the default sched_ext guest:
/// accounted exactly against ground truth's count of the same hooks, the canary found by its
/// name in the hooks' records (unless events were dropped), and the guest left as found.
#[test]
fn builtin_lsm_records_the_attack_at_the_lsm_hooks_under_aegis() {
    if !have_root("builtin_lsm_records_the_attack_at_the_lsm_hooks_under_aegis") {
        return;
    }
    let (t, err) = collector_trial("builtin-lsm", &["--scheduler", "aegis"], "aegis", "6.");
    // Measured against the hooks' runs: the flood's openat calls that opened a file, not its
    // close calls.
    assert!(
        u64_of(&t, "generated") < u64_of(&t, "attack_syscalls"),
        "{t}"
    );
    assert!(
        t["traced_syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|nr| nr == "openat"),
        "{t}"
    );
    for line in [
        "aegis-guest: modules the command left loaded: none",
        "aegis-guest: sched_ext after the command: disabled",
    ] {
        assert!(err.contains(line), "expected `{line}` in:\n{err}");
    }
}

/// Runs `run`, and once more when it failed with `failure` in its stderr (a fault of a
/// third-party component the test names in `why`, not of the harness).
fn once_more_if_it_failed_with(
    run: impl Fn() -> std::process::Output,
    failure: &str,
    why: &str,
) -> std::process::Output {
    let out = run();
    if out.status.success() || !stderr(&out).contains(failure) {
        return out;
    }
    eprintln!("{why}; booting once more");
    run()
}

/// A short openat flood with `collector` in a guest (`extra`: more flags): its one trial, which
/// ran under `scheduler` on a kernel whose release starts with `kernel`, added up, received
/// more than a thousand events and, unless it dropped some, recorded the canary; with the
/// command's stderr.
fn collector_trial(
    collector: &str,
    extra: &[&str],
    scheduler: &str,
    kernel: &str,
) -> (serde_json::Value, String) {
    let dir = temp_dir(&format!("vm-{collector}-{scheduler}-{kernel}"));
    let json = dir.join("trials.json");
    let mut args = vec![
        "attack",
        "--vm",
        "--collector",
        collector,
        "--flood",
        "openat",
        "--threads",
        "2",
        "--duration",
        "1",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // eAudit's log sometimes holds a little more or less of the attack than the kernel
    // counted, with none of its counters moving (docs/results.md#real-collectors-eaudit): the
    // trial fails, as it must, and one fresh boot is allowed for that, and only for eAudit.
    let out = if collector == "eaudit" {
        once_more_if_it_failed_with(
            || aegis(&args),
            "accounting does not add up",
            "eAudit's account did not add up (an open eAudit problem)",
        )
    } else {
        aegis(&args)
    };
    assert_success(&out);
    let t = read_trials(&json).swap_remove(0);
    assert_eq!(t["collector"], collector);
    assert_eq!(t["scheduler"], scheduler);
    assert!(t["kernel"].as_str().unwrap().starts_with(kernel), "{t}");
    assert_adds_up(&t);
    assert!(u64_of(&t, "received") > 1000, "{t}");
    // A collector that lost events may have lost the canary's too; one that lost none may not.
    if u64_of(&t, "dropped") == 0 {
        assert_eq!(t["canary_recorded"], true, "{t}");
    }
    std::fs::remove_dir_all(dir).ok();
    (t, stderr(&out))
}

/// Real eAudit in the cfs guest's Debian userland (bookworm's BCC 0.26, 6.1 headers), patched
/// and built by the guest runner: every attack open found in its log by thread id, the canary
/// in its log. `make test` runs eAudit here, where its records are intact: on 7.3 many trials
/// fail their account for eAudit's own reasons (docs/results.md#real-collectors-eaudit).
#[test]
fn eaudit_records_the_attack_in_the_cfs_guest() {
    eaudit_records_the_attack(
        "eaudit_records_the_attack_in_the_cfs_guest",
        &["--vm-kernel", "cfs"],
        "cfs",
        "6.1.",
    );
}

/// Real eAudit under Aegis in the sched-ext-7 guest's Debian userland (forky's BCC 0.35, 7.3
/// headers; patched by 0002), which `--collector eaudit` picks when no kernel is named.
/// Opt-in (`cargo test --test vm -- --ignored eaudit`): on 7.3 eAudit's log sometimes holds
/// more or fewer of the attack's records than the kernel counted, and the trial fails.
#[test]
#[ignore = "eAudit's records on 7.3 fail some trials' accounts (docs/results.md); make test runs the cfs one"]
fn eaudit_records_the_attack_under_aegis_in_the_sched_ext_7_guest() {
    eaudit_records_the_attack(
        "eaudit_records_the_attack_under_aegis_in_the_sched_ext_7_guest",
        &["--scheduler", "aegis"],
        "aegis",
        "7.3.",
    );
}

/// The eAudit checkout the harness finds by itself: `AEGIS_EAUDIT_DIR`, else the project's
/// third-party copy beside the source tree (`../shared/third_party/eaudit`).
fn eaudit_checkout() -> Option<PathBuf> {
    std::env::var_os("AEGIS_EAUDIT_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/third_party/eaudit"))
        })
        .filter(|dir| dir.join("eauditk.c").is_file())
}

/// One eAudit trial with `extra` flags: exact accounting, the canary in its log, the patches
/// named, and a loss only where eAudit or the kernel (programs it skipped) says it lost.
fn eaudit_records_the_attack(test: &str, extra: &[&str], scheduler: &str, kernel: &str) {
    if !have_root(test) {
        return;
    }
    if eaudit_checkout().is_none() {
        // The one skip CI may allow: eAudit is not on any registry CI reaches, so `.ci/run`
        // allows it, saying so, only where the project's third-party copy is absent.
        skip_unless_required(
            test,
            "no eAudit checkout (AEGIS_EAUDIT_DIR, ../shared/third_party/eaudit)",
            "eaudit",
        );
        return;
    }
    let (trial, err) = collector_trial("eaudit", extra, scheduler, kernel);
    let t = &trial;
    let version = t["collector_version"].as_str().unwrap();
    assert!(
        version.contains("0001-") && version.contains("0002-"),
        "{t}"
    );
    let eaudit = &t["eaudit"];
    if u64_of(t, "dropped") > 0 {
        assert!(
            eaudit["lost_bytes"].as_u64().unwrap() > 0
                || eaudit["failed_ring_outputs"].as_u64().unwrap() > 0
                || eaudit["bpf_recursion_misses"].as_u64().unwrap() >= u64_of(t, "dropped"),
            "{t}"
        );
    }
    assert!(
        err.contains("aegis-guest: sched_ext after the command: disabled")
            || err.contains("aegis-guest: sched_ext after the command: absent"),
        "{err}"
    );
}

/// `eevdf:attack-quota` on a unified hierarchy: the attack's group capped through `cpu.max`,
/// the cpu controller enabled for it and disabled again afterwards.
#[test]
fn attack_quota_caps_the_attack_in_a_guest() {
    if !have_root("attack_quota_caps_the_attack_in_a_guest") {
        return;
    }
    let dir = temp_dir("vm-quota");
    let json = dir.join("trials.json");
    let out = aegis(&[
        "attack",
        "--vm",
        "--scheduler",
        "eevdf,eevdf:attack-quota",
        "--threads",
        "4",
        "--duration",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    let trials = read_trials(&json);
    let capped = trials
        .iter()
        .find(|t| t["scheduler"] == "eevdf:attack-quota")
        .expect("an attack-quota trial");
    assert_adds_up(capped);
    // Half of 2 vCPUs: the attack's 4 threads get at most about one CPU-second a second.
    let cpu_per_s =
        capped["attack_cpu_s"].as_f64().unwrap() / capped["duration_s"].as_f64().unwrap();
    assert!(
        cpu_per_s < 1.3,
        "attack used {cpu_per_s:.2} CPUs under a 1-CPU cap: {capped}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("aegis-guest: cgroup controllers as before the command"),
        "the cpu controller stayed enabled:\n{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn debian_userland_runs_a_bcc_program_on_the_cfs_guest() {
    if !have_root("debian_userland_runs_a_bcc_program_on_the_cfs_guest") {
        return;
    }
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/guest/bcc_openat.py");
    let file = format!("{program}:/root/bcc_openat.py");
    let out = aegis(&[
        "vm",
        "--vm-kernel",
        "cfs",
        "--userland",
        "debian",
        "--timeout",
        "900",
        "--file",
        &file,
        "--exec",
        "--",
        "python3",
        "/root/bcc_openat.py",
    ]);
    assert_success(&out);
    let report = stdout(&out);
    assert!(report.contains("bcc compiled and attached in"), "{report}");
    let counted: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("openat counted for this process: "))
        .unwrap_or_else(|| panic!("no count in:\n{report}"))
        .trim()
        .parse()
        .unwrap();
    // Python's own imports may open files too; the loop alone opens 100.
    assert!(counted >= 100, "{report}");
}

#[test]
fn debian_userland_needs_a_kernel_with_headers() {
    let out = aegis(&[
        "vm",
        "--vm-kernel",
        "sched-ext",
        "--userland",
        "debian",
        "--offline",
        "--exec",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no published linux-headers"), "{err}");
}

#[test]
fn offline_with_an_empty_cache_fails_before_booting() {
    let cache = temp_dir("vm-empty-cache");
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["vm", "--offline", "--", "doctor"])
        .env("XDG_CACHE_HOME", &cache)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(
        lines[0].starts_with("error: no cached sched-ext guest kernel"),
        "{err}"
    );
    assert!(lines[0].contains("without --offline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing was built or booted.
    assert!(!cache.join("aegis-bench/initramfs").exists());
}

#[test]
fn bad_attack_flags_fail_on_the_host_before_booting() {
    for (args, needle) in [
        (
            &["attack", "--vm", "--ring-size", "100KiB"][..],
            "use 64KiB or 128KiB",
        ),
        (
            &["attack", "--vm", "--cpus", "0"][..],
            "--cpus 0 is out of range",
        ),
        (&["attack", "--vm", "--mem", "1MiB"][..], "too small"),
        (
            &["attack", "--cpus", "4"][..],
            "--cpus only applies to guest runs: add --vm",
        ),
        (&["vm"][..], "e.g. `aegis-bench vm -- doctor`"),
        (
            &["attack", "--vm", "--workload", "compile"][..],
            "workload compile cannot run in a guest",
        ),
        (
            &[
                "attack",
                "--vm",
                "--vm-kernel",
                "sched-ext-7",
                "--collector",
                "sysdig,auditd",
            ][..],
            "run auditd in a --vm run of its own",
        ),
    ] {
        let out = aegis(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_hanging_guest_is_killed_at_the_timeout() {
    if !have_root("a_hanging_guest_is_killed_at_the_timeout") {
        return;
    }
    let started = Instant::now();
    let child = Command::new(BIN)
        .args(["vm", "--timeout", "5", "--", "attack", "--duration", "60"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: the guest did not finish within its 5 s timeout"),
        "{err}"
    );
    assert!(last.contains("QEMU was killed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");
    assert_no_guest_left(pid);
}

#[test]
fn sigint_stops_the_guest() {
    if !have_root("sigint_stops_the_guest") {
        return;
    }
    let (mut child, _) = start_until(
        &["vm", "--", "attack", "--duration", "60", "--threads", "1"],
        "trial 1/1",
    );
    let pid = child.id();
    assert!(!guests_of(pid).is_empty(), "no QEMU found for {pid}");
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_no_guest_left(pid);
}

#[test]
fn sigkill_of_the_harness_takes_qemu_along() {
    if !have_root("sigkill_of_the_harness_takes_qemu_along") {
        return;
    }
    let (mut child, _) = start_until(&["vm", "--", "attack", "--duration", "60"], "vm: booting");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while guests_of(pid).is_empty() {
        assert!(Instant::now() < deadline, "no QEMU found for {pid}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_guest_left(pid);
    // Its host directory (the guest's image) stays behind; the next run, here a host trial,
    // removes it.
    let left = || work_dirs_of(pid, "vm-");
    assert_eq!(left().len(), 1, "{:?}", left());
    let before = snapshot();
    let out = aegis(&["attack", "--threads", "1", "--duration", "0.2"]);
    assert_success(&out);
    assert!(left().is_empty(), "{:?}", left());
    assert_restored(&before);
}
