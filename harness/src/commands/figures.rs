//! `aegis-bench figures`: figures and a markdown report from result files, without running
//! anything.
//!
//! Every `*.json` file under `--results` that holds a list of trials (what `attack --json`
//! writes) is one run, and so is every `trials.jsonl` (what `run` writes, one trial a line);
//! other files (calibrations, simulator reports, a run's `run.json`, `matrix.toml` and
//! `trials.csv`) are skipped. Each run's figures and section of `report.md` are drawn by
//! [`crate::figures`]. Inputs are read in sorted order, so the same results give the same
//! files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::FiguresArgs;
use crate::figures::{Report, Run};
use crate::results::trial::Trial;

/// Draws every run under `--results` into `--out`, with `report.md`.
pub fn figures(args: &FiguresArgs) -> Result<()> {
    let runs = read_runs(&args.results)?;
    if runs.is_empty() {
        anyhow::bail!(
            "no trial lists under {}: point --results at `attack --json` files or `run` outputs",
            args.results.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut report = Report::new();
    for run in &runs {
        report.add_run(run, &args.out)?;
        crate::say!("figures: {} ({} trials)", run.name, run.trials.len());
    }
    let report_path = args.out.join("report.md");
    std::fs::write(&report_path, report.text())
        .with_context(|| format!("writing {}", report_path.display()))?;
    crate::say!("wrote {} and its figures", report_path.display());
    Ok(())
}

/// Every trial list under `dir`, by path.
fn read_runs(dir: &Path) -> Result<Vec<Run>> {
    if !dir.is_dir() {
        return Err(crate::error::InputError(format!(
            "--results {} is not a directory: name the directory holding the result files",
            dir.display()
        ))
        .into());
    }
    let mut files = Vec::new();
    collect_trial_files(dir, &mut files)
        .with_context(|| format!("reading the results directory {}", dir.display()))?;
    files.sort();
    let mut runs = Vec::new();
    for path in files {
        let text = crate::files::read_input(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let trials = if path.extension().is_some_and(|ext| ext == "jsonl") {
            // Named as a run's trial file: a line that is not a trial is an error, not a
            // file to skip, or the report would silently leave a run out.
            crate::export::jsonl::parse(&text)
                .with_context(|| format!("reading trials from {}", path.display()))?
        } else {
            // Not a trial list (a calibration, a simulator report, run.json): not ours to draw.
            // A list of records that look like trials must read as trials: one bad field is
            // an error naming the file, not a run silently left out.
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if !looks_like_trials(&value) {
                continue;
            }
            serde_json::from_value::<Vec<Trial>>(value)
                .with_context(|| format!("reading trials from {}", path.display()))?
        };
        if trials.is_empty() {
            continue;
        }
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        runs.push(Run::new(name, trials));
    }
    Ok(runs)
}

/// Whether `value` is a non-empty list of objects each with a trial's `scheduler` and
/// `generated`.
fn looks_like_trials(value: &serde_json::Value) -> bool {
    value.as_array().is_some_and(|list| {
        !list.is_empty()
            && list
                .iter()
                .all(|t| t.get("scheduler").is_some() && t.get("generated").is_some())
    })
}

/// `*.json` files and `run`'s `trials.jsonl` files under `dir`, recursively; symlinked
/// directories are not followed (a link to a parent would draw the runs again and again).
fn collect_trial_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_trial_files(&path, out)?;
        } else if path.is_dir() {
            continue;
        } else if path.extension().is_some_and(|ext| ext == "json")
            || path
                .file_name()
                .is_some_and(|name| name == crate::export::jsonl::FILE_NAME)
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Exporter as _;
    use crate::results::trial::example_trial;

    fn trial(scheduler: &str, threads: u32, loss: f64, kept: Option<f64>) -> Trial {
        example_trial(scheduler, threads, loss, kept.map(|k| ("stress-ng-cpu", k)))
    }

    #[test]
    fn a_trial_list_with_one_bad_field_is_an_error_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("r")).unwrap();
        let mut trials = serde_json::to_value(vec![trial("eevdf", 1, 10.0, None)]).unwrap();
        std::fs::write(
            dir.path().join("r/trials.json"),
            serde_json::to_string(&trials).unwrap(),
        )
        .unwrap();
        // A link back up: followed, it would find r/trials.json again, forever.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("r/loop")).unwrap();
        assert_eq!(read_runs(dir.path()).unwrap().len(), 1);
        trials[0]["loss_pct"] = serde_json::json!("lots");
        std::fs::write(
            dir.path().join("r/trials.json"),
            serde_json::to_string(&trials).unwrap(),
        )
        .unwrap();
        let err = format!("{:#}", read_runs(dir.path()).err().unwrap());
        assert!(err.contains("r/trials.json"), "{err}");
    }

    #[test]
    fn a_broken_trials_jsonl_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("r")).unwrap();
        std::fs::write(dir.path().join("r/trials.jsonl"), "{\"scheduler\": 1}\n").unwrap();
        let err = format!("{:#}", read_runs(dir.path()).err().unwrap());
        assert!(
            err.contains("r/trials.jsonl") && err.contains("line 1"),
            "{err}"
        );
    }

    /// The data `run` records since issue 21 (rates, the groups' CPU time, every wait) for
    /// `sweep_trials`: a set-up losing `loss_pct`, running at `speed`, waiting `delay_ms`,
    /// in the boot numbered `r`.
    fn add_rates_shares_and_waits(t: &mut Trial, loss_pct: f64, speed: f64, delay_ms: f64, r: f64) {
        t.accounting.delivered_per_s = 1000.0 * (100.0 - loss_pct) + 10.0 * r;
        t.accounting.attack_rate = 100_000.0 * speed + 100.0 * r;
        t.run_delay.cpu_s_by_group = Some(
            [("attack", 1.0 + r), ("workload", speed), ("collector", 0.1)]
                .map(|(g, v)| (g.to_string(), v))
                .into(),
        );
        let mut waits = scheduler::sim::LatencyHistogram::default();
        waits.record_n((delay_ms * 1e6) as u64, 90);
        waits.record_n((delay_ms * 30e6 * (1.0 + r)) as u64, 10);
        t.run_delay.run_delay_waits_ns = Some(waits);
    }

    /// A `run` output's trials with every field the figures read: three baselines and three
    /// Aegis variants, two workloads, two repetitions.
    fn sweep_trials() -> Vec<Trial> {
        struct Setup {
            name: &'static str,
            loss_pct: f64,
            /// Throughput relative to eevdf's.
            speed: f64,
            jain: (f64, f64),
            /// Median run delay, ms.
            delay_ms: f64,
            canary: (bool, bool),
        }
        let setups = [
            ("eevdf", 81.0, 1.0, (0.55, 0.95), 2.0, (false, false)),
            (
                "eevdf:collector-fifo",
                8.0,
                0.9,
                (0.6, 0.9),
                1.5,
                (true, false),
            ),
            ("scx_rustland", 86.0, 1.05, (0.7, 0.93), 3.0, (false, false)),
            ("aegis", 0.0, 0.85, (0.92, 0.6), 0.05, (true, true)),
            (
                "aegis:no-delta-gating",
                3.0,
                0.8,
                (0.9, 0.65),
                0.08,
                (true, true),
            ),
            ("aegis:no-model", 40.0, 0.95, (0.8, 0.9), 0.5, (true, false)),
        ]
        .map(|(name, loss_pct, speed, jain, delay_ms, canary)| Setup {
            name,
            loss_pct,
            speed,
            jain,
            delay_ms,
            canary,
        });
        let mut trials = Vec::new();
        for (k, s) in setups.iter().enumerate() {
            for (w, workload) in ["hackbench", "stress-ng-cpu"].iter().enumerate() {
                // Two boots of one repetition each.
                for boot in 0..2u32 {
                    let r = boot as f64;
                    let mut t = example_trial(s.name, 8, s.loss_pct + r, Some((workload, 0.5)));
                    t.id.boot = boot;
                    add_rates_shares_and_waits(&mut t, s.loss_pct, s.speed, s.delay_ms, r);
                    t.beside.workload_throughput_per_s =
                        Some(100.0 * (w + 1) as f64 * s.speed * (1.0 + 0.05 * r));
                    t.run_delay.fairness_workload_jain = Some(s.jain.0 + 0.01 * r);
                    t.run_delay.fairness_attack_jain = Some(s.jain.1);
                    // From a tenth of the median to 75 times it: waits over several decades.
                    t.run_delay.run_delay_cdf_ms = Some(
                        [
                            (0.1, 0.1),
                            (0.5, 1.0),
                            (0.9, 10.0),
                            (0.99, 30.0),
                            (1.0, 75.0),
                        ]
                        .iter()
                        .map(|(fraction, x)| [*fraction, s.delay_ms * x * (1.0 + r)])
                        .collect(),
                    );
                    t.accounting.canary_path = Some("/tmp/aegis-canary".into());
                    (
                        t.accounting.canary_create_recorded,
                        t.accounting.canary_unlink_recorded,
                    ) = s.canary;
                    if s.name.starts_with("aegis") {
                        let k = k as u64;
                        t.scheduler_stats = Some(serde_json::json!({
                            "nr_inferences_run": if s.name == "aegis:no-model" { 0 } else { 400 - 50 * k },
                            "nr_inferences_skipped": 10 * k,
                            "levels": [
                                {"level": "provenance", "max_wait_us": 1700 + 100 * k},
                                {"level": "producer", "max_wait_us": 20_000 * k + 500 * boot as u64},
                            ],
                        }));
                    }
                    trials.push(t);
                }
            }
        }
        trials
    }

    /// Two runs under `results`: an `attack --json` file of four trials, and a `run` output
    /// directory (the sweep) whose trials.jsonl lies beside files that are not trial lists.
    fn write_results(results: &Path) {
        std::fs::create_dir_all(results.join("run")).unwrap();
        let trials = vec![
            trial("eevdf", 1, 10.0, Some(0.3)),
            trial("eevdf", 4, 60.0, Some(0.25)),
            trial("aegis", 1, 0.0, Some(0.9)),
            trial("aegis", 4, 0.0, Some(0.95)),
        ];
        std::fs::write(
            results.join("run/trials.json"),
            serde_json::to_string(&trials).unwrap(),
        )
        .unwrap();
        // Not a trial list: skipped.
        std::fs::write(results.join("calibration.json"), "{\"x\": 1}").unwrap();
        let sweep = results.join("sweep");
        std::fs::create_dir_all(&sweep).unwrap();
        let lines = crate::export::jsonl::JsonLinesExporter::new("unused".into())
            .serialize(&sweep_trials())
            .unwrap();
        std::fs::write(sweep.join("trials.jsonl"), lines).unwrap();
        std::fs::write(sweep.join("run.json"), "{\"started_at\": \"x\"}").unwrap();
        std::fs::write(sweep.join("matrix.toml"), "repetitions = 2\n").unwrap();
        std::fs::write(sweep.join("trials.csv"), "scheduler\neevdf\n").unwrap();
    }

    /// `figures` from `results` into `out`: every file it wrote, by name, with its bytes.
    fn render(results: &Path, out: &Path) -> Vec<(String, Vec<u8>)> {
        figures(&FiguresArgs {
            results: results.to_path_buf(),
            out: out.to_path_buf(),
        })
        .unwrap();
        let mut files: Vec<_> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(p).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_huge_thread_count_draws_without_a_label_per_thread() {
        // It drew one axis label per thread count: 2^32-1 of them never finished.
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir_all(results.join("run")).unwrap();
        let trials = vec![
            trial("eevdf", 1, 10.0, None),
            trial("eevdf", u32::MAX, 60.0, None),
        ];
        std::fs::write(
            results.join("run/trials.json"),
            serde_json::to_string(&trials).unwrap(),
        )
        .unwrap();
        let files = render(&results, &dir.path().join("out"));
        assert!(files.iter().any(|(name, _)| name == "run-trials-loss.svg"));
    }

    #[test]
    fn figures_and_report_come_out_identical_twice() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        write_results(&results);
        // To look at them: AEGIS_FIGURES_TEST_OUT=/some/dir cargo test ... identical_twice
        let first = match std::env::var_os("AEGIS_FIGURES_TEST_OUT") {
            Some(out) => render(&results, Path::new(&out)),
            None => render(&results, &dir.path().join("a")),
        };
        let second = render(&results, &dir.path().join("b"));
        let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected = vec![
            "report.md".to_string(),
            "run-trials-loss.png".into(),
            "run-trials-loss.svg".into(),
            "run-trials-rates.png".into(),
            "run-trials-rates.svg".into(),
            "run-trials-workload-kept.png".into(),
            "run-trials-workload-kept.svg".into(),
        ];
        for figure in [
            "ablations",
            "cpu-shares",
            "fairness",
            "loss",
            "normalized-runtime",
            "provenance-graph",
            "rates",
            "run-delay-cdf",
            "workload-kept",
        ] {
            expected.push(format!("sweep-trials-{figure}.png"));
            expected.push(format!("sweep-trials-{figure}.svg"));
        }
        assert_eq!(names, expected);
        assert!(first == second, "the same results drew different files");
        let report = String::from_utf8(first[0].1.clone()).unwrap();
        assert_report_numbers(&report);
    }

    /// The numbers and notes `figures_and_report_come_out_identical_twice`'s report must hold.
    fn assert_report_numbers(report: &str) {
        let has = |text: &str| assert!(report.contains(text), "no {text:?} in:\n{report}");
        // The first run: one boot, no intervals, and a note for each figure it lacks data for.
        has("Set-up: host kernel 6.18, ring 64KiB, 2 s attacks, 1 boot × 1 repetition. n=1 boot");
        has("| builtin | stress-ng-cpu | eevdf | 4 | 1 | 1 | 60.00 (n=1) |");
        has("No normalized runtime figure: no eevdf");
        has("No CPU-share figure");
        has("No ablation figure");
        has("No provenance graph");
        // The sweep: two boots; loss is split by workload, its interval cut at 0 %.
        has("2 boots × 1 repetition. points: mean over 2 boots of each boot's mean");
        has("| builtin | hackbench | aegis | 8 | 2 | 2 | 0.50 [0.00, 6.85] |");
        // Runtime: per-boot ratios 100/85 and 105/89.25, both 1/0.85.
        has("| hackbench | aegis | 2 | 1.176 | 1.176 | 1.176 |");
        has("| builtin | hackbench | 8 | eevdf | 2 | 19005 [18941, 19069] | 100050 [99415, 100685] |");
        has("| hackbench | eevdf | 2 | 0.561 [0.000, 1.000] |");
        has("| workload | aegis | 2 | 0.925 [0.861, 0.989] |");
        // Pooled waits: 2 trials of 100 waits.
        has("| hackbench | eevdf | 2 | 200 | 1.966 |");
        has("| hackbench | aegis:no-model | 2 | 40.50 [34.15, 46.85] | 95050 [94415, 95685] |");
        has("| aegis:no-model | builtin | 0 of 4 | 4 of 4 | 0 of 4 |");
        has("| eevdf | builtin | stress-ng-cpu | 8 | 0 | 0 | 81.00 | missing | missing |");
    }
}
