//! Spawns the built-in collector (`aegis-bench collect`) as its own process, in one of its
//! three architectures.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{CanarySeen, CollectorSetup, CollectorStats, RunningCollector};
use crate::syscalls;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and how the built-in collector records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// `builtin`: one record per syscall, at raw_syscalls/sys_enter.
    Full,
    /// `builtin-compact`: per-CPU batches of compact records.
    Compact,
    /// `builtin-lsm`: one record per run of a BPF-LSM hook.
    Lsm,
}

pub struct BuiltinCollector {
    child: Option<Child>,
    architecture: Architecture,
    log: PathBuf,
    stats: PathBuf,
    pin_ring: Option<PathBuf>,
}

/// Common set-up for helper processes: own process group (a terminal's Ctrl-C reaches only the
/// harness, which stops them in order) and death with the harness, whatever kills it.
pub fn helper_command(args: &[&std::ffi::OsStr]) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the aegis-bench binary")?;
    Ok(external_helper_command(exe, args))
}

/// [`helper_command`] for another program (a collector such as auditd).
pub fn external_helper_command(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[&std::ffi::OsStr],
) -> Command {
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

impl BuiltinCollector {
    /// Starts `aegis-bench collect` in `architecture`.
    pub fn start(setup: &CollectorSetup<'_>, architecture: Architecture) -> Result<Self> {
        let log = setup.work_dir.join("provenance.log");
        let stats = setup.work_dir.join("collector-stats.json");
        let cgroup_id = setup.cgroup_id.to_string();
        let ring = setup
            .buffer
            .ring_bytes()
            .context("the built-in collector needs a ring size")?
            .to_string();
        let mut args: Vec<&std::ffi::OsStr> = vec!["collect".as_ref()];
        match architecture {
            Architecture::Full => {}
            Architecture::Compact => args.push("--compact".as_ref()),
            Architecture::Lsm => args.push("--lsm".as_ref()),
        }
        if let Some(pin) = &setup.pin_ring {
            args.push("--pin-ring".as_ref());
            args.push(pin.as_os_str());
        }
        let scope_ids = setup.scope.map(|scope| {
            [
                scope.state_map_id.to_string(),
                scope.groups_map_id.to_string(),
            ]
        });
        if let Some([state, groups]) = &scope_ids {
            args.push("--scope-state-map-id".as_ref());
            args.push(state.as_ref());
            args.push("--scope-groups-map-id".as_ref());
            args.push(groups.as_ref());
        }
        let mut child = helper_command(
            &[
                args.as_slice(),
                &[
                    "--cgroup-id".as_ref(),
                    cgroup_id.as_ref(),
                    "--ring-bytes".as_ref(),
                    ring.as_ref(),
                    "--log".as_ref(),
                    log.as_os_str(),
                    "--stats".as_ref(),
                    stats.as_os_str(),
                ],
            ]
            .concat(),
        )?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the built-in collector")?;

        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.trim() == "ready" {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut collector = BuiltinCollector {
            child: Some(child),
            architecture,
            log,
            stats,
            pin_ring: setup.pin_ring.clone(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            crate::signals::check()?;
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return Ok(collector),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    let status = collector.child.as_mut().unwrap().try_wait()?;
                    bail!(
                        "the built-in collector did not attach ({})",
                        status.map_or("timed out".to_string(), |s| s.to_string())
                    );
                }
            }
        }
    }
}

impl RunningCollector for BuiltinCollector {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |child| child.id())
    }

    fn pinned_ring(&self) -> Option<PathBuf> {
        self.pin_ring.clone().filter(|path| path.exists())
    }

    fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    fn traced_syscalls(&self) -> BTreeSet<u32> {
        match self.architecture {
            Architecture::Lsm => syscalls::REACHING_LSM_HOOKS
                .iter()
                .map(|nr| *nr as u32)
                .chain([syscalls::LSM_NO_SYSCALL])
                .collect(),
            Architecture::Full | Architecture::Compact => {
                syscalls::TRACED.iter().map(|t| t.nr as u32).collect()
            }
        }
    }

    fn find_canary(&self, canary: &Path) -> Result<CanarySeen> {
        match self.architecture {
            // A hook is handed the kernel's object, not the caller's string: a file's record
            // names the file, not the path it was reached by. The canary's name is unique.
            Architecture::Lsm => {
                let name = canary.file_name().map(|name| name.as_encoded_bytes());
                find_canary_by(&self.log, |path| path.is_some() && path == name)
            }
            Architecture::Full | Architecture::Compact => find_canary(&self.log, canary),
        }
    }

    fn stop(&mut self) -> Result<CollectorStats> {
        // Any early return leaves the child to Drop, which kills and reaps it.
        let child = self
            .child
            .as_mut()
            .context("the built-in collector was already stopped")?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("the built-in collector did not finish draining within {DRAIN_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.child = None;
        if !status.success() {
            bail!("the built-in collector failed ({status})");
        }
        let text = std::fs::read_to_string(&self.stats)
            .with_context(|| format!("reading {}", self.stats.display()))?;
        serde_json::from_str(&text).context("parsing the collector's statistics")
    }
}

impl Drop for BuiltinCollector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Looks the canary up in a provenance log written by the built-in collector.
pub fn find_canary(log: &Path, canary: &Path) -> Result<CanarySeen> {
    let wanted = canary.as_os_str().as_encoded_bytes();
    find_canary_by(log, |path| path == Some(wanted))
}

/// The canary's two records in a built-in collector's log, named as `is_canary` recognizes.
fn find_canary_by(log: &Path, is_canary: impl Fn(Option<&[u8]>) -> bool) -> Result<CanarySeen> {
    let mut seen = CanarySeen::default();
    // Any architecture's log; only the attack's own records count (under --trace-scope all
    // another process could name the file too).
    crate::provlog::for_each_event(log, |event| {
        if event.group == crate::bpf_intf::GROUP_ATTACK && is_canary(event.path()) {
            seen.created |= syscalls::creates_file(event.syscall_nr);
            seen.unlinked |= syscalls::removes_file(event.syscall_nr);
        }
    })?;
    Ok(seen)
}
