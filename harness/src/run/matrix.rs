//! `aegis-bench run --matrix FILE.toml` and `aegis-bench merge`: experiments as a matrix.
//!
//! A matrix names schedulers, collectors, attacks, workloads and a number of repetitions (see
//! `docs/matrix.md`). Each `[[attack]]` with each scheduler and workload option becomes the
//! [`AttackOptions`] of one `attack`, validated into a [`Plan`] exactly as `attack`'s flags
//! are, so a matrix can ask for nothing the command line could not. The plans' trials are then
//! put in run order:
//!
//! - repetitions outermost, so that a machine that drifts during a long run (thermal state, a
//!   neighbour's load) spreads its drift over every cell instead of favouring the cells run
//!   first;
//! - within a repetition, cells in a pseudo-random order that differs per repetition and is
//!   fixed by the matrix's `order_seed` (a SHA-256 of seed, repetition and trial id), so every
//!   runner, shard and resumed run agrees on it.
//!
//! `--shard i/n` keeps every n-th trial of that order, starting at the i-th, so shards get
//! equal shares of every repetition. Each finished trial is written at once to
//! `OUT/trials.jsonl` and `OUT/trials.csv` (both replaced atomically), beside a copy of the
//! matrix and `run.json` (matrix hash, shard, trials planned and done). A killed run keeps
//! every finished trial; `--resume` reruns none of them, and refuses a different matrix or
//! shard. `merge` joins the shards' directories after checking they belong to one matrix and
//! overlap nowhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use attacks::FloodKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{MergeArgs, RunArgs};
use crate::collector::CollectorKind;
use crate::error::InputError;
use crate::export::{self, csv::CsvExporter, jsonl, table, Exporter};
use crate::results::trial::Trial;
use crate::run::plan::{split_scx_args, AttackOptions};
use crate::run::workload;
use crate::run::{Bench, Plan, TrialSpec};
use crate::size::parse_ring_size;

/// The matrix file, as written by users. Unknown keys are errors: a misspelt key silently
/// ignored would run a different experiment than the one asked for.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    /// How long each flood runs, in seconds (whole seconds when there are workloads).
    pub duration_s: f64,
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Scheduler names as for `attack --scheduler`, or tables `{ name, label, scx_args }` for
    /// variants (ablations): `{ name = "aegis", label = "aegis:no-delta-gating", scx_args =
    /// "--delta 0" }`.
    pub schedulers: Vec<SchedulerEntry>,
    #[serde(default = "builtin_collector")]
    pub collectors: Vec<String>,
    /// Workloads run beside the attack; `none` for the attack alone.
    #[serde(default = "no_workload")]
    pub workloads: Vec<String>,
    /// Sample run delay, fairness and the waits' CDF (`attack --watch-run-delay`).
    #[serde(default = "yes")]
    pub watch_run_delay: bool,
    /// Fixes the order of cells within each repetition.
    #[serde(default)]
    pub order_seed: u64,
    #[serde(rename = "attack")]
    pub attacks: Vec<AttackEntry>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SchedulerEntry {
    Name(String),
    Variant {
        name: String,
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        scx_args: Option<String>,
    },
}

impl SchedulerEntry {
    pub fn name(&self) -> &str {
        match self {
            SchedulerEntry::Name(name) | SchedulerEntry::Variant { name, .. } => name,
        }
    }

    fn label(&self) -> Option<&str> {
        match self {
            SchedulerEntry::Name(_) => None,
            SchedulerEntry::Variant { label, .. } => label.as_deref(),
        }
    }

    fn scx_args(&self) -> Option<&str> {
        match self {
            SchedulerEntry::Name(_) => None,
            SchedulerEntry::Variant { scx_args, .. } => scx_args.as_deref(),
        }
    }
}

/// One `[[attack]]`: the `attack` flags of that name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttackEntry {
    /// The attack's name in trial ids; the flood kind by default.
    #[serde(default)]
    pub name: Option<String>,
    pub flood: String,
    /// Attack intensities: flood threads.
    pub threads: Vec<u32>,
    /// The built-in collectors' ring sizes, e.g. `["16KiB"]`.
    #[serde(default)]
    pub ring_size: Vec<String>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub rate: Option<u64>,
    #[serde(default)]
    pub audit_backlog_limit: Vec<u32>,
    #[serde(default)]
    pub audit_backlog_wait_time: Vec<u64>,
}

impl AttackEntry {
    /// The attack's name: its `name`, else its flood kind.
    fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.flood)
    }
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn builtin_collector() -> Vec<String> {
    vec!["builtin".to_string()]
}
fn no_workload() -> Vec<String> {
    vec!["none".to_string()]
}

/// A matrix read from its file: the text (copied beside the results) and its hash.
pub struct Matrix {
    pub file: MatrixFile,
    pub text: String,
    pub sha256: String,
}

impl Matrix {
    pub fn read(path: &Path) -> Result<Matrix, InputError> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            InputError(format!(
                "cannot read the matrix {}: {err}; give an existing TOML file (see \
                 docs/matrix.md)",
                path.display()
            ))
        })?;
        Matrix::parse(&text)
            .map_err(|InputError(why)| InputError(format!("matrix {}: {why}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Matrix, InputError> {
        let file: MatrixFile = toml::from_str(text).map_err(|err| {
            InputError(format!(
                "{}; see docs/matrix.md for the keys",
                err.to_string().trim_end()
            ))
        })?;
        if file.schedulers.is_empty() {
            return Err(InputError(
                "`schedulers` is empty; e.g. schedulers = [\"eevdf\", \"aegis\"]".into(),
            ));
        }
        if file.attacks.is_empty() {
            return Err(InputError(
                "no [[attack]]; add one, e.g. [[attack]] flood = \"openat\" threads = [1, 8]"
                    .into(),
            ));
        }
        if file.collectors.is_empty() || file.workloads.is_empty() {
            return Err(InputError(
                "`collectors` and `workloads` may not be empty (leave them out for the \
                 built-in collector and no workload)"
                    .into(),
            ));
        }
        let mut labels = BTreeSet::new();
        for entry in &file.schedulers {
            let label = entry.label().unwrap_or(entry.name());
            if !labels.insert(label.to_string()) {
                return Err(InputError(format!(
                    "scheduler {label} appears twice; give variants distinct labels, e.g. {{ \
                     name = \"aegis\", label = \"aegis:no-delta-gating\", scx_args = \"--delta \
                     0\" }}"
                )));
            }
        }
        let mut names = BTreeSet::new();
        for attack in &file.attacks {
            let name = attack.label();
            if !names.insert(name.to_string()) {
                return Err(InputError(format!(
                    "two [[attack]] entries are called {name}; give them distinct `name`s"
                )));
            }
        }
        let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
        Ok(Matrix {
            file,
            text: text.to_string(),
            sha256,
        })
    }

    /// The `attack` plans of the matrix, validated like `attack`'s flags: one per attack,
    /// scheduler entry and workload option. With `guest_schedulers`, scheduler names are left
    /// for the guest to check (its kernel decides which exist).
    pub fn plans(&self, guest_schedulers: bool) -> Result<Vec<Plan>, InputError> {
        let mut plans = Vec::new();
        for attack in &self.file.attacks {
            for scheduler in &self.file.schedulers {
                for workload in &self.file.workloads {
                    plans.push(self.plan(attack, scheduler, workload, guest_schedulers)?);
                }
            }
        }
        Ok(plans)
    }

    /// The plan of one cell group: `attack` beside `workload` under `scheduler`.
    fn plan(
        &self,
        attack: &AttackEntry,
        scheduler: &SchedulerEntry,
        workload: &str,
        guest_schedulers: bool,
    ) -> Result<Plan, InputError> {
        let flood: FloodKind = attack.flood.parse().map_err(|err| {
            InputError(format!(
                "[[attack]] {}: invalid value '{}' for '--flood <KIND>': {err}",
                attack.label(),
                attack.flood
            ))
        })?;
        let in_cell = |InputError(why)| {
            InputError(format!(
                "[[attack]] {} with scheduler {}: {why}",
                attack.label(),
                scheduler.name()
            ))
        };
        let options = cell_options(
            &self.file,
            attack,
            flood,
            scheduler,
            workload,
            guest_schedulers,
        )
        .map_err(in_cell)?;
        let mut plan = Plan::new(&options).map_err(in_cell)?;
        if let Some(name) = &attack.name {
            plan.attack_label = name.clone();
        }
        plan.scheduler_label = match scheduler.label() {
            Some(label) => Some(label.to_string()),
            // The plan runs the host's default; its trials will be the guest's.
            None if guest_schedulers => Some(scheduler.name().to_string()),
            None => None,
        };
        Ok(plan)
    }
}

/// Values as `attack`'s comma-list flags take them: each entry may itself be a comma list.
fn comma_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|value| value.split(',').map(String::from))
        .collect()
}

/// The options of one cell group of the matrix; what a cell leaves out is `attack`'s default.
fn cell_options(
    file: &MatrixFile,
    attack: &AttackEntry,
    flood: FloodKind,
    scheduler: &SchedulerEntry,
    workload: &str,
    guest_schedulers: bool,
) -> Result<AttackOptions, InputError> {
    let defaults = AttackOptions::default();
    let ring_sizes = if attack.ring_size.is_empty() {
        defaults.ring_sizes.clone()
    } else {
        let sizes = comma_list(&attack.ring_size);
        sizes
            .iter()
            .map(|size| parse_ring_size(size))
            .collect::<Result<_, _>>()?
    };
    let collectors = comma_list(&file.collectors)
        .iter()
        .map(|name| CollectorKind::parse(name))
        .collect::<Result<_, _>>()?;
    let workloads = match workload {
        "none" => Vec::new(),
        names => workload::parse_names(&comma_list(&[names.to_string()]))?,
    };
    Ok(AttackOptions {
        flood,
        threads: attack.threads.clone(),
        duration_s: file.duration_s,
        count: attack.count,
        rate: attack.rate,
        ring_sizes,
        collectors,
        schedulers: if guest_schedulers {
            Vec::new()
        } else {
            comma_list(&[scheduler.name().to_string()])
        },
        scx_args: scheduler
            .scx_args()
            .map(split_scx_args)
            .transpose()?
            .unwrap_or_default(),
        workloads,
        watch_run_delay: file.watch_run_delay,
        repetitions: file.repetitions,
        audit_backlog_limits: or_default(
            &attack.audit_backlog_limit,
            &defaults.audit_backlog_limits,
        ),
        audit_backlog_wait_times_ms: or_default(
            &attack.audit_backlog_wait_time,
            &defaults.audit_backlog_wait_times_ms,
        ),
        ..defaults
    })
}

/// `given`, or `default` when nothing is given.
fn or_default<T: Clone>(given: &[T], default: &[T]) -> Vec<T> {
    if given.is_empty() { default } else { given }.to_vec()
}

/// One trial to run: its plan (by index) and spec, and its id.
pub struct Planned {
    pub plan: usize,
    pub spec: TrialSpec,
    pub id: String,
}

/// Every trial of the plans, in run order (see the module docs).
pub fn run_order(plans: &[Plan], order_seed: u64) -> Vec<Planned> {
    let mut all: Vec<(u32, [u8; 32], Planned)> = Vec::new();
    for (index, plan) in plans.iter().enumerate() {
        for spec in plan.trials() {
            let id = plan.trial_id(&spec);
            let mut hasher = Sha256::new();
            hasher.update(order_seed.to_le_bytes());
            hasher.update(spec.repetition.to_le_bytes());
            hasher.update(id.as_bytes());
            let key: [u8; 32] = hasher.finalize().into();
            all.push((
                spec.repetition,
                key,
                Planned {
                    plan: index,
                    spec,
                    id,
                },
            ));
        }
    }
    all.sort_by_key(|(repetition, key, _)| (*repetition, *key));
    all.into_iter().map(|(_, _, planned)| planned).collect()
}

/// `--shard i/n`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let bad = || {
            InputError(format!(
                "--shard {text} is not i/n with 1 <= i <= n; e.g. --shard 2/3 runs the second \
                 of three parts"
            ))
        };
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the trial at `position` of the run order is this shard's.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count as usize == (self.index - 1) as usize
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `OUT/run.json`: what the directory holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub matrix_sha256: String,
    pub shard: Shard,
    /// Trials of this shard of the matrix (all of the matrix for merged directories).
    pub trials_planned: usize,
    pub trials_done: usize,
    /// Shards a merged directory was made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_shards: Vec<Shard>,
    pub git_rev: String,
}

const MATRIX_COPY: &str = "matrix.toml";
const RUN_INFO: &str = "run.json";
const CSV_FILE: &str = "trials.csv";

/// The files of a run directory.
struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    fn trials_path(&self) -> PathBuf {
        self.dir.join(jsonl::FILE_NAME)
    }

    fn has_trials(&self) -> bool {
        self.trials_path().exists()
    }

    fn read_trials(&self) -> Result<Vec<Trial>> {
        if !self.has_trials() {
            return Ok(Vec::new());
        }
        export::json::read(&self.trials_path())
    }

    fn read_info(&self) -> Result<RunInfo> {
        let path = self.dir.join(RUN_INFO);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes trials, CSV and run.json, each atomically; trials first, so run.json never
    /// claims more than the trial file holds.
    fn write(&self, trials: &[Trial], info: &RunInfo) -> Result<()> {
        let jsonl = jsonl::JsonLinesExporter::new(self.trials_path());
        export::write_atomically(jsonl.path(), &jsonl.serialize(trials)?)?;
        let csv = CsvExporter::new(self.dir.join(CSV_FILE));
        export::write_atomically(csv.path(), &csv.serialize(trials)?)?;
        let mut bytes = serde_json::to_vec_pretty(info)?;
        bytes.push(b'\n');
        export::write_atomically(&self.dir.join(RUN_INFO), &bytes)
    }
}

/// `aegis-bench run`. Returns the exit status (a guest's, with `--vm`).
pub fn run(args: &RunArgs) -> Result<i32> {
    let matrix = Matrix::read(&args.matrix)?;
    let shard = match &args.shard {
        Some(text) => Shard::parse(text)?,
        None => Shard::WHOLE,
    };
    let out = RunDir {
        dir: args.out.clone(),
    };
    if out.has_trials() && !args.resume && !args.dry_run {
        return Err(InputError(format!(
            "{} already holds trials; add --resume to continue that run, or choose another \
             --out",
            out.dir.display()
        ))
        .into());
    }
    if args.vm && !args.dry_run {
        let run = crate::vm::matrix::GuestMatrixRun {
            guest: &args.guest,
            out: &args.out,
            resume: args.resume,
            keep_going: args.keep_going,
        };
        return crate::vm::matrix::run(&run, &matrix, shard);
    }
    args.guest.refuse_without_vm(args.vm)?;
    // A dry run of a guest matrix leaves the scheduler names to the guest, like the run.
    let plans = matrix.plans(args.vm)?;
    let order: Vec<Planned> = run_order(&plans, matrix.file.order_seed)
        .into_iter()
        .enumerate()
        .filter(|(position, _)| shard.owns(*position))
        .map(|(_, planned)| planned)
        .collect();
    if args.dry_run {
        for (position, planned) in order.iter().enumerate() {
            println!("{:>4}  {}", position + 1, planned.id);
        }
        crate::say!(
            "{} trial(s) in shard {shard} of {}",
            order.len(),
            args.matrix.display()
        );
        return Ok(0);
    }
    let mut trials = resume_state(&out, &matrix, shard, &order)?;
    std::fs::create_dir_all(&out.dir).with_context(|| format!("creating {}", out.dir.display()))?;
    export::write_atomically(&out.dir.join(MATRIX_COPY), matrix.text.as_bytes())?;
    let done: BTreeSet<String> = trials.iter().map(|t| t.trial_id.clone()).collect();
    let todo: Vec<&Planned> = order.iter().filter(|p| !done.contains(&p.id)).collect();
    let mut info = RunInfo {
        matrix_sha256: matrix.sha256.clone(),
        shard,
        trials_planned: order.len(),
        trials_done: trials.len(),
        merged_shards: Vec::new(),
        git_rev: crate::GIT_REV.to_string(),
    };
    out.write(&trials, &info)?;
    if !done.is_empty() {
        crate::say!(
            "resuming {}: {} trial(s) done, {} to run",
            out.dir.display(),
            done.len(),
            todo.len()
        );
    }
    let uses_audit = matrix.file.collectors.iter().any(|c| {
        CollectorKind::parse(c)
            .map(|k| k == CollectorKind::Auditd)
            .unwrap_or(false)
    });
    let mut bench = Bench::open(uses_audit)?;
    let progress = Progress::new(todo.len());
    let failures_path = out.dir.join(FAILURES_FILE);
    let mut failures: Vec<Failure> = Vec::new();
    for (index, planned) in todo.iter().enumerate() {
        let plan = &plans[planned.plan];
        crate::say!("{} {}", progress.line(index), planned.id);
        let started_at = crate::results::trial::now_rfc3339();
        match bench.run(plan, &planned.spec) {
            Ok(trial) => {
                trials.push(trial);
                info.trials_done = trials.len();
                out.write(&trials, &info)?;
            }
            // A trial that failed by itself (a scheduler kicked out by the watchdog, accounting
            // that does not add up) is set aside; an interrupt still ends the run.
            Err(err) if args.keep_going && !interrupted(&err) => {
                crate::say!(
                    "  trial {} failed: {err:#}; going on (--keep-going)",
                    planned.id
                );
                failures.push(Failure {
                    trial_id: planned.id.clone(),
                    error: format!("{err:#}"),
                    started_at,
                });
                let lines: Vec<String> = failures
                    .iter()
                    .map(|f| serde_json::to_string(f).expect("a failure serializes"))
                    .collect();
                export::write_atomically(&failures_path, (lines.join("\n") + "\n").as_bytes())?;
            }
            Err(err) => {
                return Err(err
                    .context(format!("trial {}", planned.id))
                    .context(format!(
                        "{} finished trial(s) are in {}; rerun with --resume to continue",
                        trials.len(),
                        out.dir.display()
                    )))
            }
        }
    }
    drop(bench);
    if failures.is_empty() && failures_path.exists() {
        // Failures of an earlier run that this one completed are no longer true.
        std::fs::remove_file(&failures_path)
            .with_context(|| format!("removing {}", failures_path.display()))?;
    }
    println!("{}", table::render(&trials));
    println!(
        "wrote {} and {} ({} trials, {})",
        out.trials_path().display(),
        out.dir.join(CSV_FILE).display(),
        trials.len(),
        progress.elapsed()
    );
    if !failures.is_empty() {
        crate::say!(
            "{} trial(s) failed (see {}); rerun with --resume to retry them",
            failures.len(),
            failures_path.display()
        );
        return Ok(1);
    }
    Ok(0)
}

/// A trial `run --keep-going` set aside, in `OUT/failures.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Failure {
    pub trial_id: String,
    pub error: String,
    pub started_at: String,
}

const FAILURES_FILE: &str = "failures.jsonl";

fn interrupted(err: &anyhow::Error) -> bool {
    err.downcast_ref::<crate::error::Interrupted>().is_some()
        || crate::signals::received().is_some()
}

/// The trials already in `out` (which `run` resumes), checked against this run: an error if
/// they are another matrix's or shard's.
fn resume_state(
    out: &RunDir,
    matrix: &Matrix,
    shard: Shard,
    order: &[Planned],
) -> Result<Vec<Trial>> {
    if !out.has_trials() {
        return Ok(Vec::new());
    }
    let info = out.read_info()?;
    if info.matrix_sha256 != matrix.sha256 {
        return Err(InputError(format!(
            "{} was run with another matrix (see its {MATRIX_COPY}); resume it with that file, \
             or start a new --out for the changed matrix",
            out.dir.display()
        ))
        .into());
    }
    if info.shard != shard {
        return Err(InputError(format!(
            "{} holds shard {} but this is shard {shard}; resume each shard in its own \
             directory",
            out.dir.display(),
            info.shard
        ))
        .into());
    }
    let trials = out.read_trials()?;
    let planned: BTreeSet<&str> = order.iter().map(|p| p.id.as_str()).collect();
    if let Some(stray) = trials
        .iter()
        .find(|t| !planned.contains(t.trial_id.as_str()))
    {
        return Err(InputError(format!(
            "{} holds trial {:?}, which this matrix and shard do not plan; it is not this run's \
             directory",
            out.dir.display(),
            stray.trial_id
        ))
        .into());
    }
    Ok(trials)
}

/// The matrix-level progress: a bar, the count and an ETA from the mean trial time so far.
struct Progress {
    total: usize,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            started: Instant::now(),
        }
    }

    fn line(&self, done: usize) -> String {
        progress_line(done, self.total, self.started.elapsed())
    }

    fn elapsed(&self) -> String {
        format_duration(self.started.elapsed())
    }
}

/// `[=====>        ] 5/20, 3m10s elapsed, ETA 9m30s`: `done` of `total` trials finished.
pub fn progress_line(done: usize, total: usize, elapsed: Duration) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let bar: String = (0..WIDTH)
        .map(|i| match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        })
        .collect();
    let eta = if done == 0 {
        "ETA after the first trial".to_string()
    } else {
        let per_trial = elapsed.as_secs_f64() / done as f64;
        format!(
            "ETA {}",
            format_duration(Duration::from_secs_f64(per_trial * (total - done) as f64))
        )
    };
    format!(
        "[{bar}] {done}/{total}, {} elapsed, {eta}:",
        format_duration(elapsed)
    )
}

fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// `aegis-bench merge --out DIR PART...`.
pub fn merge(args: &MergeArgs) -> Result<()> {
    let mut first: Option<(PathBuf, RunInfo, String)> = None;
    let mut shards: Vec<Shard> = Vec::new();
    let mut trials: Vec<Trial> = Vec::new();
    let mut planned = 0;
    for part in &args.parts {
        let dir = RunDir { dir: part.clone() };
        if !dir.has_trials() {
            return Err(InputError(format!(
                "{} has no {}: give the --out directories of `run --shard` runs",
                part.display(),
                jsonl::FILE_NAME
            ))
            .into());
        }
        let info = dir.read_info()?;
        let matrix_text = std::fs::read_to_string(part.join(MATRIX_COPY))
            .with_context(|| format!("reading {}", part.join(MATRIX_COPY).display()))?;
        let part_shards = if info.merged_shards.is_empty() {
            vec![info.shard]
        } else {
            info.merged_shards.clone()
        };
        match &first {
            None => first = Some((part.clone(), info.clone(), matrix_text)),
            Some((first_dir, first_info, _)) => {
                if info.matrix_sha256 != first_info.matrix_sha256 {
                    return Err(InputError(format!(
                        "{} and {} ran different matrices; merge only the shards of one matrix",
                        first_dir.display(),
                        part.display()
                    ))
                    .into());
                }
            }
        }
        if let Some(other) = shards.iter().find(|s| s.count != part_shards[0].count) {
            return Err(InputError(format!(
                "{} holds shard {} but another part holds shard {other}: the parts split the \
                 matrix differently",
                part.display(),
                part_shards[0]
            ))
            .into());
        }
        for shard in part_shards {
            if shards.contains(&shard) {
                return Err(InputError(format!(
                    "shard {shard} is given twice (again in {})",
                    part.display()
                ))
                .into());
            }
            shards.push(shard);
        }
        if info.trials_done < info.trials_planned {
            crate::say!(
                "warning: {} is incomplete: {} of {} trials (finish it with `run --resume`)",
                part.display(),
                info.trials_done,
                info.trials_planned
            );
        }
        planned += info.trials_planned;
        let part_trials = dir.read_trials()?;
        for trial in part_trials {
            if trials.iter().any(|t| t.trial_id == trial.trial_id) {
                return Err(InputError(format!(
                    "trial {} is in two parts (again in {}); were the shards given the same \
                     --shard?",
                    trial.trial_id,
                    part.display()
                ))
                .into());
            }
            trials.push(trial);
        }
    }
    let (_, first_info, matrix_text) = first.expect("clap requires at least one part");
    shards.sort_by_key(|s| s.index);
    let count = shards[0].count;
    let missing: Vec<String> = (1..=count)
        .filter(|i| !shards.iter().any(|s| s.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        crate::say!(
            "warning: shard(s) {} missing; the merged run is partial",
            missing.join(", ")
        );
    }
    trials.sort_by(|a, b| (a.repetition, &a.trial_id).cmp(&(b.repetition, &b.trial_id)));
    let out = RunDir {
        dir: args.out.clone(),
    };
    if out.has_trials() {
        return Err(InputError(format!(
            "{} already holds trials; merge into a new directory",
            out.dir.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&out.dir).with_context(|| format!("creating {}", out.dir.display()))?;
    export::write_atomically(&out.dir.join(MATRIX_COPY), matrix_text.as_bytes())?;
    let info = RunInfo {
        matrix_sha256: first_info.matrix_sha256,
        shard: Shard::WHOLE,
        trials_planned: planned,
        trials_done: trials.len(),
        merged_shards: shards,
        git_rev: crate::GIT_REV.to_string(),
    };
    out.write(&trials, &info)?;
    println!(
        "merged {} part(s), {} trial(s), into {}",
        args.parts.len(),
        trials.len(),
        out.dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    const SMALL: &str = r#"
duration_s = 2
repetitions = 3
schedulers = ["eevdf", { name = "eevdf", label = "eevdf:other", scx_args = "--x" }]

[[attack]]
flood = "openat"
threads = [1, 4]
ring_size = ["16KiB", "64KiB"]
"#;

    fn ids(plans: &[Plan], seed: u64) -> Vec<String> {
        run_order(plans, seed).into_iter().map(|p| p.id).collect()
    }

    #[test]
    fn the_order_is_repetition_major_fixed_by_the_seed_and_covers_every_cell() {
        let matrix = Matrix::parse(SMALL).unwrap();
        let plans = matrix.plans(false).unwrap();
        let order = ids(&plans, 0);
        // 2 scheduler entries x 2 thread counts x 2 rings x 3 repetitions.
        assert_eq!(order.len(), 24);
        assert_eq!(
            order.iter().collect::<BTreeSet<_>>().len(),
            24,
            "ids are unique"
        );
        for (position, id) in order.iter().enumerate() {
            assert!(
                id.ends_with(&format!("/rep{}", position / 8)),
                "{id} at {position}"
            );
        }
        assert!(order.contains(&"openat/eevdf:other/builtin/ring16KiB/x4/none/rep2".into()));
        assert_eq!(order, ids(&plans, 0), "the same seed gives the same order");
        assert_ne!(order, ids(&plans, 1), "another seed gives another order");
        let cells = |rep: usize| -> Vec<String> {
            order[rep * 8..rep * 8 + 8]
                .iter()
                .map(|id| id.rsplit_once('/').unwrap().0.to_string())
                .collect()
        };
        assert_ne!(
            cells(0),
            cells(1),
            "each repetition runs its cells in its own order"
        );
    }

    #[test]
    fn shards_split_the_order_into_disjoint_parts_that_cover_it() {
        let plans = Matrix::parse(SMALL).unwrap().plans(false).unwrap();
        let order = ids(&plans, 0);
        let mut seen = Vec::new();
        for index in 1..=5 {
            let shard = Shard { index, count: 5 };
            let part: Vec<&String> = order
                .iter()
                .enumerate()
                .filter(|(position, _)| shard.owns(*position))
                .map(|(_, id)| id)
                .collect();
            assert!(
                part.len() == 4 || part.len() == 5,
                "{shard}: {}",
                part.len()
            );
            seen.extend(part);
        }
        seen.sort();
        let mut all: Vec<&String> = order.iter().collect();
        all.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn shard_text_is_checked() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            let InputError(why) = Shard::parse(bad).unwrap_err();
            assert!(why.contains("e.g. --shard 2/3"), "{bad}: {why}");
        }
    }

    #[test]
    fn bad_matrices_name_the_problem() {
        let cases = [
            (SMALL.replace("repetitions", "repetitoins"), "repetitoins"),
            (SMALL.replace("\"16KiB\", ", "\"16 apples\", "), "16 apples"),
            (SMALL.replace("openat", "opnat"), "opnat"),
            (
                SMALL.replace("label = \"eevdf:other\", ", ""),
                "appears twice",
            ),
            (
                format!("{SMALL}\n[[attack]]\nflood = \"openat\"\nthreads = [2]\n"),
                "distinct `name`s",
            ),
            (
                "duration_s = 1\nschedulers = [\"eevdf\"]\nattack = []\n".into(),
                "[[attack]]",
            ),
            (
                SMALL.replace("duration_s = 2", "duration_s = -1"),
                "--duration",
            ),
        ];
        for (text, wanted) in cases {
            let why = match Matrix::parse(&text).and_then(|m| m.plans(false).map(|_| ())) {
                Ok(()) => panic!("accepted a matrix that should fail with {wanted}"),
                Err(InputError(why)) => why,
            };
            assert!(why.contains(wanted), "wanted {wanted:?} in: {why}");
        }
    }

    #[test]
    fn progress_shows_the_bar_and_an_eta() {
        let line = progress_line(5, 20, Duration::from_secs(100));
        assert_eq!(
            line,
            "[=====>              ] 5/20, 1m40s elapsed, ETA 5m00s:"
        );
        assert!(progress_line(0, 3, Duration::ZERO).contains("ETA after the first trial"));
        assert!(progress_line(3, 3, Duration::from_secs(4000)).contains("1h06m elapsed, ETA 0s"));
    }

    fn shard_dir(root: &Path, shard: Shard, trial_ids: &[&str], sha: &str) -> PathBuf {
        let dir = root.join(format!("part{}", shard.index));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MATRIX_COPY), SMALL).unwrap();
        let trials: Vec<Trial> = trial_ids
            .iter()
            .map(|id| {
                let mut trial = example_trial("eevdf", 1, 10.0, None);
                trial.trial_id = id.to_string();
                trial.repetition = id.rsplit_once("/rep").unwrap().1.parse().unwrap();
                trial
            })
            .collect();
        let info = RunInfo {
            matrix_sha256: sha.into(),
            shard,
            trials_planned: trial_ids.len(),
            trials_done: trial_ids.len(),
            merged_shards: Vec::new(),
            git_rev: "r".into(),
        };
        RunDir { dir: dir.clone() }.write(&trials, &info).unwrap();
        dir
    }

    #[test]
    fn merge_joins_shards_and_refuses_overlaps_and_other_matrices() {
        let root = tempfile::tempdir().unwrap();
        let a = shard_dir(
            root.path(),
            Shard { index: 1, count: 2 },
            &["x/rep0", "y/rep1"],
            "s",
        );
        let b = shard_dir(root.path(), Shard { index: 2, count: 2 }, &["z/rep0"], "s");
        let out = root.path().join("merged");
        merge(&MergeArgs {
            out: out.clone(),
            parts: vec![a.clone(), b.clone()],
        })
        .unwrap();
        let merged = RunDir { dir: out.clone() };
        let ids: Vec<String> = merged
            .read_trials()
            .unwrap()
            .into_iter()
            .map(|t| t.trial_id)
            .collect();
        assert_eq!(ids, ["x/rep0", "z/rep0", "y/rep1"]);
        let info = merged.read_info().unwrap();
        assert_eq!((info.trials_planned, info.trials_done), (3, 3));
        assert_eq!(info.merged_shards.len(), 2);

        let refused = |parts: Vec<PathBuf>, wanted: &str| {
            let err = merge(&MergeArgs {
                out: root.path().join(format!("refused-{}", wanted.len())),
                parts,
            })
            .unwrap_err();
            assert!(format!("{err:#}").contains(wanted), "{err:#}");
        };
        refused(vec![a.clone(), a.clone()], "given twice");
        let other = shard_dir(root.path(), Shard { index: 3, count: 3 }, &["q/rep0"], "s");
        refused(vec![a.clone(), other], "split the matrix differently");
        let foreign = shard_dir(root.path(), Shard { index: 4, count: 4 }, &["w/rep0"], "t");
        refused(vec![a.clone(), foreign], "different matrices");
        let err = merge(&MergeArgs {
            out: out.clone(),
            parts: vec![a, b],
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("already holds trials"),
            "{err:#}"
        );
    }
}
