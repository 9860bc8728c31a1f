//! The figures every run has: loss against attack intensity, a line per series and a panel
//! per collector; and with workloads beside the attack, the share of its throughput each kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{centred_category, draw_both, draw_legend, plot_err, titled, Figure, Run, Spread};
use crate::results::trial::Trial;

/// The loss axis goes past 100 % to leave the legend room above the data.
const LOSS_AXIS_TOP_PCT: f64 = 125.0;

/// Loss against flood threads, and its table.
pub(super) fn loss_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let loss = loss_series(&run.trials);
    let loss_file = format!("{stem}-loss");
    draw_both(out, &loss_file, run, &loss)?;
    writeln!(report, "![loss]({loss_file}.svg)\n")?;
    report.push_str("| collector | scheduler | threads | trials | loss % (mean) | min | max |\n");
    report.push_str("|---|---|---|---|---|---|---|\n");
    for ((collector, scheduler), points) in &loss {
        for (threads, s) in points {
            writeln!(
                report,
                "| {collector} | {scheduler} | {threads} | {} |",
                s.cells(2)
            )?;
        }
    }
    Ok(())
}

/// The share of its throughput each workload kept, and its table; nothing without workloads.
pub(super) fn kept_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let kept = kept_series(&run.trials);
    if kept.is_empty() {
        return Ok(());
    }
    let kept_file = format!("{stem}-workload-kept");
    draw_both(out, &kept_file, run, &kept)?;
    writeln!(report, "\n![workload kept]({kept_file}.svg)\n")?;
    report.push_str("| workload | scheduler | trials | kept (mean) | min | max |\n");
    report.push_str("|---|---|---|---|---|---|\n");
    for ((workload, scheduler), s) in &kept {
        writeln!(report, "| {workload} | {scheduler} | {} |", s.cells(2))?;
    }
    Ok(())
}

type LossSeries = BTreeMap<(String, String), BTreeMap<u32, Spread>>;

/// The line a trial belongs to: its scheduler, plus whatever else varies in the run (ring
/// size, auditd's backlog settings), so that different set-ups are never averaged together.
pub(super) fn series_label(t: &Trial, trials: &[Trial]) -> String {
    let mut label = t.id.scheduler.clone();
    let same_collector = || trials.iter().filter(|o| o.id.collector == t.id.collector);
    let mut rings: Vec<u64> = same_collector().map(|o| o.id.ring_size_bytes).collect();
    rings.sort_unstable();
    rings.dedup();
    if rings.len() > 1 {
        write!(
            label,
            ", ring {}",
            crate::size::format_size(t.id.ring_size_bytes)
        )
        .ok();
    }
    let audit_of = |o: &Trial| {
        o.audit
            .as_ref()
            .map(|a| (a.settings.backlog_limit, a.settings.backlog_wait_time_ms))
    };
    let mut audits: Vec<_> = same_collector().filter_map(audit_of).collect();
    audits.sort_unstable();
    audits.dedup();
    if let (true, Some((limit, wait_ms))) = (audits.len() > 1, audit_of(t)) {
        write!(label, ", backlog {limit}, wait {wait_ms} ms").ok();
    }
    label
}

/// Loss per (collector, series), per flood thread count.
pub fn loss_series(trials: &[Trial]) -> LossSeries {
    let mut values: BTreeMap<(String, String), BTreeMap<u32, Vec<f64>>> = BTreeMap::new();
    for t in trials {
        values
            .entry((t.id.collector.clone(), series_label(t, trials)))
            .or_default()
            .entry(t.id.threads)
            .or_default()
            .push(t.accounting.loss_pct);
    }
    values
        .into_iter()
        .map(|(key, by_threads)| {
            let spreads = by_threads
                .into_iter()
                .filter_map(|(threads, v)| Spread::of(&v).map(|s| (threads, s)))
                .collect();
            (key, spreads)
        })
        .collect()
}

type KeptSeries = BTreeMap<(String, String), Spread>;

/// Kept fraction per (workload, scheduler).
pub fn kept_series(trials: &[Trial]) -> KeptSeries {
    let mut values: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for t in trials {
        if let (Some(workload), Some(kept)) = (&t.beside.workload, t.beside.workload_kept_fraction)
        {
            values
                .entry((workload.clone(), t.id.scheduler.clone()))
                .or_default()
                .push(kept);
        }
    }
    values
        .into_iter()
        .filter_map(|(key, v)| Spread::of(&v).map(|s| (key, s)))
        .collect()
}

/// Loss against flood threads, a panel per collector, a line per series.
impl Figure for LossSeries {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(root, run, "Event loss against attack intensity")?;
        let collectors: Vec<&String> = {
            let mut c: Vec<&String> = self.keys().map(|(c, _)| c).collect();
            c.dedup();
            c
        };
        let panels = root.split_evenly((1, collectors.len().max(1)));
        let max_threads = self
            .values()
            .flat_map(|points| points.keys())
            .copied()
            .max()
            .unwrap_or(1);
        for (panel, collector) in panels.iter().zip(&collectors) {
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("collector: {collector}"), ("sans-serif", 17))
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(56)
                // Headroom above 100 % for the legend, so it covers no point.
                .build_cartesian_2d(0.0..(max_threads as f64 + 1.0), 0.0..LOSS_AXIS_TOP_PCT)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("flood threads")
                .y_desc("events lost (%)")
                .axis_desc_style(("sans-serif", 15))
                .label_style(("sans-serif", 13))
                .y_label_formatter(&|y| {
                    if *y <= 100.0 {
                        format!("{y:.0}")
                    } else {
                        String::new()
                    }
                })
                .light_line_style(WHITE)
                .x_labels(max_threads as usize + 2)
                // Thread counts are whole: no label between them.
                .x_label_formatter(&|x| {
                    if (x - x.round()).abs() < 1e-9 {
                        format!("{x:.0}")
                    } else {
                        String::new()
                    }
                })
                .draw()
                .map_err(plot_err)?;
            for ((c, scheduler), points) in self {
                if c != *collector {
                    continue;
                }
                let colour = run.colour(scheduler);
                let line: Vec<(f64, f64)> =
                    points.iter().map(|(t, s)| (*t as f64, s.mean)).collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(scheduler.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(line.iter().map(|p| Circle::new(*p, 4, colour.filled())))
                    .map_err(plot_err)?;
                chart
                    .draw_series(points.iter().filter(|(_, s)| s.n > 1).map(|(t, s)| {
                        ErrorBar::new_vertical(
                            *t as f64,
                            s.min,
                            s.mean,
                            s.max,
                            colour.stroke_width(1),
                            8,
                        )
                    }))
                    .map_err(plot_err)?;
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    }
}

/// A group of bars per workload, a bar per scheduler.
impl Figure for KeptSeries {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        // One group of bars per workload, a bar per scheduler.
        let workloads: Vec<&String> = {
            let mut w: Vec<&String> = self.keys().map(|(w, _)| w).collect();
            w.dedup();
            w
        };
        let mut schedulers: Vec<&String> = self.keys().map(|(_, s)| s).collect();
        schedulers.sort();
        schedulers.dedup();
        let top = self.values().map(|s| s.max).fold(1.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Workload throughput kept beside the attack ({})", run.name),
                ("sans-serif", 22),
            )
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..workloads.len() as f64, 0.0..top)
            .map_err(plot_err)?;
        let workload_names: Vec<String> = workloads.iter().map(|w| w.to_string()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(workloads.len() * 2 + 1)
            .x_label_formatter(&|x| centred_category(*x, &workload_names))
            .x_desc("workload")
            .y_desc("throughput beside the attack / alone")
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_err)?;
        let width = 0.8 / schedulers.len().max(1) as f64;
        for (k, scheduler) in schedulers.iter().enumerate() {
            let colour = run.colour(scheduler);
            let bars: Vec<(f64, Spread)> = workloads
                .iter()
                .enumerate()
                .filter_map(|(i, w)| {
                    self.get(&((*w).clone(), (*scheduler).clone()))
                        .map(|s| (i as f64 + 0.1 + k as f64 * width, *s))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|(x, s)| {
                    Rectangle::new([(*x, 0.0), (*x + width * 0.9, s.mean)], colour.filled())
                }))
                .map_err(plot_err)?
                .label(scheduler.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
            chart
                .draw_series(bars.iter().filter(|(_, s)| s.n > 1).map(|(x, s)| {
                    ErrorBar::new_vertical(
                        x + width * 0.45,
                        s.min,
                        s.mean,
                        s.max,
                        BLACK.stroke_width(1),
                        6,
                    )
                }))
                .map_err(plot_err)?;
        }
        chart
            .draw_series(LineSeries::new(
                [(0.0, 1.0), (workloads.len() as f64, 1.0)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(plot_err)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    fn trial(scheduler: &str, threads: u32, loss: f64) -> Trial {
        example_trial(scheduler, threads, loss, None)
    }

    #[test]
    fn repetitions_fold_into_mean_and_range() {
        let trials = [
            trial("eevdf", 4, 60.0),
            trial("eevdf", 4, 70.0),
            trial("eevdf", 8, 80.0),
            trial("aegis", 4, 0.0),
        ];
        let loss = loss_series(&trials);
        let eevdf = &loss[&("builtin".to_string(), "eevdf".to_string())];
        assert_eq!(
            eevdf[&4],
            Spread {
                mean: 65.0,
                min: 60.0,
                max: 70.0,
                n: 2
            }
        );
        assert_eq!(eevdf[&8].n, 1);
        assert_eq!(loss.len(), 2);
        assert!(kept_series(&trials).is_empty());
    }
}
