//! The plan: the flags validated once into everything `attack` will do, and its trials.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use attacks::FloodSpec;

use crate::cli::AttackArgs;
use crate::collector::{self, auditd, AuditSettings, CollectorKind};
use crate::error::InputError;
use crate::run::workload::{self};
use crate::sched::{self, SchedulerSpec};
use crate::size::{format_size, parse_ring_size};

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
            let hz = crate::measure::kernel::hz();
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
