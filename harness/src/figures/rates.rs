//! Rates: the events the collector delivered per second and the attack's rate (its system
//! calls per second), per scheduler, flood intensity and workload condition, over boots. Loss
//! is a ratio of the two; these show which side moved.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::boots::over_boots;
use super::chart::{bars_top, bars_width_px};
use super::loss::workload_of;
use super::{
    draw_bar_panel, draw_empty_panel, figure_section, titled, Bar, BarPanel, Figure, Interval,
    LegendStrip, Run, SIZE,
};
use crate::results::trial::Trial;

/// The two rates, in the figure's rows.
pub const METRICS: [(&str, &str); 2] = [
    ("delivered events/s", "events delivered per second"),
    ("attack rate (syscalls/s)", "attack system calls per second"),
];

fn metric(t: &Trial, row: usize) -> Option<f64> {
    let v = if row == 0 {
        t.accounting.delivered_per_s
    } else {
        t.accounting.attack_rate
    };
    // Old results without the rate hold 0: not a measurement.
    (v > 0.0).then_some(v)
}

/// A row per (rate, collector), a column per workload condition, a group per flood thread
/// count, and per (rate, collector, workload, threads, scheduler) the rate over boots.
#[derive(Debug, PartialEq)]
pub struct Rates {
    pub collectors: Vec<String>,
    pub workloads: Vec<String>,
    pub threads: Vec<u32>,
    pub schedulers: Vec<String>,
    /// By (index into [`METRICS`], collector, workload, threads, scheduler) index.
    pub values: BTreeMap<(usize, usize, usize, usize, usize), Interval>,
}

/// The sorted distinct values of `f` over the trials.
fn distinct<T: Ord>(trials: &[Trial], f: impl Fn(&Trial) -> T) -> Vec<T> {
    let set: BTreeSet<T> = trials.iter().map(f).collect();
    set.into_iter().collect()
}

pub fn rates(trials: &[Trial]) -> Result<Rates, String> {
    let collectors = distinct(trials, |t| t.id.collector.clone());
    let workloads = distinct(trials, workload_of);
    let threads = distinct(trials, |t| t.id.threads);
    let schedulers = distinct(trials, |t| t.id.scheduler.clone());
    let at = |list: &[String], x: &str| list.iter().position(|y| y == x).unwrap_or(0);
    let mut cells: BTreeMap<(usize, usize, usize, usize), Vec<&Trial>> = BTreeMap::new();
    for t in trials {
        let key = (
            at(&collectors, &t.id.collector),
            at(&workloads, &workload_of(t)),
            threads.iter().position(|x| *x == t.id.threads).unwrap_or(0),
            at(&schedulers, &t.id.scheduler),
        );
        cells.entry(key).or_default().push(t);
    }
    let mut values = BTreeMap::new();
    for ((c, w, g, s), trials) in &cells {
        for row in 0..METRICS.len() {
            if let Some(i) = over_boots(trials.iter().copied(), |t| metric(t, row)) {
                values.insert((row, *c, *w, *g, *s), i.within(0.0, f64::MAX));
            }
        }
    }
    if values.is_empty() {
        return Err(
            "No rates figure: no trial recorded its delivered events/s or attack rate \
             (results from before they were recorded)."
                .into(),
        );
    }
    Ok(Rates {
        collectors,
        workloads,
        threads,
        schedulers,
        values,
    })
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-rates");
    let data = rates(&run.trials);
    let alt = "delivered events and attack rate";
    let Some(r) = figure_section(data, run, out, &file, alt, report)? else {
        return Ok(());
    };
    report.push_str(
        "| collector | workload | threads | scheduler | boots | delivered events/s | attack \
         syscalls/s |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|\n");
    let cells: BTreeSet<(usize, usize, usize, usize)> = r
        .values
        .keys()
        .map(|(_, c, w, g, s)| (*c, *w, *g, *s))
        .collect();
    for (c, w, g, s) in cells {
        let at = |row| r.values.get(&(row, c, w, g, s));
        let n = at(0).or(at(1)).map_or(0, |i| i.n);
        writeln!(
            report,
            "| {} | {} | {} | {} | {n} | {} | {} |",
            r.collectors[c],
            r.workloads[w],
            r.threads[g],
            r.schedulers[s],
            super::chart::interval_cell(at(0), 0),
            super::chart::interval_cell(at(1), 0)
        )?;
    }
    Ok(())
}

/// A row per (rate, collector), a column per workload condition, a group per intensity, a
/// bar per scheduler.
impl Figure for Rates {
    fn size_px(&self) -> (u32, u32) {
        let width = bars_width_px(
            self.workloads.len(),
            self.threads.len(),
            self.schedulers.len(),
        );
        let rows = (METRICS.len() * self.collectors.len()) as u32;
        (width, SIZE.1.max(120 + rows * 280))
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(
            root,
            run,
            "Events delivered per second and the attack's rate",
        )?;
        let series = run.series(&self.schedulers);
        let legend = LegendStrip::of_bars_in(&series, root.dim_in_pixel().0);
        let (body, strip) = legend.split_off(&root);
        let columns = self.workloads.len().max(1);
        let rows = METRICS.len() * self.collectors.len().max(1);
        let groups: Vec<String> = self.threads.iter().map(|t| t.to_string()).collect();
        for (i, panel) in body.split_evenly((rows, columns)).iter().enumerate() {
            let (row, w) = (i / columns, i % columns);
            let (metric, c) = (row % METRICS.len(), row / METRICS.len());
            let caption = format!(
                "{} · {} · workload: {}",
                METRICS[metric].0, self.collectors[c], self.workloads[w]
            );
            let bars: BTreeMap<(usize, usize), Bar> = self
                .values
                .iter()
                .filter(|((m, x, y, _, _), _)| (*m, *x, *y) == (metric, c, w))
                .map(|((_, _, _, g, s), i)| ((*g, *s), Bar::of_interval(i)))
                .collect();
            if bars.is_empty() {
                draw_empty_panel(panel, &caption, "not recorded")?;
                continue;
            }
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: &caption,
                    groups: &groups,
                    series: &series,
                    bars: &bars,
                    x_desc: "flood threads",
                    y_desc: METRICS[metric].1,
                    y_top: bars_top(bars.values(), 1.0),
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
    fn rates_fold_over_boots_per_scheduler_intensity_and_workload() {
        let trial = |scheduler: &str, threads, boot, delivered: f64| {
            let mut t = crate::results::trial::example_trial(scheduler, threads, 0.0, None);
            t.id.boot = boot;
            t.accounting.delivered_per_s = delivered;
            t.accounting.attack_rate = 2.0 * delivered;
            t
        };
        let trials = [
            trial("eevdf", 4, 0, 100.0),
            trial("eevdf", 4, 0, 200.0),
            trial("eevdf", 4, 1, 300.0),
            trial("aegis", 8, 0, 50.0),
        ];
        let r = rates(&trials).unwrap();
        assert_eq!(r.threads, [4, 8]);
        assert_eq!(r.schedulers, ["aegis", "eevdf"]);
        let eevdf = r.values[&(0, 0, 0, 0, 1)];
        // Boot means 150 and 300.
        assert_eq!((eevdf.n, eevdf.mean), (2, 225.0));
        assert!(eevdf.ci95.unwrap().0 >= 0.0);
        assert_eq!(r.values[&(1, 0, 0, 0, 1)].mean, 450.0);
        assert_eq!(r.values[&(0, 0, 0, 1, 0)].ci95, None);
        assert!(rates(&[trial("eevdf", 4, 0, 0.0)]).is_err());
    }
}
