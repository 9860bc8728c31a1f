//! The evasion curve: how adaptive attackers (`attack --evade`, docs/attack.md) fare against
//! each scheduler. Along x the attacks in a fixed order: the plain flood (`none`), the spins
//! between iterations from the shortest up (the curve: the plain flood is a spin of 0), then
//! the short-lived processes (`spread:N`) and the CPU hogs (`hogs:N`) as points of their own.
//! Per scheduler, over boots: the events the collector delivered per second and the attack's
//! system calls per second (top row, log scale), and the events lost (bottom row). A column
//! per condition (collector, workload, flood and its threads) that has an evader.
//!
//! Only this figure draws evader trials; the other figures of such a run draw its plain-flood
//! trials alone (`Report::add_run`), so that none pools different attacks into one point.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::path::Path;

use anyhow::Result;
use attacks::evade::Evade;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::boots::over_boots;
use super::chart::{interval_cell, LegendStrip, Swatch};
use super::loss::{workload_of, LOSS_AXIS_TOP_PCT};
use super::{
    centred_category, figure_section, plot_err, tick, titled, Figure, Interval, Run, SIZE,
};
use crate::results::trial::Trial;

/// A trial's adaptive attacker (`spin:200`), or `None` for a plain flood.
pub(super) fn evader(t: &Trial) -> Option<&str> {
    t.attack.evade.as_deref().filter(|e| *e != "none")
}

/// An attack on the x axis: an evader this build knows, or another by name. The derived order
/// is the axis's: [`Evade`]'s (the plain flood, the spins by their microseconds, the spreads by
/// their iterations, the hogs by their threads), then the unknown ones by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    Known(Evade),
    Other(String),
}

impl Attack {
    pub const PLAIN: Attack = Attack::Known(Evade::None);

    pub fn of(t: &Trial) -> Attack {
        let Some(text) = evader(t) else {
            return Attack::PLAIN;
        };
        text.parse()
            .map_or_else(|_| Attack::Other(text.to_string()), Attack::Known)
    }

    /// On the spin curve: the plain flood (a spin of 0) and the spins.
    fn on_curve(&self) -> bool {
        matches!(self, Attack::Known(Evade::None | Evade::Spin { .. }))
    }
}

/// As `--evade` spells it: `none`, `spin:200`, `spread:16`, `hogs:4`.
impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::Known(evade) => evade.fmt(f),
            Attack::Other(text) => f.write_str(text),
        }
    }
}

/// What stays fixed along a panel's x axis: the collector, the workload beside the attack and
/// the flood with its threads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Condition {
    pub collector: String,
    pub workload: String,
    pub flood: String,
    pub threads: u32,
}

impl Condition {
    fn of(t: &Trial) -> Condition {
        Condition {
            collector: t.id.collector.clone(),
            workload: workload_of(t),
            flood: t.id.flood.clone(),
            threads: t.id.threads,
        }
    }

    fn label(&self) -> String {
        format!(
            "{} · workload: {} · {} ×{}",
            self.collector, self.workload, self.flood, self.threads
        )
    }
}

/// The three quantities: (table header, y axis).
pub const METRICS: [(&str, &str); 3] = [
    ("delivered events/s", "events delivered per second"),
    ("attack syscalls/s", "attack system calls per second"),
    ("loss %", "events lost (%)"),
];

/// A quantity of a trial; a rate of 0 (not recorded) is no measurement.
fn metric(t: &Trial, m: usize) -> Option<f64> {
    let a = &t.accounting;
    match m {
        0 => Some(a.delivered_per_s).filter(|v| *v > 0.0),
        1 => Some(a.attack_rate).filter(|v| *v > 0.0),
        _ => Some(a.loss_pct),
    }
}

/// The figure's data: per (quantity, condition, attack, series) the value over boots.
#[derive(Debug, PartialEq)]
pub struct Evasion {
    /// The conditions with an evader, in order.
    pub conditions: Vec<Condition>,
    /// The x axis: every attack of those conditions, in [`Attack`]'s order.
    pub attacks: Vec<Attack>,
    /// A scheduler each, with whatever else varies in the run (`loss::series_label`).
    pub series: Vec<String>,
    /// By (index into [`METRICS`], condition, attack, series) index.
    pub values: BTreeMap<(usize, usize, usize, usize), Interval>,
}

/// The evasion data of a run's trials: `Err` with the note why not when no trial has an
/// evader or none recorded anything to draw.
pub fn evasion(trials: &[Trial]) -> Result<Evasion, String> {
    let conditions: Vec<Condition> = trials
        .iter()
        .filter(|t| evader(t).is_some())
        .map(Condition::of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if conditions.is_empty() {
        return Err("No evasion figure: no trial had an adaptive attacker (`--evade`).".into());
    }
    let drawn: Vec<&Trial> = trials
        .iter()
        .filter(|t| conditions.contains(&Condition::of(t)))
        .collect();
    let set = |f: &dyn Fn(&Trial) -> String| -> Vec<String> {
        let s: BTreeSet<String> = drawn.iter().map(|t| f(t)).collect();
        s.into_iter().collect()
    };
    let series = set(&|t| super::series_label(t, trials));
    let attacks: Vec<Attack> = drawn
        .iter()
        .map(|t| Attack::of(t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cells: BTreeMap<(usize, usize, usize), Vec<&Trial>> = BTreeMap::new();
    for t in &drawn {
        let at = |found: Option<usize>| found.unwrap_or(0);
        let key = (
            at(conditions.iter().position(|c| *c == Condition::of(t))),
            at(attacks.iter().position(|a| *a == Attack::of(t))),
            at(series
                .iter()
                .position(|s| *s == super::series_label(t, trials))),
        );
        cells.entry(key).or_default().push(t);
    }
    let mut values = BTreeMap::new();
    for ((c, a, s), cell) in &cells {
        for m in 0..METRICS.len() {
            if let Some(i) = over_boots(cell.iter().copied(), |t| metric(t, m)) {
                let top = if m == 2 { 100.0 } else { f64::MAX };
                values.insert((m, *c, *a, *s), i.within(0.0, top));
            }
        }
    }
    Ok(Evasion {
        conditions,
        attacks,
        series,
        values,
    })
}

/// The evasion figure and its table; nothing for a run without evaders.
pub(super) fn section(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    if !run.trials.iter().any(|t| evader(t).is_some()) {
        return Ok(());
    }
    let file = format!("{stem}-evasion");
    let alt = "evasion: delivered events, attack rate and loss per attack";
    let Some(e) = figure_section(evasion(&run.trials), run, out, &file, alt, report)? else {
        return Ok(());
    };
    report.push_str(
        "| collector | workload | flood | threads | evader | scheduler | boots | delivered \
         events/s | attack syscalls/s | loss % |\n",
    );
    report.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    let cells: BTreeSet<(usize, usize, usize)> =
        e.values.keys().map(|(_, c, a, s)| (*c, *a, *s)).collect();
    for (c, a, s) in cells {
        let at = |m| e.values.get(&(m, c, a, s));
        let n = (0..METRICS.len()).find_map(at).map_or(0, |i| i.n);
        let condition = &e.conditions[c];
        writeln!(
            report,
            "| {} | {} | {} | {} | {} | {} | {n} | {} | {} | {} |",
            condition.collector,
            condition.workload,
            condition.flood,
            condition.threads,
            e.attacks[a],
            e.series[s],
            interval_cell(at(0), 0),
            interval_cell(at(1), 0),
            interval_cell(at(2), 2)
        )?;
    }
    Ok(())
}

/// Where series `k` of `count` goes within category `a`: side by side about its middle, so
/// that whiskers at one attack do not hide each other.
fn x_of(a: usize, k: usize, count: usize) -> f64 {
    a as f64 + 0.5 + (k as f64 - (count as f64 - 1.0) / 2.0) * 0.1
}

/// The rates' axis: log10 of the rate, over the whole decades holding every rate and whisker.
fn rate_decades(values: &BTreeMap<(usize, usize, usize, usize), Interval>) -> (f64, f64) {
    let rates = values
        .iter()
        .filter(|((m, _, _, _), _)| *m < 2)
        .flat_map(|(_, i)| {
            let (low, high) = i.ci95.unwrap_or((i.mean, i.mean));
            [low, i.mean, high]
        })
        .filter(|v| *v > 0.0 && v.is_finite());
    let (low, high) = rates.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if high <= 0.0 {
        return (0.0, 1.0);
    }
    // A rate that is a power of ten is inside the axis, not on its edge.
    (low.log10().ceil() - 1.0, high.log10().floor() + 1.0)
}

/// Two rows (the rates, the loss), a column per condition; a line per series over the spin
/// curve, points for the other evaders.
impl Figure for Evasion {
    fn size_px(&self) -> (u32, u32) {
        let column = 140 + 80 * self.attacks.len() as u32;
        let width = SIZE.0.max(column * self.conditions.len() as u32);
        (width, 140 + 2 * 330)
    }

    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = titled(
            root,
            run,
            "Evasion: events delivered, the attack's rate and loss, per attack",
        )?;
        let mut entries: Vec<(String, Swatch)> = self
            .series
            .iter()
            .map(|s| (s.clone(), Swatch::Line(run.colour(s))))
            .collect();
        entries.push(("events delivered/s (top row)".into(), Swatch::Line(BLACK)));
        entries.push((
            "attack syscalls/s (top row)".into(),
            Swatch::DashedLine(BLACK),
        ));
        let legend = LegendStrip::new(entries, root.dim_in_pixel().0);
        let (body, strip) = legend.split_off(&root);
        let columns = self.conditions.len().max(1);
        let decades = rate_decades(&self.values);
        for (i, panel) in body.split_evenly((2, columns)).iter().enumerate() {
            let (row, c) = (i / columns, i % columns);
            let Some(condition) = self.conditions.get(c) else {
                continue;
            };
            if row == 0 {
                self.draw_rates(run, panel, c, condition, decades)?;
            } else {
                self.draw_loss(run, panel, c, condition)?;
            }
        }
        legend.draw(&strip)
    }
}

/// A point as drawn: where, its whisker's ends on the axis, and whether it is on the spin
/// curve.
struct Point {
    x: f64,
    y: f64,
    whisker: Option<(f64, f64)>,
    on_curve: bool,
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

impl Evasion {
    /// The category names under the x axis.
    fn names(&self) -> Vec<String> {
        self.attacks.iter().map(Attack::to_string).collect()
    }

    /// A panel's axes over the attacks, `y` on the y axis, and a faint line between the spin
    /// curve and the other evaders.
    fn panel<'a, DB: DrawingBackend>(
        &self,
        area: &'a DrawingArea<DB, Shift>,
        caption: &str,
        y: (f64, f64),
        y_desc: &str,
        y_label: &dyn Fn(&f64) -> String,
        y_labels: Option<usize>,
    ) -> Result<Chart<'a, DB>> {
        let n = self.attacks.len().max(1);
        let names = self.names();
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..n as f64, y.0..y.1)
            .map_err(plot_err)?;
        let x_label = |x: &f64| centred_category(*x, &names);
        let mut mesh = chart.configure_mesh();
        mesh.disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n * 2 + 1)
            .x_label_formatter(&x_label)
            .y_label_formatter(y_label)
            .x_desc("evader (none: the plain flood; the spins are the curve)")
            .y_desc(y_desc)
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13));
        if let Some(labels) = y_labels {
            mesh.y_labels(labels);
        }
        mesh.draw().map_err(plot_err)?;
        let curve = self.attacks.iter().filter(|a| a.on_curve()).count();
        if curve > 0 && curve < self.attacks.len() {
            chart
                .draw_series(LineSeries::new(
                    [(curve as f64, y.0), (curve as f64, y.1)],
                    BLACK.mix(0.25).stroke_width(1),
                ))
                .map_err(plot_err)?;
        }
        Ok(chart)
    }

    /// Series `s`'s points of quantity `m` in condition `c`, with `y` mapping a value to the
    /// axis.
    fn points(&self, m: usize, c: usize, s: usize, y: impl Fn(f64) -> f64) -> Vec<Point> {
        self.values
            .iter()
            .filter(|((vm, vc, _, vs), _)| (*vm, *vc, *vs) == (m, c, s))
            .map(|((_, _, a, _), i)| Point {
                x: x_of(*a, s, self.series.len()),
                y: y(i.mean),
                whisker: i.ci95.map(|(low, high)| (y(low), y(high))),
                on_curve: self.attacks[*a].on_curve(),
            })
            .collect()
    }

    fn draw_rates<DB: DrawingBackend>(
        &self,
        run: &Run,
        area: &DrawingArea<DB, Shift>,
        c: usize,
        condition: &Condition,
        decades: (f64, f64),
    ) -> Result<()> {
        // Log scale: log10 of the rate; none (or a whisker to 0) sits at the axis's bottom.
        let y = |v: f64| {
            if v > 0.0 {
                v.log10().clamp(decades.0, decades.1)
            } else {
                decades.0
            }
        };
        let label = |y: &f64| {
            if (y - y.round()).abs() < 1e-9 {
                tick(10f64.powi(y.round() as i32))
            } else {
                String::new()
            }
        };
        let caption = format!("rates · {}", condition.label());
        let count = (decades.1 - decades.0).round() as usize + 1;
        let mut chart = self.panel(
            area,
            &caption,
            decades,
            "per second (log scale)",
            &label,
            Some(count),
        )?;
        for (s, name) in self.series.iter().enumerate() {
            let colour = run.colour(name);
            for (m, dashed) in [(0, false), (1, true)] {
                let points = self.points(m, c, s, y);
                draw_points(&mut chart, &points, colour, dashed)?;
            }
        }
        Ok(())
    }

    fn draw_loss<DB: DrawingBackend>(
        &self,
        run: &Run,
        area: &DrawingArea<DB, Shift>,
        c: usize,
        condition: &Condition,
    ) -> Result<()> {
        let label = |y: &f64| {
            if *y <= 100.0 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        };
        let caption = format!("loss · {}", condition.label());
        let y = (0.0, LOSS_AXIS_TOP_PCT);
        let mut chart = self.panel(area, &caption, y, "events lost (%)", &label, None)?;
        for (s, name) in self.series.iter().enumerate() {
            let points = self.points(2, c, s, |v| v);
            draw_points(&mut chart, &points, run.colour(name), false)?;
        }
        Ok(())
    }
}

/// A series' points with their whiskers: joined by a line along the spin curve (dashed for
/// the attack's rate, whose markers are hollow), alone elsewhere.
fn draw_points<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    points: &[Point],
    colour: RGBColor,
    dashed: bool,
) -> Result<()> {
    let curve: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.on_curve)
        .map(|p| (p.x, p.y))
        .collect();
    if dashed {
        chart
            .draw_series(DashedLineSeries::new(curve, 8, 5, colour.stroke_width(2)))
            .map_err(plot_err)?;
    } else {
        chart
            .draw_series(LineSeries::new(curve, colour.stroke_width(2)))
            .map_err(plot_err)?;
    }
    let marker = if dashed {
        colour.stroke_width(2)
    } else {
        colour.filled()
    };
    chart
        .draw_series(points.iter().map(|p| Circle::new((p.x, p.y), 4, marker)))
        .map_err(plot_err)?;
    chart
        .draw_series(points.iter().filter_map(|p| {
            let (low, high) = p.whisker?;
            Some(ErrorBar::new_vertical(
                p.x,
                low,
                p.y,
                high,
                colour.stroke_width(1),
                8,
            ))
        }))
        .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    /// A trial of `scheduler` against the 8-thread openat flood shaped by `evade` (`None`:
    /// the plain flood), in `boot`, losing `loss` % at `rate` syscalls/s.
    fn trial(scheduler: &str, evade: Option<&str>, boot: u32, loss: f64, rate: f64) -> Trial {
        let mut t = example_trial(scheduler, 8, loss, None);
        t.id.boot = boot;
        t.attack.evade = evade.map(str::to_string);
        t.accounting.attack_rate = rate;
        t.accounting.delivered_per_s = rate * (1.0 - loss / 100.0);
        t
    }

    #[test]
    fn attacks_go_plain_then_spins_ascending_then_spreads_then_hogs() {
        let mut trials = Vec::new();
        // Shuffled, and spin:1000 sorts before spin:200 as text.
        for evade in [
            Some("hogs:4"),
            Some("spin:1000"),
            Some("spread:16"),
            None,
            Some("spin:200"),
            Some("spin:2000"),
            Some("spin:50"),
            Some("none"),
        ] {
            trials.push(trial("aegis", evade, 0, 1.0, 1000.0));
        }
        let e = evasion(&trials).unwrap();
        let names: Vec<String> = e.attacks.iter().map(Attack::to_string).collect();
        assert_eq!(
            names,
            [
                "none",
                "spin:50",
                "spin:200",
                "spin:1000",
                "spin:2000",
                "spread:16",
                "hogs:4"
            ]
        );
        // `evade: "none"` is the plain flood too: one category, two trials.
        assert_eq!(Attack::of(&trials[7]), Attack::PLAIN);
        assert_eq!(e.values[&(2, 0, 0, 0)].mean, 1.0);
        let curve: Vec<bool> = e.attacks.iter().map(Attack::on_curve).collect();
        assert_eq!(curve, [true, true, true, true, true, false, false]);
        // An evader this build does not know goes last, by name.
        let mut other = trials.clone();
        other.push(trial("aegis", Some("hide:3"), 0, 1.0, 1000.0));
        let e = evasion(&other).unwrap();
        assert_eq!(e.attacks.last(), Some(&Attack::Other("hide:3".into())));
    }

    #[test]
    fn each_attack_and_scheduler_is_its_own_point_over_boots() {
        let trials = [
            // Plain flood: boot 0's mean 80, boot 1's 90.
            trial("eevdf", None, 0, 70.0, 100_000.0),
            trial("eevdf", None, 0, 90.0, 100_000.0),
            trial("eevdf", None, 1, 90.0, 100_000.0),
            // The evaders lose less: never averaged with the plain flood or each other.
            trial("eevdf", Some("spin:200"), 0, 20.0, 10_000.0),
            trial("eevdf", Some("spin:200"), 1, 30.0, 10_000.0),
            trial("eevdf", Some("spin:2000"), 0, 2.0, 1000.0),
            trial("aegis", None, 0, 0.0, 50_000.0),
            trial("aegis", Some("spin:200"), 0, 10.0, 10_000.0),
        ];
        let e = evasion(&trials).unwrap();
        assert_eq!(e.series, ["aegis", "eevdf"]);
        assert_eq!(e.conditions.len(), 1);
        let loss = |a: usize, s: usize| e.values.get(&(2, 0, a, s)).copied();
        let plain = loss(0, 1).unwrap();
        assert_eq!((plain.n, plain.mean), (2, 85.0));
        assert!(plain.ci95.unwrap().1 <= 100.0);
        assert_eq!(loss(1, 1).map(|i| (i.n, i.mean)), Some((2, 25.0)));
        assert_eq!(
            loss(2, 1).map(|i| (i.n, i.mean, i.ci95)),
            Some((1, 2.0, None))
        );
        assert_eq!(loss(1, 0).map(|i| i.mean), Some(10.0));
        // Aegis met no spin:2000: no point, not a zero.
        assert_eq!(loss(2, 0), None);
        // The rates: the attack's as recorded, the delivered ones its share kept.
        assert_eq!(e.values[&(1, 0, 1, 1)].mean, 10_000.0);
        assert_eq!(e.values[&(0, 0, 1, 1)].mean, 7_500.0);
        // Whole decades around every rate.
        assert_eq!(rate_decades(&e.values), (2.0, 6.0));
    }

    #[test]
    fn only_conditions_with_an_evader_are_drawn_and_a_plain_run_has_none() {
        let mut four = trial("eevdf", None, 0, 40.0, 1000.0);
        four.id.threads = 4;
        let mut compact = trial("eevdf", Some("hogs:4"), 0, 5.0, 1000.0);
        compact.id.collector = "builtin-compact".into();
        let trials = [
            four,
            trial("eevdf", None, 0, 80.0, 1000.0),
            trial("eevdf", Some("spread:16"), 0, 50.0, 1000.0),
            compact,
        ];
        let e = evasion(&trials).unwrap();
        let labels: Vec<String> = e.conditions.iter().map(Condition::label).collect();
        assert_eq!(
            labels,
            [
                "builtin · workload: none · openat ×8",
                "builtin-compact · workload: none · openat ×8"
            ]
        );
        // The 4-thread flood met no evader: left out. builtin-compact has no plain flood.
        assert_eq!(
            e.attacks,
            [
                Attack::PLAIN,
                Attack::Known(Evade::Spread { iterations: 16 }),
                Attack::Known(Evade::Hogs { threads: 4 })
            ]
        );
        assert_eq!(e.values[&(2, 0, 0, 0)].mean, 80.0);
        assert_eq!(e.values.get(&(2, 1, 0, 0)), None);
        assert_eq!(e.values[&(2, 1, 2, 0)].mean, 5.0);
        assert!(evasion(&trials[..2]).is_err());
    }
}
