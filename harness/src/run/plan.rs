//! The plan: an attack's typed options ([`AttackOptions`]: what `attack`'s flags or a matrix
//! cell say) validated once into everything `attack` will do ([`Plan`]), and its trials.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use attacks::{Evade, FloodKind, FloodSpec};

use crate::collector::{self, auditd, AuditSettings, Buffer, CollectorKind};
use crate::error::InputError;
use crate::results::scope::TraceScope;
use crate::run::workload::{self};
use crate::sched::{self, SchedulerSpec};
use crate::size::format_size;

/// `attack`'s defaults, for clap and for the runs that build [`AttackOptions`] themselves.
pub const DEFAULT_THREADS: u32 = 4;
pub const DEFAULT_DURATION_S: f64 = 3.0;
/// The default ring as `--ring-size` spells it; [`DEFAULT_RING_BYTES`] in bytes.
pub const DEFAULT_RING_SIZE: &str = "256KiB";
pub const DEFAULT_RING_BYTES: u64 = 256 << 10;
pub const DEFAULT_AUDIT_BACKLOG_LIMIT: u32 = 8192;
pub const DEFAULT_AUDIT_BACKLOG_WAIT_MS: u64 = 60_000;

/// The typed options of one attack, before validation ([`Plan::new`]): `attack`'s flags
/// after parsing, a cell of a matrix, or a calibration run.
#[derive(Clone, Debug, PartialEq)]
pub struct AttackOptions {
    pub flood: FloodKind,
    /// Flood threads, one trial per value.
    pub threads: Vec<u32>,
    /// Seconds each flood runs (at most, with `count`).
    pub duration_s: f64,
    /// Iterations in total, split across the threads.
    pub count: Option<u64>,
    /// Iterations per second in total.
    pub rate: Option<u64>,
    /// How the flood evades a producer rule (`--evade`).
    pub evade: Evade,
    /// The program run as the producer instead of a flood, split into words.
    pub cmd: Option<Vec<String>>,
    /// Ring buffer sizes in bytes (each a checked ring size), one trial each.
    pub ring_sizes: Vec<u64>,
    pub collectors: Vec<CollectorKind>,
    /// Scheduler names, resolved against the kernel the trials run on; none for its fair
    /// class.
    pub schedulers: Vec<String>,
    /// Extra arguments for the sched_ext scheduler binaries.
    pub scx_args: Vec<String>,
    /// Standard workloads run beside the attack, one trial each.
    pub workloads: Vec<&'static str>,
    /// Sample the trial's threads' schedstat.
    pub watch_run_delay: bool,
    /// What the collector traces: the attack's cgroup, or the whole machine.
    pub trace_scope: TraceScope,
    pub repetitions: u32,
    /// Independent boots (guests), each running every trial: the unit of replication.
    pub boots: u32,
    /// The one boot this process runs (0-based), in a guest of a run of several.
    pub boot: Option<u32>,
    /// auditd's backlog limits (records) and wait times (ms): one auditd trial per pair.
    pub audit_backlog_limits: Vec<u32>,
    pub audit_backlog_wait_times_ms: Vec<u64>,
    /// An eAudit checkout.
    pub eaudit_dir: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub keep_logs: Option<PathBuf>,
}

impl Default for AttackOptions {
    /// `attack` without flags.
    fn default() -> Self {
        AttackOptions {
            flood: FloodKind::Openat,
            threads: vec![DEFAULT_THREADS],
            duration_s: DEFAULT_DURATION_S,
            count: None,
            rate: None,
            evade: Evade::None,
            cmd: None,
            ring_sizes: vec![DEFAULT_RING_BYTES],
            collectors: vec![CollectorKind::Builtin],
            schedulers: Vec::new(),
            scx_args: Vec::new(),
            workloads: Vec::new(),
            watch_run_delay: false,
            trace_scope: TraceScope::Attack,
            repetitions: 1,
            boots: 1,
            boot: None,
            audit_backlog_limits: vec![DEFAULT_AUDIT_BACKLOG_LIMIT],
            audit_backlog_wait_times_ms: vec![DEFAULT_AUDIT_BACKLOG_WAIT_MS],
            eaudit_dir: None,
            json: None,
            csv: None,
            keep_logs: None,
        }
    }
}

/// `--scx-args`, split like a shell would.
pub fn split_scx_args(text: &str) -> Result<Vec<String>, InputError> {
    shell_words::split(text).map_err(|err| {
        InputError(format!(
            "--scx-args '{text}' does not parse as arguments: {err}"
        ))
    })
}

/// `--cmd`, split like a shell would.
pub fn split_cmd(cmd: &str) -> Result<Vec<String>, InputError> {
    shell_words::split(cmd).map_err(|err| {
        InputError(format!(
            "cannot split --cmd \"{cmd}\": {err}; check its quotes"
        ))
    })
}

/// What to produce events with.
#[derive(Clone, Debug, PartialEq)]
pub enum ProducerPlan {
    Flood { threads: Vec<u32>, spec: FloodSpec },
    Command(Vec<String>),
}

/// Everything `attack` will do, validated.
#[derive(Debug)]
pub struct Plan {
    /// The attack's name in trial ids: the flood kind (`openat`), `cmd`, or a matrix
    /// attack's `name`.
    pub attack_label: String,
    /// The name trials record for the scheduler instead of its own (a matrix variant such as
    /// `aegis:no-delta-gating`).
    pub scheduler_label: Option<String>,
    pub producer: ProducerPlan,
    pub duration: Duration,
    pub ring_sizes: Vec<u64>,
    pub collectors: Vec<CollectorKind>,
    pub schedulers: Vec<SchedulerSpec>,
    /// `--scx-args`, split like a shell would.
    pub scx_args: Vec<String>,
    pub repetitions: u32,
    /// Boots of the run (trial ids name the boot when there is more than one).
    pub boots: u32,
    /// The one boot this process runs, if the run has several.
    pub boot: Option<u32>,
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub keep_logs: Option<PathBuf>,
    /// auditd's backlog settings, one trial each (empty unless auditd is a collector).
    pub audit_settings: Vec<AuditSettings>,
    /// Standard workloads run beside the attack, one trial each (`--workload`).
    pub workloads: Vec<&'static str>,
    /// `--watch-run-delay`: sample the trial's threads' schedstat.
    pub watch_run_delay: bool,
    /// `--trace-scope`.
    pub trace_scope: TraceScope,
    /// `--eaudit-dir`: the eAudit checkout.
    pub eaudit_dir: Option<PathBuf>,
}

impl Plan {
    /// Validates the options, against this host's kernel for the schedulers. Fails with an
    /// [`InputError`] naming the fix; changes nothing.
    pub fn new(options: &AttackOptions) -> Result<Plan, InputError> {
        Self::build(options, false)
    }

    /// The same, for trials a guest will run: collectors the guest runner provides (sysdig
    /// and its driver) are checked by the guest runner and in the guest, not against this host.
    pub fn for_guest(options: &AttackOptions) -> Result<Plan, InputError> {
        Self::build(options, true)
    }

    fn build(options: &AttackOptions, for_guest: bool) -> Result<Plan, InputError> {
        let duration = check_duration(options.duration_s)?;
        check_counts(options)?;
        let producer = producer_plan(options, duration)?;
        check_collectors(options, for_guest)?;
        check_trace_scope(options)?;
        let audit_settings = audit_settings(options, &producer)?;
        check_workloads(options)?;
        check_distinct(options)?;
        check_outputs(options)?;
        let schedulers = resolve_schedulers(&options.schedulers)?;
        let freezes = schedulers.iter().any(|s| {
            matches!(
                s,
                SchedulerSpec::Fair {
                    variant: Some(sched::FairVariant::FreezeOnFill),
                    ..
                }
            )
        });
        if let Some(kind) = options
            .collectors
            .iter()
            .find(|kind| !kind.traces_all())
            .filter(|_| freezes)
        {
            return Err(InputError(format!(
                "freeze-on-fill reads a ring buffer's fill, which {} has not: use it with the \
                 builtin or builtin-compact collector",
                kind.name()
            )));
        }
        // Given to no scheduler, they would be silently ignored.
        if !options.scx_args.is_empty()
            && !schedulers
                .iter()
                .any(|s| matches!(s, SchedulerSpec::SchedExt { .. }))
        {
            return Err(InputError(
                "--scx-args goes to sched_ext schedulers, and --scheduler names none: add one \
                 (aegis, scx_rustland, scx:PATH) or leave --scx-args out"
                    .into(),
            ));
        }
        Ok(Plan {
            attack_label: match &producer {
                // An evader is another attack.
                ProducerPlan::Flood { spec, .. } => {
                    attacks::evade::attack_name(spec.kind.name(), Some(&spec.evade.to_string()))
                }
                ProducerPlan::Command(_) => "cmd".to_string(),
            },
            scheduler_label: None,
            producer,
            duration,
            ring_sizes: options.ring_sizes.clone(),
            collectors: options.collectors.clone(),
            schedulers,
            scx_args: options.scx_args.clone(),
            repetitions: options.repetitions,
            boots: options.boots,
            boot: options.boot,
            json: options.json.clone(),
            csv: options.csv.clone(),
            keep_logs: options.keep_logs.clone(),
            audit_settings,
            workloads: options.workloads.clone(),
            watch_run_delay: options.watch_run_delay,
            trace_scope: options.trace_scope,
            eaudit_dir: options.eaudit_dir.clone(),
        })
    }

    /// The scheduler's name in `spec`'s trial: the plan's label, else the scheduler's own.
    pub fn scheduler_name(&self, spec: &TrialSpec) -> String {
        self.scheduler_label
            .clone()
            .unwrap_or_else(|| spec.scheduler.name())
    }

    /// `spec`'s trial id: `attack/scheduler/collector/buffer/xTHREADS/workload/repN`, with
    /// `/bootB` before `/repN` in runs of several boots, for `run --resume` and `merge`.
    pub fn trial_id(&self, spec: &TrialSpec) -> String {
        let boot = if self.boots > 1 {
            format!("/boot{}", spec.boot)
        } else {
            String::new()
        };
        format!(
            "{}/{}/{}/{}/x{}/{}{boot}/rep{}",
            self.attack_label,
            self.scheduler_name(spec),
            spec.collector.name(),
            spec.buffer_id(),
            spec.threads,
            spec.workload.unwrap_or("none"),
            spec.repetition
        )
    }

    /// One line saying what `spec` runs, for progress output.
    pub fn describe(&self, spec: &TrialSpec) -> String {
        format!(
            "{} / {} / {} x{} / {}{}",
            self.scheduler_name(spec),
            spec.collector.name(),
            self.attack_label,
            spec.threads,
            spec.buffer(),
            spec.workload
                .map(|name| format!(" / beside {name}"))
                .unwrap_or_default()
        )
    }

    /// Every trial of every boot, boots and repetitions outermost (the run order shuffles
    /// the cells within each repetition: [`crate::run::matrix::run_order`]).
    pub fn trials(&self) -> Vec<TrialSpec> {
        let threads: Vec<u32> = match &self.producer {
            ProducerPlan::Flood { threads, .. } => threads.clone(),
            ProducerPlan::Command(_) => vec![1],
        };
        let workloads: Vec<Option<&'static str>> = if self.workloads.is_empty() {
            vec![None]
        } else {
            self.workloads.iter().copied().map(Some).collect()
        };
        let mut specs = Vec::new();
        for repetition in 0..self.repetitions {
            for scheduler in &self.schedulers {
                for collector in &self.collectors {
                    // Each collector varies its own buffer: the ring size, or auditd's backlog.
                    let buffers: Vec<Buffer> = match collector {
                        CollectorKind::Auditd => self
                            .audit_settings
                            .iter()
                            .map(|s| Buffer::AuditBacklog(*s))
                            .collect(),
                        CollectorKind::Eaudit => vec![Buffer::Default],
                        CollectorKind::Sysdig => vec![Buffer::Driver {
                            bytes_per_cpu: crate::collector::sysdig::DRIVER_BUFFER_BYTES,
                        }],
                        _ => self
                            .ring_sizes
                            .iter()
                            .map(|&bytes| Buffer::Ring { bytes })
                            .collect(),
                    };
                    for buffer in &buffers {
                        for threads in &threads {
                            for workload in &workloads {
                                specs.push(TrialSpec {
                                    scheduler: scheduler.clone(),
                                    collector: *collector,
                                    buffer: *buffer,
                                    threads: *threads,
                                    workload: *workload,
                                    repetition,
                                    boot: 0,
                                });
                            }
                        }
                    }
                }
            }
        }
        (0..self.boots)
            .flat_map(|boot| {
                specs.iter().map(move |spec| TrialSpec {
                    boot,
                    ..spec.clone()
                })
            })
            .collect()
    }
}

/// Each list flag names a value once: a repeated one would run the same trials twice under
/// one trial id, which `run --resume` and `merge` could not tell apart.
fn check_distinct(options: &AttackOptions) -> Result<(), InputError> {
    fn first_repeat<T: PartialEq + std::fmt::Display>(values: &[T]) -> Option<&T> {
        values
            .iter()
            .enumerate()
            .find(|(i, v)| values[..*i].contains(v))
            .map(|(_, v)| v)
    }
    let names = |kinds: &[CollectorKind]| kinds.iter().map(|k| k.name()).collect::<Vec<_>>();
    let repeats = [
        (
            "--threads",
            first_repeat(&options.threads).map(u32::to_string),
        ),
        (
            "--ring-size",
            first_repeat(&options.ring_sizes).map(|b| format_size(*b)),
        ),
        (
            "--collector",
            first_repeat(&names(&options.collectors)).map(|n| n.to_string()),
        ),
        ("--scheduler", first_repeat(&options.schedulers).cloned()),
        (
            "--workload",
            first_repeat(&options.workloads).map(|w| w.to_string()),
        ),
    ];
    match repeats
        .into_iter()
        .find_map(|(flag, value)| value.map(|v| (flag, v)))
    {
        Some((flag, value)) => Err(InputError(format!(
            "{flag} names {value} twice: list each value once"
        ))),
        None => Ok(()),
    }
}

/// `--json`, `--csv` and `--keep-logs` can be written (before anything is measured), and
/// `--json` and `--csv` are two files: one path for both would leave only the CSV.
fn check_outputs(options: &AttackOptions) -> Result<(), InputError> {
    let files = [("--json", &options.json), ("--csv", &options.csv)];
    for (flag, path) in files {
        let Some(path) = path else { continue };
        if let Some(why) = crate::files::unusable_output(path) {
            return Err(InputError(format!(
                "{flag} {}: {why}; name a new or regular file in a writable directory",
                path.display()
            )));
        }
    }
    if let Some(dir) = &options.keep_logs {
        if let Some(why) = crate::files::unusable_output_dir(dir) {
            return Err(InputError(format!(
                "--keep-logs {}: {why}; name a new or existing directory",
                dir.display()
            )));
        }
    }
    if let (Some(json), Some(csv)) = (&options.json, &options.csv) {
        let same = json == csv
            || std::path::absolute(json).ok() == std::path::absolute(csv).ok()
            || matches!(
                (json.canonicalize(), csv.canonicalize()),
                (Ok(a), Ok(b)) if a == b
            );
        if same {
            return Err(InputError(format!(
                "--json and --csv both name {}: give each its own file",
                json.display()
            )));
        }
    }
    Ok(())
}

/// `--cmd`'s program exists and is executable (on the PATH, or at the path given), so a typo
/// fails before anything is armed rather than as a trial that ran nothing.
fn check_program(program: &str) -> Result<(), InputError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        executable(std::path::Path::new(program))
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| executable(&dir.join(program)))
        })
    };
    if found {
        Ok(())
    } else {
        Err(InputError(format!(
            "--cmd program {program} is not an executable file on the PATH: install it or give \
             its path"
        )))
    }
}

/// A positive duration of at most a day.
fn check_duration(duration_s: f64) -> Result<Duration, InputError> {
    if !(duration_s.is_finite() && duration_s > 0.0) {
        return Err(InputError(format!(
            "--duration must be a positive number of seconds, got {duration_s}; e.g. --duration 3"
        )));
    }
    if duration_s > 24.0 * 3600.0 {
        return Err(InputError(
            "--duration is longer than a day; e.g. --duration 3".into(),
        ));
    }
    Ok(Duration::from_secs_f64(duration_s))
}

/// The most trials one attack or matrix cell may plan (weeks of trials at seconds each).
const MAX_TRIALS: u64 = 1_000_000;

/// Counts that must be at least one, and a plan of bounded size.
fn check_counts(options: &AttackOptions) -> Result<(), InputError> {
    if options.count == Some(0) {
        return Err(InputError("--count must be at least 1".into()));
    }
    if options.rate == Some(0) {
        return Err(InputError("--rate must be at least 1 per second".into()));
    }
    if options.repetitions == 0 {
        return Err(InputError("--repetitions must be at least 1".into()));
    }
    if options.boots == 0 {
        return Err(InputError("--boots must be at least 1".into()));
    }
    // Planning allocates every trial up front: a typo such as --repetitions 1000000000 must
    // be an error, not an exhausted machine.
    let cells = options.threads.len().max(1) as u64
        * options.ring_sizes.len().max(1) as u64
        * options.collectors.len().max(1) as u64
        * options.schedulers.len().max(1) as u64
        * options.workloads.len().max(1) as u64
        * options.audit_backlog_limits.len().max(1) as u64
        * options.audit_backlog_wait_times_ms.len().max(1) as u64;
    let trials = cells
        .saturating_mul(u64::from(options.repetitions))
        .saturating_mul(u64::from(options.boots));
    if trials > MAX_TRIALS {
        return Err(InputError(format!(
            "{trials} trials ({cells} combinations x {} repetitions x {} boots) is more than \
             {MAX_TRIALS}; lower --repetitions or --boots, or split the run",
            options.repetitions, options.boots
        )));
    }
    if let Some(boot) = options.boot.filter(|boot| *boot >= options.boots) {
        return Err(InputError(format!(
            "--boot {boot} is not one of the {} boot(s) (0-based)",
            options.boots
        )));
    }
    Ok(())
}

/// The program to run, or the flood with its thread counts checked.
fn producer_plan(options: &AttackOptions, duration: Duration) -> Result<ProducerPlan, InputError> {
    if let Some(argv) = &options.cmd {
        if argv.is_empty() {
            return Err(InputError(
                "--cmd is empty; give a program, e.g. --cmd \"stress-ng --cpu 2\"".into(),
            ));
        }
        check_program(&argv[0])?;
        return Ok(ProducerPlan::Command(argv.clone()));
    }
    let Some(first) = options.threads.first() else {
        return Err(InputError(
            "--threads needs at least one value, e.g. --threads 4".into(),
        ));
    };
    if let Some(bad) = options.threads.iter().find(|t| **t == 0 || **t > 4096) {
        return Err(InputError(format!(
            "--threads {bad} is out of range; use 1 to 4096"
        )));
    }
    Ok(ProducerPlan::Flood {
        threads: options.threads.clone(),
        spec: FloodSpec {
            kind: options.flood,
            threads: *first,
            duration,
            count: options.count,
            rate_per_s: options.rate,
            evade: options.evade,
        },
    })
}

/// Collectors that cannot run here say why now; auditd needs root to ask the kernel, so it
/// is checked when the trials start.
fn check_collectors(options: &AttackOptions, for_guest: bool) -> Result<(), InputError> {
    for kind in &options.collectors {
        // Checked in the guest, against its kernel.
        if matches!(
            kind,
            CollectorKind::Sysdig | CollectorKind::Eaudit | CollectorKind::BuiltinLsm
        ) && for_guest
        {
            continue;
        }
        if *kind != CollectorKind::Auditd {
            collector::check_available(*kind, options.eaudit_dir.as_deref())?;
        }
    }
    Ok(())
}

/// `--trace-scope all` needs collectors that share ground truth's switch: only the built-in
/// ones can be accounted for exactly over the whole machine.
fn check_trace_scope(options: &AttackOptions) -> Result<(), InputError> {
    if !options.trace_scope.is_all() {
        return Ok(());
    }
    match options.collectors.iter().find(|kind| !kind.traces_all()) {
        Some(kind) => Err(InputError(format!(
            "--trace-scope all needs a built-in collector (builtin, builtin-compact), and '{}' is \
             not one: its account covers only the attack; use --collector builtin or leave \
             --trace-scope at attack",
            kind.name()
        ))),
        None => Ok(()),
    }
}

/// auditd's backlog settings, one per limit and wait time (none without auditd).
fn audit_settings(
    options: &AttackOptions,
    producer: &ProducerPlan,
) -> Result<Vec<AuditSettings>, InputError> {
    if !options.collectors.contains(&CollectorKind::Auditd) {
        return Ok(Vec::new());
    }
    if matches!(producer, ProducerPlan::Command(_)) {
        return Err(InputError(
            "collector 'auditd' cannot follow a --cmd producer: audit rules are scoped to \
             the attack's process and its children, and the program may start \
             grandchildren no rule can follow, so its loss could not be accounted for \
             exactly; use a --flood"
                .into(),
        ));
    }
    let hz = crate::measure::kernel::hz();
    let mut settings = Vec::new();
    for limit in &options.audit_backlog_limits {
        for wait_ms in &options.audit_backlog_wait_times_ms {
            settings.push(auditd::settings(*limit, *wait_ms, hz)?);
        }
    }
    Ok(settings)
}

/// Workloads run as long as the attack, in whole seconds, and need their tools.
fn check_workloads(options: &AttackOptions) -> Result<(), InputError> {
    if options.workloads.is_empty() {
        return Ok(());
    }
    if options.duration_s.fract() != 0.0 {
        return Err(InputError(format!(
            "--workload needs a whole number of seconds for --duration (stress-ng's \
             --timeout counts whole seconds, and the workload runs as long as the \
             attack), got {}; e.g. --duration 2",
            options.duration_s
        )));
    }
    for name in &options.workloads {
        workload::check_available(name)?;
    }
    Ok(())
}

/// The schedulers named, as this host's kernel has them (its fair class when none is).
fn resolve_schedulers(names: &[String]) -> Result<Vec<SchedulerSpec>, InputError> {
    let facts = sched::KernelFacts::host();
    if names.is_empty() {
        return Ok(vec![SchedulerSpec::Fair {
            class: facts.fair_class,
            variant: None,
        }]);
    }
    names
        .iter()
        .map(|name| sched::parse(name, &facts))
        .collect()
}

/// One trial of a plan.
#[derive(Clone, Debug)]
pub struct TrialSpec {
    pub scheduler: SchedulerSpec,
    pub collector: CollectorKind,
    pub buffer: Buffer,
    pub threads: u32,
    /// The workload run beside the attack, if any.
    pub workload: Option<&'static str>,
    pub repetition: u32,
    /// The boot (guest) that runs it, 0-based.
    pub boot: u32,
}

impl TrialSpec {
    /// The collector's buffer in a trial id: `ring16KiB`, `backlog8192-wait0ms`.
    fn buffer_id(&self) -> String {
        match self.buffer {
            Buffer::AuditBacklog(audit) => format!(
                "backlog{}-wait{}ms",
                audit.backlog_limit, audit.backlog_wait_time_ms
            ),
            Buffer::Ring { bytes } => format!("ring{}", format_size(bytes)),
            Buffer::Driver { bytes_per_cpu } => format!("driver{}", format_size(bytes_per_cpu)),
            Buffer::Default => "default".to_string(),
        }
    }

    /// The collector's buffer, for progress lines.
    fn buffer(&self) -> String {
        match self.buffer {
            Buffer::AuditBacklog(audit) => format!(
                "backlog {}, wait {} ms",
                audit.backlog_limit, audit.backlog_wait_time_ms
            ),
            Buffer::Ring { bytes } => format!("ring {}", format_size(bytes)),
            Buffer::Driver { bytes_per_cpu } => {
                format!("driver {} per CPU", format_size(bytes_per_cpu))
            }
            Buffer::Default => "its default buffer".to_string(),
        }
    }
}
