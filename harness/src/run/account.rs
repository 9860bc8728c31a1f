//! Account: the last stage of a trial, from `Disarmed` to the [`Trial`] record. A trial's
//! loss figure is believed only once two identities hold:
//! - *truth = tally*: for every syscall the attack tallied (those it can vouch for), the
//!   ground-truth count in its cgroup is exactly the attack's own count;
//! - *received + dropped = generated*: over the syscalls the collector traces (each collector
//!   says which: the built-in one a fixed list, auditd the flood's and the canary's), every
//!   event the kernel saw was either recorded or counted as dropped by the collector; and per
//!   syscall the collector never received more than happened, nor anything it does not trace.
//!   For a collector at the LSM hooks (`builtin-lsm`) the events are ground truth's count of
//!   those hooks' runs, by the syscall each ran in.
//!
//! If either fails the trial is an error, not a row.
//!
//! Under `--trace-scope all` the collector also records the workload's and the rest of the
//! machine's events, and [`account_groups`] accounts for each group: the attack's exactly as
//! above, the others within the events in flight when the shared switch was flipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use attacks::AttackReport;
use workloads::WorkloadResult;

use crate::collector::CanarySeen;
use crate::results::collector::CollectorStats;
use crate::results::scope::{GroupLoss, LossByGroup, Tally, TraceGroup};
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
    /// Ground truth's count of the LSM hooks' runs, for a collector that records those
    /// instead of syscalls.
    pub hooks: Option<&'a BTreeMap<u32, u64>>,
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
        hooks,
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
    // What the collector is measured against: syscalls, or the hook runs it records.
    let events = hooks.unwrap_or(truth);
    let generated: u64 = events
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
        let truth_count = events.get(nr).copied().unwrap_or(0);
        if *received > truth_count {
            bail!(
                "accounting does not add up: the collector received {received} {} records, more \
                 than the {truth_count} {} counted",
                syscalls::name(*nr),
                if hooks.is_some() {
                    "hook runs"
                } else {
                    "calls"
                }
            );
        }
    }
    if collector.received + collector.dropped != generated {
        bail!(
            "accounting does not add up: received {} + dropped {} = {} events, but ground truth \
             counted {generated} traced {}",
            collector.received,
            collector.dropped,
            collector.received + collector.dropped,
            if hooks.is_some() {
                "hook runs"
            } else {
                "syscalls"
            }
        );
    }
    if let Some(gaps) = collector.self_detected_lost {
        // Sequence numbers run over every group the collector traced.
        let dropped = collector
            .by_group
            .as_ref()
            .map_or(collector.dropped, |groups| {
                groups.values().map(|tally| tally.dropped).sum()
            });
        if gaps != dropped {
            bail!(
                "accounting does not add up: the collector's sequence numbers show {gaps} events \
                 missing, its drop counter says {dropped}"
            );
        }
    }
    let tallied: u64 = attack.syscalls.values().sum();
    let total_truth: u64 = truth.values().sum();
    Ok(Accounted {
        generated,
        loss_pct: crate::results::scope::loss_pct(collector.dropped, generated),
        incidental_syscalls: total_truth.saturating_sub(tallied),
    })
}

/// `--trace-scope all`: ground truth of the groups besides the attack, by syscall number.
pub struct GroupTruth {
    pub workload: BTreeMap<u32, u64>,
    pub rest: BTreeMap<u32, u64>,
    /// Possible CPUs of the machine.
    pub cpus: u64,
}

/// Flips of the shared switch in a trial: on once ground truth and the collector are both
/// attached, off before either is detached.
pub const SWITCHES: u64 = 2;

/// `--trace-scope all`'s account of each group, and the bound on their mismatch. The attack's
/// is [`account`]'s, exact. For the workload and the rest, ground truth and the collector each
/// read the shared switch once per event: they disagree only about an event whose two program
/// runs straddle a flip, at most one per CPU per flip (a CPU runs one event's programs at a
/// time), so the groups' |generated - received - dropped| add up to at most `SWITCHES * cpus`,
/// and beyond that the trial fails like the attack's would.
pub fn account_groups(
    accounted: &Accounted,
    collector: &CollectorStats,
    truth: &GroupTruth,
    traced: &BTreeSet<u32>,
    with_workload: bool,
) -> Result<(LossByGroup, u64)> {
    let Some(by_group) = &collector.by_group else {
        bail!("accounting does not add up: the collector did not count its records by group");
    };
    let tally = |group| by_group.get(&group).copied().unwrap_or_default();
    let attack_tally = Tally {
        received: collector.received,
        dropped: collector.dropped,
    };
    if tally(TraceGroup::Attack) != attack_tally {
        bail!(
            "accounting does not add up: the collector's attack group ({:?}) is not its attack \
             count ({attack_tally:?})",
            tally(TraceGroup::Attack)
        );
    }
    let generated = |counts: &BTreeMap<u32, u64>| -> u64 {
        counts
            .iter()
            .filter(|(nr, _)| traced.contains(nr))
            .map(|(_, count)| count)
            .sum()
    };
    let attack = GroupLoss::new(accounted.generated, attack_tally);
    let workload = GroupLoss::new(generated(&truth.workload), tally(TraceGroup::Workload));
    let rest = GroupLoss::new(generated(&truth.rest), tally(TraceGroup::Rest));
    if !with_workload && workload != GroupLoss::default() {
        bail!(
            "accounting does not add up: a trial without a workload counted workload events \
             ({workload:?})"
        );
    }
    let bound = SWITCHES * truth.cpus;
    let unmatched = unmatched(&[&workload, &rest]);
    if unmatched > bound {
        let (name, worst) = [("workload", &workload), ("rest", &rest)]
            .into_iter()
            .max_by_key(|(_, group)| group.unmatched_at_switch.unsigned_abs())
            .expect("two groups");
        bail!(
            "accounting does not add up: the {name} group's received {} + dropped {} = {} \
             events, but ground truth counted {} traced syscalls; {unmatched} unmatched in all \
             groups, more than the {bound} events in flight when tracing was switched on and \
             off ({SWITCHES} switches x {} CPUs)",
            worst.received,
            worst.dropped,
            worst.received + worst.dropped,
            worst.generated,
            truth.cpus
        );
    }
    let groups = [&attack, &workload, &rest];
    let total = GroupLoss::new(
        groups.iter().map(|group| group.generated).sum(),
        Tally {
            received: groups.iter().map(|group| group.received).sum(),
            dropped: groups.iter().map(|group| group.dropped).sum(),
        },
    );
    let loss = LossByGroup {
        attack,
        workload: with_workload.then_some(workload),
        rest,
        total,
    };
    Ok((loss, bound))
}

/// The groups' |generated - received - dropped|, added up.
fn unmatched(groups: &[&GroupLoss]) -> u64 {
    groups
        .iter()
        .map(|group| group.unmatched_at_switch.unsigned_abs())
        .sum()
}

/// One line per trial under `--trace-scope all`: each group's account.
fn say_groups(loss: &LossByGroup, bound: u64) {
    let line = |name: &str, group: &GroupLoss| {
        format!(
            "{name} {}/{}/{} ({:.2} %)",
            group.generated, group.received, group.dropped, group.loss_pct
        )
    };
    let mut parts = vec![line("attack", &loss.attack)];
    let mut others = vec![&loss.rest];
    if let Some(workload) = &loss.workload {
        parts.push(line("workload", workload));
        others.push(workload);
    }
    parts.push(line("rest", &loss.rest));
    parts.push(line("total", &loss.total));
    crate::say!(
        "  by group, generated/received/dropped: {}; unmatched at switch {} (bound {bound})",
        parts.join(", "),
        unmatched(&others)
    );
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
            hooks: self.hook_counts.as_ref(),
        })?;
        let groups = match &self.group_truth {
            Some(truth) => Some(account_groups(
                &accounted,
                &self.stats,
                truth,
                &self.traced,
                setup.spec.workload.is_some(),
            )?),
            None => None,
        };
        if let Some((loss, bound)) = &groups {
            say_groups(loss, *bound);
        }
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
                groups,
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
            sysdig: self.stats.sysdig.clone(),
            eaudit: self.stats.eaudit.clone(),
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
        Some(dir) => Some(copy_log(setup, log_path, dir, "")?),
        None => None,
    };
    std::fs::remove_file(log_path).ok();
    if let Some(kept) = kept {
        crate::say!("  log kept in {}", kept.display());
    }
    Ok(())
}

/// Under `--keep-logs`, copies the log of a trial whose account failed (`...-failed.log`),
/// saying where or why not; the trial fails either way.
pub(super) fn keep_failed_log(setup: &Setup<'_>, log_path: &Path) {
    let Some(dir) = &setup.plan.keep_logs else {
        return;
    };
    match copy_log(setup, log_path, dir, "-failed") {
        Ok(kept) => crate::say!("  the failed trial's log kept in {}", kept.display()),
        Err(err) => crate::say!("  the failed trial's log could not be kept: {err:#}"),
    }
}

fn copy_log(setup: &Setup<'_>, log_path: &Path, dir: &Path, suffix: &str) -> Result<PathBuf> {
    let kept = dir.join(format!(
        "trial-{}-{}{suffix}.log",
        setup.serial,
        setup.spec.collector.name()
    ));
    // Never through a link planted at that name: the log is written as root.
    let mut to = crate::files::create_fresh(&kept)?;
    let mut from = std::fs::File::open(log_path)?;
    std::io::copy(&mut from, &mut to).with_context(|| format!("keeping {}", kept.display()))?;
    Ok(kept)
}

impl Accounting {
    /// What the collector recorded of what happened, and whether it saw the canary.
    fn measured(
        accounted: &Accounted,
        canary_seen: CanarySeen,
        traced: &BTreeSet<u32>,
        stats: &CollectorStats,
        report: &AttackReport,
        groups: Option<(LossByGroup, u64)>,
    ) -> Self {
        let attack_syscalls: u64 = report.syscalls.values().sum();
        let (loss_by_group, unmatched_at_switch_bound) = groups.unzip();
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
            loss_by_group,
            unmatched_at_switch_bound,
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
            hooks: None,
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
            hooks: None,
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
            hooks: None,
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
            hooks: None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("more than the 100"), "{err}");
    }

    #[test]
    fn a_collector_at_the_lsm_hooks_is_measured_against_the_hooks_runs() {
        // 100 openat calls of which 90 opened a file (the hook ran); close reaches no hook.
        let truth = [(OPENAT, 100), (CLOSE, 100)].into_iter().collect();
        let hooks = [(OPENAT, 90)].into_iter().collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let stats = collector(&[(OPENAT, 80)], 10);
        let accounted = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT]),
            hooks: Some(&hooks),
        })
        .unwrap();
        assert_eq!(accounted.generated, 90);
        assert!((accounted.loss_pct - 100.0 / 9.0).abs() < 1e-9);
        // More records than the hook ran is an error, even below the calls made.
        let stats = collector(&[(OPENAT, 95)], 0);
        let err = account(&Measured {
            truth: &truth,
            attack: &attack,
            collector: &stats,
            traced: &traced(&[OPENAT]),
            hooks: Some(&hooks),
        })
        .unwrap_err();
        assert!(err.to_string().contains("the 90 hook runs"), "{err}");
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
            hooks: None,
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
            hooks: None,
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not trace"), "{err}");
    }

    /// A collector under `--trace-scope all`: the attack's numbers, and each group's.
    fn scoped(
        attack: (&[(u32, u64)], u64),
        workload: (u64, u64),
        rest: (u64, u64),
        gaps: Option<u64>,
    ) -> CollectorStats {
        let tally = |(received, dropped)| Tally { received, dropped };
        let mut stats = collector(attack.0, attack.1);
        stats.by_group = Some(
            [
                (TraceGroup::Attack, tally((stats.received, stats.dropped))),
                (TraceGroup::Workload, tally(workload)),
                (TraceGroup::Rest, tally(rest)),
            ]
            .into_iter()
            .collect(),
        );
        stats.self_detected_lost = gaps;
        stats
    }

    fn group_truth(workload: &[(u32, u64)], rest: &[(u32, u64)]) -> GroupTruth {
        GroupTruth {
            workload: workload.iter().copied().collect(),
            rest: rest.iter().copied().collect(),
            cpus: 2,
        }
    }

    /// `account` then `account_groups` over openat and close.
    fn account_all(
        stats: &CollectorStats,
        truth: &GroupTruth,
        with_workload: bool,
    ) -> Result<(LossByGroup, u64)> {
        let attack_truth = [(OPENAT, 100), (CLOSE, 100)].into_iter().collect();
        let attack = report(&[(OPENAT, 100), (CLOSE, 100)]);
        let traced = traced(&[OPENAT, CLOSE]);
        let accounted = account(&Measured {
            truth: &attack_truth,
            attack: &attack,
            collector: stats,
            traced: &traced,
            hooks: None,
        })?;
        account_groups(&accounted, stats, truth, &traced, with_workload)
    }

    #[test]
    fn every_group_is_accounted_and_the_total_adds_them_up() {
        let stats = scoped(
            (&[(OPENAT, 60), (CLOSE, 90)], 50),
            (300, 100),
            (7, 3),
            Some(153),
        );
        // Ground truth's untraced syscalls (futex) are not generated events.
        let truth = group_truth(&[(OPENAT, 200), (CLOSE, 200), (FUTEX, 9)], &[(CLOSE, 10)]);
        let (loss, bound) = account_all(&stats, &truth, true).unwrap();
        assert_eq!(bound, 4);
        assert_eq!(
            (
                loss.attack.generated,
                loss.attack.dropped,
                loss.attack.loss_pct
            ),
            (200, 50, 25.0)
        );
        let workload = loss.workload.unwrap();
        assert_eq!((workload.generated, workload.received), (400, 300));
        assert_eq!(workload.loss_pct, 25.0);
        assert_eq!((loss.rest.generated, loss.rest.dropped), (10, 3));
        assert_eq!(
            (
                loss.total.generated,
                loss.total.received,
                loss.total.dropped
            ),
            (610, 457, 153)
        );
        assert_eq!(loss.total.unmatched_at_switch, 0);
    }

    #[test]
    fn events_in_flight_at_a_switch_are_allowed_up_to_the_bound() {
        // Two CPUs, two switches: four events may straddle one, in any groups and directions.
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (0, 0), (97, 0), None);
        let (loss, _) = account_all(&stats, &group_truth(&[], &[(OPENAT, 101)]), false).unwrap();
        assert_eq!(loss.rest.unmatched_at_switch, 4);
        assert!(loss.workload.is_none());
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (12, 0), (98, 0), None);
        let truth = group_truth(&[(OPENAT, 10)], &[(OPENAT, 100)]);
        let (loss, _) = account_all(&stats, &truth, true).unwrap();
        assert_eq!(loss.workload.unwrap().unmatched_at_switch, -2);
        assert_eq!(loss.rest.unmatched_at_switch, 2);
        // One more, and the trial fails like the attack's would.
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (12, 0), (97, 0), None);
        let err = account_all(&stats, &truth, true).unwrap_err();
        assert!(
            err.to_string()
                .contains("the rest group's received 97 + dropped 0 = 97 events, but ground truth counted 100"),
            "{err}"
        );
        assert!(err.to_string().contains("5 unmatched"), "{err}");
    }

    #[test]
    fn the_attack_stays_exact_under_trace_scope_all() {
        // One attack event missing is a failure, whatever the bound of the other groups.
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 99)], 0), (0, 0), (5, 0), None);
        let err = account_all(&stats, &group_truth(&[], &[(OPENAT, 5)]), false).unwrap_err();
        assert!(
            err.to_string().contains("received 199 + dropped 0"),
            "{err}"
        );
        // The per-group attack count must be the attack's.
        let mut stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (0, 0), (5, 0), None);
        stats.by_group.as_mut().unwrap().insert(
            TraceGroup::Attack,
            Tally {
                received: 199,
                dropped: 1,
            },
        );
        let err = account_all(&stats, &group_truth(&[], &[(OPENAT, 5)]), false).unwrap_err();
        assert!(err.to_string().contains("attack group"), "{err}");
    }

    #[test]
    fn sequence_gaps_are_checked_against_every_groups_drops() {
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (0, 0), (5, 5), Some(5));
        account_all(&stats, &group_truth(&[], &[(OPENAT, 10)]), false).unwrap();
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (0, 0), (5, 5), Some(0));
        let err = account_all(&stats, &group_truth(&[], &[(OPENAT, 10)]), false).unwrap_err();
        assert!(err.to_string().contains("drop counter says 5"), "{err}");
    }

    #[test]
    fn workload_events_without_a_workload_fail() {
        let stats = scoped((&[(OPENAT, 100), (CLOSE, 100)], 0), (3, 0), (0, 0), None);
        let err = account_all(&stats, &group_truth(&[(OPENAT, 3)], &[]), false).unwrap_err();
        assert!(err.to_string().contains("without a workload"), "{err}");
    }
}
