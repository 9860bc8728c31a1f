//! Account: the last stage of a trial, from `Disarmed` to the [`Trial`] record. A trial's
//! loss figure is believed only once two identities hold:
//! - *truth = tally*: for every syscall the attack tallied (those it can vouch for), the
//!   ground-truth count in its cgroup is exactly the attack's own count;
//! - *received + dropped = generated*: over the syscalls the collector traces (each collector
//!   says which: the built-in one a fixed list, auditd the flood's and the canary's), every
//!   event the kernel saw was either recorded or counted as dropped by the collector; and per
//!   syscall the collector never received more than happened, nor anything it does not trace.
//!
//! If either fails the trial is an error, not a row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use attacks::AttackReport;
use workloads::WorkloadResult;

use crate::collector::CanarySeen;
use crate::results::collector::CollectorStats;
use crate::results::trial::{Accounting, Environment, Trial, WorkloadOutcome};
use crate::run::workload;
use crate::syscalls;

use super::disarm::Disarmed;
use super::record::{flood_outcome, scheduler_args, trial_id};
use super::trial::Setup;

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

impl Disarmed {
    /// Checks the identities, looks for the canary in the collector's log (then kept or
    /// removed), and fills the record.
    pub(super) fn account(
        self,
        setup: &Setup<'_>,
        alone: Option<super::bench::Alone>,
    ) -> Result<Trial> {
        let accounted = account(&Measured {
            truth: &self.truth_counts,
            attack: &self.report,
            collector: &self.stats,
            traced: &self.traced,
        })?;
        // A `--cmd` program that failed did not produce what the trial claims to measure.
        if let Some(code) = self.report.cmd_exit_code.filter(|code| *code != 0) {
            anyhow::bail!(
                "the --cmd program exited with status {code}; run it by hand to see why (a \
                 program still running at --duration is stopped, which is not a failure)"
            );
        }
        // A canary the attack did not create (something was at its path) proves nothing about
        // the collector: the trial fails rather than count a record of a failed open.
        if let Some(canary) = self.report.canary.as_ref().filter(|c| !c.created) {
            anyhow::bail!(
                "the attack could not create its canary {} (something was there first)",
                canary.path
            );
        }
        let canary_seen = self.collector.find_canary(&self.canary)?;
        let collector_version = self.collector.version();
        drop(self.collector);
        keep_log(setup, &self.log_path)?;
        let workload = WorkloadOutcome::measured(
            setup.spec.workload,
            self.beside.as_ref(),
            self.report.flood_secs(),
            alone,
        )?;
        Ok(Trial {
            id: trial_id(
                setup,
                self.flood_spec.as_ref(),
                self.sched_ext_ops,
                collector_version,
            ),
            accounting: Accounting::measured(
                &accounted,
                canary_seen,
                &self.traced,
                &self.stats,
                &self.report,
            ),
            cost: self.cost,
            attack: flood_outcome(
                setup,
                self.flood_spec.as_ref(),
                &accounted,
                &self.truth_counts,
                &self.report,
            ),
            env: Environment {
                model_sha256: self
                    .scheduler_stats
                    .as_ref()
                    .and_then(|stats| stats.get("model_sha256"))
                    .and_then(|sha| sha.as_str())
                    .map(String::from),
                ..Environment::here()
            },
            policy: self.policy,
            audit: self.stats.audit.clone(),
            scheduler_stats: self.scheduler_stats,
            started_at: setup.started_at.clone(),
            beside: workload,
            run_delay: self.run_delay,
            counters: self.counters,
            scheduler_args: scheduler_args(setup),
            collector_cpu_share: self.collector_cpu_share,
        })
    }
}

/// Copies the collector's log under `--keep-logs` if asked, and removes it.
fn keep_log(setup: &Setup<'_>, log_path: &Path) -> Result<()> {
    let kept = match &setup.plan.keep_logs {
        Some(dir) => {
            let kept = dir.join(format!(
                "trial-{}-{}.log",
                setup.serial,
                setup.spec.collector.name()
            ));
            // Never through a link planted at that name: the log is written as root.
            let mut to = crate::files::create_fresh(&kept)?;
            let mut from = std::fs::File::open(log_path)?;
            std::io::copy(&mut from, &mut to)
                .with_context(|| format!("keeping {}", kept.display()))?;
            Some(kept)
        }
        None => None,
    };
    std::fs::remove_file(log_path).ok();
    if let Some(kept) = kept {
        crate::say!("  log kept in {}", kept.display());
    }
    Ok(())
}

impl Accounting {
    /// What the collector recorded of what happened, and whether it saw the canary.
    fn measured(
        accounted: &Accounted,
        canary_seen: CanarySeen,
        traced: &BTreeSet<u32>,
        stats: &CollectorStats,
        report: &AttackReport,
    ) -> Self {
        let attack_syscalls: u64 = report.syscalls.values().sum();
        Self {
            generated: accounted.generated,
            traced_syscalls: traced.iter().map(|nr| syscalls::name(*nr)).collect(),
            received: stats.received,
            dropped: stats.dropped,
            loss_pct: accounted.loss_pct,
            canary_recorded: canary_seen.created && canary_seen.unlinked,
            canary_create_recorded: canary_seen.created,
            canary_unlink_recorded: canary_seen.unlinked,
            canary_path: report.canary.as_ref().map(|c| c.path.clone()),
            attack_rate: per_flood_s(attack_syscalls, report),
            attack_syscalls,
            delivered_per_s: per_flood_s(stats.received, report),
        }
    }
}

/// `n` per second of the flood.
fn per_flood_s(n: u64, report: &AttackReport) -> f64 {
    let flood_s = report.flood_secs();
    if flood_s > 0.0 {
        n as f64 / flood_s
    } else {
        0.0
    }
}

impl WorkloadOutcome {
    /// From the workload's result beside a flood of `flood_s` seconds and its throughput
    /// alone, said on stderr too.
    fn measured(
        name: Option<&'static str>,
        beside: Option<&(WorkloadResult, f64)>,
        flood_s: f64,
        alone: Option<super::bench::Alone>,
    ) -> Result<Self> {
        let alone_per_s = alone.map(|a| a.per_s);
        let (per_s, unit) = match beside {
            Some((result, wall_s)) => {
                if let Some(warning) = workload::outlasted(&result.name, *wall_s, flood_s) {
                    crate::say!("  {warning}");
                }
                let (per_s, unit) = workload::throughput(result)?;
                (Some(per_s), Some(unit))
            }
            None => (None, None),
        };
        let kept_fraction = per_s
            .zip(alone_per_s)
            .and_then(|(beside, alone)| workload::kept_fraction(beside, alone));
        if let (Some(name), Some(per_s), Some(unit)) = (name, per_s, &unit) {
            crate::say!(
                "  {name} beside the attack: {per_s:.1} {unit}, {} of its throughput alone",
                kept_fraction.map_or("?".to_string(), |kept| format!("{kept:.2}"))
            );
        }
        Ok(Self {
            workload: name.map(String::from),
            workload_throughput_per_s: per_s,
            workload_throughput_unit: unit,
            workload_alone_throughput_per_s: name.and(alone_per_s),
            workload_kept_fraction: kept_fraction,
            workload_latency_p99_us: beside.and_then(|(result, _)| result.latency_p99_us),
            workload_alone_latency_p99_us: name.and(alone.and_then(|a| a.latency_p99_us)),
        })
    }
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
