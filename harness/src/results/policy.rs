//! The fair-class baseline a trial applied.

use serde::{Deserialize, Serialize};

/// The policy a trial applied, as recorded in its JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedPolicy {
    /// `collector` or `attack`.
    pub policy_target: String,
    pub policy: String,
    pub policy_rt_priority: i32,
    pub policy_nice: i32,
    pub attack_cpu_quota_pct: Option<u32>,
    /// `freeze-on-fill`: the ring fill (%) at which the attack's cgroup is frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_freeze_fill_pct: Option<u32>,
}
