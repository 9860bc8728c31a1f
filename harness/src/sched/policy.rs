//! Fair-class baselines: the policies a user tries before reaching for a new scheduler.
//!
//! - `collector-fifo`: every collector thread SCHED_FIFO at priority 50. Measured here it
//!   already loses ~0 %, by preempting the producers every few events at a high CPU price.
//! - `collector-nice`: collector threads at nice -20.
//! - `attack-nice`: the attack at nice 19 (set by the attack worker on itself before it joins
//!   the cgroup, so every thread it starts inherits it).
//! - `attack-quota`: the attack in a cpu-controller group capped at half the machine's CPUs
//!   (cgroup v1 `cpu.cfs_quota_us` where v2 has no cpu controller, as on this host).
//! - `freeze-on-fill`: the attack's cgroup frozen while the collector's ring is 75 % full,
//!   thawed below 50 % (back-pressure without a scheduler; [`super::freeze`]).
//!
//! Policies applied to running threads are saved first and restored afterwards, and the
//! restore is read back.

use std::fs;
use std::path::PathBuf;

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

/// A cpu-controller group capping the attack (`attack-quota`), removed on drop.
pub struct CpuQuotaGroup {
    path: PathBuf,
}

impl CpuQuotaGroup {
    pub fn create(serial: u32, quota_pct: u32) -> Result<Self> {
        let root = crate::measure::cgroup::cpu_controller_root().ok_or_else(|| {
            InputError(
                "attack-quota needs the cpu controller (cgroup v1 /sys/fs/cgroup/cpu), which this \
                 machine does not mount"
                    .into(),
            )
        })?;
        let path = root.join(format!(
            "{}{}-{serial}",
            crate::measure::cgroup::PREFIX,
            std::process::id()
        ));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let group = CpuQuotaGroup { path };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let quota_us = QUOTA_PERIOD_US * cpus * quota_pct as u64 / 100;
        fs::write(
            group.path.join("cpu.cfs_period_us"),
            QUOTA_PERIOD_US.to_string(),
        )?;
        fs::write(group.path.join("cpu.cfs_quota_us"), quota_us.to_string())
            .context("setting the attack's CPU quota")?;
        Ok(group)
    }

    /// The attack worker writes its pid here (before joining its own v2 group).
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }
}

impl Drop for CpuQuotaGroup {
    fn drop(&mut self) {
        // The attack's v2 group was emptied (cgroup.kill) before this runs.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Err(err) = fs::remove_dir(&self.path) {
            if err.kind() == std::io::ErrorKind::NotFound {
                return;
            }
            if std::time::Instant::now() > deadline {
                crate::say!("warning: could not remove {}: {err}", self.path.display());
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
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
