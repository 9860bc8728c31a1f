//! Ground truth: a BPF counter on `raw_syscalls/sys_enter` keyed by (cgroup id, syscall) that
//! only increments. It has no buffer to overflow; the two ways a count could be missed (a key
//! that could not be inserted, a program run the kernel skipped for recursion) are both read
//! back and turn the trial into an error.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;

use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use crate::skel::truth::{TruthSkel, TruthSkelBuilder};

/// Name of the BPF program, as `bpftool prog` lists it.
pub const PROG_NAME: &str = "aegis_truth";

/// The loaded and attached counter; detached on drop.
pub struct GroundTruth<'obj> {
    skel: TruthSkel<'obj>,
}

impl<'obj> GroundTruth<'obj> {
    /// Loads the counter, watches `cgroup_id` and attaches it.
    pub fn attach(object: &'obj mut MaybeUninit<OpenObject>, cgroup_id: u64) -> Result<Self> {
        let open = TruthSkelBuilder::default()
            .open(object)
            .context("opening the ground-truth BPF object")?;
        let mut skel = open
            .load()
            .context("loading the ground-truth BPF program (needs root and BPF tracepoints)")?;
        skel.maps
            .watched_cgroups
            .update(&cgroup_id.to_ne_bytes(), &[1u8], MapFlags::ANY)
            .context("watching the attack cgroup")?;
        skel.attach()
            .context("attaching the ground-truth counter to raw_syscalls/sys_enter")?;
        Ok(Self { skel })
    }

    /// Syscall counts of `cgroup_id`, summed over CPUs.
    pub fn counts(&self, cgroup_id: u64) -> Result<BTreeMap<u32, u64>> {
        let map = &self.skel.maps.truth_counts;
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

    /// Fails unless every syscall entry was counted.
    pub fn check_complete(&self) -> Result<()> {
        let insert_failures = self
            .skel
            .maps
            .bss_data
            .as_ref()
            .map(|bss| bss.nr_insert_failures)
            .unwrap_or(0);
        if insert_failures > 0 {
            bail!("the ground-truth counter could not insert {insert_failures} keys: its counts are incomplete");
        }
        let prog_id = libbpf_rs::Program::id_from_fd(self.skel.progs.aegis_truth.as_fd())?;
        let misses = libbpf_rs::query::ProgInfoIter::default()
            .find(|info| info.id == prog_id)
            .map(|info| info.recursion_misses)
            .context("the ground-truth program is no longer loaded")?;
        if misses > 0 {
            bail!("the kernel skipped the ground-truth program {misses} times (recursion): its counts are incomplete");
        }
        Ok(())
    }
}
