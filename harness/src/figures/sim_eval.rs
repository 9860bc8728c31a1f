//! The figure `aegis-bench sim --evaluate` draws beside its report: for every configuration
//! (CPUs x producers), each policy's loss (top, the seeds' range as whiskers) and its ordinary
//! tasks' slowdown against the oracle's (bottom; 1, the line, is the least slowdown a lossless
//! scheduler allows; below it a policy gave ordinary tasks more than that, at the producers'
//! expense).

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
    const SIZE: (u32, u32) = (1400, 760);
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
    let groups: Vec<String> = configs
        .iter()
        .map(|(cpus, producers)| format!("{cpus}/{producers}"))
        .collect();
    let series: Vec<(String, RGBColor)> = policies.iter().map(|p| (p.clone(), colour(p))).collect();
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
    let loss = bars(&|row| Bar {
        value: row.loss_pct,
        whisker: (report.seeds > 1).then_some((row.loss_pct_min, row.loss_pct_max)),
        pale_on_top: None,
    });
    let slowdown = bars(&|row| Bar {
        value: row.slowdown_vs_oracle,
        whisker: None,
        pale_on_top: None,
    });
    let top_slowdown = slowdown.values().map(|b| b.value).fold(1.0_f64, f64::max) * 1.1;
    let legend = LegendStrip::new(
        series
            .iter()
            .map(|(name, colour)| (name.clone(), Swatch::Bar(*colour)))
            .collect(),
        width_px,
    );
    let (panels, strip) = legend.split_off(&root);
    let (upper, lower) = panels.split_vertically(panels.dim_in_pixel().1 / 2);
    let x_desc = "CPUs / producers";
    draw_bar_panel(
        &upper,
        &BarPanel {
            caption: "events lost",
            groups: &groups,
            series: &series,
            bars: &loss,
            x_desc,
            y_desc: "lost (%)",
            y_top: 100.0,
            reference: None,
        },
    )?;
    draw_bar_panel(
        &lower,
        &BarPanel {
            caption: "ordinary tasks' slowdown against the oracle's (1 = the least for zero loss)",
            groups: &groups,
            series: &series,
            bars: &slowdown,
            x_desc,
            y_desc: "slowdown vs oracle",
            y_top: top_slowdown,
            reference: Some(1.0),
        },
    )?;
    legend.draw(&strip)?;
    Ok(())
}
