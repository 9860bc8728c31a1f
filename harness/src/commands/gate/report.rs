//! The gate's markdown report: what was compared, the verdict, a row per cell and metric
//! (regressions first) and the rules applied.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::compare::{Comparison, Decision, Row, Test};
use crate::results::trial::Trial;
use crate::stats::Summary;

/// What the report's header says about the inputs.
pub struct Inputs<'a> {
    pub baseline: &'a Path,
    pub current: &'a Path,
    pub thresholds: Option<&'a Path>,
    /// Git revisions and kernels of each side's trials, for telling runs apart.
    pub baseline_provenance: String,
    pub current_provenance: String,
}

/// `git r1, r2; kernel 6.18`: the distinct revisions and kernels of some trials.
pub fn provenance(trials: &[Trial]) -> String {
    let join = |values: BTreeSet<&str>| values.into_iter().collect::<Vec<_>>().join(", ");
    format!(
        "git {}; kernel {}",
        join(trials.iter().map(|t| t.env.git_rev.as_str()).collect()),
        join(trials.iter().map(|t| t.env.kernel.as_str()).collect())
    )
}

/// The markdown report: header, summary line, one table (regressions first), notes.
pub fn render_report(comparison: &Comparison, inputs: &Inputs<'_>) -> String {
    let mut out = String::new();
    let status = if comparison.exit_status() == 0 {
        "PASS"
    } else {
        "FAIL"
    };
    let _ = writeln!(out, "# aegis-bench gate: {status}\n");
    write_inputs(&mut out, comparison, inputs);
    let _ = writeln!(
        out,
        "**{status}**: {}, {} improved, {} ok, {} missing ({}, {} no data)\n",
        plural(comparison.count(Decision::Regression), "regression"),
        comparison.count(Decision::Improved),
        comparison.count(Decision::Ok),
        comparison.count(Decision::Missing),
        plural(comparison.count(Decision::New), "new cell"),
        comparison.count(Decision::NoData),
    );
    out.push_str(
        "| cell | metric | baseline mean ± sd (n) | current mean ± sd (n) | change | allowed | p \
         | decision |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---|---|\n");
    for row in &comparison.rows {
        let _ = writeln!(out, "{}", table_row(row));
    }
    write_rules(&mut out, comparison);
    out
}

/// The header's list: each side's file, trials, cells and provenance, and the thresholds.
fn write_inputs(out: &mut String, comparison: &Comparison, inputs: &Inputs<'_>) {
    let sides = [
        (
            "baseline",
            inputs.baseline,
            comparison.baseline_trials,
            comparison.baseline_cells,
            &inputs.baseline_provenance,
        ),
        (
            "current",
            inputs.current,
            comparison.current_trials,
            comparison.current_cells,
            &inputs.current_provenance,
        ),
    ];
    for (side, path, trials, cells, provenance) in sides {
        let _ = writeln!(
            out,
            "- {side}: `{}`: {trials} trials in {cells} cells ({provenance})",
            path.display()
        );
    }
    let _ = writeln!(
        out,
        "- thresholds: {}; alpha {}\n",
        inputs
            .thresholds
            .map_or("built-in defaults".to_string(), |p| format!(
                "`{}`",
                p.display()
            )),
        comparison.alpha
    );
}

/// One row of the verdicts' table, without its line end.
fn table_row(row: &Row) -> String {
    let side = |summary: Option<Summary>| match (summary, &row.metric) {
        (None, None) => "absent".to_string(),
        (Some(s), None) => plural(s.n, "trial"),
        (None, Some(_)) => "no samples".to_string(),
        (Some(s), Some(_)) => format!("{} ± {} ({})", number(s.mean), number(s.sd), s.n),
    };
    let change = match (row.metric.as_ref(), row.baseline, row.current) {
        (Some(_), Some(b), Some(c)) => change(b.mean, c.mean),
        _ => String::new(),
    };
    let p = match row.test {
        Test::Welch(welch) => p_value(welch.p),
        Test::WithinTolerance => "-".to_string(),
        Test::NoVariance => "no variance".to_string(),
        Test::OneRepetition => "1 repetition: no test".to_string(),
        Test::Rule => "no test (rule)".to_string(),
        Test::Limit(limit) => format!("beyond limit {}", number(limit)),
        Test::None => String::new(),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        escape(&row.cell),
        row.metric.as_deref().map_or("-".to_string(), escape),
        side(row.baseline),
        side(row.current),
        change,
        row.allowed.map_or(String::new(), number),
        p,
        row.decision.label()
    )
}

/// Under the table: the decision rule in words, the rules applied, and metrics no trial has.
fn write_rules(out: &mut String, comparison: &Comparison) {
    let _ = writeln!(
        out,
        "\nA regression is a change in the bad direction larger than `allowed` = max(abs \
         tolerance, rel tolerance × |baseline mean|) that Welch's one-sided t-test of \
         (change − allowed) > 0 finds significant at p < {}. A cell whose current mean is \
         beyond a metric's limit fails whatever the baseline, and a cell of the baseline \
         missing from the current run fails too.",
        comparison.alpha
    );
    let _ = writeln!(
        out,
        "\n| metric | better | abs tolerance | rel tolerance | significance test | limit | cells |\n\
         |---|---|---:|---:|---|---:|---|"
    );
    for (metric, rule) in &comparison.rules {
        let cells = if rule.cells.is_empty() {
            "all".to_string()
        } else {
            rule.cells
                .iter()
                .map(|glob| format!("`{}`", escape(glob)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {cells} |",
            escape(metric),
            rule.direction.name(),
            number(rule.abs_tolerance),
            number(rule.rel_tolerance),
            if rule.significance_test { "yes" } else { "no" },
            rule.limit.map_or("-".to_string(), number),
        );
    }
    for (metric, rule) in &comparison.rules {
        if let Some(ratio) = &rule.ratio {
            let _ = writeln!(
                out,
                "\n`{}` is a cell's `{}` over the same cell's `{}` under `{}` in the same boot: \
                 one sample per boot, so the machine's speed cancels out.",
                escape(metric),
                escape(&ratio.of),
                escape(ratio.divisor()),
                escape(&ratio.control)
            );
        }
    }
    for metric in &comparison.unseen_metrics {
        let _ = writeln!(
            out,
            "\nNote: no trial in either file has `{}`; is the metric's name right?",
            escape(metric)
        );
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `|` would end a markdown table cell.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// At most four significant digits, exponent notation outside 0.001..1e6, trailing zeros
/// trimmed.
fn number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_string(); // also -0
    }
    if !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-3..6).contains(&magnitude) {
        let text = format!("{x:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (3 - magnitude).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}")).to_string()
}

/// `40.00` → `40`, `0.3500` → `0.35`; integers stay as they are.
fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// `+40 (+100.0 %)`: current − baseline, and relative to the baseline's mean.
fn change(baseline: f64, current: f64) -> String {
    let delta = current - baseline;
    let sign = if delta > 0.0 { "+" } else { "" };
    let relative = if baseline != 0.0 {
        format!("{:+.1} %", 100.0 * delta / baseline.abs())
    } else if delta == 0.0 {
        "+0.0 %".to_string()
    } else {
        "n/a".to_string()
    };
    format!("{sign}{} ({relative})", number(delta))
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        "<0.0001".to_string()
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_deterministically() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(40.0), "40");
        assert_eq!(number(0.35), "0.35");
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(-0.123456), "-0.1235");
        assert_eq!(number(2.5e6), "2.5e6");
        assert_eq!(number(1e6), "1e6");
        assert_eq!(number(-1.23456e7), "-1.235e7");
        assert_eq!(number(0.0001234), "1.234e-4");
        assert_eq!(change(0.0, 40.0), "+40 (n/a)");
        assert_eq!(change(1e6, 5e5), "-500000 (-50.0 %)");
        assert_eq!(change(1e6, 2e6), "+1e6 (+100.0 %)");
        assert_eq!(change(2.0, 2.0), "0 (+0.0 %)");
        assert_eq!(p_value(0.0106558), "0.0107");
        assert_eq!(p_value(1e-9), "<0.0001");
    }
}
