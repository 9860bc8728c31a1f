//! Cells, metrics and verdicts: the two runs' trials grouped into cells and judged metric by
//! metric with the rule of the module docs.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde_json::Value;

use super::derived::add_derived;
use super::thresholds::{Direction, MetricRule, Thresholds, DEFAULT_METRICS};
use crate::error::InputError;
use crate::results::trial::Trial;
use crate::stats::{boot_means, welch_greater, Summary, Welch};

/// The cell a trial belongs to: its id without the repetition (and the boot, in runs of
/// several boots), or for files without ids the same key rebuilt from its fields.
pub fn cell_key(trial: &Trial) -> String {
    let id = trial.id.trial_id.trim();
    if !id.is_empty() {
        return match id.rsplit_once('/') {
            Some((cell, last)) if is_repetition(last) => match cell.rsplit_once('/') {
                Some((without_boot, boot)) if is_numbered(boot, "boot") => without_boot.to_string(),
                _ => cell.to_string(),
            },
            _ => id.to_string(),
        };
    }
    // The layout of `run::TrialSpec::id`, so old and new files of one matrix line up.
    let buffer = match &trial.audit {
        Some(audit) => format!(
            "backlog{}-wait{}ms",
            audit.settings.backlog_limit, audit.settings.backlog_wait_time_ms
        ),
        None => format!("ring{}", crate::size::format_size(trial.id.ring_size_bytes)),
    };
    format!(
        "{}/{}/{}/{buffer}/x{}/{}",
        trial.id.flood,
        trial.id.scheduler,
        trial.id.collector,
        trial.id.threads,
        trial.beside.workload.as_deref().unwrap_or("none")
    )
}

fn is_repetition(component: &str) -> bool {
    is_numbered(component, "rep")
}

/// `rep3` for prefix `rep`, `boot0` for `boot`.
fn is_numbered(component: &str, prefix: &str) -> bool {
    component
        .strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A metric's value in a trial's JSON: `Ok(None)` when absent or null, `Err` with the JSON
/// type when the field is not a number or boolean.
fn metric_value(trial: &Value, metric: &str) -> Result<Option<f64>, &'static str> {
    let mut value = trial;
    for key in metric.split('.') {
        match value.get(key) {
            Some(inner) => value = inner,
            None => return Ok(None),
        }
    }
    match value {
        Value::Null => Ok(None),
        Value::Bool(flag) => Ok(Some(if *flag { 1.0 } else { 0.0 })),
        Value::Number(number) => Ok(number.as_f64()),
        Value::String(_) => Err("a string"),
        Value::Array(_) => Err("a list"),
        Value::Object(_) => Err("an object"),
    }
}
/// How the significance of a change beyond the tolerance was settled, if it was needed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Test {
    /// The change stayed within the tolerance: nothing to test.
    WithinTolerance,
    Welch(Welch),
    /// Neither side varies: the change is exact.
    NoVariance,
    /// A side has one repetition: the tolerance alone decided.
    OneRepetition,
    /// The metric's rule is `significance_test = false`.
    Rule,
    /// The current mean is beyond the rule's limit (a claim's bar): fails whatever the
    /// baseline.
    Limit(f64),
    /// Missing, new or no-data rows.
    None,
}

/// The verdict on one row, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    Regression,
    Missing,
    Improved,
    Ok,
    NoData,
    New,
}

impl Decision {
    pub(super) fn label(self) -> &'static str {
        match self {
            Decision::Regression => "**REGRESSION**",
            Decision::Missing => "**MISSING**",
            Decision::Improved => "improved",
            Decision::Ok => "ok",
            Decision::NoData => "no data",
            Decision::New => "new",
        }
    }
}

/// One (cell, metric) verdict; missing and new cells have one row without a metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub cell: String,
    pub metric: Option<String>,
    /// Samples per side: for missing and new cells, the side's trial count with a zero sd.
    pub baseline: Option<Summary>,
    pub current: Option<Summary>,
    pub allowed: Option<f64>,
    pub test: Test,
    pub decision: Decision,
}

/// The gate's verdicts, sorted for the report (regressions first).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub baseline_trials: usize,
    pub current_trials: usize,
    pub baseline_cells: usize,
    pub current_cells: usize,
    pub alpha: f64,
    /// The rules applied, for the report.
    pub rules: Vec<(String, MetricRule)>,
    /// Metrics beyond the defaults that no trial on either side has: most likely misspelt in
    /// the thresholds file.
    pub unseen_metrics: Vec<String>,
}

impl Comparison {
    pub fn count(&self, decision: Decision) -> usize {
        self.rows.iter().filter(|r| r.decision == decision).count()
    }

    /// 1 on any regression or missing cell, else 0.
    pub fn exit_status(&self) -> i32 {
        if self.count(Decision::Regression) + self.count(Decision::Missing) > 0 {
            1
        } else {
            0
        }
    }
}

/// A side's trials by cell, as JSON for reading metrics by name (derived metrics added).
fn cells(trials: &[Trial]) -> Result<Cells> {
    let mut cells: Cells = BTreeMap::new();
    for trial in trials {
        let mut value = serde_json::to_value(trial)?;
        add_derived(&mut value);
        cells.entry(cell_key(trial)).or_default().push(value);
    }
    Ok(cells)
}

type Cells = BTreeMap<String, Vec<Value>>;

/// The boot a trial ran in: the kernel's boot id (which tells runners and guests apart) and
/// the run's boot index.
fn boot_of(trial: &Value) -> (String, u64) {
    (
        trial
            .get("boot_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        trial.get("boot").and_then(Value::as_u64).unwrap_or(0),
    )
}

/// `cell` with its scheduler (the key's second component) replaced by `scheduler`; `None`
/// for keys without one.
fn with_scheduler(cell: &str, scheduler: &str) -> Option<String> {
    let mut parts: Vec<&str> = cell.split('/').collect();
    if parts.len() < 3 {
        return None;
    }
    parts[1] = scheduler;
    Some(parts.join("/"))
}

/// A rule's samples in `cell` of one side: the field's values, one per trial, or for a
/// ratio one per boot that both the cell and its control cell ran in: the mean of the cell's
/// values in that boot over the mean of the control's (of its `control_field`, if given).
/// The control's own cell has none.
fn rule_samples(
    side: &Cells,
    cell: &str,
    metric: &str,
    rule: &MetricRule,
    side_name: &str,
) -> Result<Vec<f64>, InputError> {
    let Some(trials) = side.get(cell) else {
        return Ok(Vec::new());
    };
    let Some(ratio) = &rule.ratio else {
        return samples(trials, metric, side_name);
    };
    let control_cell = match with_scheduler(cell, &ratio.control) {
        Some(key) if key != cell => key,
        _ => return Ok(Vec::new()),
    };
    let Some(control_trials) = side.get(&control_cell) else {
        return Ok(Vec::new());
    };
    // Boots are numbered by their first appearance in either cell, so the two line up.
    let mut boots: BTreeMap<(String, u64), u32> = BTreeMap::new();
    let mut per_boot = |trials: &[Value], field: &str| -> Result<BTreeMap<u32, f64>, InputError> {
        let mut values = Vec::new();
        for trial in trials {
            if let Some(&value) = samples(std::slice::from_ref(trial), field, side_name)?.first() {
                let next = boots.len() as u32;
                values.push((*boots.entry(boot_of(trial)).or_insert(next), value));
            }
        }
        Ok(boot_means(values))
    };
    let numerators = per_boot(trials, &ratio.of)?;
    let denominators = per_boot(control_trials, ratio.divisor())?;
    Ok(numerators
        .iter()
        .filter_map(|(boot, x)| {
            let y = denominators.get(boot)?;
            (*y > 0.0 && x.is_finite()).then(|| x / y)
        })
        .collect())
}

fn samples(trials: &[Value], metric: &str, side: &str) -> Result<Vec<f64>, InputError> {
    let mut values = Vec::new();
    for trial in trials {
        match metric_value(trial, metric) {
            Ok(Some(value)) if value.is_finite() => values.push(value),
            Ok(_) => {}
            Err(kind) => {
                return Err(InputError(format!(
                    "metric {metric} is {kind} in the {side}'s trial {}, not a number; the gate \
                     compares numeric and boolean fields only: drop it with [metrics.{metric}] \
                     enabled = false",
                    trial.get("trial_id").and_then(Value::as_str).unwrap_or("?")
                )))
            }
        }
    }
    Ok(values)
}

/// Judges every cell and metric of `current` against `baseline`.
pub fn compare(
    baseline: &[Trial],
    current: &[Trial],
    thresholds: &Thresholds,
) -> Result<Comparison> {
    check_same_scope(baseline, current)?;
    let base_cells = cells(baseline)?;
    let cur_cells = cells(current)?;
    let all: BTreeSet<&String> = base_cells.keys().chain(cur_cells.keys()).collect();
    let mut rows = Vec::new();
    for cell in all {
        match (base_cells.get(cell), cur_cells.get(cell)) {
            (Some(_), Some(_)) => {
                judge_cell(cell, [&base_cells, &cur_cells], thresholds, &mut rows)?
            }
            (base, cur) => rows.push(absent_row(cell, base, cur)),
        }
    }
    let order = |row: &Row| {
        let metric = row
            .metric
            .as_ref()
            .and_then(|name| thresholds.metrics.iter().position(|(n, _)| n == name));
        (row.decision, row.cell.clone(), metric)
    };
    rows.sort_by_key(order);
    Ok(Comparison {
        rows,
        baseline_trials: baseline.len(),
        current_trials: current.len(),
        baseline_cells: base_cells.len(),
        current_cells: cur_cells.len(),
        alpha: thresholds.alpha,
        rules: thresholds.metrics.clone(),
        unseen_metrics: unseen_metrics(thresholds, [&base_cells, &cur_cells]),
    })
}

/// Trial ids do not name the trace scope, and loss under `--trace-scope all` counts other
/// events than under `attack`: both sides must have traced one and the same scope.
fn check_same_scope(baseline: &[Trial], current: &[Trial]) -> Result<(), InputError> {
    let scopes = |trials: &[Trial]| -> BTreeSet<&'static str> {
        trials
            .iter()
            .map(|t| t.id.trace_scope.unwrap_or_default().name())
            .collect()
    };
    let (base, cur) = (scopes(baseline), scopes(current));
    let names = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join(" and ");
    if base.len() > 1 || cur.len() > 1 || (!base.is_empty() && !cur.is_empty() && base != cur) {
        return Err(InputError(format!(
            "the baseline traced {} and this run {} (--trace-scope): their losses count \
             different events; gate against a baseline recorded with the same scope",
            names(&base),
            names(&cur)
        )));
    }
    Ok(())
}

/// The row of a cell that one side lacks: missing from the current run, or new in it.
fn absent_row(cell: &str, base: Option<&Vec<Value>>, cur: Option<&Vec<Value>>) -> Row {
    let count = |side: Option<&Vec<Value>>| {
        side.map(|trials| Summary {
            n: trials.len(),
            mean: 0.0,
            sd: 0.0,
        })
    };
    Row {
        cell: cell.to_string(),
        metric: None,
        baseline: count(base),
        current: count(cur),
        allowed: None,
        test: Test::None,
        decision: if base.is_some() {
            Decision::Missing
        } else {
            Decision::New
        },
    }
}

/// A row per metric of a cell both runs have, where either side measured it and the rule
/// applies to the cell.
fn judge_cell(
    cell: &str,
    [base, cur]: [&Cells; 2],
    thresholds: &Thresholds,
    rows: &mut Vec<Row>,
) -> Result<()> {
    for (metric, rule) in &thresholds.metrics {
        if !rule.applies_to(cell) {
            continue;
        }
        let b = Summary::of(&rule_samples(base, cell, metric, rule, "baseline")?);
        let c = Summary::of(&rule_samples(cur, cell, metric, rule, "current run")?);
        let row = |allowed, test, decision| Row {
            cell: cell.to_string(),
            metric: Some(metric.clone()),
            baseline: b,
            current: c,
            allowed,
            test,
            decision,
        };
        match (b, c) {
            // Neither side measures it here (no workload, no --watch-run-delay): no row.
            (None, None) => {}
            // A claim's bar needs no baseline.
            (_, Some(c)) if rule.beyond_limit(c.mean) => rows.push(row(
                b.map(|b| rule.allowed(b.mean)),
                Test::Limit(rule.limit.unwrap_or(f64::NAN)),
                Decision::Regression,
            )),
            (Some(b), Some(c)) => {
                let (test, decision) = judge(rule, thresholds.alpha, &b, &c);
                rows.push(row(Some(rule.allowed(b.mean)), test, decision));
            }
            _ => rows.push(row(None, Test::None, Decision::NoData)),
        }
    }
    Ok(())
}

/// Metrics beyond the defaults that no trial of either side has: a metric no trial has, in
/// any cell, is more likely misspelt than unmeasured.
fn unseen_metrics(thresholds: &Thresholds, sides: [&Cells; 2]) -> Vec<String> {
    let mut seen = vec![false; thresholds.metrics.len()];
    for trials in sides.iter().flat_map(|cells| cells.values()) {
        for (index, (metric, rule)) in thresholds.metrics.iter().enumerate() {
            // A ratio is seen when the field it divides is.
            let field = rule
                .ratio
                .as_ref()
                .map_or(metric.as_str(), |r| r.of.as_str());
            seen[index] |= trials
                .iter()
                .any(|t| matches!(metric_value(t, field), Ok(Some(_))));
        }
    }
    thresholds
        .metrics
        .iter()
        .zip(seen)
        // The defaults are often legitimately absent (no workload, no run-delay watch).
        .filter(|((name, _), seen)| {
            !seen && !DEFAULT_METRICS.iter().any(|(default, ..)| default == name)
        })
        .map(|((name, _), _)| name.clone())
        .collect()
}

/// The decision rule of the module docs for one metric of one cell.
fn judge(rule: &MetricRule, alpha: f64, b: &Summary, c: &Summary) -> (Test, Decision) {
    let allowed = rule.allowed(b.mean);
    // Each pair is (x, y) for the test of mean(x) − mean(y) > allowed: the side that would be
    // larger if the current run were worse (or better), then the other.
    let (worse_by, regressed_pair, improved_pair) = match rule.direction {
        Direction::Lower => (c.mean - b.mean, (c, b), (b, c)),
        Direction::Higher => (b.mean - c.mean, (b, c), (c, b)),
    };
    let settle = |(x, y): (&Summary, &Summary)| -> (Test, bool) {
        if !rule.significance_test {
            (Test::Rule, true)
        } else if x.n < 2 || y.n < 2 {
            (Test::OneRepetition, true)
        } else {
            match welch_greater(x, y, allowed) {
                Some(welch) => (Test::Welch(welch), welch.p < alpha),
                None => (Test::NoVariance, true),
            }
        }
    };
    let (pair, outcome) = if worse_by > allowed {
        (regressed_pair, Decision::Regression)
    } else if -worse_by > allowed {
        (improved_pair, Decision::Improved)
    } else {
        return (Test::WithinTolerance, Decision::Ok);
    };
    match settle(pair) {
        (test, true) => (test, outcome),
        (test, false) => (test, Decision::Ok),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::gate::parse_thresholds;
    use crate::error::exit_status;
    use crate::results::trial::example_trial;

    #[test]
    fn metrics_are_read_by_json_name() {
        let mut t = example_trial("eevdf", 8, 1.5, None);
        t.audit = None;
        let value = serde_json::to_value(&t).unwrap();
        assert_eq!(metric_value(&value, "loss_pct"), Ok(Some(1.5)));
        assert_eq!(metric_value(&value, "canary_recorded"), Ok(Some(1.0)));
        assert_eq!(metric_value(&value, "threads"), Ok(Some(8.0)));
        assert_eq!(metric_value(&value, "run_delay_p99_ms"), Ok(None));
        assert_eq!(metric_value(&value, "no_such_field"), Ok(None));
        assert_eq!(metric_value(&value, "audit.lost_records"), Ok(None));
        assert_eq!(metric_value(&value, "scheduler"), Err("a string"));

        let thresholds = parse_thresholds("[metrics.scheduler]\ndirection = \"lower\"\n").unwrap();
        let err = compare(&[t.clone()], &[t], &thresholds).unwrap_err();
        assert_eq!(exit_status(&err), 2);
        assert!(err.to_string().contains("enabled = false"), "{err}");
    }
}
