//! Provenance collectors, spawned and read the way their users run them.
//!
//! Every collector is a separate process (so scheduler policies can target its threads) that
//! is armed before the attack fires, drained when it stops, and reports what it received,
//! what it knows it dropped, its CPU time, and where its log is. Each one also says which
//! syscalls it records for the attack ([`RunningCollector::traced_syscalls`]): ground truth is
//! summed over exactly that set, so `received + dropped = generated` can be checked whatever the
//! collector chose to record. And each looks the canary up in its own log, in its own format.
//!
//! - [`builtin`]: ours, a BPF ring buffer scoped to the attack's cgroup, one record per event;
//!   [`compact`]: ours, eAudit-like per-CPU batches (`builtin-compact`).
//! - [`auditd`]: Debian's auditd with a private configuration, rules scoped to the attack's
//!   pid, loss from the kernel's audit `lost` counter.
//! - [`sysdig`], [`eaudit`]: detected, and refused with the reason where they cannot give an
//!   exact account (see their module docs).

pub mod audit_log;
pub mod audit_state;
pub mod auditd;
pub mod builtin;
pub mod compact;
pub mod consumer;
pub mod eaudit;
pub mod sysdig;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Result;
use attacks::FloodKind;
use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The collectors this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    /// Ours: BPF ring buffer, one record per event (the "full" architecture).
    Builtin,
    /// Ours, eAudit-like: per-CPU batches, compact records, weighted wakeups.
    BuiltinCompact,
    /// The Linux audit daemon.
    Auditd,
    /// sysdig, where it can capture.
    Sysdig,
    /// An external eAudit checkout.
    Eaudit,
}

impl CollectorKind {
    pub fn name(self) -> &'static str {
        match self {
            CollectorKind::Builtin => "builtin",
            CollectorKind::BuiltinCompact => "builtin-compact",
            CollectorKind::Auditd => "auditd",
            CollectorKind::Sysdig => "sysdig",
            CollectorKind::Eaudit => "eaudit",
        }
    }

    pub fn parse(name: &str) -> Result<Self, InputError> {
        match name {
            "builtin" => Ok(CollectorKind::Builtin),
            "builtin-compact" => Ok(CollectorKind::BuiltinCompact),
            "auditd" => Ok(CollectorKind::Auditd),
            "sysdig" => Ok(CollectorKind::Sysdig),
            "eaudit" => Ok(CollectorKind::Eaudit),
            other => Err(InputError(format!(
                "unknown collector '{other}'; available: builtin, builtin-compact, auditd, sysdig, eaudit"
            ))),
        }
    }

    /// Whether the collector has a BPF ring buffer whose size `--ring-size` sets.
    pub fn has_ring(self) -> bool {
        self == CollectorKind::Builtin
    }
}

/// auditd's kernel-side buffer: the backlog queue between the syscalls and kauditd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSettings {
    /// Records the kernel queues for auditd before it loses or waits (0 = unlimited).
    pub backlog_limit: u32,
    /// How long a task waits for room before its record is lost.
    pub backlog_wait_time_ms: u64,
    /// The same in the kernel's unit (jiffies), as handed to auditctl.
    pub backlog_wait_time_jiffies: u64,
}

/// What a collector knows about itself once drained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorStats {
    /// Records decoded and written to the log.
    pub received: u64,
    pub received_by_syscall: BTreeMap<u32, u64>,
    /// Records the collector itself counted as lost (failed ring reservations).
    pub dropped: u64,
    /// Records that could not be decoded (a harness bug if ever non-zero).
    pub decode_errors: u64,
    /// Times the consumer woke up and found records.
    pub wakeups: u64,
    pub cpu_user_s: f64,
    pub cpu_system_s: f64,
    /// CPU seconds from attach (`ready`) through the final drain: the consuming alone, without
    /// loading the BPF object before it and flushing the log after (built-in and compact
    /// collectors; `cpu_user_s + cpu_system_s` is the whole process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consuming_cpu_s: Option<f64>,
    /// Over the same span: times the collector gave up its CPU to sleep (getrusage
    /// ru_nvcsw), and times it was preempted (ru_nivcsw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consuming_sleeps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consuming_preemptions: Option<u64>,
    pub log_bytes: u64,
    /// Records the collector found missing on its own (sequence gaps), where it can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_detected_lost: Option<u64>,
    /// Flushes that forced a consumer wakeup (compact architecture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_wakeups: Option<u64>,
    /// Built-in collector: the age of the first record of each batch when read (the wakeup
    /// latency `aegis-bench calibrate` gives the simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeup_age_histogram: Option<scheduler::sim::LatencyHistogram>,
    /// Built-in collector: gaps over 100 us within 16 records of one batch (it stopped
    /// reading while records waited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_histogram: Option<scheduler::sim::LatencyHistogram>,
    /// auditd only: the audit details behind `received` and `dropped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<auditd::AuditOutcome>,
}

impl CollectorStats {
    pub fn cpu_s(&self) -> f64 {
        self.cpu_user_s + self.cpu_system_s
    }
}

/// Where a collector should scope and store its work.
pub struct CollectorSetup<'a> {
    pub cgroup_id: u64,
    pub ring_bytes: u64,
    pub work_dir: &'a Path,
    /// The flood about to run (`None` for `--cmd`).
    pub flood: Option<FloodKind>,
    /// auditd's backlog settings for this trial.
    pub audit: Option<AuditSettings>,
    /// Where a collector with a BPF ring buffer pins it, for a scheduler that reads its fill
    /// (Aegis); collectors without one ignore it.
    pub pin_ring: Option<PathBuf>,
}

/// Whether each half of the canary (creating and unlinking the file) is in the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CanarySeen {
    pub created: bool,
    pub unlinked: bool,
}

/// A collector that is attached and recording.
pub trait RunningCollector {
    fn pid(&self) -> u32;
    /// The bpffs path of the collector's pinned ring buffer, if it pinned one.
    fn pinned_ring(&self) -> Option<PathBuf> {
        None
    }
    /// The syscall numbers this collector records for the attack; ground truth is summed
    /// over exactly these.
    fn traced_syscalls(&self) -> BTreeSet<u32>;
    /// Whether the collector must learn the attack's pid before the flood starts
    /// ([`RunningCollector::attack_joined`]).
    fn needs_attack_pid(&self) -> bool {
        false
    }
    /// The attack worker (this pid) is in its cgroup and waits for this call to return
    /// before it floods.
    fn attack_joined(&mut self, _pid: u32) -> Result<()> {
        Ok(())
    }
    /// Drains what is buffered, stops, and returns the final statistics. Called once.
    fn stop(&mut self) -> Result<CollectorStats>;
    /// Looks the canary up in the collector's own log (after [`RunningCollector::stop`]).
    fn find_canary(&self, canary: &Path) -> Result<CanarySeen>;
    fn log_path(&self) -> PathBuf;
    /// The collector program and version, e.g. `auditd 3.0.9`.
    fn version(&self) -> Option<String> {
        None
    }
}

/// Checks, before anything is changed, that a collector can run here and give an exact
/// account; the error is one line naming the reason.
pub fn check_available(kind: CollectorKind, eaudit_dir: Option<&Path>) -> Result<(), InputError> {
    match kind {
        CollectorKind::Builtin | CollectorKind::BuiltinCompact => Ok(()),
        CollectorKind::Auditd => auditd::check_available(),
        CollectorKind::Sysdig => Err(InputError(format!(
            "collector 'sysdig' cannot be used here: {}",
            sysdig::why_unusable()
        ))),
        CollectorKind::Eaudit => Err(InputError(format!(
            "collector 'eaudit' cannot be used here: {}",
            eaudit::why_unusable(eaudit_dir)
        ))),
    }
}

pub fn start(kind: CollectorKind, setup: &CollectorSetup<'_>) -> Result<Box<dyn RunningCollector>> {
    match kind {
        CollectorKind::Builtin => Ok(Box::new(builtin::BuiltinCollector::start(setup, false)?)),
        CollectorKind::BuiltinCompact => {
            Ok(Box::new(builtin::BuiltinCollector::start(setup, true)?))
        }
        CollectorKind::Auditd => Ok(Box::new(auditd::AuditdCollector::start(setup)?)),
        CollectorKind::Sysdig | CollectorKind::Eaudit => {
            // check_available refused these before anything was armed.
            anyhow::bail!("collector '{}' cannot run here", kind.name())
        }
    }
}
