//! Rates: the events the collector delivered per second and the attack's rate (its system
//! calls per second), per scheduler, flood intensity and workload condition, over boots. Loss
//! is a ratio of the two; these show which side moved.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::boots::{over_boots, within};
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

/// Per workload condition (a column each), the groups (flood threads, with the collector when
/// it varies), and per (metric, workload, group, scheduler) the rate over boots.
#[derive(Debug, PartialEq)]
pub struct Rates {
    pub workloads: Vec<String>,
    pub groups: Vec<String>,
    pub schedulers: Vec<String>,
    pub values: BTreeMap<(usize, usize, usize, usize), Interval>,
}

pub fn rates(trials: &[Trial]) -> Result<Rates, String> {
    let collectors: BTreeSet<&str> = trials.iter().map(|t| t.id.collector.as_str()).collect();
    let group_of = |t: &Trial| {
        if collectors.len() > 1 {
            format!("x{} {}", t.id.threads, t.id.collector)
        } else {
            format!("x{}", t.id.threads)
        }
    };
    let set = |f: &dyn Fn(&Trial) -> String| -> Vec<String> {
        let s: BTreeSet<String> = trials.iter().map(f).collect();
        s.into_iter().collect()
    };
    let workloads = set(&workload_of);
    let schedulers = set(&|t| t.id.scheduler.clone());
    // Groups in thread order, then by collector.
    let mut keyed: Vec<(u32, String)> = trials
        .iter()
        .map(|t| (t.id.threads, group_of(t)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keyed.sort();
    let groups: Vec<String> = keyed.into_iter().map(|(_, g)| g).collect();
    let mut cells: BTreeMap<(usize, usize, usize), Vec<&Trial>> = BTreeMap::new();
    for t in trials {
        let w = workloads
            .iter()
            .position(|x| *x == workload_of(t))
            .unwrap_or(0);
        let g = groups.iter().position(|x| *x == group_of(t)).unwrap_or(0);
        let s = schedulers
            .iter()
            .position(|x| *x == t.id.scheduler)
            .unwrap_or(0);
        cells.entry((w, g, s)).or_default().push(t);
    }
    let mut values = BTreeMap::new();
    for ((w, g, s), trials) in &cells {
        for row in 0..METRICS.len() {
            if let Some(i) = over_boots(trials.iter().copied(), |t| metric(t, row)) {
                values.insert((row, *w, *g, *s), within(i, 0.0, f64::MAX));
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
        workloads,
        groups,
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
        "| workload | threads | scheduler | boots | delivered events/s | attack syscalls/s |\n",
    );
    report.push_str("|---|---|---|---|---|---|\n");
    let cells: BTreeSet<(usize, usize, usize)> =
        r.values.keys().map(|(_, w, g, s)| (*w, *g, *s)).collect();
    for (w, g, s) in cells {
        let at = |row| r.values.get(&(row, w, g, s));
        let n = at(0).or(at(1)).map_or(0, |i| i.n);
        writeln!(
            report,
            "| {} | {} | {} | {n} | {} | {} |",
            r.workloads[w],
            r.groups[g],
            r.schedulers[s],
            super::chart::interval_cell(at(0), 0),
            super::chart::interval_cell(at(1), 0)
        )?;
    }
    Ok(())
}

/// A row per rate, a column per workload condition, a group per intensity, a bar per
/// scheduler.
impl Figure for Rates {
    fn size_px(&self) -> (u32, u32) {
        let width = bars_width_px(
            self.workloads.len(),
            self.groups.len(),
            self.schedulers.len(),
        );
        (width, SIZE.1.max(120 + 2 * 300))
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
        let panels = body.split_evenly((METRICS.len(), columns));
        for (i, panel) in panels.iter().enumerate() {
            let (row, w) = (i / columns, i % columns);
            let caption = format!("{} · workload: {}", METRICS[row].0, self.workloads[w]);
            let bars: BTreeMap<(usize, usize), Bar> = self
                .values
                .iter()
                .filter(|((r, x, _, _), _)| *r == row && *x == w)
                .map(|((_, _, g, s), i)| ((*g, *s), Bar::of_interval(i)))
                .collect();
            if bars.is_empty() {
                draw_empty_panel(panel, &caption, "not recorded")?;
                continue;
            }
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: &caption,
                    groups: &self.groups,
                    series: &series,
                    bars: &bars,
                    x_desc: "flood threads",
                    y_desc: METRICS[row].1,
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
        assert_eq!(r.groups, ["x4", "x8"]);
        assert_eq!(r.schedulers, ["aegis", "eevdf"]);
        let eevdf = r.values[&(0, 0, 0, 1)];
        // Boot means 150 and 300.
        assert_eq!((eevdf.n, eevdf.mean), (2, 225.0));
        assert!(eevdf.ci95.unwrap().0 >= 0.0);
        assert_eq!(r.values[&(1, 0, 0, 1)].mean, 450.0);
        assert_eq!(r.values[&(0, 0, 1, 0)].ci95, None);
        assert!(rates(&[trial("eevdf", 4, 0, 0.0)]).is_err());
    }
}
