//! Provenance collectors, spawned and read the way their users run them.
//!
//! Every collector is a separate process (so scheduler policies can target its threads) that
//! is armed before the attack fires, drained when it stops, and reports what it received,
//! what it knows it dropped, its CPU time, and where its log is. Each one also says which
//! syscalls it records for the attack ([`RunningCollector::traced_syscalls`]): ground truth is
//! summed over exactly that set, so `received + dropped = generated` can be checked whatever the
//! collector chose to record. And each looks the canary up in its own log, in its own format.
//!
//! - [`builtin`]: ours, a BPF ring buffer scoped to the attack's cgroup (or, with
//!   `--trace-scope all`, the whole machine but itself), one record per event;
//!   [`compact`]: ours, eAudit-like per-CPU batches (`builtin-compact`); `builtin-lsm`: ours
//!   at the BPF-LSM hooks (the reference monitor's place), accounted against a count of the
//!   same hooks ([`CollectorKind::records_hooks`]).
//! - [`auditd`]: Debian's auditd with a private configuration, rules scoped to the attack's
//!   pid, loss from the kernel's audit `lost` counter.
//! - [`sysdig`]: Debian's sysdig capturing the whole machine (`sysdig -w`) through its
//!   kernel module, where a driver for the kernel exists (the sched-ext-7 and cfs guests);
//!   matched against the attack afterwards by the thread ids ground truth kept.
//! - [`eaudit`]: eAudit from a checkout, in a guest's Debian userland (sched-ext-7, cfs),
//!   matched against the attack by thread id like sysdig.

pub mod audit_log;
pub mod audit_state;
pub mod auditd;
pub mod builtin;
pub mod compact;
pub mod consumer;
pub mod eaudit;
pub mod external;
pub mod ring;
pub mod sysdig;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use attacks::FloodKind;

use crate::error::InputError;
pub use crate::measure::truth::SharedScope;
pub use crate::results::collector::{AuditOutcome, AuditSettings, CollectorStats};

/// The collectors this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    /// Ours: BPF ring buffer, one record per event (the "full" architecture).
    Builtin,
    /// Ours, eAudit-like: per-CPU batches, compact records, weighted wakeups.
    BuiltinCompact,
    /// Ours, at the BPF-LSM hooks: one record per hook run.
    BuiltinLsm,
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
            CollectorKind::BuiltinLsm => "builtin-lsm",
            CollectorKind::Auditd => "auditd",
            CollectorKind::Sysdig => "sysdig",
            CollectorKind::Eaudit => "eaudit",
        }
    }

    pub fn parse(name: &str) -> Result<Self, InputError> {
        match name {
            "builtin" => Ok(CollectorKind::Builtin),
            "builtin-compact" => Ok(CollectorKind::BuiltinCompact),
            "builtin-lsm" => Ok(CollectorKind::BuiltinLsm),
            "auditd" => Ok(CollectorKind::Auditd),
            "sysdig" => Ok(CollectorKind::Sysdig),
            "eaudit" => Ok(CollectorKind::Eaudit),
            other => Err(InputError(format!(
                "unknown collector '{other}'; available: builtin, builtin-compact, builtin-lsm, auditd, sysdig, \
                 eaudit"
            ))),
        }
    }

    /// Whether the collector has a BPF ring buffer whose size `--ring-size` sets.
    pub fn has_ring(self) -> bool {
        matches!(self, CollectorKind::Builtin | CollectorKind::BuiltinLsm)
    }

    /// Whether the collector can trace the whole machine with ground truth's account of it
    /// (`--trace-scope all`): only the built-in ones share ground truth's switch.
    pub fn traces_all(self) -> bool {
        matches!(self, CollectorKind::Builtin | CollectorKind::BuiltinCompact)
    }

    /// Whether the collector records every process and is matched against the attack
    /// afterwards by the thread ids ground truth kept ([`RunningCollector::match_attack`]).
    pub fn sees_whole_machine(self) -> bool {
        matches!(self, CollectorKind::Sysdig | CollectorKind::Eaudit)
    }

    /// Whether the collector records LSM hook runs, not syscalls: it is accounted against
    /// ground truth's count of the same hooks (by the syscall each ran in), while the
    /// syscall count still has to match the attack's own tally.
    pub fn records_hooks(self) -> bool {
        self == CollectorKind::BuiltinLsm
    }
}

/// The buffer between the kernel and a collector: what a trial varies per collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// A BPF ring buffer of this many bytes (the built-in collectors).
    Ring { bytes: u64 },
    /// auditd's backlog queue in the kernel.
    AuditBacklog(AuditSettings),
    /// sysdig's driver: its own per-CPU buffers, of a size the driver fixes.
    Driver { bytes_per_cpu: u64 },
    /// The collector's own default buffer (eAudit's ring, 8 MB unless `-r`).
    Default,
}

impl Buffer {
    /// The ring's size, for a collector that has one.
    pub fn ring_bytes(self) -> Option<u64> {
        match self {
            Buffer::Ring { bytes } => Some(bytes),
            Buffer::AuditBacklog(_) | Buffer::Driver { .. } | Buffer::Default => None,
        }
    }

    /// auditd's backlog settings, for auditd.
    pub fn audit(self) -> Option<AuditSettings> {
        match self {
            Buffer::AuditBacklog(settings) => Some(settings),
            Buffer::Ring { .. } | Buffer::Driver { .. } | Buffer::Default => None,
        }
    }
}

/// Where a collector should scope and store its work.
pub struct CollectorSetup<'a> {
    pub cgroup_id: u64,
    pub buffer: Buffer,
    pub work_dir: &'a Path,
    /// The flood about to run (`None` for `--cmd`).
    pub flood: Option<FloodKind>,
    /// Where a collector with a BPF ring buffer pins it, for a scheduler that reads its fill
    /// (Aegis); collectors without one ignore it.
    pub pin_ring: Option<PathBuf>,
    /// `--trace-scope all` (built-in collectors only).
    pub scope: Option<SharedScope>,
    /// `--eaudit-dir` (eaudit only).
    pub eaudit_dir: Option<&'a Path>,
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
    /// A collector that [sees the whole machine](CollectorKind::sees_whole_machine): after
    /// [`RunningCollector::stop`], finds the attack's events among its records, those of the
    /// threads `attack_tids` ground truth counted (`truth`, by syscall), and fills in
    /// `received` and `dropped`.
    fn match_attack(
        &mut self,
        _attack_tids: &BTreeSet<u32>,
        _truth: &std::collections::BTreeMap<u32, u64>,
        _stats: &mut CollectorStats,
    ) -> Result<()> {
        Ok(())
    }
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
        CollectorKind::BuiltinLsm => crate::measure::kernel::check_bpf_lsm(),
        CollectorKind::Auditd => auditd::check_available(),
        CollectorKind::Sysdig => sysdig::check_available(),
        CollectorKind::Eaudit => eaudit::check_available(eaudit_dir),
    }
}

pub fn start(kind: CollectorKind, setup: &CollectorSetup<'_>) -> Result<Box<dyn RunningCollector>> {
    match kind {
        CollectorKind::Builtin => Ok(Box::new(builtin::BuiltinCollector::start(
            setup,
            builtin::Architecture::Full,
        )?)),
        CollectorKind::BuiltinCompact => Ok(Box::new(builtin::BuiltinCollector::start(
            setup,
            builtin::Architecture::Compact,
        )?)),
        CollectorKind::BuiltinLsm => Ok(Box::new(builtin::BuiltinCollector::start(
            setup,
            builtin::Architecture::Lsm,
        )?)),
        CollectorKind::Auditd => Ok(Box::new(auditd::AuditdCollector::start(setup)?)),
        CollectorKind::Sysdig => Ok(Box::new(sysdig::SysdigCollector::start(setup)?)),
        CollectorKind::Eaudit => Ok(Box::new(eaudit::EauditCollector::start(
            setup,
            setup.eaudit_dir,
        )?)),
    }
}
