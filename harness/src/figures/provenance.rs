//! Case study: the canary's causal chain as each scheduler's collector recorded it.
//!
//! The attack's flood worker creates the canary file (`openat(O_CREAT)`) and unlinks it in the
//! middle of the flood; an investigator needs both edges of that chain in the log. For each
//! scheduler one trial is shown (the highest attack intensity, first repetition, the built-in
//! collector where the scheduler has trials with it): a recorded edge solid green, a missing
//! one dashed red.

use std::cmp::Reverse;
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
const TITLE_PX: u32 = 48;

/// Per scheduler, the trial whose canary the figure shows (trials without a canary never).
pub fn case_study(trials: &[Trial]) -> BTreeMap<&str, &Trial> {
    let mut by_scheduler: BTreeMap<&str, Vec<&Trial>> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.accounting.canary_path.is_some()) {
        by_scheduler.entry(&t.id.scheduler).or_default().push(t);
    }
    by_scheduler
        .into_iter()
        .filter_map(|(scheduler, trials)| {
            let builtin = trials.iter().any(|t| t.id.collector == "builtin");
            let picked = trials
                .into_iter()
                .filter(|t| !builtin || t.id.collector == "builtin")
                // Highest intensity, then the first repetition; the id settles the rest.
                .min_by_key(|t| {
                    (
                        Reverse(t.id.threads),
                        t.id.repetition,
                        t.id.trial_id.as_str(),
                    )
                })?;
            Some((scheduler, picked))
        })
        .collect()
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
    let data = if picked.is_empty() {
        Err("No provenance graph: no trial planted a canary (a `--cmd` producer has none).".into())
    } else {
        Ok(CaseStudy {
            picked,
            legend: legend(),
        })
    };
    let file = format!("{stem}-provenance-graph");
    let alt = "provenance graph";
    let Some(CaseStudy { picked, .. }) = figure_section(data, run, out, &file, alt, report)? else {
        return Ok(());
    };
    report.push_str(
        "| scheduler | collector | threads | repetition | loss % | openat(O_CREAT) | unlink |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|\n");
    for (scheduler, t) in &picked {
        writeln!(
            report,
            "| {scheduler} | {} | {} | {} | {:.2} | {} | {} |",
            t.id.collector,
            t.id.threads,
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
    legend: LegendStrip,
}

/// A row per scheduler: its trial's canary chain, an edge per system call.
impl Figure for CaseStudy<'_> {
    fn size_px(&self) -> (u32, u32) {
        // As tall as its rows: one scheduler is a short strip, not a page of white.
        let height_px = TITLE_PX + self.picked.len() as u32 * ROW_PX + self.legend.height_px() + 8;
        (SIZE.0, height_px)
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (top, strip) = self.legend.split_off(root);
        let (title, rows) = top.split_vertically(TITLE_PX);
        let (width_px, _) = title.dim_in_pixel();
        title
            .draw(&Text::new(
                format!(
                    "The canary's causal chain in each scheduler's log ({})",
                    run.name
                ),
                (width_px as i32 / 2, TITLE_PX as i32 / 2),
                centred(22),
            ))
            .map_err(plot_err)?;
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
            draw_row(&row, scheduler, t)?;
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
        format!("events lost: {:.2} %", t.accounting.loss_pct),
        (20, y),
        left(14),
    ))
    .map_err(plot_err)?;
    row.draw(&Text::new(
        format!(
            "{} flood threads, {}, rep. {}",
            t.id.threads, t.id.collector, t.id.repetition
        ),
        (20, y + 20),
        left(12).color(&grey),
    ))
    .map_err(plot_err)?;
    // Nodes, left to right, as pixel spans.
    let nodes = [
        ("attacker (flood worker)", 250, 450),
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
    fn the_case_is_the_highest_intensity_first_repetition_builtin_trial() {
        let mut no_canary = trial("eevdf", "builtin", 64, 0);
        no_canary.accounting.canary_path = None;
        let trials = [
            trial("eevdf", "builtin", 4, 0),
            trial("eevdf", "builtin", 8, 1),
            trial("eevdf", "builtin", 8, 0),
            // Higher, but another collector: the built-in one is preferred.
            trial("eevdf", "auditd", 16, 0),
            no_canary,
            // Only auditd trials: auditd it is.
            trial("aegis", "auditd", 2, 0),
            trial("aegis", "auditd", 1, 0),
        ];
        let picked = case_study(&trials);
        assert_eq!(picked.len(), 2);
        assert!(std::ptr::eq(picked["eevdf"], &trials[2]));
        assert!(std::ptr::eq(picked["aegis"], &trials[5]));
        assert!(case_study(&trials[4..5]).is_empty());
    }
}
