//! Aegis ablations: Aegis (`aegis`) against its variants with a part taken out
//! (`aegis:<variant>`, e.g. `aegis:no-delta-gating`), per workload condition and over boots:
//! events lost, the attack's rate and the events delivered (what taking a part out lets the
//! flood do), the workload's kept throughput, the policy's inferences run and skipped, and the
//! longest wait on any of its queues (from the scheduler's own counters, `scheduler_stats`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use super::boots::over_boots;
use super::chart::{bars_top, bars_width_px, interval_cell};
use super::loss::workload_of;
use super::{
    draw_bar_panel, draw_empty_panel, figure_section, titled, Bar, BarPanel, Figure, Interval,
    LegendStrip, Run, Swatch, SIZE,
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

/// One variant beside one workload condition, over boots.
#[derive(Debug, Clone, PartialEq)]
pub struct Ablation {
    pub loss_pct: Interval,
    /// The flood's system calls per second: what a variant let the attacker do.
    pub attack_rate: Option<Interval>,
    pub delivered_per_s: Option<Interval>,
    /// The workload's throughput beside the attack over alone (`None` without a workload).
    pub kept: Option<Interval>,
    pub inferences_run: Option<Interval>,
    pub inferences_skipped: Option<Interval>,
    /// Per trial the longest wait on any level's queue, in ms.
    pub longest_wait_ms: Option<Interval>,
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

/// Per (workload condition, Aegis scheduler: `aegis` first, then its variants by name).
pub type Ablations = BTreeMap<(String, String), Ablation>;

impl Ablation {
    fn of(trials: &[&Trial]) -> Option<Ablation> {
        let of = |f: &dyn Fn(&Trial) -> Option<f64>| over_boots(trials.iter().copied(), f);
        let non_negative = |i: Option<Interval>| i.map(|i| i.within(0.0, f64::MAX));
        let stats = |t: &Trial, key: &str| t.scheduler_stats.as_ref().and_then(|s| stat(s, key));
        let positive = |v: f64| (v > 0.0).then_some(v);
        Some(Ablation {
            loss_pct: of(&|t| Some(t.accounting.loss_pct))?.within(0.0, 100.0),
            attack_rate: non_negative(of(&|t| positive(t.accounting.attack_rate))),
            delivered_per_s: non_negative(of(&|t| positive(t.accounting.delivered_per_s))),
            kept: non_negative(of(&|t| t.beside.workload_kept_fraction)),
            inferences_run: non_negative(of(&|t| stats(t, "nr_inferences_run"))),
            inferences_skipped: non_negative(of(&|t| stats(t, "nr_inferences_skipped"))),
            longest_wait_ms: non_negative(of(&|t| {
                t.scheduler_stats.as_ref().and_then(longest_wait_ms)
            })),
        })
    }
}

/// Per workload condition and Aegis scheduler, or why there is no figure: without a variant
/// there is nothing to compare.
pub fn ablations(trials: &[Trial]) -> Result<Ablations, String> {
    let mut cells: BTreeMap<(String, String), Vec<&Trial>> = BTreeMap::new();
    for t in trials {
        if ablation_variant(&t.id.scheduler).is_some() {
            cells
                .entry((workload_of(t), t.id.scheduler.clone()))
                .or_default()
                .push(t);
        }
    }
    if !cells.keys().any(|(_, s)| s != "aegis") {
        return Err(
            "No ablation figure: no trial ran an Aegis variant (`aegis:<variant>`).".into(),
        );
    }
    Ok(cells
        .into_iter()
        .filter_map(|(key, trials)| Ablation::of(&trials).map(|a| (key, a)))
        .collect())
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let file = format!("{stem}-ablations");
    let data = ablations(&run.trials).map(AblationFigure);
    let alt = "Aegis ablations";
    let Some(AblationFigure(ablations)) = figure_section(data, run, out, &file, alt, report)?
    else {
        return Ok(());
    };
    report.push_str(
        "| workload | variant | boots | loss % | attack syscalls/s | delivered events/s | kept \
         fraction | inferences run | skipped | longest wait ms |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for ((workload, scheduler), a) in &ablations {
        let c = |i: &Option<Interval>, d| interval_cell(i.as_ref(), d);
        writeln!(
            report,
            "| {workload} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            display_name(scheduler),
            a.loss_pct.n,
            a.loss_pct.display(2),
            c(&a.attack_rate, 0),
            c(&a.delivered_per_s, 0),
            c(&a.kept, 3),
            c(&a.inferences_run, 1),
            c(&a.inferences_skipped, 1),
            c(&a.longest_wait_ms, 3),
        )?;
    }
    Ok(())
}

/// The figure's data (a newtype: the figure trait is this module's to implement).
struct AblationFigure(Ablations);

impl AblationFigure {
    fn workloads(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.0.keys().map(|(w, _)| w).collect();
        set.into_iter().cloned().collect()
    }

    fn variants(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.0.keys().map(|(_, s)| s).collect();
        set.into_iter().cloned().collect()
    }

    /// A panel's bars: a group per workload condition, a slot per variant.
    fn bars(&self, bar: &dyn Fn(&Ablation) -> Option<Bar>) -> BTreeMap<(usize, usize), Bar> {
        let (workloads, variants) = (self.workloads(), self.variants());
        self.0
            .iter()
            .filter_map(|((w, s), a)| {
                let group = workloads.iter().position(|x| x == w)?;
                let slot = variants.iter().position(|x| x == s)?;
                Some(((group, slot), bar(a)?))
            })
            .collect()
    }
}

/// The panels: (caption, y axis, the bar of a variant, the axis's top if fixed).
type PanelSpec = (
    &'static str,
    &'static str,
    fn(&Ablation) -> Option<Bar>,
    Option<f64>,
);

const PANELS: [PanelSpec; 6] = [
    (
        "events lost",
        "events lost (%)",
        |a| Some(Bar::of_interval(&a.loss_pct)),
        Some(105.0),
    ),
    (
        "attack rate",
        "attack system calls/s",
        |a| a.attack_rate.as_ref().map(Bar::of_interval),
        None,
    ),
    (
        "events delivered",
        "events delivered/s",
        |a| a.delivered_per_s.as_ref().map(Bar::of_interval),
        None,
    ),
    (
        "workload kept",
        "throughput beside attack / alone",
        |a| a.kept.as_ref().map(Bar::of_interval),
        None,
    ),
    (
        "inferences run, skipped (pale)",
        "inferences per trial",
        inference_bar,
        None,
    ),
    (
        "longest queue wait",
        "longest wait (ms)",
        |a| a.longest_wait_ms.as_ref().map(Bar::of_interval),
        None,
    ),
];

/// Inferences run, with those skipped stacked pale on top; means only.
fn inference_bar(a: &Ablation) -> Option<Bar> {
    let run = a.inferences_run.map(|i| i.mean);
    let skipped = a.inferences_skipped.map(|i| i.mean);
    (run.is_some() || skipped.is_some()).then(|| Bar {
        value: run.unwrap_or(0.0),
        whisker: None,
        pale_on_top: skipped,
    })
}

/// Six panels (loss, attack rate, delivered events, kept fraction, inferences, the longest
/// wait), a group per workload condition, a bar per variant.
impl Figure for AblationFigure {
    fn size_px(&self) -> (u32, u32) {
        let width = bars_width_px(3, self.workloads().len(), self.variants().len());
        (width, 2 * SIZE.1)
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(root, run, "Aegis and its ablated variants")?;
        let series = run.series(&self.variants());
        let mut entries: Vec<(String, Swatch)> = series
            .iter()
            .map(|(s, c)| (display_name(s), Swatch::Bar(*c)))
            .collect();
        let grey = RGBColor(90, 90, 90);
        entries.push(("inferences run".into(), Swatch::Bar(grey)));
        entries.push(("inferences skipped".into(), Swatch::PaleBar(grey)));
        let legend = LegendStrip::new(entries, root.dim_in_pixel().0);
        let (panels, strip) = legend.split_off(&root);
        let panels = panels.split_evenly((2, 3));
        let workloads = self.workloads();
        for (area, (caption, y_desc, bar, fixed_top)) in panels.iter().zip(PANELS) {
            let bars = self.bars(&bar);
            if bars.is_empty() {
                draw_empty_panel(area, caption, "not measured")?;
                continue;
            }
            let panel = BarPanel {
                caption,
                groups: &workloads,
                series: &series,
                bars: &bars,
                x_desc: "workload beside the attack",
                y_desc,
                y_top: fixed_top.unwrap_or_else(|| bars_top(bars.values(), 1.0)),
                reference: None,
            };
            draw_bar_panel(area, &panel)?;
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
    fn variants_fold_loss_rates_kept_inferences_and_the_longest_wait_over_boots() {
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
        let mut second_boot = with_stats("aegis", 2.0, 20, [1000, 2000, 4000]);
        second_boot.id.boot = 1;
        second_boot.accounting.attack_rate = 15.0;
        let mut kept = crate::results::trial::example_trial(
            "aegis:no-model",
            8,
            40.0,
            Some(("hackbench", 0.75)),
        );
        kept.accounting.attack_rate = 0.0;
        let trials = [
            with_stats("aegis", 0.0, 10, [1000, 56_635, 3]),
            second_boot,
            with_stats("aegis:no-model", 50.0, 0, [9000, 1, 1]),
            kept,
            crate::results::trial::example_trial("aegis:no-wait-bound", 8, 30.0, None),
            crate::results::trial::example_trial("eevdf", 8, 80.0, None),
        ];
        let a = ablations(&trials).unwrap();
        let key = |w: &str, s: &str| (w.to_string(), s.to_string());
        assert_eq!(
            a.keys().cloned().collect::<Vec<_>>(),
            [
                key("hackbench", "aegis:no-model"),
                key("none", "aegis"),
                key("none", "aegis:no-model"),
                key("none", "aegis:no-wait-bound")
            ]
        );
        let full = &a[&key("none", "aegis")];
        assert_eq!((full.loss_pct.mean, full.loss_pct.n), (1.0, 2));
        assert!(full.loss_pct.ci95.unwrap().0 >= 0.0);
        // Boots ran the flood at 5 and 15 syscalls/s.
        assert_eq!(full.attack_rate.unwrap().mean, 10.0);
        assert_eq!(full.delivered_per_s.unwrap().mean, 5.0);
        assert_eq!(full.kept, None);
        assert_eq!(full.inferences_run.unwrap().mean, 15.0);
        assert_eq!(full.inferences_skipped.unwrap().mean, 4.0);
        let wait = full.longest_wait_ms.unwrap();
        assert!((wait.mean - (56.635 + 4.0) / 2.0).abs() < 1e-9);
        let no_model = &a[&key("hackbench", "aegis:no-model")];
        assert_eq!(no_model.kept.unwrap().mean, 0.75);
        // A rate of 0 is a result from before rates were recorded, not a measurement.
        assert_eq!(no_model.attack_rate, None);
        let no_stats = &a[&key("none", "aegis:no-wait-bound")];
        assert_eq!(no_stats.inferences_run, None);
        assert_eq!(no_stats.longest_wait_ms, None);
    }
}
