//! The figure `aegis-bench sim --evaluate` draws beside its report: for every configuration
//! (CPUs x producers), each policy's loss (top, the seeds' range as whiskers), its ordinary
//! tasks' slowdown against the bound at its own operating point (middle; 1, the line, is the
//! least slowdown any scheduler allows while the producers make that progress with that loss;
//! no bar is below it) and against the fair-share reference (bottom; not a bound: below 1 the
//! ordinary tasks got more than their fair share, the producers less or events were lost).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{draw_bar_panel, plot_err, Bar, BarPanel, LegendStrip, Swatch};
use crate::results::sim::{EvalReport, EvalRow};

/// `results/sim-evaluate.json` -> `results/sim-evaluate.png` and `.svg`.
pub fn figure_paths(json: &Path) -> (PathBuf, PathBuf) {
    (json.with_extension("png"), json.with_extension("svg"))
}

/// Draws the report as PNG and SVG.
pub fn draw_evaluation(report: &EvalReport, png: &Path, svg: &Path) -> Result<()> {
    const SIZE: (u32, u32) = (1400, 1060);
    draw(
        report,
        &BitMapBackend::new(png, SIZE).into_drawing_area(),
        SIZE.0,
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    draw(
        report,
        &SVGBackend::new(svg, SIZE).into_drawing_area(),
        SIZE.0,
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
}

/// Each policy's colour: the schedulers' usual ones for their simulated kin.
fn colour(policy: &str) -> RGBColor {
    match policy {
        "eevdf" => RGBColor(31, 119, 180),
        "cfs" => RGBColor(23, 190, 207),
        "rustland" => RGBColor(44, 160, 44),
        "aegis-no-net" => RGBColor(255, 127, 14),
        "aegis-dqn" => RGBColor(214, 39, 40),
        _ => RGBColor(127, 127, 127),
    }
}

/// The figure's data: configurations (the groups), policies (the series) and each panel's
/// bars.
struct Panels {
    groups: Vec<String>,
    series: Vec<(String, RGBColor)>,
    loss: BTreeMap<(usize, usize), Bar>,
    vs_bound: BTreeMap<(usize, usize), Bar>,
    vs_fair: BTreeMap<(usize, usize), Bar>,
}

impl Panels {
    fn of(report: &EvalReport) -> Self {
        // Configurations in the report's order, policies in their first appearance's order.
        let mut configs: Vec<(usize, usize)> = Vec::new();
        let mut policies: Vec<String> = Vec::new();
        for row in &report.rows {
            if !configs.contains(&(row.cpus, row.producers)) {
                configs.push((row.cpus, row.producers));
            }
            if !policies.contains(&row.policy) {
                policies.push(row.policy.clone());
            }
        }
        let slot = |row: &EvalRow| {
            let group = configs
                .iter()
                .position(|c| *c == (row.cpus, row.producers))
                .expect("listed above");
            let series = policies
                .iter()
                .position(|p| *p == row.policy)
                .expect("listed above");
            (group, series)
        };
        let bars = |bar: &dyn Fn(&EvalRow) -> Bar| -> BTreeMap<(usize, usize), Bar> {
            report
                .rows
                .iter()
                .map(|row| (slot(row), bar(row)))
                .collect()
        };
        let plain = |value: f64| Bar {
            value,
            whisker: None,
            pale_on_top: None,
        };
        Panels {
            groups: configs
                .iter()
                .map(|(cpus, producers)| format!("{cpus}/{producers}"))
                .collect(),
            series: policies.iter().map(|p| (p.clone(), colour(p))).collect(),
            loss: bars(&|row| Bar {
                value: row.loss_pct,
                whisker: (report.seeds > 1).then_some((row.loss_pct_min, row.loss_pct_max)),
                pale_on_top: None,
            }),
            vs_bound: bars(&|row| plain(row.slowdown_vs_bound)),
            vs_fair: bars(&|row| plain(row.slowdown_vs_fair_share)),
        }
    }
}

fn draw<DB: DrawingBackend>(
    report: &EvalReport,
    root: &DrawingArea<DB, Shift>,
    width_px: u32,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let title = format!(
        "Simulated {} flood, {}-event ring, {} EEVDF model, {} seeds of {} s per bar",
        report.flood,
        report.ring_capacity_events,
        format!("{:?}", report.eevdf_model).to_lowercase(),
        report.seeds,
        report.duration_s
    );
    let root = root.titled(&title, ("sans-serif", 18)).map_err(plot_err)?;
    let p = Panels::of(report);
    let top = |bars: &BTreeMap<(usize, usize), Bar>| {
        bars.values().map(|b| b.value).fold(1.0_f64, f64::max) * 1.1
    };
    let legend = LegendStrip::new(
        p.series
            .iter()
            .map(|(name, colour)| (name.clone(), Swatch::Bar(*colour)))
            .collect(),
        width_px,
    );
    let (panels, strip) = legend.split_off(&root);
    let third = panels.dim_in_pixel().1 / 3;
    let (upper, rest) = panels.split_vertically(third);
    let (middle, lower) = rest.split_vertically(third);
    let panel = |caption, bars, y_desc, y_top, reference| BarPanel {
        caption,
        groups: &p.groups,
        series: &p.series,
        bars,
        x_desc: "CPUs / producers",
        y_desc,
        y_top,
        reference,
    };
    draw_bar_panel(
        &upper,
        &panel("events lost", &p.loss, "lost (%)", 100.0, None),
    )?;
    draw_bar_panel(
        &middle,
        &panel(
            "ordinary tasks' slowdown against the bound at the same producer progress and loss \
             (1 = the least possible)",
            &p.vs_bound,
            "slowdown vs bound",
            top(&p.vs_bound),
            Some(1.0),
        ),
    )?;
    draw_bar_panel(
        &lower,
        &panel(
            "ordinary tasks' slowdown against the lossless fair share (not a bound: below 1 = \
             more than their fair share)",
            &p.vs_fair,
            "slowdown vs fair share",
            top(&p.vs_fair),
            Some(1.0),
        ),
    )?;
    legend.draw(&strip)?;
    Ok(())
}
