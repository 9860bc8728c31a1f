//! Run-delay CDF: how long tasks waited on a run queue (`--watch-run-delay`), a line per
//! scheduler, a panel per workload.
//!
//! A scheduler's curve is the CDF of every wait of its trials: their log-scale histograms
//! (`run_delay_waits_ns`) merged into one, so a trial counts by its waits. Results from before
//! the histograms only have each trial's quantiles: those curves average the trials' delays at
//! each fraction (each trial's curve interpolated at the fractions the others report), and
//! the report says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{figure_section, plot_err, tick, titled_with, Figure, LegendStrip, Run, Swatch, SIZE};
use crate::results::trial::Trial;

/// The panel of trials without a workload.
pub const NO_WORKLOAD: &str = "none";

/// `[fraction, ms]` points: the fraction of waits at or below `ms`.
type Curve = Vec<[f64; 2]>;

/// Beyond this many decades of delay, the x axis is logarithmic.
const LOG_AXIS_DECADES: f64 = 2.0;

/// A trial's curve as `[fraction, ms]` sorted by fraction, without impossible points.
fn clean(curve: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut points: Vec<[f64; 2]> = curve
        .iter()
        .copied()
        .filter(|[f, ms]| f.is_finite() && ms.is_finite() && (0.0..=1.0).contains(f) && *ms >= 0.0)
        .collect();
    points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    points
}

/// The delay (ms) at or below which `fraction` of the waits fell, linearly interpolated
/// between a sorted curve's points and held flat beyond its ends.
pub fn quantile_ms(curve: &[[f64; 2]], fraction: f64) -> Option<f64> {
    let first = curve.first()?;
    let last = curve.last()?;
    if fraction <= first[0] {
        return Some(first[1]);
    }
    if fraction >= last[0] {
        return Some(last[1]);
    }
    // The first point at or past the fraction; the one before it is below it.
    let i = curve.partition_point(|p| p[0] < fraction);
    let ([f0, ms0], [f1, ms1]) = (curve[i - 1], curve[i]);
    if f1 == fraction {
        return Some(ms1);
    }
    Some(ms0 + (ms1 - ms0) * (fraction - f0) / (f1 - f0))
}

/// The mean of the curves' delays at every fraction any of them reports.
pub fn pool_cdfs(curves: &[Vec<[f64; 2]>]) -> Vec<[f64; 2]> {
    let curves: Vec<Vec<[f64; 2]>> = curves
        .iter()
        .map(|c| clean(c))
        .filter(|c| !c.is_empty())
        .collect();
    if curves.is_empty() {
        return Vec::new();
    }
    let mut fractions: Vec<f64> = curves.iter().flatten().map(|p| p[0]).collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    fractions
        .into_iter()
        .map(|f| {
            let sum: f64 = curves.iter().filter_map(|c| quantile_ms(c, f)).sum();
            [f, sum / curves.len() as f64]
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct PooledCdf {
    pub trials: usize,
    /// The waits pooled from the trials' histograms; `None` when the curve averages the
    /// trials' quantiles instead (results without histograms).
    pub waits: Option<u64>,
    /// `[fraction, ms]`, sorted.
    pub points: Vec<[f64; 2]>,
}

/// The fractions a histogram's CDF is drawn at: every percent, and finer in the tail.
fn cdf_fractions() -> Vec<f64> {
    let mut fractions: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
    fractions.extend([0.001, 0.005, 0.995, 0.999, 0.9999]);
    fractions.sort_by(f64::total_cmp);
    fractions
}

/// The CDF of a histogram's waits as `[fraction, ms]` points (to bucket precision).
pub fn histogram_curve(waits: &scheduler::sim::LatencyHistogram) -> Vec<[f64; 2]> {
    if waits.is_empty() {
        return Vec::new();
    }
    cdf_fractions()
        .into_iter()
        .map(|f| [f, waits.quantile_ns(f) as f64 / 1e6])
        .collect()
}

/// One scheduler's curve in a panel: its trials' histograms merged when they have them, or
/// else their quantiles averaged.
fn pooled(trials: &[&Trial]) -> Option<PooledCdf> {
    let histograms: Vec<&scheduler::sim::LatencyHistogram> = trials
        .iter()
        .filter_map(|t| t.run_delay.run_delay_waits_ns.as_ref())
        .filter(|h| !h.is_empty())
        .collect();
    if !histograms.is_empty() {
        let all = scheduler::sim::LatencyHistogram::merged(histograms.iter().copied());
        return Some(PooledCdf {
            trials: histograms.len(),
            waits: Some(all.count()),
            points: histogram_curve(&all),
        });
    }
    let curves: Vec<Curve> = trials
        .iter()
        .filter_map(|t| t.run_delay.run_delay_cdf_ms.as_ref().map(|c| clean(c)))
        .filter(|c| !c.is_empty())
        .collect();
    (!curves.is_empty()).then(|| PooledCdf {
        trials: curves.len(),
        waits: None,
        points: pool_cdfs(&curves),
    })
}

/// Per workload (or [`NO_WORKLOAD`]) and scheduler, the pooled CDF of the trials that have one.
pub type DelayCdfs = BTreeMap<String, BTreeMap<String, PooledCdf>>;

pub fn delay_cdfs(trials: &[Trial]) -> Result<DelayCdfs, String> {
    let mut cells: BTreeMap<String, BTreeMap<String, Vec<&Trial>>> = BTreeMap::new();
    for t in trials {
        let workload = t
            .beside
            .workload
            .clone()
            .unwrap_or_else(|| NO_WORKLOAD.into());
        cells
            .entry(workload)
            .or_default()
            .entry(t.id.scheduler.clone())
            .or_default()
            .push(t);
    }
    let cdfs: DelayCdfs = cells
        .into_iter()
        .map(|(workload, by_scheduler)| {
            let curves: BTreeMap<String, PooledCdf> = by_scheduler
                .into_iter()
                .filter_map(|(s, trials)| pooled(&trials).map(|c| (s, c)))
                .collect();
            (workload, curves)
        })
        .filter(|(_, curves)| !curves.is_empty())
        .collect();
    if cdfs.is_empty() {
        return Err(
            "No run-delay CDF figure: no trial recorded its run-queue waits \
             (`--watch-run-delay`)."
                .into(),
        );
    }
    Ok(cdfs)
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-run-delay-cdf");
    let data = delay_cdfs(&run.trials);
    let Some(cdfs) = figure_section(data, run, out, &file, "run-delay CDF", report)? else {
        return Ok(());
    };
    let averaged = cdfs
        .values()
        .flat_map(|m| m.values())
        .any(|c| c.waits.is_none());
    if averaged {
        report.push_str(
            "Curves without a count of waits average the trials' quantiles: these results \
             predate the per-trial wait histograms, so a trial with few waits weighs as much as \
             one with many.\n\n",
        );
    }
    report.push_str(
        "| workload | scheduler | trials | waits | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|---|\n");
    for (workload, by_scheduler) in &cdfs {
        for (scheduler, cdf) in by_scheduler {
            let q = |f| super::cell(quantile_ms(&cdf.points, f), 3);
            writeln!(
                report,
                "| {workload} | {scheduler} | {} | {} | {} | {} | {} | {} |",
                cdf.trials,
                cdf.waits
                    .map_or_else(|| "– (quantiles averaged)".into(), |n| n.to_string()),
                q(0.5),
                q(0.9),
                q(0.99),
                super::cell(cdf.points.last().map(|p| p[1]), 3)
            )?;
        }
    }
    Ok(())
}

/// The x axis: delays as drawn (log10 of ms on a log axis) and the axis range.
struct DelayAxis {
    log: bool,
    range: (f64, f64),
}

impl DelayAxis {
    fn of(cdfs: &DelayCdfs) -> DelayAxis {
        let delays_ms = || {
            cdfs.values()
                .flat_map(|m| m.values())
                .flat_map(|c| c.points.iter().map(|p| p[1]))
        };
        let max_ms = delays_ms().fold(0.0f64, f64::max);
        let min_positive_ms = delays_ms().filter(|ms| *ms > 0.0).fold(f64::MAX, f64::min);
        if max_ms > 0.0 && max_ms / min_positive_ms > 10f64.powf(LOG_AXIS_DECADES) {
            // Whole decades, so that every label is a power of ten.
            DelayAxis {
                log: true,
                range: (min_positive_ms.log10().floor(), max_ms.log10().ceil()),
            }
        } else {
            DelayAxis {
                log: false,
                range: (0.0, if max_ms > 0.0 { max_ms * 1.05 } else { 1.0 }),
            }
        }
    }

    /// Where a delay goes; zero on a log axis goes to its left end.
    fn x(&self, ms: f64) -> f64 {
        if self.log {
            if ms > 0.0 {
                ms.log10().max(self.range.0)
            } else {
                self.range.0
            }
        } else {
            ms
        }
    }

    fn label(&self, x: f64) -> String {
        if !self.log {
            return tick(x);
        }
        // Only the decades: 0.01, 0.1, 1, 10, ...
        if (x - x.round()).abs() < 1e-9 {
            tick(10f64.powi(x.round() as i32))
        } else {
            String::new()
        }
    }
}

/// A panel per workload, a line per scheduler.
impl Figure for DelayCdfs {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled_with(
            root,
            run,
            "Run-queue waits: CDF of all waits of a scheduler's trials",
            "each curve pools every wait of the scheduler's trials, over all boots and \
             repetitions (no interval)",
        )?;
        let mut schedulers: Vec<&String> = self.values().flat_map(|m| m.keys()).collect();
        schedulers.sort();
        schedulers.dedup();
        let legend = LegendStrip::new(
            schedulers
                .iter()
                .map(|s| (s.to_string(), Swatch::Line(run.colour(s))))
                .collect(),
            SIZE.0,
        );
        let (panels, strip) = legend.split_off(&root);
        // At most three panels a row, so that none gets too narrow to read.
        let columns = self.len().clamp(1, 3);
        let rows = self.len().div_ceil(columns);
        let panels = panels.split_evenly((rows, columns));
        let axis = DelayAxis::of(self);
        let x_desc = if axis.log {
            "run delay (ms, log scale)"
        } else {
            "run delay (ms)"
        };
        let decades = (axis.range.1 - axis.range.0).round() as usize;
        for (panel, (workload, by_scheduler)) in panels.iter().zip(self) {
            let mut chart = ChartBuilder::on(panel)
                .caption(workload, ("sans-serif", 17))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(56)
                .build_cartesian_2d(axis.range.0..axis.range.1, 0.0..1.02)
                .map_err(plot_err)?;
            let x_label = |x: &f64| axis.label(*x);
            let y_label = |y: &f64| if *y <= 1.0 { tick(*y) } else { String::new() };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(x_desc)
                .y_desc("fraction of waits ≤ x")
                .axis_desc_style(("sans-serif", 15))
                .label_style(("sans-serif", 13))
                .light_line_style(WHITE)
                .x_label_formatter(&x_label)
                .y_label_formatter(&y_label);
            if axis.log {
                // A tick and a grid line on each decade, none between (they would read as decades).
                mesh.x_labels(decades + 1);
            }
            mesh.draw().map_err(plot_err)?;
            for (scheduler, cdf) in by_scheduler {
                let colour = run.colour(scheduler);
                chart
                    .draw_series(LineSeries::new(
                        cdf.points.iter().map(|[f, ms]| (axis.x(*ms), *f)),
                        colour.stroke_width(2),
                    ))
                    .map_err(plot_err)?;
            }
        }
        legend.draw(&strip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_on_one_grid_average_pointwise() {
        let a = vec![[0.5, 1.0], [0.9, 4.0], [1.0, 10.0]];
        let b = vec![[0.5, 3.0], [0.9, 8.0], [1.0, 30.0]];
        assert_eq!(
            pool_cdfs(&[a, b]),
            vec![[0.5, 2.0], [0.9, 6.0], [1.0, 20.0]]
        );
    }

    #[test]
    fn curves_on_different_grids_are_interpolated_and_held_at_their_ends() {
        // b has no point at 0.5: halfway between its 0.0 (0 ms) and 1.0 (4 ms) is 2 ms.
        let a = vec![[1.0, 6.0], [0.5, 2.0]];
        let b = vec![[0.0, 0.0], [1.0, 4.0], [f64::NAN, 1.0]];
        // a holds its first point (2 ms) below 0.5.
        assert_eq!(pool_cdfs(&[a, b]), vec![[0.0, 1.0], [0.5, 2.0], [1.0, 5.0]]);
        assert_eq!(quantile_ms(&[[0.2, 1.0], [0.6, 3.0]], 0.4), Some(2.0));
        assert_eq!(quantile_ms(&[], 0.4), None);
    }

    #[test]
    fn trials_pool_per_workload_and_scheduler() {
        let mut a = crate::results::trial::example_trial("aegis", 8, 0.0, Some(("hackbench", 0.5)));
        a.run_delay.run_delay_cdf_ms = Some(vec![[0.5, 1.0], [1.0, 2.0]]);
        let mut b = a.clone();
        b.run_delay.run_delay_cdf_ms = Some(vec![[0.5, 3.0], [1.0, 4.0]]);
        let mut c = crate::results::trial::example_trial("eevdf", 8, 0.0, None);
        c.run_delay.run_delay_cdf_ms = Some(vec![[1.0, 50.0]]);
        let cdfs = delay_cdfs(&[a, b, c]).unwrap();
        let aegis = &cdfs["hackbench"]["aegis"];
        assert_eq!((aegis.trials, aegis.waits), (2, None));
        assert_eq!(aegis.points, vec![[0.5, 2.0], [1.0, 3.0]]);
        assert_eq!(cdfs[NO_WORKLOAD]["eevdf"].points, vec![[1.0, 50.0]]);
        let axis = DelayAxis::of(&cdfs);
        assert!(!axis.log, "2 to 50 ms is under two decades");
        assert!(
            delay_cdfs(&[crate::results::trial::example_trial("eevdf", 8, 0.0, None)]).is_err()
        );
    }

    #[test]
    fn the_pooled_cdf_counts_every_wait_of_every_trial() {
        // One trial waited once for 1 ms, the other 99 times for 100 ms: of all waits the
        // median is 100 ms (averaging the two trials' medians would say 50.5 ms).
        let with_waits = |ns: u64, n: u64| {
            let mut t = crate::results::trial::example_trial("aegis", 8, 0.0, None);
            let mut h = scheduler::sim::LatencyHistogram::default();
            h.record_n(ns, n);
            t.run_delay.run_delay_waits_ns = Some(h);
            // The old per-trial quantiles are there too, and ignored.
            t.run_delay.run_delay_cdf_ms = Some(vec![[1.0, ns as f64 / 1e6]]);
            t
        };
        let cdfs = delay_cdfs(&[with_waits(1_000_000, 1), with_waits(100_000_000, 99)]).unwrap();
        let pooled = &cdfs[NO_WORKLOAD]["aegis"];
        assert_eq!((pooled.trials, pooled.waits), (2, Some(100)));
        let median = quantile_ms(&pooled.points, 0.5).unwrap();
        // To bucket precision (a bucket is about 9 % wide).
        assert!((92.0..=100.0).contains(&median), "{median}");
        let first = quantile_ms(&pooled.points, 0.005).unwrap();
        assert!((0.9..=1.0).contains(&first), "{first}");
    }
}
