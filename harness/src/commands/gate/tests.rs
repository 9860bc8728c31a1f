//! The gate from trials to report: decisions, the report's text, the thresholds file and the
//! command's files and exit status.

use super::*;
use crate::error::exit_status;
use crate::results::trial::example_trial;

const CELL: &str = "openat/eevdf/builtin/ring64KiB/x8/none";

/// One repetition of the cell `CELL` (or another scheduler's), with the two metrics the
/// tests move.
fn trial(scheduler: &str, rep: u32, loss_pct: f64, delivered_per_s: f64) -> Trial {
    let mut t = example_trial(scheduler, 8, loss_pct, None);
    t.id.repetition = rep;
    t.id.trial_id = format!("openat/{scheduler}/builtin/ring64KiB/x8/none/rep{rep}");
    t.accounting.delivered_per_s = delivered_per_s;
    t
}

/// Three repetitions each of eevdf and aegis cells; per repetition (loss, delivered/s).
fn run(points: &[(f64, f64)]) -> Vec<Trial> {
    ["eevdf", "aegis"]
        .iter()
        .flat_map(|scheduler| {
            points
                .iter()
                .enumerate()
                .map(move |(rep, &(loss, delivered))| trial(scheduler, rep as u32, loss, delivered))
        })
        .collect()
}

fn report(comparison: &Comparison) -> String {
    render_report(
        comparison,
        &Inputs {
            baseline: Path::new("results/baseline"),
            current: Path::new("current"),
            thresholds: None,
            baseline_provenance: String::new(),
            current_provenance: String::new(),
        },
    )
}

fn row<'a>(comparison: &'a Comparison, cell: &str, metric: &str) -> &'a Row {
    comparison
        .rows
        .iter()
        .find(|r| r.cell == cell && r.metric.as_deref() == Some(metric))
        .unwrap_or_else(|| panic!("no row {cell} {metric}"))
}

#[test]
fn identical_runs_pass() {
    let baseline = run(&[(0.5, 1e6), (0.7, 1.2e6), (0.4, 0.9e6)]);
    let comparison = compare(&baseline, &baseline, &Thresholds::default()).unwrap();
    assert_eq!(comparison.exit_status(), 0);
    assert_eq!(comparison.count(Decision::Regression), 0);
    assert_eq!(comparison.count(Decision::Improved), 0);
    // loss, canary, delivered, collector CPU in two cells; the rest not measured.
    assert_eq!(comparison.count(Decision::Ok), 8);
    let text = report(&comparison);
    assert!(text.starts_with("# aegis-bench gate: PASS"), "{text}");
    assert!(
        text.contains("**PASS**: 0 regressions, 0 improved, 8 ok, 0 missing"),
        "{text}"
    );
}

#[test]
fn a_baseline_of_another_trace_scope_is_refused() {
    let baseline = run(&[(0.5, 1e6), (0.7, 1.2e6)]);
    let mut current = baseline.clone();
    for t in &mut current {
        t.id.trace_scope = Some(crate::results::scope::TraceScope::All);
    }
    let err = compare(&baseline, &current, &Thresholds::default()).unwrap_err();
    assert_eq!(exit_status(&err), 2);
    let text = format!("{err:#}");
    assert!(
        text.contains("the baseline traced attack and this run all (--trace-scope)"),
        "{text}"
    );
    // A run that mixes both is refused too.
    let mut mixed = baseline.clone();
    mixed[0].id.trace_scope = Some(crate::results::scope::TraceScope::All);
    assert!(compare(&baseline, &mixed, &Thresholds::default()).is_err());
    assert!(compare(&current, &current, &Thresholds::default()).is_ok());
}

#[test]
fn planted_regression_fails_and_names_cell_and_metric() {
    let baseline = run(&[(0.0, 1.0e6), (0.0, 1.03e6), (0.0, 0.97e6)]);
    let mut current = baseline.clone();
    for t in current.iter_mut().filter(|t| t.id.scheduler == "eevdf") {
        t.accounting.loss_pct = 40.0;
        t.accounting.delivered_per_s /= 2.0;
    }
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    assert_eq!(comparison.exit_status(), 1);
    assert_eq!(
        row(&comparison, CELL, "loss_pct").decision,
        Decision::Regression
    );
    // Loss went from exactly 0 to exactly 40: no variance, no test needed.
    assert_eq!(row(&comparison, CELL, "loss_pct").test, Test::NoVariance);
    let delivered = row(&comparison, CELL, "delivered_per_s");
    assert_eq!(delivered.decision, Decision::Regression);
    assert!(
        matches!(delivered.test, Test::Welch(w) if w.p < 0.05),
        "{delivered:?}"
    );
    // The untouched cell passes.
    let aegis = "openat/aegis/builtin/ring64KiB/x8/none";
    assert_eq!(row(&comparison, aegis, "loss_pct").decision, Decision::Ok);

    let text = report(&comparison);
    assert!(text.starts_with("# aegis-bench gate: FAIL"), "{text}");
    assert!(
        text.contains("**FAIL**: 2 regressions, 0 improved,"),
        "{text}"
    );
    let table: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| openat/"))
        .collect();
    // Regressions first, in metric order.
    assert!(
        table[0].starts_with(&format!(
            "| {CELL} | loss_pct | 0 ± 0 (3) | 40 ± 0 (3) | +40 (n/a) | 1 |"
        )),
        "{text}"
    );
    assert!(
        table[0].ends_with("| no variance | **REGRESSION** |"),
        "{text}"
    );
    // 1e6 ± 3 % halved: t = (5e5 − 3.5e5) / sqrt(3e4²/3 + 1.5e4²/3) = 7.75, df = 2.94.
    assert!(
        table[1].starts_with(&format!(
            "| {CELL} | delivered_per_s | 1e6 ± 30000 (3) | 500000 ± 15000 (3) | -500000 \
             (-50.0 %) | 350000 | 0.0024 |"
        )) && table[1].contains("(-50.0 %)")
            && table[1].ends_with("| **REGRESSION** |"),
        "{text}"
    );
}

#[test]
fn noise_inside_tolerance_passes() {
    // Loss within 1 pp, throughput ±25 %, collector CPU +40 %: a noisy TCG guest.
    let baseline = run(&[(0.2, 1.0e6), (0.5, 1.3e6), (0.3, 0.8e6)]);
    let mut current = run(&[(0.9, 0.8e6), (0.6, 0.75e6), (1.1, 0.95e6)]);
    for t in &mut current {
        t.cost.collector_cpu_s *= 1.4;
    }
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    assert_eq!(comparison.exit_status(), 0, "{}", report(&comparison));
    assert_eq!(comparison.count(Decision::Regression), 0);
}

#[test]
fn change_beyond_tolerance_but_within_scatter_passes() {
    // One bad repetition drags the mean 2 pp up; the scatter explains it.
    let baseline = run(&[(0.0, 1e6), (0.0, 1e6), (0.0, 1e6)]);
    let current = run(&[(0.0, 1e6), (0.0, 1e6), (6.0, 1e6)]);
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    let loss = row(&comparison, CELL, "loss_pct");
    assert_eq!(loss.decision, Decision::Ok);
    // t = (2 - 0 - 1) / sqrt(12 / 3) = 0.5 with 2 degrees of freedom.
    let Test::Welch(welch) = loss.test else {
        panic!("{loss:?}")
    };
    assert!((welch.t - 0.5).abs() < 1e-12 && (welch.df - 2.0).abs() < 1e-12);
    assert!(welch.p > 0.3 && welch.p < 0.35, "{welch:?}");
    assert_eq!(comparison.exit_status(), 0);
}

#[test]
fn improvement_is_reported_and_passes() {
    let baseline = run(&[(30.0, 1e6), (32.0, 1e6), (31.0, 1e6)]);
    let current = run(&[(0.0, 1e6), (1.0, 1e6), (0.5, 1e6)]);
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    assert_eq!(
        row(&comparison, CELL, "loss_pct").decision,
        Decision::Improved
    );
    assert_eq!(comparison.exit_status(), 0);
}

#[test]
fn missing_cell_fails_and_new_cell_does_not() {
    let baseline = run(&[(0.0, 1e6), (0.0, 1e6)]);
    let mut current: Vec<Trial> = baseline
        .iter()
        .filter(|t| t.id.scheduler == "aegis")
        .cloned()
        .collect();
    current.push(trial("scx_rusty", 0, 0.0, 1e6));
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    assert_eq!(comparison.exit_status(), 1);
    assert_eq!(comparison.count(Decision::Missing), 1);
    assert_eq!(comparison.count(Decision::New), 1);
    let text = report(&comparison);
    assert!(
        text.contains(&format!(
            "| {CELL} | - | 2 trials | absent |  |  |  | **MISSING** |"
        )),
        "{text}"
    );
    assert!(
        text.contains("| openat/scx_rusty/builtin/ring64KiB/x8/none | - | absent | 1 trial |"),
        "{text}"
    );
    assert!(text.contains("0 regressions, 0 improved, 4 ok, 1 missing (1 new cell, 0 no data)"));
}

#[test]
fn one_repetition_decides_on_the_tolerance() {
    let baseline = vec![trial("eevdf", 0, 0.0, 1e6)];
    let current = vec![trial("eevdf", 0, 5.0, 1e6)];
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    let loss = row(&comparison, CELL, "loss_pct");
    assert_eq!(
        (loss.test, loss.decision),
        (Test::OneRepetition, Decision::Regression)
    );
    assert!(report(&comparison).contains("| 1 repetition: no test | **REGRESSION** |"));
}

#[test]
fn any_canary_drop_is_a_regression() {
    let baseline = run(&[(0.0, 1e6), (0.0, 1e6), (0.0, 1e6)]);
    let mut current = baseline.clone();
    current[2].accounting.canary_recorded = false;
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    let canary = row(&comparison, CELL, "canary_recorded");
    assert_eq!(
        (canary.test, canary.decision),
        (Test::Rule, Decision::Regression)
    );
}

#[test]
fn no_data_on_one_side_does_not_fail() {
    let mut baseline = run(&[(0.0, 1e6), (0.0, 1e6)]);
    for t in &mut baseline {
        t.run_delay.run_delay_p99_ms = Some(3.0);
    }
    let current = run(&[(0.0, 1e6), (0.0, 1e6)]);
    let comparison = compare(&baseline, &current, &Thresholds::default()).unwrap();
    assert_eq!(
        row(&comparison, CELL, "run_delay_p99_ms").decision,
        Decision::NoData
    );
    assert_eq!(comparison.exit_status(), 0);
}

#[test]
fn trials_without_ids_are_grouped_by_their_fields() {
    let mut t = trial("eevdf", 2, 0.0, 1e6);
    let with_id = cell_key(&t);
    t.id.trial_id.clear();
    assert_eq!(cell_key(&t), with_id);
    assert_eq!(with_id, CELL);
    t.beside.workload = Some("hackbench".into());
    t.id.ring_size_bytes = 4096;
    assert_eq!(cell_key(&t), "openat/eevdf/builtin/ring4KiB/x8/hackbench");
    // An id without a repetition is its own cell.
    t.id.trial_id = "custom/label".into();
    assert_eq!(cell_key(&t), "custom/label");
}

#[test]
fn thresholds_file_overrides_one_metric_and_keeps_the_rest() {
    let thresholds = parse_thresholds(
        "alpha = 0.01\n\
         [metrics.loss_pct]\n\
         direction = \"lower\"\n\
         abs_tolerance = 50.0\n\
         [metrics.attack_rate]\n\
         direction = \"higher\"\n\
         rel_tolerance = 0.2\n\
         [metrics.fairness_workload_jain]\n\
         enabled = false\n",
    )
    .unwrap();
    assert_eq!(thresholds.alpha, 0.01);
    let names: Vec<&str> = thresholds.metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "loss_pct",
            "canary_recorded",
            "delivered_per_s",
            "collector_cpu_s",
            "workload_kept_fraction",
            "run_delay_p99_ms",
            "wait_bound_violations",
            "max_wait_vs_bound",
            "waits_past_2x_bound",
            "attack_rate"
        ]
    );
    let defaults = Thresholds::default();
    assert_eq!(thresholds.metrics[0].1.abs_tolerance, 50.0);
    assert_eq!(thresholds.metrics[2], defaults.metrics[2]);

    // The planted regression: loss now within the tolerance, throughput still caught.
    let baseline = run(&[(0.0, 1.0e6), (0.0, 1.03e6), (0.0, 0.97e6)]);
    let mut current = baseline.clone();
    for t in current.iter_mut().filter(|t| t.id.scheduler == "eevdf") {
        t.accounting.loss_pct = 40.0;
        t.accounting.delivered_per_s /= 2.0;
    }
    let comparison = compare(&baseline, &current, &thresholds).unwrap();
    assert_eq!(row(&comparison, CELL, "loss_pct").decision, Decision::Ok);
    assert_eq!(
        row(&comparison, CELL, "delivered_per_s").decision,
        Decision::Regression
    );
    assert_eq!(row(&comparison, CELL, "attack_rate").decision, Decision::Ok);
}

#[test]
fn misspelt_metric_is_noted() {
    let thresholds =
        parse_thresholds("[metrics.loss_pc]\ndirection = \"lower\"\nabs_tolerance = 1\n").unwrap();
    let baseline = run(&[(0.0, 1e6)]);
    let comparison = compare(&baseline, &baseline, &thresholds).unwrap();
    assert!(comparison.unseen_metrics.contains(&"loss_pc".to_string()));
    assert!(report(&comparison).contains("no trial in either file has `loss_pc`"));
}

#[test]
fn gate_reads_files_writes_the_report_and_returns_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, trials: &[Trial]| {
        let path = dir.path().join(name);
        let mut text = String::new();
        for t in trials {
            text.push_str(&serde_json::to_string(t).unwrap());
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        path
    };
    let baseline = run(&[(0.0, 1e6), (0.0, 1e6), (0.0, 1e6)]);
    let mut current = baseline.clone();
    for t in &mut current {
        t.accounting.loss_pct = 40.0;
    }
    let args = GateArgs {
        baseline: write("baseline.jsonl", &baseline),
        current: write("current.jsonl", &current),
        thresholds: None,
        report: Some(dir.path().join("out/gate.md")),
    };
    assert_eq!(gate(&args).unwrap(), 1);
    let text = std::fs::read_to_string(dir.path().join("out/gate.md")).unwrap();
    assert!(
        text.contains("6 trials in 2 cells (git r; kernel 6.18)"),
        "{text}"
    );
    assert!(text.contains(&format!("| {CELL} | loss_pct |")));

    let same = GateArgs {
        current: args.baseline.clone(),
        report: None,
        ..args.clone()
    };
    assert_eq!(gate(&same).unwrap(), 0);

    let missing = GateArgs {
        current: dir.path().join("nowhere"),
        ..same.clone()
    };
    let err = gate(&missing).unwrap_err();
    assert_eq!(exit_status(&err), 2);
    assert!(err.to_string().contains("--current"), "{err}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[metrics.loss_pct]\nbogus = 1\n",
    )
    .unwrap();
    let bad = GateArgs {
        thresholds: Some(dir.path().join("bad.toml")),
        ..same
    };
    let err = gate(&bad).unwrap_err();
    assert_eq!(exit_status(&err), 2);
    assert!(err.to_string().contains("bad.toml"), "{err}");
    assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
}

/// A trial of `scheduler` in the 16 KiB ring cell of `workload`, in boot `boot` (the kernel's
/// boot id `b{boot}`) of a run of several boots.
fn boot_trial(scheduler: &str, workload: &str, boot: u32, loss_pct: f64, delivered: f64) -> Trial {
    let mut t = example_trial(scheduler, 8, loss_pct, None);
    t.id.boot = boot;
    t.env.boot_id = Some(format!("b{boot}"));
    t.id.trial_id = format!("openat/{scheduler}/builtin/ring16KiB/x8/{workload}/boot{boot}/rep0");
    t.accounting.delivered_per_s = delivered;
    t
}

const AEGIS: &str = "openat/aegis/builtin/ring16KiB/x8/none";
const FIFO: &str = "openat/eevdf:collector-fifo/builtin/ring16KiB/x8/none";

/// CI's claims: loss under 0.01 % and the canary in every Aegis trial, delivered events/s as
/// a ratio to the FIFO control in the same boot.
const CLAIMS: &str = "[metrics.loss_pct]\ndirection = \"lower\"\nabs_tolerance = 0.05\n\
    limit = 0.01\ncells = [\"*/aegis/*\"]\n\
    [metrics.canary_recorded]\ndirection = \"higher\"\nsignificance_test = false\nlimit = 1\n\
    cells = [\"*/aegis/*\"]\n\
    [metrics.delivered_per_s]\nenabled = false\n\
    [metrics.delivered_vs_fifo]\ndirection = \"higher\"\nrel_tolerance = 0.3\n\
    ratio_of = \"delivered_per_s\"\ncontrol = \"eevdf:collector-fifo\"\n";

/// Three boots of Aegis and the FIFO control; `speed[boot]` scales every rate of a boot, and
/// Aegis delivers `aegis_share` of what FIFO does.
fn boots(speed: [f64; 3], aegis_share: f64, aegis_loss: f64) -> Vec<Trial> {
    let mut trials = Vec::new();
    for (boot, speed) in speed.into_iter().enumerate() {
        let boot = boot as u32;
        trials.push(boot_trial(
            "eevdf:collector-fifo",
            "none",
            boot,
            5.0,
            5e4 * speed,
        ));
        trials.push(boot_trial(
            "aegis",
            "none",
            boot,
            aegis_loss,
            5e4 * speed * aegis_share,
        ));
    }
    trials
}

#[test]
fn boots_of_a_run_share_their_cell() {
    let t = boot_trial("aegis", "none", 2, 0.0, 1.0);
    assert_eq!(cell_key(&t), AEGIS);
}

#[test]
fn ratios_to_a_control_in_the_same_boot_cancel_the_machines_speed() {
    let thresholds = parse_thresholds(CLAIMS).unwrap();
    let baseline = boots([1.0, 1.1, 0.9], 1.1, 0.0);
    // Three times slower boots, with the same share: a raw rate would fail, the ratio passes.
    let slow = boots([0.3, 0.4, 0.35], 1.08, 0.0);
    let comparison = compare(&baseline, &slow, &thresholds).unwrap();
    assert_eq!(comparison.exit_status(), 0, "{}", report(&comparison));
    let ratio = row(&comparison, AEGIS, "delivered_vs_fifo");
    assert_eq!(ratio.baseline.unwrap().n, 3, "one sample per boot");
    assert!((ratio.baseline.unwrap().mean - 1.1).abs() < 1e-9);
    // The control has no ratio to itself.
    assert!(!comparison
        .rows
        .iter()
        .any(|r| r.cell == FIFO && r.metric.as_deref() == Some("delivered_vs_fifo")));

    // Over-throttled: Aegis delivers half of what FIFO does, on a fast machine.
    let throttled = boots([1.2, 1.3, 1.25], 0.55, 0.0);
    let comparison = compare(&baseline, &throttled, &thresholds).unwrap();
    let ratio = row(&comparison, AEGIS, "delivered_vs_fifo");
    assert_eq!(ratio.decision, Decision::Regression, "{ratio:?}");
    let text = report(&comparison);
    assert!(
        text.contains(
            "`delivered_vs_fifo` is a cell's `delivered_per_s` over the same cell's \
             `delivered_per_s` under `eevdf:collector-fifo` in the same boot"
        ),
        "{text}"
    );
    // Boots pair by boot: trials of one boot on another machine (boot id) do not pair.
    let mut other_machine = boots([1.0, 1.0, 1.0], 1.0, 0.0);
    for t in other_machine
        .iter_mut()
        .filter(|t| t.id.scheduler == "aegis")
    {
        t.env.boot_id = Some("elsewhere".into());
    }
    let comparison = compare(&baseline, &other_machine, &thresholds).unwrap();
    assert_eq!(
        row(&comparison, AEGIS, "delivered_vs_fifo").decision,
        Decision::NoData
    );
}

#[test]
fn a_claims_limit_fails_whatever_the_baseline() {
    let thresholds = parse_thresholds(CLAIMS).unwrap();
    // The baseline lost as much: a comparison alone would pass, the 0.01 % bar does not.
    let baseline = boots([1.0, 1.0, 1.0], 1.0, 0.02);
    let comparison = compare(&baseline, &baseline, &thresholds).unwrap();
    let loss = row(&comparison, AEGIS, "loss_pct");
    assert_eq!(
        (loss.test, loss.decision),
        (Test::Limit(0.01), Decision::Regression)
    );
    let text = report(&comparison);
    assert!(
        text.contains("| beyond limit 0.01 | **REGRESSION** |"),
        "{text}"
    );
    assert!(
        text.contains("| loss_pct | lower | 0.05 | 0 | yes | 0.01 | `*/aegis/*` |"),
        "{text}"
    );
    // The control loses 5 % and is not judged on loss (the rule's cells).
    assert!(!comparison
        .rows
        .iter()
        .any(|r| r.cell == FIFO && r.metric.as_deref() == Some("loss_pct")));

    // At the bar passes; one canary lost in three trials fails.
    let lossless = boots([1.0, 1.0, 1.0], 1.0, 0.01);
    let mut canary_lost = lossless.clone();
    canary_lost[1].accounting.canary_recorded = false;
    let comparison = compare(&lossless, &lossless, &thresholds).unwrap();
    assert_eq!(comparison.exit_status(), 0, "{}", report(&comparison));
    let comparison = compare(&lossless, &canary_lost, &thresholds).unwrap();
    let canary = row(&comparison, AEGIS, "canary_recorded");
    assert_eq!(
        (canary.test, canary.decision),
        (Test::Limit(1.0), Decision::Regression)
    );
}

#[test]
fn waits_past_the_claimed_bound_fail() {
    let stats = |ordinary_wait_us: u64, bound_scale: u64| {
        serde_json::json!({"wait_bound_tick_us": 4000, "levels": [
            {"max_wait_us": 3000, "wait_bound_us": 16000 * bound_scale,
             "nr_bound_violations": 0, "nr_bound_violations_in_stalls": 0},
            {"max_wait_us": ordinary_wait_us, "wait_bound_us": 32000 * bound_scale,
             "nr_bound_violations": 0, "nr_bound_violations_in_stalls": 0},
            {"max_wait_us": 66000, "wait_bound_us": 64000 * bound_scale,
             "nr_bound_violations": 0, "nr_bound_violations_in_stalls": 0}]})
    };
    let with = |waits: [u64; 3], bound_scale: u64| -> Vec<Trial> {
        waits
            .iter()
            .enumerate()
            .map(|(rep, &wait)| {
                let mut t = trial("aegis", rep as u32, 0.0, 1e6);
                t.scheduler_stats = Some(stats(wait, bound_scale));
                t
            })
            .collect()
    };
    let baseline = with([30_000, 31_000, 12_000], 1);
    let aegis = "openat/aegis/builtin/ring64KiB/x8/none";
    let same = compare(
        &baseline,
        &with([29_000, 33_000, 20_000], 1),
        &Thresholds::default(),
    )
    .unwrap();
    assert_eq!(same.exit_status(), 0, "{}", report(&same));
    assert_eq!(
        row(&same, aegis, "max_wait_vs_bound").decision,
        Decision::Ok
    );
    // No waiting bound: its own counters see nothing, the claim sees 1.4 s waits.
    let unbounded = with([1_390_000, 1_644_000, 1_500_000], 6250);
    let comparison = compare(&baseline, &unbounded, &Thresholds::default()).unwrap();
    let waits = row(&comparison, aegis, "max_wait_vs_bound");
    assert_eq!(waits.decision, Decision::Regression, "{waits:?}");
    assert_eq!(
        row(&comparison, aegis, "wait_bound_violations").decision,
        Decision::Ok
    );
}

#[test]
fn a_ratio_may_divide_by_another_field_of_the_control() {
    // The workload beside the attack under Aegis over the workload alone under the control
    // scheduler (EEVDF), in the same boot.
    let thresholds = parse_thresholds(
        "[metrics.workload_vs_eevdf_alone]\ndirection = \"higher\"\nabs_tolerance = 0.2\n\
         ratio_of = \"workload_throughput_per_s\"\ncontrol = \"eevdf:collector-fifo\"\n\
         control_field = \"workload_alone_throughput_per_s\"\n",
    )
    .unwrap();
    let with_workload = |aegis_beside: [f64; 3]| -> Vec<Trial> {
        let mut trials = Vec::new();
        for (boot, beside) in aegis_beside.into_iter().enumerate() {
            let boot = boot as u32;
            let speed = 1.0 + boot as f64;
            let mut fifo = boot_trial("eevdf:collector-fifo", "stress-ng-cpu", boot, 5.0, 1.0);
            fifo.beside.workload_throughput_per_s = Some(60.0 * speed);
            fifo.beside.workload_alone_throughput_per_s = Some(200.0 * speed);
            let mut aegis = boot_trial("aegis", "stress-ng-cpu", boot, 0.0, 1.0);
            aegis.beside.workload_throughput_per_s = Some(beside * speed);
            trials.extend([fifo, aegis]);
        }
        trials
    };
    let baseline = with_workload([180.0, 190.0, 185.0]);
    let cell = "openat/aegis/builtin/ring16KiB/x8/stress-ng-cpu";
    let same = compare(
        &baseline,
        &with_workload([175.0, 188.0, 192.0]),
        &thresholds,
    )
    .unwrap();
    let row_same = row(&same, cell, "workload_vs_eevdf_alone");
    assert_eq!(row_same.decision, Decision::Ok);
    assert!((row_same.baseline.unwrap().mean - 0.925).abs() < 1e-9);
    let starved = compare(&baseline, &with_workload([80.0, 90.0, 70.0]), &thresholds).unwrap();
    assert_eq!(
        row(&starved, cell, "workload_vs_eevdf_alone").decision,
        Decision::Regression
    );
    assert!(parse_thresholds(
        "[metrics.x]\ndirection = \"higher\"\ncontrol_field = \"workload_alone_throughput_per_s\"\n"
    )
    .is_err());
}
