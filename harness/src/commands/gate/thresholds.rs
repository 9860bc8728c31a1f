//! The gate's rules: which metrics it judges, which way is better, how much change each
//! tolerates, and the thresholds file that replaces or adds to the built-in set.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::InputError;

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
    pub(super) fn name(self) -> &'static str {
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
    /// A claim's bar: a cell whose current mean is worse than this fails, whatever the
    /// baseline says (`loss_pct` above 0.01 %, a canary not recorded in every trial).
    pub limit: Option<f64>,
    /// The cells the rule judges, as globs over the cell key (`*` is any text, e.g.
    /// `*/aegis/*`); empty: every cell.
    pub cells: Vec<String>,
    /// Judge a ratio to a control scheduler in the same boot instead of a trial field.
    pub ratio: Option<Ratio>,
}

/// A within-boot ratio: the cell's `of` divided by the same cell's `of` under `control` in
/// the same boot, one sample per boot. Speed-dependent metrics (events/s, throughput) move
/// with the machine and the boot; their ratio to a control run beside them does not.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// The trial field divided (`delivered_per_s`).
    pub of: String,
    /// The scheduler label of the cell that divides it (`eevdf:collector-fifo`).
    pub control: String,
    /// The control's field that divides it, when not `of` itself: the control's
    /// `workload_alone_throughput_per_s` (the workload alone under EEVDF, in that boot)
    /// divides a cell's `workload_throughput_per_s`.
    pub control_field: Option<String>,
}

impl Ratio {
    /// The control's field that divides.
    pub fn divisor(&self) -> &str {
        self.control_field.as_deref().unwrap_or(&self.of)
    }
}

impl MetricRule {
    /// The change in the bad direction that is still accepted, in the metric's unit.
    pub fn allowed(&self, baseline_mean: f64) -> f64 {
        self.abs_tolerance
            .max(self.rel_tolerance * baseline_mean.abs())
    }

    /// Whether `mean` is past the rule's limit, in the bad direction.
    pub fn beyond_limit(&self, mean: f64) -> bool {
        match (self.limit, self.direction) {
            (Some(limit), Direction::Lower) => mean > limit,
            (Some(limit), Direction::Higher) => mean < limit,
            (None, _) => false,
        }
    }

    /// Whether the rule judges `cell` (its `cells` globs; all cells without any).
    pub fn applies_to(&self, cell: &str) -> bool {
        self.cells.is_empty() || self.cells.iter().any(|glob| glob_matches(glob, cell))
    }

    /// A rule with no limit, scope or ratio.
    fn plain(direction: Direction, abs_tolerance: f64, rel_tolerance: f64, test: bool) -> Self {
        MetricRule {
            direction,
            abs_tolerance,
            rel_tolerance,
            significance_test: test,
            limit: None,
            cells: Vec::new(),
            ratio: None,
        }
    }
}

/// `*` matches any text (also `/`), everything else itself.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: the whole text must match
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The built-in metrics: (JSON field, direction, abs tolerance, rel tolerance, significance
/// test). The tolerances are sized for TCG guests on a shared 2-core host, where throughputs
/// move ±30 % run to run; bare-metal runners can tighten them with a thresholds file.
pub const DEFAULT_METRICS: [(&str, Direction, f64, f64, bool); 10] = [
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
    // Derived from scx_aegis's stats (see `derived`): waits past the scheduler's own bound
    // plus a tick outside vCPU stalls, the longest wait over the claimed bound, and the
    // watched waits past twice the longest claim.
    ("wait_bound_violations", Direction::Lower, 3.0, 0.0, true),
    ("max_wait_vs_bound", Direction::Lower, 1.0, 0.0, true),
    ("waits_past_2x_bound", Direction::Lower, 5.0, 0.0, true),
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
                        MetricRule::plain(direction, abs_tolerance, rel_tolerance, test),
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
    limit: Option<f64>,
    #[serde(default)]
    cells: Vec<String>,
    ratio_of: Option<String>,
    control: Option<String>,
    control_field: Option<String>,
}

fn yes() -> bool {
    true
}

const THRESHOLDS_KEYS: &str = "the keys are `alpha` and, per [metrics.FIELD], `direction` \
                               (\"lower\" or \"higher\"), `abs_tolerance`, `rel_tolerance`, \
                               `significance_test`, `limit`, `cells`, `ratio_of`, `control`, \
                               `control_field` and `enabled` (see docs/gate.md)";

/// Parses a thresholds file onto the defaults: each `[metrics.FIELD]` replaces the built-in
/// rule of that field (or adds one; `direction` is required, tolerances default to 0),
/// `enabled = false` drops the metric, metrics not named keep their defaults.
pub fn parse_thresholds(text: &str) -> Result<Thresholds, InputError> {
    let file: ThresholdsFile = toml::from_str(text).map_err(|err| {
        InputError(format!(
            "{}; {THRESHOLDS_KEYS}",
            crate::error::toml_error_line(text, &err)
        ))
    })?;
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
        let rule = rule_of(&name, direction, entry)?;
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

/// A `[metrics.NAME]` table's rule, checked.
fn rule_of(name: &str, direction: Direction, entry: MetricEntry) -> Result<MetricRule, InputError> {
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
    if let Some(limit) = entry.limit.filter(|l| !l.is_finite()) {
        return Err(InputError(format!(
            "[metrics.{name}] limit = {limit}; a limit is a finite number in the metric's unit"
        )));
    }
    if entry.cells.iter().any(|glob| glob.is_empty()) {
        return Err(InputError(format!(
            "[metrics.{name}] cells holds an empty pattern; give globs over cell keys such as \
             \"*/aegis/*\", or leave cells out for every cell"
        )));
    }
    let ratio = match (entry.ratio_of, entry.control) {
        (Some(of), Some(control)) if !of.is_empty() && !control.is_empty() => Some(Ratio {
            of,
            control,
            control_field: entry.control_field,
        }),
        (None, None) if entry.control_field.is_none() => None,
        _ => {
            return Err(InputError(format!(
                "[metrics.{name}] needs both ratio_of (the trial field divided) and control (the \
                 scheduler whose cell in the same boot divides it), or neither (and \
                 control_field only with them)"
            )))
        }
    };
    Ok(MetricRule {
        direction,
        abs_tolerance: entry.abs_tolerance,
        rel_tolerance: entry.rel_tolerance,
        significance_test: entry.significance_test,
        limit: entry.limit,
        cells: entry.cells,
        ratio,
    })
}

/// Reads a thresholds file, or the defaults without one.
pub fn load_thresholds(path: Option<&Path>) -> Result<Thresholds, InputError> {
    let Some(path) = path else {
        return Ok(Thresholds::default());
    };
    let text = crate::files::read_input(path).map_err(|err| {
        InputError(format!(
            "cannot read the thresholds file {}: {err}; give an existing TOML file or leave \
             out --thresholds for the defaults",
            path.display()
        ))
    })?;
    parse_thresholds(&text)
        .map_err(|InputError(why)| InputError(format!("thresholds file {}: {why}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let half_ratio =
            parse_thresholds("[metrics.r]\ndirection = \"higher\"\nratio_of = \"x\"\n")
                .unwrap_err()
                .0;
        assert!(half_ratio.contains("both ratio_of"), "{half_ratio}");
        let empty_glob =
            parse_thresholds("[metrics.loss_pct]\ndirection = \"lower\"\ncells = [\"\"]\n")
                .unwrap_err()
                .0;
        assert!(empty_glob.contains("empty pattern"), "{empty_glob}");
    }

    #[test]
    fn limits_scopes_and_ratios_parse() {
        let thresholds = parse_thresholds(
            "[metrics.loss_pct]\ndirection = \"lower\"\nlimit = 0.01\ncells = [\"*/aegis/*\"]\n\
             [metrics.delivered_vs_fifo]\ndirection = \"higher\"\nrel_tolerance = 0.3\n\
             ratio_of = \"delivered_per_s\"\ncontrol = \"eevdf:collector-fifo\"\n",
        )
        .unwrap();
        let loss = &thresholds.metrics[0].1;
        assert_eq!(loss.limit, Some(0.01));
        assert!(loss.beyond_limit(0.02) && !loss.beyond_limit(0.01));
        assert!(loss.applies_to("openat/aegis/builtin/ring16KiB/x8/none"));
        assert!(!loss.applies_to("openat/eevdf:collector-fifo/builtin/ring16KiB/x8/none"));
        let (name, ratio) = thresholds.metrics.last().unwrap();
        assert_eq!(name, "delivered_vs_fifo");
        assert_eq!(
            ratio.ratio,
            Some(Ratio {
                of: "delivered_per_s".into(),
                control: "eevdf:collector-fifo".into(),
                control_field: None,
            })
        );
        let canary = MetricRule {
            limit: Some(1.0),
            ..MetricRule::plain(Direction::Higher, 0.0, 0.0, false)
        };
        assert!(canary.beyond_limit(2.0 / 3.0) && !canary.beyond_limit(1.0));
    }

    #[test]
    fn globs_match_whole_keys() {
        assert!(glob_matches("*/aegis/*", "openat/aegis/builtin/x8/none"));
        assert!(!glob_matches(
            "*/aegis/*",
            "openat/aegis:no-model/builtin/x8/none"
        ));
        assert!(glob_matches(
            "*/aegis/*/none",
            "openat/aegis/builtin/x8/none"
        ));
        assert!(!glob_matches(
            "*/aegis/*/none",
            "openat/aegis/builtin/x8/stress-ng-cpu"
        ));
        assert!(glob_matches("openat/aegis/b", "openat/aegis/b"));
        assert!(!glob_matches("openat/aegis", "openat/aegis/b"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*a", "aa") && !glob_matches("a*a", "a"));
    }
}
