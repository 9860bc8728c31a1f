//! sysdig: Debian's sysdig, run as its users run it: its kernel module (`scap.ko`, built from
//! Debian's `falcosecurity-scap-dkms` against the guest kernel's headers: on the host for the
//! cfs guest by `vm/scap.rs`, in the Debian userland for sched-ext-7 by `vm/rootfs.rs`)
//! loaded, `sysdig -v -w FILE` capturing every process of the machine, and
//! the capture read back with `sysdig -r` once it stops.
//!
//! Under Aegis, sysdig's pid is the provenance task; its buffers (the driver's per-CPU rings)
//! are not visible to the scheduler, which estimates its backlog from the events produced and
//! the collector's CPU time, as for every collector without a pinned BPF ring.
//!
//! **Which records are the attack's.** sysdig records the whole machine, so the attack's events
//! are found by thread id: ground truth keeps the ids of the threads whose syscalls it counted
//! in the attack's cgroup ([`crate::measure::truth::GroundTruth::attack_tids`]). The attack worker
//! makes syscalls of its own before it joins the cgroup (which ground truth does not count),
//! then holds at a gate without a syscall; while it holds, the harness opens a file that does
//! not exist (the *start mark*). Records of the attack's threads after the start mark's record
//! are the attack's; the capture's global order is sysdig's own (by timestamp).
//!
//! **Received and dropped.** An event is a syscall *entry* record (`evt.dir=>`) of a syscall in
//! [`RunningCollector::traced_syscalls`]: ground truth counts entries too, and a clone has one
//! entry but two exits. sysdig 0.41 (falcosecurity libs 0.23) no longer records the entries
//! of most syscalls, only their exits, with every argument; for a syscall without any entry
//! record the exit records count instead, a clone's only in the parent (return value not 0).
//! `received` = the attack's records so counted; `dropped` = ground truth's count minus
//! `received`. sysdig's driver counts what it dropped (`Driver Drops`, every
//! process, entries and exits counted apart): each missing attack entry is one of those, so a
//! trial where more attack events are missing than the driver dropped fails, naming both
//! numbers: the matching is wrong, not sysdig.
//!
//! Anywhere no driver can be loaded (the host: no modules; the sched-ext guest: no headers
//! published for its kernel) the collector is refused with the reason ([`probe`]), found
//! *without running a capture*: `sysdig -B` with no file runs `scap-driver-loader`, which
//! mounts debugfs and tries to download or compile a probe, and that is not a check that may
//! change the machine.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libc::c_long;

use super::audit_state::find_program;
use super::external::{interrupt_and_reap, Exited};
use super::{CanarySeen, CollectorSetup, CollectorStats, RunningCollector};
use crate::error::InputError;
use crate::results::collector::SysdigOutcome;

/// The driver's buffer per CPU (`RING_BUF_SIZE` in the scap module's `ppm_ringbuffer.h`).
pub const DRIVER_BUFFER_BYTES: u64 = 8 << 20;
/// Where the guest runner puts the driver it built for the guest's kernel.
pub const GUEST_MODULE: &str = "/aegis/drivers/scap.ko";
/// The module's name once loaded.
const MODULE_NAME: &str = "scap";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(300);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The syscalls sysdig records as their own event types, under the kernel's names (checked
/// against the driver's tables and the floods in the cfs guest).
const RECORDED: &[(c_long, &str)] = &[
    (libc::SYS_openat, "openat"),
    (libc::SYS_close, "close"),
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_execve, "execve"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_exit_group, "exit_group"),
    (libc::SYS_socket, "socket"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_unlinkat, "unlinkat"),
];
/// The canary's syscalls (create, close, unlink), recorded whatever the flood.
const CANARY: &[c_long] = &[libc::SYS_openat, libc::SYS_close, libc::SYS_unlinkat];

/// Whether the sysdig on this machine can capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    /// It cannot; the reason.
    No(String),
    /// It can; with which driver.
    Yes(String),
}

fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "sysdig (version unknown)".to_string())
        .replace("sysdig version", "sysdig")
}

fn has_modern_probe(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("--modern-bpf"))
        .unwrap_or(false)
}

/// A `scap*.ko*` file under `dir`, searched a few levels deep.
fn find_module(dir: &Path, depth: u32) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("scap") && name.contains(".ko") {
            return Some(path);
        }
        if depth > 0 && path.is_dir() {
            if let Some(found) = find_module(&path, depth - 1) {
                return Some(found);
            }
        }
    }
    None
}

/// A prebuilt classic eBPF probe sysdig would load: `SYSDIG_BPF_PROBE`, or one in `~/.scap`
/// named for this kernel.
fn prebuilt_probe(release: &str) -> Option<std::path::PathBuf> {
    if let Some(file) = std::env::var_os("SYSDIG_BPF_PROBE").filter(|f| !f.is_empty()) {
        let file = std::path::PathBuf::from(file);
        return file.is_file().then_some(file);
    }
    let home = std::env::var_os("HOME")?;
    std::fs::read_dir(Path::new(&home).join(".scap"))
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".o") && name.contains(release)
        })
}

/// Finds out whether sysdig can capture here, without trying to.
pub fn probe() -> Capture {
    let Some(binary) = find_program("sysdig") else {
        return Capture::No(
            "sysdig is not installed (apt-get install --no-install-recommends sysdig)".into(),
        );
    };
    let release = crate::measure::kernel::release();
    if Path::new("/dev/scap0").exists() {
        return Capture::Yes("the scap kernel module (/dev/scap0)".into());
    }
    if let Some(file) = prebuilt_probe(&release) {
        return Capture::Yes(format!("the eBPF probe {}", file.display()));
    }
    if has_modern_probe(&binary) {
        return Capture::Yes("its CO-RE modern probe (--modern-bpf)".into());
    }
    let module = if !Path::new("/proc/modules").exists() {
        "this kernel cannot load modules at all (CONFIG_MODULES off), so no scap kernel module"
            .to_string()
    } else {
        match find_module(&Path::new("/lib/modules").join(&release), 4) {
            Some(file) => format!("the scap module {} is built but not loaded", file.display()),
            None => format!("no scap kernel module is loaded or built for {release}"),
        }
    };
    Capture::No(format!(
        "{} cannot capture on this kernel: {module}, no prebuilt eBPF probe (SYSDIG_BPF_PROBE, \
         ~/.scap) and no kernel headers to build one, and this version has no CO-RE modern \
         probe (no --modern-bpf option)",
        version(&binary)
    ))
}

/// Why `--collector sysdig` cannot run here, or `None` when it can: sysdig is installed and
/// its driver is loaded or at hand ([`GUEST_MODULE`]).
fn why_not_here() -> Option<String> {
    if find_program("sysdig").is_some()
        && (Path::new("/dev/scap0").exists() || Path::new(GUEST_MODULE).is_file())
    {
        return None;
    }
    Some(match probe() {
        Capture::No(reason) => reason,
        Capture::Yes(driver) => {
            format!("only its {driver} is here, which this harness does not load")
        }
    })
}

/// Checks that sysdig can capture here; the one-line error names where it can.
pub fn check_available() -> Result<(), InputError> {
    match why_not_here() {
        None => Ok(()),
        Some(reason) => Err(InputError(format!(
            "collector 'sysdig' cannot capture here: {reason}; it runs in a guest, with its \
             driver built for the guest's kernel: add --vm (sched-ext-7: forky's sysdig 0.41, \
             every scheduler) or --vm --vm-kernel cfs (the host's sysdig, CFS)"
        ))),
    }
}

/// What `doctor` says of sysdig on this machine.
pub fn doctor_line() -> Result<String, String> {
    match why_not_here() {
        None => Ok("can capture here (its driver is loaded or at hand)".into()),
        Some(reason) => Err(format!(
            "not here: {reason}; runs in the sched-ext-7 guest (--vm) and the cfs guest (--vm \
             --vm-kernel cfs)"
        )),
    }
}

/// sysdig's counters, from the summary `sysdig -v` prints when it stops.
fn parse_summary(text: &str) -> Option<(u64, u64)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(key))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
    };
    Some((value("Driver Events:")?, value("Driver Drops:")?))
}

/// One record of `sysdig -r` as [`SysdigCollector::read_back`] asks for it.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    tid: u32,
    enter: bool,
    event: &'a str,
    /// The return value of an exit record (`<NA>` for entries).
    res: &'a str,
    /// The `name` argument (exit records of openat and unlinkat), `<NA>` otherwise.
    name: &'a str,
}

fn parse_record(line: &str) -> Option<Record<'_>> {
    let mut fields = line.splitn(5, ' ');
    let tid = fields.next()?.parse().ok()?;
    let enter = match fields.next()? {
        ">" => true,
        "<" => false,
        _ => return None,
    };
    Some(Record {
        tid,
        enter,
        event: fields.next()?,
        res: fields.next()?,
        name: fields.next().unwrap_or(""),
    })
}

/// Whether an exit record stands for one call: not a clone's child side (which returns 0).
fn counts_exit(record: &Record<'_>) -> bool {
    !(record.event.starts_with("clone") || record.event.ends_with("fork")) || record.res != "0"
}

/// The calling thread's id.
fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

pub struct SysdigCollector {
    /// `sysdig -w`; `None` once stopped.
    child: Option<Child>,
    pid: u32,
    capture: PathBuf,
    output: PathBuf,
    work_dir: PathBuf,
    traced: BTreeSet<u32>,
    /// We loaded the driver, so we unload it.
    loaded_module: bool,
    version: String,
    /// The start mark's path and the thread that opened it.
    mark: Option<(PathBuf, u32)>,
    /// `(event, name)` of the attack's openat/unlinkat exits naming a file in the work dir.
    named: Vec<(String, String)>,
    summary: Option<(u64, u64)>,
}

impl SysdigCollector {
    pub fn start(setup: &CollectorSetup<'_>) -> Result<Self> {
        let binary = find_program("sysdig").context("sysdig is not installed")?;
        let mut syscalls: BTreeSet<c_long> = CANARY.iter().copied().collect();
        match setup.flood {
            Some(flood) => syscalls.extend(flood.syscalls()),
            None => syscalls.extend(RECORDED.iter().map(|(nr, _)| *nr)),
        }
        let traced = syscalls
            .into_iter()
            .filter(|nr| RECORDED.iter().any(|(known, _)| known == nr))
            .map(|nr| nr as u32)
            .collect();
        let mut collector = SysdigCollector {
            child: None,
            pid: 0,
            capture: setup.work_dir.join("sysdig.scap"),
            output: setup.work_dir.join("sysdig.out"),
            work_dir: setup.work_dir.to_path_buf(),
            traced,
            loaded_module: false,
            version: version(&binary),
            mark: None,
            named: Vec::new(),
            summary: None,
        };
        collector.load_driver()?;
        let output = std::fs::File::create(&collector.output)
            .with_context(|| format!("creating {}", collector.output.display()))?;
        let child = Command::new(&binary)
            .arg("-v")
            .arg("-w")
            .arg(&collector.capture)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        collector.pid = child.id();
        collector.child = Some(child);
        collector.wait_until_capturing()?;
        Ok(collector)
    }

    fn load_driver(&mut self) -> Result<()> {
        if Path::new("/dev/scap0").exists() {
            return Ok(());
        }
        let file = std::fs::File::open(GUEST_MODULE)
            .with_context(|| format!("opening sysdig's driver {GUEST_MODULE}"))?;
        nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty())
            .with_context(|| format!("loading sysdig's driver {GUEST_MODULE}"))?;
        self.loaded_module = true;
        // devtmpfs creates the devices as the module registers them.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !Path::new("/dev/scap0").exists() {
            if Instant::now() > deadline {
                bail!("sysdig's driver loaded but /dev/scap0 did not appear");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn unload_driver(&mut self) -> Result<()> {
        if self.loaded_module {
            nix::kmod::delete_module(c"scap", nix::kmod::DeleteModuleFlags::O_NONBLOCK)
                .with_context(|| format!("unloading sysdig's driver ({MODULE_NAME})"))?;
            self.loaded_module = false;
        }
        Ok(())
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(&self.output)
            .map(|text| text.trim().lines().last().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// sysdig captures once it holds every `/dev/scap*` and has written its file's header.
    fn wait_until_capturing(&mut self) -> Result<()> {
        let devices = std::fs::read_dir("/dev")?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("scap"))
            .count();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                bail!(
                    "sysdig exited ({status}) before capturing: {}",
                    self.messages()
                );
            }
            let open = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
                .map(|fds| {
                    fds.flatten()
                        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                        .filter(|target| target.to_string_lossy().starts_with("/dev/scap"))
                        .count()
                })
                .unwrap_or(0);
            let written = std::fs::metadata(&self.capture).map_or(0, |m| m.len());
            if open >= devices && written > 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "sysdig did not start capturing within {READY_TIMEOUT:?} ({open} of \
                     {devices} devices open, {written} bytes written): {}",
                    self.messages()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// sysdig stops reading at SIGINT and whatever its driver still buffers is discarded
    /// without being counted as dropped, so it is only stopped once it has caught up: it then
    /// sleeps between polls of the buffers (little CPU) and writes little. Stopping too early
    /// cannot go unnoticed: the attack's events left unread would be missing beyond the
    /// driver's drops, which fails the trial.
    fn wait_until_drained(&self) -> Result<()> {
        const QUIET_SAMPLES: u32 = 3;
        const SAMPLE: Duration = Duration::from_millis(250);
        let sample = || -> Result<(f64, u64)> {
            let (user, system) = super::auditd::cpu_seconds(self.pid)?;
            Ok((
                user + system,
                std::fs::metadata(&self.capture).map_or(0, |m| m.len()),
            ))
        };
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut last = sample()?;
        let mut quiet = 0;
        while quiet < QUIET_SAMPLES {
            if Instant::now() > deadline {
                bail!("sysdig did not catch up with its driver's buffers within {DRAIN_TIMEOUT:?}");
            }
            std::thread::sleep(SAMPLE);
            let now = sample()?;
            let busy = (now.0 - last.0) / SAMPLE.as_secs_f64();
            let written = now.1.saturating_sub(last.1);
            quiet = if busy < 0.25 && written < 256 << 10 {
                quiet + 1
            } else {
                0
            };
            last = now;
        }
        Ok(())
    }

    /// Reads the capture back: the attack's entry records of the traced syscalls, by syscall,
    /// and the attack's openat/unlinkat exits that name a file in the work directory.
    fn read_back(&mut self, attack_tids: &BTreeSet<u32>) -> Result<BTreeMap<u32, u64>> {
        let (mark, mark_tid) = self
            .mark
            .clone()
            .context("the attack never joined its cgroup")?;
        let names: Vec<&str> = self
            .traced
            .iter()
            .filter_map(|nr| RECORDED.iter().find(|(k, _)| *k as u32 == *nr))
            .map(|(_, name)| *name)
            .collect();
        let filter = format!(
            "evt.type in ({}) or (evt.dir=< and evt.type in (openat, unlinkat) and \
             evt.arg.name contains \"{}\")",
            names.join(", "),
            self.work_dir.display()
        );
        let mut child = Command::new(find_program("sysdig").context("sysdig is not installed")?)
            .arg("-r")
            .arg(&self.capture)
            // `*`: print every record, also those without a `name` argument (sysdig skips a
            // record one of whose fields it cannot fill, otherwise).
            .args([
                "-p",
                "*%thread.tid %evt.dir %evt.type %evt.rawres %evt.arg.name",
            ])
            .arg(&filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting sysdig -r")?;
        let stdout = child.stdout.take().context("sysdig -r has no stdout")?;
        let mark_name = mark.to_string_lossy().into_owned();
        let work_dir = self.work_dir.to_string_lossy().into_owned();
        let mut marked = false;
        let (mut entries, mut exits) = (BTreeMap::new(), BTreeMap::<u32, u64>::new());
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading sysdig -r")?;
            let Some(record) = parse_record(&line) else {
                continue;
            };
            if !marked {
                marked = record.tid == mark_tid && !record.enter && record.name == mark_name;
                continue;
            }
            if !attack_tids.contains(&record.tid) {
                continue;
            }
            let nr = RECORDED.iter().find(|(_, n)| *n == record.event);
            match (record.enter, nr) {
                (true, Some((nr, _))) => *entries.entry(*nr as u32).or_insert(0u64) += 1,
                (false, Some((nr, _))) if counts_exit(&record) => {
                    *exits.entry(*nr as u32).or_default() += 1
                }
                _ => {}
            }
            if !record.enter && record.name.contains(&work_dir) {
                self.named
                    .push((record.event.to_string(), record.name.to_string()));
            }
        }
        let out = child.wait_with_output().context("waiting for sysdig -r")?;
        if !out.status.success() {
            bail!(
                "sysdig -r {} failed ({}): {}",
                self.capture.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if !marked {
            bail!(
                "the start mark ({mark_name}, thread {mark_tid}) is not in sysdig's capture: the \
                 attack's records cannot be told from the rest"
            );
        }
        // Entries where sysdig records them, exits where it records only those.
        for (nr, count) in entries {
            exits.insert(nr, count);
        }
        Ok(exits)
    }
}

/// `received/generated` per traced syscall, for an account that does not add up.
pub(super) fn by_syscall(
    traced: &BTreeSet<u32>,
    received: &BTreeMap<u32, u64>,
    truth: &BTreeMap<u32, u64>,
) -> String {
    let parts: Vec<String> = traced
        .iter()
        .map(|nr| {
            format!(
                "{} {}/{}",
                crate::syscalls::name(*nr),
                received.get(nr).copied().unwrap_or(0),
                truth.get(nr).copied().unwrap_or(0)
            )
        })
        .collect();
    format!("received/generated: {}", parts.join(", "))
}

impl RunningCollector for SysdigCollector {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn traced_syscalls(&self) -> BTreeSet<u32> {
        self.traced.clone()
    }

    fn needs_attack_pid(&self) -> bool {
        true
    }

    /// The worker holds at its gate: the start mark goes in now.
    fn attack_joined(&mut self, _pid: u32) -> Result<()> {
        let mark = self
            .work_dir
            .join(format!("sysdig-start-{:016x}", rand::random::<u64>()));
        // It does not exist: the failed open is the mark.
        let _ = std::fs::File::open(&mark);
        self.mark = Some((mark, gettid()));
        Ok(())
    }

    fn stop(&mut self) -> Result<CollectorStats> {
        self.wait_until_drained()?;
        let child = self.child.take().context("sysdig was already stopped")?;
        // SIGINT: sysdig flushes its capture and prints its driver's counters.
        let Exited {
            code,
            cpu_user_s,
            cpu_system_s,
        } = interrupt_and_reap(child, EXIT_TIMEOUT, "sysdig")?;
        self.unload_driver()?;
        if code != 0 {
            bail!("sysdig failed (exit status {code}): {}", self.messages());
        }
        let text = std::fs::read_to_string(&self.output)
            .with_context(|| format!("reading {}", self.output.display()))?;
        self.summary = Some(parse_summary(&text).with_context(|| {
            format!(
                "sysdig printed no Driver Events/Drops summary (see {})",
                self.output.display()
            )
        })?);
        Ok(CollectorStats {
            cpu_user_s,
            cpu_system_s,
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
        let (n_evts, n_drops) = self.summary.context("sysdig has not stopped")?;
        crate::say!(
            "  sysdig: reading back its capture ({:.1} MB, {n_evts} events)",
            stats.log_bytes as f64 / 1e6
        );
        let started = Instant::now();
        let received = self.read_back(attack_tids)?;
        let readback_s = started.elapsed().as_secs_f64();
        let generated: u64 = self
            .traced
            .iter()
            .map(|nr| truth.get(nr).copied().unwrap_or(0))
            .sum();
        stats.received = received.values().sum();
        // More received than generated fails the account step, by syscall.
        let missed = generated.saturating_sub(stats.received);
        if missed > n_drops {
            bail!(
                "accounting does not add up: sysdig's capture lacks {missed} of the attack's \
                 {generated} events but its driver dropped only {n_drops} events on the whole \
                 machine: the attack's records were not matched, not lost ({})",
                by_syscall(&self.traced, &received, truth)
            );
        }
        stats.received_by_syscall = received;
        stats.dropped = missed;
        stats.sysdig = Some(SysdigOutcome {
            n_evts,
            n_drops,
            attack_missed: missed,
            readback_s,
        });
        Ok(())
    }

    fn find_canary(&self, canary: &Path) -> Result<CanarySeen> {
        let canary = canary.to_string_lossy();
        let seen = |event: &str| self.named.iter().any(|(e, n)| e == event && *n == *canary);
        Ok(CanarySeen {
            created: seen("openat"),
            unlinked: seen("unlinkat"),
        })
    }

    fn log_path(&self) -> PathBuf {
        self.capture.clone()
    }

    fn version(&self) -> Option<String> {
        Some(self.version.clone())
    }
}

impl Drop for SysdigCollector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(err) = self.unload_driver() {
            crate::say!("warning: {err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_driver_counters_sysdig_prints() {
        let text = "Driver Events:321912\nDriver Drops:17\nSuppressed by Comm:0\n\
                    Elapsed time: 5.453, Captured Events: 303338, 55632.49 eps\n";
        assert_eq!(parse_summary(text), Some((321912, 17)));
        assert_eq!(parse_summary("Elapsed time: 1.0\n"), None);
    }

    #[test]
    fn reads_records_as_asked_for() {
        assert_eq!(
            parse_record("812 > openat <NA> <NA>"),
            Some(Record {
                tid: 812,
                enter: true,
                event: "openat",
                res: "<NA>",
                name: "<NA>"
            })
        );
        assert_eq!(
            parse_record("9 < unlinkat -2 /tmp/a b"),
            Some(Record {
                tid: 9,
                enter: false,
                event: "unlinkat",
                res: "-2",
                name: "/tmp/a b"
            })
        );
        assert_eq!(parse_record("x > openat <NA>"), None);
        assert_eq!(parse_record("1 ? openat <NA>"), None);
        assert_eq!(parse_record("1 > openat"), None);
    }

    #[test]
    fn counts_a_clone_once() {
        let exit = |event, res| Record {
            tid: 1,
            enter: false,
            event,
            res,
            name: "<NA>",
        };
        assert!(counts_exit(&exit("clone", "812")));
        assert!(!counts_exit(&exit("clone", "0")));
        assert!(!counts_exit(&exit("clone3", "0")));
        assert!(counts_exit(&exit("openat", "0")));
    }

    #[test]
    fn traces_only_what_sysdig_names() {
        for (nr, name) in RECORDED {
            assert_eq!(crate::syscalls::name(*nr as u32), *name);
        }
    }
}
