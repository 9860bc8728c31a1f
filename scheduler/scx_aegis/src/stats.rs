//! What `--stats` prints and `--stats-file` writes: the per-CPU counters of the BPF side
//! summed (waits: the maximum), plus the current action. The harness records the JSON form
//! in every trial that runs Aegis.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libbpf_rs::skel::Skel;
use libbpf_rs::{AsRawLibbpf, MapCore, MapFlags};
use scheduler::aegis::qnet::Action;
use serde::Serialize;

use crate::bpf_intf::{self, aegis_stats};
use crate::bpf_skel::BpfSkel;
use crate::Opts;

const LEVEL_NAMES: [&str; 3] = ["provenance", "ordinary", "producer"];

/// Where the policy comes from.
pub struct ModelInfo {
    pub path: Option<PathBuf>,
    pub fixed_action: Option<u32>,
}

impl ModelInfo {
    pub fn describe(&self) -> String {
        match (&self.path, self.fixed_action) {
            (Some(path), _) => format!("model {}", path.display()),
            (None, Some(action)) => format!("no model: fixed action {action}"),
            (None, None) => "no model".into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LevelStats {
    pub level: &'static str,
    pub nr_queued: u64,
    pub nr_dispatched: u64,
    pub nr_promoted: u64,
    pub max_wait_us: u64,
    pub wait_bound_us: u64,
    pub nr_bound_violations: u64,
}

#[derive(Debug, Serialize)]
pub struct ActionStats {
    pub index: u32,
    pub collector_boost: u8,
    pub producer_throttle: u8,
}

/// Producer syscalls made while the ring was past the hold line, by why the producer had a
/// CPU. Each can put an event into an almost full ring: where event loss comes from.
#[derive(Debug, Serialize)]
pub struct PastHoldSyscalls {
    /// No provenance task was runnable or had run within a window, so producers were not held.
    pub collector_asleep: u64,
    /// The producer was past its wait bound and served anyway.
    pub promoted: u64,
    /// The producer woke onto an idle CPU (select_cpu dispatches directly).
    pub woken_on_idle_cpu: u64,
    /// The producer was already running when the ring crossed the line (until its kick lands).
    pub before_preemption: u64,
}

/// One BPF program's cost since scx_aegis attached (with `--prog-stats`).
#[derive(Debug, Serialize)]
pub struct ProgStats {
    pub name: String,
    pub runs: u64,
    pub run_time_ms: f64,
    pub mean_run_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub model: String,
    pub model_path: Option<PathBuf>,
    pub levels: Vec<LevelStats>,
    pub nr_direct_dispatches: u64,
    pub nr_inferences_run: u64,
    pub nr_inferences_skipped: u64,
    pub nr_preempt_kicks: u64,
    pub nr_producer_syscalls: u64,
    pub nr_provenance_runs: u64,
    pub provenance_runtime_ms: f64,
    pub nr_overdue_scans: u64,
    pub nr_producer_holds: u64,
    pub past_hold_syscalls: PastHoldSyscalls,
    /// Per BPF program, with `--prog-stats`; empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgStats>,
    pub current_action: ActionStats,
    pub ring_fill_pct: u32,
    pub wait_bound_tick_us: u64,
}

fn sum_per_cpu(per_cpu: &[Vec<u8>]) -> aegis_stats {
    let mut total: aegis_stats = unsafe { std::mem::zeroed() };
    for bytes in per_cpu {
        if bytes.len() < std::mem::size_of::<aegis_stats>() {
            continue;
        }
        // SAFETY: the value is an `aegis_stats` (u64 fields only), copied unaligned.
        let s: aegis_stats = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        for l in 0..3 {
            total.nr_queued[l] += s.nr_queued[l];
            total.nr_dispatched[l] += s.nr_dispatched[l];
            total.nr_promoted[l] += s.nr_promoted[l];
            total.max_wait_ns[l] = total.max_wait_ns[l].max(s.max_wait_ns[l]);
            total.nr_bound_violations[l] += s.nr_bound_violations[l];
        }
        total.nr_direct += s.nr_direct;
        total.nr_inferences_run += s.nr_inferences_run;
        total.nr_inferences_skipped += s.nr_inferences_skipped;
        total.nr_preempt_kicks += s.nr_preempt_kicks;
        total.nr_producer_syscalls += s.nr_producer_syscalls;
        total.nr_provenance_runs += s.nr_provenance_runs;
        total.provenance_runtime_ns += s.provenance_runtime_ns;
        total.nr_overdue_scans += s.nr_overdue_scans;
        total.nr_producer_holds += s.nr_producer_holds;
        for (sum, n) in total
            .nr_past_hold_syscalls
            .iter_mut()
            .zip(s.nr_past_hold_syscalls)
        {
            *sum += n;
        }
    }
    total
}

/// Turns on the kernel's per-program run-time accounting for as long as the returned file
/// descriptor is open.
pub fn enable_prog_run_time_stats() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;

    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_enable_stats(libbpf_rs::libbpf_sys::BPF_STATS_RUN_TIME)
    };
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(-fd))
            .context("enabling BPF run-time statistics (BPF_ENABLE_STATS)");
    }
    // SAFETY: a new file descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Run count and time of every program in the scheduler's object, most expensive first.
fn prog_stats(skel: &BpfSkel<'_>) -> Result<Vec<ProgStats>> {
    let mut programs = Vec::new();
    for prog in skel.object().progs() {
        let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
        let mut len = std::mem::size_of_val(&info) as u32;
        let fd =
            unsafe { libbpf_rs::libbpf_sys::bpf_program__fd(prog.as_libbpf_object().as_ptr()) };
        if fd < 0 {
            continue;
        }
        // SAFETY: `info` is a bpf_prog_info of `len` bytes.
        let ret = unsafe {
            libbpf_rs::libbpf_sys::bpf_obj_get_info_by_fd(
                fd,
                (&mut info as *mut libbpf_rs::libbpf_sys::bpf_prog_info).cast(),
                &mut len,
            )
        };
        if ret != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("reading the statistics of {:?}", prog.name()));
        }
        programs.push(ProgStats {
            name: prog.name().to_string_lossy().into_owned(),
            runs: info.run_cnt,
            run_time_ms: info.run_time_ns as f64 / 1e6,
            mean_run_ns: info.run_time_ns.checked_div(info.run_cnt).unwrap_or(0),
        });
    }
    programs.sort_by(|a, b| b.run_time_ms.total_cmp(&a.run_time_ms));
    Ok(programs)
}

impl Stats {
    pub fn read(skel: &BpfSkel<'_>, opts: &Opts, model: &ModelInfo) -> Result<Stats> {
        let per_cpu = skel
            .maps
            .stats
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .context("reading the stats map")?
            .unwrap_or_default();
        let s = sum_per_cpu(&per_cpu);
        let bss = skel.maps.bss_data.as_ref().expect("bss");
        let action = bss.current_action;
        let decoded = Action::from_index(action as usize);
        let base_wait_us = opts.base_wait_ms * 1_000;
        let past_hold = |reason: u32| s.nr_past_hold_syscalls[reason as usize];
        Ok(Stats {
            model: model.describe(),
            model_path: model.path.clone(),
            levels: (0..3)
                .map(|l| LevelStats {
                    level: LEVEL_NAMES[l],
                    nr_queued: s.nr_queued[l],
                    nr_dispatched: s.nr_dispatched[l],
                    nr_promoted: s.nr_promoted[l],
                    max_wait_us: s.max_wait_ns[l] / 1_000,
                    wait_bound_us: base_wait_us << l,
                    nr_bound_violations: s.nr_bound_violations[l],
                })
                .collect(),
            nr_direct_dispatches: s.nr_direct,
            nr_inferences_run: s.nr_inferences_run,
            nr_inferences_skipped: s.nr_inferences_skipped,
            nr_preempt_kicks: s.nr_preempt_kicks,
            nr_producer_syscalls: s.nr_producer_syscalls,
            nr_provenance_runs: s.nr_provenance_runs,
            provenance_runtime_ms: s.provenance_runtime_ns as f64 / 1e6,
            nr_overdue_scans: s.nr_overdue_scans,
            nr_producer_holds: s.nr_producer_holds,
            programs: if opts.prog_stats {
                prog_stats(skel)?
            } else {
                Vec::new()
            },
            past_hold_syscalls: PastHoldSyscalls {
                collector_asleep: past_hold(
                    bpf_intf::aegis_consts_AEGIS_PAST_HOLD_COLLECTOR_ASLEEP,
                ),
                promoted: past_hold(bpf_intf::aegis_consts_AEGIS_PAST_HOLD_PROMOTED),
                woken_on_idle_cpu: past_hold(
                    bpf_intf::aegis_consts_AEGIS_PAST_HOLD_WOKEN_ON_IDLE_CPU,
                ),
                before_preemption: past_hold(
                    bpf_intf::aegis_consts_AEGIS_PAST_HOLD_BEFORE_PREEMPTION,
                ),
            },
            current_action: ActionStats {
                index: action,
                collector_boost: decoded.collector_boost,
                producer_throttle: decoded.producer_throttle,
            },
            ring_fill_pct: bss.current_fill_pct,
            wait_bound_tick_us: opts.tick_us,
        })
    }

    pub fn one_line(&self) -> String {
        let levels: Vec<String> = self
            .levels
            .iter()
            .map(|l| {
                format!(
                    "{} q={} d={} promoted={} max_wait={}us/{}us",
                    l.level,
                    l.nr_queued,
                    l.nr_dispatched,
                    l.nr_promoted,
                    l.max_wait_us,
                    l.wait_bound_us
                )
            })
            .collect();
        format!(
            "[aegis] {} | inferences run={} skipped={} | action={} (boost {}, throttle {}) | fill={}% kicks={} prov_runs={} prov_cpu={:.1}ms",
            levels.join(" | "),
            self.nr_inferences_run,
            self.nr_inferences_skipped,
            self.current_action.index,
            self.current_action.collector_boost,
            self.current_action.producer_throttle,
            self.ring_fill_pct,
            self.nr_preempt_kicks,
            self.nr_provenance_runs,
            self.provenance_runtime_ms,
        )
    }

    pub fn write_atomically(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
