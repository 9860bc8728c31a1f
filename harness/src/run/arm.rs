//! Arm: the attack's cgroup, ground truth, the collector, a fair-class baseline's changes and
//! the sched_ext scheduler, started in that order and owned by [`Armed`]. Under
//! `--trace-scope all` the switch ground truth and the collector share is turned on once both
//! are attached, with the collector's process left out.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use anyhow::Result;
use libbpf_rs::OpenObject;

use crate::collector::{self, CollectorSetup, RunningCollector, SharedScope};
use crate::measure::cgroup::AttackCgroup;
use crate::measure::kernel;
use crate::measure::truth::GroundTruth;
use crate::run::producer::Placement;
use crate::sched::policy::{
    ChangedThreads, CpuQuotaGroup, FairVariant, ATTACK_NICE, ATTACK_QUOTA_PCT,
};
use crate::sched::scx::RunningScx;
use crate::sched::SchedulerSpec;

use super::plan::ProducerPlan;
use super::trial::Setup;

/// A trial with everything that counts, records and schedules the attack running. Fields drop
/// in declaration order: a trial that ends early releases them in the reverse of the order
/// they were started in, the scheduler first and the attack's cgroup last.
pub(super) struct Armed<'t> {
    pub(super) scx: Option<RunningScx>,
    /// The `eevdf:attack-quota` baseline's CPU-limited cgroup the attack worker also joins.
    pub(super) quota_group: Option<CpuQuotaGroup>,
    /// The collector's threads under a collector-side baseline, put back when dropped.
    pub(super) collector_policy: Option<ChangedThreads>,
    pub(super) collector: Box<dyn RunningCollector>,
    /// Borrows the BPF object [`super::trial::run_trial`] keeps for it.
    pub(super) truth: GroundTruth<'t>,
    pub(super) cgroup: AttackCgroup,
    pub(super) variant: Option<FairVariant>,
    pub(super) placement: Placement,
    pub(super) aegis_stats_file: PathBuf,
    /// `/sys/kernel/sched_ext/root/ops` once armed.
    pub(super) sched_ext_ops: Option<String>,
    /// `--trace-scope all`: the switch is on until disarmed.
    pub(super) trace_all: bool,
    /// Ground truth keeps the attack's thread ids, for a collector that sees the whole
    /// machine.
    pub(super) record_tids: bool,
    /// Ground truth counts the LSM hooks, for a collector that records them.
    pub(super) hooks: bool,
}

impl<'t> Armed<'t> {
    /// Starts each part in turn; when one fails, those already started are released in
    /// reverse order.
    pub(super) fn arm(
        setup: &Setup<'_>,
        truth_object: &'t mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        let (spec, serial) = (setup.spec, setup.serial);
        let cgroup = AttackCgroup::create(setup.root, serial)?;
        let scope = setup.plan.trace_scope;
        let record_tids = setup.spec.collector.sees_whole_machine();
        let hooks = setup.spec.collector.records_hooks();
        let truth = GroundTruth::attach(truth_object, cgroup.id(), scope, record_tids, hooks)?;
        let shared = scope.is_all().then(|| truth.shared_scope()).transpose()?;
        let collector = start_collector(setup, cgroup.id(), shared)?;
        if shared.is_some() {
            truth.switch_on(collector.pid())?;
        }
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
            Some(FairVariant::AttackQuota) => Some(CpuQuotaGroup::create(
                serial,
                ATTACK_QUOTA_PCT,
                cgroup.path(),
            )?),
            _ => None,
        };
        let placement = Placement {
            nice: (variant == Some(FairVariant::AttackNice)).then_some(ATTACK_NICE),
            extra_cgroup_procs: quota_group.iter().filter_map(|g| g.procs_file()).collect(),
        };
        let aegis_stats_file = setup.trial_dir.join("scx_aegis-stats.json");
        let scx = start_scx(setup, collector.as_ref(), &aegis_stats_file)?;
        let sched_ext_ops = match &scx {
            Some(running) => Some(running.ops().to_string()),
            None => kernel::sched_ext_ops(),
        };
        Ok(Self {
            scx,
            quota_group,
            collector_policy,
            collector,
            truth,
            cgroup,
            variant,
            placement,
            aegis_stats_file,
            sched_ext_ops,
            trace_all: shared.is_some(),
            record_tids,
            hooks,
        })
    }
}

fn start_collector(
    setup: &Setup<'_>,
    cgroup_id: u64,
    scope: Option<SharedScope>,
) -> Result<Box<dyn RunningCollector>> {
    let spec = setup.spec;
    let flood = match &setup.plan.producer {
        ProducerPlan::Flood { spec, .. } => Some(spec.kind),
        ProducerPlan::Command(_) => None,
    };
    // Aegis and the freeze-on-fill baseline read the fill of the collector's ring buffer
    // where the collector pins it.
    let pin_ring = match &spec.scheduler {
        SchedulerSpec::SchedExt { name, .. } if name == "aegis" => {
            crate::sched::aegis::ring_pin_path(setup.serial)
        }
        SchedulerSpec::Fair {
            variant: Some(FairVariant::FreezeOnFill),
            ..
        } => {
            if !crate::sched::aegis::bpffs_mounted() {
                return Err(crate::error::InputError(
                    "freeze-on-fill reads the collector's ring through bpffs, which is not \
                     mounted: mount it (mount -t bpf bpf /sys/fs/bpf) or run in a guest (--vm)"
                        .into(),
                )
                .into());
            }
            crate::sched::aegis::ring_pin_path(setup.serial)
        }
        _ => None,
    };
    collector::start(
        spec.collector,
        &CollectorSetup {
            cgroup_id,
            buffer: spec.buffer,
            work_dir: &setup.trial_dir,
            flood,
            pin_ring,
            scope,
            eaudit_dir: setup.plan.eaudit_dir.as_deref(),
        },
    )
}

/// Starts the sched_ext scheduler, if the trial has one, once the collector it may favour
/// runs.
fn start_scx(
    setup: &Setup<'_>,
    collector: &dyn RunningCollector,
    aegis_stats_file: &Path,
) -> Result<Option<RunningScx>> {
    let SchedulerSpec::SchedExt { name, binary } = &setup.spec.scheduler else {
        return Ok(None);
    };
    let mut args = match name.as_str() {
        "aegis" => crate::sched::aegis::args(
            collector.pid(),
            collector.pinned_ring().as_deref(),
            aegis_stats_file,
        ),
        _ => Vec::new(),
    };
    args.extend(setup.plan.scx_args.iter().cloned());
    RunningScx::start(name, binary, &args, &setup.trial_dir).map(Some)
}
