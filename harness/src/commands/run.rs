//! `aegis-bench run --matrix FILE.toml`: a matrix's trials in run order (see
//! [`crate::run::matrix`]), on this host or, with `--vm`, in a guest.
//!
//! Each finished trial is written at once to `OUT/trials.jsonl` and `OUT/trials.csv` (both
//! replaced atomically), beside a copy of the matrix and `run.json` (matrix hash, shard, trials
//! planned and done). A killed run keeps every finished trial; `--resume` reruns none of them,
//! and refuses a different matrix or shard. With `--keep-going` a failed trial is set aside in
//! `OUT/failures.jsonl` and the run goes on.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;
use crate::collector::CollectorKind;
use crate::error::InputError;
use crate::export::{self, csv::CsvExporter, jsonl, table, Exporter};
use crate::results::trial::{Failure, Trial};
use crate::run::matrix::{run_order, Matrix, Planned, Shard};
use crate::run::{Bench, Plan, TrialSink, TrialSpec};
use crate::vm;

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

pub(super) const MATRIX_COPY: &str = "matrix.toml";
const RUN_INFO: &str = "run.json";
const CSV_FILE: &str = "trials.csv";

/// The files of a run directory.
pub(super) struct RunDir {
    pub(super) dir: PathBuf,
}

impl RunDir {
    pub(super) fn trials_path(&self) -> PathBuf {
        self.dir.join(jsonl::FILE_NAME)
    }

    /// Whether an earlier run recorded a trial here: an empty `trials.jsonl` (a first run that
    /// failed before its first trial) holds none and does not ask for `--resume`.
    pub(super) fn has_trials(&self) -> bool {
        std::fs::metadata(self.trials_path()).is_ok_and(|meta| meta.len() > 0)
    }

    pub(super) fn read_trials(&self) -> Result<Vec<Trial>> {
        if !self.has_trials() {
            return Ok(Vec::new());
        }
        export::json::read(&self.trials_path())
    }

    pub(super) fn read_info(&self) -> Result<RunInfo> {
        let path = self.dir.join(RUN_INFO);
        let text = crate::files::read_input(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes trials, CSV and run.json, each atomically; trials first, so run.json never
    /// claims more than the trial file holds.
    pub(super) fn write(&self, trials: &[Trial], info: &RunInfo) -> Result<()> {
        let jsonl = jsonl::JsonLinesExporter::new(self.trials_path());
        crate::files::write_atomically(jsonl.path(), &jsonl.serialize(trials)?)?;
        let csv = CsvExporter::new(self.dir.join(CSV_FILE));
        crate::files::write_atomically(csv.path(), &csv.serialize(trials)?)?;
        let mut bytes = serde_json::to_vec_pretty(info)?;
        bytes.push(b'\n');
        crate::files::write_atomically(&self.dir.join(RUN_INFO), &bytes)
    }
}

/// `aegis-bench run`. Returns the exit status (a guest's, with `--vm`).
pub fn run(args: &RunArgs) -> Result<i32> {
    let matrix = Matrix::read(&args.matrix)?;
    if args.eaudit_dir.is_some() && !args.vm {
        return Err(InputError(
            "--eaudit-dir only applies to guest runs (eAudit runs in a guest's Debian \
             userland): add --vm"
                .into(),
        )
        .into());
    }
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
    if !args.dry_run {
        refuse_dirty(crate::GIT_REV, args.allow_dirty)?;
    }
    if args.vm && !args.dry_run {
        let run = vm::matrix::GuestMatrixRun {
            guest: &args.guest,
            out: &args.out,
            resume: args.resume,
            keep_going: args.keep_going,
            eaudit_dir: args.eaudit_dir.as_deref(),
        };
        return vm::matrix::run(&run, &matrix, shard);
    }
    args.guest.refuse_without_vm(args.vm)?;
    let shard_boot = match host_boot_shard(matrix.file.boots, shard, args.boot) {
        _ if args.vm => None,
        Ok(boot) => boot,
        Err(_) if args.dry_run => None,
        Err(err) => return Err(err.into()),
    };
    // A dry run of a guest matrix leaves the scheduler names to the guest, like the run.
    let plans = matrix.plans(args.vm)?;
    let order: Vec<Planned> = run_order(&plans, matrix.file.order_seed)
        .into_iter()
        .enumerate()
        .filter(|(position, planned)| match shard_boot {
            Some(boot) => planned.spec.boot == boot,
            None => shard.owns(*position),
        })
        .map(|(_, planned)| planned)
        .collect();
    if args.dry_run {
        for (position, planned) in order.iter().enumerate() {
            crate::out!("{:>4}  {}", position + 1, planned.id);
        }
        crate::say!(
            "{} trial(s) in shard {shard} of {}",
            order.len(),
            args.matrix.display()
        );
        return Ok(0);
    }
    run_on_host(
        args.keep_going,
        &matrix,
        shard,
        &plans,
        &order,
        args.boot,
        &out,
    )
}

/// On a host a machine is one boot, so a matrix of `boots = N` runs as N shards, one per
/// machine: `--shard i/N` runs boot i − 1 whole (every cell of it, so a within-boot ratio's
/// control runs beside what it divides), and `merge` joins them. The boot to run, or `None`
/// for the usual shards (one boot, or the guest's `--boot B`).
fn host_boot_shard(boots: u32, shard: Shard, boot: Option<u32>) -> Result<Option<u32>, InputError> {
    if boot.is_some() || boots <= 1 {
        return Ok(None);
    }
    if shard.count != boots {
        return Err(InputError(format!(
            "{boots} boots need --vm (each boot is a fresh guest; this machine cannot reboot \
             between them); on bare metal run one boot per machine with --shard i/{boots} (boot \
             i, whole) and join them with `aegis-bench merge`"
        )));
    }
    Ok(Some(shard.index - 1))
}

/// Results are only as reproducible as their revision: a `-dirty` one names no commit.
fn refuse_dirty(git_rev: &str, allow_dirty: bool) -> Result<(), InputError> {
    if git_rev.ends_with("-dirty") && !allow_dirty {
        return Err(InputError(format!(
            "this aegis-bench was built from a tree with uncommitted changes ({git_rev}), so \
             no commit reproduces its results: commit and rebuild, or add --allow-dirty for a \
             run you will not publish"
        )));
    }
    Ok(())
}

/// Runs this shard's trials (of `boot` only, if given) that `out` does not hold yet, writing
/// `out` after each one.
fn run_on_host(
    keep_going: bool,
    matrix: &Matrix,
    shard: Shard,
    plans: &[Plan],
    order: &[Planned],
    boot: Option<u32>,
    out: &RunDir,
) -> Result<i32> {
    let mut trials = resume_state(out, matrix, shard, order)?;
    std::fs::create_dir_all(&out.dir).with_context(|| format!("creating {}", out.dir.display()))?;
    crate::files::write_atomically(&out.dir.join(MATRIX_COPY), matrix.text.as_bytes())?;
    let done: BTreeSet<String> = trials.iter().map(|t| t.id.trial_id.clone()).collect();
    let todo: Vec<&Planned> = order
        .iter()
        .filter(|p| !done.contains(&p.id) && boot.is_none_or(|b| p.spec.boot == b))
        .collect();
    let info = RunInfo {
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
    // Failures of trials this run does not retry stay true (another boot's, in a run of
    // several boots); those it retries are decided again.
    let retried: BTreeSet<&str> = todo.iter().map(|p| p.id.as_str()).collect();
    let earlier: Vec<Failure> = Failure::read_all(&out.dir.join(FAILURES_FILE))?
        .into_iter()
        .filter(|f| !retried.contains(f.trial_id.as_str()) && !done.contains(&f.trial_id))
        .collect();
    let uses_audit = plans
        .iter()
        .any(|plan| plan.collectors.contains(&CollectorKind::Auditd));
    let mut bench = Bench::open(uses_audit)?;
    let mut sink = MatrixSink {
        out,
        info,
        progress: Progress::new(todo.len()),
        keep_going,
        new_failures: 0,
        failures: earlier,
        started_at: String::new(),
    };
    let jobs: Vec<(&Plan, &TrialSpec)> = todo
        .iter()
        .map(|planned| (&plans[planned.plan], &planned.spec))
        .collect();
    bench.run_all(&jobs, &mut trials, &mut sink)?;
    drop(bench);
    sink.finish(&trials)
}

/// `run --matrix`'s trials: a progress bar per trial, the run directory rewritten after each
/// one, and failures set aside with `--keep-going`.
struct MatrixSink<'a> {
    out: &'a RunDir,
    info: RunInfo,
    progress: Progress,
    keep_going: bool,
    /// Every failure the directory lists: earlier runs' that still hold, and this run's.
    failures: Vec<Failure>,
    new_failures: usize,
    /// When the trial being run started.
    started_at: String,
}

impl TrialSink for MatrixSink<'_> {
    fn announce(&mut self, index: usize, _total: usize, plan: &Plan, spec: &TrialSpec) -> String {
        self.started_at = crate::results::trial::now_rfc3339();
        format!("{} {}", self.progress.line(index), plan.trial_id(spec))
    }

    fn export(&mut self, trials: &[Trial]) -> Result<()> {
        self.info.trials_done = trials.len();
        self.out.write(trials, &self.info)
    }

    fn interrupted(&mut self, err: anyhow::Error, done: usize) -> anyhow::Error {
        err.context(format!(
            "{done} finished trial(s) are in {}; rerun with --resume to continue",
            self.out.dir.display()
        ))
    }

    fn failed(
        &mut self,
        _index: usize,
        plan: &Plan,
        spec: &TrialSpec,
        err: anyhow::Error,
        done: usize,
    ) -> Result<()> {
        let trial_id = plan.trial_id(spec);
        // A trial that failed by itself (a scheduler kicked out by the watchdog, accounting
        // that does not add up) is set aside; an interrupt still ends the run.
        if !self.keep_going || interrupted(&err) {
            let err = err.context(format!("trial {trial_id}"));
            return Err(self.interrupted(err, done));
        }
        crate::say!("  trial {trial_id} failed: {err:#}; going on (--keep-going)");
        self.failures.push(Failure {
            trial_id,
            error: format!("{err:#}"),
            started_at: std::mem::take(&mut self.started_at),
        });
        self.new_failures += 1;
        self.write_failures()
    }
}

impl MatrixSink<'_> {
    fn failures_path(&self) -> PathBuf {
        self.out.dir.join(FAILURES_FILE)
    }

    /// `failures.jsonl` as `failures` says, or no file when there are none.
    fn write_failures(&self) -> Result<()> {
        let path = self.failures_path();
        if self.failures.is_empty() {
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
            return Ok(());
        }
        let lines: Vec<String> = self
            .failures
            .iter()
            .map(|f| serde_json::to_string(f).expect("a failure serializes"))
            .collect();
        crate::files::write_atomically(&path, (lines.join("\n") + "\n").as_bytes())
    }

    /// The end of the run: the table, where the trials are, and the exit status (1 when
    /// trials were set aside).
    fn finish(self, trials: &[Trial]) -> Result<i32> {
        // Failures of an earlier run that this one retried are gone from the list.
        self.write_failures()?;
        let failures_path = self.failures_path();
        crate::out!("{}", table::render(trials));
        crate::out!(
            "wrote {} and {} ({} trials, {})",
            self.out.trials_path().display(),
            self.out.dir.join(CSV_FILE).display(),
            trials.len(),
            self.progress.elapsed()
        );
        if !self.failures.is_empty() {
            crate::say!(
                "{} trial(s) failed in this run, {} in all (see {}); rerun with --resume to \
                 retry them",
                self.new_failures,
                self.failures.len(),
                failures_path.display()
            );
            return Ok(1);
        }
        Ok(0)
    }
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
        .find(|t| !planned.contains(t.id.trial_id.as_str()))
    {
        return Err(InputError(format!(
            "{} holds trial {:?}, which this matrix and shard do not plan; it is not this run's \
             directory",
            out.dir.display(),
            stray.id.trial_id
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
fn progress_line(done: usize, total: usize, elapsed: Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dirty_revision_is_refused_unless_allowed() {
        let InputError(why) = refuse_dirty("3c5e916-dirty", false).unwrap_err();
        assert!(why.contains("--allow-dirty"), "{why}");
        assert!(refuse_dirty("3c5e916-dirty", true).is_ok());
        assert!(refuse_dirty("3c5e916", false).is_ok());
    }

    #[test]
    fn on_a_host_each_shard_of_a_matrix_of_boots_is_one_boot() {
        let shard = |index, count| Shard { index, count };
        assert_eq!(host_boot_shard(3, shard(2, 3), None).unwrap(), Some(1));
        assert_eq!(host_boot_shard(1, shard(2, 3), None).unwrap(), None);
        // The guest's --boot: the usual round-robin shards within that boot.
        assert_eq!(host_boot_shard(3, shard(1, 2), Some(0)).unwrap(), None);
        let InputError(why) = host_boot_shard(3, Shard::WHOLE, None).unwrap_err();
        assert!(why.contains("--shard i/3"), "{why}");
        assert!(host_boot_shard(3, shard(1, 2), None).is_err());
    }

    #[test]
    fn an_empty_trials_file_asks_for_no_resume() {
        let dir = tempfile::tempdir().unwrap();
        let out = RunDir {
            dir: dir.path().to_path_buf(),
        };
        assert!(!out.has_trials());
        std::fs::write(out.trials_path(), "").unwrap();
        assert!(
            !out.has_trials(),
            "a run that failed before its first trial"
        );
        std::fs::write(out.trials_path(), "{}\n").unwrap();
        assert!(out.has_trials());
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
}
