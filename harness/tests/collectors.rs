//! The external collectors: auditd end to end with exact accounting, the audit state left as
//! found (also when interrupted), several collectors in one run, and sysdig/eaudit refused
//! with a one-line reason. Needs root (CI is root) and auditd (`make setup`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn auditd_accounts_exactly_and_finds_the_canary_in_its_log() {
    let test = "auditd_accounts_exactly_and_finds_the_canary_in_its_log";
    if !have_root(test) || !have_auditd(test) {
        return;
    }
    let dir = temp_dir("auditd-exact");
    let json = dir.join("trials.json");
    let logs = dir.join("logs");
    let before = snapshot();
    // 5000 openat + close at a small rate: the default backlog (8192, 60 s wait) loses none.
    let out = aegis(&[
        "attack",
        "--collector",
        "auditd",
        "--flood",
        "openat",
        "--threads",
        "1",
        "--count",
        "5000",
        "--rate",
        "10000",
        "--duration",
        "30",
        "--json",
        json.to_str().unwrap(),
        "--keep-logs",
        logs.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let t = &read_trials(&json)[0];
    assert_eq!(t["collector"], "auditd");
    assert!(
        t["collector_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("auditd ")),
        "{t}"
    );
    assert_eq!(
        t["traced_syscalls"],
        serde_json::json!(["close", "openat", "unlinkat"])
    );
    // The flood's 5000 calls plus the canary's, each counted by the kernel and recorded.
    assert_eq!(t["truth_by_syscall"]["openat"], 5001, "{t}");
    assert_eq!(t["truth_by_syscall"]["close"], 5001, "{t}");
    assert_eq!(u64_of(t, "generated"), 5001 + 5001 + 1);
    assert_eq!(u64_of(t, "dropped"), 0, "{t}");
    assert_adds_up(t);
    assert_eq!(t["canary_recorded"], true, "{t}");
    let audit = &t["audit"];
    assert_eq!(audit["settings"]["backlog_limit"], 8192);
    assert_eq!(audit["settings"]["backlog_wait_time_ms"], 60000);
    assert_eq!(audit["lost_records"], 0);
    assert_eq!(t["ring_size_bytes"], 0);
    // The kept log is auditd's own, holding the canary's PATH records.
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&log).unwrap();
    let canary = t["canary_path"].as_str().unwrap();
    assert!(
        text.contains(&format!("name=\"{canary}\"")),
        "no canary in {}",
        log.display()
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("type=SYSCALL"))
            .count() as u64,
        u64_of(t, "received")
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn auditd_without_a_wait_loses_records_and_still_adds_up() {
    let test = "auditd_without_a_wait_loses_records_and_still_adds_up";
    if !have_root(test) || !have_auditd(test) {
        return;
    }
    let dir = temp_dir("auditd-loss");
    let json = dir.join("trials.json");
    let before = snapshot();
    let out = aegis(&[
        "attack",
        "--collector",
        "auditd",
        "--flood",
        "openat",
        "--threads",
        "2",
        "--duration",
        "1",
        "--audit-backlog-limit",
        "64",
        "--audit-backlog-wait-time",
        "0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let t = &read_trials(&json)[0];
    assert!(
        u64_of(t, "dropped") > 0,
        "a 64-record backlog without waiting loses: {t}"
    );
    assert_adds_up(t);
    let audit = &t["audit"];
    // Every dropped event is one lost SYSCALL record; the rest of `lost` are PATH records.
    assert_eq!(
        audit["lost_records"].as_u64().unwrap(),
        u64_of(t, "dropped") + audit["path_records_missing"].as_u64().unwrap(),
        "{t}"
    );
    assert_eq!(audit["settings"]["backlog_wait_time_jiffies"], 0);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn auditd_follows_forked_and_execed_children() {
    let test = "auditd_follows_forked_and_execed_children";
    if !have_root(test) || !have_auditd(test) {
        return;
    }
    let dir = temp_dir("auditd-children");
    let before = snapshot();
    for flood in ["fork", "execve"] {
        let json = dir.join(format!("{flood}.json"));
        let out = aegis(&[
            "attack",
            "--collector",
            "auditd",
            "--flood",
            flood,
            "--threads",
            "2",
            "--duration",
            "0.5",
            "--json",
            json.to_str().unwrap(),
        ]);
        assert_success(&out);
        let t = &read_trials(&json)[0];
        // The children's exit_group (and, for execve, everything /bin/true does among the
        // traced syscalls) is the attack's too.
        assert!(
            t["traced_syscalls"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("exit_group")),
            "{t}"
        );
        assert!(u64_of(t, "generated") > 100, "{flood}: {t}");
        assert_adds_up(t);
    }
    assert_restored(&before);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn builtin_and_auditd_run_in_turn_into_one_table() {
    let test = "builtin_and_auditd_run_in_turn_into_one_table";
    if !have_root(test) || !have_auditd(test) {
        return;
    }
    let dir = temp_dir("two-collectors");
    let json = dir.join("trials.json");
    let csv = dir.join("trials.csv");
    let before = snapshot();
    let out = aegis(&[
        "attack",
        "--collector",
        "builtin,auditd",
        "--threads",
        "1",
        "--duration",
        "0.5",
        "--ring-size",
        "4MiB",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_restored(&before);
    let trials = read_trials(&json);
    let collectors: Vec<&str> = trials
        .iter()
        .map(|t| t["collector"].as_str().unwrap())
        .collect();
    assert_eq!(collectors, ["builtin", "auditd"]);
    trials.iter().for_each(assert_adds_up);
    let table = stdout(&out);
    assert_eq!(table.matches("┌").count(), 1, "one table:\n{table}");
    assert!(
        table.contains("builtin") && table.contains("auditd"),
        "{table}"
    );
    assert!(table.contains("backlog 8192, wait 60000 ms"), "{table}");
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 3, "{csv_text}");
    assert!(csv_text
        .lines()
        .next()
        .unwrap()
        .contains("audit_lost_records"));
    std::fs::remove_dir_all(dir).ok();
}

/// Puts the audit configuration a test set up back to what the machine had, on every exit
/// of the test (the tests must leave the machine as found, too).
struct AuditRestorer {
    status: String,
    rules: Vec<String>,
}

impl AuditRestorer {
    fn save() -> Self {
        let rules = auditctl(&["-l"])
            .unwrap()
            .lines()
            .filter(|l| *l != "No rules")
            .map(String::from)
            .collect();
        AuditRestorer {
            status: auditctl(&["-s"]).unwrap(),
            rules,
        }
    }

    fn value(&self, key: &str) -> String {
        self.status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {}", self.status))
            .trim()
            .to_string()
    }
}

impl Drop for AuditRestorer {
    fn drop(&mut self) {
        auditctl(&["-e", "0"]);
        auditctl(&["-D"]);
        for rule in &self.rules {
            let args: Vec<&str> = rule.split_whitespace().collect();
            auditctl(&args);
        }
        for (flag, key) in [
            ("-f", "failure"),
            ("-r", "rate_limit"),
            ("-b", "backlog_limit"),
            ("--backlog_wait_time", "backlog_wait_time"),
            ("-e", "enabled"),
        ] {
            auditctl(&[flag, &self.value(key)]);
        }
    }
}

/// A machine with its own audit configuration: audit on, rules (a syscall rule and a watch),
/// non-default failure mode, rate limit and backlog settings.
fn custom_audit_state() -> AuditRestorer {
    let original = AuditRestorer::save();
    for args in [
        &[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "acct",
            "-k",
            "aegis-test-rule",
        ][..],
        &[
            "-w",
            "/etc/aegis-test-watched",
            "-p",
            "wa",
            "-k",
            "aegis-test-watch",
        ],
        &["-f", "0"],
        &["-r", "1000"],
        &["-b", "321"],
        &["--backlog_wait_time", "1234"],
        &["-e", "1"],
    ] {
        auditctl(args);
    }
    original
}

#[test]
fn auditd_leaves_a_configured_audit_subsystem_as_found_even_when_interrupted() {
    let test = "auditd_leaves_a_configured_audit_subsystem_as_found_even_when_interrupted";
    if !have_root(test) || !have_auditd(test) {
        return;
    }
    let original = audit_snapshot();
    {
        let _restore = custom_audit_state();
        let before = snapshot();
        assert!(
            before
                .audit
                .as_ref()
                .is_some_and(|a| a.rules.len() == 2 && a.settings.contains(&"enabled 1".into())),
            "{before:?}"
        );
        // A run that finishes.
        let out = aegis(&[
            "attack",
            "--collector",
            "auditd",
            "--threads",
            "1",
            "--duration",
            "0.5",
        ]);
        assert_success(&out);
        assert_restored(&before);
        // A run interrupted by Ctrl-C mid-flood.
        let mut child = start_long_attack(&["--collector", "auditd"]);
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let started = Instant::now();
        let status = child.wait().unwrap();
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(status.code(), Some(130), "{status}");
        assert_restored(&before);
    }
    assert_eq!(audit_snapshot(), original, "the test put the machine back");
}

fn assert_one_line_refusal(out: &std::process::Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
}

#[test]
fn sysdig_and_eaudit_say_why_they_cannot_run() {
    let before = nix::unistd::geteuid().is_root().then(snapshot);
    // Refused before anything is changed, also when listed after a collector that works.
    let out = aegis(&[
        "attack",
        "--collector",
        "builtin,sysdig",
        "--duration",
        "0.2",
    ]);
    assert_one_line_refusal(&out, "collector 'sysdig' cannot capture here: ");
    assert_one_line_refusal(&out, "add --vm (sched-ext-7");
    // Nor in the sched-ext guest when asked for by name: its kernel has no published headers
    // to build its driver (without --vm-kernel, sysdig picks sched-ext-7).
    let out = aegis(&[
        "attack",
        "--vm",
        "--vm-kernel",
        "sched-ext",
        "--collector",
        "sysdig",
        "--duration",
        "0.2",
    ]);
    assert_one_line_refusal(
        &out,
        "collector 'sysdig' cannot run in the sched-ext guest: ",
    );
    let out = Command::new(BIN)
        .args(["attack", "--collector", "eaudit", "--duration", "0.2"])
        .env_remove("AEGIS_EAUDIT_DIR")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    // Without a checkout it says so; with the project's third-party copy beside the source
    // tree (found by default), that BCC and the headers are missing here.
    assert_one_line_refusal(&out, "collector 'eaudit' cannot run here: ");
    let err = stderr(&out);
    assert!(
        err.contains("no eAudit checkout: give --eaudit-dir DIR or set AEGIS_EAUDIT_DIR")
            || err.contains("cannot run here: it needs"),
        "{err}"
    );
    assert!(
        err.contains("it runs in a guest's Debian userland"),
        "{err}"
    );
    let not_eaudit = temp_dir("not-eaudit");
    let out = aegis(&[
        "attack",
        "--collector",
        "eaudit",
        "--eaudit-dir",
        not_eaudit.to_str().unwrap(),
    ]);
    assert_one_line_refusal(&out, "is not an eAudit checkout");
    std::fs::remove_dir_all(not_eaudit).ok();
    if let Some(before) = before {
        assert_restored(&before);
    }
    // doctor: one line each, with the reason.
    let out = aegis(&["doctor"]);
    let text = stdout(&out);
    for name in ["sysdig (collector)", "eaudit (collector)"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("doctor has no {name} line:\n{text}"));
        assert!(line.contains("  no  "), "{line}");
    }
}

#[test]
fn auditd_refuses_what_it_cannot_account_for() {
    let out = aegis(&["attack", "--collector", "auditd", "--cmd", "true"]);
    assert_one_line_refusal(&out, "cannot follow a --cmd producer");
    let out = aegis(&[
        "attack",
        "--collector",
        "auditd",
        "--audit-backlog-wait-time",
        "700000",
    ]);
    assert_one_line_refusal(&out, "beyond the kernel's limit");
}
