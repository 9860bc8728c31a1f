//! Ground truth: a BPF counter on `raw_syscalls/sys_enter` keyed by (cgroup id, syscall) that
//! only increments. It has no buffer to overflow; the two ways a count could be missed (a key
//! that could not be inserted, a program run the kernel skipped for recursion) are both read
//! back and turn the trial into an error.
//!
//! Under `--trace-scope all` it also counts every other task's syscalls by group (the
//! workload's cgroup, the rest of the machine), except the collector's, while the shared switch
//! is on, and owns the maps the collector shares that switch through ([`SharedScope`]).
//!
//! For a collector that records the whole machine (sysdig) it also keeps the ids of the
//! threads whose syscalls it counted ([`GroundTruth::attack_tids`]): the collector's records of
//! exactly those threads are the attack's.
//!
//! For the collector at the BPF-LSM hooks (`builtin-lsm`) it also counts the runs of those
//! hooks in the attack's cgroup, by the syscall each ran in ([`GroundTruth::hook_counts`]). BPF
//! LSM programs run in the hook itself, so this count, too, has nothing to drop.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::MaybeUninit;

use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use crate::bpf_intf::MAX_SYSCALL_NR;
use crate::results::scope::{TraceGroup, TraceScope};
use crate::skel::truth::{TruthSkel, TruthSkelBuilder};

/// Name of the BPF program, as `bpftool prog` lists it.
pub const PROG_NAME: &str = "aegis_truth";

/// `--trace-scope all`: the ids of ground truth's scope maps (`bpf/scope.h`), which the
/// built-in collector's BPF object reuses, so that both programs read one switch and one table
/// of groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedScope {
    pub state_map_id: u32,
    pub groups_map_id: u32,
}

impl SharedScope {
    /// Makes the collector's (not yet loaded) scope maps ground truth's.
    pub fn reuse<'obj>(
        &self,
        state: &mut libbpf_rs::OpenMapMut<'obj>,
        groups: &mut libbpf_rs::OpenMapMut<'obj>,
    ) -> Result<()> {
        for (map, id) in [(state, self.state_map_id), (groups, self.groups_map_id)] {
            let shared = libbpf_rs::MapHandle::from_map_id(id)
                .with_context(|| format!("opening ground truth's scope map (id {id})"))?;
            map.reuse_fd(shared.as_fd())
                .with_context(|| format!("reusing ground truth's scope map (id {id})"))?;
        }
        Ok(())
    }
}

/// A per-CPU `truth_key -> count` map's counts for `cgroup_id`, by syscall, summed over CPUs.
fn per_syscall(map: &libbpf_rs::MapMut<'_>, cgroup_id: u64) -> Result<BTreeMap<u32, u64>> {
    let mut counts = BTreeMap::new();
    for key in map.keys() {
        let key_cgroup = u64::from_ne_bytes(key[0..8].try_into().unwrap());
        if key_cgroup != cgroup_id {
            continue;
        }
        let nr = u32::from_ne_bytes(key[8..12].try_into().unwrap());
        let per_cpu = map
            .lookup_percpu(&key, MapFlags::ANY)?
            .context("ground-truth key vanished")?;
        let total: u64 = per_cpu
            .iter()
            .map(|value| u64::from_ne_bytes(value[..8].try_into().unwrap()))
            .sum();
        counts.insert(nr, total);
    }
    Ok(counts)
}

/// Loads (without attaching) the hook counters, to learn whether this kernel accepts BPF-LSM
/// programs at all: one can be active and still refused (a lockdown, a sandbox's policy).
pub fn check_hooks_load() -> Result<()> {
    let mut object = MaybeUninit::uninit();
    let mut open = TruthSkelBuilder::default()
        .open(&mut object)
        .context("opening the ground-truth BPF object")?;
    open.progs.aegis_truth_file_open.set_autoload(true);
    // The refusal is reported in one line; libbpf's own account of it would be noise.
    let print = libbpf_rs::set_print(None);
    let loaded = open.load().map(drop);
    libbpf_rs::set_print(print);
    loaded.context("the kernel refused to load a BPF-LSM program")
}

/// The loaded and attached counter; detached on drop.
pub struct GroundTruth<'obj> {
    skel: TruthSkel<'obj>,
}

impl<'obj> GroundTruth<'obj> {
    /// Loads the counter, watches `cgroup_id` and attaches it; under `scope` all, ready to count
    /// the other groups once [`GroundTruth::switch_on`] is called.
    pub fn attach(
        object: &'obj mut MaybeUninit<OpenObject>,
        cgroup_id: u64,
        scope: TraceScope,
        record_tids: bool,
        hooks: bool,
    ) -> Result<Self> {
        let mut open = TruthSkelBuilder::default()
            .open(object)
            .context("opening the ground-truth BPF object")?;
        if hooks {
            let progs = &mut open.progs;
            for prog in [
                &mut progs.aegis_truth_file_open,
                &mut progs.aegis_truth_path_unlink,
                &mut progs.aegis_truth_bprm_check,
                &mut progs.aegis_truth_socket_connect,
            ] {
                prog.set_autoload(true);
            }
        }
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("ground-truth BPF object has no .rodata")?;
        rodata.trace_all = scope.is_all() as u8;
        rodata.record_tids = record_tids as u8;
        let mut skel = open
            .load()
            .context("loading the ground-truth BPF program (needs root and BPF tracepoints)")?;
        skel.maps
            .watched_cgroups
            .update(&cgroup_id.to_ne_bytes(), &[1u8], MapFlags::ANY)
            .context("watching the attack cgroup")?;
        skel.attach()
            .context("attaching the ground-truth counter to raw_syscalls/sys_enter (and, for builtin-lsm, to the LSM hooks)")?;
        Ok(Self { skel })
    }

    /// The ids of the scope maps, for the collector to reuse.
    pub fn shared_scope(&self) -> Result<SharedScope> {
        Ok(SharedScope {
            state_map_id: self.skel.maps.scope_state.info()?.info.id,
            groups_map_id: self.skel.maps.scope_groups.info()?.info.id,
        })
    }

    /// Counts the tasks of `cgroup_id` as `group`. Call it before any task is in the cgroup,
    /// so that no event sees its group change.
    pub fn classify(&self, cgroup_id: u64, group: TraceGroup) -> Result<()> {
        self.skel
            .maps
            .scope_groups
            .update(
                &cgroup_id.to_ne_bytes(),
                &[group.index() as u8],
                MapFlags::ANY,
            )
            .with_context(|| format!("classing cgroup {cgroup_id} as {}", group.name()))
    }

    /// Turns counting and recording of every group on, except the collector's process
    /// `collector_tgid`: once ground truth and the collector are both attached.
    pub fn switch_on(&self, collector_tgid: u32) -> Result<()> {
        // The tgid first, on its own: the switch's second write changes only `armed`, so a
        // program reading the value meanwhile never sees `armed` with another tgid.
        self.write_scope_state(0, collector_tgid)?;
        self.write_scope_state(1, collector_tgid)
    }

    /// Turns it off: before the collector or ground truth is detached.
    pub fn switch_off(&self) -> Result<()> {
        let value = self
            .skel
            .maps
            .scope_state
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)?
            .context("the scope switch is missing")?;
        let tgid = u32::from_ne_bytes(value[4..8].try_into().unwrap());
        self.write_scope_state(0, tgid)
    }

    fn write_scope_state(&self, armed: u32, collector_tgid: u32) -> Result<()> {
        let mut value = [0u8; 8];
        value[..4].copy_from_slice(&armed.to_ne_bytes());
        value[4..].copy_from_slice(&collector_tgid.to_ne_bytes());
        self.skel
            .maps
            .scope_state
            .update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
            .context("switching --trace-scope all's tracing")
    }

    /// Syscall counts of `group` (not the attack, which [`GroundTruth::counts`] reads), summed
    /// over CPUs.
    pub fn group_counts(&self, group: TraceGroup) -> Result<BTreeMap<u32, u64>> {
        let map = &self.skel.maps.group_counts;
        let mut counts = BTreeMap::new();
        for nr in 0..MAX_SYSCALL_NR as u32 {
            let index = group.index() as u32 * MAX_SYSCALL_NR as u32 + nr;
            let per_cpu = map
                .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)?
                .context("ground truth's group counter missing")?;
            let total: u64 = per_cpu
                .iter()
                .map(|value| u64::from_ne_bytes(value[..8].try_into().unwrap()))
                .sum();
            if total > 0 {
                counts.insert(nr, total);
            }
        }
        Ok(counts)
    }

    /// Syscall counts of `cgroup_id`, summed over CPUs.
    pub fn counts(&self, cgroup_id: u64) -> Result<BTreeMap<u32, u64>> {
        per_syscall(&self.skel.maps.truth_counts, cgroup_id)
    }

    /// Runs of the LSM hooks by the tasks of `cgroup_id`, by the syscall each ran in, summed
    /// over CPUs (attached with `hooks`).
    pub fn hook_counts(&self, cgroup_id: u64) -> Result<BTreeMap<u32, u64>> {
        per_syscall(&self.skel.maps.hook_counts, cgroup_id)
    }

    /// The threads whose syscalls were counted (attached with `record_tids`).
    pub fn attack_tids(&self) -> Result<BTreeSet<u32>> {
        let map = &self.skel.maps.attack_tids;
        Ok(map
            .keys()
            .map(|key| u32::from_ne_bytes(key[..4].try_into().unwrap()))
            .collect())
    }

    /// Fails unless every syscall entry was counted (and, with `record_tids`, every thread
    /// kept).
    pub fn check_complete(&self) -> Result<()> {
        let (insert_failures, tid_failures) = self
            .skel
            .maps
            .bss_data
            .as_ref()
            .map(|bss| (bss.nr_insert_failures, bss.nr_tid_insert_failures))
            .unwrap_or((0, 0));
        if insert_failures > 0 {
            bail!("the ground-truth counter could not insert {insert_failures} keys: its counts are incomplete");
        }
        if tid_failures > 0 {
            bail!("ground truth could not keep {tid_failures} of the attack's thread ids (its table is full): the collector's records cannot be matched to the attack");
        }
        // Every program of the object that was loaded: the syscall counter, and the hook
        // counters when asked for.
        let prog_ids: BTreeSet<u32> = self
            .skel
            .object()
            .progs()
            .filter(|prog| prog.autoload())
            .map(|prog| libbpf_rs::Program::id_from_fd(prog.as_fd()))
            .collect::<Result<_, _>>()?;
        let loaded: Vec<_> = libbpf_rs::query::ProgInfoIter::default()
            .filter(|info| prog_ids.contains(&info.id))
            .collect();
        if loaded.len() != prog_ids.len() {
            bail!("a ground-truth program is no longer loaded");
        }
        for info in loaded {
            if info.recursion_misses > 0 {
                bail!(
                    "the kernel skipped the ground-truth program {} {} times (recursion): its \
                     counts are incomplete",
                    info.name.to_string_lossy(),
                    info.recursion_misses
                );
            }
        }
        Ok(())
    }
}
