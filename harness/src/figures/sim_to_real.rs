//! The sim-to-real figure `aegis-bench sim --validate` draws beside its report: real and
//! simulated loss at each intensity (real repetitions' spread as bars, the target's band
//! around the real mean), and the collector's CPU, real and simulated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{draw_legend, plot_err};
use crate::results::sim::{ValidationPoint, ValidationReport};

/// `results/sim-validate.json` -> `results/sim-validate.png` and `.svg`.
pub fn figure_paths(json: &Path) -> (PathBuf, PathBuf) {
    (json.with_extension("png"), json.with_extension("svg"))
}

/// Draws the report as PNG and SVG.
pub fn draw_validation(report: &ValidationReport, png: &Path, svg: &Path) -> Result<()> {
    const SIZE: (u32, u32) = (1100, 520);
    draw(report, &BitMapBackend::new(png, SIZE).into_drawing_area())
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(report, &SVGBackend::new(svg, SIZE).into_drawing_area())
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
}

const REAL: RGBColor = RGBColor(40, 40, 40);
const SIM: RGBColor = RGBColor(31, 119, 180);

fn draw<DB: DrawingBackend>(
    report: &ValidationReport,
    root: &DrawingArea<DB, Shift>,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let model = format!("{:?}", report.eevdf_model).to_lowercase();
    let title = format!(
        "Sim-to-real: EEVDF, built-in collector, {} flood, {} KiB ring, {} CPUs ({} model): \
         max error {:.2} points (target {})",
        report.flood,
        report.ring_size_bytes / 1024,
        report.cpus,
        model,
        report.max_error_pp,
        report.target_error_pp
    );
    let root = root.titled(&title, ("sans-serif", 18)).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(620);
    draw_loss(report, &left)?;
    draw_cpu(report, &right)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The thread counts' axis range and the most threads: both panels share them.
fn threads_axis(report: &ValidationReport) -> (std::ops::Range<f64>, f64) {
    let max_threads = report.points.iter().map(|p| p.threads).max().unwrap_or(1) as f64;
    (0.0..max_threads + 1.0, max_threads)
}

/// Left panel: real and simulated loss against producers, in the target's band.
fn draw_loss<DB: DrawingBackend>(
    report: &ValidationReport,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let (x_range, max_threads) = threads_axis(report);
    let mut loss = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, 0.0..100.0)
        .map_err(plot_err)?;
    loss.configure_mesh()
        .max_light_lines(1)
        .x_labels(max_threads as usize + 2)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("producers (flood threads)")
        .y_desc("events lost (%)")
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(plot_err)?;
    // The target: within `target_error_pp` of the real mean.
    let band: Vec<(f64, f64)> = report
        .points
        .iter()
        .map(|p| {
            (
                p.threads as f64,
                (p.real_loss_pct + report.target_error_pp).min(100.0),
            )
        })
        .chain(report.points.iter().rev().map(|p| {
            (
                p.threads as f64,
                (p.real_loss_pct - report.target_error_pp).max(0.0),
            )
        }))
        .collect();
    let band_colour = RGBColor(200, 200, 200).mix(0.5);
    loss.draw_series([Polygon::new(band, band_colour.filled())])
        .map_err(plot_err)?
        .label(format!("real +- {} points", report.target_error_pp))
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], band_colour.filled()));
    loss.draw_series(LineSeries::new(
        report
            .points
            .iter()
            .map(|p| (p.threads as f64, p.real_loss_pct)),
        REAL.stroke_width(2),
    ))
    .map_err(plot_err)?
    .label("real (mean; bars: repetitions' min..max)")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], REAL.stroke_width(2)));
    loss.draw_series(report.points.iter().map(|p| {
        ErrorBar::new_vertical(
            p.threads as f64,
            p.real_loss_pct_min,
            p.real_loss_pct,
            p.real_loss_pct_max,
            REAL.filled(),
            8,
        )
    }))
    .map_err(plot_err)?;
    loss.draw_series(LineSeries::new(
        report
            .points
            .iter()
            .map(|p| (p.threads as f64, p.sim_loss_pct)),
        SIM.stroke_width(2),
    ))
    .map_err(plot_err)?
    .label("simulated (mean of seeds)")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SIM.stroke_width(2)));
    loss.draw_series(
        report
            .points
            .iter()
            .map(|p| Circle::new((p.threads as f64, p.sim_loss_pct), 4, SIM.filled())),
    )
    .map_err(plot_err)?;
    draw_legend(&mut loss, SeriesLabelPosition::LowerRight)
}

/// Right panel: the collector's CPU seconds, real and simulated.
fn draw_cpu<DB: DrawingBackend>(
    report: &ValidationReport,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let (x_range, max_threads) = threads_axis(report);
    let max_cpu = report
        .points
        .iter()
        .flat_map(|p| [p.real_collector_cpu_s, p.sim_collector_cpu_s])
        .fold(0.0, f64::max);
    let mut cpu = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, 0.0..(max_cpu * 1.2).max(0.01))
        .map_err(plot_err)?;
    cpu.configure_mesh()
        .max_light_lines(1)
        .x_labels(max_threads as usize + 2)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("producers (flood threads)")
        .y_desc("collector CPU (s)")
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(plot_err)?;
    let real: fn(&ValidationPoint) -> f64 = |p| p.real_collector_cpu_s;
    let simulated: fn(&ValidationPoint) -> f64 = |p| p.sim_collector_cpu_s;
    for (label, colour, value) in [("real", REAL, real), ("simulated", SIM, simulated)] {
        cpu.draw_series(LineSeries::new(
            report.points.iter().map(|p| (p.threads as f64, value(p))),
            colour.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        cpu.draw_series(
            report
                .points
                .iter()
                .map(|p| Circle::new((p.threads as f64, value(p)), 4, colour.filled())),
        )
        .map_err(plot_err)?;
    }
    draw_legend(&mut cpu, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_go_beside_the_report() {
        let (png, svg) = figure_paths(Path::new("results/sim-validate.json"));
        assert_eq!(png, Path::new("results/sim-validate.png"));
        assert_eq!(svg, Path::new("results/sim-validate.svg"));
    }

    #[test]
    fn draws_the_committed_report() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../results/sim-validate.json"
        ))
        .unwrap();
        let report: ValidationReport = serde_json::from_str(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = figure_paths(&dir.path().join("v.json"));
        draw_validation(&report, &png, &svg).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert!(svg.contains("max error"), "the title names the error");
    }
}
