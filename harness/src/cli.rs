//! The command line. Flag and subcommand names are an interface scripts rely on: add, don't
//! rename.

use std::path::PathBuf;

use attacks::{Evade, FloodKind};
use clap::{Args, Parser, Subcommand};

use crate::results::scope::TraceScope;
use crate::run::plan::{
    DEFAULT_AUDIT_BACKLOG_LIMIT, DEFAULT_AUDIT_BACKLOG_WAIT_MS, DEFAULT_DURATION_S,
    DEFAULT_RING_SIZE, DEFAULT_THREADS,
};
use crate::vm::args::{GuestArgs, VmArgs};

#[derive(Debug, Parser)]
#[command(
    name = "aegis-bench",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("AEGIS_GIT_REV"), ")"),
    about = "Does a provenance collector record every event while an attacker floods the kernel?",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Flood syscalls from a cgroup of their own and measure each collector's loss against
    /// ground truth, under each scheduler.
    Attack(AttackArgs),
    /// Say what this machine can run: one line per capability, "ok" or the reason and the fix.
    Doctor,
    /// Print a provenance log written by the built-in collector.
    Log(LogArgs),
    /// Run `aegis-bench ARGS` in a QEMU guest with a sched_ext (or CFS) kernel and exit with
    /// its status, e.g. `aegis-bench vm -- doctor`.
    Vm(VmArgs),
    /// Measure the simulator's parameters on this machine (syscall cost per flood kind,
    /// collector per-event and per-wakeup cost, wakeup latency) and write them to a file.
    Calibrate(CalibrateArgs),
    /// The simulator: `sim validate` replays real host runs (EEVDF, built-in collector, openat,
    /// 64KiB ring) in the simulator and reports real and simulated loss per intensity; `sim
    /// evaluate` compares the simulated schedulers with a bound and a fair-share reference.
    Sim(SimArgs),
    /// Train the Aegis Q-network in the simulator (DQN) and write the model, with its
    /// fixed-point export and learning curve, for scx_aegis to load.
    Train(TrainArgs),
    /// Draw figures (PNG and SVG) and a markdown report from result files, without running
    /// anything: loss against attack intensity per scheduler and collector, and the workload
    /// throughput kept beside the attack.
    Figures(FiguresArgs),
    /// Run an experiment matrix from a TOML file (schedulers x collectors x attacks x
    /// workloads x repetitions), interleaved, each finished trial appended atomically to
    /// OUT/trials.jsonl and OUT/trials.csv; `--resume` continues a killed run, `--shard i/n`
    /// runs one part of it.
    Run(RunArgs),
    /// Join the output directories of the shards of one matrix (`run --shard i/n`) into one.
    Merge(MergeArgs),
    /// Compare a run's trials with a baseline's, metric by metric, with a statistical test over
    /// repetitions; writes a markdown report and exits with status 1 on a regression.
    Gate(GateArgs),
    /// Regenerate the result tables in markdown files (README.md, docs/) from the result files
    /// their `<!-- report: ... -->` blocks name; `--check` only compares and exits 1 on any
    /// difference.
    Report(ReportArgs),
    /// (internal) The built-in collector process.
    #[command(hide = true)]
    Collect(CollectArgs),
    /// (internal) The attack process; joins the attack's cgroup itself.
    #[command(hide = true)]
    AttackWorker(WorkerArgs),
    /// (internal) A standard workload; joins the workload's cgroup itself.
    #[command(hide = true)]
    WorkloadWorker(WorkloadWorkerArgs),
}

#[derive(Clone, Debug, Args)]
pub struct AttackArgs {
    /// Syscall pattern to flood with: openat, open-read-close, rdwr, devnull, execve, fork,
    /// connect, stat.
    #[arg(
        long,
        value_name = "KIND",
        default_value = "openat",
        conflicts_with = "cmd"
    )]
    pub flood: FloodKind,
    /// Flood threads; a comma list runs one trial per value (e.g. 1,4,8).
    #[arg(long, value_name = "N", value_delimiter = ',', default_values_t = [DEFAULT_THREADS])]
    pub threads: Vec<u32>,
    /// Seconds each flood runs (at most, with --count).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_DURATION_S)]
    pub duration: f64,
    /// Stop after N iterations in total, split across the threads.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Pace the flood to this many iterations per second in total.
    #[arg(long, value_name = "PER_S")]
    pub rate: Option<u64>,
    /// An adaptive attacker: spin:US (spin US microseconds between iterations), spread:N
    /// (short-lived processes of N iterations each) or hogs:N (N CPU-spinning threads beside
    /// the flood); see docs/attack.md.
    #[arg(
        long,
        value_name = "EVADER",
        default_value = "none",
        conflicts_with = "cmd"
    )]
    pub evade: Evade,
    /// Collector ring buffer size (power of two, >= 4KiB), e.g. 64KiB, 8MiB; a comma list
    /// runs one trial per value.
    #[arg(
        long,
        value_name = "SIZE",
        value_delimiter = ',',
        default_value = DEFAULT_RING_SIZE
    )]
    pub ring_size: Vec<String>,
    /// Collectors to compare, comma separated: builtin, auditd, sysdig, eaudit.
    #[arg(
        long,
        value_name = "NAME[,NAME..]",
        value_delimiter = ',',
        default_value = "builtin"
    )]
    pub collector: Vec<String>,
    /// Schedulers to compare, comma separated (default: this kernel's fair class, eevdf or cfs).
    #[arg(long, value_name = "NAME[,NAME..]", value_delimiter = ',')]
    pub scheduler: Vec<String>,
    /// Extra arguments for the sched_ext scheduler binaries (scx_aegis, scx_rustland), as one
    /// shell-quoted string, e.g. --scx-args '--no-model --action 3'.
    #[arg(long, value_name = "\"ARGS\"", allow_hyphen_values = true)]
    pub scx_args: Option<String>,
    /// Run this program as the producer instead of a flood ("PROG ARGS", shell quoting).
    #[arg(long, value_name = "\"PROG ARGS\"")]
    pub cmd: Option<String>,
    /// Run a standard workload beside each attack, in a cgroup of its own, and once alone
    /// per scheduler for as long (the no-attack baseline), and report the share of its
    /// throughput it kept: stress-ng-cpu, hackbench, sysbench-cpu, nginx-wrk, redis, compile.
    /// A comma list runs one trial per workload. Needs a whole number of seconds for
    /// --duration.
    #[arg(long, value_name = "NAME[,NAME..]", value_delimiter = ',')]
    pub workload: Vec<String>,
    /// Read every attack, workload and collector thread's /proc schedstat every 5 ms during
    /// each trial and report the longest wait on a run queue seen from user space (an upper
    /// bound, accurate to one sampling gap), beside the scheduler's own statistics. Costs a
    /// little CPU, so it is off unless asked for.
    #[arg(long)]
    pub watch_run_delay: bool,
    /// What the built-in collectors trace and ground truth accounts for: attack (the attack's
    /// cgroup) or all (every task on the machine but the collector, counted by group: the
    /// attack, the workload, the rest); see docs/attack.md.
    #[arg(long, value_name = "SCOPE", default_value = "attack")]
    pub trace_scope: TraceScope,
    /// Repeat every combination this many times, interleaved.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repetitions: u32,
    /// With --vm: boot N independent guests, each running every trial (all repetitions) in
    /// its own seeded random order; trials record their boot (the unit of replication).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub boots: u32,
    /// (internal) Run only boot B (0-based) of --boots: what the guest runner asks a guest.
    #[arg(long, value_name = "B", hide = true)]
    pub boot: Option<u32>,
    /// Run this attack inside a QEMU guest (see `aegis-bench vm`); --json, --csv and
    /// --keep-logs are written on the host.
    #[arg(long)]
    pub vm: bool,
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Write the trials as a JSON list to FILE (rewritten atomically after each trial).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the trials as CSV to FILE (rewritten atomically after each trial).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Keep each trial's provenance log in DIR (default: deleted after the canary lookup).
    #[arg(long, value_name = "DIR")]
    pub keep_logs: Option<PathBuf>,
    /// auditd: the kernel's audit backlog limit in records (auditctl -b; 0 = unlimited); a
    /// comma list runs one auditd trial per value.
    #[arg(
        long,
        value_name = "N",
        value_delimiter = ',',
        default_values_t = [DEFAULT_AUDIT_BACKLOG_LIMIT]
    )]
    pub audit_backlog_limit: Vec<u32>,
    /// auditd: how long a task waits for room in a full backlog before its record is lost, in
    /// milliseconds (auditctl --backlog_wait_time, converted to jiffies; 0 = never wait); a
    /// comma list runs one auditd trial per value.
    #[arg(
        long,
        value_name = "MS",
        value_delimiter = ',',
        default_values_t = [DEFAULT_AUDIT_BACKLOG_WAIT_MS]
    )]
    pub audit_backlog_wait_time: Vec<u64>,
    /// eaudit: an eAudit checkout (default: $AEGIS_EAUDIT_DIR, else
    /// ../shared/third_party/eaudit beside the project).
    #[arg(long, value_name = "DIR")]
    pub eaudit_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Where to write the calibration (JSON, written atomically).
    #[arg(long, value_name = "FILE", default_value = scheduler::sim::calibration::DEFAULT_CALIBRATION_PATH)]
    pub out: PathBuf,
    /// Flood kinds to measure the syscall cost of, comma separated.
    #[arg(
        long,
        value_name = "KIND",
        value_delimiter = ',',
        default_value = "openat"
    )]
    pub flood: Vec<FloodKind>,
    /// Iterations of the larger unpaced run (the smaller one does a quarter).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub count: u64,
    /// Times each cost-measuring run is repeated; the fits use every repetition (on a shared
    /// machine single runs vary by 20-40 %) [default: 3; 1 with --quick].
    #[arg(long, value_name = "N")]
    pub repetitions: Option<u32>,
    /// Fewer iterations and wakeup rounds (for tests).
    #[arg(long)]
    pub quick: bool,
}

/// The simulated EEVDF `sim validate` compares with the real runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EevdfModel {
    Linux,
    Simple,
}

impl From<EevdfModel> for scheduler::sim::EevdfModel {
    fn from(model: EevdfModel) -> Self {
        match model {
            EevdfModel::Linux => scheduler::sim::EevdfModel::Linux,
            EevdfModel::Simple => scheduler::sim::EevdfModel::Simple,
        }
    }
}

/// `sim validate` and `sim evaluate`, or their old spelling `sim --validate` and `sim
/// --evaluate` (hidden, with the flags of both, as before).
#[derive(Clone, Debug, Args)]
#[command(args_conflicts_with_subcommands = true, mut_args(|arg| arg.hide(true)))]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: Option<SimCommand>,
    #[arg(long)]
    pub validate: bool,
    #[arg(long, conflicts_with = "validate")]
    pub evaluate: bool,
    #[command(flatten)]
    pub common: SimCommonArgs,
    #[command(flatten)]
    pub validate_only: ValidateOnlyArgs,
    #[command(flatten)]
    pub evaluate_only: EvaluateOnlyArgs,
}

impl SimArgs {
    /// The subcommand asked for, in either spelling.
    pub fn subcommand(&self) -> Option<SimCommand> {
        match &self.command {
            Some(command) => Some(command.clone()),
            None if self.validate => Some(SimCommand::Validate(ValidateArgs {
                common: self.common.clone(),
                only: self.validate_only.clone(),
            })),
            None if self.evaluate => Some(SimCommand::Evaluate(EvaluateArgs {
                common: self.common.clone(),
                only: self.evaluate_only.clone(),
            })),
            None => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Subcommand)]
pub enum SimCommand {
    /// Run real host attacks (EEVDF, built-in collector, openat; root), or replay saved ones,
    /// simulate the same intensities and compare real and simulated loss.
    Validate(ValidateArgs),
    /// Simulate only (no root): each scheduler beside the bound and the fair share, and the
    /// Aegis ablations.
    ///
    /// EEVDF, CFS, rustland-like, Aegis without the network and Aegis with the DQN across
    /// attack intensities (--threads: producers) and machine sizes (--cpus), each beside the
    /// bound on the ordinary tasks' slowdown at its own operating point and the lossless fair
    /// share (not a bound), plus the Aegis ablations. Writes --json FILE (a top-level `rows` list) and
    /// prints tables.
    Evaluate(EvaluateArgs),
}

#[derive(Clone, Debug, PartialEq, Args)]
#[command(
    mut_arg("json", |arg| arg.help("Write the report (a top-level `points` list) to FILE")),
    mut_arg("threads", |arg| arg.help(
        "Flood threads, one intensity each [default: 1,2,3,4,6,8; 1,4 with --quick]"
    )),
    mut_arg("duration", |arg| arg.help(
        "Seconds each real flood runs (the simulation runs as long as the flood did) \
         [default: 1; 0.5 with --quick]"
    )),
)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub common: SimCommonArgs,
    #[command(flatten)]
    pub only: ValidateOnlyArgs,
}

#[derive(Clone, Debug, PartialEq, Args)]
#[command(
    mut_arg("json", |arg| arg.help("Write the report (a top-level `rows` list) to FILE")),
    mut_arg("threads", |arg| arg.help(
        "Flood threads (producers) per configuration [default: 1,4,8 and one per CPU; 1,4 \
         with --quick]"
    )),
    mut_arg("duration", |arg| arg.help(
        "Simulated seconds per run [default: 1; 0.1 with --quick]"
    )),
)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub common: SimCommonArgs,
    #[command(flatten)]
    pub only: EvaluateOnlyArgs,
}

/// The flags `sim validate` and `sim evaluate` share (each words `--json`, `--threads` and
/// `--duration` its own way).
#[derive(Clone, Debug, PartialEq, Args)]
pub struct SimCommonArgs {
    /// Write the report to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// The calibration `aegis-bench calibrate` wrote.
    #[arg(long, value_name = "FILE", default_value = scheduler::sim::calibration::DEFAULT_CALIBRATION_PATH)]
    pub calibration: PathBuf,
    /// Flood threads, one intensity each.
    #[arg(long, value_name = "N", value_delimiter = ',')]
    pub threads: Option<Vec<u32>>,
    /// Seconds each run lasts.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// The collector's ring buffer.
    #[arg(long, value_name = "SIZE", default_value = "64KiB")]
    pub ring_size: String,
    /// Simulation seeds per intensity; the simulated loss is their mean.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub seeds: u64,
    /// Short runs at few intensities (for tests).
    #[arg(long)]
    pub quick: bool,
    /// The EEVDF model. `linux`: a run queue per CPU, waking tasks placed with Linux's lag
    /// inflation, the kernel's tick (1 / CONFIG_HZ, which `calibrate` records; in evaluate
    /// every policy runs at that tick). `simple`: one global queue, no inflation, a 1 ms tick
    /// (the model before sim-to-real was validated) [default: linux].
    #[arg(long, value_enum)]
    pub eevdf_model: Option<EevdfModel>,
    /// The trained model simulated Aegis runs (read as scx_aegis reads it).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "scheduler/models/aegis.json"
    )]
    pub model: PathBuf,
}

/// The flags of `sim validate` alone.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct ValidateOnlyArgs {
    /// Real runs per intensity; the real loss is their mean [default: 3; 1 with --quick].
    #[arg(long, value_name = "N")]
    pub repetitions: Option<u32>,
    /// With --eevdf-model simple: one run queue per CPU (load-balanced) instead of the global
    /// queue (the `linux` model always has them).
    #[arg(long)]
    pub per_cpu_run_queues: bool,
    /// Replay these real trials (`aegis-bench attack --json FILE` with the built-in
    /// collector, openat, EEVDF or Aegis) instead of running new ones; needs no root, so
    /// simulator variants can be compared on the same real runs.
    #[arg(long, value_name = "FILE", conflicts_with = "vm")]
    pub real_trials: Option<PathBuf>,
    /// The schedulers to validate, each simulated with its policy: eevdf (the --eevdf-model),
    /// cfs, aegis (the simulator's Aegis with --model, as scx_aegis runs it) [default: eevdf;
    /// with --real-trials, every scheduler in the file].
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub scheduler: Option<Vec<String>>,
    /// Measure in a sched_ext QEMU guest (2 vCPUs): one boot calibrates (written to
    /// --calibration FILE, which must be given) and runs the real trials (written to
    /// --save-trials FILE); the host then simulates them.
    #[arg(long, requires = "save_trials")]
    pub vm: bool,
    /// Write the real trials this run measures to FILE (a list, as `attack --json` writes).
    #[arg(long, value_name = "FILE")]
    pub save_trials: Option<PathBuf>,
    /// (internal) Calibrate to --calibration and run the real trials to --save-trials, then
    /// stop without simulating: what `--vm` asks the guest.
    #[arg(
        long,
        hide = true,
        requires = "save_trials",
        conflicts_with = "real_trials"
    )]
    pub measure_only: bool,
}

/// The flags of `sim evaluate` alone.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct EvaluateOnlyArgs {
    /// The CPU counts to simulate [default: 2,8,64,128; 2,8 with --quick].
    #[arg(long, value_name = "N", value_delimiter = ',')]
    pub cpus: Option<Vec<usize>>,
    /// Replace the calibration's collector wakeup latency (microseconds), to see how much of
    /// the loss the latency alone makes.
    #[arg(long, value_name = "US")]
    pub wakeup_latency_us: Option<f64>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training episodes (simulations of random attack configurations)
    /// [default: 300; 12 with --quick].
    #[arg(long, value_name = "N")]
    pub episodes: Option<usize>,
    /// Seed of everything random in training: same seed, same model.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Where to write the model (JSON, written atomically); the learning curve goes beside it
    /// as STEM-learning-curve.png and .svg.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "scheduler/models/aegis.json"
    )]
    pub out: PathBuf,
    /// A few short episodes (for tests): mechanics only, not a usable policy.
    #[arg(long)]
    pub quick: bool,
    /// The machine to train on (costs, ring, measured wakeup latencies), as `aegis-bench
    /// calibrate` wrote it; without this file, the simulator's uncalibrated defaults
    /// [default: results/calibration.json].
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    /// CPU counts episodes are drawn from (the evaluation, `sim evaluate`, covers 2 to 128).
    #[arg(
        long,
        value_name = "N,..",
        value_delimiter = ',',
        default_value = "2,8"
    )]
    pub cpus: Vec<usize>,
    /// The simulator to train in: `linux` (the EEVDF model and kernel tick `sim validate`
    /// checks against real runs) or `simple` (the global-queue model, 1 ms tick).
    #[arg(long, value_enum, default_value = "linux")]
    pub eevdf_model: EevdfModel,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// A log written by the built-in collector (`--keep-logs`).
    pub file: PathBuf,
    /// Print per-syscall record counts instead of the records.
    #[arg(long)]
    pub summary: bool,
    /// Print only records whose path contains this text.
    #[arg(long, value_name = "TEXT")]
    pub path_contains: Option<String>,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The compact architecture (per-CPU batches) instead of one record per event.
    #[arg(long)]
    pub compact: bool,
    /// At the BPF-LSM hooks (builtin-lsm) instead of raw_syscalls/sys_enter.
    #[arg(long, conflicts_with = "compact")]
    pub lsm: bool,
    /// Pin the ring buffer map at this bpffs path (for scx_aegis --collector-ring).
    #[arg(long)]
    pub pin_ring: Option<PathBuf>,
    #[arg(long)]
    pub cgroup_id: u64,
    /// `--trace-scope all`: the ids of ground truth's scope maps to reuse.
    #[arg(long, requires = "scope_groups_map_id")]
    pub scope_state_map_id: Option<u32>,
    #[arg(long, requires = "scope_state_map_id")]
    pub scope_groups_map_id: Option<u32>,
    #[arg(long)]
    pub ring_bytes: u64,
    #[arg(long)]
    pub log: PathBuf,
    #[arg(long)]
    pub stats: PathBuf,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub cgroup_procs: PathBuf,
    #[arg(long)]
    pub report: PathBuf,
    #[arg(long)]
    pub canary: PathBuf,
    #[arg(long)]
    pub scratch: PathBuf,
    #[arg(long)]
    pub duration: f64,
    #[arg(long)]
    pub flood: Option<FloodKind>,
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    #[arg(long)]
    pub count: Option<u64>,
    #[arg(long)]
    pub rate: Option<u64>,
    #[arg(long, default_value = "none")]
    pub evade: Evade,
    #[arg(long, allow_hyphen_values = true)]
    pub nice: Option<i32>,
    #[arg(long)]
    pub extra_cgroup_procs: Vec<PathBuf>,
    #[arg(long)]
    pub gate: Option<PathBuf>,
    /// The producer program, after `--`.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WorkloadWorkerArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub duration: f64,
    #[arg(long)]
    pub cgroup_procs: PathBuf,
    #[arg(long)]
    pub report: PathBuf,
}

#[derive(Clone, Debug, Args)]
pub struct FiguresArgs {
    /// A directory of `attack --json` files (searched recursively; other JSON is skipped).
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Where the figures and report.md go.
    #[arg(long, value_name = "DIR", default_value = "results/figures")]
    pub out: PathBuf,
}

#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The experiment matrix (TOML; see docs/matrix.md).
    #[arg(long, value_name = "FILE.toml")]
    pub matrix: PathBuf,
    /// Where trials.jsonl, trials.csv, matrix.toml and run.json go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out: trials already there are kept and not run again.
    #[arg(long)]
    pub resume: bool,
    /// Run only part i of n of the matrix (1-based), e.g. --shard 2/3; join the parts with
    /// `aegis-bench merge`.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// Print the trials the matrix would run, in run order, and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on past a trial that fails (a scheduler kicked out by the watchdog, accounting that
    /// does not add up): its error goes to OUT/failures.jsonl, the run exits with status 1 at
    /// the end, and --resume retries it. Without it the first failure ends the run.
    #[arg(long)]
    pub keep_going: bool,
    /// Run the matrix in a QEMU guest (a sched_ext kernel unless --vm-kernel says otherwise);
    /// a matrix with `boots = N` boots N guests, one after the other.
    #[arg(long)]
    pub vm: bool,
    /// Run from a tree with uncommitted changes: its trials record a `-dirty` revision that
    /// no commit reproduces, so this is refused unless asked for.
    #[arg(long)]
    pub allow_dirty: bool,
    /// (internal) Run only boot B (0-based) of the matrix's `boots`: what the guest runner
    /// asks each guest.
    #[arg(long, value_name = "B", hide = true)]
    pub boot: Option<u32>,
    /// With --vm, for a matrix with the eaudit collector: an eAudit checkout, patched, built
    /// and copied into each guest (default: $AEGIS_EAUDIT_DIR, else
    /// ../shared/third_party/eaudit beside the project).
    #[arg(long, value_name = "DIR")]
    pub eaudit_dir: Option<PathBuf>,
    #[command(flatten)]
    pub guest: GuestArgs,
}

#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Markdown files holding `<!-- report: KIND RESULTS ... -->` blocks (see
    /// docs/results.md); result paths are relative to the current directory.
    #[arg(value_name = "FILE.md", required = true)]
    pub files: Vec<PathBuf>,
    /// Write nothing: exit 1 if a block differs from what its results generate.
    #[arg(long)]
    pub check: bool,
}

#[derive(Clone, Debug, Args)]
pub struct MergeArgs {
    /// Where the joined trials.jsonl, trials.csv, matrix.toml and run.json go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The shards' output directories.
    #[arg(value_name = "PART", required = true)]
    pub parts: Vec<PathBuf>,
}

#[derive(Clone, Debug, Args)]
pub struct GateArgs {
    /// Trials of the baseline: a `run` output directory, its trials.jsonl, or an `attack
    /// --json` file.
    #[arg(long, value_name = "FILE")]
    pub baseline: PathBuf,
    /// Trials to judge, in the same forms.
    #[arg(long, value_name = "FILE")]
    pub current: PathBuf,
    /// Per-metric tolerances and significance level (TOML); built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Where the markdown report goes (also printed).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}
