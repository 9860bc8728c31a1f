//! Adaptive attackers: floods shaped to slip past a scheduler's producer rule.
//!
//! Aegis calls a task a producer when it issues more than a threshold of syscalls per 10 ms of
//! its own CPU time, and holds producers back while the collector's ring fills. An attacker who
//! knows the rule can try three things, each an [`Evade`]:
//!
//! - `spin:US`: spin on the CPU for US microseconds between iterations (no syscalls while
//!   spinning), to stay under the syscalls-per-CPU-time threshold. Sweeping US gives the
//!   evasion curve: the event rate an evader keeps at each spin, and the loss it causes.
//! - `spread:N`: run the flood in short-lived processes of N iterations each, so no task lives
//!   long enough to be judged (a new task has no history).
//! - `hogs:N`: N extra threads in the attack's cgroup spin without syscalls for the whole
//!   flood: ordinary-level load that competes for the CPUs the collector needs.
//!
//! Every syscall an evader issues (the spread's `clone`, `wait4` and `exit_group` too) is
//! tallied like the flood's, so ground truth still adds up exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most any evader parameter may be: spins past 0.1 s or more than this many processes'
/// iterations or hog threads are typos, not attacks.
pub const MAX_SPIN_US: u32 = 100_000;
pub const MAX_SPREAD_ITERATIONS: u32 = 1_000_000;
pub const MAX_HOGS: u32 = 1024;

/// How the flood evades (see the module docs); `None` floods as fast as it can. Ordered as the
/// variants are declared, then by their number.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum Evade {
    #[default]
    None,
    /// Spin this many microseconds between iterations.
    Spin { us: u32 },
    /// Flood in child processes of this many iterations each.
    Spread { iterations: u32 },
    /// This many CPU-spinning threads beside the flood.
    Hogs { threads: u32 },
}

impl Evade {
    pub fn is_none(&self) -> bool {
        *self == Evade::None
    }
}

impl fmt::Display for Evade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evade::None => f.write_str("none"),
            Evade::Spin { us } => write!(f, "spin:{us}"),
            Evade::Spread { iterations } => write!(f, "spread:{iterations}"),
            Evade::Hogs { threads } => write!(f, "hogs:{threads}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--evade {0}")]
pub struct BadEvade(String);

impl FromStr for Evade {
    type Err = BadEvade;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "none" {
            return Ok(Evade::None);
        }
        let usage = "choose none, spin:US (1 to 100000), spread:N (1 to 1000000) or hogs:N \
                     (1 to 1024), e.g. --evade spin:200";
        let Some((kind, value)) = text.split_once(':') else {
            return Err(BadEvade(format!("'{text}' is not an evader; {usage}")));
        };
        let number = |max: u32| {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| BadEvade(format!("'{text}': {value} is out of range; {usage}")))
        };
        match kind {
            "spin" => Ok(Evade::Spin {
                us: number(MAX_SPIN_US)?,
            }),
            "spread" => Ok(Evade::Spread {
                iterations: number(MAX_SPREAD_ITERATIONS)?,
            }),
            "hogs" => Ok(Evade::Hogs {
                threads: number(MAX_HOGS)?,
            }),
            _ => Err(BadEvade(format!("'{text}' is not an evader; {usage}"))),
        }
    }
}

/// The attack's name in trial ids and tables: the flood's, with the evader after a `+`
/// (`openat+spin:200`); `none` or no evader names the plain flood.
pub fn attack_name(flood: &str, evade: Option<&str>) -> String {
    match evade.filter(|evade| *evade != "none") {
        Some(evade) => format!("{flood}+{evade}"),
        None => flood.to_string(),
    }
}

impl TryFrom<String> for Evade {
    type Error = BadEvade;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Evade> for String {
    fn from(evade: Evade) -> String {
        evade.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaders_round_trip_and_bad_ones_name_the_fix() {
        for text in ["none", "spin:200", "spread:16", "hogs:4"] {
            let evade: Evade = text.parse().unwrap();
            assert_eq!(evade.to_string(), text);
            let json = serde_json::to_string(&evade).unwrap();
            assert_eq!(serde_json::from_str::<Evade>(&json).unwrap(), evade);
        }
        for bad in ["spin", "spin:0", "spin:100001", "spread:x", "hide:3", ""] {
            let err = bad.parse::<Evade>().unwrap_err().to_string();
            assert!(err.contains("e.g. --evade spin:200"), "{bad}: {err}");
        }
    }
}
