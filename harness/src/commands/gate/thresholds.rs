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
    }
}
