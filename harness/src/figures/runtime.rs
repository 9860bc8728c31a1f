//! Normalized runtime: how long each workload took for the same work under each scheduler,
//! relative to EEVDF beside the same attack.
//!
//! The workloads run for a fixed time, so the time the same work takes is inversely
//! proportional to throughput. Boots pair up: in each boot, the baseline's mean throughput in
//! the cell (same run, flood, threads, collector, ring and workload) over the scheduler's; a
//! bar is the geometric mean of those per-boot ratios, its whisker the 95 % t interval on
//! their logarithms ([`crate::stats::paired_ratio`]), which never goes below zero. The
//! baseline itself is the dashed line at 1, not a bar. One boot: no interval.
//!
//! The figure is a grid: a column per workload, a row per collector, in each panel a group of
//! bars per remaining attack setting. The y axis stops at max(2, 1.5 × the largest mean), so
//! that the huge intervals of few boots squash no bar: a whisker past it is clipped
//! with a caret and its upper end written above. The report's table has every number.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::boots::by_boot;
use super::{
    cell, centred_category, dashed_line, draw_empty_panel, figure_section, plot_err, tick,
    titled_with, Figure, LegendStrip, Run, Swatch, SIZE,
};
use crate::results::trial::Trial;
use crate::stats::{paired_ratio, Interval};

/// The baseline scheduler's name, in order of preference: EEVDF, or CFS in older guests.
const BASELINES: [&str; 2] = ["eevdf", "cfs"];

/// What two trials must share to be compared: everything but the scheduler, boot and
/// repetition.
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
            workload: t.beside.workload.clone()?,
            flood: t.id.flood.clone(),
            threads: t.id.threads,
            collector: t.id.collector.clone(),
            ring_size_bytes: t.id.ring_size_bytes,
        })
    }
}

#[derive(Debug, PartialEq)]
pub struct NormalizedRuntime {
    /// `eevdf` or `cfs`.
    pub baseline: &'static str,
    /// Runtime for the same work over the baseline's, per (cell, scheduler other than the
    /// baseline).
    pub bars: BTreeMap<(Cell, String), Interval>,
    /// Trials left out: their cell has no baseline trial in their boot.
    pub without_baseline: usize,
    /// Trials left out: a workload but no measured (or a zero) throughput.
    pub without_throughput: usize,
}

/// A usable throughput: measured, finite and above zero.
fn throughput_per_s(t: &Trial) -> Option<f64> {
    t.beside
        .workload_throughput_per_s
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// The run's normalized runtimes, or why there are none.
pub fn normalized_runtime(trials: &[Trial]) -> Result<NormalizedRuntime, String> {
    let with_workload: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.beside.workload.is_some())
        .collect();
    if with_workload.is_empty() {
        return Err("No normalized runtime figure: no trial ran a workload.".into());
    }
    let Some(baseline) = BASELINES.into_iter().find(|b| {
        with_workload
            .iter()
            .any(|t| t.id.scheduler == *b && throughput_per_s(t).is_some())
    }) else {
        return Err(
            "No normalized runtime figure: no eevdf (or cfs) trial measured a workload's \
             throughput to normalize to."
                .into(),
        );
    };
    let mut cells: BTreeMap<(Cell, String), Vec<&Trial>> = BTreeMap::new();
    let mut without_throughput = 0;
    for t in &with_workload {
        let Some(cell) = Cell::of(t) else { continue };
        if throughput_per_s(t).is_none() {
            without_throughput += 1;
            continue;
        }
        cells
            .entry((cell, t.id.scheduler.clone()))
            .or_default()
            .push(t);
    }
    let per_boot = |trials: &Vec<&Trial>| by_boot(trials.iter().copied(), throughput_per_s);
    let mut bars = BTreeMap::new();
    let mut without_baseline = 0;
    for ((cell, scheduler), trials) in &cells {
        if scheduler == baseline {
            continue;
        }
        let base = cells
            .get(&(cell.clone(), baseline.to_string()))
            .map(per_boot)
            .unwrap_or_default();
        without_baseline += trials
            .iter()
            .filter(|t| !base.contains_key(&t.id.boot))
            .count();
        // Runtime for the same work is the baseline's throughput over this one's.
        if let Some(ratio) = paired_ratio(&base, &per_boot(trials)) {
            bars.insert((cell.clone(), scheduler.clone()), ratio);
        }
    }
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
    let data = normalized_runtime(&run.trials).map(RuntimeFigure::new);
    let alt = "normalized runtime";
    let Some(RuntimeFigure {
        runtime, labels, ..
    }) = figure_section(data, run, out, &file, alt, report)?
    else {
        return Ok(());
    };
    let base = runtime.baseline;
    writeln!(
        report,
        "| workload | scheduler | paired boots | runtime × {base} (geometric mean of per-boot \
         ratios) | 95 % CI low | 95 % CI high |"
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
            "\n{} trials left out: no {base} trial beside the same attack and workload in \
             their boot.",
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

/// The figure: the runtimes, laid out as a grid of panels.
struct RuntimeFigure {
    runtime: NormalizedRuntime,
    /// Each cell's name in the report's table.
    labels: BTreeMap<Cell, String>,
    grid: Grid,
}

impl RuntimeFigure {
    fn new(runtime: NormalizedRuntime) -> Self {
        let cells = || runtime.bars.keys().map(|(c, _)| c);
        RuntimeFigure {
            labels: cell_labels(cells()),
            grid: Grid::of(cells()),
            runtime,
        }
    }

    /// A filled box per scheduler, and the dashed line at 1.
    fn legend(&self, series: &[(String, RGBColor)], width_px: u32) -> LegendStrip {
        let mut entries: Vec<(String, Swatch)> = series
            .iter()
            .map(|(name, colour)| (name.clone(), Swatch::Bar(*colour)))
            .collect();
        entries.push((
            format!("same runtime as {}", self.runtime.baseline),
            Swatch::DashedLine(REFERENCE_GREY),
        ));
        LegendStrip::new(entries, width_px)
    }

    /// What bars and whiskers are, and that a clipped whisker's end is written above it.
    fn subtitle(&self, y_top: f64) -> String {
        let boots: BTreeSet<usize> = self.runtime.bars.values().map(|m| m.n).collect();
        let mut text = match (boots.first(), boots.last()) {
            (_, Some(1)) => "bars: n=1 boot, so no confidence intervals".to_string(),
            _ => "bars: geometric mean of per-boot ratios; whiskers: 95 % t interval on their \
                  logarithms over boots"
                .to_string(),
        };
        let clipped = self
            .runtime
            .bars
            .values()
            .any(|m| m.ci95.is_some_and(|(_, high)| high > y_top));
        if clipped {
            text.push_str(
                "; whiskers past the axis top are clipped and labelled with their upper end",
            );
        }
        text
    }

    /// A workload's column: wide enough for a readable bar per scheduler and each group's
    /// name (about 7.5 px a character at 13 px) in its most crowded panel.
    fn column_px(&self) -> u32 {
        let slots = self.schedulers().len().max(1) as f64;
        let longest = self
            .grid
            .labels
            .values()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let group_px = (slots * SLOT_PX / 0.8).max(longest as f64 * 7.5 + 16.0);
        let groups = self.grid.groups.values().map(Vec::len).max().unwrap_or(1);
        COLUMN_PX.max(PANEL_AXIS_PX + (groups as f64 * group_px).ceil() as u32)
    }

    fn schedulers(&self) -> BTreeSet<&String> {
        self.runtime.bars.keys().map(|(_, s)| s).collect()
    }
}

/// The attack settings that tell a panel's groups apart: a cell but its workload and
/// collector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Setting {
    flood: String,
    threads: u32,
    ring_size_bytes: u64,
}

impl Setting {
    fn of(c: &Cell) -> Setting {
        Setting {
            flood: c.flood.clone(),
            threads: c.threads,
            ring_size_bytes: c.ring_size_bytes,
        }
    }
}

/// The figure's layout: a column per workload, a row per collector, and in each panel a group
/// of bars per attack setting it has trials for.
#[derive(Debug, PartialEq)]
struct Grid {
    workloads: Vec<String>,
    collectors: Vec<String>,
    /// Each panel's groups in order, by (row, column); a panel without trials has none.
    groups: BTreeMap<(usize, usize), Vec<Setting>>,
    /// The name under a setting's group: the thread count as `x8`, with the flood and the
    /// ring size only when they vary.
    labels: BTreeMap<Setting, String>,
    /// The x axis's name, with the settings that are the same throughout in brackets.
    x_desc: String,
}

impl Grid {
    fn of<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> Grid {
        let cells: BTreeSet<&Cell> = cells.into_iter().collect();
        let distinct =
            |f: &dyn Fn(&Cell) -> String| cells.iter().map(|c| f(c)).collect::<BTreeSet<_>>();
        let workloads: Vec<String> = distinct(&|c| c.workload.clone()).into_iter().collect();
        let collectors: Vec<String> = distinct(&|c| c.collector.clone()).into_iter().collect();
        let floods = distinct(&|c| c.flood.clone());
        let rings = distinct(&|c| crate::size::format_size(c.ring_size_bytes));
        let mut groups: BTreeMap<(usize, usize), BTreeSet<Setting>> = BTreeMap::new();
        for c in &cells {
            let row = collectors
                .iter()
                .position(|x| *x == c.collector)
                .unwrap_or(0);
            let column = workloads.iter().position(|x| *x == c.workload).unwrap_or(0);
            groups
                .entry((row, column))
                .or_default()
                .insert(Setting::of(c));
        }
        let labels = groups
            .values()
            .flatten()
            .map(|s| {
                let mut label = format!("x{}", s.threads);
                if floods.len() > 1 {
                    label = format!("{} {label}", s.flood);
                }
                if rings.len() > 1 {
                    write!(label, ", {}", crate::size::format_size(s.ring_size_bytes)).ok();
                }
                (s.clone(), label)
            })
            .collect();
        let mut shown = Vec::new();
        let mut fixed = Vec::new();
        match floods.iter().next() {
            Some(flood) if floods.len() == 1 => fixed.push(format!("{flood} flood")),
            _ => shown.push("flood"),
        }
        shown.push("flood threads");
        match rings.iter().next() {
            Some(ring) if rings.len() == 1 => fixed.push(format!("ring {ring}")),
            _ => shown.push("ring size"),
        }
        let mut x_desc = shown.join(", ");
        if !fixed.is_empty() {
            write!(x_desc, " ({})", fixed.join(", ")).ok();
        }
        Grid {
            workloads,
            collectors,
            groups: groups
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            labels,
            x_desc,
        }
    }
}

/// The y axis's top: room for the means and whiskers, but at most max(2, 1.5 × the largest
/// mean), so that a few huge intervals (two boots: t = 12.7) squash no bar; rounded up
/// to a half. Whiskers above it are clipped and labelled.
fn axis_top<'a>(bars: impl IntoIterator<Item = &'a Interval>) -> f64 {
    let (mut largest_mean, mut data_top) = (0.0f64, 1.0f64);
    for m in bars {
        largest_mean = largest_mean.max(m.mean);
        data_top = data_top.max(m.ci95.map_or(m.mean, |(_, high)| high.max(m.mean)));
    }
    let cap = (1.5 * largest_mean).max(2.0);
    ((data_top * 1.05).min(cap) * 2.0).ceil() / 2.0
}

/// Rows of labels above a panel for clipped whiskers: each label, left to right (by its
/// pixel span), goes on the lower row unless it would overlap the last label there, else on
/// the upper row unless it would overlap there too, else back on the lower.
fn label_rows(spans: &[(i32, i32)]) -> Vec<usize> {
    let mut right_end = [i32::MIN; 2];
    spans
        .iter()
        .map(|&(left, right)| {
            let row = (0..2).find(|r| left > right_end[*r]).unwrap_or(0);
            right_end[row] = right;
            row
        })
        .collect()
}

/// An upper whisker end past the axis, as labelled: three significant digits.
fn clipped_value(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// The line at 1 (the baseline's own runtime).
const REFERENCE_GREY: RGBColor = RGBColor(80, 80, 80);
/// A panel's height, and the width a workload's column needs at least.
const ROW_PX: u32 = 320;
const COLUMN_PX: u32 = 440;
/// A panel's width besides its groups: the y axis's labels and the margins.
const PANEL_AXIS_PX: u32 = 80;
/// The least width of a bar's slot, so that a clipped whisker's label fits over it.
const SLOT_PX: f64 = 28.0;
/// Room between a panel's title and its plot for two rows of clipped whiskers' labels.
const CLIP_ROOM_PX: i32 = 30;
const CLIP_FONT_PX: u32 = 11;

/// A panel per (collector, workload), a group of bars per attack setting, a bar per scheduler.
impl Figure for RuntimeFigure {
    fn size_px(&self) -> (u32, u32) {
        let columns = self.grid.workloads.len().max(1) as u32;
        let rows = self.grid.collectors.len().max(1) as u32;
        let width = SIZE.0.max(20 + self.column_px() * columns);
        let series: Vec<(String, RGBColor)> = self
            .schedulers()
            .into_iter()
            .map(|s| (s.clone(), BLACK))
            .collect();
        let legend = self.legend(&series, width).height_px();
        (width, 80 + ROW_PX * rows + legend)
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let base = self.runtime.baseline;
        let title = format!("Workload runtime for the same work, relative to {base}");
        let y_top = axis_top(self.runtime.bars.values());
        let root = titled_with(root, run, &title, &self.subtitle(y_top))?;
        let (width_px, _) = root.dim_in_pixel();
        let schedulers = self.schedulers();
        let series = run.series(schedulers.iter().copied());
        let legend = self.legend(&series, width_px);
        let (body, strip) = legend.split_off(&root);
        let grid = &self.grid;
        let (rows, columns) = (grid.collectors.len().max(1), grid.workloads.len().max(1));
        let y_desc = format!("runtime for the same work (× {base})");
        for (i, area) in body.split_evenly((rows, columns)).iter().enumerate() {
            let (row, column) = (i / columns, i % columns);
            let (Some(workload), Some(collector)) =
                (grid.workloads.get(column), grid.collectors.get(row))
            else {
                continue;
            };
            let title = format!("{workload} · {collector}");
            let Some(groups) = grid.groups.get(&(row, column)) else {
                draw_empty_panel(area, &title, "no trials")?;
                continue;
            };
            let bars = self
                .runtime
                .bars
                .iter()
                .filter(|((c, _), _)| c.workload == *workload && c.collector == *collector)
                .filter_map(|((c, s), m)| {
                    let group = groups.iter().position(|g| *g == Setting::of(c))?;
                    let slot = schedulers.iter().position(|x| *x == s)?;
                    Some(((group, slot), *m))
                })
                .collect();
            let labels: Vec<String> = groups.iter().map(|g| grid.labels[g].clone()).collect();
            draw_panel(
                area,
                &Panel {
                    title: &title,
                    labels: &labels,
                    series: &series,
                    bars: &bars,
                    y_top,
                    x_desc: (row + 1 == rows).then_some(grid.x_desc.as_str()),
                    y_desc: (column == 0).then_some(y_desc.as_str()),
                },
            )?;
        }
        legend.draw(&strip)
    }
}

/// One panel of the grid.
struct Panel<'a> {
    title: &'a str,
    /// The groups' names, in order.
    labels: &'a [String],
    series: &'a [(String, RGBColor)],
    /// By (group, series) index.
    bars: &'a BTreeMap<(usize, usize), Interval>,
    y_top: f64,
    /// The axes' names: only under the bottom row and left of the first column.
    x_desc: Option<&'a str>,
    y_desc: Option<&'a str>,
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel<'_>) -> Result<()> {
    let area = area.titled(p.title, ("sans-serif", 16)).map_err(plot_err)?;
    let groups = p.labels.len().max(1);
    let mut chart = ChartBuilder::on(&area)
        .margin(10)
        .margin_top(CLIP_ROOM_PX)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..groups as f64, 0.0..p.y_top)
        .map_err(plot_err)?;
    draw_mesh(&mut chart, p)?;
    let width = 0.8 / p.series.len().max(1) as f64;
    let left = |(group, slot): (usize, usize)| group as f64 + 0.1 + slot as f64 * width;
    for (&(group, slot), m) in p.bars {
        let colour = p.series.get(slot).map_or(BLACK, |(_, c)| *c);
        let x = left((group, slot));
        chart
            .draw_series([Rectangle::new(
                [(x, 0.0), (x + width * 0.9, m.mean.clamp(0.0, p.y_top))],
                colour.filled(),
            )])
            .map_err(plot_err)?;
    }
    // The rest in pixels, on the panel under its title.
    let origin = area.get_base_pixel();
    let px = |x: f64, y: f64| {
        let (bx, by) = chart.backend_coord(&(x, y));
        (bx - origin.0, by - origin.1)
    };
    dashed_line(
        &area,
        px(0.0, 1.0),
        px(groups as f64, 1.0),
        REFERENCE_GREY.stroke_width(1),
    )
    .map_err(plot_err)?;
    let stroke = BLACK.stroke_width(1);
    let cap = ((px(width * 0.9, 0.0).0 - px(0.0, 0.0).0) / 4).clamp(2, 5);
    let (_, top_px) = px(0.0, p.y_top);
    let font = TextStyle::from(("sans-serif", CLIP_FONT_PX).into_font())
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    let mut clipped = Vec::new();
    for (&key, m) in p.bars {
        let Some((low, high)) = m.ci95 else { continue };
        let x = left(key) + width * 0.45;
        let (cx, low_px) = px(x, low.max(0.0));
        let (_, high_px) = px(x, high.min(p.y_top));
        let over = high > p.y_top;
        // A caret at the axis top marks a clipped whisker; it ends under it.
        let whisker_top = if over { top_px + 7 } else { high_px };
        area.draw(&PathElement::new([(cx, low_px), (cx, whisker_top)], stroke))
            .map_err(plot_err)?;
        // An interval clipped at zero (a runtime is never negative) has no cap there.
        if low >= 0.0 {
            area.draw(&PathElement::new(
                [(cx - cap, low_px), (cx + cap, low_px)],
                stroke,
            ))
            .map_err(plot_err)?;
        }
        if over {
            area.draw(&Polygon::new(
                vec![(cx - 4, top_px + 7), (cx + 4, top_px + 7), (cx, top_px)],
                BLACK.filled(),
            ))
            .map_err(plot_err)?;
            let text = clipped_value(high);
            let (w, _) = area.estimate_text_size(&text, &font).map_err(plot_err)?;
            let half = w as i32 / 2 + 1;
            clipped.push(((cx - half, cx + half), cx, text));
        } else {
            area.draw(&PathElement::new(
                [(cx - cap, high_px), (cx + cap, high_px)],
                stroke,
            ))
            .map_err(plot_err)?;
        }
    }
    clipped.sort_by_key(|(span, _, _)| *span);
    let spans: Vec<(i32, i32)> = clipped.iter().map(|(span, _, _)| *span).collect();
    for ((_, cx, text), row) in clipped.into_iter().zip(label_rows(&spans)) {
        let y = top_px - 2 - row as i32 * (CLIP_FONT_PX as i32 + 2);
        area.draw(&Text::new(text, (cx, y), font.clone()))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// A panel's axes: the groups' names under the bars, the axes' names where the grid has them.
fn draw_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    p: &Panel<'_>,
) -> Result<()> {
    let groups = p.labels.len().max(1);
    let x_label = |x: &f64| centred_category(*x, p.labels);
    let y_label = |y: &f64| tick(*y);
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .axis_desc_style(("sans-serif", 14))
        .label_style(("sans-serif", 13));
    if let Some(desc) = p.x_desc {
        mesh.x_desc(desc);
    }
    if let Some(desc) = p.y_desc {
        mesh.y_desc(desc);
    }
    mesh.draw().map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(scheduler: &str, workload: &str, throughput_per_s: f64) -> Trial {
        let mut t = crate::results::trial::example_trial(scheduler, 8, 0.0, Some((workload, 0.5)));
        t.beside.workload_throughput_per_s = Some(throughput_per_s);
        t
    }

    fn in_boot(mut t: Trial, boot: u32) -> Trial {
        t.id.boot = boot;
        t
    }

    #[test]
    fn runtime_is_the_geometric_mean_of_per_boot_ratios() {
        let trials = [
            // Boot 0: eevdf's mean 100, aegis's 50 (runtime 2); boot 1: 100 over 25 (4).
            in_boot(trial("eevdf", "hackbench", 90.0), 0),
            in_boot(trial("eevdf", "hackbench", 110.0), 0),
            in_boot(trial("aegis", "hackbench", 40.0), 0),
            in_boot(trial("aegis", "hackbench", 60.0), 0),
            in_boot(trial("eevdf", "hackbench", 100.0), 1),
            in_boot(trial("aegis", "hackbench", 25.0), 1),
            // A boot without eevdf: left out, counted.
            in_boot(trial("aegis", "hackbench", 10.0), 2),
            // No eevdf trial ran this workload: left out, counted.
            trial("aegis", "stress-ng-cpu", 10.0),
            trial("aegis", "hackbench", 0.0),
        ];
        let r = normalized_runtime(&trials).unwrap();
        assert_eq!(r.baseline, "eevdf");
        assert_eq!((r.without_baseline, r.without_throughput), (2, 1));
        let cell = Cell::of(&trials[0]).unwrap();
        let aegis = r.bars[&(cell.clone(), "aegis".to_string())];
        assert_eq!(aegis.n, 2);
        assert!((aegis.mean - 8f64.sqrt()).abs() < 1e-12, "{aegis:?}");
        // The baseline is the line at 1, not a bar.
        assert!(!r.bars.contains_key(&(cell, "eevdf".to_string())));
        assert_eq!(r.bars.len(), 1);
    }

    #[test]
    fn runtime_intervals_never_go_below_zero() {
        // Two boots whose ratios differ tenfold: a t interval on the ratios themselves (t =
        // 12.7) would reach far below zero; on their logarithms it cannot.
        let trials = [
            in_boot(trial("eevdf", "hackbench", 100.0), 0),
            in_boot(trial("aegis", "hackbench", 100.0), 0),
            in_boot(trial("eevdf", "hackbench", 100.0), 1),
            in_boot(trial("aegis", "hackbench", 10.0), 1),
        ];
        let r = normalized_runtime(&trials).unwrap();
        let aegis = r.bars.values().next().unwrap();
        let (low, high) = aegis.ci95.unwrap();
        assert!(low > 0.0 && low < 1.0 && high > 10.0, "{aegis:?}");
        // One boot: no interval.
        let r = normalized_runtime(&trials[..2]).unwrap();
        assert_eq!(r.bars.values().next().unwrap().ci95, None);
    }

    #[test]
    fn cfs_is_the_baseline_only_without_eevdf_and_cells_do_not_mix() {
        let mut other_threads = trial("cfs", "hackbench", 10.0);
        other_threads.id.threads = 2;
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
        // The baseline's cells are no bars: only aegis's is named.
        assert_eq!(labels[&cell], "hackbench");
        assert!(normalized_runtime(&[trial("aegis", "hackbench", 1.0)]).is_err());
        assert!(
            normalized_runtime(&[crate::results::trial::example_trial("eevdf", 1, 0.0, None)])
                .is_err()
        );
    }

    fn cell(workload: &str, collector: &str, threads: u32, ring_size_bytes: u64) -> Cell {
        Cell {
            workload: workload.into(),
            flood: "openat".into(),
            threads,
            collector: collector.into(),
            ring_size_bytes,
        }
    }

    #[test]
    fn the_grid_has_a_column_per_workload_a_row_per_collector_and_short_group_names() {
        let cells = [
            cell("hackbench", "builtin", 1, 16384),
            cell("hackbench", "builtin", 4, 16384),
            cell("stress-ng-cpu", "builtin-compact", 8, 16384),
        ];
        let grid = Grid::of(&cells);
        assert_eq!(grid.workloads, ["hackbench", "stress-ng-cpu"]);
        assert_eq!(grid.collectors, ["builtin", "builtin-compact"]);
        assert_eq!(
            grid.groups.keys().copied().collect::<Vec<_>>(),
            [(0, 0), (1, 1)]
        );
        assert_eq!(grid.groups[&(0, 0)].len(), 2);
        let labels: Vec<&str> = grid.labels.values().map(String::as_str).collect();
        assert_eq!(labels, ["x1", "x4", "x8"]);
        assert_eq!(grid.x_desc, "flood threads (openat flood, ring 16KiB)");
        // A ring size that varies is named under the groups.
        let grid = Grid::of(&[cell("w", "c", 1, 16384), cell("w", "c", 1, 65536)]);
        let labels: Vec<&str> = grid.labels.values().map(String::as_str).collect();
        assert_eq!(labels, ["x1, 16KiB", "x1, 64KiB"]);
        assert_eq!(grid.x_desc, "flood threads, ring size (openat flood)");
    }

    #[test]
    fn the_axis_stops_at_one_and_a_half_times_the_largest_mean_and_labels_do_not_overlap() {
        let m = |mean, high| Interval {
            mean,
            ci95: Some((0.0, high)),
            n: 2,
        };
        // Whiskers to 11 over means up to 2: the axis stops at 3.
        assert_eq!(axis_top(&[m(2.0, 11.0), m(1.0, 1.2)]), 3.0);
        // But never under 2, and no higher than the data needs.
        assert_eq!(axis_top(&[m(0.5, 9.0)]), 2.0);
        assert_eq!(axis_top(&[m(1.0, 1.1), m(3.0, 3.2)]), 3.5);
        assert_eq!(
            label_rows(&[(0, 20), (10, 30), (25, 45), (50, 60)]),
            [0, 1, 0, 0]
        );
        assert_eq!(label_rows(&[(0, 20), (5, 25), (10, 30)]), [0, 1, 0]);
        assert_eq!(clipped_value(10.702), "10.7");
        assert_eq!(clipped_value(5.049), "5.05");
    }
}
