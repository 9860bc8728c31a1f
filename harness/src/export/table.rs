//! The table printed on stdout after a run.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use crate::results::trial::Trial;
use crate::size::format_size;

/// The collector's buffer: its ring size, or auditd's backlog limit and wait time.
fn buffer(t: &Trial) -> String {
    match &t.audit {
        Some(audit) => format!(
            "backlog {}, wait {} ms",
            audit.settings.backlog_limit, audit.settings.backlog_wait_time_ms
        ),
        None if t.id.ring_size_bytes == 0 => "-".to_string(),
        None => format_size(t.id.ring_size_bytes),
    }
}

/// Formats a rate as `338.2k/s`.
pub fn format_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1}k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0}/s")
    }
}

pub fn render(trials: &[Trial]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let with_workload = trials.iter().any(|t| t.beside.workload.is_some());
    let mut header = vec![
        "scheduler",
        "collector",
        "flood",
        "threads",
        "buffer",
        "generated",
        "received",
        "dropped",
        "loss %",
        "canary",
        "attack rate",
        "delivered",
        "collector CPU",
        "duration",
    ];
    if with_workload {
        header.extend(["workload", "kept"]);
    }
    table.set_header(header);
    for t in trials {
        let mut row = vec![
            t.id.scheduler.clone(),
            t.id.collector.clone(),
            attacks::evade::attack_name(&t.id.flood, t.attack.evade.as_deref()),
            t.id.threads.to_string(),
            buffer(t),
            t.accounting.generated.to_string(),
            t.accounting.received.to_string(),
            t.accounting.dropped.to_string(),
            format!("{:.2}", t.accounting.loss_pct),
            if t.accounting.canary_recorded {
                "yes"
            } else {
                "NO"
            }
            .to_string(),
            format_rate(t.accounting.attack_rate),
            format_rate(t.accounting.delivered_per_s),
            format!("{:.2} s", t.cost.collector_cpu_s),
            format!("{:.2} s", t.attack.duration_s),
        ];
        if with_workload {
            row.push(t.beside.workload.clone().unwrap_or_else(|| "-".to_string()));
            row.push(
                t.beside
                    .workload_kept_fraction
                    .map_or("-".to_string(), |kept| format!("{kept:.2}")),
            );
        }
        table.add_row(row);
    }
    let last = if with_workload { 15 } else { 13 };
    for column in (3..=last).filter(|c| *c != 14) {
        if let Some(col) = table.column_mut(column) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(workload: Option<(&str, f64)>) -> Trial {
        crate::results::trial::example_trial("eevdf", 1, 0.0, workload)
    }

    #[test]
    fn kept_fraction_column_only_with_a_workload() {
        let plain = render(&[trial(None)]);
        assert!(!plain.contains("kept"), "{plain}");
        let with = render(&[trial(Some(("stress-ng-cpu", 0.625))), trial(None)]);
        let header = with.lines().nth(1).unwrap();
        assert!(
            header.contains("workload") && header.contains("kept"),
            "{with}"
        );
        let rows: Vec<&str> = with.lines().filter(|l| l.contains("eevdf")).collect();
        assert!(
            rows[0].contains("stress-ng-cpu") && rows[0].contains("0.62"),
            "{with}"
        );
        assert!(
            rows[1].trim_end_matches(['│', ' ']).ends_with('-'),
            "{with}"
        );
    }

    #[test]
    fn rates_are_readable() {
        assert_eq!(format_rate(338_200.0), "338.2k/s");
        assert_eq!(format_rate(2_500_000.0), "2.50M/s");
        assert_eq!(format_rate(12.0), "12/s");
    }
}
