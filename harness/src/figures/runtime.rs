//! Normalized runtime: how long each workload took for the same work under each scheduler,
//! relative to EEVDF beside the same attack.
//!
//! The workloads run for a fixed time, so the time the same work takes is inversely
//! proportional to throughput: a trial's normalized runtime is the baseline's mean throughput
//! in the trial's cell (same run, flood, threads, collector, ring and workload) over the
//! trial's own. Bars are means over repetitions with 95 % Student t confidence intervals.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{
    cell, draw_bar_panel, figure_section, titled, Bar, BarPanel, Figure, LegendStrip, Run,
};
use crate::trial::Trial;

/// The baseline scheduler's name, in order of preference: EEVDF, or CFS in older guests.
const BASELINES: [&str; 2] = ["eevdf", "cfs"];

/// A mean with its two-sided 95 % confidence interval (Student t over the values' sample
/// standard deviation); one value has no interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    pub mean: f64,
    pub ci95: Option<(f64, f64)>,
    pub n: usize,
}

pub fn mean_ci95(values: &[f64]) -> Option<MeanCi> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let ci95 = (n > 1)
        .then(|| StudentsT::new(0.0, 1.0, (n - 1) as f64).ok())
        .flatten()
        .map(|t| {
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let half_width = t.inverse_cdf(0.975) * (variance / n as f64).sqrt();
            (mean - half_width, mean + half_width)
        });
    Some(MeanCi { mean, ci95, n })
}

/// What two trials must share to be compared: everything but the scheduler and repetition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub workload: String,
    pub flood: String,
    pub threads: u32,
    pub collector: String,
    pub ring_size_bytes: u64,
}

impl Cell {
    fn of(t: &Trial) -> Option<Cell> {
        Some(Cell {
            workload: t.workload.clone()?,
            flood: t.flood.clone(),
            threads: t.threads,
            collector: t.collector.clone(),
            ring_size_bytes: t.ring_size_bytes,
        })
    }
}

#[derive(Debug, PartialEq)]
pub struct NormalizedRuntime {
    /// `eevdf` or `cfs`.
    pub baseline: &'static str,
    /// Runtime for the same work over the baseline's, per (cell, scheduler).
    pub bars: BTreeMap<(Cell, String), MeanCi>,
    /// Trials left out: their cell has no baseline trial.
    pub without_baseline: usize,
    /// Trials left out: a workload but no measured (or a zero) throughput.
    pub without_throughput: usize,
}

/// A usable throughput: measured, finite and above zero.
fn throughput_per_s(t: &Trial) -> Option<f64> {
    t.workload_throughput_per_s
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// The run's normalized runtimes, or why there are none.
pub fn normalized_runtime(trials: &[Trial]) -> Result<NormalizedRuntime, String> {
    let with_workload: Vec<&Trial> = trials.iter().filter(|t| t.workload.is_some()).collect();
    if with_workload.is_empty() {
        return Err("No normalized runtime figure: no trial ran a workload.".into());
    }
    let Some(baseline) = BASELINES.into_iter().find(|b| {
        with_workload
            .iter()
            .any(|t| t.scheduler == *b && throughput_per_s(t).is_some())
    }) else {
        return Err(
            "No normalized runtime figure: no eevdf (or cfs) trial measured a workload's \
             throughput to normalize to."
                .into(),
        );
    };
    let mut baseline_values: BTreeMap<Cell, Vec<f64>> = BTreeMap::new();
    for t in &with_workload {
        if let (true, Some(cell), Some(v)) =
            (t.scheduler == baseline, Cell::of(t), throughput_per_s(t))
        {
            baseline_values.entry(cell).or_default().push(v);
        }
    }
    let baseline_mean: BTreeMap<&Cell, f64> = baseline_values
        .iter()
        .map(|(cell, v)| (cell, v.iter().sum::<f64>() / v.len() as f64))
        .collect();
    let mut ratios: BTreeMap<(Cell, String), Vec<f64>> = BTreeMap::new();
    let (mut without_baseline, mut without_throughput) = (0, 0);
    for t in &with_workload {
        let Some(cell) = Cell::of(t) else { continue };
        let Some(v) = throughput_per_s(t) else {
            without_throughput += 1;
            continue;
        };
        let Some(base) = baseline_mean.get(&cell) else {
            without_baseline += 1;
            continue;
        };
        ratios
            .entry((cell, t.scheduler.clone()))
            .or_default()
            .push(base / v);
    }
    let bars = ratios
        .into_iter()
        .filter_map(|(key, v)| mean_ci95(&v).map(|m| (key, m)))
        .collect();
    Ok(NormalizedRuntime {
        baseline,
        bars,
        without_baseline,
        without_throughput,
    })
}

/// The x axis name of each cell: the workload, plus whichever attack settings differ between
/// the cells drawn (so that two groups never look the same).
pub fn cell_labels<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> BTreeMap<Cell, String> {
    let cells: BTreeSet<&Cell> = cells.into_iter().collect();
    let varies =
        |f: &dyn Fn(&Cell) -> String| cells.iter().map(|c| f(c)).collect::<BTreeSet<_>>().len() > 1;
    let flood = varies(&|c| c.flood.clone());
    let threads = varies(&|c| c.threads.to_string());
    let collector = varies(&|c| c.collector.clone());
    let ring = varies(&|c| c.ring_size_bytes.to_string());
    cells
        .into_iter()
        .map(|c| {
            let mut label = c.workload.clone();
            if flood {
                write!(label, ", {}", c.flood).ok();
            }
            if threads {
                write!(label, ", x{}", c.threads).ok();
            }
            if collector {
                write!(label, ", {}", c.collector).ok();
            }
            if ring {
                write!(
                    label,
                    ", ring {}",
                    crate::size::format_size(c.ring_size_bytes)
                )
                .ok();
            }
            (c.clone(), label)
        })
        .collect()
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-normalized-runtime");
    let data = normalized_runtime(&run.trials).map(|runtime| RuntimeFigure {
        labels: cell_labels(runtime.bars.keys().map(|(c, _)| c)),
        runtime,
    });
    let alt = "normalized runtime";
    let Some(RuntimeFigure { runtime, labels }) =
        figure_section(data, run, out, &file, alt, report)?
    else {
        return Ok(());
    };
    let base = runtime.baseline;
    writeln!(
        report,
        "| workload | scheduler | trials | runtime × {base} (mean) | 95 % CI low | 95 % CI high |"
    )?;
    report.push_str("|---|---|---|---|---|---|\n");
    for ((c, scheduler), m) in &runtime.bars {
        writeln!(
            report,
            "| {} | {scheduler} | {} | {:.3} | {} | {} |",
            labels[c],
            m.n,
            m.mean,
            cell(m.ci95.map(|(low, _)| low), 3),
            cell(m.ci95.map(|(_, high)| high), 3)
        )?;
    }
    if runtime.without_baseline > 0 {
        writeln!(
            report,
            "\n{} trials left out: no {base} trial beside the same attack and workload.",
            runtime.without_baseline
        )?;
    }
    if runtime.without_throughput > 0 {
        writeln!(
            report,
            "\n{} trials left out: their workload's throughput was not measured or was zero.",
            runtime.without_throughput
        )?;
    }
    Ok(())
}

/// The figure: the runtimes, and each cell's name under its group of bars.
struct RuntimeFigure {
    runtime: NormalizedRuntime,
    labels: BTreeMap<Cell, String>,
}

/// A group of bars per cell, a bar per scheduler.
impl Figure for RuntimeFigure {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let title = format!(
            "Workload runtime for the same work, relative to {}",
            self.runtime.baseline
        );
        let root = titled(root, run, &title)?;
        let cells: Vec<&Cell> = self.labels.keys().collect();
        let schedulers: BTreeSet<&String> = self.runtime.bars.keys().map(|(_, s)| s).collect();
        let series = run.series(schedulers.iter().copied());
        let legend = LegendStrip::of_bars(&series);
        let (chart, strip) = legend.split_off(&root);
        let bars: BTreeMap<(usize, usize), Bar> = self
            .runtime
            .bars
            .iter()
            .map(|((c, s), m)| {
                let group = cells.iter().position(|x| *x == c).unwrap_or(0);
                let slot = schedulers.iter().position(|x| *x == s).unwrap_or(0);
                let bar = Bar {
                    value: m.mean,
                    whisker: m.ci95,
                    pale_on_top: None,
                };
                ((group, slot), bar)
            })
            .collect();
        let data_top = self
            .runtime
            .bars
            .values()
            .map(|m| m.ci95.map_or(m.mean, |(_, high)| high))
            .fold(1.0f64, f64::max);
        let groups: Vec<String> = self.labels.values().cloned().collect();
        let y_desc = format!("runtime for the same work (× {})", self.runtime.baseline);
        draw_bar_panel(
            &chart,
            &BarPanel {
                caption: "bars: mean over repetitions; whiskers: 95 % confidence interval",
                groups: &groups,
                series: &series,
                bars: &bars,
                x_desc: "workload",
                y_desc: &y_desc,
                y_top: data_top * 1.08,
                reference: Some(1.0),
            },
        )?;
        legend.draw(&strip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(scheduler: &str, workload: &str, throughput_per_s: f64) -> Trial {
        let mut t = crate::trial::example_trial(scheduler, 8, 0.0, Some((workload, 0.5)));
        t.workload_throughput_per_s = Some(throughput_per_s);
        t
    }

    #[test]
    fn three_values_give_the_student_t_interval() {
        // mean 2, sample sd 1, t(0.975; 2 df) = 0.95 / sqrt(2 * 0.975 * 0.025) = 4.302653
        let m = mean_ci95(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((m.mean, m.n), (2.0, 3));
        let (low, high) = m.ci95.unwrap();
        let half = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt() / 3f64.sqrt();
        assert!((half - 2.484138).abs() < 1e-6, "{half}");
        assert!((low - (2.0 - half)).abs() < 1e-9, "{low}");
        assert!((high - (2.0 + half)).abs() < 1e-9, "{high}");
        assert_eq!(mean_ci95(&[5.0]).unwrap().ci95, None);
        assert_eq!(mean_ci95(&[]), None);
    }

    #[test]
    fn runtime_is_the_baselines_mean_throughput_over_the_trials() {
        let trials = [
            trial("eevdf", "hackbench", 90.0),
            trial("eevdf", "hackbench", 110.0),
            // 100 / 100, 100 / 50, 100 / (100 / 3): runtimes 1, 2, 3.
            trial("aegis", "hackbench", 100.0),
            trial("aegis", "hackbench", 50.0),
            trial("aegis", "hackbench", 100.0 / 3.0),
            // No eevdf trial ran this workload: left out, counted.
            trial("aegis", "stress-ng-cpu", 10.0),
            trial("aegis", "hackbench", 0.0),
        ];
        let r = normalized_runtime(&trials).unwrap();
        assert_eq!(r.baseline, "eevdf");
        assert_eq!((r.without_baseline, r.without_throughput), (1, 1));
        let cell = Cell::of(&trials[0]).unwrap();
        let aegis = r.bars[&(cell.clone(), "aegis".to_string())];
        assert!((aegis.mean - 2.0).abs() < 1e-12, "{aegis:?}");
        let (low, _) = aegis.ci95.unwrap();
        assert!((low - (2.0 - 2.484138)).abs() < 1e-6, "{aegis:?}");
        // eevdf against its own mean: 100/90 and 100/110.
        let eevdf = r.bars[&(cell, "eevdf".to_string())];
        assert!((eevdf.mean - (100.0 / 90.0 + 100.0 / 110.0) / 2.0).abs() < 1e-12);
        assert_eq!(r.bars.len(), 2);
    }

    #[test]
    fn cfs_is_the_baseline_only_without_eevdf_and_cells_do_not_mix() {
        let mut other_threads = trial("cfs", "hackbench", 10.0);
        other_threads.threads = 2;
        let trials = [
            trial("cfs", "hackbench", 100.0),
            other_threads,
            trial("aegis", "hackbench", 50.0),
        ];
        let r = normalized_runtime(&trials).unwrap();
        assert_eq!(r.baseline, "cfs");
        let cell = Cell::of(&trials[2]).unwrap();
        assert_eq!(r.bars[&(cell.clone(), "aegis".to_string())].mean, 2.0);
        let labels = cell_labels(r.bars.keys().map(|(c, _)| c));
        assert_eq!(labels[&cell], "hackbench, x8");
        assert!(normalized_runtime(&[trial("aegis", "hackbench", 1.0)]).is_err());
        assert!(normalized_runtime(&[crate::trial::example_trial("eevdf", 1, 0.0, None)]).is_err());
    }
}
