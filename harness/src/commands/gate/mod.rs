//! `aegis-bench gate`: does a run regress against a baseline? The answer is an exit status
//! for CI (0 no, 1 yes) and a markdown report that says which cell and metric, and by how much.
//!
//! # Cells and samples
//!
//! Trials are grouped into *cells*: the trial id without its trailing `/repN` (and `/bootN`
//! in runs of several boots) (`openat/aegis/builtin/ring16KiB/x8/stress-ng-cpu`). Files written before trials had ids
//! get the same key rebuilt from the trial's flood, scheduler, collector, buffer (ring size, or
//! auditd's backlog settings), threads and workload. The repetitions of a cell are its samples.
//!
//! # Metrics
//!
//! A metric is any numeric field of the trial's JSON (see [`crate::results::trial::Trial`]), named as in
//! the JSON; `a.b` reaches into an object (`audit.lost_records`). Booleans count as 1 and 0; a
//! missing or null field is no sample. Each metric has a direction (is lower or higher
//! better?) and a tolerance; the built-in set is [`DEFAULT_METRICS`], and a thresholds file
//! (TOML, see [`parse_thresholds`] and `docs/gate.md`) replaces or adds to it. Two metrics are
//! derived from Aegis's stats (`derived`: waits against the claimed bound). A rule may also
//! name a *ratio*: a field of the cell over the same field of the cell under a control
//! scheduler, one sample per boot both ran in ([`Ratio`]), which cancels the machine's speed
//! out of rates; and `cells`, globs that scope it to some cells.
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
//! - **improved** iff the same holds the other way round; otherwise **ok**;
//! - but first, with a `limit` (a claim's bar: loss at most 0.01 %), a current mean beyond it
//!   is a **regression** whatever the baseline — "beyond limit X".
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

mod compare;
mod derived;
mod report;
#[cfg(test)]
mod tests;
pub mod thresholds;

use std::path::Path;

use anyhow::Result;

pub use crate::stats::{welch_greater, Summary, Welch};
pub use compare::{cell_key, compare, Comparison, Decision, Row, Test};
pub use derived::{add_derived, CLAIMED_BASE_WAIT_US};
pub use report::{provenance, render_report, Inputs};
pub use thresholds::{
    glob_matches, load_thresholds, parse_thresholds, Direction, MetricRule, Ratio, Thresholds,
    DEFAULT_ALPHA, DEFAULT_METRICS,
};

use crate::cli::GateArgs;
use crate::error::InputError;
use crate::results::trial::Trial;

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
        crate::files::write_atomically(path, report.as_bytes())?;
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
