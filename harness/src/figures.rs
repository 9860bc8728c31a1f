//! `aegis-bench figures`: figures and a markdown report from result files, without running
//! anything.
//!
//! Every `*.json` file under `--results` that holds a list of trials (what `attack --json`
//! writes) is one run; other JSON files (calibrations, simulator reports) are skipped. Runs are
//! drawn one by one, never mixed: two runs may come from different machines. For each run:
//!
//! - loss against attack intensity (flood threads), a line per scheduler, a panel per
//!   collector; the point is the mean over repetitions, the bar spans their minimum and maximum;
//! - with workloads beside the attack: the share of its no-attack throughput each workload
//!   kept, per scheduler, with the same mean and range.
//!
//! PNG and SVG of each, and `report.md` showing them with their numbers. Inputs are read in
//! sorted order and nothing depends on the clock, so the same results give the same files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::cli::FiguresArgs;
use crate::trial::Trial;

const SIZE: (u32, u32) = (1000, 560);
/// The loss axis goes past 100 % to leave the legend room above the data.
const LOSS_AXIS_TOP_PCT: f64 = 125.0;

/// One result file's trials.
struct Run {
    /// Path under `--results`, e.g. `aegis/flood.json`.
    name: String,
    trials: Vec<Trial>,
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
}

pub fn figures(args: &FiguresArgs) -> Result<()> {
    let runs = read_runs(&args.results)?;
    if runs.is_empty() {
        anyhow::bail!(
            "no trial lists under {}: point --results at a directory of `attack --json` files",
            args.results.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut report = String::from(
        "# aegis-bench results\n\nMade by `aegis-bench figures` from the result files; one \
         section per file (one run each). Points are means over repetitions, bars their range.\n",
    );
    for run in &runs {
        let stem = run.name.trim_end_matches(".json").replace('/', "-");
        writeln!(report, "\n## `{}`\n", run.name)?;
        let loss = loss_series(&run.trials);
        let loss_file = format!("{stem}-loss");
        draw_both(
            &args.out,
            &loss_file,
            |root| draw_loss(run, &loss, root),
            |root| draw_loss(run, &loss, root),
        )?;
        writeln!(report, "![loss]({loss_file}.svg)\n")?;
        report
            .push_str("| collector | scheduler | threads | trials | loss % (mean) | min | max |\n");
        report.push_str("|---|---|---|---|---|---|---|\n");
        for ((collector, scheduler), points) in &loss {
            for (threads, s) in points {
                writeln!(
                    report,
                    "| {collector} | {scheduler} | {threads} | {} | {:.2} | {:.2} | {:.2} |",
                    s.n, s.mean, s.min, s.max
                )?;
            }
        }
        let kept = kept_series(&run.trials);
        if !kept.is_empty() {
            let kept_file = format!("{stem}-workload-kept");
            draw_both(
                &args.out,
                &kept_file,
                |root| draw_kept(run, &kept, root),
                |root| draw_kept(run, &kept, root),
            )?;
            writeln!(report, "\n![workload kept]({kept_file}.svg)\n")?;
            report.push_str("| workload | scheduler | trials | kept (mean) | min | max |\n");
            report.push_str("|---|---|---|---|---|---|\n");
            for ((workload, scheduler), s) in &kept {
                writeln!(
                    report,
                    "| {workload} | {scheduler} | {} | {:.2} | {:.2} | {:.2} |",
                    s.n, s.mean, s.min, s.max
                )?;
            }
        }
        crate::say!("figures: {} ({} trials)", run.name, run.trials.len());
    }
    let report_path = args.out.join("report.md");
    std::fs::write(&report_path, report)
        .with_context(|| format!("writing {}", report_path.display()))?;
    crate::say!("wrote {} and its figures", report_path.display());
    Ok(())
}

/// Every trial list under `dir`, by path.
fn read_runs(dir: &Path) -> Result<Vec<Run>> {
    let mut files = Vec::new();
    collect_json(dir, &mut files)
        .with_context(|| format!("reading the results directory {}", dir.display()))?;
    files.sort();
    let mut runs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        // Not a trial list (a calibration, a simulator report): not ours to draw.
        let Ok(trials) = serde_json::from_str::<Vec<Trial>>(&text) else {
            continue;
        };
        if trials.is_empty() {
            continue;
        }
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        runs.push(Run { name, trials });
    }
    Ok(runs)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
    Ok(())
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

/// Kept fraction per (workload, scheduler).
pub fn kept_series(trials: &[Trial]) -> BTreeMap<(String, String), Spread> {
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

/// Draws one figure as `stem.png` and `stem.svg` (the same drawing code, two backends).
fn draw_both(
    out: &Path,
    stem: &str,
    png_draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
    svg_draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    let png = out.join(format!("{stem}.png"));
    let svg = out.join(format!("{stem}.svg"));
    png_draw(BitMapBackend::new(&png, SIZE).into_drawing_area())
        .with_context(|| format!("drawing {}", png.display()))?;
    svg_draw(SVGBackend::new(&svg, SIZE).into_drawing_area())
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
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
        .map_err(|e| anyhow!("{e}"))
}

/// A distinct colour per scheduler, stable across figures (by name).
fn scheduler_colour(name: &str) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    match name {
        "eevdf" | "cfs" => PALETTE[0],
        "aegis" => PALETTE[1],
        "scx_rustland" => PALETTE[2],
        "eevdf:collector-fifo" | "cfs:collector-fifo" => PALETTE[3],
        _ => {
            let hash = name
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            PALETTE[4 + (hash % 4) as usize]
        }
    }
}

fn draw_loss<DB: DrawingBackend>(
    run: &Run,
    series: &LossSeries,
    root: DrawingArea<DB, Shift>,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!("Event loss against attack intensity ({})", run.name),
            ("sans-serif", 22),
        )
        .map_err(err)?;
    let collectors: Vec<&String> = {
        let mut c: Vec<&String> = series.keys().map(|(c, _)| c).collect();
        c.dedup();
        c
    };
    let panels = root.split_evenly((1, collectors.len().max(1)));
    let max_threads = series
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
            .map_err(err)?;
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
            .map_err(err)?;
        for ((c, scheduler), points) in series {
            if c != *collector {
                continue;
            }
            let colour = scheduler_colour(scheduler);
            let line: Vec<(f64, f64)> = points.iter().map(|(t, s)| (*t as f64, s.mean)).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                .map_err(err)?
                .label(scheduler.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(line.iter().map(|p| Circle::new(*p, 4, colour.filled())))
                .map_err(err)?;
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
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

fn draw_kept<DB: DrawingBackend>(
    run: &Run,
    series: &BTreeMap<(String, String), Spread>,
    root: DrawingArea<DB, Shift>,
) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
    root.fill(&WHITE).map_err(err)?;
    // One group of bars per workload, a bar per scheduler.
    let workloads: Vec<&String> = {
        let mut w: Vec<&String> = series.keys().map(|(w, _)| w).collect();
        w.dedup();
        w
    };
    let mut schedulers: Vec<&String> = series.keys().map(|(_, s)| s).collect();
    schedulers.sort();
    schedulers.dedup();
    let top = series.values().map(|s| s.max).fold(1.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Workload throughput kept beside the attack ({})", run.name),
            ("sans-serif", 22),
        )
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..workloads.len() as f64, 0.0..top)
        .map_err(err)?;
    let workload_names: Vec<String> = workloads.iter().map(|w| w.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(workloads.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < workload_names.len() {
                workload_names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("workload")
        .y_desc("throughput beside the attack / alone")
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let width = 0.8 / schedulers.len().max(1) as f64;
    for (k, scheduler) in schedulers.iter().enumerate() {
        let colour = scheduler_colour(scheduler);
        let bars: Vec<(f64, Spread)> = workloads
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                series
                    .get(&((*w).clone(), (*scheduler).clone()))
                    .map(|s| (i as f64 + 0.1 + k as f64 * width, *s))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|(x, s)| {
                Rectangle::new([(*x, 0.0), (*x + width * 0.9, s.mean)], colour.filled())
            }))
            .map_err(err)?
            .label(scheduler.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
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
            .map_err(err)?;
    }
    chart
        .draw_series(LineSeries::new(
            [(0.0, 1.0), (workloads.len() as f64, 1.0)],
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(err)?;
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(scheduler: &str, threads: u32, loss: f64, kept: Option<f64>) -> Trial {
        crate::trial::example_trial(scheduler, threads, loss, kept.map(|k| ("stress-ng-cpu", k)))
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
    fn figures_and_report_come_out_identical_twice() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(results.join("run")).unwrap();
        let trials = vec![
            trial("eevdf", 1, 10.0, Some(0.3)),
            trial("eevdf", 4, 60.0, Some(0.25)),
            trial("aegis", 1, 0.0, Some(0.9)),
            trial("aegis", 4, 0.0, Some(0.95)),
        ];
        std::fs::write(
            results.join("run/trials.json"),
            serde_json::to_string(&trials).unwrap(),
        )
        .unwrap();
        // Not a trial list: skipped.
        std::fs::write(results.join("calibration.json"), "{\"x\": 1}").unwrap();
        let render = |out: &Path| {
            figures(&FiguresArgs {
                results: results.clone(),
                out: out.to_path_buf(),
            })
            .unwrap();
            let mut files: Vec<_> = std::fs::read_dir(out)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files
                .iter()
                .map(|p| (p.file_name().unwrap().to_owned(), std::fs::read(p).unwrap()))
                .collect::<Vec<_>>()
        };
        let first = render(&dir.path().join("a"));
        let second = render(&dir.path().join("b"));
        let names: Vec<_> = first
            .iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "report.md",
                "run-trials-loss.png",
                "run-trials-loss.svg",
                "run-trials-workload-kept.png",
                "run-trials-workload-kept.svg"
            ]
        );
        assert!(first == second, "the same results drew different files");
        let report = String::from_utf8(first[0].1.clone()).unwrap();
        assert!(
            report.contains("| builtin | eevdf | 4 | 1 | 60.00 |"),
            "{report}"
        );
        assert!(report.contains("| stress-ng-cpu | aegis | 2 |"), "{report}");
    }
}
