//! Case study: the canary's causal chain as each scheduler's collector recorded it.
//!
//! The attack's flood worker creates the canary file (`openat(O_CREAT)`) and unlinks it in the
//! middle of the flood; an investigator needs both edges of that chain in the log. The report
//! gives, per scheduler and collector, in how many trials the log held the chain ("x of n").
//! The drawing shows one trial per scheduler, picked by a rule: of its trials at its highest
//! attack intensity with the built-in collector (any collector if it has no built-in trials),
//! the median-loss one (the lower median; the trial id settles ties). A recorded edge is solid
//! green, a missing one dashed red; beside it, the rate of that scheduler and collector.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{dashed_line, figure_section, plot_err, Figure, LegendStrip, Run, Swatch, SIZE};
use crate::results::trial::Trial;

const RECORDED: RGBColor = RGBColor(44, 160, 44);
const MISSING: RGBColor = RGBColor(214, 39, 40);
const ROW_PX: u32 = 100;
const TITLE_PX: u32 = 40;
/// The set-up and the picking rule under the title.
const SUBTITLE_PX: u32 = 40;

/// Per scheduler, the trial whose canary the figure shows (trials without a canary never):
/// the median-loss trial of its highest intensity with the built-in collector, if it has one.
pub fn case_study(trials: &[Trial]) -> BTreeMap<&str, &Trial> {
    let mut by_scheduler: BTreeMap<&str, Vec<&Trial>> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.accounting.canary_path.is_some()) {
        by_scheduler.entry(&t.id.scheduler).or_default().push(t);
    }
    by_scheduler
        .into_iter()
        .filter_map(|(scheduler, trials)| {
            let builtin = trials.iter().any(|t| t.id.collector == "builtin");
            let mut cell: Vec<&Trial> = trials
                .into_iter()
                .filter(|t| !builtin || t.id.collector == "builtin")
                .collect();
            let highest = cell.iter().map(|t| t.id.threads).max()?;
            cell.retain(|t| t.id.threads == highest);
            cell.sort_by(|a, b| {
                a.accounting
                    .loss_pct
                    .total_cmp(&b.accounting.loss_pct)
                    .then_with(|| a.id.trial_id.cmp(&b.id.trial_id))
            });
            let median = *cell.get((cell.len() - 1) / 2)?;
            Some((scheduler, median))
        })
        .collect()
}

/// How often a scheduler's collector recorded the canary's chain: trials with both edges,
/// with each edge, and with a canary at all.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CanaryRate {
    pub both: usize,
    pub create: usize,
    pub unlink: usize,
    pub trials: usize,
}

impl CanaryRate {
    /// `x of n`, the trials whose log held the whole chain.
    pub fn text(&self) -> String {
        format!("{} of {}", self.both, self.trials)
    }
}

/// Per (scheduler, collector), over the trials that planted a canary.
pub fn canary_rates(trials: &[Trial]) -> BTreeMap<(String, String), CanaryRate> {
    let mut rates: BTreeMap<(String, String), CanaryRate> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.accounting.canary_path.is_some()) {
        let a = &t.accounting;
        let rate = rates
            .entry((t.id.scheduler.clone(), t.id.collector.clone()))
            .or_default();
        rate.trials += 1;
        rate.both += usize::from(a.canary_create_recorded && a.canary_unlink_recorded);
        rate.create += usize::from(a.canary_create_recorded);
        rate.unlink += usize::from(a.canary_unlink_recorded);
    }
    rates
}

fn recorded(yes: bool) -> &'static str {
    if yes {
        "recorded"
    } else {
        "missing"
    }
}

pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    let picked = case_study(&run.trials);
    let rates = canary_rates(&run.trials);
    let data = if picked.is_empty() {
        Err("No provenance graph: no trial planted a canary (a `--cmd` producer has none).".into())
    } else {
        Ok(CaseStudy {
            picked,
            rates: rates.clone(),
            legend: legend(),
        })
    };
    let file = format!("{stem}-provenance-graph");
    let alt = "provenance graph";
    let Some(CaseStudy { picked, .. }) = figure_section(data, run, out, &file, alt, report)? else {
        return Ok(());
    };
    report.push_str(
        "How often the collector's log held the canary's causal chain (both edges), over all \
         the trials that planted one:\n\n",
    );
    report.push_str("| scheduler | collector | chain recorded | openat(O_CREAT) | unlink |\n");
    report.push_str("|---|---|---|---|---|\n");
    for ((scheduler, collector), r) in &rates {
        writeln!(
            report,
            "| {scheduler} | {collector} | {} | {} of {} | {} of {} |",
            r.text(),
            r.create,
            r.trials,
            r.unlink,
            r.trials
        )?;
    }
    report.push_str(
        "\nThe drawing shows, per scheduler, the median-loss trial of its highest intensity \
         with the built-in collector (any collector without built-in trials):\n\n",
    );
    report.push_str(
        "| scheduler | collector | workload | threads | boot | repetition | loss % | \
         openat(O_CREAT) | unlink |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (scheduler, t) in &picked {
        writeln!(
            report,
            "| {scheduler} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            t.id.collector,
            super::loss::workload_of(t),
            t.id.threads,
            t.id.boot,
            t.id.repetition,
            t.accounting.loss_pct,
            recorded(t.accounting.canary_create_recorded),
            recorded(t.accounting.canary_unlink_recorded)
        )?;
    }
    Ok(())
}

fn legend() -> LegendStrip {
    LegendStrip::new(
        vec![
            ("recorded by the collector".into(), Swatch::Line(RECORDED)),
            (
                "missing from the collector's log".into(),
                Swatch::DashedLine(MISSING),
            ),
        ],
        SIZE.0,
    )
}

/// The figure: the trial shown per scheduler, and the legend under them.
struct CaseStudy<'a> {
    picked: BTreeMap<&'a str, &'a Trial>,
    rates: BTreeMap<(String, String), CanaryRate>,
    legend: LegendStrip,
}

/// A row per scheduler: its trial's canary chain, an edge per system call.
impl Figure for CaseStudy<'_> {
    fn size_px(&self) -> (u32, u32) {
        // As tall as its rows: one scheduler is a short strip, not a page of white.
        let height_px = TITLE_PX
            + SUBTITLE_PX
            + self.picked.len() as u32 * ROW_PX
            + self.legend.height_px()
            + 8;
        (SIZE.0, height_px)
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (top, strip) = self.legend.split_off(root);
        let (title, rows) = top.split_vertically(TITLE_PX + SUBTITLE_PX);
        let (width_px, _) = title.dim_in_pixel();
        title
            .draw(&Text::new(
                "The canary's causal chain in each scheduler's log",
                (width_px as i32 / 2, TITLE_PX as i32 / 2),
                centred(22),
            ))
            .map_err(plot_err)?;
        for (i, line) in [
            run.setup.clone(),
            "per scheduler its median-loss trial at its highest intensity; beside it, the \
             trials whose log held the chain"
                .to_string(),
        ]
        .into_iter()
        .enumerate()
        {
            let y = TITLE_PX as i32 + i as i32 * 18 + 4;
            title
                .draw(&Text::new(line, (width_px as i32 / 2, y), centred(13)))
                .map_err(plot_err)?;
        }
        for (i, (scheduler, t)) in self.picked.iter().enumerate() {
            let row = rows
                .clone()
                .shrink((0, i as u32 * ROW_PX), (width_px, ROW_PX));
            if i > 0 {
                row.draw(&PathElement::new(
                    [(16, 0), (width_px as i32 - 16, 0)],
                    RGBColor(220, 220, 220).stroke_width(1),
                ))
                .map_err(plot_err)?;
            }
            let rate = self
                .rates
                .get(&(scheduler.to_string(), t.id.collector.clone()))
                .copied()
                .unwrap_or_default();
            draw_row(&row, scheduler, t, &rate)?;
        }
        self.legend.draw(&strip)
    }
}

/// Text of `px` pixels centred on its point.
fn centred(px: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", px).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
}

/// Text of `px` pixels starting at its point.
fn left(px: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", px).into_font()).pos(Pos::new(HPos::Left, VPos::Center))
}

/// One scheduler's row: who and how much of the flood was lost, then the chain's nodes and
/// its two edges.
fn draw_row<DB: DrawingBackend>(
    row: &DrawingArea<DB, Shift>,
    scheduler: &str,
    t: &Trial,
    rate: &CanaryRate,
) -> Result<()> {
    let y = ROW_PX as i32 / 2;
    let grey = RGBColor(110, 110, 110);
    row.draw(&Text::new(
        scheduler.to_string(),
        (20, y - 22),
        TextStyle::from(("sans-serif", 17).into_font().style(FontStyle::Bold))
            .pos(Pos::new(HPos::Left, VPos::Center)),
    ))
    .map_err(plot_err)?;
    row.draw(&Text::new(
        format!(
            "lost {:.2} %; chain in {} trials",
            t.accounting.loss_pct,
            rate.text()
        ),
        (20, y),
        left(13),
    ))
    .map_err(plot_err)?;
    row.draw(&Text::new(
        format!(
            "x{}, {}, {}, boot {} rep. {}",
            t.id.threads,
            t.id.collector,
            super::loss::workload_of(t),
            t.id.boot,
            t.id.repetition
        ),
        (20, y + 20),
        left(11).color(&grey),
    ))
    .map_err(plot_err)?;
    // Nodes, left to right, as pixel spans.
    let nodes = [
        ("attacker (flood worker)", 280, 460),
        ("canary file", 590, 730),
        ("removed", 850, 980),
    ];
    for (label, x0, x1) in nodes {
        row.draw(&Rectangle::new(
            [(x0, y - 20), (x1, y + 20)],
            RGBColor(238, 238, 238).filled(),
        ))
        .map_err(plot_err)?;
        row.draw(&Rectangle::new(
            [(x0, y - 20), (x1, y + 20)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
        row.draw(&Text::new(label, ((x0 + x1) / 2, y), centred(14)))
            .map_err(plot_err)?;
    }
    let edges = [
        (
            "openat(O_CREAT)",
            nodes[0].2,
            nodes[1].1,
            t.accounting.canary_create_recorded,
        ),
        (
            "unlink",
            nodes[1].2,
            nodes[2].1,
            t.accounting.canary_unlink_recorded,
        ),
    ];
    for (syscall, from, to, seen) in edges {
        draw_edge(row, syscall, (from, to), seen)?;
    }
    Ok(())
}

/// An edge between two nodes' pixel ends, arrowed, labelled with its system call and whether
/// the log has it: solid green when recorded, dashed red when missing.
fn draw_edge<DB: DrawingBackend>(
    row: &DrawingArea<DB, Shift>,
    syscall: &str,
    (from, to): (i32, i32),
    seen: bool,
) -> Result<()> {
    let y = ROW_PX as i32 / 2;
    let (x0, x1) = (from + 4, to - 6);
    let colour = if seen { RECORDED } else { MISSING };
    let style = colour.stroke_width(3);
    // The line stops where the arrowhead starts, so its tip stays sharp.
    if seen {
        row.draw(&PathElement::new([(x0, y), (x1 - 10, y)], style))
            .map_err(plot_err)?;
    } else {
        dashed_line(row, (x0, y), (x1 - 10, y), style).map_err(plot_err)?;
    }
    row.draw(&Polygon::new(
        vec![(x1, y), (x1 - 12, y - 7), (x1 - 12, y + 7)],
        colour.filled(),
    ))
    .map_err(plot_err)?;
    let mid = (x0 + x1) / 2;
    row.draw(&Text::new(syscall, (mid, y - 16), centred(13)))
        .map_err(plot_err)?;
    row.draw(&Text::new(
        recorded(seen),
        (mid, y + 17),
        centred(13).color(&colour),
    ))
    .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(scheduler: &str, collector: &str, threads: u32, repetition: u32) -> Trial {
        let mut t = crate::results::trial::example_trial(scheduler, threads, threads as f64, None);
        t.id.collector = collector.into();
        t.id.repetition = repetition;
        t.accounting.canary_path = Some("/tmp/canary".into());
        t
    }

    #[test]
    fn the_case_is_the_median_loss_builtin_trial_of_the_highest_intensity() {
        let mut no_canary = trial("eevdf", "builtin", 64, 0);
        no_canary.accounting.canary_path = None;
        let with_loss = |mut t: Trial, loss: f64| {
            t.accounting.loss_pct = loss;
            t
        };
        let trials = [
            trial("eevdf", "builtin", 4, 0),
            with_loss(trial("eevdf", "builtin", 8, 1), 90.0),
            with_loss(trial("eevdf", "builtin", 8, 0), 10.0),
            with_loss(trial("eevdf", "builtin", 8, 2), 50.0),
            // Higher, but another collector: the built-in one is preferred.
            trial("eevdf", "auditd", 16, 0),
            no_canary,
            // Only auditd trials: auditd it is.
            trial("aegis", "auditd", 2, 0),
            trial("aegis", "auditd", 1, 0),
        ];
        let picked = case_study(&trials);
        assert_eq!(picked.len(), 2);
        assert!(std::ptr::eq(picked["eevdf"], &trials[3]));
        assert!(std::ptr::eq(picked["aegis"], &trials[6]));
        assert!(case_study(&trials[5..6]).is_empty());
    }

    #[test]
    fn the_rate_counts_every_trial_with_a_canary_per_collector() {
        let mut missed = trial("eevdf", "builtin", 8, 1);
        missed.accounting.canary_unlink_recorded = false;
        let mut none = trial("eevdf", "builtin", 8, 2);
        none.accounting.canary_path = None;
        let trials = [
            trial("eevdf", "builtin", 8, 0),
            missed,
            none,
            trial("eevdf", "auditd", 8, 0),
        ];
        let rates = canary_rates(&trials);
        let builtin = rates[&("eevdf".to_string(), "builtin".to_string())];
        assert_eq!(
            builtin,
            CanaryRate {
                both: 1,
                create: 2,
                unlink: 1,
                trials: 2
            }
        );
        assert_eq!(builtin.text(), "1 of 2");
        assert_eq!(rates.len(), 2);
    }
}
