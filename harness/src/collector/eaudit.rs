//! eAudit (Sekar et al., IEEE S&P 2024), run from a checkout as its README says: `ecapd`'s
//! front end `python3 eauditd.py -c CAPTURE -m PREFIX` from inside the checkout, BCC compiling
//! its BPF program (`eauditk.c`) against the running kernel's headers when it starts, stopped
//! with SIGINT (it drains its ring first), its capture printed by its own `eaudit -I CAPTURE -P
//! TEXT`. That needs Python, BCC and the kernel's headers: the Debian userland of the
//! sched-ext-7 or cfs guest (`vm/rootfs.rs`), where the guest runner copies in a checkout
//! patched for 6.1 and 7.3 (`patches/eaudit`, `vm/eaudit_build.rs`). Facts behind this module:
//! `docs/eaudit-notes.md`.
//!
//! **Which records are the attack's.** eAudit records every process; each printed record
//! names its thread group (`pid=`) and, for threads other than the leader, its thread
//! (`tid=`). The attack's are those of the threads ground truth counted in the attack's
//! cgroup, except the worker's main thread: it makes syscalls eAudit records before it joins
//! the cgroup (opening its files), and eAudit's records carry one timestamp per batch, so they
//! cannot be ordered against a start mark. The flood threads are started before the worker
//! joins but make no recorded syscall until the gate opens, and the main thread makes none of
//! the traced ones afterwards; a trial where that did not hold fails its account.
//!
//! **Traced.** The flood's syscalls among those eAudit records as their own calls and the main
//! thread never makes after joining: openat (printed `open`), socket, connect, clone, execve.
//! Failed opens are recorded with `-u o`.
//!
//! **Dropped.** `dropped` = ground truth - received. eAudit's own loss figures are not per
//! record: `-m`'s `lost` is bytes (sent to the ring minus received) and a failed ring output
//! drops a whole batch; both go into the trial. So do the runs of its BPF programs the kernel
//! skipped (`bpf_recursion_misses`): a classic tracepoint program does not run while another
//! one is running on its CPU (on 7.3, where syscall tracepoints may be preempted, that is
//! often), and eAudit cannot count what it never saw. A trial fails (the matching is wrong,
//! not eAudit) when it misses attack events while eAudit lost no byte and no ring output,
//! unless the kernel skipped its programs at least as many times.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libc::c_long;
use nix::unistd::Pid;

use super::external::{interrupt_and_reap, programs_of, Exited};
use super::{CanarySeen, CollectorSetup, CollectorStats, RunningCollector};
use crate::error::InputError;
use crate::results::collector::EauditOutcome;

/// Where the guest runner puts the patched, built checkout.
pub const GUEST_DIR: &str = "/opt/eaudit";
/// A file in a built copy naming the checkout and the patches it came from.
pub const BUILD_FILE: &str = "aegis-build";
/// BCC compiles `eauditk.c` at start: about two minutes under TCG.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const EXIT_TIMEOUT: Duration = Duration::from_secs(300);
const PREFIX: &str = "EA_";

/// The syscalls counted for the attack, as eAudit prints them (see the module docs).
const RECORDED: &[(c_long, &str)] = &[
    (libc::SYS_openat, "open"),
    (libc::SYS_socket, "socket"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_execve, "execve"),
];

/// The environment variable naming a checkout when `--eaudit-dir` is not given.
pub const DIR_ENV: &str = "AEGIS_EAUDIT_DIR";

/// Where the project keeps the third-party tools it runs, beside the source tree:
/// `../shared/third_party/eaudit` from the directory it is run in (the project's root, as
/// `make` runs it), else from the source tree it was built from.
fn beside_the_project() -> Option<PathBuf> {
    const RELATIVE: &str = "shared/third_party/eaudit";
    let from_cwd = std::env::current_dir()
        .ok()
        .map(|cwd| cwd.join("..").join(RELATIVE));
    let from_source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(RELATIVE);
    from_cwd
        .into_iter()
        .chain([from_source])
        .find(|dir| dir.join("eauditk.c").is_file())
        .map(|dir| dir.canonicalize().unwrap_or(dir))
}

/// The checkout to use: the flag, else the environment, else the guest's built copy, else
/// the project's third-party copy ([`beside_the_project`]).
pub fn checkout(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        })
        // Where the guest runner puts the built checkout, so a matrix in a guest finds it.
        .or_else(|| {
            let dir = Path::new(GUEST_DIR);
            dir.join("eauditd.py").is_file().then(|| dir.to_path_buf())
        })
        .or_else(beside_the_project)
}

fn bcc_missing() -> Option<String> {
    let imported = Command::new("python3")
        .args(["-c", "import bcc"])
        .output()
        .map(|out| out.status.success());
    match imported {
        Ok(true) => None,
        Ok(false) => Some("BCC (python3 cannot import bcc: apt-get install python3-bpfcc)".into()),
        Err(_) => Some("BCC and python3 (no python3)".into()),
    }
}

fn headers_missing() -> Option<String> {
    let release = crate::measure::kernel::release();
    let build = Path::new("/lib/modules").join(&release).join("build");
    let kheaders = Path::new("/sys/kernel/kheaders.tar.xz");
    if build.exists() || kheaders.exists() {
        None
    } else {
        Some(format!(
            "kernel headers for {release} (no {}, no {})",
            build.display(),
            kheaders.display()
        ))
    }
}

/// Why `--collector eaudit` cannot run here, or `None` when it can.
pub fn why_not_here(flag: Option<&Path>) -> Option<String> {
    let missing: Vec<String> = [bcc_missing(), headers_missing()]
        .into_iter()
        .flatten()
        .collect();
    let needs = if missing.is_empty() {
        String::new()
    } else {
        format!("; eAudit also needs {}", missing.join(" and "))
    };
    let Some(dir) = checkout(flag) else {
        return Some(format!(
            "no eAudit checkout: give --eaudit-dir DIR or set {DIR_ENV} (none at \
             ../shared/third_party/eaudit){needs}"
        ));
    };
    if !dir.is_dir() {
        return Some(format!(
            "the eAudit checkout {} does not exist{needs}",
            dir.display()
        ));
    }
    let has = |file: &str| dir.join(file).is_file();
    if !(has("eauditk.c") && (has("ecapd") || has("eauditd"))) {
        return Some(format!(
            "{} is not an eAudit checkout (no eauditk.c with ecapd or eauditd){needs}",
            dir.display()
        ));
    }
    if !missing.is_empty() {
        return Some(format!(
            "eAudit in {} cannot run here: it needs {}",
            dir.display(),
            missing.join(" and ")
        ));
    }
    if !(has("ecapd.so") && has("eaudit")) {
        return Some(format!(
            "the eAudit checkout {} is not built (no ecapd.so and eaudit: `make all` there)",
            dir.display()
        ));
    }
    None
}

/// Checks that eAudit can record here; the one-line error names where it can.
pub fn check_available(flag: Option<&Path>) -> Result<(), InputError> {
    match why_not_here(flag) {
        None => Ok(()),
        Some(reason) => Err(InputError(format!(
            "collector 'eaudit' cannot run here: {reason}; it runs in a guest's Debian \
             userland: add --vm (sched-ext-7, every scheduler) or --vm --vm-kernel cfs, with \
             --eaudit-dir DIR"
        ))),
    }
}

/// eAudit's counters from its stderr: `-m`'s `PREFIXlost` (bytes) and `PREFIXsyscalls`, and
/// the failed ring outputs (`Ring buffer output failed N times`, absent when none failed).
fn parse_summary(text: &str) -> Option<(u64, u64, u64)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
    };
    let failed = text
        .lines()
        .find_map(|line| {
            let rest = line.split("Ring buffer output failed").nth(1)?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    Some((
        value(&format!("{PREFIX}lost"))?,
        value(&format!("{PREFIX}syscalls"))?,
        failed,
    ))
}

/// One printed record: `<time>:<seq>: pid=<tgid>: [tid=<tid>:] call(args) [ret=N]`; the
/// thread (the leader's when there is no `tid=`), the call and its arguments.
fn parse_record(line: &str) -> Option<(u32, &str, &str)> {
    let rest = line.split_once("pid=")?.1;
    let (pid, mut rest) = rest.split_once(':')?;
    let mut tid: u32 = pid.trim().parse().ok()?;
    rest = rest.trim_start();
    if let Some(after) = rest.strip_prefix("tid=") {
        let (t, r) = after.split_once(':')?;
        tid = t.trim().parse().ok()?;
        rest = r.trim_start();
    }
    let (call, args) = rest.split_once('(')?;
    Some((tid, call.trim(), args))
}

pub struct EauditCollector {
    /// `python3 eauditd.py`; `None` once stopped.
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    capture: PathBuf,
    printed: PathBuf,
    stderr: PathBuf,
    traced: BTreeSet<u32>,
    /// The attack worker's main thread, whose records are not counted (module docs).
    worker: Option<u32>,
    summary: Option<(u64, u64, u64)>,
    /// Runs of its BPF programs the kernel skipped, read just before it stops.
    recursion_misses: u64,
    /// Its CPU seconds once recording (BCC's compile before that is not collecting).
    cpu_at_ready_s: f64,
    /// `(call, args)` of the attack's records naming a file in the work directory.
    named: Vec<(String, String)>,
    work_dir: PathBuf,
}

impl EauditCollector {
    pub fn start(setup: &CollectorSetup<'_>, flag: Option<&Path>) -> Result<Self> {
        let dir = checkout(flag).context("no eAudit checkout")?;
        let mut syscalls: BTreeSet<c_long> = [libc::SYS_openat].into_iter().collect();
        match setup.flood {
            Some(flood) => syscalls.extend(flood.syscalls()),
            None => syscalls.extend(RECORDED.iter().map(|(nr, _)| *nr)),
        }
        let traced = syscalls
            .into_iter()
            .filter(|nr| RECORDED.iter().any(|(known, _)| known == nr))
            .map(|nr| nr as u32)
            .collect();
        // Copied in as plain files: the printer must be executable.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("eaudit"), std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {}/eaudit executable", dir.display()))?;
        let mut collector = EauditCollector {
            child: None,
            pid: 0,
            capture: setup.work_dir.join("eaudit.cap"),
            printed: setup.work_dir.join("eaudit.txt"),
            stderr: setup.work_dir.join("eaudit.err"),
            dir,
            traced,
            worker: None,
            summary: None,
            recursion_misses: 0,
            cpu_at_ready_s: 0.0,
            named: Vec::new(),
            work_dir: setup.work_dir.to_path_buf(),
        };
        let stderr = std::fs::File::create(&collector.stderr)?;
        // eauditd.py opens ./ecapd.so and eauditk.c: it runs from the checkout.
        let child = Command::new("python3")
            .arg("eauditd.py")
            .arg("-c")
            .arg(&collector.capture)
            .args(["-m", PREFIX, "-u", "o", "-v", "1"])
            .current_dir(&collector.dir)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .spawn()
            .context("starting eAudit (python3 eauditd.py)")?;
        collector.pid = child.id();
        collector.child = Some(child);
        collector.wait_until_recording()?;
        Ok(collector)
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(&self.stderr)
            .map(|text| {
                let lines: Vec<&str> = text.trim().lines().collect();
                lines[lines.len().saturating_sub(3)..].join(" | ")
            })
            .unwrap_or_default()
    }

    /// eAudit creates its capture file once BCC has compiled and loaded every program, and
    /// turns recording on about 0.2 s later (docs/eaudit-notes.md).
    fn wait_until_recording(&mut self) -> Result<()> {
        crate::say!("  eaudit: compiling its BPF program with BCC (minutes under TCG)");
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.capture.exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                bail!(
                    "eAudit exited ({status}) before recording: {}",
                    self.messages()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "eAudit did not start recording within {READY_TIMEOUT:?}: {}",
                    self.messages()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(1));
        let (user, system) = super::auditd::cpu_seconds(self.pid)?;
        self.cpu_at_ready_s = user + system;
        Ok(())
    }

    /// Prints the capture with eAudit's own printer and finds the attack's records.
    fn read_back(&mut self, attack_tids: &BTreeSet<u32>) -> Result<BTreeMap<u32, u64>> {
        let out = Command::new(self.dir.join("eaudit"))
            .arg("-I")
            .arg(&self.capture)
            .arg("-P")
            .arg(&self.printed)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .context("running eAudit's printer (eaudit -I ... -P ...)")?;
        if !out.status.success() {
            bail!(
                "eaudit -I {} failed ({}): {}",
                self.capture.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // Records carry file names and data as the program passed them, not always UTF-8.
        let bytes = std::fs::read(&self.printed)
            .with_context(|| format!("reading {}", self.printed.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let work_dir = self.work_dir.to_string_lossy().into_owned();
        let mut received: BTreeMap<u32, u64> = BTreeMap::new();
        for line in text.lines() {
            let Some((tid, call, args)) = parse_record(line) else {
                continue;
            };
            if !attack_tids.contains(&tid) || Some(tid) == self.worker {
                continue;
            }
            if let Some((nr, _)) = RECORDED.iter().find(|(_, name)| *name == call) {
                if self.traced.contains(&(*nr as u32)) {
                    *received.entry(*nr as u32).or_default() += 1;
                }
            }
            if args.contains(&work_dir) {
                self.named.push((call.to_string(), args.to_string()));
            }
        }
        Ok(received)
    }
}

/// The checkout and patches a built copy came from, as its builder wrote them into
/// [`BUILD_FILE`].
fn version(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(BUILD_FILE))
        .map(|text| format!("eAudit ({})", text.trim()))
        .unwrap_or_else(|_| format!("eAudit ({})", dir.display()))
}

/// eAudit batches records per CPU in a BPF map and moves a batch to its ring only from a later
/// recorded syscall on that CPU, once the batch is full or the upper bits of the timestamp
/// (units of 2^24 ns, about 17 ms) have changed. When a trial ends, each CPU's last batch would
/// wait in the map until the next syscall there (soon, on a machine in use; never, once eAudit
/// is stopped, and its counters do not count it lost). So before stopping eAudit the harness
/// waits out one timestamp unit and makes one recorded call (an open of `/`) on every CPU.
fn flush_batches() -> Result<()> {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    std::thread::sleep(Duration::from_millis(40));
    let ours = sched_getaffinity(Pid::from_raw(0)).context("reading the CPU affinity")?;
    for cpu in (0..CpuSet::count()).filter(|cpu| ours.is_set(*cpu).unwrap_or(false)) {
        std::thread::spawn(move || -> Result<()> {
            let mut one = CpuSet::new();
            one.set(cpu)?;
            sched_setaffinity(Pid::from_raw(0), &one)?;
            std::fs::File::open("/").context("opening /")?;
            Ok(())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread flushing eAudit's batch on CPU {cpu} panicked"))?
        .with_context(|| format!("flushing eAudit's batch on CPU {cpu}"))?;
    }
    Ok(())
}

impl RunningCollector for EauditCollector {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn traced_syscalls(&self) -> BTreeSet<u32> {
        self.traced.clone()
    }

    fn needs_attack_pid(&self) -> bool {
        true
    }

    fn attack_joined(&mut self, pid: u32) -> Result<()> {
        self.worker = Some(pid);
        Ok(())
    }

    fn stop(&mut self) -> Result<CollectorStats> {
        let child = self.child.take().context("eAudit was already stopped")?;
        flush_batches()?;
        let programs = programs_of(self.pid)?;
        if programs.nr_programs == 0 {
            bail!(
                "eAudit (pid {}) holds no BPF program just before it stops",
                self.pid
            );
        }
        self.recursion_misses = programs.nr_misses;
        // SIGINT: eAudit drains its ring, writes, prints its counters and exits.
        let Exited {
            code,
            cpu_user_s,
            cpu_system_s,
        } = interrupt_and_reap(child, EXIT_TIMEOUT, "eAudit")?;
        if code != 0 {
            bail!("eAudit failed (exit status {code}): {}", self.messages());
        }
        let text = std::fs::read_to_string(&self.stderr)?;
        self.summary = Some(parse_summary(&text).with_context(|| {
            format!(
                "eAudit printed no {PREFIX}lost/{PREFIX}syscalls summary (see {})",
                self.stderr.display()
            )
        })?);
        Ok(CollectorStats {
            cpu_user_s,
            cpu_system_s,
            consuming_cpu_s: Some((cpu_user_s + cpu_system_s - self.cpu_at_ready_s).max(0.0)),
            log_bytes: std::fs::metadata(&self.capture).map_or(0, |m| m.len()),
            ..CollectorStats::default()
        })
    }

    fn match_attack(
        &mut self,
        attack_tids: &BTreeSet<u32>,
        truth: &BTreeMap<u32, u64>,
        stats: &mut CollectorStats,
    ) -> Result<()> {
        let (lost_bytes, syscalls, failed_outputs) =
            self.summary.context("eAudit has not stopped")?;
        let received = self.read_back(attack_tids)?;
        let generated: u64 = self
            .traced
            .iter()
            .map(|nr| truth.get(nr).copied().unwrap_or(0))
            .sum();
        stats.received = received.values().sum();
        let missed = generated.saturating_sub(stats.received);
        // Each record the kernel kept from eAudit took at least one skipped program run (its
        // enter or its exit); a lost byte or failed output may stand for any number of them.
        if missed > self.recursion_misses && lost_bytes == 0 && failed_outputs == 0 {
            bail!(
                "accounting does not add up: eAudit's log lacks {missed} of the attack's \
                 {generated} events but it lost no bytes, no ring output failed and the kernel \
                 skipped its programs only {} times: the attack's records were not matched, \
                 not lost ({})",
                self.recursion_misses,
                super::sysdig::by_syscall(&self.traced, &received, truth)
            );
        }
        stats.received_by_syscall = received;
        stats.dropped = missed;
        stats.eaudit = Some(EauditOutcome {
            lost_bytes,
            syscalls,
            failed_ring_outputs: failed_outputs,
            attack_missed: missed,
            bpf_recursion_misses: self.recursion_misses,
        });
        Ok(())
    }

    fn find_canary(&self, canary: &Path) -> Result<CanarySeen> {
        let quoted = format!("\"{}\"", canary.display());
        let seen = |calls: &[&str]| {
            self.named
                .iter()
                .any(|(call, args)| calls.contains(&call.as_str()) && args.contains(&quoted))
        };
        Ok(CanarySeen {
            created: seen(&["open"]),
            unlinked: seen(&["unlink", "unlinkat"]),
        })
    }

    fn log_path(&self) -> PathBuf {
        self.printed.clone()
    }

    fn version(&self) -> Option<String> {
        Some(version(&self.dir))
    }
}

impl Drop for EauditCollector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_eaudit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let reason = why_not_here(Some(dir.path())).unwrap();
        assert!(reason.contains("is not an eAudit checkout"), "{reason}");
        let reason = why_not_here(Some(&dir.path().join("nope"))).unwrap();
        assert!(reason.contains("does not exist"), "{reason}");
    }

    #[test]
    fn reads_its_counters() {
        let text = "Pid 587: Read 212511B in 563 msgs\n*** Dropped data *** Ring buffer output \
                    failed 304159 times\nEA_syscalls 7073\nEA_lost 10479285\nEA_avgp 13\n";
        assert_eq!(parse_summary(text), Some((10479285, 7073, 304159)));
        assert_eq!(parse_summary("EA_syscalls 1\nEA_lost 0\n"), Some((0, 1, 0)));
        assert_eq!(parse_summary("nothing"), None);
    }

    #[test]
    fn reads_records_of_leaders_and_threads() {
        assert_eq!(
            parse_record("1796661487.034:00013:     pid=582: clone(flags=1200011)"),
            Some((582, "clone", "flags=1200011)"))
        );
        assert_eq!(
            parse_record(
                "1796661500.300:02891:    pid=2354: tid=2355: open(file=\"/etc/hostname\", flags=0, mode=0) ret=3"
            ),
            Some((2355, "open", "file=\"/etc/hostname\", flags=0, mode=0) ret=3"))
        );
        assert_eq!(
            parse_record("eParser: Terminating after reading 2 bytes."),
            None
        );
    }
}
