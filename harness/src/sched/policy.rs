//! Fair-class baselines: the policies a user tries before reaching for a new scheduler.
//!
//! - `collector-fifo`: every collector thread SCHED_FIFO at priority 50. Measured here it
//!   already loses ~0 %, by preempting the producers every few events at a high CPU price.
//! - `collector-nice`: collector threads at nice -20.
//! - `attack-nice`: the attack at nice 19 (set by the attack worker on itself before it joins
//!   the cgroup, so every thread it starts inherits it).
//! - `attack-quota`: the attack in a cpu-controller group capped at half the machine's CPUs
//!   (cgroup v1 `cpu.cfs_quota_us` where v1 holds the cpu controller, as on this host; else
//!   the attack group's own `cpu.max`, as in the guests).
//! - `freeze-on-fill`: the attack's cgroup frozen while the collector's ring is 75 % full,
//!   thawed below 50 % (back-pressure without a scheduler; [`super::freeze`]).
//!
//! Policies applied to running threads are saved first and restored afterwards, and the
//! restore is read back.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::error::InputError;
pub use crate::results::policy::AppliedPolicy;

pub const COLLECTOR_FIFO_PRIORITY: i32 = 50;
pub const COLLECTOR_NICE: i32 = -20;
pub const ATTACK_NICE: i32 = 19;
/// The attack's CPU quota under `attack-quota`, in percent of all CPUs.
pub const ATTACK_QUOTA_PCT: u32 = 50;
const QUOTA_PERIOD_US: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FairVariant {
    CollectorFifo,
    CollectorNice,
    AttackNice,
    AttackQuota,
    FreezeOnFill,
}

impl FairVariant {
    pub const ALL: [FairVariant; 5] = [
        FairVariant::CollectorFifo,
        FairVariant::CollectorNice,
        FairVariant::AttackNice,
        FairVariant::AttackQuota,
        FairVariant::FreezeOnFill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FairVariant::CollectorFifo => "collector-fifo",
            FairVariant::CollectorNice => "collector-nice",
            FairVariant::AttackNice => "attack-nice",
            FairVariant::AttackQuota => "attack-quota",
            FairVariant::FreezeOnFill => "freeze-on-fill",
        }
    }

    pub fn parse(name: &str) -> Result<Self, InputError> {
        FairVariant::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| {
                InputError(format!(
                    "unknown scheduler variant '{name}'; choose collector-fifo, collector-nice, \
                     attack-nice, attack-quota or freeze-on-fill"
                ))
            })
    }

    /// What the trial records about the policy it applied.
    pub fn applied(self) -> AppliedPolicy {
        let (target, policy, rt_priority, nice, quota) = match self {
            FairVariant::CollectorFifo => {
                ("collector", "SCHED_FIFO", COLLECTOR_FIFO_PRIORITY, 0, None)
            }
            FairVariant::CollectorNice => ("collector", "SCHED_OTHER", 0, COLLECTOR_NICE, None),
            FairVariant::AttackNice => ("attack", "SCHED_OTHER", 0, ATTACK_NICE, None),
            FairVariant::AttackQuota => ("attack", "SCHED_OTHER", 0, 0, Some(ATTACK_QUOTA_PCT)),
            FairVariant::FreezeOnFill => ("attack", "SCHED_OTHER", 0, 0, None),
        };
        AppliedPolicy {
            policy_target: target.to_string(),
            policy: policy.to_string(),
            policy_rt_priority: rt_priority,
            policy_nice: nice,
            attack_cpu_quota_pct: quota,
            attack_freeze_fill_pct: (self == FairVariant::FreezeOnFill)
                .then_some(super::freeze::FREEZE_FILL_PCT),
        }
    }
}

/// One thread's scheduling settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadSched {
    pub tid: i32,
    pub policy: i32,
    pub rt_priority: i32,
    pub nice: i32,
}

pub fn read_thread(tid: i32) -> std::io::Result<ThreadSched> {
    // SAFETY: plain syscalls on a thread id with a local out-parameter.
    unsafe {
        let policy = libc::sched_getscheduler(tid);
        if policy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut param = libc::sched_param { sched_priority: 0 };
        if libc::sched_getparam(tid, &mut param) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if nice == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(ThreadSched {
            tid,
            policy: policy & !libc::SCHED_RESET_ON_FORK,
            rt_priority: param.sched_priority,
            nice,
        })
    }
}

fn write_thread(target: &ThreadSched) -> std::io::Result<()> {
    // SAFETY: plain syscalls on a thread id.
    unsafe {
        let param = libc::sched_param {
            sched_priority: target.rt_priority,
        };
        if libc::sched_setscheduler(target.tid, target.policy, &param) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if target.policy != libc::SCHED_FIFO
            && target.policy != libc::SCHED_RR
            && libc::setpriority(libc::PRIO_PROCESS, target.tid as libc::id_t, target.nice) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Thread ids of a process.
pub fn threads_of(pid: u32) -> Result<Vec<i32>> {
    let dir = format!("/proc/{pid}/task");
    let mut tids: Vec<i32> = fs::read_dir(&dir)
        .with_context(|| format!("listing {dir}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// Settings changed on a process's threads; restore with [`ChangedThreads::restore`] (also
/// attempted on drop).
pub struct ChangedThreads {
    saved: Vec<ThreadSched>,
}

impl ChangedThreads {
    /// Applies `variant` to every thread of `pid` (collector variants only).
    pub fn apply(pid: u32, variant: FairVariant) -> Result<Self> {
        let mut changed = ChangedThreads { saved: Vec::new() };
        for tid in threads_of(pid)? {
            let before =
                read_thread(tid).with_context(|| format!("reading thread {tid}'s policy"))?;
            let target = match variant {
                FairVariant::CollectorFifo => ThreadSched {
                    policy: libc::SCHED_FIFO,
                    rt_priority: COLLECTOR_FIFO_PRIORITY,
                    nice: before.nice,
                    ..before
                },
                FairVariant::CollectorNice => ThreadSched {
                    policy: libc::SCHED_OTHER,
                    rt_priority: 0,
                    nice: COLLECTOR_NICE,
                    ..before
                },
                _ => bail!("{} is not applied to running threads", variant.name()),
            };
            changed.saved.push(before);
            write_thread(&target)
                .with_context(|| format!("applying {} to thread {tid}", variant.name()))?;
        }
        Ok(changed)
    }

    /// Puts every thread back and reads the settings back. Threads that exited meanwhile are
    /// skipped. Returns how many threads were restored.
    pub fn restore(mut self) -> Result<usize> {
        let saved = std::mem::take(&mut self.saved);
        let mut restored = 0;
        for before in &saved {
            match write_thread(before) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(libc::ESRCH) => continue,
                Err(err) => return Err(err).context(format!("restoring thread {}", before.tid)),
            }
            let now = read_thread(before.tid)?;
            if now != *before {
                bail!(
                    "thread {} still has {now:?} after restoring {before:?}",
                    before.tid
                );
            }
            restored += 1;
        }
        Ok(restored)
    }
}

impl Drop for ChangedThreads {
    fn drop(&mut self) {
        for before in &self.saved {
            let _ = write_thread(before);
        }
    }
}

/// The attack's CPU cap under `attack-quota`, taken off on drop.
///
/// With cgroup v1's cpu controller (hybrid hosts) the attack worker also joins a capped group
/// there. On a unified hierarchy (the guests) the cap is the attack's own group's `cpu.max`;
/// the cpu controller is enabled in its parent's `cgroup.subtree_control` if it was not, and
/// disabled again on drop, once the attack's group is gone. A marker file names that parent
/// while it is enabled, so a run after a SIGKILL disables it
/// ([`crate::measure::cgroup::remove_stale`]).
pub enum CpuQuotaGroup {
    V1 { path: PathBuf },
    V2 { enabled_in: Option<PathBuf> },
}

fn quota_us(quota_pct: u32) -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    QUOTA_PERIOD_US * cpus * quota_pct as u64 / 100
}

impl CpuQuotaGroup {
    /// Caps the attack, whose cgroup v2 group is `attack_group`.
    pub fn create(serial: u32, quota_pct: u32, attack_group: &Path) -> Result<Self> {
        match crate::measure::cgroup::cpu_controller_root() {
            Some(root) => Self::create_v1(&root, serial, quota_pct),
            None => Self::create_v2(attack_group, quota_pct),
        }
    }

    fn create_v1(root: &Path, serial: u32, quota_pct: u32) -> Result<Self> {
        let path = root.join(format!(
            "{}{}-{serial}",
            crate::measure::cgroup::PREFIX,
            std::process::id()
        ));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let group = CpuQuotaGroup::V1 { path: path.clone() };
        fs::write(path.join("cpu.cfs_period_us"), QUOTA_PERIOD_US.to_string())?;
        fs::write(
            path.join("cpu.cfs_quota_us"),
            quota_us(quota_pct).to_string(),
        )
        .context("setting the attack's CPU quota")?;
        Ok(group)
    }

    fn create_v2(attack_group: &Path, quota_pct: u32) -> Result<Self> {
        let parent = attack_group
            .parent()
            .context("the attack's cgroup has no parent")?;
        let control = parent.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&control)
            .with_context(|| format!("reading {}", control.display()))?;
        let mut group = CpuQuotaGroup::V2 { enabled_in: None };
        if !enabled.split_whitespace().any(|c| c == "cpu") {
            let available = fs::read_to_string(parent.join("cgroup.controllers"))?;
            if !available.split_whitespace().any(|c| c == "cpu") {
                return Err(InputError(format!(
                    "attack-quota needs the cpu controller, which {} does not offer (cgroup \
                     v1 holds it, or the kernel lacks CONFIG_CFS_BANDWIDTH)",
                    parent.display()
                ))
                .into());
            }
            fs::write(
                crate::measure::cgroup::cpu_marker(std::process::id()),
                control.to_string_lossy().as_bytes(),
            )?;
            fs::write(&control, "+cpu")
                .with_context(|| format!("enabling the cpu controller in {}", control.display()))?;
            group = CpuQuotaGroup::V2 {
                enabled_in: Some(control),
            };
        }
        fs::write(
            attack_group.join("cpu.max"),
            format!("{} {QUOTA_PERIOD_US}", quota_us(quota_pct)),
        )
        .context("setting the attack's CPU quota (cpu.max)")?;
        Ok(group)
    }

    /// A cgroup the attack worker also joins (v1), written with its pid.
    pub fn procs_file(&self) -> Option<PathBuf> {
        match self {
            CpuQuotaGroup::V1 { path } => Some(path.join("cgroup.procs")),
            CpuQuotaGroup::V2 { .. } => None,
        }
    }
}

impl Drop for CpuQuotaGroup {
    fn drop(&mut self) {
        match self {
            // The attack's v2 group was emptied (cgroup.kill) before this runs.
            CpuQuotaGroup::V1 { path } => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while let Err(err) = fs::remove_dir(&*path) {
                    if err.kind() == std::io::ErrorKind::NotFound {
                        return;
                    }
                    if std::time::Instant::now() > deadline {
                        crate::say!("warning: could not remove {}: {err}", path.display());
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            // After the attack's group is removed (its cpu.max goes with it).
            CpuQuotaGroup::V2 { enabled_in } => {
                if let Some(control) = enabled_in.take() {
                    match fs::write(&control, "-cpu") {
                        Ok(()) => {
                            let _ = fs::remove_file(crate::measure::cgroup::cpu_marker(
                                std::process::id(),
                            ));
                        }
                        Err(err) => crate::say!(
                            "warning: could not disable the cpu controller in {}: {err}",
                            control.display()
                        ),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_round_trip() {
        for variant in FairVariant::ALL {
            assert_eq!(FairVariant::parse(variant.name()).unwrap(), variant);
        }
        assert!(FairVariant::parse("x").is_err());
        assert_eq!(FairVariant::CollectorFifo.applied().policy, "SCHED_FIFO");
        assert_eq!(FairVariant::AttackNice.applied().policy_nice, 19);
    }

    #[test]
    fn reads_own_thread() {
        let me = read_thread(0).unwrap();
        assert_eq!(me.policy, libc::SCHED_OTHER);
    }
}
