//! `aegis-bench attack`: validate once into a [`Plan`], then arm, fire, disarm and account
//! each trial, exporting after every one.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use attacks::FloodSpec;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cgroup::{self, AttackCgroup};
use crate::cli::AttackArgs;
use crate::collector::audit_state;
use crate::collector::{self, auditd, AuditSettings, CollectorKind, CollectorSetup};
use crate::error::InputError;
use crate::export::{table, Exporters};
use crate::producer::{self, Placement, Producer};
use crate::run_delay::{RunDelayWatch, Watched};
use crate::sched::policy::{
    ChangedThreads, CpuQuotaGroup, FairVariant, ATTACK_NICE, ATTACK_QUOTA_PCT,
};
use crate::sched::scx::RunningScx;
use crate::sched::{self, SchedulerSpec};
use crate::size::{format_size, parse_ring_size};
use crate::trial::{account, by_name, now_rfc3339, Measured, Trial};
use crate::truth::GroundTruth;
use crate::workload::{self, RunningWorkload};
use crate::{kernel, mounts, signals};

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
    pub json: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub keep_logs: Option<PathBuf>,
    /// auditd's backlog settings, one trial each (empty unless auditd is a collector).
    pub audit_settings: Vec<AuditSettings>,
    /// Standard workloads run beside the attack, one trial each (`--workload`).
    pub workloads: Vec<&'static str>,
    /// `--watch-run-delay`: sample the trial's threads' schedstat.
    pub watch_run_delay: bool,
}

impl Plan {
    /// Validates the flags. Fails with an [`InputError`] naming the fix; changes nothing.
    pub fn from_args(args: &AttackArgs) -> Result<Plan, InputError> {
        if !(args.duration.is_finite() && args.duration > 0.0) {
            return Err(InputError(format!(
                "--duration must be a positive number of seconds, got {}; e.g. --duration 3",
                args.duration
            )));
        }
        if args.duration > 24.0 * 3600.0 {
            return Err(InputError(
                "--duration is longer than a day; e.g. --duration 3".into(),
            ));
        }
        let duration = Duration::from_secs_f64(args.duration);
        if args.count == Some(0) {
            return Err(InputError("--count must be at least 1".into()));
        }
        if args.rate == Some(0) {
            return Err(InputError("--rate must be at least 1 per second".into()));
        }
        if args.repetitions == 0 {
            return Err(InputError("--repetitions must be at least 1".into()));
        }
        let producer = match &args.cmd {
            Some(cmd) => {
                let argv = shell_words::split(cmd).map_err(|err| {
                    InputError(format!(
                        "cannot split --cmd \"{cmd}\": {err}; check its quotes"
                    ))
                })?;
                if argv.is_empty() {
                    return Err(InputError(
                        "--cmd is empty; give a program, e.g. --cmd \"stress-ng --cpu 2\"".into(),
                    ));
                }
                ProducerPlan::Command(argv)
            }
            None => {
                if let Some(bad) = args.threads.iter().find(|t| **t == 0 || **t > 4096) {
                    return Err(InputError(format!(
                        "--threads {bad} is out of range; use 1 to 4096"
                    )));
                }
                ProducerPlan::Flood {
                    threads: args.threads.clone(),
                    spec: FloodSpec {
                        kind: args.flood,
                        threads: args.threads[0],
                        duration,
                        count: args.count,
                        rate_per_s: args.rate,
                    },
                }
            }
        };
        let ring_sizes = args
            .ring_size
            .iter()
            .map(|text| parse_ring_size(text))
            .collect::<Result<Vec<_>, _>>()?;
        let collectors = args
            .collector
            .iter()
            .map(|name| CollectorKind::parse(name))
            .collect::<Result<Vec<_>, _>>()?;
        // Collectors that cannot run here say why now; auditd needs root to ask the kernel,
        // so it is checked in `run_attack`.
        let eaudit_dir = args.eaudit_dir.as_deref();
        for kind in &collectors {
            if *kind != CollectorKind::Auditd {
                collector::check_available(*kind, eaudit_dir)?;
            }
        }
        let audit_settings = if collectors.contains(&CollectorKind::Auditd) {
            if matches!(producer, ProducerPlan::Command(_)) {
                return Err(InputError(
                    "collector 'auditd' cannot follow a --cmd producer: audit rules are scoped to \
                     the attack's process and its children, and the program may start \
                     grandchildren no rule can follow, so its loss could not be accounted for \
                     exactly; use a --flood"
                        .into(),
                ));
            }
            let hz = crate::kernel::hz();
            let mut settings = Vec::new();
            for limit in &args.audit_backlog_limit {
                for wait_ms in &args.audit_backlog_wait_time {
                    settings.push(auditd::settings(*limit, *wait_ms, hz)?);
                }
            }
            settings
        } else {
            Vec::new()
        };
        let workloads = workload::parse_names(&args.workload)?;
        if !workloads.is_empty() {
            if args.duration.fract() != 0.0 {
                return Err(InputError(format!(
                    "--workload needs a whole number of seconds for --duration (stress-ng's \
                     --timeout counts whole seconds, and the workload runs as long as the \
                     attack), got {}; e.g. --duration 2",
                    args.duration
                )));
            }
            for name in &workloads {
                workload::check_available(name)?;
            }
        }
        let facts = sched::KernelFacts::host();
        let schedulers = if args.scheduler.is_empty() {
            vec![SchedulerSpec::Fair {
                class: facts.fair_class,
                variant: None,
            }]
        } else {
            args.scheduler
                .iter()
                .map(|name| sched::parse(name, &facts))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Plan {
            attack_label: match &producer {
                ProducerPlan::Flood { spec, .. } => spec.kind.name().to_string(),
                ProducerPlan::Command(_) => "cmd".to_string(),
            },
            scheduler_label: None,
            producer,
            duration,
            ring_sizes,
            collectors,
            schedulers,
            scx_args: match &args.scx_args {
                Some(text) => shell_words::split(text).map_err(|err| {
                    InputError(format!(
                        "--scx-args '{text}' does not parse as arguments: {err}"
                    ))
                })?,
                None => Vec::new(),
            },
            repetitions: args.repetitions,
            json: args.json.clone(),
            csv: args.csv.clone(),
            keep_logs: args.keep_logs.clone(),
            audit_settings,
            workloads,
            watch_run_delay: args.watch_run_delay,
        })
    }

    /// The scheduler's name in `spec`'s trial: the plan's label, else the scheduler's own.
    pub fn scheduler_name(&self, spec: &TrialSpec) -> String {
        self.scheduler_label
            .clone()
            .unwrap_or_else(|| spec.scheduler.name())
    }

    /// `spec`'s trial id: `attack/scheduler/collector/buffer/xTHREADS/workload/repN`, for
    /// `run --resume` and `merge`.
    pub fn trial_id(&self, spec: &TrialSpec) -> String {
        format!(
            "{}/{}/{}/{}/x{}/{}/rep{}",
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

    /// The trials in run order: repetitions outermost, so combinations interleave.
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
                    let buffers: Vec<(u64, Option<AuditSettings>)> = match collector {
                        CollectorKind::Auditd => {
                            self.audit_settings.iter().map(|s| (0, Some(*s))).collect()
                        }
                        _ => self.ring_sizes.iter().map(|r| (*r, None)).collect(),
                    };
                    for (ring_bytes, audit) in &buffers {
                        for threads in &threads {
                            for workload in &workloads {
                                specs.push(TrialSpec {
                                    scheduler: scheduler.clone(),
                                    collector: *collector,
                                    ring_bytes: *ring_bytes,
                                    audit: *audit,
                                    threads: *threads,
                                    workload: *workload,
                                    repetition,
                                });
                            }
                        }
                    }
                }
            }
        }
        specs
    }
}

/// One trial of a plan.
pub struct TrialSpec {
    pub scheduler: SchedulerSpec,
    pub collector: CollectorKind,
    pub ring_bytes: u64,
    pub audit: Option<AuditSettings>,
    pub threads: u32,
    /// The workload run beside the attack, if any.
    pub workload: Option<&'static str>,
    pub repetition: u32,
}

impl TrialSpec {
    /// The collector's buffer in a trial id: `ring16KiB`, `backlog8192-wait0ms`.
    fn buffer_id(&self) -> String {
        match &self.audit {
            Some(audit) => format!(
                "backlog{}-wait{}ms",
                audit.backlog_limit, audit.backlog_wait_time_ms
            ),
            None => format!("ring{}", format_size(self.ring_bytes)),
        }
    }

    /// The collector's buffer, for progress lines.
    fn buffer(&self) -> String {
        match &self.audit {
            Some(audit) => format!(
                "backlog {}, wait {} ms",
                audit.backlog_limit, audit.backlog_wait_time_ms
            ),
            None => format!("ring {}", format_size(self.ring_bytes)),
        }
    }
}

/// Checks made after the flags and before anything is changed.
pub fn check_privileges() -> Result<(), InputError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(InputError(
            "aegis-bench attack loads BPF programs and creates cgroups, which needs root: run it \
             with sudo (or as root)"
                .into(),
        ));
    }
    Ok(())
}

/// The state shared by a run's trials: checked privileges, signal handling, a work
/// directory, stale state from a killed run cleaned up, tracefs mounted, and each workload's
/// no-attack throughput per scheduler (measured before its first trial).
pub struct Bench {
    work_dir: tempfile::TempDir,
    root: PathBuf,
    _tracefs: mounts::TracefsGuard,
    alone: Vec<(String, &'static str, f64)>,
    serial: u32,
}

impl Bench {
    /// Prepares the machine for trials; `uses_audit` when a trial will run auditd.
    pub fn open(uses_audit: bool) -> Result<Bench> {
        check_privileges()?;
        signals::install()?;
        let work_dir = tempfile::Builder::new()
            .prefix("aegis-bench-")
            .tempdir()
            .context("creating a work directory")?;
        if audit_state::recover_stale(uses_audit, work_dir.path())? {
            crate::say!(
                "note: restored the audit rules and settings an aegis-bench that was killed left \
                 behind"
            );
        }
        if uses_audit {
            collector::check_available(CollectorKind::Auditd, None)?;
        }
        let root = cgroup::cgroup2_root()?;
        let stale = cgroup::remove_stale(&root);
        if stale > 0 {
            crate::say!(
                "note: removed {stale} attack cgroup(s) left by an aegis-bench that was killed"
            );
        }
        let tracefs = mounts::ensure_tracefs()?;
        if tracefs.mounted_by_us() {
            crate::say!(
                "note: mounted tracefs at {} for this run (unmounted afterwards)",
                mounts::TRACEFS
            );
        }
        Ok(Bench {
            work_dir,
            root,
            _tracefs: tracefs,
            alone: Vec::new(),
            serial: 0,
        })
    }

    /// Runs one trial of `plan` (its workload's baseline first, if not measured yet).
    pub fn run(&mut self, plan: &Plan, spec: &TrialSpec) -> Result<Trial> {
        signals::check()?;
        let scheduler = plan.scheduler_name(spec);
        let alone_per_s = match spec.workload {
            None => None,
            Some(name) => {
                let known = self
                    .alone
                    .iter()
                    .find(|(s, w, _)| *s == scheduler && *w == name)
                    .map(|(_, _, per_s)| *per_s);
                let per_s = match known {
                    Some(per_s) => per_s,
                    None => {
                        let per_s = run_alone(
                            plan,
                            &spec.scheduler,
                            name,
                            &self.root,
                            self.work_dir.path(),
                            self.alone.len() as u32,
                        )
                        .with_context(|| {
                            format!("workload {name} alone under {scheduler} (the baseline)")
                        })?;
                        self.alone.push((scheduler.clone(), name, per_s));
                        per_s
                    }
                };
                Some(per_s)
            }
        };
        let serial = self.serial;
        self.serial += 1;
        run_trial(
            plan,
            spec,
            &self.root,
            self.work_dir.path(),
            serial,
            alone_per_s,
        )
    }
}

/// Runs the plan and returns the trials (also printed and exported).
pub fn run_attack(plan: &Plan) -> Result<Vec<Trial>> {
    let mut bench = Bench::open(plan.collectors.contains(&CollectorKind::Auditd))?;
    if let Some(dir) = &plan.keep_logs {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let exporters = Exporters::new(plan.json.clone(), plan.csv.clone());
    let specs = plan.trials();
    let mut trials = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        signals::check()?;
        crate::say!(
            "trial {}/{}: {}",
            index + 1,
            specs.len(),
            plan.describe(spec)
        );
        let trial = bench
            .run(plan, spec)
            .with_context(|| format!("trial {}", index + 1))?;
        trials.push(trial);
        exporters.write(&trials)?;
    }
    println!("{}", table::render(&trials));
    for path in exporters.paths() {
        println!("wrote {}", path.display());
    }
    Ok(trials)
}

fn progress_bar(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("  flooding [{bar:30}] {elapsed_precise}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Runs workload `name` alone, under `scheduler` and without attack or collector, for the
/// plan's duration: the no-attack baseline. Returns its throughput per second.
fn run_alone(
    plan: &Plan,
    scheduler: &SchedulerSpec,
    name: &'static str,
    root: &Path,
    work_dir: &Path,
    serial: u32,
) -> Result<f64> {
    crate::say!(
        "  {name} alone under {} for {} s (the no-attack baseline)",
        scheduler.name(),
        plan.duration.as_secs_f64()
    );
    let dir = work_dir.join(format!("alone-{serial}"));
    std::fs::create_dir_all(&dir)?;
    let mut scx = match scheduler {
        SchedulerSpec::SchedExt { name, binary } => {
            // The user's scheduler arguments apply here too (an ablation is compared with its
            // own baseline); there is no collector to register.
            Some(RunningScx::start(name, binary, &plan.scx_args, &dir)?)
        }
        SchedulerSpec::Fair { .. } => None,
    };
    let running =
        RunningWorkload::start(name, root, &format!("alone{serial}"), plan.duration, &dir)?;
    let (result, _) = running.finish()?;
    if let Some(mut running) = scx.take() {
        running.check_alive()?;
        running.stop()?;
    }
    let (per_s, unit) = workload::throughput(&result)?;
    crate::say!("  {name} alone: {per_s:.1} {unit}");
    Ok(per_s)
}

fn run_trial(
    plan: &Plan,
    spec: &TrialSpec,
    root: &Path,
    work_dir: &Path,
    serial: u32,
    alone_per_s: Option<f64>,
) -> Result<Trial> {
    let trial_dir = work_dir.join(format!("trial-{serial}"));
    std::fs::create_dir_all(&trial_dir)?;
    let started_at = now_rfc3339();

    // Arm.
    let cgroup = AttackCgroup::create(root, serial)?;
    let mut truth_object = MaybeUninit::uninit();
    let truth = GroundTruth::attach(&mut truth_object, cgroup.id())?;
    let flood_kind = match &plan.producer {
        ProducerPlan::Flood { spec, .. } => Some(spec.kind),
        ProducerPlan::Command(_) => None,
    };
    let mut collector = collector::start(
        spec.collector,
        &CollectorSetup {
            cgroup_id: cgroup.id(),
            ring_bytes: spec.ring_bytes,
            work_dir: &trial_dir,
            flood: flood_kind,
            audit: spec.audit,
            pin_ring: match &spec.scheduler {
                SchedulerSpec::SchedExt { name, .. } if name == "aegis" => {
                    crate::sched::aegis::ring_pin_path(serial)
                }
                _ => None,
            },
        },
    )?;
    // Collector-side baselines change the collector's threads; attack-side ones are applied
    // by the attack worker to itself before it joins the cgroup.
    let variant = spec.scheduler.variant();
    let collector_policy = match variant {
        Some(v @ (FairVariant::CollectorFifo | FairVariant::CollectorNice)) => {
            Some(ChangedThreads::apply(collector.pid(), v)?)
        }
        _ => None,
    };
    let quota_group = match variant {
        Some(FairVariant::AttackQuota) => Some(CpuQuotaGroup::create(serial, ATTACK_QUOTA_PCT)?),
        _ => None,
    };
    let placement = Placement {
        nice: (variant == Some(FairVariant::AttackNice)).then_some(ATTACK_NICE),
        extra_cgroup_procs: quota_group.iter().map(|g| g.procs_file()).collect(),
    };
    let aegis_stats_file = trial_dir.join("scx_aegis-stats.json");
    let mut scx = match &spec.scheduler {
        SchedulerSpec::SchedExt { name, binary } => {
            let mut args = match name.as_str() {
                "aegis" => crate::sched::aegis::args(
                    collector.pid(),
                    collector.pinned_ring().as_deref(),
                    &aegis_stats_file,
                ),
                _ => Vec::new(),
            };
            args.extend(plan.scx_args.iter().cloned());
            Some(RunningScx::start(name, binary, &args, &trial_dir)?)
        }
        SchedulerSpec::Fair { .. } => None,
    };
    let sched_ext_ops = match &scx {
        Some(running) => Some(running.ops().to_string()),
        None => kernel::sched_ext_ops(),
    };
    inject_fault("armed")?;

    // Fire.
    let canary = PathBuf::from(format!("/tmp/aegis-canary-{:016x}", rand::random::<u64>()));
    let flood_spec = match &plan.producer {
        ProducerPlan::Flood { spec: base, .. } => Some(FloodSpec {
            threads: spec.threads,
            ..base.clone()
        }),
        ProducerPlan::Command(_) => None,
    };
    let producer = match (&flood_spec, &plan.producer) {
        (Some(flood), _) => Producer::Flood(flood),
        (None, ProducerPlan::Command(argv)) => Producer::Command {
            argv,
            duration: plan.duration,
        },
        (None, ProducerPlan::Flood { .. }) => unreachable!("flood plans carry a spec"),
    };
    // The collector's threads exist once it is attached; its counters run through its drain.
    let collector_counters = (collector.pid() != 0).then(|| {
        use crate::perf_counters::{Counted, ProcessCounters};
        let all = [Counted::SOFTWARE, Counted::HARDWARE].concat();
        ProcessCounters::open(collector.pid(), &all)
    });
    let run_delay = if plan.watch_run_delay {
        Some(RunDelayWatch::start(Watched {
            cgroups: vec![("attack", cgroup.path().to_path_buf())],
            pids: vec![("collector", collector.pid())],
        })?)
    } else {
        None
    };
    let bar = progress_bar(plan.duration);
    // Once the worker is in its cgroup and before it floods, a collector scoped by pid learns
    // its pid, and the workload starts (in its own cgroup), so both begin with the flood.
    let needs_pid = collector.needs_attack_pid();
    let mut beside: Option<RunningWorkload> = None;
    let mut attack_counters = None;
    let mut on_joined = |pid: u32| -> Result<()> {
        // The worker's threads exist and are parked at the gate: counted from before the
        // flood, with anything they start later inherited.
        attack_counters = Some(crate::perf_counters::ProcessCounters::open(
            pid,
            &crate::perf_counters::Counted::SOFTWARE,
        ));
        if needs_pid {
            collector.attack_joined(pid)?;
        }
        if let Some(name) = spec.workload {
            let mut workload =
                RunningWorkload::start(name, root, &serial.to_string(), plan.duration, &trial_dir)?;
            // The flood is released when this returns: the workload is at work by then.
            workload.wait_until_working()?;
            if let Some(watch) = &run_delay {
                watch.add_cgroup("workload", workload.cgroup_path().to_path_buf());
            }
            beside = Some(workload);
            inject_fault("workload")?;
        }
        Ok(())
    };
    // Always gated: the attack's perf counters are opened at the gate.
    let report = producer::run(
        &producer,
        &placement,
        &cgroup.procs_file(),
        &trial_dir,
        &canary,
        Some(&mut on_joined as producer::OnJoined<'_>),
        |elapsed| bar.set_position(elapsed.as_millis() as u64),
    );
    bar.finish_and_clear();
    let run_delay = run_delay.map(RunDelayWatch::finish);
    // The worker has exited: every flood thread's count is final.
    let attack_totals = attack_counters
        .map(|counters| counters.finish("the attack"))
        .unwrap_or_default();
    let report = report?;

    // Disarm: nothing may still run in the cgroup when the counts are read.
    cgroup.kill_all(Duration::from_secs(10))?;
    // The workload ends with the attack (same duration); the scheduler stays until it has.
    let beside_result = match beside.take() {
        Some(running) => Some(running.finish()?),
        None => None,
    };
    let attack_cpu_s = cgroup.cpu_usage_s();
    if let Some(running) = scx.as_mut() {
        running.check_alive()?;
    }
    let policy_restored = match collector_policy {
        Some(changed) => Some(changed.restore()? > 0),
        // Attack-side policies die with the attack's processes.
        None => None,
    };
    let log_path = collector.log_path();
    let traced = collector.traced_syscalls();
    let stats = collector.stop()?;
    // Read once it has drained and exited, like its CPU time.
    let collector_totals = collector_counters
        .map(|counters| counters.finish("the collector"))
        .unwrap_or_default();
    let scheduler_stats = match scx.take() {
        Some(running) => {
            running.stop()?;
            crate::sched::aegis::read_stats(&aegis_stats_file)?
        }
        None => None,
    };
    truth.check_complete()?;
    let truth_counts = truth.counts(cgroup.id())?;
    drop(truth);
    drop(cgroup);
    drop(quota_group);

    // Account.
    let accounted = account(&Measured {
        truth: &truth_counts,
        attack: &report,
        collector: &stats,
        traced: &traced,
    })?;
    let canary_seen = collector.find_canary(&canary)?;
    let collector_version = collector.version();
    drop(collector);
    let kept_log = match &plan.keep_logs {
        Some(dir) => {
            let kept = dir.join(format!("trial-{serial}-{}.log", spec.collector.name()));
            std::fs::copy(&log_path, &kept)
                .with_context(|| format!("keeping {}", kept.display()))?;
            Some(kept)
        }
        None => None,
    };
    std::fs::remove_file(&log_path).ok();
    if let Some(kept) = kept_log {
        crate::say!("  log kept in {}", kept.display());
    }

    let (workload_per_s, workload_unit) = match &beside_result {
        Some((result, wall_s)) => {
            if let Some(warning) = workload::outlasted(&result.name, *wall_s, report.flood_secs()) {
                crate::say!("  {warning}");
            }
            let (per_s, unit) = workload::throughput(result)?;
            (Some(per_s), Some(unit))
        }
        None => (None, None),
    };
    let workload_kept_fraction = workload_per_s
        .zip(alone_per_s)
        .and_then(|(beside, alone)| workload::kept_fraction(beside, alone));
    if let (Some(name), Some(per_s), Some(unit)) = (spec.workload, workload_per_s, &workload_unit) {
        crate::say!(
            "  {name} beside the attack: {per_s:.1} {unit}, {} of its throughput alone",
            workload_kept_fraction.map_or("?".to_string(), |kept| format!("{kept:.2}"))
        );
    }

    let workload_fairness = run_delay.as_ref().and_then(|r| r.fairness("workload"));
    let attack_fairness = run_delay.as_ref().and_then(|r| r.fairness("attack"));
    let flood_s = report.flood_secs();
    let attack_syscalls: u64 = report.syscalls.values().sum();
    let per_s = |n: u64| {
        if flood_s > 0.0 {
            n as f64 / flood_s
        } else {
            0.0
        }
    };
    Ok(Trial {
        trial_id: plan.trial_id(spec),
        scheduler: plan.scheduler_name(spec),
        sched_ext_ops,
        collector: spec.collector.name().to_string(),
        collector_version,
        flood: flood_spec
            .as_ref()
            .map_or("cmd".to_string(), |flood| flood.kind.name().to_string()),
        cmd: match &plan.producer {
            ProducerPlan::Command(argv) => Some(shell_words::join(argv)),
            ProducerPlan::Flood { .. } => None,
        },
        threads: spec.threads,
        ring_size_bytes: spec.ring_bytes,
        repetition: spec.repetition,
        generated: accounted.generated,
        traced_syscalls: traced.iter().map(|nr| crate::syscalls::name(*nr)).collect(),
        received: stats.received,
        dropped: stats.dropped,
        loss_pct: accounted.loss_pct,
        canary_recorded: canary_seen.created && canary_seen.unlinked,
        canary_create_recorded: canary_seen.created,
        canary_unlink_recorded: canary_seen.unlinked,
        canary_path: report.canary.as_ref().map(|c| c.path.clone()),
        attack_rate: per_s(attack_syscalls),
        attack_syscalls,
        delivered_per_s: per_s(stats.received),
        collector_cpu_s: stats.cpu_s(),
        collector_consuming_cpu_s: stats.consuming_cpu_s,
        collector_sleeps: stats.consuming_sleeps,
        collector_preemptions: stats.consuming_preemptions,
        attack_cpu_s,
        received_per_collector_cpu_s: if stats.cpu_s() > 0.0 {
            stats.received as f64 / stats.cpu_s()
        } else {
            0.0
        },
        collector_wakeups: stats.wakeups,
        collector_wakeup_age_ns: stats.wakeup_age_histogram.clone(),
        collector_stall_ns: stats.stall_histogram.clone(),
        collector_self_detected_lost: stats.self_detected_lost,
        duration_s: flood_s,
        requested_duration_s: plan.duration.as_secs_f64(),
        count: flood_spec.as_ref().and_then(|f| f.count),
        rate: flood_spec.as_ref().and_then(|f| f.rate_per_s),
        truth_by_syscall: by_name(&truth_counts),
        attack_by_syscall: by_name(&report.syscalls),
        incidental_syscalls: accounted.incidental_syscalls,
        kernel: kernel::release(),
        machine: kernel::hostname(),
        git_rev: crate::GIT_REV.to_string(),
        applied_policy: variant.map(FairVariant::applied),
        policy_restored,
        audit: stats.audit.clone(),
        scheduler_stats,
        started_at,
        workload: spec.workload.map(String::from),
        workload_throughput_per_s: workload_per_s,
        workload_throughput_unit: workload_unit,
        workload_alone_throughput_per_s: spec.workload.and(alone_per_s),
        workload_kept_fraction,
        run_delay_max_ms: run_delay.as_ref().map(|r| r.max_wait_ms),
        run_delay_max_task: run_delay.as_ref().and_then(|r| r.max_wait_task.clone()),
        run_delay_max_sample_gap_ms: run_delay.as_ref().map(|r| r.max_sample_gap_ms),
        run_delay_p50_ms: run_delay.as_ref().and_then(|r| r.p50_wait_ms),
        run_delay_p99_ms: run_delay.as_ref().and_then(|r| r.p99_wait_ms),
        run_delay_cdf_ms: run_delay
            .as_ref()
            .map(|r| r.cdf_ms.clone())
            .filter(|cdf| !cdf.is_empty()),
        fairness_workload_jain: workload_fairness.map(|(jain, _)| jain),
        fairness_workload_tasks: workload_fairness.map(|(_, tasks)| tasks),
        fairness_attack_jain: attack_fairness.map(|(jain, _)| jain),
        fairness_attack_tasks: attack_fairness.map(|(_, tasks)| tasks),
        collector_context_switches: collector_totals.context_switches,
        collector_cpu_migrations: collector_totals.cpu_migrations,
        attack_context_switches: attack_totals.context_switches,
        attack_cpu_migrations: attack_totals.cpu_migrations,
        collector_cycles: collector_totals.cycles,
        collector_instructions: collector_totals.instructions,
        hardware_counters_unavailable: collector_totals.hardware_unavailable,
        collector_cpu_share: (flood_s > 0.0).then(|| stats.cpu_s() / flood_s),
        scheduler_args: match &spec.scheduler {
            SchedulerSpec::SchedExt { .. } if !plan.scx_args.is_empty() => {
                Some(shell_words::join(&plan.scx_args))
            }
            _ => None,
        },
    })
}

/// Fault injection for the clean-up tests: `AEGIS_BENCH_INJECT_FAULT=panic` or `=error` fails
/// the trial once everything is armed (stage `armed`), `panic@workload` or `error@workload`
/// once the workload beside the attack has started (stage `workload`), so the tests can check
/// that every exit path puts the kernel back.
fn inject_fault(stage: &str) -> Result<()> {
    let wanted = std::env::var("AEGIS_BENCH_INJECT_FAULT").unwrap_or_default();
    let (kind, at) = wanted.split_once('@').unwrap_or((&wanted, "armed"));
    if at != stage {
        return Ok(());
    }
    match kind {
        "panic" => panic!("fault injected at {stage} (AEGIS_BENCH_INJECT_FAULT={wanted})"),
        "error" => anyhow::bail!("fault injected at {stage} (AEGIS_BENCH_INJECT_FAULT={wanted})"),
        _ => Ok(()),
    }
}
