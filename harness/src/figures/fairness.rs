//! Fairness: Jain's index over the CPU time of the workload's tasks and of the flood's
//! threads (`--watch-run-delay`), per scheduler, mean and range over the run's trials.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    draw_bar_panel, draw_empty_panel, figure_section, titled, Bar, BarPanel, Figure, LegendStrip,
    Run, Spread,
};
use crate::results::trial::Trial;

#[derive(Debug, Default, PartialEq)]
pub struct Fairness {
    /// By scheduler.
    pub workload: BTreeMap<String, Spread>,
    pub attack: BTreeMap<String, Spread>,
}

/// Per scheduler, the index over its trials that measured it.
fn by_scheduler(
    trials: &[Trial],
    index: impl Fn(&Trial) -> Option<f64>,
) -> BTreeMap<String, Spread> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for t in trials {
        if let Some(v) = index(t).filter(|v| v.is_finite()) {
            values.entry(t.id.scheduler.clone()).or_default().push(v);
        }
    }
    values
        .into_iter()
        .filter_map(|(s, v)| Spread::of(&v).map(|spread| (s, spread)))
        .collect()
}

pub fn fairness(trials: &[Trial]) -> Result<Fairness, String> {
    let f = Fairness {
        workload: by_scheduler(trials, |t| t.run_delay.fairness_workload_jain),
        attack: by_scheduler(trials, |t| t.run_delay.fairness_attack_jain),
    };
    if f.workload.is_empty() && f.attack.is_empty() {
        return Err(
            "No fairness figure: no trial measured Jain's index (`--watch-run-delay`).".into(),
        );
    }
    Ok(f)
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-fairness");
    let data = fairness(&run.trials);
    let Some(f) = figure_section(data, run, out, &file, "fairness", report)? else {
        return Ok(());
    };
    report.push_str("| tasks | scheduler | trials | Jain's index (mean) | min | max |\n");
    report.push_str("|---|---|---|---|---|---|\n");
    for (tasks, series) in [("workload", &f.workload), ("attack", &f.attack)] {
        for (scheduler, s) in series {
            writeln!(report, "| {tasks} | {scheduler} | {} |", s.cells(3))?;
        }
    }
    Ok(())
}

/// A panel each for the workload's tasks and the flood's threads, a bar per scheduler.
impl Figure for Fairness {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(root, run, "Fairness of CPU time among tasks")?;
        // One slot per scheduler in both panels, so a scheduler sits in the same place in each.
        let schedulers: BTreeSet<&String> =
            self.workload.keys().chain(self.attack.keys()).collect();
        let series = run.series(schedulers.iter().copied());
        let legend = LegendStrip::of_bars(&series);
        let (panels, strip) = legend.split_off(&root);
        let panels = panels.split_evenly((1, 2));
        for (panel, (title, values)) in panels.iter().zip([
            ("the workload's tasks", &self.workload),
            ("the flood's threads", &self.attack),
        ]) {
            if values.is_empty() {
                draw_empty_panel(panel, title, "no trial measured it")?;
                continue;
            }
            let bars: BTreeMap<(usize, usize), Bar> = values
                .iter()
                .map(|(s, spread)| {
                    let slot = schedulers.iter().position(|x| *x == s).unwrap_or(0);
                    ((0, slot), Bar::of_spread(spread))
                })
                .collect();
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: title,
                    groups: &[String::new()],
                    series: &series,
                    bars: &bars,
                    x_desc: "scheduler (mean; whiskers: min–max over trials)",
                    y_desc: "Jain's fairness index",
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
    fn each_index_folds_per_scheduler_over_the_trials_that_measured_it() {
        let mut a = crate::results::trial::example_trial("aegis", 8, 0.0, None);
        a.run_delay.fairness_workload_jain = Some(0.9);
        a.run_delay.fairness_attack_jain = Some(0.5);
        let mut b = a.clone();
        b.run_delay.fairness_workload_jain = Some(0.7);
        b.run_delay.fairness_attack_jain = None;
        let none = crate::results::trial::example_trial("eevdf", 8, 0.0, None);
        let f = fairness(&[a, b, none.clone()]).unwrap();
        let w = f.workload["aegis"];
        assert!((w.mean - 0.8).abs() < 1e-12 && w.min == 0.7 && w.max == 0.9 && w.n == 2);
        assert_eq!(f.attack["aegis"].n, 1);
        assert!(!f.workload.contains_key("eevdf"));
        assert!(fairness(&[none]).is_err());
    }
}
