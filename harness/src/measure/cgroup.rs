//! The attack's own cgroup v2 group: BPF filters by its id, and killing it kills everything
//! the attack started. Removed on drop, on every exit path that unwinds. A workload run beside
//! the attack gets a group of the same kind (`<serial>-workload`, see [`crate::run::workload`]).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::error::InputError;

/// Prefix of every group this harness creates, `aegis-bench-<harness pid>-<n>`.
pub const PREFIX: &str = "aegis-bench-";

/// Where cgroup v2 is mounted: `/sys/fs/cgroup/unified` on hybrid systems, `/sys/fs/cgroup` on
/// unified ones.
pub fn cgroup2_root() -> Result<PathBuf, InputError> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut roots: Vec<&str> = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            (fstype == "cgroup2").then_some(dir)
        })
        .collect();
    roots.sort_by_key(|dir| dir.len());
    roots.first().map(PathBuf::from).ok_or_else(|| {
        InputError(
            "no cgroup v2 hierarchy is mounted; the attack needs one to be counted apart: \
             `mount -t cgroup2 none /sys/fs/cgroup/unified`"
                .to_string(),
        )
    })
}

pub struct AttackCgroup {
    path: PathBuf,
    id: u64,
}

impl AttackCgroup {
    pub fn create(root: &Path, serial: u32) -> Result<Self> {
        Self::create_named(root, &serial.to_string())
    }

    /// The group `aegis-bench-<harness pid>-<tag>` (a workload's group is
    /// `<serial>-workload`); stale ones are found by the same prefix and pid.
    pub fn create_named(root: &Path, tag: &str) -> Result<Self> {
        let path = root.join(format!("{PREFIX}{}-{tag}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("creating the cgroup {}", path.display()))?;
        let id = fs::metadata(&path)?.ino();
        Ok(Self { path, id })
    }

    /// The id `bpf_get_current_cgroup_id()` returns for tasks in this group.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// CPU seconds the cgroup's tasks used so far (`cpu.stat` usage_usec), if readable.
    pub fn cpu_usage_s(&self) -> Option<f64> {
        let stat = fs::read_to_string(self.path.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|line| line.strip_prefix("usage_usec "))
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .map(|usec| usec as f64 / 1e6)
    }

    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    pub fn is_empty(&self) -> bool {
        fs::read_to_string(self.procs_file())
            .map(|procs| procs.trim().is_empty())
            .unwrap_or(true)
    }

    /// Kills every task in the group and waits until it is empty.
    pub fn kill_all(&self, timeout: Duration) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        fs::write(self.path.join("cgroup.kill"), "1")
            .with_context(|| format!("killing the tasks of {}", self.path.display()))?;
        let deadline = Instant::now() + timeout;
        while !self.is_empty() {
            if Instant::now() > deadline {
                bail!(
                    "tasks of {} did not exit after SIGKILL",
                    self.path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn remove(&self) -> Result<()> {
        self.kill_all(Duration::from_secs(10))?;
        // rmdir can briefly fail with EBUSY while the last task is being reaped.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("removing {}", self.path.display()))
                }
            }
        }
    }
}

impl Drop for AttackCgroup {
    fn drop(&mut self) {
        if let Err(err) = self.remove() {
            crate::say!("warning: {err:#}");
        }
    }
}

/// Removes groups left by an earlier harness that was killed with SIGKILL (nothing else can
/// stop it from cleaning up), here and in the cgroup v1 cpu controller (`attack-quota`), and
/// the cpu controller such a run enabled on cgroup v2.
/// Returns how many were removed.
pub fn remove_stale(root: &Path) -> usize {
    let quota_groups = cpu_controller_root()
        .map(|cpu_root| remove_stale_in(&cpu_root, false))
        .unwrap_or(0);
    remove_stale_in(root, true) + quota_groups + sweep_stale_cpu_controller()
}

/// Where a run that enabled the cpu controller on cgroup v2 (`attack-quota`) names the
/// `cgroup.subtree_control` it enabled it in: `<tmp>/aegis-bench-cpu-<pid>`.
pub fn cpu_marker(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{PREFIX}cpu-{pid}"))
}

/// Disables the cpu controller a SIGKILLed run enabled; returns how many it disabled.
fn sweep_stale_cpu_controller() -> usize {
    let prefix = format!("{PREFIX}cpu-");
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(control) = fs::read_to_string(entry.path()) {
            if fs::write(control.trim(), "-cpu").is_ok() {
                swept += 1;
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    swept
}

fn remove_stale_in(root: &Path, kill: bool) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        if !kill {
            // A v1 group: its tasks died with the harness (PR_SET_PDEATHSIG).
            if fs::remove_dir(entry.path()).is_ok() {
                removed += 1;
            }
            continue;
        }
        let group = AttackCgroup {
            path: entry.path(),
            id: 0,
        };
        if group.remove().is_ok() {
            removed += 1;
        }
        std::mem::forget(group);
    }
    removed
}

/// The cpu controller's directory: cgroup v1 `/sys/fs/cgroup/cpu` where present.
pub fn cpu_controller_root() -> Option<PathBuf> {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    v1.join("cpu.cfs_quota_us")
        .exists()
        .then(|| v1.to_path_buf())
}
