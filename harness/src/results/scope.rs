//! `--trace-scope`: what the built-in collectors and ground truth trace, and, under `all`, the
//! account of each group of tasks (the attack, the workload beside it, the rest of the machine).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the collector traces: the attack's cgroup only, or every task on the machine but the
/// collector itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceScope {
    #[default]
    Attack,
    All,
}

impl TraceScope {
    pub fn name(self) -> &'static str {
        match self {
            TraceScope::Attack => "attack",
            TraceScope::All => "all",
        }
    }

    pub fn is_all(self) -> bool {
        self == TraceScope::All
    }
}

impl fmt::Display for TraceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TraceScope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "attack" => Ok(TraceScope::Attack),
            "all" => Ok(TraceScope::All),
            other => Err(format!(
                "'{other}' is not a trace scope; use attack (the attack's cgroup) or all (the \
                 whole machine but the collector)"
            )),
        }
    }
}

/// Whose events: the groups of `--trace-scope all` (`enum trace_group` in `bpf/intf.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceGroup {
    Attack,
    Workload,
    Rest,
}

impl TraceGroup {
    pub const ALL: [TraceGroup; 3] = [TraceGroup::Attack, TraceGroup::Workload, TraceGroup::Rest];

    /// The group's number in the BPF programs and the records.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            TraceGroup::Attack => "attack",
            TraceGroup::Workload => "workload",
            TraceGroup::Rest => "rest",
        }
    }
}

/// What a collector received and dropped of one group's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub received: u64,
    pub dropped: u64,
}

/// One group's account, or the total's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupLoss {
    /// Ground truth over the collector's traced syscalls, for this group.
    pub generated: u64,
    pub received: u64,
    pub dropped: u64,
    pub loss_pct: f64,
    /// `generated - received - dropped`: events whose two program runs straddled a switch
    /// of the shared `armed` flag (always 0 for the attack, which is counted exactly).
    pub unmatched_at_switch: i64,
}

/// The share of `generated` events lost, in percent (0 when there were none).
pub fn loss_pct(dropped: u64, generated: u64) -> f64 {
    if generated == 0 {
        0.0
    } else {
        100.0 * dropped as f64 / generated as f64
    }
}

impl GroupLoss {
    pub fn new(generated: u64, tally: Tally) -> Self {
        GroupLoss {
            generated,
            received: tally.received,
            dropped: tally.dropped,
            loss_pct: loss_pct(tally.dropped, generated),
            unmatched_at_switch: generated as i64 - (tally.received + tally.dropped) as i64,
        }
    }
}

/// `loss_by_group`: each group present, and their total.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossByGroup {
    pub attack: GroupLoss,
    /// With `--workload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<GroupLoss>,
    pub rest: GroupLoss,
    pub total: GroupLoss,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_as_written() {
        for scope in [TraceScope::Attack, TraceScope::All] {
            assert_eq!(scope.name().parse::<TraceScope>(), Ok(scope));
            assert_eq!(
                serde_json::to_string(&scope).unwrap(),
                format!("\"{scope}\"")
            );
        }
        let err = "machine".parse::<TraceScope>().unwrap_err();
        assert!(err.contains("use attack"), "{err}");
    }

    #[test]
    fn a_group_without_events_has_no_loss() {
        let empty = GroupLoss::new(0, Tally::default());
        assert_eq!((empty.loss_pct, empty.unmatched_at_switch), (0.0, 0));
        let over = GroupLoss::new(
            3,
            Tally {
                received: 4,
                dropped: 1,
            },
        );
        assert_eq!(over.unmatched_at_switch, -2);
    }
}
