//! Aegis ablations: Aegis (`aegis`) against its variants with a part taken out
//! (`aegis:<variant>`, e.g. `aegis:no-delta-gating`), each pooled over the run's trials:
//! events lost, the policy's inferences run and skipped, and the longest wait on any of its
//! queues (from the scheduler's own counters, `scheduler_stats`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use super::{
    cell, draw_bar_panel, draw_empty_panel, figure_section, titled, Bar, BarPanel, Figure,
    LegendStrip, Run, Spread, Swatch, SIZE,
};
use crate::results::trial::Trial;

/// The variant an Aegis trial ran: `full` for plain `aegis`, `<variant>` for
/// `aegis:<variant>`; `None` for other schedulers (and an empty variant).
pub fn ablation_variant(scheduler: &str) -> Option<&str> {
    match scheduler.strip_prefix("aegis") {
        Some("") => Some("full"),
        Some(rest) => rest.strip_prefix(':').filter(|v| !v.is_empty()),
        None => None,
    }
}

/// The legend's name of a variant's scheduler: `aegis (full)`, `aegis:no-model`.
fn display_name(scheduler: &str) -> String {
    if scheduler == "aegis" {
        "aegis (full)".into()
    } else {
        scheduler.into()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ablation {
    pub loss_pct: Spread,
    pub inferences_run: Option<Spread>,
    pub inferences_skipped: Option<Spread>,
    /// Per trial the longest wait on any level's queue, in ms.
    pub longest_wait_ms: Option<Spread>,
}

fn stat(stats: &Value, key: &str) -> Option<f64> {
    stats.get(key)?.as_f64()
}

/// The longest any task waited on any of the scheduler's queues, in ms.
pub fn longest_wait_ms(stats: &Value) -> Option<f64> {
    stats
        .get("levels")?
        .as_array()?
        .iter()
        .filter_map(|level| level.get("max_wait_us")?.as_f64())
        .reduce(f64::max)
        .map(|us| us / 1000.0)
}

/// Per Aegis scheduler (`aegis` first, then its variants by name), or why there is no figure:
/// without a variant there is nothing to compare.
pub fn ablations(trials: &[Trial]) -> Result<BTreeMap<String, Ablation>, String> {
    let mut by_scheduler: BTreeMap<&str, Vec<&Trial>> = BTreeMap::new();
    for t in trials {
        if ablation_variant(&t.id.scheduler).is_some() {
            by_scheduler.entry(&t.id.scheduler).or_default().push(t);
        }
    }
    if !by_scheduler.keys().any(|s| *s != "aegis") {
        return Err(
            "No ablation figure: no trial ran an Aegis variant (`aegis:<variant>`).".into(),
        );
    }
    let of = |trials: &[&Trial], f: &dyn Fn(&Trial) -> Option<f64>| {
        Spread::of(&trials.iter().filter_map(|t| f(t)).collect::<Vec<_>>())
    };
    let stats = |t: &Trial, key: &str| t.scheduler_stats.as_ref().and_then(|s| stat(s, key));
    Ok(by_scheduler
        .into_iter()
        .filter_map(|(scheduler, trials)| {
            let ablation = Ablation {
                loss_pct: of(&trials, &|t| Some(t.accounting.loss_pct))?,
                inferences_run: of(&trials, &|t| stats(t, "nr_inferences_run")),
                inferences_skipped: of(&trials, &|t| stats(t, "nr_inferences_skipped")),
                longest_wait_ms: of(&trials, &|t| {
                    t.scheduler_stats.as_ref().and_then(longest_wait_ms)
                }),
            };
            Some((scheduler.to_string(), ablation))
        })
        .collect())
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-ablations");
    let data = ablations(&run.trials);
    let Some(ablations) = figure_section(data, run, out, &file, "Aegis ablations", report)? else {
        return Ok(());
    };
    report.push_str(
        "| variant | trials | loss % (mean) | min | max | inferences run (mean) | skipped (mean) \
         | longest wait ms (mean) | min | max |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for (scheduler, a) in &ablations {
        let mean = |s: Option<Spread>, decimals| cell(s.map(|s| s.mean), decimals);
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} | {} |",
            display_name(scheduler),
            a.loss_pct.cells(2),
            mean(a.inferences_run, 1),
            mean(a.inferences_skipped, 1),
            mean(a.longest_wait_ms, 3),
            cell(a.longest_wait_ms.map(|s| s.min), 3),
            cell(a.longest_wait_ms.map(|s| s.max), 3)
        )?;
    }
    Ok(())
}

/// Loss, inferences and the longest wait, a panel each, a bar per variant.
impl Figure for BTreeMap<String, Ablation> {
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(root, run, "Aegis and its ablated variants")?;
        let series = run.series(self.keys());
        let mut entries: Vec<(String, Swatch)> = series
            .iter()
            .map(|(s, c)| (display_name(s), Swatch::Bar(*c)))
            .collect();
        let grey = RGBColor(90, 90, 90);
        entries.push(("inferences run".into(), Swatch::Bar(grey)));
        entries.push(("inferences skipped".into(), Swatch::PaleBar(grey)));
        let legend = LegendStrip::new(entries, SIZE.0);
        let (panels, strip) = legend.split_off(&root);
        let panels = panels.split_evenly((1, 3));
        let slot = |s: &String| series.iter().position(|(x, _)| x == s).unwrap_or(0);
        let bars_of = |bar: &dyn Fn(&Ablation) -> Option<Bar>| -> BTreeMap<(usize, usize), Bar> {
            self.iter()
                .filter_map(|(s, a)| bar(a).map(|b| ((0, slot(s)), b)))
                .collect()
        };
        let loss = bars_of(&|a| Some(Bar::of_spread(&a.loss_pct)));
        let inferences = bars_of(&|a| {
            let run = a.inferences_run.map(|s| s.mean);
            let skipped = a.inferences_skipped.map(|s| s.mean);
            (run.is_some() || skipped.is_some()).then(|| Bar {
                value: run.unwrap_or(0.0),
                whisker: None,
                pale_on_top: skipped,
            })
        });
        let waits = bars_of(&|a| a.longest_wait_ms.as_ref().map(Bar::of_spread));
        let top = |bars: &BTreeMap<(usize, usize), Bar>| {
            bars.values()
                .map(|b| {
                    let whisker = b.whisker.map_or(b.value, |(_, high)| high);
                    whisker.max(b.value + b.pale_on_top.unwrap_or(0.0))
                })
                .fold(0.0f64, f64::max)
                .max(1.0)
                * 1.1
        };
        let groups = [String::new()];
        let panel = |caption, bars, y_desc, y_top| BarPanel {
            caption,
            groups: &groups,
            series: &series,
            bars,
            x_desc: "variant",
            y_desc,
            y_top,
            reference: None,
        };
        draw_bar_panel(
            &panels[0],
            &panel(
                "events lost (mean, min–max)",
                &loss,
                "events lost (%)",
                // Loss is a share: always the whole 0-100 % axis, a little over for whiskers
                // at 100.
                105.0,
            ),
        )?;
        for (area, caption, bars, y_desc) in [
            (
                &panels[1],
                "inferences run, skipped (pale)",
                &inferences,
                "inferences per trial",
            ),
            (
                &panels[2],
                "longest queue wait (mean, min–max)",
                &waits,
                "longest wait (ms)",
            ),
        ] {
            if bars.is_empty() {
                draw_empty_panel(area, caption, "no scheduler counters")?;
            } else {
                draw_bar_panel(area, &panel(caption, bars, y_desc, top(bars)))?;
            }
        }
        legend.draw(&strip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_from_the_scheduler_name() {
        assert_eq!(ablation_variant("aegis"), Some("full"));
        assert_eq!(
            ablation_variant("aegis:no-delta-gating"),
            Some("no-delta-gating")
        );
        assert_eq!(ablation_variant("aegis:no-model"), Some("no-model"));
        assert_eq!(ablation_variant("aegis:"), None);
        assert_eq!(ablation_variant("aegisx"), None);
        assert_eq!(ablation_variant("eevdf:collector-fifo"), None);
        assert_eq!(ablation_variant("scx_rustland"), None);
    }

    #[test]
    fn variants_fold_loss_inferences_and_the_longest_wait() {
        let with_stats = |scheduler: &str, loss: f64, run: u64, waits_us: [u64; 3]| {
            let mut t = crate::results::trial::example_trial(scheduler, 8, loss, None);
            t.scheduler_stats = Some(serde_json::json!({
                "nr_inferences_run": run, "nr_inferences_skipped": 4,
                "levels": waits_us.map(|w| serde_json::json!({"max_wait_us": w})),
            }));
            t
        };
        let only_aegis = [with_stats("aegis", 0.0, 10, [1, 2, 3])];
        assert!(ablations(&only_aegis).is_err());
        let trials = [
            with_stats("aegis", 0.0, 10, [1000, 56_635, 3]),
            with_stats("aegis", 2.0, 20, [1000, 2000, 4000]),
            with_stats("aegis:no-model", 50.0, 0, [9000, 1, 1]),
            crate::results::trial::example_trial("aegis:no-wait-bound", 8, 30.0, None),
            crate::results::trial::example_trial("eevdf", 8, 80.0, None),
        ];
        let a = ablations(&trials).unwrap();
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            ["aegis", "aegis:no-model", "aegis:no-wait-bound"]
        );
        let full = &a["aegis"];
        assert_eq!((full.loss_pct.mean, full.loss_pct.n), (1.0, 2));
        assert_eq!(full.inferences_run.unwrap().mean, 15.0);
        assert_eq!(full.inferences_skipped.unwrap().mean, 4.0);
        let wait = full.longest_wait_ms.unwrap();
        assert_eq!((wait.min, wait.max), (4.0, 56.635));
        assert_eq!(a["aegis:no-model"].longest_wait_ms.unwrap().mean, 9.0);
        let no_stats = &a["aegis:no-wait-bound"];
        assert_eq!(no_stats.inferences_run, None);
        assert_eq!(no_stats.longest_wait_ms, None);
    }
}
