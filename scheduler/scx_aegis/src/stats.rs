//! What `--stats` prints and `--stats-file` writes: the per-CPU counters of the BPF side
//! summed (waits: the maximum), plus the current action. The harness records the JSON form
//! in every trial that runs Aegis.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libbpf_rs::skel::Skel;
use libbpf_rs::AsRawLibbpf;
use scheduler::aegis::qnet::Action;
use serde::Serialize;

use crate::bpf_intf::{self, aegis_stats, aegis_wait};
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
    /// The most tasks seen in the level's DSQ at once (the overdue scan looks at the first
    /// AEGIS_SCAN_DEPTH).
    pub max_queued: u64,
    pub max_wait_us: u64,
    /// The task that waited max_wait_us: "comm (pid N, may run on K CPUs; queued PATH; after
    /// COMM ran X ms)", the last naming the task that left the CPU just before it; "" if none.
    pub max_wait_task: String,
    /// When that wait ended, in seconds since scx_aegis attached (0 if none).
    pub max_wait_ended_at_s: f64,
    pub wait_bound_us: u64,
    pub nr_bound_violations: u64,
    /// Of those, the waits during which a busy CPU went over two tick periods without a tick
    /// (under TCG: QEMU did not run the vCPU), which no scheduler could have served on time.
    pub nr_bound_violations_in_stalls: u64,
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

/// Collector wakeups that waited for the ring to fill.
#[derive(Debug, Serialize)]
pub struct DeferredWakes {
    pub deferred: u64,
    pub ended_at_fill: u64,
    pub ended_at_timeout: u64,
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
    /// The longest a busy CPU went without a tick, and the ticks over twice the period late:
    /// a CPU that does not tick cannot enforce the wait bound.
    pub max_tick_gap_us: u64,
    pub nr_late_ticks: u64,
    /// CPUs the deadline timer kicked for a task that reached its wait bound between ticks.
    pub nr_deadline_kicks: u64,
    /// The latest the deadline timer's callback ran after the moment it was armed for.
    pub max_deadline_timer_late_us: u64,
    /// The longest a CPU the deadline timer kicked took to dispatch or tick (under TCG: a
    /// vCPU that QEMU did not run meanwhile; the next kick goes elsewhere).
    pub max_kick_to_dispatch_us: u64,
    /// Collector wakeups deferred until its ring filled (--wake-fill-pct), and how the
    /// deferrals ended: the ring reached the wake fill, or --max-wake-defer-us passed.
    pub collector_wakes_deferred: DeferredWakes,
    /// Overdue tasks the deadline timer found deeper than the scans look (16 per level) and
    /// moved to the front of their level.
    pub nr_requeued_overdue: u64,
    /// Per BPF program, with `--prog-stats`; empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgStats>,
    pub current_action: ActionStats,
    pub ring_fill_pct: u32,
    pub wait_bound_tick_us: u64,
}

/// Sums the per-CPU records (the skeleton's copy of `struct aegis_stats`, the same C layout).
fn sum_per_cpu<T>(per_cpu: &[T]) -> aegis_stats {
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<aegis_stats>());
    let mut total: aegis_stats = unsafe { std::mem::zeroed() };
    for record in per_cpu {
        // SAFETY: the same C struct (u64 fields only) as generated by two binding tools; the
        // sizes match (asserted). BPF may be updating it: each u64 is read whole on x86-64.
        let s: aegis_stats = unsafe { std::ptr::read_unaligned((record as *const T).cast()) };
        for l in 0..3 {
            total.nr_queued[l] += s.nr_queued[l];
            total.nr_dispatched[l] += s.nr_dispatched[l];
            total.nr_promoted[l] += s.nr_promoted[l];
            total.max_queued[l] = total.max_queued[l].max(s.max_queued[l]);
            if s.max_wait[l].ns > total.max_wait[l].ns {
                total.max_wait[l] = s.max_wait[l];
            }
            total.nr_bound_violations[l] += s.nr_bound_violations[l];
            total.nr_bound_violations_in_stalls[l] += s.nr_bound_violations_in_stalls[l];
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
        total.max_tick_gap_ns = total.max_tick_gap_ns.max(s.max_tick_gap_ns);
        total.nr_late_ticks += s.nr_late_ticks;
        total.nr_deadline_kicks += s.nr_deadline_kicks;
        total.nr_wakes_deferred += s.nr_wakes_deferred;
        total.nr_requeued_overdue += s.nr_requeued_overdue;
        total.nr_deferred_wakes_at_fill += s.nr_deferred_wakes_at_fill;
        total.nr_deferred_wakes_at_timeout += s.nr_deferred_wakes_at_timeout;
        total.max_kick_to_dispatch_ns =
            total.max_kick_to_dispatch_ns.max(s.max_kick_to_dispatch_ns);
        total.max_deadline_timer_late_ns = total
            .max_deadline_timer_late_ns
            .max(s.max_deadline_timer_late_ns);
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

/// CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns) when scx_aegis attached; 0 before.
static ATTACHED_AT_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Marks now as the moment the scheduler attached, for the times in the statistics.
pub fn mark_attached() {
    ATTACHED_AT_NS.store(monotonic_ns(), std::sync::atomic::Ordering::Relaxed);
}

/// Seconds from the attach to a BPF timestamp (0 for none, or one from before the attach).
fn since_attach_s(ktime_ns: u64) -> f64 {
    let attached = ATTACHED_AT_NS.load(std::sync::atomic::Ordering::Relaxed);
    if ktime_ns == 0 {
        return 0.0;
    }
    ktime_ns.saturating_sub(attached) as f64 / 1e9
}

/// Names the task behind a level's longest wait, from what the record knows of it.
fn describe_waiter(w: &aegis_wait) -> String {
    if w.ns == 0 {
        return String::new();
    }
    let comm = |words: &[u64; 2]| {
        let bytes: Vec<u8> = words
            .iter()
            .flat_map(|word| word.to_ne_bytes())
            .take_while(|&b| b != 0)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let nr_cpus = w.nr_cpus_allowed;
    let queued_into = match w.queued_into as u32 {
        l @ 0..=2 => format!("in the {} DSQ", LEVEL_NAMES[l as usize]),
        bpf_intf::aegis_consts_AEGIS_QUEUED_DIRECT => "on an idle CPU from select_cpu".into(),
        bpf_intf::aegis_consts_AEGIS_QUEUED_LAST => "as its CPU's last task".into(),
        bpf_intf::aegis_consts_AEGIS_QUEUED_PROMOTED => "promoted at its deadline".into(),
        other => format!("path {other}"),
    };
    // Where the time past the bound went: until a scan saw it overdue, until it was promoted,
    // and in the local queue after that.
    let since_queued = |ns: u64| {
        if ns == 0 {
            "never".to_string()
        } else {
            format!("at {:.1} ms", ns as f64 / 1e6)
        }
    };
    format!(
        "{} (pid {}, may run on {nr_cpus} CPU{}; queued {queued_into}; after {} ran {:.1} ms; \
         scanned {} times, {} overdue where it could run; found due for promotion {}, promoted {})",
        comm(&w.comm),
        w.pid,
        if nr_cpus == 1 { "" } else { "s" },
        comm(&w.after_comm),
        w.after_ran_ns as f64 / 1e6,
        w.scanned,
        w.scanned_overdue,
        since_queued(w.overdue_seen_after_ns),
        since_queued(w.promoted_after_ns),
    )
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
        let bss = skel.maps.bss_data.as_ref().expect("bss");
        let rodata = skel.maps.rodata_data.as_ref().expect("rodata");
        let nr_cpus = (rodata.nr_cpus as usize).min(bss.cpu_stats.len());
        let s = sum_per_cpu(&bss.cpu_stats[..nr_cpus]);
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
                    max_queued: s.max_queued[l],
                    max_wait_us: s.max_wait[l].ns / 1_000,
                    max_wait_task: describe_waiter(&s.max_wait[l]),
                    max_wait_ended_at_s: since_attach_s(s.max_wait[l].ended_ns),
                    wait_bound_us: base_wait_us << l,
                    nr_bound_violations: s.nr_bound_violations[l],
                    nr_bound_violations_in_stalls: s.nr_bound_violations_in_stalls[l],
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
            max_tick_gap_us: s.max_tick_gap_ns / 1_000,
            nr_late_ticks: s.nr_late_ticks,
            nr_deadline_kicks: s.nr_deadline_kicks,
            max_deadline_timer_late_us: s.max_deadline_timer_late_ns / 1_000,
            max_kick_to_dispatch_us: s.max_kick_to_dispatch_ns / 1_000,
            nr_requeued_overdue: s.nr_requeued_overdue,
            collector_wakes_deferred: DeferredWakes {
                deferred: s.nr_wakes_deferred,
                ended_at_fill: s.nr_deferred_wakes_at_fill,
                ended_at_timeout: s.nr_deferred_wakes_at_timeout,
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
            "[aegis] {} | inferences run={} skipped={} | action={} (boost {}, throttle {}) | fill={}% kicks={} deadline_kicks={} prov_runs={} prov_cpu={:.1}ms",
            levels.join(" | "),
            self.nr_inferences_run,
            self.nr_inferences_skipped,
            self.current_action.index,
            self.current_action.collector_boost,
            self.current_action.producer_throttle,
            self.ring_fill_pct,
            self.nr_preempt_kicks,
            self.nr_deadline_kicks,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_wait_names_its_task_and_the_per_cpu_record_it_came_from() {
        let mut cpu0: aegis_stats = unsafe { std::mem::zeroed() };
        let mut cpu1: aegis_stats = unsafe { std::mem::zeroed() };
        cpu0.max_wait[1].ns = 5_000_000;
        let w = &mut cpu1.max_wait[1];
        w.ns = 9_000_000;
        w.pid = 42;
        w.nr_cpus_allowed = 1;
        w.comm = [
            u64::from_ne_bytes(*b"kworker/"),
            u64::from_ne_bytes(*b"1:2\0\0\0\0\0"),
        ];
        w.queued_into = 1;
        w.after_comm = [u64::from_ne_bytes(*b"stress\0\0"), 0];
        w.after_ran_ns = 2_500_000;
        w.scanned = 3;
        w.scanned_overdue = 1;
        w.overdue_seen_after_ns = 30_100_000;
        w.promoted_after_ns = 30_400_000;
        let total = sum_per_cpu(&[cpu0, cpu1]);
        assert_eq!(total.max_wait[1].ns, 9_000_000);
        assert_eq!(
            describe_waiter(&total.max_wait[1]),
            "kworker/1:2 (pid 42, may run on 1 CPU; queued in the ordinary DSQ; after stress ran \
             2.5 ms; scanned 3 times, 1 overdue where it could run; found due for promotion at \
             30.1 ms, promoted at 30.4 ms)"
        );
        // A task no scan found due says so.
        cpu1.max_wait[1].overdue_seen_after_ns = 0;
        cpu1.max_wait[1].promoted_after_ns = 0;
        assert!(describe_waiter(&cpu1.max_wait[1])
            .ends_with("found due for promotion never, promoted never)"));
        // A level nobody waited in names nobody.
        assert_eq!(describe_waiter(&total.max_wait[0]), "");
    }
}
