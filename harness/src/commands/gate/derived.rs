//! Metrics the gate derives from a trial's `scheduler_stats` (scx_aegis's counters), added to
//! the trial's JSON under their own names so that rules name them like any field:
//!
//! - `wait_bound_violations`: the waits, summed over the levels, that went past the level's
//!   bound plus one tick outside vCPU stalls (`nr_bound_violations −
//!   nr_bound_violations_in_stalls`): the scheduler's own count against its configured bound.
//! - `max_wait_vs_bound`: the longest wait of any level as a multiple of the bound Aegis
//!   *claims* for that level plus one tick (16 ms × 2^level + tick, docs/aegis.md). Above 1 the
//!   claim was broken. It is measured against the claim, not the configured bound, so a
//!   scheduler run with its bound raised out of reach (`--base-wait-ms 100000`), whose own
//!   violation counter stays at 0, is judged by what it promises.
//! - `waits_past_2x_bound`: the waits of the trial's watched tasks (`run_delay_waits_ns`, the
//!   run-delay watcher's histogram, taken outside the scheduler) at least twice the
//!   longest bound Aegis claims plus a tick (2 × (16 ms × 2^(levels − 1) + tick), 136 ms with
//!   three levels), counted by their bucket's lower edge. The longest wait alone cannot tell
//!   a missing bound from a TCG guest's vCPU stall (a loaded host stalls a guest for hundreds
//!   of milliseconds now and then, and the scheduler then serves a task late once); a missing
//!   bound starves tasks again and again, so such waits pile up.
//!
//! A trial without `scheduler_stats.levels` gets neither; a trial that already has a field of
//! that name keeps its own.

use serde_json::{Map, Value};

/// The claimed wait bound of the provenance level (level 0), µs: scx_aegis's default
/// `--base-wait-ms 16`; level k's is this << k.
pub const CLAIMED_BASE_WAIT_US: f64 = 16_000.0;

/// The tick a trial's stats do not name (scx_aegis's default `--tick-us`), µs.
const DEFAULT_TICK_US: f64 = 4_000.0;

/// How many times the longest claimed bound a wait must last to count in
/// `waits_past_2x_bound`: the slack a TCG guest's vCPU stalls need.
pub const LONG_WAIT_FACTOR: f64 = 2.0;

/// Adds the derived metrics to `trial` (a trial's JSON object).
pub fn add_derived(trial: &mut Value) {
    let Some(stats) = trial.get("scheduler_stats").and_then(Value::as_object) else {
        return;
    };
    let Some(levels) = stats.get("levels").and_then(Value::as_array) else {
        return;
    };
    let tick_us = number(stats, "wait_bound_tick_us").unwrap_or(DEFAULT_TICK_US);
    let mut violations = 0.0;
    let mut worst: Option<f64> = None;
    for (k, level) in levels.iter().enumerate() {
        let Some(level) = level.as_object() else {
            continue;
        };
        let late = number(level, "nr_bound_violations").unwrap_or(0.0);
        let in_stalls = number(level, "nr_bound_violations_in_stalls").unwrap_or(0.0);
        violations += (late - in_stalls).max(0.0);
        if let Some(wait) = number(level, "max_wait_us") {
            let claim = CLAIMED_BASE_WAIT_US * 2f64.powi(k as i32) + tick_us;
            worst = Some(worst.map_or(wait / claim, |w: f64| w.max(wait / claim)));
        }
    }
    let long_waits = (!levels.is_empty())
        .then(|| {
            let longest = CLAIMED_BASE_WAIT_US * 2f64.powi(levels.len() as i32 - 1) + tick_us;
            waits_at_least(trial, LONG_WAIT_FACTOR * longest * 1_000.0)
        })
        .flatten();
    let Some(object) = trial.as_object_mut() else {
        return;
    };
    if let Some(long_waits) = long_waits {
        object
            .entry("waits_past_2x_bound")
            .or_insert(Value::from(long_waits));
    }
    object
        .entry("wait_bound_violations")
        .or_insert(Value::from(violations));
    if let Some(worst) = worst {
        object
            .entry("max_wait_vs_bound")
            .or_insert(Value::from(worst));
    }
}

/// The waits in `trial`'s run-delay histogram whose bucket starts at `ns` or later; `None`
/// without a histogram.
fn waits_at_least(trial: &Value, ns: f64) -> Option<f64> {
    let counts = trial.get("run_delay_waits_ns")?.get("counts")?.as_array()?;
    Some(
        counts
            .iter()
            .filter_map(|pair| Some((pair.get(0)?.as_f64()?, pair.get(1)?.as_f64()?)))
            .filter(|(lower, _)| *lower >= ns)
            .map(|(_, n)| n)
            .sum(),
    )
}

fn number(object: &Map<String, Value>, key: &str) -> Option<f64> {
    object.get(key).and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn level(max_wait_us: u64, bound_us: u64, late: u64, in_stalls: u64) -> Value {
        json!({"max_wait_us": max_wait_us, "wait_bound_us": bound_us,
               "nr_bound_violations": late, "nr_bound_violations_in_stalls": in_stalls})
    }

    #[test]
    fn waits_are_judged_against_the_claimed_bound() {
        // The values of a CI trial: producers served at their 64 ms bound.
        let mut trial = json!({"scheduler_stats": {"wait_bound_tick_us": 4000, "levels": [
            level(4_307, 16_000, 0, 0), level(12_779, 32_000, 0, 0), level(67_000, 64_000, 3, 1)
        ]}});
        add_derived(&mut trial);
        assert_eq!(trial["wait_bound_violations"], 2.0);
        let worst = trial["max_wait_vs_bound"].as_f64().unwrap();
        assert!((worst - 67.0 / 68.0).abs() < 1e-12, "{worst}");

        // Without the waiting bound (--base-wait-ms 100000): the configured bounds are out of
        // reach and count nothing, but a 1.4 s wait in the ordinary level is 39x its claim.
        let mut unbounded = json!({"scheduler_stats": {"wait_bound_tick_us": 4000, "levels": [
            level(3_000, 100_000_000, 0, 0), level(1_390_000, 200_000_000, 0, 0),
            level(238_000, 400_000_000, 0, 0)
        ]}});
        add_derived(&mut unbounded);
        assert_eq!(unbounded["wait_bound_violations"], 0.0);
        let worst = unbounded["max_wait_vs_bound"].as_f64().unwrap();
        assert!((worst - 1_390.0 / 36.0).abs() < 1e-9, "{worst}");
    }

    #[test]
    fn long_waits_count_the_watched_waits_past_twice_the_longest_claim() {
        // Three levels: the longest claim is 64 ms + 4 ms, so 136 ms and longer count.
        let mut trial = json!({
            "scheduler_stats": {"wait_bound_tick_us": 4000, "levels": [
                level(1, 16_000, 0, 0), level(1, 32_000, 0, 0), level(1, 64_000, 0, 0)]},
            "run_delay_waits_ns": {"counts": [[67_108_864, 9], [134_217_728, 4],
                                              [136_000_000, 2], [805_306_368, 3]]}});
        add_derived(&mut trial);
        assert_eq!(trial["waits_past_2x_bound"], 5.0);
        // No histogram (run without the run-delay watcher): no sample.
        let mut unwatched = json!({"scheduler_stats": {"levels": [level(1, 16_000, 0, 0)]}});
        add_derived(&mut unwatched);
        assert!(unwatched.get("waits_past_2x_bound").is_none());
    }

    #[test]
    fn trials_without_stats_or_with_their_own_field_are_left_alone() {
        let mut eevdf = json!({"scheduler_stats": null, "loss_pct": 1.0});
        add_derived(&mut eevdf);
        assert_eq!(eevdf, json!({"scheduler_stats": null, "loss_pct": 1.0}));
        let mut own = json!({"max_wait_vs_bound": 0.5,
                             "scheduler_stats": {"levels": [level(64_000, 16_000, 0, 0)]}});
        add_derived(&mut own);
        assert_eq!(own["max_wait_vs_bound"], 0.5);
        assert_eq!(own["wait_bound_violations"], 0.0);
    }
}
