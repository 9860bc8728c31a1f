//! The account step's identities: a trial's loss figure is believed only once they hold.
//!
//! - *truth = tally*: for every syscall the attack tallied (those it can vouch for), the
//!   ground-truth count in its cgroup is exactly the attack's own count;
//! - *received + dropped = generated*: over the syscalls the collector traces (each collector
//!   says which: the built-in one a fixed list, auditd the flood's and the canary's), every
//!   event the kernel saw was either recorded or counted as dropped by the collector; and per
//!   syscall the collector never received more than happened, nor anything it does not trace.
//!
//! If either fails the trial is an error, not a row.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use attacks::AttackReport;

use crate::results::collector::CollectorStats;
use crate::syscalls;

/// The inputs of [`account`].
pub struct Measured<'a> {
    pub truth: &'a BTreeMap<u32, u64>,
    pub attack: &'a AttackReport,
    pub collector: &'a CollectorStats,
    /// The syscalls the collector records for the attack.
    pub traced: &'a BTreeSet<u32>,
}

/// The numbers [`account`] derives once the identities hold.
#[derive(Debug, PartialEq)]
pub struct Accounted {
    pub generated: u64,
    pub loss_pct: f64,
    pub incidental_syscalls: u64,
}

pub fn account(measured: &Measured<'_>) -> Result<Accounted> {
    let Measured {
        truth,
        attack,
        collector,
        traced,
    } = measured;
    if collector.decode_errors > 0 {
        bail!(
            "accounting does not add up: the collector could not decode {} records",
            collector.decode_errors
        );
    }
    let exact: Vec<u32> = match &attack.exact_syscalls {
        None => attack.syscalls.keys().copied().collect(),
        Some(list) => list.clone(),
    };
    for nr in &exact {
        let truth_count = truth.get(nr).copied().unwrap_or(0);
        let attack_count = attack.syscalls.get(nr).copied().unwrap_or(0);
        if truth_count != attack_count {
            bail!(
                "accounting does not add up: ground truth saw {truth_count} {} calls in the attack's \
                 cgroup, the attack made {attack_count}",
                syscalls::name(*nr)
            );
        }
    }
    let generated: u64 = truth
        .iter()
        .filter(|(nr, _)| traced.contains(nr))
        .map(|(_, count)| count)
        .sum();
    for (nr, received) in &collector.received_by_syscall {
        if !traced.contains(nr) {
            bail!(
                "accounting does not add up: the collector received {received} {} records, a \
                 syscall it does not trace",
                syscalls::name(*nr)
            );
        }
        let truth_count = truth.get(nr).copied().unwrap_or(0);
        if *received > truth_count {
            bail!(
                "accounting does not add up: the collector received {received} {} records, more \
                 than the {truth_count} calls made",
                syscalls::name(*nr)
            );
        }
    }
    if collector.received + collector.dropped != generated {
        bail!(
            "accounting does not add up: received {} + dropped {} = {} events, but ground truth \
             counted {generated} traced syscalls",
            collector.received,
            collector.dropped,
            collector.received + collector.dropped
        );
    }
    if let Some(gaps) = collector.self_detected_lost {
        if gaps != collector.dropped {
            bail!(
                "accounting does not add up: the collector's sequence numbers show {gaps} events \
                 missing, its drop counter says {}",
                collector.dropped
            );
        }
    }
    let tallied: u64 = attack.syscalls.values().sum();
    let total_truth: u64 = truth.values().sum();
    let loss_pct = if generated == 0 {
        0.0
    } else {
        100.0 * collector.dropped as f64 / generated as f64
    };
    Ok(Accounted {
        generated,
        loss_pct,
        incidental_syscalls: total_truth.saturating_sub(tallied),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAT: u32 = libc::SYS_openat as u32;
    const CLOSE: u32 = libc::SYS_close as u32;
    const FUTEX: u32 = libc::SYS_futex as u32;

    fn report(syscalls: &[(u32, u64)]) -> AttackReport {
        AttackReport {
            flood: Some(attacks::FloodKind::Openat),
            threads: 1,
            syscalls: syscalls.iter().copied().collect(),
            exact_syscalls: None,
            iterations: 0,
            per_thread_iterations: vec![],
            start_ns: 0,
            end_ns: 1,
            canary: None,
            cmd_exit_code: None,
        }
    }

    fn collector(received: &[(u32, u64)], dropped: u64) -> CollectorStats {
        CollectorStats {
            received: received.iter().map(|(_, c)| c).sum(),
            received_by_syscall: received.iter().copied().collect(),
            dropped,
            ..CollectorStats::default()
        }
    }

    #[test]
    fn exact_accounting_gives_loss() {
        let truth = [(OPENAT, 100), (CLOSE, 100), (FUTEX, 7)]
            .into_iter()
            .collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let stats = collector(&[(OPENAT, 60), (CLOSE, 90)], 50);
        let accounted = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT, CLOSE]),
        })
        .unwrap();
        assert_eq!(accounted.generated, 200);
        assert_eq!(accounted.loss_pct, 25.0);
        assert_eq!(accounted.incidental_syscalls, 7);
    }

    #[test]
    fn truth_disagreeing_with_the_attack_fails() {
        let truth = [(OPENAT, 99), (CLOSE, 100)].into_iter().collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let stats = collector(&[(OPENAT, 99), (CLOSE, 100)], 0);
        let err = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT, CLOSE]),
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("ground truth saw 99 openat"),
            "{err}"
        );
    }

    #[test]
    fn events_unaccounted_for_fail() {
        let truth = [(OPENAT, 100), (CLOSE, 100)].into_iter().collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let stats = collector(&[(OPENAT, 100), (CLOSE, 90)], 5);
        let err = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT, CLOSE]),
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("received 190 + dropped 5"),
            "{err}"
        );
    }

    #[test]
    fn receiving_more_than_happened_fails() {
        let truth = [(OPENAT, 100), (CLOSE, 100)].into_iter().collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let stats = collector(&[(OPENAT, 110), (CLOSE, 90)], 0);
        let err = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT, CLOSE]),
        })
        .unwrap_err();
        assert!(err.to_string().contains("more than the 100"), "{err}");
    }

    fn traced(nrs: &[u32]) -> BTreeSet<u32> {
        nrs.iter().copied().collect()
    }

    #[test]
    fn generated_sums_truth_over_the_collectors_own_set() {
        let truth = [(OPENAT, 100), (CLOSE, 100)].into_iter().collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let stats = collector(&[(OPENAT, 100)], 0);
        let accounted = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT]),
        })
        .unwrap();
        assert_eq!(accounted.generated, 100);
        // A record of a syscall the collector says it does not trace is an error.
        let stats = collector(&[(OPENAT, 100), (CLOSE, 1)], 0);
        let err = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT]),
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not trace"), "{err}");
    }
}
