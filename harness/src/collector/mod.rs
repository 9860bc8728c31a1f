//! Provenance collectors, spawned and read the way their users run them.
//!
//! Every collector is a separate process (so scheduler policies can target its threads) that
//! is armed before the attack fires, drained when it stops, and reports what it received,
//! what it knows it dropped, its CPU time, and where its log is.

pub mod builtin;
pub mod compact;
pub mod consumer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The collectors this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    /// Ours: BPF ring buffer, one record per event (the "full" architecture).
    Builtin,
    /// Ours, eAudit-like: per-CPU batches, compact records, weighted wakeups.
    BuiltinCompact,
}

impl CollectorKind {
    pub fn name(self) -> &'static str {
        match self {
            CollectorKind::Builtin => "builtin",
            CollectorKind::BuiltinCompact => "builtin-compact",
        }
    }

    pub fn parse(name: &str) -> Result<Self, InputError> {
        match name {
            "builtin" => Ok(CollectorKind::Builtin),
            "builtin-compact" => Ok(CollectorKind::BuiltinCompact),
            "auditd" | "sysdig" | "eaudit" => Err(InputError(format!(
                "collector '{name}' is not built yet in this version; use --collector builtin"
            ))),
            other => Err(InputError(format!(
                "unknown collector '{other}'; available: builtin, builtin-compact"
            ))),
        }
    }
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
    pub log_bytes: u64,
    /// Records the collector found missing on its own (sequence gaps), where it can tell.
    pub self_detected_lost: Option<u64>,
    /// Flushes that forced a consumer wakeup (compact architecture).
    pub forced_wakeups: Option<u64>,
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
}

/// A collector that is attached and recording.
pub trait RunningCollector {
    fn pid(&self) -> u32;
    /// Drains what is buffered, stops, and returns the final statistics.
    fn stop(self: Box<Self>) -> Result<CollectorStats>;
    fn log_path(&self) -> PathBuf;
}

pub fn start(kind: CollectorKind, setup: &CollectorSetup<'_>) -> Result<Box<dyn RunningCollector>> {
    match kind {
        CollectorKind::Builtin => Ok(Box::new(builtin::BuiltinCollector::start(setup, false)?)),
        CollectorKind::BuiltinCompact => {
            Ok(Box::new(builtin::BuiltinCollector::start(setup, true)?))
        }
    }
}
