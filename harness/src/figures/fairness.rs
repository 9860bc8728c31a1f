//! Fairness: Jain's index over the CPU time of the workload's tasks and of the flood's
//! threads (`--watch-run-delay`), per scheduler, mean and range over the run's trials.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    draw_bar_panel, draw_both, draw_empty_panel, Bar, BarPanel, LegendStrip, Run, Spread, Swatch,
    SIZE,
};
use crate::trial::Trial;

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
            values.entry(t.scheduler.clone()).or_default().push(v);
        }
    }
    values
        .into_iter()
        .filter_map(|(s, v)| Spread::of(&v).map(|spread| (s, spread)))
        .collect()
}

pub fn fairness(trials: &[Trial]) -> Result<Fairness, String> {
    let f = Fairness {
        workload: by_scheduler(trials, |t| t.fairness_workload_jain),
        attack: by_scheduler(trials, |t| t.fairness_attack_jain),
    };
    if f.workload.is_empty() && f.attack.is_empty() {
        return Err(
            "No fairness figure: no trial measured Jain's index (`--watch-run-delay`).".into(),
        );
    }
    Ok(f)
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let f = match fairness(&run.trials) {
        Ok(f) => f,
        Err(note) => {
            writeln!(report, "\n{note}")?;
            return Ok(());
        }
    };
    let file = format!("{stem}-fairness");
    draw_both(
        out,
        &file,
        |root| draw(run, &f, root),
        |root| draw(run, &f, root),
    )?;
    writeln!(report, "\n![fairness]({file}.svg)\n")?;
    report.push_str("| tasks | scheduler | trials | Jain's index (mean) | min | max |\n");
    report.push_str("|---|---|---|---|---|---|\n");
    for (tasks, series) in [("workload", &f.workload), ("attack", &f.attack)] {
        for (scheduler, s) in series {
            writeln!(
                report,
                "| {tasks} | {scheduler} | {} | {:.3} | {:.3} | {:.3} |",
                s.n, s.mean, s.min, s.max
            )?;
        }
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(run: &Run, f: &Fairness, root: DrawingArea<DB, Shift>) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e}");
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!("Fairness of CPU time among tasks ({})", run.name),
            ("sans-serif", 22),
        )
        .map_err(err)?;
    // One slot per scheduler in both panels, so a scheduler sits in the same place in each.
    let schedulers: BTreeSet<&String> = f.workload.keys().chain(f.attack.keys()).collect();
    let series: Vec<(String, RGBColor)> = schedulers
        .iter()
        .map(|s| (s.to_string(), run.colour(s)))
        .collect();
    let legend = LegendStrip::new(
        series
            .iter()
            .map(|(s, c)| (s.clone(), Swatch::Bar(*c)))
            .collect(),
        SIZE.0,
    );
    let (panels, strip) = root.split_vertically(root.dim_in_pixel().1 - legend.height_px());
    let panels = panels.split_evenly((1, 2));
    for (panel, (title, values)) in panels.iter().zip([
        ("the workload's tasks", &f.workload),
        ("the flood's threads", &f.attack),
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
    legend.draw(&strip)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_index_folds_per_scheduler_over_the_trials_that_measured_it() {
        let mut a = crate::trial::example_trial("aegis", 8, 0.0, None);
        a.fairness_workload_jain = Some(0.9);
        a.fairness_attack_jain = Some(0.5);
        let mut b = a.clone();
        b.fairness_workload_jain = Some(0.7);
        b.fairness_attack_jain = None;
        let none = crate::trial::example_trial("eevdf", 8, 0.0, None);
        let f = fairness(&[a, b, none.clone()]).unwrap();
        let w = f.workload["aegis"];
        assert!((w.mean - 0.8).abs() < 1e-12 && w.min == 0.7 && w.max == 0.9 && w.n == 2);
        assert_eq!(f.attack["aegis"].n, 1);
        assert!(!f.workload.contains_key("eevdf"));
        assert!(fairness(&[none]).is_err());
    }
}
