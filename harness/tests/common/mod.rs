//! Helpers for the end-to-end tests, which run the real binary as root.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_aegis-bench");

/// Skips `test`, saying why on stderr and in `target/tmp/skipped.txt` (which `make test` lists
/// at the end, so a skip never reads as a pass). Under `CI=true` or with `AEGIS_BENCH_NO_SKIPS`
/// set (`.ci/run` sets it) a skip fails the test instead: CI runs every test.
pub fn skip(test: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if ci || std::env::var_os("AEGIS_BENCH_NO_SKIPS").is_some() {
        panic!("{test} would be skipped ({why}), and in CI every test runs");
    }
    report_skip(test, why);
}

/// Like [`skip`], except where `AEGIS_BENCH_MAY_SKIP` (a comma list) names `what`: then the
/// skip is reported, never failed, even in CI. `.ci/run` names only what CI cannot fetch
/// (eAudit, a checkout beside the project), and says so in its output.
pub fn skip_unless_required(test: &str, why: &str, what: &str) {
    let allowed = std::env::var("AEGIS_BENCH_MAY_SKIP")
        .is_ok_and(|list| list.split(',').any(|item| item.trim() == what));
    if !allowed {
        skip(test, why);
        return;
    }
    report_skip(test, why);
}

/// Says on stderr and in `target/tmp/skipped.txt` that `test` did not run, and why.
fn report_skip(test: &str, why: &str) {
    eprintln!("SKIP {test}: {why}");
    let list = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(list)
    {
        use std::io::Write as _;
        writeln!(file, "{test}: {why}").ok();
    }
}

/// Root is needed to load BPF and create cgroups; CI runs as root. Returns false (and skips
/// the test, see [`skip`]) where it is truly absent.
pub fn have_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(
        test,
        "needs root (BPF programs and cgroups); CI runs it as root",
    );
    false
}

/// auditd trials need auditd and a kernel audit subsystem no other daemon holds; CI installs
/// auditd (`make setup`) and runs none.
pub fn have_auditd(test: &str) -> bool {
    match audit_snapshot() {
        None => {
            skip(
                test,
                "auditctl is not installed (make setup installs auditd)",
            );
            false
        }
        Some(audit) if !audit.settings.iter().any(|l| l == "pid 0") => {
            skip(
                test,
                &format!("another audit daemon is registered ({:?})", audit.settings),
            );
            false
        }
        Some(_) => true,
    }
}

pub fn aegis(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running aegis-bench")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "aegis-bench failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aegis-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The work directories of the aegis-bench with pid `pid` whose names go on with `label`
/// (`aegis-bench-<pid>-<label>...` in the temporary directory; `""` for all of them).
pub fn work_dirs_of(pid: u32, label: &str) -> Vec<PathBuf> {
    let prefix = format!("aegis-bench-{pid}-{label}");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

pub fn read_trials(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Kernel and process state a run must not leave behind.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub attack_cgroups: Vec<String>,
    pub bpf_programs: Vec<String>,
    pub helper_processes: Vec<String>,
    pub canary_files: Vec<String>,
    pub tracefs_mounted: bool,
    /// `None` where auditctl is not installed.
    pub audit: Option<AuditSnapshot>,
}

/// The kernel's audit configuration (what an auditd trial changes), its daemon pid file and
/// the harness's saved-state file.
#[derive(Debug, PartialEq, Eq)]
pub struct AuditSnapshot {
    /// `auditctl -s` lines that are settings, not counters: enabled, failure, pid,
    /// rate_limit, backlog_limit, backlog_wait_time.
    pub settings: Vec<String>,
    /// `auditctl -l`.
    pub rules: Vec<String>,
    pub auditd_pid_file: bool,
    pub saved_state_file: bool,
}

pub fn auditctl(args: &[&str]) -> Option<String> {
    let program = ["/usr/sbin/auditctl", "/sbin/auditctl"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let out = Command::new(program).args(args).output().ok()?;
    assert!(
        out.status.success(),
        "auditctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn audit_snapshot() -> Option<AuditSnapshot> {
    let status = auditctl(&["-s"])?;
    let settings = status
        .lines()
        .filter(|line| {
            let key = line.split_whitespace().next().unwrap_or("");
            [
                "enabled",
                "failure",
                "pid",
                "rate_limit",
                "backlog_limit",
                "backlog_wait_time",
            ]
            .contains(&key)
        })
        .map(String::from)
        .collect();
    let rules = auditctl(&["-l"])?
        .lines()
        .map(String::from)
        .filter(|l| l != "No rules")
        .collect();
    Some(AuditSnapshot {
        settings,
        rules,
        auditd_pid_file: Path::new("/run/auditd.pid").exists(),
        saved_state_file: Path::new("/run/aegis-bench-audit-state.json").exists(),
    })
}

fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .min_by_key(|p| p.as_os_str().len())
        .expect("cgroup2 mounted")
}

pub fn snapshot() -> Snapshot {
    let mut attack_cgroups: Vec<String> = std::fs::read_dir(cgroup2_root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("aegis-bench-"))
        .collect();
    if let Ok(v1) = std::fs::read_dir("/sys/fs/cgroup/cpu") {
        attack_cgroups.extend(
            v1.flatten()
                .map(|e| format!("cpu/{}", e.file_name().to_string_lossy()))
                .filter(|n| n.starts_with("cpu/aegis-bench-")),
        );
    }
    let bpf_programs = libbpf_rs::query::ProgInfoIter::default()
        .map(|info| info.name.to_string_lossy().into_owned())
        .filter(|n| n.starts_with("aegis_"))
        .collect();
    let helper_processes = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            c.contains("aegis-bench attack-worker")
                || c.contains("aegis-bench collect")
                || c.contains("aegis-bench workload-worker")
                // auditd as a trial starts it (the system's runs without `-s nochange`).
                || (c.split(' ').next().is_some_and(|p| p.ends_with("/auditd"))
                    && c.contains(" -s nochange -c "))
        })
        .collect();
    let canary_files = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("aegis-canary-"))
        .collect();
    let tracefs_mounted = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("tracefs"));
    Snapshot {
        attack_cgroups,
        bpf_programs,
        helper_processes,
        canary_files,
        tracefs_mounted,
        audit: audit_snapshot(),
    }
}

/// Waits briefly for asynchronous teardown (BPF programs are freed after their last fd closes).
pub fn assert_restored(before: &Snapshot) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = snapshot();
        if &now == before {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("state not restored:\nbefore: {before:?}\nafter:  {now:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether the running kernel's fair class is EEVDF (Linux 6.6 and later).
pub fn kernel_is_eevdf() -> bool {
    let release = nix::sys::utsname::uname()
        .unwrap()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    (major, minor) >= (6, 6)
}

/// Starts a long attack and returns once its flood is running.
pub fn start_long_attack(extra: &[&str]) -> std::process::Child {
    let mut child = Command::new(BIN)
        .args([
            "attack",
            "--flood",
            "openat",
            "--threads",
            "2",
            "--duration",
            "30",
            "--ring-size",
            "1MiB",
        ])
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        if line.unwrap().starts_with("trial 1/") {
            break;
        }
        assert!(Instant::now() < deadline, "attack did not start");
    }
    std::thread::spawn(move || for _ in lines {});
    // Wait until the worker is flooding inside its cgroup.
    while !snapshot()
        .helper_processes
        .iter()
        .any(|p| p.contains("attack-worker"))
    {
        assert!(Instant::now() < deadline, "attack worker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// A numeric field of a trial, with the trial in the panic message.
pub fn u64_of(t: &serde_json::Value, field: &str) -> u64 {
    t[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {t}"))
}

/// The accounting identity every printed trial must satisfy.
pub fn assert_adds_up(t: &serde_json::Value) {
    assert_eq!(
        u64_of(t, "received") + u64_of(t, "dropped"),
        u64_of(t, "generated"),
        "{t}"
    );
}

/// Starts `aegis-bench ARGS`, sends it SIGINT once a line of its stderr contains `needle`,
/// and returns its exit code (its stderr is drained meanwhile, so it never blocks on it).
pub fn interrupt_when_stderr_says(args: &[&str], needle: &str) -> Option<i32> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(needle) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().unwrap().code()
}
