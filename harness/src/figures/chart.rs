//! The drawing kit the figures share: number formats, the legend strip under a multi-panel
//! figure, dashed lines, bar panels and empty panels.

use std::collections::BTreeMap;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{plot_err, Interval, SIZE};

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

/// A number as an axis tick or in a table: at most three decimals, no trailing zeros.
pub(super) fn tick(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// A table cell: fixed decimals, or `–` when there is no number.
pub(super) fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

/// The x axis label under category `i` of a bar chart spanning `0..names.len()`: name `i` at
/// `i + 0.5`, nothing at the other ticks.
pub(super) fn centred_category(x: f64, names: &[String]) -> String {
    let i = (x - 0.5).round();
    if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Swatch {
    Bar(RGBColor),
    PaleBar(RGBColor),
    Line(RGBColor),
    DashedLine(RGBColor),
}

/// A legend in a strip of its own under a multi-panel figure: one legend for all panels, and
/// it covers no data.
pub(super) struct LegendStrip {
    entries: Vec<(String, Swatch)>,
    columns: usize,
    column_px: i32,
}

impl LegendStrip {
    const ROW_PX: i32 = 24;
    const FONT_PX: u32 = 14;

    pub(super) fn new(entries: Vec<(String, Swatch)>, width_px: u32) -> Self {
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
    pub(super) fn of_bars(series: &[(String, RGBColor)]) -> Self {
        Self::of_bars_in(series, SIZE.0)
    }

    /// [`Self::of_bars`] for a figure `width_px` wide.
    pub(super) fn of_bars_in(series: &[(String, RGBColor)], width_px: u32) -> Self {
        let entries = series
            .iter()
            .map(|(name, colour)| (name.clone(), Swatch::Bar(*colour)))
            .collect();
        LegendStrip::new(entries, width_px)
    }

    pub(super) fn height_px(&self) -> u32 {
        (self.entries.len().div_ceil(self.columns) as i32 * Self::ROW_PX + 16) as u32
    }

    /// `area` split into what is above the legend and the legend's strip at its bottom.
    pub(super) fn split_off<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
        area.split_vertically(area.dim_in_pixel().1 - self.height_px())
    }

    pub(super) fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
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
pub(super) fn dashed_line<DB: DrawingBackend>(
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
pub(super) struct Bar {
    pub(super) value: f64,
    /// Drawn over the bar: a confidence interval or the repetitions' range.
    pub(super) whisker: Option<(f64, f64)>,
    /// A second quantity stacked pale on the bar (inferences skipped over those run).
    pub(super) pale_on_top: Option<f64>,
}

impl Bar {
    /// The mean, with its confidence interval as whisker (none for one boot).
    pub(super) fn of_interval(i: &Interval) -> Bar {
        Bar {
            value: i.mean,
            whisker: i.ci95,
            pale_on_top: None,
        }
    }
}

/// A bar chart: groups along x, named under them; in each a slot per series, so that a series
/// keeps its place across groups. The series' legend is the figure's [`LegendStrip`].
pub(super) struct BarPanel<'a> {
    pub(super) caption: &'a str,
    pub(super) groups: &'a [String],
    pub(super) series: &'a [(String, RGBColor)],
    /// By (group, series) index.
    pub(super) bars: &'a BTreeMap<(usize, usize), Bar>,
    pub(super) x_desc: &'a str,
    pub(super) y_desc: &'a str,
    pub(super) y_top: f64,
    /// A horizontal line across the chart (the baseline of a ratio).
    pub(super) reference: Option<f64>,
}

pub(super) fn draw_bar_panel<DB: DrawingBackend>(
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
pub(super) fn draw_empty_panel<DB: DrawingBackend>(
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

/// A table cell of an interval: `mean [low, high]`, `mean (n=1)`, or `–` without one.
pub(super) fn interval_cell(i: Option<&Interval>, decimals: usize) -> String {
    i.map_or_else(|| "–".into(), |i| i.display(decimals))
}

/// The y axis's top for bars and their whiskers: a tenth over the highest, at least `floor`.
pub(super) fn bars_top<'a>(bars: impl IntoIterator<Item = &'a Bar>, floor: f64) -> f64 {
    bars.into_iter()
        .map(|b| {
            let whisker = b.whisker.map_or(b.value, |(_, high)| high);
            whisker.max(b.value + b.pale_on_top.unwrap_or(0.0))
        })
        .filter(|v| v.is_finite())
        .fold(floor, f64::max)
        * 1.1
}

/// The width of a bar figure of `groups` groups of `series` bars a panel, `panels` panels side
/// by side: at least [`SIZE`]'s, and about 28 px a bar.
pub(super) fn bars_width_px(panels: usize, groups: usize, series: usize) -> u32 {
    let panel = 90 + (groups.max(1) * series.max(1)) as u32 * 28 * 10 / 8;
    SIZE.0.max(panel * panels.max(1) as u32)
}
