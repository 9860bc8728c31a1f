//! `sim-validate` blocks: the tables of `sim validate` reports, so docs/simulator.md states
//! its sim-to-real errors from the files rather than by hand.
//!
//! `<!-- report: sim-validate FILE -->`: real against simulated loss and collector CPU per
//! scheduler and intensity, with the errors in points. `<!-- report: sim-validate-rounds DIR
//! -->`: every round (`DIR/round-N.json`, one calibration and its real trials each) with its
//! largest errors per scheduler, the median round (by its largest loss error) marked as the
//! headline.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::sim::thousands;
use super::tables::markdown;
use crate::results::sim::{ValidationPoint, ValidationReport};

/// Reads a `sim validate` report.
pub fn read(path: &Path) -> Result<ValidationReport> {
    let text = crate::files::read_input(path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a sim validate report", path.display()))
}

/// The report's schedulers in the order of its points.
fn schedulers(report: &ValidationReport) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in &report.points {
        if !names.contains(&p.scheduler) {
            names.push(p.scheduler.clone());
        }
    }
    names
}

/// The largest loss and collector CPU errors of `scheduler`'s points.
fn max_errors(report: &ValidationReport, scheduler: &str) -> (f64, f64) {
    report
        .points
        .iter()
        .filter(|p| p.scheduler == scheduler)
        .fold((0.0, 0.0), |(loss, cpu), p| {
            (loss.max(p.error_pp), cpu.max(p.collector_cpu_pct().2))
        })
}

/// A point per row: real and simulated loss and collector CPU, with their errors.
pub fn points(report: &ValidationReport) -> String {
    let header: Vec<String> = [
        "scheduler",
        "threads",
        "real loss % (mean)",
        "real min..max",
        "sim loss %",
        "loss error (pp)",
        "collector CPU % real",
        "sim",
        "CPU error (pp)",
        "collector sleeps real / sim",
        "waits >= 0.5 ms real / sim",
    ]
    .map(String::from)
    .to_vec();
    let target = report.target_error_pp;
    let mark = |error: f64| {
        if error <= target {
            format!("{error:.2}")
        } else {
            format!("**{error:.2}**")
        }
    };
    let rows: Vec<Vec<String>> = report
        .points
        .iter()
        .map(|p: &ValidationPoint| {
            let (real_cpu, sim_cpu, cpu_error) = p.collector_cpu_pct();
            vec![
                p.scheduler.clone(),
                p.threads.to_string(),
                format!("{:.2}", p.real_loss_pct),
                format!("{:.1}..{:.1}", p.real_loss_pct_min, p.real_loss_pct_max),
                format!("{:.2}", p.sim_loss_pct),
                mark(p.error_pp),
                format!("{real_cpu:.1}"),
                format!("{sim_cpu:.1}"),
                mark(cpu_error),
                format!(
                    "{} / {}",
                    measured(p.real_collector_sleeps),
                    thousands(p.sim_collector_wakeups)
                ),
                format!(
                    "{} / {}",
                    measured(p.real_long_waits),
                    thousands(p.sim_long_waits)
                ),
            ]
        })
        .collect();
    format!("{}\n_{}_\n", markdown(&header, &rows), provenance(report))
}

/// A count the real collector may not have measured.
fn measured(count: Option<u64>) -> String {
    count.map_or_else(|| "-".to_string(), thousands)
}

/// What the report is: where the real trials ran, how many, the simulation and the revision.
fn provenance(report: &ValidationReport) -> String {
    let repetitions = report
        .points
        .first()
        .map_or(0, |p| p.real_loss_pct_by_repetition.len());
    let seeds = report
        .points
        .first()
        .map_or(0, |p| p.sim_loss_pct_by_seed.len());
    // Reports that predate recording the trials' machine: the calibration's, when it was
    // measured where the trials ran.
    let (machine, kernel) = match (&report.real_machine, &report.real_kernel) {
        (Some(machine), Some(kernel)) => (machine.as_str(), kernel.as_str()),
        _ if report.calibration_from_this_host => (
            report.calibration.machine.as_str(),
            report.calibration.kernel.as_str(),
        ),
        _ => ("an unrecorded machine", "unrecorded kernel"),
    };
    format!(
        "{} points, {} repetitions of {:.1} s each on {} ({}, {} CPUs), {} seeds each; errors \
         over {} points in bold; calibration {} ({}); EEVDF model {}; revision {}, {}.",
        report.points.len(),
        repetitions,
        report.points.first().map_or(0.0, |p| p.real_duration_s),
        machine,
        kernel,
        report.cpus,
        seeds,
        report.target_error_pp,
        report.calibration_file.display(),
        if report.calibration_from_this_host {
            "measured where the trials ran"
        } else {
            "measured elsewhere"
        },
        serde_json::to_value(report.eevdf_model)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        report.git_rev,
        report.date.split('T').next().unwrap_or(&report.date),
    )
}

/// The round files `DIR/round-N.json`, by N.
pub fn round_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut rounds = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name
            .strip_prefix("round-")
            .and_then(|rest| rest.strip_suffix(".json"))
            .and_then(|n| n.parse::<u32>().ok())
        {
            rounds.push((n, path));
        }
    }
    if rounds.is_empty() {
        bail!("{} holds no round-N.json", dir.display());
    }
    rounds.sort();
    Ok(rounds)
}

/// The headline round's index in `reports`: the median by largest loss error (with an even
/// count, the worse of the two middle ones), never the best.
pub fn median_round(reports: &[ValidationReport]) -> usize {
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by(|&a, &b| reports[a].max_error_pp.total_cmp(&reports[b].max_error_pp));
    order[reports.len() / 2]
}

/// A round per row with its largest errors per scheduler; the median round marked. `dir` is
/// read under `root` and named as given.
pub fn rounds(root: &Path, dir: &str) -> Result<String> {
    let files = round_files(&root.join(dir))?;
    let reports = files
        .iter()
        .map(|(_, path)| read(path))
        .collect::<Result<Vec<_>>>()?;
    let names = schedulers(&reports[0]);
    let mut header = vec!["round".to_string()];
    header.extend(names.iter().map(|n| format!("{n}: max loss error (pp)")));
    header.extend(names.iter().map(|n| format!("{n}: max CPU error (pp)")));
    header.extend(["within 5 points".to_string(), "revision, date".to_string()]);
    let median = median_round(&reports);
    let rows: Vec<Vec<String>> = files
        .iter()
        .zip(&reports)
        .enumerate()
        .map(|(i, ((n, _), report))| {
            let errors: Vec<(f64, f64)> = names.iter().map(|s| max_errors(report, s)).collect();
            let mut row = vec![if i == median {
                format!("**{n} (median, headline)**")
            } else {
                n.to_string()
            }];
            row.extend(errors.iter().map(|(loss, _)| format!("{loss:.2}")));
            row.extend(errors.iter().map(|(_, cpu)| format!("{cpu:.2}")));
            let target = report.target_error_pp;
            let met = errors.iter().all(|&(l, c)| l <= target && c <= target);
            row.push(if met { "yes" } else { "no" }.to_string());
            row.push(format!(
                "{}, {}",
                report.git_rev,
                report.date.split('T').next().unwrap_or(&report.date)
            ));
            row
        })
        .collect();
    Ok(format!(
        "{}\n_{} rounds in {}, each one guest boot that calibrated and ran its real trials; the \
         headline is the median round by largest loss error._\n",
        markdown(&header, &rows),
        reports.len(),
        dir
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> ValidationReport {
        read(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../results/sim-validate.json"
        )))
        .unwrap()
    }

    #[test]
    fn a_row_per_point_with_both_errors() {
        let report = checked_in();
        let text = points(&report);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), report.points.len() + 2, "{text}");
        assert!(text.contains(&report.git_rev), "{text}");
    }

    #[test]
    fn the_committed_guest_rounds_have_one_headline() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let text = rounds(root, "results/sim-validate-guest").unwrap();
        let files = round_files(&root.join("results/sim-validate-guest")).unwrap();
        let rows = text.lines().filter(|l| l.starts_with('|')).count();
        assert_eq!(rows, files.len() + 2, "{text}");
        assert_eq!(text.matches("(median, headline)").count(), 1, "{text}");
        assert!(text.contains("in results/sim-validate-guest,"), "{text}");
    }

    #[test]
    fn the_headline_is_the_median_round_not_the_best() {
        let with_error = |e: f64| ValidationReport {
            max_error_pp: e,
            ..checked_in()
        };
        let reports = [with_error(3.0), with_error(1.0), with_error(7.0)];
        assert_eq!(median_round(&reports), 0);
        assert_eq!(median_round(&reports[..2]), 0, "the worse of two");
        assert_eq!(median_round(&reports[..1]), 0);
    }
}
