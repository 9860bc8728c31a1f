//! The sim-to-real figure `aegis-bench sim validate` draws beside its report: per scheduler,
//! real and simulated loss at each intensity (real repetitions' spread as bars, the target's
//! band around the real mean), and the collector's CPU (percent of one CPU), real and
//! simulated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::types::RangedCoordf64;
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

/// Per scheduler, in report order: the real series' colour and the simulated one's.
const COLOURS: [(RGBColor, RGBColor); 3] = [
    (RGBColor(40, 40, 40), RGBColor(31, 119, 180)),
    (RGBColor(150, 30, 30), RGBColor(255, 127, 14)),
    (RGBColor(30, 110, 40), RGBColor(148, 103, 189)),
];

/// The report's schedulers in order (`eevdf` for reports that predate naming them) and their
/// points.
fn by_scheduler(report: &ValidationReport) -> Vec<(String, Vec<&ValidationPoint>)> {
    let mut groups: Vec<(String, Vec<&ValidationPoint>)> = Vec::new();
    for p in &report.points {
        match groups.iter_mut().find(|(name, _)| *name == p.scheduler) {
            Some((_, points)) => points.push(p),
            None => groups.push((p.scheduler.clone(), vec![p])),
        }
    }
    groups
}

/// The collector's CPU in percent of one CPU, real and simulated.
fn cpu_pct(p: &ValidationPoint) -> (f64, f64) {
    let (real, sim, _) = p.collector_cpu_pct();
    (real, sim)
}

fn draw<DB: DrawingBackend>(
    report: &ValidationReport,
    root: &DrawingArea<DB, Shift>,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let model = format!("{:?}", report.eevdf_model).to_lowercase();
    let names: Vec<String> = by_scheduler(report).into_iter().map(|(n, _)| n).collect();
    let title = format!(
        "Sim-to-real: {}, built-in collector, {} flood, {} KiB ring, {} CPUs (EEVDF {} model): \
         max error {:.2} points of loss (target {})",
        names.join(", "),
        report.flood,
        report.ring_size_bytes / 1024,
        report.cpus,
        model,
        report.max_error_pp,
        report.target_error_pp
    );
    let root = root.titled(&title, ("sans-serif", 16)).map_err(plot_err)?;
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

/// Left panel: real and simulated loss against producers, each scheduler in the target's band.
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
    let target = report.target_error_pp;
    for (i, (name, points)) in by_scheduler(report).into_iter().enumerate() {
        let (real, sim) = COLOURS[i % COLOURS.len()];
        // The target: within `target_error_pp` of the real mean.
        let band: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.threads as f64, (p.real_loss_pct + target).min(100.0)))
            .chain(
                points
                    .iter()
                    .rev()
                    .map(|p| (p.threads as f64, (p.real_loss_pct - target).max(0.0))),
            )
            .collect();
        let band_colour = real.mix(0.15);
        loss.draw_series([Polygon::new(band, band_colour.filled())])
            .map_err(plot_err)?
            .label(format!("{name}: real +- {target} points"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], band_colour.filled())
            });
        loss.draw_series(LineSeries::new(
            points.iter().map(|p| (p.threads as f64, p.real_loss_pct)),
            real.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("{name}: real (mean; bars: min..max)"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], real.stroke_width(2)));
        loss.draw_series(points.iter().map(|p| {
            ErrorBar::new_vertical(
                p.threads as f64,
                p.real_loss_pct_min,
                p.real_loss_pct,
                p.real_loss_pct_max,
                real.filled(),
                8,
            )
        }))
        .map_err(plot_err)?;
        draw_simulated(&mut loss, &name, sim, &points, |p| p.sim_loss_pct)?;
    }
    draw_legend(&mut loss, SeriesLabelPosition::LowerRight)
}

/// A simulated series: a line through circles.
fn draw_simulated<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    name: &str,
    colour: RGBColor,
    points: &[&ValidationPoint],
    value: impl Fn(&ValidationPoint) -> f64,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.threads as f64, value(p))),
            colour.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("{name}: simulated (mean of seeds)"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.threads as f64, value(p)), 4, colour.filled())),
        )
        .map_err(plot_err)?;
    Ok(())
}

/// Right panel: the collector's CPU (percent of one CPU), real and simulated.
fn draw_cpu<DB: DrawingBackend>(
    report: &ValidationReport,
    area: &DrawingArea<DB, Shift>,
) -> Result<()> {
    let (x_range, max_threads) = threads_axis(report);
    let max_cpu = report
        .points
        .iter()
        .flat_map(|p| {
            let (real, sim) = cpu_pct(p);
            [real, sim]
        })
        .fold(0.0, f64::max);
    let mut cpu = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, 0.0..(max_cpu * 1.2).max(1.0))
        .map_err(plot_err)?;
    cpu.configure_mesh()
        .max_light_lines(1)
        .x_labels(max_threads as usize + 2)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("producers (flood threads)")
        .y_desc("collector CPU (% of one CPU)")
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(plot_err)?;
    for (i, (name, points)) in by_scheduler(report).into_iter().enumerate() {
        let (real, sim) = COLOURS[i % COLOURS.len()];
        cpu.draw_series(LineSeries::new(
            points.iter().map(|p| (p.threads as f64, cpu_pct(p).0)),
            real.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(format!("{name}: real"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], real.stroke_width(2)));
        cpu.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.threads as f64, cpu_pct(p).0), 4, real.filled())),
        )
        .map_err(plot_err)?;
        draw_simulated(&mut cpu, &name, sim, &points, |p| cpu_pct(p).1)?;
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
