//! The boot as the unit of replication, for every figure: a quantity's point is the mean over
//! boots of each boot's mean, its whisker the 95 % Student-t interval over boots
//! ([`crate::stats`]); "A vs B" is the geometric mean of per-boot ratios. And the line that
//! states a run's set-up under each figure's title.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::results::trial::Trial;
use crate::stats::{boot_means, Interval};

/// Each boot's mean of `value` over the trials that have it.
pub fn by_boot<'a>(
    trials: impl IntoIterator<Item = &'a Trial>,
    value: impl Fn(&Trial) -> Option<f64>,
) -> BTreeMap<u32, f64> {
    boot_means(
        trials
            .into_iter()
            .filter_map(|t| value(t).filter(|v| v.is_finite()).map(|v| (t.id.boot, v))),
    )
}

/// The mean over boots of each boot's mean, with the t interval over boots (none for one).
pub fn over_boots<'a>(
    trials: impl IntoIterator<Item = &'a Trial>,
    value: impl Fn(&Trial) -> Option<f64>,
) -> Option<Interval> {
    let means: Vec<f64> = by_boot(trials, value).into_values().collect();
    Interval::of(&means)
}

/// How many boots the run's trials came from.
pub fn boots(trials: &[Trial]) -> usize {
    trials
        .iter()
        .map(|t| t.id.boot)
        .collect::<BTreeSet<_>>()
        .len()
}

/// What a figure's points and whiskers are, for a run of `boots` boots.
pub fn whisker_note(boots: usize) -> String {
    if boots > 1 {
        format!(
            "points: mean over {boots} boots of each boot's mean; whiskers: 95 % t interval over \
             boots"
        )
    } else {
        "n=1 boot: points are the means of its trials, with no interval".into()
    }
}

/// The hostname of the harness's QEMU guests.
const GUEST: &str = "aegis-guest";

/// The distinct values, joined by `/`.
fn distinct(values: impl IntoIterator<Item = String>) -> String {
    values
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join("/")
}

/// The run's set-up in a line, from its trials: where it ran (a QEMU guest's kernel and
/// vCPUs, or the host's), the ring size, the attack's duration, boots × repetitions.
pub fn setup_line(trials: &[Trial]) -> String {
    // Older guests recorded no host, but their hostname (vm/guest_init.sh sets it).
    let guest = trials.iter().any(|t| {
        t.env.qemu_version.is_some() || t.env.host_machine.is_some() || t.env.machine == GUEST
    });
    let kernel = distinct(trials.iter().map(|t| t.env.kernel.clone()));
    let cpus = distinct(
        trials
            .iter()
            .filter_map(|t| t.env.cpus.map(|c| c.to_string())),
    );
    let mut line = if guest {
        format!("guest kernel {kernel}")
    } else {
        format!("host kernel {kernel}")
    };
    if !cpus.is_empty() {
        let unit = if guest { "vCPUs" } else { "CPUs" };
        write!(line, ", {cpus} {unit}").ok();
    }
    // Collectors without a ring of ours (sysdig's, eAudit's buffers) record 0.
    let rings = distinct(
        trials
            .iter()
            .filter(|t| t.id.ring_size_bytes > 0)
            .map(|t| crate::size::format_size(t.id.ring_size_bytes)),
    );
    if !rings.is_empty() {
        write!(line, ", ring {rings}").ok();
    }
    let durations = distinct(trials.iter().map(|t| {
        let d = if t.attack.requested_duration_s > 0.0 {
            t.attack.requested_duration_s
        } else {
            t.attack.duration_s.round()
        };
        super::tick(d)
    }));
    write!(line, ", {durations} s attacks").ok();
    let repetitions = trials
        .iter()
        .map(|t| t.id.repetition)
        .collect::<BTreeSet<_>>()
        .len();
    let boots = boots(trials);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    write!(
        line,
        ", {} × {}",
        plural(boots, "boot"),
        plural(repetitions, "repetition")
    )
    .ok();
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    fn trial(boot: u32, loss: f64) -> Trial {
        let mut t = example_trial("eevdf", 4, loss, None);
        t.id.boot = boot;
        t
    }

    #[test]
    fn the_point_is_the_mean_of_boot_means_and_one_boot_has_no_interval() {
        // Boot 0: 10 and 30 (mean 20); boot 1: 40. Over trials the mean would be 26.7.
        let trials = [trial(0, 10.0), trial(0, 30.0), trial(1, 40.0)];
        let i = over_boots(&trials, |t| Some(t.accounting.loss_pct)).unwrap();
        assert_eq!((i.n, i.mean), (2, 30.0));
        assert!(i.ci95.is_some());
        let one = over_boots(&trials[..2], |t| Some(t.accounting.loss_pct)).unwrap();
        assert_eq!((one.n, one.mean, one.ci95), (1, 20.0, None));
        assert_eq!(over_boots(&trials, |_| None), None);
        // Cut to the quantity's range: never below 0 %.
        let cut = i.within(0.0, 100.0);
        assert!(cut.ci95.unwrap().0 >= 0.0 && i.ci95.unwrap().0 < 0.0);
    }

    #[test]
    fn the_setup_line_names_kernel_cpus_ring_duration_boots_and_repetitions() {
        let mut trials = vec![trial(0, 1.0), trial(1, 2.0), trial(2, 3.0)];
        for t in &mut trials {
            t.env.qemu_version = Some("10.0".into());
            t.env.cpus = Some(2);
        }
        trials[2].id.repetition = 1;
        assert_eq!(
            setup_line(&trials),
            "guest kernel 6.18, 2 vCPUs, ring 64KiB, 2 s attacks, 3 boots × 2 repetitions"
        );
        assert_eq!(
            setup_line(&[trial(0, 1.0)]),
            "host kernel 6.18, ring 64KiB, 2 s attacks, 1 boot × 1 repetition"
        );
        // A collector with no ring of ours (sysdig, eAudit) names none.
        let mut ringless = trial(0, 1.0);
        ringless.id.ring_size_bytes = 0;
        assert_eq!(
            setup_line(&[ringless]),
            "host kernel 6.18, 2 s attacks, 1 boot × 1 repetition"
        );
    }
}
