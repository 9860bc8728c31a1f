//! Figures and a markdown report drawn from runs' trials, without running anything (the
//! `figures` command, in `commands/figures.rs`, picks the result files and writes the report).
//!
//! Runs are drawn one by one, never mixed: two runs may come from different machines. For
//! each run:
//!
//! - loss against attack intensity (flood threads), a line per scheduler, a panel per
//!   collector; the point is the mean over repetitions, the bar spans their minimum and maximum;
//! - with workloads beside the attack: the share of its no-attack throughput each workload
//!   kept, per scheduler, with the same mean and range;
//! - the workloads' runtime normalized to EEVDF's in the same cell, with 95 % confidence
//!   intervals (`runtime`);
//! - Jain's fairness index of the workload's and the attack's tasks (`fairness`);
//! - the CDF of run-queue waits (`delay_cdf`);
//! - Aegis against its ablated variants (`ablations`);
//! - the canary's causal chain as each scheduler's collector recorded it (`provenance`).
//!
//! A figure a run has no data for is a one-line note in the report instead. PNG and SVG of
//! each, and the report's text showing them with their numbers. Nothing depends on the clock,
//! so the same runs give the same files.

mod ablations;
mod delay_cdf;
mod fairness;
mod provenance;
mod runtime;
pub mod sim_eval;
pub mod sim_to_real;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::trial::Trial;

const SIZE: (u32, u32) = (1000, 560);
/// The loss axis goes past 100 % to leave the legend room above the data.
const LOSS_AXIS_TOP_PCT: f64 = 125.0;

/// One result file's trials.
pub struct Run {
    /// Path under `--results`, e.g. `aegis/flood.json`.
    pub name: String,
    pub trials: Vec<Trial>,
    /// See [`run_colours`].
    colours: BTreeMap<String, RGBColor>,
}

/// Mean, minimum and maximum of some repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        Some(Spread {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min,
            max,
            n: values.len(),
        })
    }

    /// `n | mean | min | max`, the middle of a table row, the numbers to `decimals` places.
    fn cells(&self, decimals: usize) -> String {
        let Spread { mean, min, max, n } = self;
        format!("{n} | {mean:.decimals$} | {min:.decimals$} | {max:.decimals$}")
    }
}

/// The markdown report: a section per run, each figure drawn beside it as it is added.
pub struct Report {
    text: String,
    /// The runs' figure file prefixes so far (see [`file_stem`]).
    stems: BTreeSet<String>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            text: String::from(
                "# aegis-bench results\n\nMade by `aegis-bench figures` from the result files; \
                 one section per file (one run each). Points are means over repetitions, bars \
                 their range.\n",
            ),
            stems: BTreeSet::new(),
        }
    }

    /// Draws a run's figures into `out` and adds its section: loss, the workloads' kept share,
    /// then the figures of the other modules.
    pub fn add_run(&mut self, run: &Run, out: &Path) -> Result<()> {
        let stem = file_stem(&run.name, &self.stems);
        self.stems.insert(stem.clone());
        let report = &mut self.text;
        writeln!(report, "\n## `{}`\n", run.name)?;
        loss_section(run, &stem, out, report)?;
        kept_section(run, &stem, out, report)?;
        runtime::section(run, &stem, out, report)?;
        fairness::section(run, &stem, out, report)?;
        delay_cdf::section(run, &stem, out, report)?;
        ablations::section(run, &stem, out, report)?;
        provenance::section(run, &stem, out, report)?;
        Ok(())
    }

    /// The report's markdown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}

/// Loss against flood threads, and its table.
fn loss_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
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
fn kept_section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
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

/// The figures' file name prefix for a run: its path without the extension, `/` as `-`
/// (`sweep/trials.jsonl` gives `sweep-trials`); the whole path if that prefix is taken (a
/// directory holding both `trials.json` and `trials.jsonl`).
fn file_stem(name: &str, taken: &BTreeSet<String>) -> String {
    let short = name
        .strip_suffix(".jsonl")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name)
        .replace('/', "-");
    if taken.contains(&short) {
        name.replace(['/', '.'], "-")
    } else {
        short
    }
}

type LossSeries = BTreeMap<(String, String), BTreeMap<u32, Spread>>;

/// The line a trial belongs to: its scheduler, plus whatever else varies in the run (ring
/// size, auditd's backlog settings), so that different set-ups are never averaged together.
fn series_label(t: &Trial, trials: &[Trial]) -> String {
    let mut label = t.scheduler.clone();
    let same_collector = || trials.iter().filter(|o| o.collector == t.collector);
    let mut rings: Vec<u64> = same_collector().map(|o| o.ring_size_bytes).collect();
    rings.sort_unstable();
    rings.dedup();
    if rings.len() > 1 {
        write!(
            label,
            ", ring {}",
            crate::size::format_size(t.ring_size_bytes)
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
            .entry((t.collector.clone(), series_label(t, trials)))
            .or_default()
            .entry(t.threads)
            .or_default()
            .push(t.loss_pct);
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
        if let (Some(workload), Some(kept)) = (&t.workload, t.workload_kept_fraction) {
            values
                .entry((workload.clone(), t.scheduler.clone()))
                .or_default()
                .push(kept);
        }
    }
    values
        .into_iter()
        .filter_map(|(key, v)| Spread::of(&v).map(|s| (key, s)))
        .collect()
}

/// A figure of a run. One closure can't take both backends' drawing areas, so the drawing
/// code is a generic method and [`draw_both`] calls it once per backend.
trait Figure {
    /// Width and height in pixels; a figure whose height grows with its content overrides it.
    fn size_px(&self) -> (u32, u32) {
        SIZE
    }

    /// Draws on `root`; [`draw_on`] fills it white before and writes it out after.
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws one figure as `file.png` and `file.svg` (the same drawing code, two backends).
fn draw_both(out: &Path, file: &str, run: &Run, figure: &impl Figure) -> Result<()> {
    let png = out.join(format!("{file}.png"));
    let svg = out.join(format!("{file}.svg"));
    let size_px = figure.size_px();
    draw_on(
        run,
        figure,
        BitMapBackend::new(&png, size_px).into_drawing_area(),
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    draw_on(
        run,
        figure,
        SVGBackend::new(&svg, size_px).into_drawing_area(),
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
}

/// One backend's file: a white ground, the figure, written out.
fn draw_on<DB: DrawingBackend>(
    run: &Run,
    figure: &impl Figure,
    root: DrawingArea<DB, Shift>,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    figure.draw(run, &root)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// A figure's part of the report: with `data`, the figure drawn as `file.png` and `file.svg`
/// and shown, and `data` handed back for the table under it; without (`Err`), the note why.
fn figure_section<F: Figure>(
    data: Result<F, String>,
    run: &Run,
    out: &Path,
    file: &str,
    alt: &str,
    report: &mut String,
) -> Result<Option<F>> {
    let figure = match data {
        Ok(figure) => figure,
        Err(note) => {
            writeln!(report, "\n{note}")?;
            return Ok(None);
        }
    };
    draw_both(out, file, run, &figure)?;
    writeln!(report, "\n![{alt}]({file}.svg)\n")?;
    Ok(Some(figure))
}

/// The area under a figure's title; the run's name follows the title in brackets.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    run: &Run,
    title: &str,
) -> Result<DrawingArea<DB, Shift>> {
    root.titled(&format!("{title} ({})", run.name), ("sans-serif", 22))
        .map_err(plot_err)
}

/// A plotters drawing error as an [`anyhow::Error`] (its error types differ per backend).
fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("{e}")
}

/// The series' legend, boxed on a translucent white ground (shared by every figure).
pub fn draw_legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(plot_err)
}

/// The usual set-ups' colours, the same in every run and figure.
fn fixed_colour(name: &str) -> Option<RGBColor> {
    match name {
        "eevdf" | "cfs" => Some(RGBColor(31, 119, 180)),
        "aegis" => Some(RGBColor(214, 39, 40)),
        "scx_rustland" => Some(RGBColor(44, 160, 44)),
        "eevdf:collector-fifo" | "cfs:collector-fifo" => Some(RGBColor(148, 103, 189)),
        _ => None,
    }
}

/// Colours for the other names, handed out in name order.
const OTHER_COLOURS: [RGBColor; 7] = [
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
    RGBColor(31, 60, 110),
];

/// A colour for every scheduler and loss series of a run: the usual set-ups keep their own,
/// every other name takes the next unused colour in name order, so that no two of a run's
/// series share one (Aegis's variants, `eevdf:attack-nice`, ...) and a name has the same
/// colour in each of the run's figures.
fn run_colours(trials: &[Trial]) -> BTreeMap<String, RGBColor> {
    let mut names: std::collections::BTreeSet<String> =
        trials.iter().map(|t| t.scheduler.clone()).collect();
    names.extend(trials.iter().map(|t| series_label(t, trials)));
    let mut others = OTHER_COLOURS.iter().cycle();
    names
        .into_iter()
        .map(|name| {
            let colour = fixed_colour(&name)
                .or_else(|| others.next().copied())
                .unwrap_or(BLACK);
            (name, colour)
        })
        .collect()
}

impl Run {
    pub fn new(name: String, trials: Vec<Trial>) -> Run {
        Run {
            name,
            colours: run_colours(&trials),
            trials,
        }
    }

    /// The colour of a scheduler (or loss series) in this run's figures.
    fn colour(&self, name: &str) -> RGBColor {
        self.colours.get(name).copied().unwrap_or(BLACK)
    }

    /// Each name with its colour: the series of a [`BarPanel`].
    fn series<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<(String, RGBColor)> {
        names
            .into_iter()
            .map(|name| (name.clone(), self.colour(name)))
            .collect()
    }
}

/// A number as an axis tick or in a table: at most three decimals, no trailing zeros.
fn tick(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// A table cell: fixed decimals, or `–` when there is no number.
fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

/// The x axis label under category `i` of a bar chart spanning `0..names.len()`: name `i` at
/// `i + 0.5`, nothing at the other ticks.
fn centred_category(x: f64, names: &[String]) -> String {
    let i = (x - 0.5).round();
    if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Swatch {
    Bar(RGBColor),
    PaleBar(RGBColor),
    Line(RGBColor),
    DashedLine(RGBColor),
}

/// A legend in a strip of its own under a multi-panel figure: one legend for all panels, and
/// it covers no data.
struct LegendStrip {
    entries: Vec<(String, Swatch)>,
    columns: usize,
    column_px: i32,
}

impl LegendStrip {
    const ROW_PX: i32 = 24;
    const FONT_PX: u32 = 14;

    fn new(entries: Vec<(String, Swatch)>, width_px: u32) -> Self {
        // Columns as wide as the longest label (~8 px a character at 14 px) plus the swatch.
        let longest = entries
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let column_px = longest as i32 * 8 + 48;
        let fit = ((width_px as i32 - 40) / column_px).max(1) as usize;
        LegendStrip {
            columns: fit.min(entries.len()).max(1),
            column_px,
            entries,
        }
    }

    /// A filled box for each of a bar chart's series.
    fn of_bars(series: &[(String, RGBColor)]) -> Self {
        let entries = series
            .iter()
            .map(|(name, colour)| (name.clone(), Swatch::Bar(*colour)))
            .collect();
        LegendStrip::new(entries, SIZE.0)
    }

    fn height_px(&self) -> u32 {
        (self.entries.len().div_ceil(self.columns) as i32 * Self::ROW_PX + 16) as u32
    }

    /// `area` split into what is above the legend and the legend's strip at its bottom.
    fn split_off<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
        area.split_vertically(area.dim_in_pixel().1 - self.height_px())
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        let (width_px, _) = area.dim_in_pixel();
        let left = (width_px as i32 - self.columns as i32 * self.column_px) / 2;
        let font = TextStyle::from(("sans-serif", Self::FONT_PX).into_font())
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, (label, swatch)) in self.entries.iter().enumerate() {
            let x = left + (i % self.columns) as i32 * self.column_px;
            let y = 8 + (i / self.columns) as i32 * Self::ROW_PX + Self::ROW_PX / 2;
            match *swatch {
                Swatch::Bar(c) => {
                    area.draw(&Rectangle::new([(x, y - 6), (x + 24, y + 6)], c.filled()))
                }
                Swatch::PaleBar(c) => area.draw(&Rectangle::new(
                    [(x, y - 6), (x + 24, y + 6)],
                    c.mix(PALE).filled(),
                )),
                Swatch::Line(c) => {
                    area.draw(&PathElement::new([(x, y), (x + 24, y)], c.stroke_width(3)))
                }
                Swatch::DashedLine(c) => dashed_line(area, (x, y), (x + 24, y), c.stroke_width(3)),
            }
            .map_err(plot_err)?;
            area.draw(&Text::new(label.clone(), (x + 32, y), font.clone()))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// The opacity of a pale bar (a stacked second quantity).
const PALE: f64 = 0.35;

/// A dashed straight line in pixels: 8 px dashes, 5 px gaps.
fn dashed_line<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    from: (i32, i32),
    to: (i32, i32),
    style: ShapeStyle,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const DASH_PX: f64 = 8.0;
    const GAP_PX: f64 = 5.0;
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let length = dx.hypot(dy);
    if length == 0.0 {
        return Ok(());
    }
    let at = |d: f64| {
        (
            from.0 + (dx * d / length).round() as i32,
            from.1 + (dy * d / length).round() as i32,
        )
    };
    let mut start = 0.0;
    while start < length {
        let end = (start + DASH_PX).min(length);
        area.draw(&PathElement::new([at(start), at(end)], style))?;
        start = end + GAP_PX;
    }
    Ok(())
}

/// One bar of a [`BarPanel`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bar {
    value: f64,
    /// Drawn over the bar: a confidence interval or the repetitions' range.
    whisker: Option<(f64, f64)>,
    /// A second quantity stacked pale on the bar (inferences skipped over those run).
    pale_on_top: Option<f64>,
}

impl Bar {
    /// The mean, with the range as whisker when there was more than one value.
    fn of_spread(s: &Spread) -> Bar {
        Bar {
            value: s.mean,
            whisker: (s.n > 1).then_some((s.min, s.max)),
            pale_on_top: None,
        }
    }
}

/// A bar chart: groups along x, named under them; in each a slot per series, so that a series
/// keeps its place across groups. The series' legend is the figure's [`LegendStrip`].
struct BarPanel<'a> {
    caption: &'a str,
    groups: &'a [String],
    series: &'a [(String, RGBColor)],
    /// By (group, series) index.
    bars: &'a BTreeMap<(usize, usize), Bar>,
    x_desc: &'a str,
    y_desc: &'a str,
    y_top: f64,
    /// A horizontal line across the chart (the baseline of a ratio).
    reference: Option<f64>,
}

fn draw_bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &BarPanel<'_>,
) -> Result<()> {
    let groups = p.groups.len().max(1);
    let mut builder = ChartBuilder::on(area);
    if !p.caption.is_empty() {
        builder.caption(p.caption, ("sans-serif", 17));
    }
    let mut chart = builder
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..groups as f64, 0.0..p.y_top)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&|x| centred_category(*x, p.groups))
        .y_label_formatter(&|y| tick(*y))
        .x_desc(p.x_desc)
        .y_desc(p.y_desc)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    // Intervals can reach past the axis (a wide CI below zero): drawn to its edge.
    let clamp = |v: f64| v.clamp(0.0, p.y_top);
    let width = 0.8 / p.series.len().max(1) as f64;
    for (k, (_, colour)) in p.series.iter().enumerate() {
        let colour = *colour;
        let bars: Vec<(f64, Bar)> = p
            .bars
            .iter()
            .filter(|((_, series), _)| *series == k)
            .map(|((group, _), bar)| (*group as f64 + 0.1 + k as f64 * width, *bar))
            .collect();
        chart
            .draw_series(bars.iter().map(|(x, b)| {
                Rectangle::new(
                    [(*x, 0.0), (*x + width * 0.9, clamp(b.value))],
                    colour.filled(),
                )
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().filter_map(|(x, b)| {
                b.pale_on_top.map(|pale| {
                    Rectangle::new(
                        [
                            (*x, clamp(b.value)),
                            (*x + width * 0.9, clamp(b.value + pale)),
                        ],
                        colour.mix(PALE).filled(),
                    )
                })
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(bars.iter().filter_map(|(x, b)| {
                b.whisker.map(|(low, high)| {
                    ErrorBar::new_vertical(
                        x + width * 0.45,
                        clamp(low),
                        clamp(b.value),
                        clamp(high),
                        BLACK.stroke_width(1),
                        6,
                    )
                })
            }))
            .map_err(plot_err)?;
    }
    if let Some(y) = p.reference {
        chart
            .draw_series(LineSeries::new(
                [(0.0, y), (groups as f64, y)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// A panel's "nothing to show" message, centred.
fn draw_empty_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    message: &str,
) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let centred = |px| {
        TextStyle::from(("sans-serif", px).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
    };
    area.draw(&Text::new(
        caption.to_string(),
        (w as i32 / 2, 20),
        centred(17),
    ))
    .map_err(plot_err)?;
    area.draw(&Text::new(
        message.to_string(),
        (w as i32 / 2, h as i32 / 2),
        centred(15).color(&BLACK.mix(0.6)),
    ))
    .map_err(plot_err)?;
    Ok(())
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

    fn trial(scheduler: &str, threads: u32, loss: f64, kept: Option<f64>) -> Trial {
        example_trial(scheduler, threads, loss, kept.map(|k| ("stress-ng-cpu", k)))
    }

    #[test]
    fn repetitions_fold_into_mean_and_range() {
        let trials = [
            trial("eevdf", 4, 60.0, None),
            trial("eevdf", 4, 70.0, None),
            trial("eevdf", 8, 80.0, None),
            trial("aegis", 4, 0.0, None),
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

    #[test]
    fn every_series_of_a_run_has_its_own_colour_and_the_usual_ones_keep_theirs() {
        let trials = [
            trial("aegis", 8, 0.0, None),
            trial("aegis:no-model", 8, 0.0, None),
            trial("aegis:no-wait-bound", 8, 0.0, None),
            trial("aegis:no-delta-gating", 8, 0.0, None),
            trial("eevdf", 8, 0.0, None),
        ];
        let run = Run::new("r".into(), trials.to_vec());
        let colours: BTreeSet<_> = run.colours.values().map(|c| (c.0, c.1, c.2)).collect();
        assert_eq!(colours.len(), 5);
        assert_eq!(Some(run.colour("aegis")), fixed_colour("aegis"));
        assert_eq!(Some(run.colour("eevdf")), fixed_colour("eevdf"));
    }

    #[test]
    fn stems_stay_unique() {
        let taken = BTreeSet::from(["r-trials".to_string()]);
        assert_eq!(file_stem("r/trials.json", &Default::default()), "r-trials");
        assert_eq!(file_stem("r/trials.jsonl", &taken), "r-trials-jsonl");
    }
}
