//! `sim-evaluate` blocks: the tables of a `sim evaluate` report (`results/sim-evaluate.json`),
//! so docs/simulator.md states its numbers from the file rather than by hand.
//!
//! `<!-- report: sim-evaluate FILE table=loss|bound|fair-share|summary|ablations -->`: loss %
//! per configuration and policy (with the fair share's collector CPU); the ordinary tasks'
//! slowdown against the bound; against the fair share (with the producers' events against
//! theirs and Jain's index); each policy over the configurations, every ratio split at 1 (no
//! mean across 1); and the ablations. Each ends with a line saying what the file is.

use anyhow::{bail, Result};

use crate::results::sim::{EvalReport, EvalRow, SidesOfOne};

/// The table `table` of `report`, with its provenance line.
pub fn render(report: &EvalReport, table: &str) -> Result<String> {
    let body = match table {
        "loss" => loss(report),
        "bound" => per_policy(
            report,
            &["CPUs", "producers"],
            |_| vec![],
            |r| format!("{:.3}", r.slowdown_vs_bound),
        ),
        "fair-share" => per_policy(
            report,
            &["CPUs", "producers", "fair-share slowdown"],
            |r| vec![format!("{:.3}", r.fair_share_slowdown)],
            |r| {
                format!(
                    "{:.3} / {:.2} / {:.3}",
                    r.slowdown_vs_fair_share, r.producer_progress_vs_fair_share, r.fairness_jain
                )
            },
        ),
        "summary" => summary(report),
        "ablations" => ablations(report),
        other => bail!(
            "unknown sim-evaluate table `{other}`; use table=loss, bound, fair-share, summary or \
             ablations"
        ),
    };
    Ok(format!("{body}\n_{}_\n", provenance(report)))
}

/// The compared policies in the order of the report's rows.
fn policies(report: &EvalReport) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in &report.rows {
        if !names.contains(&r.policy) {
            names.push(r.policy.clone());
        }
    }
    names
}

/// The configurations (CPUs, producers) in the order of the report's rows.
fn configurations(report: &EvalReport) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for r in &report.rows {
        if !out.contains(&(r.cpus, r.producers)) {
            out.push((r.cpus, r.producers));
        }
    }
    out
}

fn row<'a>(report: &'a EvalReport, config: (usize, usize), policy: &str) -> Option<&'a EvalRow> {
    report
        .rows
        .iter()
        .find(|r| (r.cpus, r.producers) == config && r.policy == policy)
}

/// A row per configuration, `lead` columns from any of its rows, then `cell` per policy.
fn per_policy(
    report: &EvalReport,
    lead_header: &[&str],
    lead: impl Fn(&EvalRow) -> Vec<String>,
    cell: impl Fn(&EvalRow) -> String,
) -> String {
    let names = policies(report);
    let mut header: Vec<String> = lead_header.iter().map(|s| s.to_string()).collect();
    header.extend(names.iter().cloned());
    let rows = configurations(report)
        .into_iter()
        .map(|config| {
            let first = names.iter().find_map(|name| row(report, config, name));
            let mut cells = vec![config.0.to_string(), config.1.to_string()];
            cells.extend(first.map_or_else(Vec::new, &lead));
            for name in &names {
                cells.push(row(report, config, name).map_or("-".into(), &cell));
            }
            cells
        })
        .collect::<Vec<_>>();
    super::tables::markdown(&header, &rows)
}

fn loss(report: &EvalReport) -> String {
    let table = per_policy(
        report,
        &["CPUs", "producers"],
        |_| vec![],
        |r| format!("{:.2}", r.loss_pct),
    );
    // The fair share's collector CPU as a last column.
    let configs = configurations(report);
    let names = policies(report);
    let mut out = String::new();
    for (i, line) in table.lines().enumerate() {
        out.push_str(line);
        match i {
            0 => out.push_str(" fair-share collector CPU s (capped?) |"),
            1 => out.push_str("---|"),
            _ => {
                let r = names
                    .iter()
                    .find_map(|name| row(report, configs[i - 2], name))
                    .expect("a configuration has a row");
                out.push_str(&format!(
                    " {:.3}{} |",
                    r.fair_share_collector_cpu_s,
                    if r.fair_share_producers_capped {
                        " (capped)"
                    } else {
                        ""
                    }
                ));
            }
        }
        out.push('\n');
    }
    out
}

fn sides(s: &SidesOfOne) -> [String; 2] {
    let side = |n: usize, mean: Option<f64>| match mean {
        Some(mean) if n > 0 => format!("{mean:.3} (n={n})"),
        _ => "-".into(),
    };
    [
        side(s.below, s.below_geomean),
        side(s.at_or_above, s.at_or_above_geomean),
    ]
}

fn summary(report: &EvalReport) -> String {
    let header = [
        "policy",
        "configurations",
        "mean loss %",
        "slowdown vs bound: <1 / >=1",
        "slowdown vs fair share: <1 / >=1",
        "producer events vs fair share: <1 / >=1",
        "mean Jain",
    ]
    .map(String::from);
    let rows = report
        .summary
        .iter()
        .map(|s| {
            let pair = |x: &SidesOfOne| sides(x).join(" / ");
            vec![
                s.policy.clone(),
                s.configurations.to_string(),
                format!("{:.3}", s.loss_pct_mean),
                pair(&s.slowdown_vs_bound),
                pair(&s.slowdown_vs_fair_share),
                pair(&s.producer_progress_vs_fair_share),
                format!("{:.3}", s.fairness_jain_mean),
            ]
        })
        .collect::<Vec<_>>();
    super::tables::markdown(&header, &rows)
}

fn ablations(report: &EvalReport) -> String {
    let header = [
        "CPUs",
        "producers",
        "hogs",
        "variant",
        "loss %",
        "events produced",
        "slowdown vs bound / vs fair share",
        "max wait ms: provenance / ordinary / producer",
        "inferences run / skipped",
    ]
    .map(String::from);
    let rows = report
        .ablations
        .iter()
        .map(|r| {
            vec![
                r.cpus.to_string(),
                r.producers.to_string(),
                r.hogs.to_string(),
                r.policy.clone(),
                format!("{:.2}", r.loss_pct),
                thousands(r.produced),
                format!(
                    "{:.3} / {:.3}",
                    r.slowdown_vs_bound, r.slowdown_vs_fair_share
                ),
                r.max_wait_ms_by_level.map_or("-".into(), |w| {
                    format!("{:.1} / {:.1} / {:.1}", w[0], w[1], w[2])
                }),
                match (r.nr_inferences, r.nr_skipped) {
                    (Some(run), Some(skipped)) => format!("{run} / {skipped}"),
                    _ => "-".into(),
                },
            ]
        })
        .collect::<Vec<_>>();
    super::tables::markdown(&header, &rows)
}

/// 8077 -> "8,077".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the tables are over: seeds, length, model, machine, revision.
fn provenance(report: &EvalReport) -> String {
    format!(
        "{} configurations x {} policies and {} ablation rows, each the mean of {} seeds of {} s; \
         ring {} events; EEVDF model {}; wakeup latency {}{:.1} us; calibration {} ({}, {} \
         CPUs); model {}; revision {}, {}.",
        configurations(report).len(),
        policies(report).len(),
        report.ablations.len(),
        report.seeds,
        report.duration_s,
        report.ring_capacity_events,
        serde_json::to_value(report.eevdf_model)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        if report.wakeup_latency_measured {
            "measured, mean "
        } else {
            ""
        },
        report.wakeup_latency_ns as f64 / 1e3,
        report.calibration_file.display(),
        report.calibration.machine,
        report.calibration.cpus,
        report.model_file.display(),
        report.git_rev,
        report.date.split('T').next().unwrap_or(&report.date),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> EvalReport {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../results/sim-evaluate.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn every_table_renders_a_row_per_configuration_and_names_its_revision() {
        let report = checked_in();
        for (table, rows) in [
            ("loss", 15),
            ("bound", 15),
            ("fair-share", 15),
            ("summary", report.summary.len()),
            ("ablations", report.ablations.len()),
        ] {
            let text = render(&report, table).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
            assert_eq!(lines.len(), rows + 2, "{table}:\n{text}");
            let width = lines[0].matches('|').count();
            assert!(
                lines.iter().all(|l| l.matches('|').count() == width),
                "{text}"
            );
            assert!(text.contains(&report.git_rev), "{text}");
        }
        assert!(render(&report, "oracle").is_err());
        assert_eq!(thousands(8077), "8,077");
        assert_eq!(thousands(530799), "530,799");
        assert_eq!(thousands(219), "219");
    }
}
