//! Fairness, from the run-delay watch (`--watch-run-delay`), per scheduler over boots:
//!
//! - between groups: the share of the CPU time the attack's, the workload's and the
//!   collector's tasks got (`cpu_s_by_group`), and Jain's index across those groups,
//!   (sum x)^2 / (n sum x^2) over the groups' CPU seconds (1: equal shares; 1/n: one group
//!   took everything); a panel per workload condition;
//! - within a group: Jain's index among the workload's own tasks and among the flood's own
//!   threads, which says how evenly a group's tasks shared its time, not how the groups fared.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::boots::over_boots;
use super::chart::{bars_width_px, interval_cell};
use super::loss::workload_of;
use super::{
    draw_bar_panel, draw_empty_panel, figure_section, titled, Bar, BarPanel, Figure, Interval,
    LegendStrip, Run, SIZE,
};
use crate::results::trial::Trial;

/// The task groups, in the figure's order, and the last group of bars: Jain's index.
pub const GROUPS: [&str; 3] = ["attack", "workload", "collector"];
const JAIN_GROUP: &str = "Jain's index across groups";

/// A trial's share of the groups' CPU time for `group`, and Jain's index across the groups
/// it measured.
fn shares(t: &Trial) -> Option<(BTreeMap<&'static str, f64>, f64)> {
    let cpu = t.run_delay.cpu_s_by_group.as_ref()?;
    let values: Vec<(&'static str, f64)> = GROUPS
        .iter()
        .filter_map(|g| {
            cpu.get(*g)
                .filter(|v| v.is_finite() && **v >= 0.0)
                .map(|v| (*g, *v))
        })
        .collect();
    let total: f64 = values.iter().map(|(_, v)| v).sum();
    let squares: f64 = values.iter().map(|(_, v)| v * v).sum();
    if total <= 0.0 {
        return None;
    }
    let jain = total * total / (values.len() as f64 * squares);
    let shares = values.into_iter().map(|(g, v)| (g, v / total)).collect();
    Some((shares, jain))
}

/// Per workload condition, per scheduler: each group's share and Jain's index across them.
#[derive(Debug, PartialEq)]
pub struct CpuShares {
    pub workloads: Vec<String>,
    pub schedulers: Vec<String>,
    /// By (workload, scheduler, group: an index into [`GROUPS`], or [`GROUPS`]'s length for
    /// Jain's index).
    pub values: BTreeMap<(usize, usize, usize), Interval>,
}

pub fn cpu_shares(trials: &[Trial]) -> Result<CpuShares, String> {
    let measured: Vec<&Trial> = trials.iter().filter(|t| shares(t).is_some()).collect();
    if measured.is_empty() {
        return Err(
            "No CPU-share figure: no trial recorded its groups' CPU time \
                    (`cpu_s_by_group`, `--watch-run-delay`; results from before it lack it)."
                .into(),
        );
    }
    let set = |f: &dyn Fn(&Trial) -> String| -> Vec<String> {
        let s: BTreeSet<String> = measured.iter().map(|t| f(t)).collect();
        s.into_iter().collect()
    };
    let workloads = set(&workload_of);
    let schedulers = set(&|t| t.id.scheduler.clone());
    let mut values = BTreeMap::new();
    for (w, workload) in workloads.iter().enumerate() {
        for (s, scheduler) in schedulers.iter().enumerate() {
            let cell: Vec<&Trial> = measured
                .iter()
                .copied()
                .filter(|t| workload_of(t) == *workload && t.id.scheduler == *scheduler)
                .collect();
            for (g, group) in GROUPS.iter().enumerate() {
                let share = |t: &Trial| shares(t)?.0.get(group).copied();
                if let Some(i) = over_boots(cell.iter().copied(), share) {
                    values.insert((w, s, g), i.within(0.0, 1.0));
                }
            }
            if let Some(i) = over_boots(cell.iter().copied(), |t| Some(shares(t)?.1)) {
                values.insert((w, s, GROUPS.len()), i.within(0.0, 1.0));
            }
        }
    }
    Ok(CpuShares {
        workloads,
        schedulers,
        values,
    })
}

pub(super) fn shares_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-cpu-shares");
    let data = cpu_shares(&run.trials);
    let alt = "CPU shares of the groups and Jain's index across them";
    let Some(c) = figure_section(data, run, out, &file, alt, report)? else {
        return Ok(());
    };
    report.push_str(
        "| workload | scheduler | boots | attack share | workload share | collector share \
         | Jain's index across groups |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|\n");
    for (w, workload) in c.workloads.iter().enumerate() {
        for (s, scheduler) in c.schedulers.iter().enumerate() {
            let at = |g| c.values.get(&(w, s, g));
            let Some(jain) = at(GROUPS.len()) else {
                continue;
            };
            writeln!(
                report,
                "| {workload} | {scheduler} | {} | {} | {} | {} | {} |",
                jain.n,
                interval_cell(at(0), 3),
                interval_cell(at(1), 3),
                interval_cell(at(2), 3),
                interval_cell(Some(jain), 3)
            )?;
        }
    }
    Ok(())
}

/// A panel per workload condition: a group of bars per task group's share, and one for Jain's
/// index across the groups; a bar per scheduler.
impl Figure for CpuShares {
    fn size_px(&self) -> (u32, u32) {
        let width = bars_width_px(
            self.workloads.len(),
            GROUPS.len() + 1,
            self.schedulers.len(),
        );
        (width, SIZE.1)
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(
            root,
            run,
            "CPU shares of the attack, the workload and the collector, and fairness between them",
        )?;
        let series = run.series(&self.schedulers);
        let legend = LegendStrip::of_bars_in(&series, root.dim_in_pixel().0);
        let (body, strip) = legend.split_off(&root);
        let panels = body.split_evenly((1, self.workloads.len().max(1)));
        let mut groups: Vec<String> = GROUPS.iter().map(|g| format!("{g} share")).collect();
        groups.push(JAIN_GROUP.into());
        for (w, (panel, workload)) in panels.iter().zip(&self.workloads).enumerate() {
            let bars: BTreeMap<(usize, usize), Bar> = self
                .values
                .iter()
                .filter(|((x, _, _), _)| *x == w)
                .map(|((_, s, g), i)| ((*g, *s), Bar::of_interval(i)))
                .collect();
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: &format!("workload: {workload}"),
                    groups: &groups,
                    series: &series,
                    bars: &bars,
                    x_desc: "",
                    y_desc: "share of the groups' CPU time; Jain's index",
                    y_top: 1.04,
                    reference: None,
                },
            )?;
        }
        legend.draw(&strip)
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Fairness {
    /// By scheduler.
    pub workload: BTreeMap<String, Interval>,
    pub attack: BTreeMap<String, Interval>,
}

/// Per scheduler, the index over boots of its trials that measured it.
fn by_scheduler(
    trials: &[Trial],
    index: impl Fn(&Trial) -> Option<f64> + Copy,
) -> BTreeMap<String, Interval> {
    let schedulers: BTreeSet<&str> = trials.iter().map(|t| t.id.scheduler.as_str()).collect();
    schedulers
        .into_iter()
        .filter_map(|s| {
            let of_s = trials.iter().filter(|t| t.id.scheduler == s);
            let i = over_boots(of_s, index)?;
            Some((s.to_string(), i.within(0.0, 1.0)))
        })
        .collect()
}

pub fn fairness(trials: &[Trial]) -> Result<Fairness, String> {
    let f = Fairness {
        workload: by_scheduler(trials, |t| t.run_delay.fairness_workload_jain),
        attack: by_scheduler(trials, |t| t.run_delay.fairness_attack_jain),
    };
    if f.workload.is_empty() && f.attack.is_empty() {
        return Err(
            "No within-group fairness figure: no trial measured Jain's index \
             (`--watch-run-delay`)."
                .into(),
        );
    }
    Ok(f)
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-fairness");
    let data = fairness(&run.trials);
    let alt = "fairness within a group";
    let Some(f) = figure_section(data, run, out, &file, alt, report)? else {
        return Ok(());
    };
    report.push_str(
        "Jain's index within a group: how evenly a group's own tasks shared its CPU time \
         (not how the groups fared against each other, which the CPU shares compare).\n\n",
    );
    report.push_str("| tasks | scheduler | boots | Jain's index within the group |\n");
    report.push_str("|---|---|---|---|\n");
    for (tasks, series) in [("workload", &f.workload), ("attack", &f.attack)] {
        for (scheduler, i) in series {
            writeln!(
                report,
                "| {tasks} | {scheduler} | {} | {} |",
                i.n,
                i.display(3)
            )?;
        }
    }
    Ok(())
}

/// A panel each for the workload's tasks and the flood's threads, a bar per scheduler.
impl Figure for Fairness {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let title = "Fairness within a group: Jain's index among a group's own tasks";
        let root = titled(root, run, title)?;
        // One slot per scheduler in both panels, so a scheduler sits in the same place in each.
        let schedulers: BTreeSet<&String> =
            self.workload.keys().chain(self.attack.keys()).collect();
        let series = run.series(schedulers.iter().copied());
        let legend = LegendStrip::of_bars(&series);
        let (panels, strip) = legend.split_off(&root);
        let panels = panels.split_evenly((1, 2));
        for (panel, (title, values)) in panels.iter().zip([
            ("within the workload's tasks", &self.workload),
            ("within the flood's threads", &self.attack),
        ]) {
            if values.is_empty() {
                draw_empty_panel(panel, title, "no trial measured it")?;
                continue;
            }
            let bars: BTreeMap<(usize, usize), Bar> = values
                .iter()
                .map(|(s, i)| {
                    let slot = schedulers.iter().position(|x| *x == s).unwrap_or(0);
                    ((0, slot), Bar::of_interval(i))
                })
                .collect();
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: title,
                    groups: &[String::new()],
                    series: &series,
                    bars: &bars,
                    x_desc: "scheduler",
                    y_desc: "Jain's index within the group",
                    // A little above 1 so that bars at 1 and their whiskers show.
                    y_top: 1.04,
                    reference: None,
                },
            )?;
        }
        legend.draw(&strip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_index_folds_per_scheduler_over_boots() {
        let mut a = crate::results::trial::example_trial("aegis", 8, 0.0, None);
        a.run_delay.fairness_workload_jain = Some(0.9);
        a.run_delay.fairness_attack_jain = Some(0.5);
        let mut b = a.clone();
        b.id.boot = 1;
        b.run_delay.fairness_workload_jain = Some(0.7);
        b.run_delay.fairness_attack_jain = None;
        let none = crate::results::trial::example_trial("eevdf", 8, 0.0, None);
        let f = fairness(&[a, b, none.clone()]).unwrap();
        let w = f.workload["aegis"];
        assert!((w.mean - 0.8).abs() < 1e-12 && w.n == 2);
        let (low, high) = w.ci95.unwrap();
        assert!(low >= 0.0 && high <= 1.0, "cut to Jain's range: {w:?}");
        assert_eq!(f.attack["aegis"].n, 1);
        assert!(!f.workload.contains_key("eevdf"));
        assert!(fairness(&[none]).is_err());
    }

    #[test]
    fn shares_and_jain_across_groups_come_from_the_groups_cpu_time() {
        let with_cpu = |scheduler: &str, attack: f64, workload: f64, collector: f64| {
            let mut t = crate::results::trial::example_trial(scheduler, 8, 0.0, Some(("w", 0.5)));
            t.run_delay.cpu_s_by_group = Some(BTreeMap::from([
                ("attack".to_string(), attack),
                ("workload".to_string(), workload),
                ("collector".to_string(), collector),
            ]));
            t
        };
        let trials = [
            // Equal shares: Jain 1.
            with_cpu("eevdf", 1.0, 1.0, 1.0),
            // The attack takes everything: Jain 1/3.
            with_cpu("aegis", 2.0, 0.0, 0.0),
            crate::results::trial::example_trial("scx_rustland", 8, 0.0, None),
        ];
        let c = cpu_shares(&trials).unwrap();
        assert_eq!(c.workloads, ["w"]);
        assert_eq!(c.schedulers, ["aegis", "eevdf"]);
        let (aegis, eevdf) = (0, 1);
        assert_eq!(c.values[&(0, aegis, 0)].mean, 1.0);
        assert!((c.values[&(0, aegis, GROUPS.len())].mean - 1.0 / 3.0).abs() < 1e-12);
        assert!((c.values[&(0, eevdf, 2)].mean - 1.0 / 3.0).abs() < 1e-12);
        assert!((c.values[&(0, eevdf, GROUPS.len())].mean - 1.0).abs() < 1e-12);
        assert!(cpu_shares(&trials[2..]).is_err());
    }
}
