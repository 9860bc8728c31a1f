//! `aegis-bench gate`: does a run regress against a baseline? The answer is an exit status
//! for CI (0 no, 1 yes) and a markdown report that says which cell and metric, and by how much.
//!
//! # Cells and samples
//!
//! Trials are grouped into *cells*: the trial id without its trailing `/repN`
//! (`openat/aegis/builtin/ring16KiB/x8/stress-ng-cpu`). Files written before trials had ids
//! get the same key rebuilt from the trial's flood, scheduler, collector, buffer (ring size, or
//! auditd's backlog settings), threads and workload. The repetitions of a cell are its samples.
//!
//! # Metrics
//!
//! A metric is any numeric field of the trial's JSON (see [`crate::results::trial::Trial`]), named as in
//! the JSON; `a.b` reaches into an object (`audit.lost_records`). Booleans count as 1 and 0; a
//! missing or null field is no sample. Each metric has a direction (is lower or higher
//! better?) and a tolerance; the built-in set is [`DEFAULT_METRICS`], and a thresholds file
//! (TOML, see [`parse_thresholds`] and `docs/gate.md`) replaces or adds to it.
//!
//! # The decision, per cell and metric
//!
//! With `b` and `c` the baseline's and the current run's samples:
//!
//! - `allowed = max(abs_tolerance, rel_tolerance × |mean(b)|)`;
//! - `worse_by = mean(c) − mean(b)` when lower is better, `mean(b) − mean(c)` when higher is;
//! - **regression** iff `worse_by > allowed` *and* Welch's one-sided t-test finds the shifted
//!   difference `worse_by − allowed` greater than 0 with p < alpha (Welch–Satterthwaite
//!   degrees of freedom, Student's t from `statrs`);
//! - **improved** iff the same holds the other way round; otherwise **ok**.
//!
//! Both conditions, because each alone fails CI for the wrong reasons. The guests CI runs in
//! are TCG on a shared 2-core host, where throughputs move ±30 % from one run to the next: a
//! significance test alone would flag such drifts as soon as there are enough repetitions
//! (a consistent 10 % slowdown is "significant" and still noise for this machine), so a change
//! must first exceed a tolerance sized for that noise. A tolerance alone would flag one
//! unlucky repetition that drags a mean over the line, so the change must also be larger than
//! the repetitions' own scatter explains. Testing the *shifted* difference asks the question
//! that matters, "is the current run worse by more than we allow?", not merely "is it worse?".
//! A real regression (loss from 0 to 40 %, throughput halved) passes both easily.
//!
//! Special cases, each named in the report's p column:
//! - both samples without variance: the test is deterministic (significant iff beyond the
//!   tolerance) — "no variance";
//! - one side with a single repetition: no test can run, the tolerance alone decides — "1
//!   repetition: no test";
//! - a metric with `significance_test = false` (by default `canary_recorded`, whose every drop
//!   matters): the tolerance alone decides — "no test (rule)".
//!
//! A cell of the baseline that the current run lacks is **missing** and fails: a scheduler or
//! collector that stopped producing trials must not pass silently. A cell only in the current
//! run is **new** and does not fail; neither does a metric with samples on one side only (**no
//! data**). The exit status is 1 if any regression or missing cell, else 0; bad input (a file
//! that cannot be read, a bad thresholds file) is an [`InputError`] (status 2).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::cli::GateArgs;
use crate::error::InputError;
use crate::results::trial::Trial;

/// The one-sided significance level unless a thresholds file sets `alpha`.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// Whether a metric is better lower or higher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Lower,
    Higher,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Lower => "lower",
            Direction::Higher => "higher",
        }
    }
}

/// How one metric is judged.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRule {
    pub direction: Direction,
    /// A change smaller than this, in the metric's own unit, is never a regression.
    pub abs_tolerance: f64,
    /// The same as a fraction of the baseline's mean; the larger of the two applies.
    pub rel_tolerance: f64,
    /// `false`: a change beyond the tolerance counts without a significance test.
    pub significance_test: bool,
}

impl MetricRule {
    /// The change in the bad direction that is still accepted, in the metric's unit.
    pub fn allowed(&self, baseline_mean: f64) -> f64 {
        self.abs_tolerance
            .max(self.rel_tolerance * baseline_mean.abs())
    }
}

/// The built-in metrics: (JSON field, direction, abs tolerance, rel tolerance, significance
/// test). The tolerances are sized for TCG guests on a shared 2-core host, where throughputs
/// move ±30 % run to run; bare-metal runners can tighten them with a thresholds file.
pub const DEFAULT_METRICS: [(&str, Direction, f64, f64, bool); 7] = [
    // Percentage points of events lost: the benchmark's headline. 1 pp absorbs the few
    // events a noisy guest loses at the edge of a ring's capacity.
    ("loss_pct", Direction::Lower, 1.0, 0.0, true),
    // Whether the canary's creation and unlink were both recorded: any drop is a regression.
    ("canary_recorded", Direction::Higher, 0.0, 0.0, false),
    // Events per second the collector recorded; ±30 % is TCG noise, so allow 35 %.
    ("delivered_per_s", Direction::Higher, 0.0, 0.35, true),
    // CPU seconds the collector used; small absolute values, so they swing more than rates.
    ("collector_cpu_s", Direction::Lower, 0.0, 0.5, true),
    // Share of its throughput the workload kept beside the attack (0..1).
    ("workload_kept_fraction", Direction::Higher, 0.15, 0.0, true),
    // 99th percentile of run-queue waits, ms: doubling is noise on a shared host, and a few ms
    // are one timer tick of a guest.
    ("run_delay_p99_ms", Direction::Lower, 5.0, 1.0, true),
    // Jain's index over the workload's tasks (1/n..1).
    ("fairness_workload_jain", Direction::Higher, 0.1, 0.0, true),
];

/// The metrics to judge, in report order, and the significance level.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// One-sided significance level of the Welch test.
    pub alpha: f64,
    pub metrics: Vec<(String, MetricRule)>,
}

impl Default for Thresholds {
    /// [`DEFAULT_METRICS`] at [`DEFAULT_ALPHA`].
    fn default() -> Self {
        Thresholds {
            alpha: DEFAULT_ALPHA,
            metrics: DEFAULT_METRICS
                .iter()
                .map(|&(name, direction, abs_tolerance, rel_tolerance, test)| {
                    (
                        name.to_string(),
                        MetricRule {
                            direction,
                            abs_tolerance,
                            rel_tolerance,
                            significance_test: test,
                        },
                    )
                })
                .collect(),
        }
    }
}

/// The thresholds file as written. Unknown keys are errors: a misspelt tolerance silently
/// ignored would gate with a different rule than the one written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    alpha: Option<f64>,
    #[serde(default)]
    metrics: BTreeMap<String, MetricEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricEntry {
    direction: Option<Direction>,
    #[serde(default)]
    abs_tolerance: f64,
    #[serde(default)]
    rel_tolerance: f64,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "yes")]
    significance_test: bool,
}

fn yes() -> bool {
    true
}

const THRESHOLDS_KEYS: &str = "the keys are `alpha` and, per [metrics.FIELD], `direction` \
                               (\"lower\" or \"higher\"), `abs_tolerance`, `rel_tolerance`, \
                               `significance_test` and `enabled` (see docs/gate.md)";

/// Parses a thresholds file onto the defaults: each `[metrics.FIELD]` replaces the built-in
/// rule of that field (or adds one; `direction` is required, tolerances default to 0),
/// `enabled = false` drops the metric, metrics not named keep their defaults.
pub fn parse_thresholds(text: &str) -> Result<Thresholds, InputError> {
    let file: ThresholdsFile = toml::from_str(text)
        .map_err(|err| InputError(format!("{}; {THRESHOLDS_KEYS}", err.to_string().trim_end())))?;
    let mut thresholds = Thresholds::default();
    if let Some(alpha) = file.alpha {
        // Above 0.5 a one-sided test would call a change "significant" against the evidence.
        if !(alpha > 0.0 && alpha <= 0.5) {
            return Err(InputError(format!(
                "alpha = {alpha} is not a significance level; use a value in (0, 0.5], e.g. \
                 alpha = 0.05"
            )));
        }
        thresholds.alpha = alpha;
    }
    let mut added = Vec::new();
    for (name, entry) in file.metrics {
        let position = thresholds.metrics.iter().position(|(n, _)| *n == name);
        if !entry.enabled {
            if let Some(position) = position {
                thresholds.metrics.remove(position);
            }
            continue;
        }
        let Some(direction) = entry.direction else {
            return Err(InputError(format!(
                "[metrics.{name}] has no direction; add direction = \"lower\" or direction = \
                 \"higher\" (which is better), or enabled = false to drop the metric"
            )));
        };
        for (key, value) in [
            ("abs_tolerance", entry.abs_tolerance),
            ("rel_tolerance", entry.rel_tolerance),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(InputError(format!(
                    "[metrics.{name}] {key} = {value}; tolerances are finite and >= 0"
                )));
            }
        }
        let rule = MetricRule {
            direction,
            abs_tolerance: entry.abs_tolerance,
            rel_tolerance: entry.rel_tolerance,
            significance_test: entry.significance_test,
        };
        match position {
            Some(position) => thresholds.metrics[position].1 = rule,
            None => added.push((name, rule)),
        }
    }
    // Defaults keep their documented order; added metrics follow by name (the file's
    // BTreeMap already sorted them).
    thresholds.metrics.extend(added);
    Ok(thresholds)
}

/// Reads a thresholds file, or the defaults without one.
pub fn load_thresholds(path: Option<&Path>) -> Result<Thresholds, InputError> {
    let Some(path) = path else {
        return Ok(Thresholds::default());
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        InputError(format!(
            "cannot read the thresholds file {}: {err}; give an existing TOML file or leave \
             out --thresholds for the defaults",
            path.display()
        ))
    })?;
    parse_thresholds(&text)
        .map_err(|InputError(why)| InputError(format!("thresholds file {}: {why}", path.display())))
}

/// The cell a trial belongs to: its id without the repetition, or for files without ids the
/// same key rebuilt from its fields.
pub fn cell_key(trial: &Trial) -> String {
    let id = trial.trial_id.trim();
    if !id.is_empty() {
        return match id.rsplit_once('/') {
            Some((cell, last)) if is_repetition(last) => cell.to_string(),
            _ => id.to_string(),
        };
    }
    // The layout of `run::TrialSpec::id`, so old and new files of one matrix line up.
    let buffer = match &trial.audit {
        Some(audit) => format!(
            "backlog{}-wait{}ms",
            audit.settings.backlog_limit, audit.settings.backlog_wait_time_ms
        ),
        None => format!("ring{}", crate::size::format_size(trial.ring_size_bytes)),
    };
    format!(
        "{}/{}/{}/{buffer}/x{}/{}",
        trial.flood,
        trial.scheduler,
        trial.collector,
        trial.threads,
        trial.workload.as_deref().unwrap_or("none")
    )
}

fn is_repetition(component: &str) -> bool {
    component
        .strip_prefix("rep")
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

/// Mean, sample standard deviation and count of one side's samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for one sample.
    pub sd: f64,
}

impl Summary {
    /// `None` without samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let n = samples.len();
        // Equal samples summed and divided are not always equal to themselves (3 × 0.1 / 3):
        // keep them exact, so that "no variance" is recognized and reported as 0.
        if samples.iter().all(|&x| x == samples[0]) {
            return Some(Summary {
                n,
                mean: samples[0],
                sd: 0.0,
            });
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        let sd = if n < 2 {
            0.0
        } else {
            let squares: f64 = samples.iter().map(|x| (x - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        };
        Some(Summary { n, mean, sd })
    }

    /// Squared standard error of the mean.
    fn var_of_mean(&self) -> f64 {
        self.sd * self.sd / self.n as f64
    }
}

/// A Welch t-test's statistic, Welch–Satterthwaite degrees of freedom and one-sided p.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    pub t: f64,
    pub df: f64,
    pub p: f64,
}

/// Welch's one-sided test of mean(x) − mean(y) > `margin`. `None` when it cannot run: a side
/// with fewer than two samples, or no variance on either side (then the answer is simply
/// whether the difference exceeds the margin).
pub fn welch_greater(x: &Summary, y: &Summary, margin: f64) -> Option<Welch> {
    if x.n < 2 || y.n < 2 {
        return None;
    }
    let (vx, vy) = (x.var_of_mean(), y.var_of_mean());
    let se2 = vx + vy;
    if se2 <= 0.0 || !se2.is_finite() {
        return None;
    }
    let df = se2 * se2 / (vx * vx / (x.n - 1) as f64 + vy * vy / (y.n - 1) as f64);
    let t = (x.mean - y.mean - margin) / se2.sqrt();
    let p = StudentsT::new(0.0, 1.0, df).ok()?.sf(t);
    Some(Welch { t, df, p })
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
    fn label(self) -> &'static str {
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

/// A side's trials by cell, as JSON for reading metrics by name.
fn cells(trials: &[Trial]) -> Result<BTreeMap<String, Vec<Value>>> {
    let mut cells: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for trial in trials {
        cells
            .entry(cell_key(trial))
            .or_default()
            .push(serde_json::to_value(trial)?);
    }
    Ok(cells)
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
    let base_cells = cells(baseline)?;
    let cur_cells = cells(current)?;
    let all: BTreeSet<&String> = base_cells.keys().chain(cur_cells.keys()).collect();
    let mut rows = Vec::new();
    for cell in all {
        let (base, cur) = match (base_cells.get(cell), cur_cells.get(cell)) {
            (Some(base), Some(cur)) => (base, cur),
            (base, cur) => {
                let count = |side: Option<&Vec<Value>>| {
                    side.map(|trials| Summary {
                        n: trials.len(),
                        mean: 0.0,
                        sd: 0.0,
                    })
                };
                rows.push(Row {
                    cell: cell.clone(),
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
                });
                continue;
            }
        };
        for (metric, rule) in &thresholds.metrics {
            let b = Summary::of(&samples(base, metric, "baseline")?);
            let c = Summary::of(&samples(cur, metric, "current run")?);
            let row = |allowed, test, decision| Row {
                cell: cell.clone(),
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
                (Some(b), Some(c)) => {
                    let (test, decision) = judge(rule, thresholds.alpha, &b, &c);
                    rows.push(row(Some(rule.allowed(b.mean)), test, decision));
                }
                _ => rows.push(row(None, Test::None, Decision::NoData)),
            }
        }
    }
    // A metric no trial has, in any cell, is more likely misspelt than unmeasured.
    let mut seen = vec![false; thresholds.metrics.len()];
    for trials in base_cells.values().chain(cur_cells.values()) {
        for (index, (metric, _)) in thresholds.metrics.iter().enumerate() {
            seen[index] |= trials
                .iter()
                .any(|t| matches!(metric_value(t, metric), Ok(Some(_))));
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
        unseen_metrics: thresholds
            .metrics
            .iter()
            .zip(seen)
            // The defaults are often legitimately absent (no workload, no run-delay watch).
            .filter(|((name, _), seen)| {
                !seen && !DEFAULT_METRICS.iter().any(|(default, ..)| default == name)
            })
            .map(|((name, _), _)| name.clone())
            .collect(),
    })
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
        join(trials.iter().map(|t| t.git_rev.as_str()).collect()),
        join(trials.iter().map(|t| t.kernel.as_str()).collect())
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
            Test::None => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            escape(&row.cell),
            row.metric.as_deref().map_or("-".to_string(), escape),
            side(row.baseline),
            side(row.current),
            change,
            row.allowed.map_or(String::new(), number),
            p,
            row.decision.label()
        );
    }
    let _ = writeln!(
        out,
        "\nA regression is a change in the bad direction larger than `allowed` = max(abs \
         tolerance, rel tolerance × |baseline mean|) that Welch's one-sided t-test of \
         (change − allowed) > 0 finds significant at p < {}. A cell of the baseline missing \
         from the current run fails too.",
        comparison.alpha
    );
    let _ = writeln!(
        out,
        "\n| metric | better | abs tolerance | rel tolerance | significance test |\n\
         |---|---|---:|---:|---|"
    );
    for (metric, rule) in &comparison.rules {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            escape(metric),
            rule.direction.name(),
            number(rule.abs_tolerance),
            number(rule.rel_tolerance),
            if rule.significance_test { "yes" } else { "no" }
        );
    }
    for metric in &comparison.unseen_metrics {
        let _ = writeln!(
            out,
            "\nNote: no trial in either file has `{}`; is the metric's name right?",
            escape(metric)
        );
    }
    out
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

fn read_trials(path: &Path, flag: &str) -> Result<Vec<Trial>, InputError> {
    let trials = crate::export::json::read(path).map_err(|err| {
        InputError(format!(
            "cannot read the trials of {flag} {}: {err:#}; give a `run` output directory, its \
             trials.jsonl, or a JSON list of trials (`attack --json`)",
            path.display()
        ))
    })?;
    if trials.is_empty() {
        return Err(InputError(format!(
            "{flag} {} holds no trials; point it at a finished run",
            path.display()
        )));
    }
    Ok(trials)
}

/// Runs the gate; returns the exit status (0 no regression, 1 regression or missing cell).
pub fn gate(args: &GateArgs) -> Result<i32> {
    let thresholds = load_thresholds(args.thresholds.as_deref())?;
    let baseline = read_trials(&args.baseline, "--baseline")?;
    let current = read_trials(&args.current, "--current")?;
    let comparison = compare(&baseline, &current, &thresholds)?;
    let report = render_report(
        &comparison,
        &Inputs {
            baseline: &args.baseline,
            current: &args.current,
            thresholds: args.thresholds.as_deref(),
            baseline_provenance: provenance(&baseline),
            current_provenance: provenance(&current),
        },
    );
    if let Some(path) = &args.report {
        crate::export::write_atomically(path, report.as_bytes())?;
    }
    {
        use std::io::Write;
        // A closed stdout (`| head`) must not hide the verdict: the status still says it.
        let _ = std::io::stdout().write_all(report.as_bytes());
    }
    for metric in &comparison.unseen_metrics {
        crate::say!("warning: no trial in either file has metric {metric}");
    }
    Ok(comparison.exit_status())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_status;
    use crate::results::trial::example_trial;

    const CELL: &str = "openat/eevdf/builtin/ring64KiB/x8/none";

    /// One repetition of the cell `CELL` (or another scheduler's), with the two metrics the
    /// tests move.
    fn trial(scheduler: &str, rep: u32, loss_pct: f64, delivered_per_s: f64) -> Trial {
        let mut t = example_trial(scheduler, 8, loss_pct, None);
        t.repetition = rep;
        t.trial_id = format!("openat/{scheduler}/builtin/ring64KiB/x8/none/rep{rep}");
        t.delivered_per_s = delivered_per_s;
        t
    }

    /// Three repetitions each of eevdf and aegis cells; per repetition (loss, delivered/s).
    fn run(points: &[(f64, f64)]) -> Vec<Trial> {
        ["eevdf", "aegis"]
            .iter()
            .flat_map(|scheduler| {
                points
                    .iter()
                    .enumerate()
                    .map(move |(rep, &(loss, delivered))| {
                        trial(scheduler, rep as u32, loss, delivered)
                    })
            })
            .collect()
    }

    fn report(comparison: &Comparison) -> String {
        render_report(
            comparison,
            &Inputs {
                baseline: Path::new("results/baseline"),
                current: Path::new("current"),
                thresholds: None,
                baseline_provenance: String::new(),
                current_provenance: String::new(),
            },
        )
    }

    fn row<'a>(comparison: &'a Comparison, cell: &str, metric: &str) -> &'a Row {
        comparison
            .rows
            .iter()
            .find(|r| r.cell == cell && r.metric.as_deref() == Some(metric))
            .unwrap_or_else(|| panic!("no row {cell} {metric}"))
    }

    #[test]
    fn identical_runs_pass() {
        let baseline = run(&[(0.5, 1e6), (0.7, 1.2e6), (0.4, 0.9e6)]);
        let comparison = compare(&baseline, &baseline, &Thresholds::default()).unwrap();
        assert_eq!(comparison.exit_status(), 0);
        assert_eq!(comparison.count(Decision::Regression), 0);
        assert_eq!(comparison.count(Decision::Improved), 0);
        // loss, canary, delivered, collector CPU in two cells; the rest not measured.
        assert_eq!(comparison.count(Decision::Ok), 8);
        let text = report(&comparison);
        assert!(text.starts_with("# aegis-bench gate: PASS"), "{text}");
        assert!(
            text.contains("**PASS**: 0 regressions, 0 improved, 8 ok, 0 missing"),
            "{text}"
        );
    }

    #[test]
    fn planted_regression_fails_and_names_cell_and_metric() {
        let baseline = run(&[(0.0, 1.0e6), (0.0, 1.03e6), (0.0, 0.97e6)]);
        let mut current = baseline.clone();
        for t in current.iter_mut().filter(|t| t.scheduler == "eevdf") {
            t.loss_pct = 40.0;
            t.delivered_per_s /= 2.0;
        }
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        assert_eq!(comparison.exit_status(), 1);
        assert_eq!(
            row(&comparison, CELL, "loss_pct").decision,
            Decision::Regression
        );
        // Loss went from exactly 0 to exactly 40: no variance, no test needed.
        assert_eq!(row(&comparison, CELL, "loss_pct").test, Test::NoVariance);
        let delivered = row(&comparison, CELL, "delivered_per_s");
        assert_eq!(delivered.decision, Decision::Regression);
        assert!(
            matches!(delivered.test, Test::Welch(w) if w.p < 0.05),
            "{delivered:?}"
        );
        // The untouched cell passes.
        let aegis = "openat/aegis/builtin/ring64KiB/x8/none";
        assert_eq!(row(&comparison, aegis, "loss_pct").decision, Decision::Ok);

        let text = report(&comparison);
        assert!(text.starts_with("# aegis-bench gate: FAIL"), "{text}");
        assert!(
            text.contains("**FAIL**: 2 regressions, 0 improved,"),
            "{text}"
        );
        let table: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| openat/"))
            .collect();
        // Regressions first, in metric order.
        assert!(
            table[0].starts_with(&format!(
                "| {CELL} | loss_pct | 0 ± 0 (3) | 40 ± 0 (3) | +40 (n/a) | 1 |"
            )),
            "{text}"
        );
        assert!(
            table[0].ends_with("| no variance | **REGRESSION** |"),
            "{text}"
        );
        // 1e6 ± 3 % halved: t = (5e5 − 3.5e5) / sqrt(3e4²/3 + 1.5e4²/3) = 7.75, df = 2.94.
        assert!(
            table[1].starts_with(&format!(
                "| {CELL} | delivered_per_s | 1e6 ± 30000 (3) | 500000 ± 15000 (3) | -500000 \
                 (-50.0 %) | 350000 | 0.0024 |"
            )) && table[1].contains("(-50.0 %)")
                && table[1].ends_with("| **REGRESSION** |"),
            "{text}"
        );
    }

    #[test]
    fn noise_inside_tolerance_passes() {
        // Loss within 1 pp, throughput ±25 %, collector CPU +40 %: a noisy TCG guest.
        let baseline = run(&[(0.2, 1.0e6), (0.5, 1.3e6), (0.3, 0.8e6)]);
        let mut current = run(&[(0.9, 0.8e6), (0.6, 0.75e6), (1.1, 0.95e6)]);
        for t in &mut current {
            t.collector_cpu_s *= 1.4;
        }
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        assert_eq!(comparison.exit_status(), 0, "{}", report(&comparison));
        assert_eq!(comparison.count(Decision::Regression), 0);
    }

    #[test]
    fn change_beyond_tolerance_but_within_scatter_passes() {
        // One bad repetition drags the mean 2 pp up; the scatter explains it.
        let baseline = run(&[(0.0, 1e6), (0.0, 1e6), (0.0, 1e6)]);
        let current = run(&[(0.0, 1e6), (0.0, 1e6), (6.0, 1e6)]);
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        let loss = row(&comparison, CELL, "loss_pct");
        assert_eq!(loss.decision, Decision::Ok);
        // t = (2 - 0 - 1) / sqrt(12 / 3) = 0.5 with 2 degrees of freedom.
        let Test::Welch(welch) = loss.test else {
            panic!("{loss:?}")
        };
        assert!((welch.t - 0.5).abs() < 1e-12 && (welch.df - 2.0).abs() < 1e-12);
        assert!(welch.p > 0.3 && welch.p < 0.35, "{welch:?}");
        assert_eq!(comparison.exit_status(), 0);
    }

    #[test]
    fn improvement_is_reported_and_passes() {
        let baseline = run(&[(30.0, 1e6), (32.0, 1e6), (31.0, 1e6)]);
        let current = run(&[(0.0, 1e6), (1.0, 1e6), (0.5, 1e6)]);
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        assert_eq!(
            row(&comparison, CELL, "loss_pct").decision,
            Decision::Improved
        );
        assert_eq!(comparison.exit_status(), 0);
    }

    #[test]
    fn missing_cell_fails_and_new_cell_does_not() {
        let baseline = run(&[(0.0, 1e6), (0.0, 1e6)]);
        let mut current: Vec<Trial> = baseline
            .iter()
            .filter(|t| t.scheduler == "aegis")
            .cloned()
            .collect();
        current.push(trial("scx_rusty", 0, 0.0, 1e6));
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        assert_eq!(comparison.exit_status(), 1);
        assert_eq!(comparison.count(Decision::Missing), 1);
        assert_eq!(comparison.count(Decision::New), 1);
        let text = report(&comparison);
        assert!(
            text.contains(&format!(
                "| {CELL} | - | 2 trials | absent |  |  |  | **MISSING** |"
            )),
            "{text}"
        );
        assert!(
            text.contains("| openat/scx_rusty/builtin/ring64KiB/x8/none | - | absent | 1 trial |"),
            "{text}"
        );
        assert!(text.contains("0 regressions, 0 improved, 4 ok, 1 missing (1 new cell, 0 no data)"));
    }

    #[test]
    fn one_repetition_decides_on_the_tolerance() {
        let baseline = vec![trial("eevdf", 0, 0.0, 1e6)];
        let current = vec![trial("eevdf", 0, 5.0, 1e6)];
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        let loss = row(&comparison, CELL, "loss_pct");
        assert_eq!(
            (loss.test, loss.decision),
            (Test::OneRepetition, Decision::Regression)
        );
        assert!(report(&comparison).contains("| 1 repetition: no test | **REGRESSION** |"));
    }

    #[test]
    fn any_canary_drop_is_a_regression() {
        let baseline = run(&[(0.0, 1e6), (0.0, 1e6), (0.0, 1e6)]);
        let mut current = baseline.clone();
        current[2].canary_recorded = false;
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        let canary = row(&comparison, CELL, "canary_recorded");
        assert_eq!(
            (canary.test, canary.decision),
            (Test::Rule, Decision::Regression)
        );
    }

    #[test]
    fn no_data_on_one_side_does_not_fail() {
        let mut baseline = run(&[(0.0, 1e6), (0.0, 1e6)]);
        for t in &mut baseline {
            t.run_delay_p99_ms = Some(3.0);
        }
        let current = run(&[(0.0, 1e6), (0.0, 1e6)]);
        let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
        assert_eq!(
            row(&comparison, CELL, "run_delay_p99_ms").decision,
            Decision::NoData
        );
        assert_eq!(comparison.exit_status(), 0);
    }

    #[test]
    fn trials_without_ids_are_grouped_by_their_fields() {
        let mut t = trial("eevdf", 2, 0.0, 1e6);
        let with_id = cell_key(&t);
        t.trial_id.clear();
        assert_eq!(cell_key(&t), with_id);
        assert_eq!(with_id, CELL);
        t.workload = Some("hackbench".into());
        t.ring_size_bytes = 4096;
        assert_eq!(cell_key(&t), "openat/eevdf/builtin/ring4KiB/x8/hackbench");
        // An id without a repetition is its own cell.
        t.trial_id = "custom/label".into();
        assert_eq!(cell_key(&t), "custom/label");
    }

    #[test]
    fn thresholds_file_overrides_one_metric_and_keeps_the_rest() {
        let thresholds = parse_thresholds(
            "alpha = 0.01\n\
             [metrics.loss_pct]\n\
             direction = \"lower\"\n\
             abs_tolerance = 50.0\n\
             [metrics.attack_rate]\n\
             direction = \"higher\"\n\
             rel_tolerance = 0.2\n\
             [metrics.fairness_workload_jain]\n\
             enabled = false\n",
        )
        .unwrap();
        assert_eq!(thresholds.alpha, 0.01);
        let names: Vec<&str> = thresholds.metrics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "loss_pct",
                "canary_recorded",
                "delivered_per_s",
                "collector_cpu_s",
                "workload_kept_fraction",
                "run_delay_p99_ms",
                "attack_rate"
            ]
        );
        let defaults = Thresholds::default();
        assert_eq!(thresholds.metrics[0].1.abs_tolerance, 50.0);
        assert_eq!(thresholds.metrics[2], defaults.metrics[2]);

        // The planted regression: loss now within the tolerance, throughput still caught.
        let baseline = run(&[(0.0, 1.0e6), (0.0, 1.03e6), (0.0, 0.97e6)]);
        let mut current = baseline.clone();
        for t in current.iter_mut().filter(|t| t.scheduler == "eevdf") {
            t.loss_pct = 40.0;
            t.delivered_per_s /= 2.0;
        }
        let comparison = compare(&baseline, &current, &thresholds).unwrap();
        assert_eq!(row(&comparison, CELL, "loss_pct").decision, Decision::Ok);
        assert_eq!(
            row(&comparison, CELL, "delivered_per_s").decision,
            Decision::Regression
        );
        assert_eq!(row(&comparison, CELL, "attack_rate").decision, Decision::Ok);
    }

    #[test]
    fn bad_thresholds_files_say_what_to_fix() {
        let unknown = parse_thresholds("[metrics.loss_pct]\ndirection = \"lower\"\nabs_tol = 1\n")
            .unwrap_err()
            .0;
        assert!(unknown.contains("unknown field `abs_tol`"), "{unknown}");
        assert!(unknown.contains("abs_tolerance"), "{unknown}");
        let top = parse_thresholds("alpah = 0.05\n").unwrap_err().0;
        assert!(top.contains("unknown field `alpah`"), "{top}");
        let direction = parse_thresholds("[metrics.loss_pct]\ndirection = \"down\"\n")
            .unwrap_err()
            .0;
        assert!(
            direction.contains("unknown variant `down`")
                && direction.contains("`lower` or `higher`"),
            "{direction}"
        );
        let no_direction = parse_thresholds("[metrics.attack_rate]\nrel_tolerance = 0.1\n")
            .unwrap_err()
            .0;
        assert!(no_direction.contains("[metrics.attack_rate] has no direction"));
        let alpha = parse_thresholds("alpha = 1.5\n").unwrap_err().0;
        assert!(alpha.contains("alpha = 1.5"), "{alpha}");
        let negative =
            parse_thresholds("[metrics.loss_pct]\ndirection = \"lower\"\nabs_tolerance = -1\n")
                .unwrap_err()
                .0;
        assert!(negative.contains("abs_tolerance = -1"), "{negative}");
    }

    #[test]
    fn welch_matches_a_hand_computed_value() {
        // [1,2,3] vs [4,5,6]: means 2 and 5, variances 1, se = sqrt(1/3 + 1/3), t = 3 / se =
        // 3.6742346; df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = 4; one-sided p = P(T4 > t) =
        // 0.0106558 (Student's t with 4 degrees of freedom has a closed-form CDF).
        let x = Summary::of(&[4.0, 5.0, 6.0]).unwrap();
        let y = Summary::of(&[1.0, 2.0, 3.0]).unwrap();
        let welch = welch_greater(&x, &y, 0.0).unwrap();
        assert!((welch.t - 3.674_234_614_174_767).abs() < 1e-9, "{welch:?}");
        assert!((welch.df - 4.0).abs() < 1e-12, "{welch:?}");
        assert!((welch.p - 0.010_655_820_564).abs() < 1e-7, "{welch:?}");
        // Shifting by the margin tests the excess: 3 − 3 = 0 is a coin toss.
        let shifted = welch_greater(&x, &y, 3.0).unwrap();
        assert!(shifted.t.abs() < 1e-12 && (shifted.p - 0.5).abs() < 1e-9);
        // Unequal variances and sizes: df from Welch–Satterthwaite, not n1 + n2 − 2.
        let wide = Summary::of(&[0.0, 10.0, 20.0, 30.0]).unwrap();
        let welch = welch_greater(&wide, &y, 0.0).unwrap();
        let (vx, vy) = (wide.sd.powi(2) / 4.0, 1.0 / 3.0);
        let df = (vx + vy).powi(2) / (vx * vx / 3.0 + vy * vy / 2.0);
        assert!((welch.df - df).abs() < 1e-12 && welch.df < 5.0);
        // Not runnable: one sample, or no variance at all.
        let one = Summary::of(&[1.0]).unwrap();
        assert_eq!(welch_greater(&one, &y, 0.0), None);
        let flat = Summary::of(&[2.0, 2.0]).unwrap();
        assert_eq!(welch_greater(&flat, &flat, 0.0), None);
    }

    #[test]
    fn metrics_are_read_by_json_name() {
        let mut t = trial("eevdf", 0, 1.5, 1e6);
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

    #[test]
    fn misspelt_metric_is_noted() {
        let thresholds =
            parse_thresholds("[metrics.loss_pc]\ndirection = \"lower\"\nabs_tolerance = 1\n")
                .unwrap();
        let baseline = run(&[(0.0, 1e6)]);
        let comparison = compare(&baseline, &baseline, &thresholds).unwrap();
        assert!(comparison.unseen_metrics.contains(&"loss_pc".to_string()));
        assert!(report(&comparison).contains("no trial in either file has `loss_pc`"));
    }

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

    #[test]
    fn gate_reads_files_writes_the_report_and_returns_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, trials: &[Trial]| {
            let path = dir.path().join(name);
            let mut text = String::new();
            for t in trials {
                text.push_str(&serde_json::to_string(t).unwrap());
                text.push('\n');
            }
            std::fs::write(&path, text).unwrap();
            path
        };
        let baseline = run(&[(0.0, 1e6), (0.0, 1e6), (0.0, 1e6)]);
        let mut current = baseline.clone();
        for t in &mut current {
            t.loss_pct = 40.0;
        }
        let args = GateArgs {
            baseline: write("baseline.jsonl", &baseline),
            current: write("current.jsonl", &current),
            thresholds: None,
            report: Some(dir.path().join("out/gate.md")),
        };
        assert_eq!(gate(&args).unwrap(), 1);
        let text = std::fs::read_to_string(dir.path().join("out/gate.md")).unwrap();
        assert!(
            text.contains("6 trials in 2 cells (git r; kernel 6.18)"),
            "{text}"
        );
        assert!(text.contains(&format!("| {CELL} | loss_pct |")));

        let same = GateArgs {
            current: args.baseline.clone(),
            report: None,
            ..args.clone()
        };
        assert_eq!(gate(&same).unwrap(), 0);

        let missing = GateArgs {
            current: dir.path().join("nowhere"),
            ..same.clone()
        };
        let err = gate(&missing).unwrap_err();
        assert_eq!(exit_status(&err), 2);
        assert!(err.to_string().contains("--current"), "{err}");

        std::fs::write(
            dir.path().join("bad.toml"),
            "[metrics.loss_pct]\nbogus = 1\n",
        )
        .unwrap();
        let bad = GateArgs {
            thresholds: Some(dir.path().join("bad.toml")),
            ..same
        };
        let err = gate(&bad).unwrap_err();
        assert_eq!(exit_status(&err), 2);
        assert!(err.to_string().contains("bad.toml"), "{err}");
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
    }
}
