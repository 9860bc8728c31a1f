//! Figures and a markdown report drawn from runs' trials, without running anything (the
//! `figures` command, in `commands/figures.rs`, picks the result files and writes the report).
//!
//! Runs are drawn one by one, never mixed: two runs may come from different machines. The
//! boot is the unit of replication (`boots`): a point is the mean over boots of each boot's
//! mean, its whisker the 95 % t interval over boots, and "A vs B" a geometric mean of per-boot
//! ratios. Each figure's title is followed by the run's set-up. For each run:
//!
//! - loss against attack intensity (flood threads), a line per scheduler, a panel per
//!   collector and workload condition; bars per scheduler when the run has one intensity
//!   (`loss`);
//! - with workloads beside the attack: the share of its no-attack throughput each workload
//!   kept, per scheduler (`loss`);
//! - events delivered per second and the attack's rate, per scheduler and intensity (`rates`);
//! - the workloads' runtime normalized to EEVDF's in the same cell (`runtime`);
//! - the CPU shares of the attack, workload and collector and Jain's index across those
//!   groups, and Jain's index within a group's own tasks (`fairness`);
//! - the CDF of run-queue waits, pooled over a scheduler's trials (`delay_cdf`);
//! - Aegis against its ablated variants (`ablations`);
//! - how often each scheduler's collector recorded the canary's causal chain, and that chain
//!   in one trial picked by a stated rule (`provenance`);
//! - with adaptive attackers (`--evade`): the evasion curve, events delivered per second, the
//!   attack's rate and loss per attack (the plain flood, the spins, the other evaders), per
//!   scheduler (`evasion`). The figures above group by scheduler, collector, workload and
//!   threads but not by attack, so such a run's other figures draw its plain flood alone.
//!
//! A figure a run has no data for is a one-line note in the report instead. PNG and SVG of
//! each, and the report's text showing them with their numbers. Nothing depends on the clock,
//! so the same runs give the same files. The drawing kit the figures share (legend strip, bar
//! panels, number formats) is `chart`.

mod ablations;
mod boots;
mod chart;
mod delay_cdf;
mod evasion;
mod fairness;
mod loss;
mod provenance;
mod rates;
mod runtime;
pub mod sim_eval;
pub mod sim_to_real;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use chart::draw_legend;
// The figure modules take these through `super`, beside the figure plumbing defined here.
use crate::stats::Interval;
use chart::{
    cell, centred_category, dashed_line, draw_bar_panel, draw_empty_panel, tick, Bar, BarPanel,
    LegendStrip, Swatch,
};
use loss::{kept_section, loss_section, series_label};

use crate::results::trial::Trial;

const SIZE: (u32, u32) = (1000, 560);

/// One result file's trials.
pub struct Run {
    /// Path under `--results`, e.g. `aegis/flood.json`.
    pub name: String,
    pub trials: Vec<Trial>,
    /// See [`run_colours`].
    colours: BTreeMap<String, RGBColor>,
    /// The set-up in a line ([`boots::setup_line`]), under every figure's title.
    setup: String,
}

/// The markdown report: a section per run, each figure drawn beside it as it is added.
pub struct Report {
    text: String,
    /// The runs' figure file prefixes so far (see [`file_stem`]).
    stems: BTreeSet<String>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            text: String::from(
                "# aegis-bench results\n\nMade by `aegis-bench figures` from the result files; \
                 one section per file (one run each). The boot is the unit of replication: a \
                 point is the mean over boots of each boot's mean, its interval the 95 % \
                 Student-t interval over boots (none for one boot), and a ratio against EEVDF \
                 the geometric mean of per-boot ratios (docs/figures.md).\n",
            ),
            stems: BTreeSet::new(),
        }
    }

    /// Draws a run's figures into `out` and adds its section: loss, the workloads' kept share,
    /// then the figures of the other modules. A run with adaptive attackers (`--evade`) gets
    /// the evasion figure first, over all its trials, and the others over its plain-flood
    /// trials alone (a note says how many evader trials they leave out).
    pub fn add_run(&mut self, run: &Run, out: &Path) -> Result<()> {
        let stem = file_stem(&run.name, &self.stems);
        self.stems.insert(stem.clone());
        let report = &mut self.text;
        writeln!(report, "\n## `{}`\n", run.name)?;
        writeln!(
            report,
            "Set-up: {}. {}.\n",
            run.setup,
            boots::whisker_note(boots::boots(&run.trials))
        )?;
        let evaders = run
            .trials
            .iter()
            .filter(|t| evasion::evader(t).is_some())
            .count();
        if evaders == 0 {
            return generic_sections(run, &stem, out, report);
        }
        // The other figures group by scheduler, collector, workload and threads, not by the
        // attack: they get the plain flood alone, never a point pooling different evaders.
        let plain: Vec<Trial> = run
            .trials
            .iter()
            .filter(|t| evasion::evader(t).is_none())
            .cloned()
            .collect();
        if plain.is_empty() {
            writeln!(
                report,
                "All {evaders} trials of the run had an adaptive attacker (`--evade`): they are \
                 drawn in the evasion figure only; the other figures, which do not split by \
                 attack, are left out."
            )?;
            return evasion::section(run, &stem, out, report);
        }
        writeln!(
            report,
            "{evaders} of the run's {} trials had an adaptive attacker (`--evade`): they are \
             drawn in the evasion figure only, beside the plain flood; the other figures draw \
             the {} plain-flood trials alone, so that no point pools different attacks.",
            run.trials.len(),
            plain.len()
        )?;
        evasion::section(run, &stem, out, report)?;
        report.push('\n');
        generic_sections(&run.part(plain), &stem, out, report)
    }

    /// The report's markdown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}

/// The figures of every run, in the report's order: loss, the workloads' kept share, then the
/// figures of the other modules.
fn generic_sections(run: &Run, stem: &str, out: &Path, report: &mut String) -> Result<()> {
    loss_section(run, stem, out, report)?;
    kept_section(run, stem, out, report)?;
    rates::section(run, stem, out, report)?;
    runtime::section(run, stem, out, report)?;
    fairness::shares_section(run, stem, out, report)?;
    fairness::section(run, stem, out, report)?;
    delay_cdf::section(run, stem, out, report)?;
    ablations::section(run, stem, out, report)?;
    provenance::section(run, stem, out, report)?;
    Ok(())
}

/// The figures' file name prefix for a run: its path without the extension, `/` as `-`
/// (`sweep/trials.jsonl` gives `sweep-trials`); the whole path if that prefix is taken (a
/// directory holding both `trials.json` and `trials.jsonl`).
fn file_stem(name: &str, taken: &BTreeSet<String>) -> String {
    let short = name
        .strip_suffix(".jsonl")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name)
        .replace('/', "-");
    if taken.contains(&short) {
        name.replace(['/', '.'], "-")
    } else {
        short
    }
}

/// A figure of a run. One closure can't take both backends' drawing areas, so the drawing
/// code is a generic method and [`draw_both`] calls it once per backend.
trait Figure {
    /// Width and height in pixels; a figure whose height grows with its content overrides it.
    fn size_px(&self) -> (u32, u32) {
        SIZE
    }

    /// Draws on `root`; [`draw_on`] fills it white before and writes it out after.
    fn draw<DB: DrawingBackend>(&self, run: &Run, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws one figure as `file.png` and `file.svg` (the same drawing code, two backends).
fn draw_both(out: &Path, file: &str, run: &Run, figure: &impl Figure) -> Result<()> {
    let png = out.join(format!("{file}.png"));
    let svg = out.join(format!("{file}.svg"));
    let size_px = figure.size_px();
    draw_on(
        run,
        figure,
        BitMapBackend::new(&png, size_px).into_drawing_area(),
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    draw_on(
        run,
        figure,
        SVGBackend::new(&svg, size_px).into_drawing_area(),
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
}

/// One backend's file: a white ground, the figure, written out.
fn draw_on<DB: DrawingBackend>(
    run: &Run,
    figure: &impl Figure,
    root: DrawingArea<DB, Shift>,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    figure.draw(run, &root)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// A figure's part of the report: with `data`, the figure drawn as `file.png` and `file.svg`
/// and shown, and `data` handed back for the table under it; without (`Err`), the note why.
fn figure_section<F: Figure>(
    data: Result<F, String>,
    run: &Run,
    out: &Path,
    file: &str,
    alt: &str,
    report: &mut String,
) -> Result<Option<F>> {
    let figure = match data {
        Ok(figure) => figure,
        Err(note) => {
            writeln!(report, "\n{note}")?;
            return Ok(None);
        }
    };
    draw_both(out, file, run, &figure)?;
    writeln!(report, "\n![{alt}]({file}.svg)\n")?;
    Ok(Some(figure))
}

/// The height of a line of the set-up under a figure's title.
const SETUP_LINE_PX: u32 = 18;

/// The area under a figure's title and, under it, the run's set-up and what the points are.
fn titled<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    run: &Run,
    title: &str,
) -> Result<DrawingArea<DB, Shift>> {
    let note = boots::whisker_note(boots::boots(&run.trials));
    titled_with(root, run, title, &note)
}

/// [`titled`] with another line than the usual one saying what points and whiskers are.
fn titled_with<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    run: &Run,
    title: &str,
    note: &str,
) -> Result<DrawingArea<DB, Shift>> {
    let below = root.titled(title, ("sans-serif", 22)).map_err(plot_err)?;
    let (lines, rest) = below.split_vertically(2 * SETUP_LINE_PX + 4);
    let (width_px, _) = lines.dim_in_pixel();
    let style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    for (i, text) in [run.setup.as_str(), note].into_iter().enumerate() {
        let y = SETUP_LINE_PX as i32 * i as i32 + SETUP_LINE_PX as i32 / 2;
        lines
            .draw(&Text::new(text, (width_px as i32 / 2, y), style.clone()))
            .map_err(plot_err)?;
    }
    Ok(rest)
}

/// A plotters drawing error as an [`anyhow::Error`] (its error types differ per backend).
fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("{e}")
}

/// The usual set-ups' colours, the same in every run and figure.
fn fixed_colour(name: &str) -> Option<RGBColor> {
    match name {
        "eevdf" | "cfs" => Some(RGBColor(31, 119, 180)),
        "aegis" => Some(RGBColor(214, 39, 40)),
        "scx_rustland" => Some(RGBColor(44, 160, 44)),
        "eevdf:collector-fifo" | "cfs:collector-fifo" => Some(RGBColor(148, 103, 189)),
        _ => None,
    }
}

/// Colours for the other names, handed out in name order.
const OTHER_COLOURS: [RGBColor; 7] = [
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
    RGBColor(31, 60, 110),
];

/// A colour for every scheduler and loss series of a run: the usual set-ups keep their own,
/// every other name takes the next unused colour in name order, so that no two of a run's
/// series share one (Aegis's variants, `eevdf:attack-nice`, ...) and a name has the same
/// colour in each of the run's figures.
fn run_colours(trials: &[Trial]) -> BTreeMap<String, RGBColor> {
    let mut names: std::collections::BTreeSet<String> =
        trials.iter().map(|t| t.id.scheduler.clone()).collect();
    names.extend(trials.iter().map(|t| series_label(t, trials)));
    let mut others = OTHER_COLOURS.iter().cycle();
    names
        .into_iter()
        .map(|name| {
            let colour = fixed_colour(&name)
                .or_else(|| others.next().copied())
                .unwrap_or(BLACK);
            (name, colour)
        })
        .collect()
}

impl Run {
    pub fn new(name: String, trials: Vec<Trial>) -> Run {
        Run {
            name,
            colours: run_colours(&trials),
            setup: boots::setup_line(&trials),
            trials,
        }
    }

    /// Some of the run's trials as a run of their own (the plain flood's, apart from the
    /// evaders): the same name and colours, the set-up of those trials.
    fn part(&self, trials: Vec<Trial>) -> Run {
        Run {
            name: self.name.clone(),
            colours: self.colours.clone(),
            setup: boots::setup_line(&trials),
            trials,
        }
    }

    /// The colour of a scheduler (or loss series) in this run's figures.
    fn colour(&self, name: &str) -> RGBColor {
        self.colours.get(name).copied().unwrap_or(BLACK)
    }

    /// Each name with its colour: the series of a [`BarPanel`].
    fn series<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<(String, RGBColor)> {
        names
            .into_iter()
            .map(|name| (name.clone(), self.colour(name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    fn trial(scheduler: &str, threads: u32, loss: f64, kept: Option<f64>) -> Trial {
        example_trial(scheduler, threads, loss, kept.map(|k| ("stress-ng-cpu", k)))
    }

    #[test]
    fn every_series_of_a_run_has_its_own_colour_and_the_usual_ones_keep_theirs() {
        let trials = [
            trial("aegis", 8, 0.0, None),
            trial("aegis:no-model", 8, 0.0, None),
            trial("aegis:no-wait-bound", 8, 0.0, None),
            trial("aegis:no-delta-gating", 8, 0.0, None),
            trial("eevdf", 8, 0.0, None),
        ];
        let run = Run::new("r".into(), trials.to_vec());
        let colours: BTreeSet<_> = run.colours.values().map(|c| (c.0, c.1, c.2)).collect();
        assert_eq!(colours.len(), 5);
        assert_eq!(Some(run.colour("aegis")), fixed_colour("aegis"));
        assert_eq!(Some(run.colour("eevdf")), fixed_colour("eevdf"));
    }

    /// Every file in `dir`, by name, with its bytes.
    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect()
    }

    /// `run`'s section of a report and the files it drew.
    fn section(run: &Run) -> (String, BTreeMap<String, Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let mut report = Report::new();
        report.add_run(run, dir.path()).unwrap();
        let text = report.text().strip_prefix(Report::new().text()).unwrap();
        (text.to_string(), files(dir.path()))
    }

    #[test]
    fn evaders_are_drawn_apart_and_never_pooled_into_the_other_figures() {
        let mut trials = Vec::new();
        for (evade, loss) in [
            (None, 80.0),
            (Some("spin:200"), 20.0),
            (Some("hogs:4"), 65.0),
        ] {
            for scheduler in ["eevdf", "aegis"] {
                let mut t = trial(
                    scheduler,
                    8,
                    if scheduler == "aegis" { 0.0 } else { loss },
                    None,
                );
                t.attack.evade = evade.map(str::to_string);
                trials.push(t);
            }
        }
        let (text, drawn) = section(&Run::new("r/trials.jsonl".into(), trials.clone()));
        let has = |s: &str| assert!(text.contains(s), "no {s:?} in:\n{text}");
        has("4 of the run's 6 trials had an adaptive attacker (`--evade`)");
        has("the other figures draw the 2 plain-flood trials alone");
        // The loss table holds the plain flood's one trial, not the three attacks' mean (55).
        has("| builtin | none | eevdf | 8 | 1 | 1 | 80.00 (n=1) |");
        // The evasion table has each attack apart, in the axis's order.
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| builtin | none | openat | 8 |"))
            .collect();
        assert_eq!(rows.len(), 6, "{text}");
        assert!(rows[1].contains("| none | eevdf | 1 | 5 (n=1) | 5 (n=1) | 80.00 (n=1) |"));
        assert!(rows[3].contains("| spin:200 | eevdf |") && rows[3].ends_with("| 20.00 (n=1) |"));
        assert!(rows[5].contains("| hogs:4 | eevdf |") && rows[5].ends_with("| 65.00 (n=1) |"));
        assert!(
            drawn.contains_key("r-trials-evasion.svg")
                && drawn.contains_key("r-trials-evasion.png")
        );
        // Every other figure is byte for byte that of the plain-flood trials as a run alone,
        // which has no evasion figure and no note.
        let plain: Vec<Trial> = trials
            .iter()
            .filter(|t| t.attack.evade.is_none())
            .cloned()
            .collect();
        let (plain_text, plain_drawn) = section(&Run::new("r/trials.jsonl".into(), plain));
        assert!(!plain_text.contains("evasion") && !plain_text.contains("adaptive attacker"));
        for (name, bytes) in &plain_drawn {
            assert!(drawn.get(name) == Some(bytes), "{name} differs");
        }
        assert_eq!(drawn.len(), plain_drawn.len() + 2);
        assert!(text.ends_with(plain_text.split_once("\n![loss]").unwrap().1));
        // Nothing but evaders: the evasion figure, and a note that the others are left out.
        let evaders: Vec<Trial> = trials[2..].to_vec();
        let (text, drawn) = section(&Run::new("e.json".into(), evaders));
        assert!(text.contains("All 4 trials of the run had an adaptive attacker"));
        assert!(text.contains("the other figures, which do not split by attack, are left out"));
        let names: Vec<&String> = drawn.keys().collect();
        assert_eq!(names, ["e-evasion.png", "e-evasion.svg"]);
    }

    #[test]
    fn stems_stay_unique() {
        let taken = BTreeSet::from(["r-trials".to_string()]);
        assert_eq!(file_stem("r/trials.json", &Default::default()), "r-trials");
        assert_eq!(file_stem("r/trials.jsonl", &taken), "r-trials-jsonl");
    }
}
