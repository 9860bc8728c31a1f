//! The figures every run has: loss against attack intensity, a line per series and a panel
//! per collector and workload condition (bars per series when the run has one intensity);
//! and with workloads beside the attack, the share of its throughput each kept.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::boots::over_boots;
use super::chart::{bars_top, bars_width_px, interval_cell};
use super::{
    draw_bar_panel, draw_both, plot_err, titled, Bar, BarPanel, Figure, Interval, LegendStrip, Run,
    Swatch, SIZE,
};
use crate::results::trial::Trial;

/// The loss axis goes a little past 100 % so that whiskers at 100 show.
pub(super) const LOSS_AXIS_TOP_PCT: f64 = 105.0;

/// The workload condition of a trial: its workload, or `none` (the attack alone).
pub(super) fn workload_of(t: &Trial) -> String {
    t.beside.workload.clone().unwrap_or_else(|| "none".into())
}

/// Loss against flood threads (or bars at the run's one intensity), and its table.
pub(super) fn loss_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let loss = LossFigure::of(&run.trials);
    let loss_file = format!("{stem}-loss");
    draw_both(out, &loss_file, run, &loss)?;
    writeln!(report, "![loss]({loss_file}.svg)\n")?;
    report.push_str("| collector | workload | scheduler | threads | trials | boots | loss % |\n");
    report.push_str("|---|---|---|---|---|---|---|\n");
    for ((collector, workload, scheduler), points) in &loss.series {
        for (threads, i) in points {
            let trials = run
                .trials
                .iter()
                .filter(|t| {
                    t.id.collector == *collector
                        && workload_of(t) == *workload
                        && super::series_label(t, &run.trials) == *scheduler
                        && t.id.threads == *threads
                })
                .count();
            writeln!(
                report,
                "| {collector} | {workload} | {scheduler} | {threads} | {trials} | {} | {} |",
                i.n,
                i.display(2)
            )?;
        }
    }
    Ok(())
}

/// The share of its throughput each workload kept, and its table; nothing without workloads.
pub(super) fn kept_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let kept = kept_series(&run.trials);
    if kept.bars.is_empty() {
        return Ok(());
    }
    let kept_file = format!("{stem}-workload-kept");
    draw_both(out, &kept_file, run, &kept)?;
    writeln!(report, "\n![workload kept]({kept_file}.svg)\n")?;
    report.push_str("| collector | workload | scheduler | boots | kept fraction |\n");
    report.push_str("|---|---|---|---|---|\n");
    for ((collector, group, scheduler), i) in &kept.bars {
        writeln!(
            report,
            "| {} | {} | {scheduler} | {} | {} |",
            kept.collectors[*collector],
            kept.groups[*group],
            i.n,
            interval_cell(Some(i), 3)
        )?;
    }
    Ok(())
}

/// Per (collector, workload condition, series), per flood thread count.
pub type LossSeries = BTreeMap<(String, String, String), BTreeMap<u32, Interval>>;

/// How the loss figure is laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layout {
    /// A line per series over the flood thread counts.
    Lines,
    /// The run has one intensity: a bar per series, a group per workload condition.
    Bars { threads: u32 },
}

#[derive(Debug, PartialEq)]
pub struct LossFigure {
    pub series: LossSeries,
    pub layout: Layout,
}

impl LossFigure {
    pub fn of(trials: &[Trial]) -> LossFigure {
        let series = loss_series(trials);
        let threads: BTreeSet<u32> = series.values().flat_map(|p| p.keys()).copied().collect();
        let layout = match (threads.len(), threads.first()) {
            (1, Some(&threads)) => Layout::Bars { threads },
            _ => Layout::Lines,
        };
        LossFigure { series, layout }
    }

    fn collectors(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.series.keys().map(|(c, _, _)| c).collect();
        set.into_iter().cloned().collect()
    }

    fn workloads(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.series.keys().map(|(_, w, _)| w).collect();
        set.into_iter().cloned().collect()
    }

    fn series_names(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.series.keys().map(|(_, _, s)| s).collect();
        set.into_iter().cloned().collect()
    }
}

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

/// Loss per (collector, workload condition, series), per flood thread count: over boots.
pub fn loss_series(trials: &[Trial]) -> LossSeries {
    let mut cells: BTreeMap<(String, String, String), BTreeMap<u32, Vec<&Trial>>> = BTreeMap::new();
    for t in trials {
        let key = (
            t.id.collector.clone(),
            workload_of(t),
            series_label(t, trials),
        );
        cells
            .entry(key)
            .or_default()
            .entry(t.id.threads)
            .or_default()
            .push(t);
    }
    cells
        .into_iter()
        .map(|(key, by_threads)| {
            let points = by_threads
                .into_iter()
                .filter_map(|(threads, trials)| {
                    let i = over_boots(trials, |t| Some(t.accounting.loss_pct))?;
                    Some((threads, i.within(0.0, 100.0)))
                })
                .collect();
            (key, points)
        })
        .collect()
}

/// The kept fractions: a panel per collector, a group per workload (with the flood threads
/// when they vary), a bar per scheduler.
#[derive(Debug, PartialEq)]
pub struct KeptSeries {
    pub collectors: Vec<String>,
    pub groups: Vec<String>,
    /// By (collector index, group index, scheduler).
    pub bars: BTreeMap<(usize, usize, String), Interval>,
}

impl KeptSeries {
    fn schedulers(&self) -> BTreeSet<&String> {
        self.bars.keys().map(|(_, _, s)| s).collect()
    }
}

/// A group of the kept figure: a workload condition and a flood thread count.
type KeptGroup = (String, u32);

/// Kept fraction per (collector, workload, threads) and scheduler, over boots.
pub fn kept_series(trials: &[Trial]) -> KeptSeries {
    let with: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.beside.workload.is_some() && t.beside.workload_kept_fraction.is_some())
        .collect();
    let threads: BTreeSet<u32> = with.iter().map(|t| t.id.threads).collect();
    let group_of = |t: &Trial| {
        let mut label = workload_of(t);
        if threads.len() > 1 {
            write!(label, ", x{}", t.id.threads).ok();
        }
        label
    };
    let mut cells: BTreeMap<(String, KeptGroup, String), Vec<&Trial>> = BTreeMap::new();
    for t in &with {
        let group = (workload_of(t), t.id.threads);
        cells
            .entry((t.id.collector.clone(), group, t.id.scheduler.clone()))
            .or_default()
            .push(t);
    }
    let collectors: Vec<String> = with
        .iter()
        .map(|t| t.id.collector.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Groups by workload, then thread count (not by their labels: x16 after x8).
    let keys: Vec<KeptGroup> = with
        .iter()
        .map(|t| (workload_of(t), t.id.threads))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let groups = with
        .iter()
        .map(|t| ((workload_of(t), t.id.threads), group_of(t)))
        .collect::<BTreeMap<_, _>>()
        .into_values()
        .collect();
    let bars = cells
        .into_iter()
        .filter_map(|((collector, group, scheduler), trials)| {
            let i = over_boots(trials, |t| t.beside.workload_kept_fraction)?;
            let c = collectors.iter().position(|x| *x == collector)?;
            let g = keys.iter().position(|x| *x == group)?;
            Some(((c, g, scheduler), i.within(0.0, f64::MAX)))
        })
        .collect();
    KeptSeries {
        collectors,
        groups,
        bars,
    }
}

/// The loss figure's legend: a line (or box) per series.
fn loss_legend(run: &Run, figure: &LossFigure, width_px: u32) -> LegendStrip {
    let entries = figure
        .series_names()
        .into_iter()
        .map(|s| {
            let colour = run.colour(&s);
            let swatch = match figure.layout {
                Layout::Lines => Swatch::Line(colour),
                Layout::Bars { .. } => Swatch::Bar(colour),
            };
            (s, swatch)
        })
        .collect();
    LegendStrip::new(entries, width_px)
}

/// Lines: a panel per (collector, workload condition); bars: a panel per collector.
impl Figure for LossFigure {
    fn size_px(&self) -> (u32, u32) {
        let (collectors, workloads) = (self.collectors().len(), self.workloads().len());
        match self.layout {
            Layout::Lines => (
                SIZE.0.max(360 * workloads as u32),
                SIZE.1.max(110 + 330 * collectors as u32),
            ),
            Layout::Bars { .. } => (
                bars_width_px(collectors, workloads, self.series_names().len()),
                SIZE.1,
            ),
        }
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let title = match self.layout {
            Layout::Lines => "Event loss against attack intensity".to_string(),
            Layout::Bars { threads } => format!("Event loss at {threads} flood threads"),
        };
        let root = titled(root, run, &title)?;
        let legend = loss_legend(run, self, root.dim_in_pixel().0);
        let (body, strip) = legend.split_off(&root);
        match self.layout {
            Layout::Lines => self.draw_lines(run, &body)?,
            Layout::Bars { threads } => self.draw_bars(run, &body, threads)?,
        }
        legend.draw(&strip)
    }
}

impl LossFigure {
    fn draw_lines<DB: DrawingBackend>(
        &self,
        run: &Run,
        body: &DrawingArea<DB, Shift>,
    ) -> Result<()> {
        let (collectors, workloads) = (self.collectors(), self.workloads());
        let panels = body.split_evenly((collectors.len().max(1), workloads.len().max(1)));
        let max_threads = self
            .series
            .values()
            .flat_map(|points| points.keys())
            .copied()
            .max()
            .unwrap_or(1);
        for (i, panel) in panels.iter().enumerate() {
            let (row, column) = (i / workloads.len().max(1), i % workloads.len().max(1));
            let (Some(collector), Some(workload)) = (collectors.get(row), workloads.get(column))
            else {
                continue;
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{collector} · workload: {workload}"),
                    ("sans-serif", 16),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(52)
                .build_cartesian_2d(0.0..(max_threads as f64 + 1.0), 0.0..LOSS_AXIS_TOP_PCT)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("flood threads")
                .y_desc("events lost (%)")
                .axis_desc_style(("sans-serif", 14))
                .label_style(("sans-serif", 12))
                .y_label_formatter(&|y| {
                    if *y <= 100.0 {
                        format!("{y:.0}")
                    } else {
                        String::new()
                    }
                })
                .light_line_style(WHITE)
                // At most a dozen labels: a label per thread count would never finish drawing
                // for a count such as 10^6 (plotters keeps only the whole ones below).
                .x_labels((max_threads as usize).saturating_add(2).min(12))
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
            for ((c, w, scheduler), points) in &self.series {
                if c != collector || w != workload {
                    continue;
                }
                let colour = run.colour(scheduler);
                let line: Vec<(f64, f64)> =
                    points.iter().map(|(t, i)| (*t as f64, i.mean)).collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                    .map_err(plot_err)?;
                chart
                    .draw_series(line.iter().map(|p| Circle::new(*p, 4, colour.filled())))
                    .map_err(plot_err)?;
                chart
                    .draw_series(points.iter().filter_map(|(t, i)| {
                        let (low, high) = i.ci95?;
                        let x = *t as f64;
                        Some(ErrorBar::new_vertical(
                            x,
                            low,
                            i.mean,
                            high,
                            colour.stroke_width(1),
                            8,
                        ))
                    }))
                    .map_err(plot_err)?;
            }
        }
        Ok(())
    }

    fn draw_bars<DB: DrawingBackend>(
        &self,
        run: &Run,
        body: &DrawingArea<DB, Shift>,
        threads: u32,
    ) -> Result<()> {
        let (collectors, workloads) = (self.collectors(), self.workloads());
        let names = self.series_names();
        let series = run.series(&names);
        let panels = body.split_evenly((1, collectors.len().max(1)));
        for (panel, collector) in panels.iter().zip(&collectors) {
            let bars: BTreeMap<(usize, usize), Bar> = self
                .series
                .iter()
                .filter(|((c, _, _), _)| c == collector)
                .filter_map(|((_, w, s), points)| {
                    let group = workloads.iter().position(|x| x == w)?;
                    let slot = names.iter().position(|x| x == s)?;
                    Some(((group, slot), Bar::of_interval(points.get(&threads)?)))
                })
                .collect();
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: &format!("collector: {collector}"),
                    groups: &workloads,
                    series: &series,
                    bars: &bars,
                    x_desc: "workload beside the attack",
                    y_desc: "events lost (%)",
                    y_top: LOSS_AXIS_TOP_PCT,
                    reference: None,
                },
            )?;
        }
        Ok(())
    }
}

/// A panel per collector, a group of bars per workload, a bar per scheduler.
impl Figure for KeptSeries {
    fn size_px(&self) -> (u32, u32) {
        let width = bars_width_px(1, self.groups.len(), self.schedulers().len());
        (width, SIZE.1.max(100 + 380 * self.collectors.len() as u32))
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(root, run, "Workload throughput kept beside the attack")?;
        let schedulers = self.schedulers();
        let series = run.series(schedulers.iter().copied());
        let legend = LegendStrip::of_bars_in(&series, root.dim_in_pixel().0);
        let (body, strip) = legend.split_off(&root);
        let panels = body.split_evenly((self.collectors.len().max(1), 1));
        let top = bars_top(
            self.bars
                .values()
                .map(Bar::of_interval)
                .collect::<Vec<_>>()
                .iter(),
            1.0,
        );
        for (c, (panel, collector)) in panels.iter().zip(&self.collectors).enumerate() {
            let bars: BTreeMap<(usize, usize), Bar> = self
                .bars
                .iter()
                .filter(|((x, _, _), _)| *x == c)
                .filter_map(|((_, g, s), i)| {
                    let slot = schedulers.iter().position(|x| *x == s)?;
                    Some(((*g, slot), Bar::of_interval(i)))
                })
                .collect();
            draw_bar_panel(
                panel,
                &BarPanel {
                    caption: &format!("collector: {collector}"),
                    groups: &self.groups,
                    series: &series,
                    bars: &bars,
                    x_desc: "workload",
                    y_desc: "throughput beside the attack / alone",
                    y_top: top,
                    reference: Some(1.0),
                },
            )?;
        }
        legend.draw(&strip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    fn trial(scheduler: &str, threads: u32, loss: f64, boot: u32) -> Trial {
        let mut t = example_trial(scheduler, threads, loss, None);
        t.id.boot = boot;
        t
    }

    #[test]
    fn boots_fold_into_mean_and_interval_within_0_to_100() {
        let trials = [
            trial("eevdf", 4, 60.0, 0),
            trial("eevdf", 4, 70.0, 0),
            trial("eevdf", 4, 75.0, 1),
            trial("eevdf", 8, 80.0, 0),
            trial("aegis", 4, 0.0, 0),
            trial("aegis", 4, 1.0, 1),
        ];
        let loss = loss_series(&trials);
        let key = |s: &str| ("builtin".to_string(), "none".to_string(), s.to_string());
        let eevdf = &loss[&key("eevdf")];
        // Boot 0's mean 65 and boot 1's 75.
        assert_eq!((eevdf[&4].n, eevdf[&4].mean), (2, 70.0));
        assert_eq!((eevdf[&8].n, eevdf[&8].ci95), (1, None));
        let aegis = loss[&key("aegis")][&4];
        assert!(aegis.ci95.unwrap().0 == 0.0, "{aegis:?}");
        assert_eq!(loss.len(), 2);
        assert!(kept_series(&trials).bars.is_empty());
        assert_eq!(LossFigure::of(&trials).layout, Layout::Lines);
    }

    #[test]
    fn each_workload_condition_is_its_own_series_and_one_intensity_draws_bars() {
        let mut trials = Vec::new();
        for workload in [None, Some("hackbench"), Some("stress-ng-cpu")] {
            for scheduler in ["eevdf", "aegis"] {
                let mut t = example_trial(scheduler, 8, 10.0, workload.map(|w| (w, 0.5)));
                t.id.boot = 1;
                trials.push(t);
            }
        }
        let figure = LossFigure::of(&trials);
        assert_eq!(figure.layout, Layout::Bars { threads: 8 });
        assert_eq!(figure.series.len(), 6);
        assert_eq!(figure.workloads(), ["hackbench", "none", "stress-ng-cpu"]);
        let kept = kept_series(&trials);
        assert_eq!(kept.collectors, ["builtin"]);
        assert_eq!(kept.groups, ["hackbench", "stress-ng-cpu"]);
        assert_eq!(kept.bars.len(), 4);
        // Thread counts in numeric order when they vary.
        let mut more = trials.clone();
        for (i, t) in more.iter_mut().enumerate() {
            t.id.threads = [8, 16][i % 2];
        }
        let kept = kept_series(&more);
        assert_eq!(
            kept.groups,
            [
                "hackbench, x8",
                "hackbench, x16",
                "stress-ng-cpu, x8",
                "stress-ng-cpu, x16"
            ]
        );
    }
}
