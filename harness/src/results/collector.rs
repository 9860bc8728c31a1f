//! What a collector reports about itself once drained.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::scope::{Tally, TraceGroup};

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
    /// Records decoded and written to the log (under `--trace-scope all`, the attack's: every
    /// group's are in `by_group`).
    pub received: u64,
    pub received_by_syscall: BTreeMap<u32, u64>,
    /// Records the collector itself counted as lost (failed ring reservations; the attack's).
    pub dropped: u64,
    /// `--trace-scope all`: received and dropped by group, the attack included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_group: Option<BTreeMap<TraceGroup, Tally>>,
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
    /// Records the collector found missing on its own (sequence gaps), where it can tell: of
    /// every group it traced.
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
    pub audit: Option<AuditOutcome>,
    /// sysdig only: its driver's counters and the read-back behind `received` and `dropped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysdig: Option<SysdigOutcome>,
    /// eaudit only: its own loss figures (not per record) and the attack's missing events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eaudit: Option<EauditOutcome>,
}

impl CollectorStats {
    pub fn cpu_s(&self) -> f64 {
        self.cpu_user_s + self.cpu_system_s
    }
}

/// What sysdig's driver counted over the whole machine, and how its capture was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SysdigOutcome {
    /// `Driver Events` (`sysdig -v` at the end of the capture): events of every process,
    /// entries and exits counted apart.
    pub n_evts: u64,
    /// `Driver Drops`: events the driver dropped (buffer full), of every process.
    pub n_drops: u64,
    /// The attack's syscalls missing from the capture (`dropped`); never more than `n_drops`.
    pub attack_missed: u64,
    /// Seconds `sysdig -r` took to read the capture back.
    pub readback_s: f64,
}

/// What eAudit said of its loss, and what was missing of the attack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EauditOutcome {
    /// `-m`'s `lost`: bytes sent to its ring minus bytes received (every process).
    pub lost_bytes: u64,
    /// `-m`'s `syscalls`: the syscalls it recorded, of every process.
    pub syscalls: u64,
    /// Ring outputs that failed (each drops a whole batch of records).
    pub failed_ring_outputs: u64,
    /// The attack's syscalls missing from its log (`dropped`).
    pub attack_missed: u64,
    /// Runs of its BPF programs the kernel skipped (their `recursion_misses`, every process):
    /// events eAudit never saw and its own counters do not count. Absent in trials before
    /// it was read.
    #[serde(default)]
    pub bpf_recursion_misses: u64,
}

/// What the audit counters and the log said, behind `received` and `dropped`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditOutcome {
    pub settings: AuditSettings,
    /// Records the kernel lost during the trial (audit status `lost`, after − before).
    pub lost_records: u64,
    /// PATH records the received events announced but the log lacks (lost after their
    /// SYSCALL record was queued).
    pub path_records_missing: u64,
    /// Time tasks spent waiting for room in the backlog during the trial
    /// (`backlog_wait_time_actual`, after − before), in milliseconds.
    pub backlog_wait_actual_ms: f64,
    pub auditd_version: String,
}
