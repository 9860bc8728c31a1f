//! The tables a report block can hold, each computed from one run's trials.
//!
//! A cell (scheduler, collector, threads, workload) is summarized over boots: each boot's
//! trials are averaged, and the table shows the mean of those boot means with the 95 % t
//! interval over boots in brackets ([`crate::stats`]). "A / B" columns are paired per-boot
//! ratios (the geometric mean of A/B over the boots both ran, with its interval).

use std::collections::{BTreeMap, BTreeSet};

use crate::results::trial::Trial;
use crate::stats::{boot_means, paired_ratio, Interval, Summary};

/// Scheduler names in the order tables show them: the baselines first, Aegis last, variants
/// after their scheduler.
const SCHEDULER_ORDER: &[&str] = &[
    "eevdf",
    "cfs",
    "eevdf:collector-fifo",
    "cfs:collector-fifo",
    "scx_rustland",
    "aegis",
];

pub fn schedulers(trials: &[Trial]) -> Vec<String> {
    let mut names: Vec<String> = trials
        .iter()
        .map(|t| t.id.scheduler.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rank = |name: &str| {
        SCHEDULER_ORDER
            .iter()
            .position(|known| name == *known || name.starts_with(&format!("{known}:")))
            .unwrap_or(SCHEDULER_ORDER.len())
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    names
}

/// Which trials a table covers: a collector and a workload condition (`none` for the attack
/// alone).
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub collector: String,
    pub workload: String,
}

impl Selection {
    fn holds(&self, t: &Trial) -> bool {
        t.id.collector == self.collector
            && t.beside.workload.as_deref().unwrap_or("none") == self.workload
    }
}

/// The trials of one cell: `scheduler` at `threads` in `selection`.
fn cell<'a>(
    trials: &'a [Trial],
    selection: &Selection,
    scheduler: &str,
    threads: u32,
) -> Vec<&'a Trial> {
    trials
        .iter()
        .filter(|t| selection.holds(t) && t.id.scheduler == scheduler && t.id.threads == threads)
        .collect()
}

fn thread_counts(trials: &[Trial], selection: &Selection) -> Vec<u32> {
    trials
        .iter()
        .filter(|t| selection.holds(t))
        .map(|t| t.id.threads)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Each boot's mean of `metric` over `trials` (trials without the metric left out).
fn by_boot(trials: &[&Trial], metric: impl Fn(&Trial) -> Option<f64>) -> BTreeMap<u32, f64> {
    boot_means(
        trials
            .iter()
            .filter_map(|t| metric(t).map(|value| (t.id.boot, value))),
    )
}

/// The interval over boots of `metric` in `trials`, formatted, or `-` without data.
fn over_boots(
    trials: &[&Trial],
    metric: impl Fn(&Trial) -> Option<f64>,
    format: impl Fn(&Interval) -> String,
) -> String {
    let means: Vec<f64> = by_boot(trials, metric).into_values().collect();
    Interval::of_nonnegative(&means).map_or("-".to_string(), |i| format(&i))
}

pub(crate) fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// A table of `metric` per flood-thread count (rows) and scheduler (columns).
pub fn per_scheduler(
    trials: &[Trial],
    selection: &Selection,
    metric: &dyn Fn(&Trial) -> Option<f64>,
    format: &dyn Fn(&Interval) -> String,
) -> String {
    let names = schedulers(trials);
    let mut header = vec!["threads".to_string()];
    header.extend(names.iter().cloned());
    let rows: Vec<Vec<String>> = thread_counts(trials, selection)
        .into_iter()
        .map(|threads| {
            let mut row = vec![threads.to_string()];
            for name in &names {
                row.push(over_boots(
                    &cell(trials, selection, name, threads),
                    metric,
                    format,
                ));
            }
            row
        })
        .collect();
    markdown(&header, &rows)
}

/// Loss in percent, two decimals.
pub fn loss(trials: &[Trial], selection: &Selection) -> String {
    per_scheduler(trials, selection, &|t| Some(t.accounting.loss_pct), &|i| {
        format!("{} %", i.display(2))
    })
}

/// Events a second the flood made in the collector's syscall set (`generated` over the
/// flood time: the attack's own rate times the share of its syscalls the collector traces).
fn generated_per_s(t: &Trial) -> f64 {
    let a = &t.accounting;
    if a.attack_syscalls == 0 {
        return 0.0;
    }
    a.attack_rate * a.generated as f64 / a.attack_syscalls as f64
}

/// Loss per collector (in order of first appearance) and flood-thread count (rows) and
/// scheduler (columns), each cell with the events delivered a second of those the flood
/// generated a second: the trials of several runs of real collectors in one table.
pub fn collectors(trials: &[Trial], workload: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    for t in trials {
        if !names.contains(&t.id.collector.as_str()) {
            names.push(&t.id.collector);
        }
    }
    let columns = schedulers(trials);
    let mut header = vec!["collector".to_string(), "threads".to_string()];
    header.extend(columns.iter().cloned());
    let mut rows = Vec::new();
    for collector in names {
        let selection = Selection {
            collector: collector.to_string(),
            workload: workload.to_string(),
        };
        for threads in thread_counts(trials, &selection) {
            let mut row = vec![collector.to_string(), threads.to_string()];
            for scheduler in &columns {
                let cell = cell(trials, &selection, scheduler, threads);
                let mean = |metric: fn(&Trial) -> f64| {
                    let means: Vec<f64> =
                        by_boot(&cell, |t| Some(metric(t))).into_values().collect();
                    Summary::of(&means).map(|s| s.mean)
                };
                let loss = over_boots(
                    &cell,
                    |t| Some(t.accounting.loss_pct),
                    |i| format!("{} %", i.display(2)),
                );
                row.push(
                    match (
                        mean(|t| t.accounting.delivered_per_s),
                        mean(generated_per_s),
                    ) {
                        (Some(delivered), Some(flood)) => {
                            format!("{loss}<br>{:.0}k of {:.0}k/s", delivered / 1e3, flood / 1e3)
                        }
                        _ => loss,
                    },
                );
            }
            rows.push(row);
        }
    }
    markdown(&header, &rows)
}

/// Events per second the collector recorded, in thousands.
pub fn delivered(trials: &[Trial], selection: &Selection) -> String {
    per_scheduler(
        trials,
        selection,
        &|t| Some(t.accounting.delivered_per_s / 1e3),
        &|i| format!("{}k", i.display(1)),
    )
}

/// The workload's absolute throughput beside the attack (its own unit per second).
pub fn workload_throughput(trials: &[Trial], selection: &Selection) -> String {
    per_scheduler(
        trials,
        selection,
        &|t| t.beside.workload_throughput_per_s,
        &|i| i.display(0),
    )
}

/// The share of its own repetition's no-attack throughput the workload kept.
pub fn workload_kept(trials: &[Trial], selection: &Selection) -> String {
    per_scheduler(
        trials,
        selection,
        &|t| t.beside.workload_kept_fraction,
        &|i| i.display(2),
    )
}

/// Trials that recorded the canary, `x of n`, per scheduler (rows) and collector (columns).
pub fn canary(trials: &[Trial]) -> String {
    let collectors: Vec<String> = trials
        .iter()
        .map(|t| t.id.collector.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut header = vec!["scheduler".to_string()];
    header.extend(collectors.iter().cloned());
    let rows: Vec<Vec<String>> = schedulers(trials)
        .into_iter()
        .map(|name| {
            let mut row = vec![name.clone()];
            for collector in &collectors {
                let of: Vec<&Trial> = trials
                    .iter()
                    .filter(|t| t.id.scheduler == name && t.id.collector == *collector)
                    .collect();
                let seen = of.iter().filter(|t| t.accounting.canary_recorded).count();
                row.push(format!("{seen} of {}", of.len()));
            }
            row
        })
        .collect();
    markdown(&header, &rows)
}

/// Every trial of `scheduler` whose collector dropped any event, with its loss and the canary:
/// a mean over boots rounds a single lost event to 0.00 %, this lists it.
pub fn lossy(trials: &[Trial], scheduler: &str) -> String {
    let header: Vec<String> = ["trial", "dropped", "generated", "loss %", "canary"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let of: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.id.scheduler == scheduler)
        .collect();
    let rows: Vec<Vec<String>> = of
        .iter()
        .filter(|t| t.accounting.dropped > 0)
        .map(|t| {
            vec![
                format!("`{}`", t.id.trial_id),
                t.accounting.dropped.to_string(),
                t.accounting.generated.to_string(),
                format!("{:.4}", t.accounting.loss_pct),
                if t.accounting.canary_recorded {
                    "yes"
                } else {
                    "NO"
                }
                .to_string(),
            ]
        })
        .collect();
    format!(
        "{}
{} of {} {scheduler} trials dropped any event.\n",
        markdown(&header, &rows),
        rows.len(),
        of.len()
    )
}

/// Trials that ran and trials a run set aside as failed (`run --keep-going`'s failures, as
/// (trial id, error)), per scheduler, with the failures' causes.
pub fn failures(trials: &[Trial], failed: &[(String, String)]) -> String {
    let scheduler_of = |id: &str| id.split('/').nth(1).unwrap_or("?").to_string();
    let mut names = schedulers(trials);
    for (id, _) in failed {
        let name = scheduler_of(id);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let header: Vec<String> = [
        "scheduler",
        "trials recorded",
        "trials failed",
        "why they failed",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|name| {
            let ran = trials.iter().filter(|t| t.id.scheduler == *name).count();
            let causes: BTreeSet<String> = failed
                .iter()
                .filter(|(id, _)| scheduler_of(id) == *name)
                .map(|(_, error)| failure_cause(error))
                .collect();
            let count = failed
                .iter()
                .filter(|(id, _)| scheduler_of(id) == *name)
                .count();
            let why = causes.into_iter().collect::<Vec<_>>().join("; ");
            vec![name.clone(), ran.to_string(), count.to_string(), why]
        })
        .collect();
    markdown(&header, &rows)
}

/// A failure's cause in a few words: the sched_ext exit reason when the kernel gave one.
fn failure_cause(error: &str) -> String {
    for reason in ["runnable task stall", "watchdog", "accounting", "timed out"] {
        if error.contains(reason) {
            return reason.to_string();
        }
    }
    if error.starts_with("eaudit -I") {
        return "eAudit's printer failed on its capture".to_string();
    }
    error.split(':').next().unwrap_or(error).trim().to_string()
}

/// A paired per-boot ratio column: `metric` under `a` over `metric` under `b`.
pub struct RatioColumn<'a> {
    pub title: &'a str,
    pub a: &'a str,
    pub b: &'a str,
    pub metric: &'a dyn Fn(&Trial) -> Option<f64>,
}

/// Paired per-boot ratios, one row per (workload, threads) of `collector`, one column each.
pub fn ratios(trials: &[Trial], collector: &str, columns: &[RatioColumn<'_>]) -> String {
    let mut header = vec!["workload".to_string(), "threads".to_string()];
    header.extend(columns.iter().map(|c| c.title.to_string()));
    let workloads: BTreeSet<String> = trials
        .iter()
        .map(|t| t.beside.workload.clone().unwrap_or_else(|| "none".into()))
        .collect();
    let mut rows = Vec::new();
    for workload in workloads {
        let selection = Selection {
            collector: collector.to_string(),
            workload: workload.clone(),
        };
        for threads in thread_counts(trials, &selection) {
            let mut row = vec![workload.clone(), threads.to_string()];
            for column in columns {
                let a = by_boot(&cell(trials, &selection, column.a, threads), column.metric);
                let b = by_boot(&cell(trials, &selection, column.b, threads), column.metric);
                row.push(paired_ratio(&a, &b).map_or("-".into(), |i| i.display(2)));
            }
            rows.push(row);
        }
    }
    markdown(&header, &rows)
}

/// The workloads' cost without an attack: each scheduler's no-attack throughput (the alone
/// baseline every workload trial carries) over the first scheduler's (the fair class), paired
/// by boot. A baseline is measured once per (scheduler, workload, repetition), so each counts
/// once, however many trials carry it.
pub fn overhead(trials: &[Trial]) -> String {
    let order = schedulers(trials);
    let Some((base, others)) = order.split_first() else {
        return markdown(&["workload".to_string()], &[]);
    };
    let mut header = vec!["workload".to_string()];
    header.extend(
        others
            .iter()
            .map(|s| format!("alone throughput, {s} / {base}")),
    );
    let workloads: BTreeSet<&str> = trials
        .iter()
        .filter_map(|t| t.beside.workload.as_deref())
        .collect();
    let alone = |scheduler: &str, workload: &str| -> BTreeMap<u32, f64> {
        let baselines: BTreeMap<(u32, u32), f64> = trials
            .iter()
            .filter(|t| {
                t.id.scheduler == scheduler && t.beside.workload.as_deref() == Some(workload)
            })
            .filter_map(|t| {
                let value = t.beside.workload_alone_throughput_per_s?;
                Some(((t.id.boot, t.id.repetition), value))
            })
            .collect();
        boot_means(baselines.into_iter().map(|((boot, _), v)| (boot, v)))
    };
    let rows: Vec<Vec<String>> = workloads
        .into_iter()
        .map(|workload| {
            let b = alone(base, workload);
            let mut row = vec![workload.to_string()];
            row.extend(others.iter().map(|s| {
                paired_ratio(&alone(s, workload), &b).map_or("-".into(), |i| i.display(2))
            }));
            row
        })
        .collect();
    markdown(&header, &rows)
}

/// Any numeric trial fields (`cols`, JSON names, or JSON pointers into the record such as
/// `/scheduler_stats/nr_inferences_run`) as mean [interval over boots], one row per distinct
/// value of the `rows` fields, among the trials whose fields equal `filter`'s values.
pub fn metrics(
    trials: &[Trial],
    rows: &[String],
    cols: &[String],
    filter: &[(String, String)],
    decimals: usize,
) -> String {
    let records: Vec<BootRecord> = trials
        .iter()
        .map(|t| {
            (
                t.id.boot,
                serde_json::to_value(t).expect("a trial serializes"),
            )
        })
        .filter(|(_, v)| filter.iter().all(|(key, want)| field_text(v, key) == *want))
        .collect();
    let mut groups: Vec<(Vec<String>, Vec<&BootRecord>)> = Vec::new();
    for record in &records {
        let key: Vec<String> = rows.iter().map(|r| field_text(&record.1, r)).collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(record),
            None => groups.push((key, vec![record])),
        }
    }
    let order = schedulers(trials);
    let rank = |key: &[String]| -> Vec<String> {
        key.iter()
            .map(|value| match order.iter().position(|s| s == value) {
                Some(i) => format!("{i:04}"),
                None => format!("{value:>12}"),
            })
            .collect()
    };
    groups.sort_by_key(|(key, _)| rank(key));
    let mut header: Vec<String> = rows.to_vec();
    header.extend(cols.iter().cloned());
    let table: Vec<Vec<String>> = groups
        .iter()
        .map(|(key, members)| {
            let mut row = key.clone();
            for col in cols {
                let means: Vec<f64> = boot_means(members.iter().filter_map(|(boot, v)| {
                    // A yes/no field counts as 1/0: its mean is the fraction of yes.
                    field(v, col)
                        .and_then(|x| x.as_f64().or_else(|| x.as_bool().map(f64::from)))
                        .map(|x| (*boot, x))
                }))
                .into_values()
                .collect();
                row.push(
                    Interval::of_nonnegative(&means).map_or("-".into(), |i| i.display(decimals)),
                );
            }
            row
        })
        .collect();
    markdown(&header, &table)
}

/// A trial's boot and its JSON record.
type BootRecord = (u32, serde_json::Value);

/// A field of a trial's JSON record by name, or by JSON pointer (`/a/b`).
fn field<'a>(record: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    if name.starts_with('/') {
        record.pointer(name)
    } else {
        record.get(name)
    }
}

/// A field as table text: strings bare, `none` for null or missing.
fn field_text(record: &serde_json::Value, name: &str) -> String {
    match field(record, name) {
        None | Some(serde_json::Value::Null) => "none".into(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// One line stating what the numbers are over: boots, repetitions, trials, revision, guest;
/// `summary` names how cells are summarized (tables of means).
pub fn replication(trials: &[Trial], summary: bool) -> String {
    // Boots x repetitions per collector, said once when every collector has the same.
    let mut design: BTreeMap<&str, (BTreeSet<u32>, BTreeSet<u32>)> = BTreeMap::new();
    for t in trials {
        let (boots, repetitions) = design.entry(&t.id.collector).or_default();
        boots.insert(t.id.boot);
        repetitions.insert(t.id.repetition);
    }
    let shape = |(boots, repetitions): &(BTreeSet<u32>, BTreeSet<u32>)| {
        format!(
            "{} boot(s) x {} repetition(s)",
            boots.len(),
            repetitions.len()
        )
    };
    let shapes: BTreeSet<String> = design.values().map(shape).collect();
    let replicated = if shapes.len() <= 1 {
        shapes
            .into_iter()
            .next()
            .unwrap_or_else(|| "0 boot(s) x 0 repetition(s)".into())
    } else {
        design
            .iter()
            .map(|(collector, sets)| format!("{} ({collector})", shape(sets)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let revisions: BTreeSet<&str> = trials.iter().map(|t| t.env.git_rev.as_str()).collect();
    let kernels: BTreeSet<&str> = trials.iter().map(|t| t.env.kernel.as_str()).collect();
    let cpus: BTreeSet<String> = trials
        .iter()
        .map(|t| t.env.cpus.map_or("unrecorded".into(), |n| n.to_string()))
        .collect();
    let guest = trials.iter().any(|t| t.env.qemu_version.is_some());
    let join = |set: &BTreeSet<&str>| set.iter().copied().collect::<Vec<_>>().join(", ");
    format!(
        "{} trials: {replicated}{}; kernel {}{} with {} CPU(s); revision {}.",
        trials.len(),
        if summary {
            "; mean of the per-boot means, [95 % t interval over boots, cut at 0 where no value is negative]"
        } else {
            ""
        },
        join(&kernels),
        if guest { " (QEMU TCG guest)" } else { "" },
        cpus.into_iter().collect::<Vec<_>>().join(", "),
        join(&revisions)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(scheduler: &str, threads: u32, boot: u32, loss_pct: f64, delivered: f64) -> Trial {
        let mut t = Trial {
            id: Default::default(),
            accounting: Default::default(),
            cost: Default::default(),
            attack: Default::default(),
            env: Default::default(),
            policy: Default::default(),
            audit: None,
            sysdig: None,
            eaudit: None,
            scheduler_stats: None,
            started_at: String::new(),
            beside: Default::default(),
            run_delay: Default::default(),
            counters: Default::default(),
            scheduler_args: None,
            collector_cpu_share: None,
        };
        t.id.scheduler = scheduler.into();
        t.id.collector = "builtin".into();
        t.id.threads = threads;
        t.id.boot = boot;
        t.accounting.loss_pct = loss_pct;
        t.accounting.delivered_per_s = delivered;
        t.accounting.canary_recorded = loss_pct == 0.0;
        t
    }

    fn alone() -> Selection {
        Selection {
            collector: "builtin".into(),
            workload: "none".into(),
        }
    }

    #[test]
    fn cells_are_summarized_over_boot_means() {
        // Boot 0 has two trials (1 and 3: mean 2), boots 1 and 2 one each (4, 6).
        let trials = vec![
            trial("eevdf", 4, 0, 1.0, 10.0),
            trial("eevdf", 4, 0, 3.0, 10.0),
            trial("eevdf", 4, 1, 4.0, 10.0),
            trial("eevdf", 4, 2, 6.0, 10.0),
            trial("aegis", 4, 0, 0.0, 10.0),
        ];
        let table = loss(&trials, &alone());
        let expected = Interval::of_nonnegative(&[2.0, 4.0, 6.0])
            .unwrap()
            .display(2);
        assert!(
            table.contains(&format!("| 4 | {expected} % | 0.00 (n=1) % |")),
            "{table}"
        );
        assert!(table.starts_with("| threads | eevdf | aegis |"), "{table}");
        assert!(canary(&trials).contains("| aegis | 1 of 1 |"));
        assert!(canary(&trials).contains("| eevdf | 0 of 4 |"));
    }

    #[test]
    fn metrics_group_by_fields_and_summarize_over_boots() {
        let trials = vec![
            trial("aegis", 8, 0, 0.0, 20.0),
            trial("aegis", 8, 1, 0.0, 30.0),
            trial("eevdf", 8, 0, 5.0, 10.0),
            trial("eevdf", 1, 0, 1.0, 10.0),
        ];
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let table = metrics(
            &trials,
            &strings(&["scheduler"]),
            &strings(&["delivered_per_s", "loss_pct"]),
            &[("threads".into(), "8".into())],
            1,
        );
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows[0], "| scheduler | delivered_per_s | loss_pct |");
        assert_eq!(rows[2], "| eevdf | 10.0 (n=1) | 5.0 (n=1) |");
        assert!(rows[3].starts_with("| aegis | 25.0 ["), "{table}");
        assert_eq!(rows.len(), 4, "the 1-thread trial is filtered out");
    }

    #[test]
    fn collectors_put_each_collector_in_its_rows_with_its_rates() {
        let mut trials = vec![
            trial("aegis", 8, 0, 0.0, 20_000.0),
            trial("aegis", 8, 1, 0.0, 40_000.0),
            trial("eevdf", 8, 0, 5.0, 50_000.0),
        ];
        let mut eaudit = trial("aegis", 1, 0, 2.0, 9_000.0);
        eaudit.id.collector = "eaudit".into();
        trials.push(eaudit);
        for t in &mut trials {
            // Half of the attack's syscalls are traced: 100k/s of its 200k/s.
            t.accounting.attack_rate = 200_000.0;
            t.accounting.attack_syscalls = 400;
            t.accounting.generated = 200;
        }
        let table = collectors(&trials, "none");
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows[0], "| collector | threads | eevdf | aegis |");
        assert!(
            rows[2].starts_with("| builtin | 8 | 5.00 (n=1) %<br>50k of 100k/s | 0.00 ["),
            "{table}"
        );
        assert!(rows[2].ends_with("%<br>30k of 100k/s |"), "{table}");
        assert_eq!(rows[3], "| eaudit | 1 | - | 2.00 (n=1) %<br>9k of 100k/s |");
    }

    #[test]
    fn lossy_lists_each_trial_that_dropped_anything() {
        let mut one = trial("aegis", 8, 1, 0.001, 10.0);
        one.id.trial_id = "openat/aegis/x8/boot1/rep0".into();
        one.accounting.dropped = 1;
        one.accounting.generated = 100_000;
        let trials = vec![
            trial("aegis", 8, 0, 0.0, 10.0),
            one,
            trial("eevdf", 8, 0, 5.0, 1.0),
        ];
        let table = lossy(&trials, "aegis");
        assert!(
            table.contains("| `openat/aegis/x8/boot1/rep0` | 1 | 100000 | 0.0010 | NO |"),
            "{table}"
        );
        assert!(
            table.contains("1 of 2 aegis trials dropped any event."),
            "{table}"
        );
    }

    #[test]
    fn failures_are_counted_per_scheduler_with_their_cause() {
        let trials = vec![
            trial("eevdf", 8, 0, 5.0, 10.0),
            trial("scx_rustland", 8, 0, 5.0, 1.0),
        ];
        let failed = vec![
            (
                "openat/scx_rustland/builtin/ring16KiB/x1/none/boot0/rep0".to_string(),
                "the kernel disabled scx_rustland during the trial (state disabled): ... \
                 disabled (runnable task stall)"
                    .to_string(),
            ),
            (
                "openat/aegis/builtin/ring16KiB/x1/none/boot0/rep0".to_string(),
                "accounting does not add up".to_string(),
            ),
            (
                "openat/aegis/eaudit/default/x4/none/boot0/rep0".to_string(),
                "eaudit -I /tmp/x/eaudit.cap failed (signal: 6 (SIGABRT)): Missing newline"
                    .to_string(),
            ),
        ];
        let table = failures(&trials, &failed);
        assert!(table.contains("| eevdf | 1 | 0 |  |"), "{table}");
        assert!(
            table.contains("| scx_rustland | 1 | 1 | runnable task stall |"),
            "{table}"
        );
        assert!(
            table
                .contains("| aegis | 0 | 2 | accounting; eAudit's printer failed on its capture |"),
            "{table}"
        );
    }

    #[test]
    fn ratios_pair_boots() {
        let trials = vec![
            trial("aegis", 8, 0, 0.0, 20.0),
            trial("aegis", 8, 1, 0.0, 30.0),
            trial("eevdf:collector-fifo", 8, 0, 5.0, 10.0),
            trial("eevdf:collector-fifo", 8, 1, 5.0, 10.0),
        ];
        let table = ratios(
            &trials,
            "builtin",
            &[RatioColumn {
                title: "aegis / fifo",
                a: "aegis",
                b: "eevdf:collector-fifo",
                metric: &|t| Some(t.accounting.delivered_per_s),
            }],
        );
        // Ratios 2 and 3 per boot: geometric mean sqrt(6) = 2.45.
        assert!(table.contains("| none | 8 | 2.45 ["), "{table}");
    }

    #[test]
    fn overhead_counts_each_baseline_once_and_pairs_boots() {
        let with_alone = |scheduler: &str, threads: u32, boot: u32, repetition: u32, alone: f64| {
            let mut t = trial(scheduler, threads, boot, 0.0, 1.0);
            t.id.repetition = repetition;
            t.beside.workload = Some("hackbench".into());
            t.beside.workload_alone_throughput_per_s = Some(alone);
            t
        };
        let trials = vec![
            // Boot 0: aegis's one baseline (100) is carried by three trials, eevdf's by one.
            with_alone("aegis", 1, 0, 0, 100.0),
            with_alone("aegis", 4, 0, 0, 100.0),
            with_alone("aegis", 8, 0, 0, 100.0),
            with_alone("aegis", 1, 0, 1, 60.0),
            with_alone("eevdf", 1, 0, 0, 100.0),
            with_alone("eevdf", 1, 0, 1, 100.0),
            // Boot 1: 90 against 100.
            with_alone("aegis", 1, 1, 0, 90.0),
            with_alone("eevdf", 1, 1, 0, 100.0),
        ];
        let table = overhead(&trials);
        assert!(
            table.contains("| workload | alone throughput, aegis / eevdf |"),
            "{table}"
        );
        // Boot 0: mean(100, 60) / 100 = 0.8, not (3 x 100 + 60) / 4 / 100 = 0.9; boot 1: 0.9.
        // Geometric mean sqrt(0.72) = 0.85.
        assert!(table.contains("| hackbench | 0.85 ["), "{table}");
    }
}
