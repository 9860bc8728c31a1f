//! Waiting times seen from user space, independently of the scheduler under test.
//!
//! The kernel keeps, per task, `/proc/<tid>/schedstat`: time on a CPU, time spent waiting on a
//! run queue (`run_delay`) and the number of times the task got a CPU (`pcount`). `run_delay`
//! grows when a wait *ends* (the task arrives on a CPU), by the whole wait. So between two
//! samples in which `pcount` grew, `run_delay` grew by the waits that ended in between: the
//! first of them may have begun long before, every other one began after the first sample. The
//! growth is therefore an upper bound of the longest single wait that ended in the interval,
//! and exceeds it by at most the interval's length. Sampling every few milliseconds and keeping
//! the largest growth gives an upper bound of every task's longest wait, accurate to one
//! sampling gap, which `--watch-run-delay` reports beside what the scheduler says of itself.
//! The sampler runs as SCHED_FIFO where allowed, above the tasks it watches: as an ordinary
//! thread it makes thousands of syscalls a second, which Aegis rightly takes for a producer and
//! holds back (gaps of 141 ms), and under EEVDF a flood delayed it by 29 ms. To stay cheap its
//! files stay open and are re-read with one pread each; the gaps it reports say how late it
//! ran all the same.
//!
//! The same reads give each task's time on a CPU (schedstat's first field). The first and the
//! last value seen per task, kept after the task exits, give the CPU time every watched task
//! got during the watch, grouped by what it was watched for, for Jain's fairness index (see
//! [`crate::measure::fairness`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use procfs::process::Schedstat;
use procfs::FromRead;

use crate::measure::fairness::{self, TaskCpu};

/// How often the watched tasks' schedstat is read.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(5);
/// How often the set of watched tasks is listed again (threads come and go).
const RELIST_PERIOD: Duration = Duration::from_millis(100);

/// Which tasks to watch: every thread of these cgroups and of these processes, each under a
/// group label (`attack`, `workload`, `collector`) its CPU time is reported by.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub cgroups: Vec<(&'static str, PathBuf)>,
    pub pids: Vec<(&'static str, u32)>,
}

/// The fractions of waits at which [`RunDelayReport::cdf_ms`] gives the wait.
pub const CDF_FRACTIONS: [f64; 9] = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0];

/// The longest wait seen, as an upper bound accurate to `max_sample_gap_ms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunDelayReport {
    pub max_wait_ms: f64,
    /// `comm/tid` of the task that waited longest.
    pub max_wait_task: Option<String>,
    pub tasks_seen: usize,
    pub samples: u64,
    pub max_sample_gap_ms: f64,
    /// Percentiles of the waits (ms). Waits that ended within one sampling interval are
    /// counted at their mean, so these are exact only where a task waited at most once an
    /// interval; `None` before any wait ended.
    pub p50_wait_ms: Option<f64>,
    pub p99_wait_ms: Option<f64>,
    /// `[fraction, ms]` at each of [`CDF_FRACTIONS`], counted like the percentiles; empty
    /// before any wait ended.
    pub cdf_ms: Vec<[f64; 2]>,
    /// Every wait, counted like the percentiles, as a log-scale histogram: trials' histograms
    /// add up, so a figure's CDF can pool the waits of many trials.
    pub waits_ns: scheduler::sim::LatencyHistogram,
    /// The CPU time each task got while watched, by group label.
    pub cpu_by_group: BTreeMap<&'static str, Vec<TaskCpu>>,
}

impl RunDelayReport {
    /// CPU seconds each group's tasks got while watched.
    pub fn cpu_s_by_group(&self) -> BTreeMap<String, f64> {
        self.cpu_by_group
            .iter()
            .map(|(group, tasks)| {
                let ns: u64 = tasks.iter().map(|task| task.cpu_ns).sum();
                (group.to_string(), ns as f64 / 1e9)
            })
            .collect()
    }

    /// Jain's index over the group's equal-weight tasks, and how many there were.
    pub fn fairness(&self, group: &str) -> Option<(f64, u32)> {
        fairness::group_fairness(self.cpu_by_group.get(group)?)
    }
}

/// The value below which `fraction` of the weight lies, over (value, weight) pairs.
pub fn weighted_percentile(samples: &mut [(f64, u64)], fraction: f64) -> Option<f64> {
    let total: u64 = samples.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let wanted = (fraction * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (value, weight) in samples.iter() {
        seen += weight;
        if seen >= wanted {
            return Some(*value);
        }
    }
    samples.last().map(|(value, _)| *value)
}

/// `[fraction, value]` at each fraction, over (value, weight) pairs; empty without weight.
pub fn weighted_cdf(samples: &mut [(f64, u64)], fractions: &[f64]) -> Vec<[f64; 2]> {
    fractions
        .iter()
        .filter_map(|&fraction| {
            weighted_percentile(samples, fraction).map(|value| [fraction, value])
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    run_delay_ns: u64,
    pcount: u64,
}

/// Folds successive schedstat samples of many tasks into the longest-wait bound.
#[derive(Debug, Default)]
pub struct WaitTracker {
    last: HashMap<u32, Sample>,
    comms: HashMap<u32, String>,
    /// (mean wait in ms, number of waits) per interval in which a task got a CPU.
    waits: Vec<(f64, u64)>,
    report: RunDelayReport,
}

impl WaitTracker {
    /// One sample of task `tid`: `run_delay_ns` and `pcount` from its schedstat.
    pub fn observe(
        &mut self,
        tid: u32,
        comm: impl FnOnce() -> String,
        run_delay_ns: u64,
        pcount: u64,
    ) {
        let now = Sample {
            run_delay_ns,
            pcount,
        };
        if let Some(before) = self.last.insert(tid, now) {
            if now.pcount > before.pcount && now.run_delay_ns >= before.run_delay_ns {
                let waited_ms = (now.run_delay_ns - before.run_delay_ns) as f64 / 1e6;
                let arrivals = now.pcount - before.pcount;
                self.waits.push((waited_ms / arrivals as f64, arrivals));
                if waited_ms > self.report.max_wait_ms {
                    self.report.max_wait_ms = waited_ms;
                    let comm = self.comms.get(&tid).cloned().unwrap_or_default();
                    self.report.max_wait_task = Some(format!("{comm}/{tid}"));
                }
            }
        } else {
            self.comms.insert(tid, comm());
        }
    }

    /// A sampling round ended `gap` after the previous one.
    pub fn round(&mut self, gap: Duration) {
        self.report.samples += 1;
        self.report.max_sample_gap_ms = self.report.max_sample_gap_ms.max(gap.as_secs_f64() * 1e3);
    }

    pub fn finish(mut self) -> RunDelayReport {
        self.report.tasks_seen = self.last.len();
        self.report.p50_wait_ms = weighted_percentile(&mut self.waits, 0.50);
        self.report.p99_wait_ms = weighted_percentile(&mut self.waits, 0.99);
        self.report.cdf_ms = weighted_cdf(&mut self.waits, &CDF_FRACTIONS);
        for (mean_ms, waits) in &self.waits {
            self.report
                .waits_ns
                .record_n((mean_ms * 1e6).round() as u64, *waits);
        }
        self.report
    }
}

/// What a task is, read once when it is first listed.
#[derive(Debug, Clone)]
pub struct TaskIdentity {
    pub comm: String,
    pub group: &'static str,
    pub tgid: u32,
    pub ppid: u32,
    /// Started after the watch did: all its CPU time is the trial's, including what it used
    /// before it was first listed (up to [`RELIST_PERIOD`] later).
    pub born_during_watch: bool,
}

#[derive(Debug)]
struct CpuSpan {
    identity: TaskIdentity,
    first_ns: u64,
    last_ns: u64,
}

/// Each watched task's CPU time between the first and the last sample seen of it; tasks that
/// exited keep theirs.
#[derive(Debug, Default)]
pub struct CpuTracker {
    spans: HashMap<u32, CpuSpan>,
}

impl CpuTracker {
    /// One sample of task `tid`: `cpu_ns`, its time on a CPU so far.
    pub fn observe(&mut self, tid: u32, identity: impl FnOnce() -> TaskIdentity, cpu_ns: u64) {
        match self.spans.entry(tid) {
            Entry::Occupied(mut span) => span.get_mut().last_ns = cpu_ns,
            Entry::Vacant(slot) => {
                let identity = identity();
                let first_ns = if identity.born_during_watch {
                    0
                } else {
                    cpu_ns
                };
                slot.insert(CpuSpan {
                    identity,
                    first_ns,
                    last_ns: cpu_ns,
                });
            }
        }
    }

    pub fn finish(self) -> BTreeMap<&'static str, Vec<TaskCpu>> {
        let mut by_group: BTreeMap<&'static str, Vec<TaskCpu>> = BTreeMap::new();
        for (tid, span) in self.spans {
            by_group
                .entry(span.identity.group)
                .or_default()
                .push(TaskCpu {
                    tid,
                    tgid: span.identity.tgid,
                    ppid: span.identity.ppid,
                    cpu_ns: span.last_ns.saturating_sub(span.first_ns),
                });
        }
        for tasks in by_group.values_mut() {
            tasks.sort_unstable_by_key(|task| task.tid);
        }
        by_group
    }
}

/// A thread sampling the watched tasks until [`RunDelayWatch::finish`].
pub struct RunDelayWatch {
    stop: Arc<AtomicBool>,
    watched: Arc<Mutex<Watched>>,
    thread: Option<JoinHandle<RunDelayReport>>,
}

impl RunDelayWatch {
    pub fn start(watched: Watched) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let watched = Arc::new(Mutex::new(watched));
        let (thread_stop, thread_watched) = (stop.clone(), watched.clone());
        let thread = std::thread::Builder::new()
            .name("run-delay".into())
            .spawn(move || sample_until(&thread_watched, &thread_stop))
            .context("starting the run-delay sampler thread")?;
        Ok(Self {
            stop,
            watched,
            thread: Some(thread),
        })
    }

    /// Watches this cgroup's threads too, from the next listing on.
    pub fn add_cgroup(&self, group: &'static str, dir: PathBuf) {
        if let Ok(mut watched) = self.watched.lock() {
            watched.cgroups.push((group, dir));
        }
    }

    pub fn finish(mut self) -> RunDelayReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for RunDelayWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sample_until(watched: &Mutex<Watched>, stop: &AtomicBool) -> RunDelayReport {
    observe_from_above();
    // Tasks started at or after this clock tick are the watch's own (see TaskIdentity).
    let watch_start_ticks = start_ticks(nix::unistd::gettid().as_raw() as u32);
    let mut tracker = WaitTracker::default();
    let mut cpu = CpuTracker::default();
    let mut identities: HashMap<u32, TaskIdentity> = HashMap::new();
    let mut files: HashMap<u32, File> = HashMap::new();
    let mut listed_at: Option<Instant> = None;
    let mut last_round = Instant::now();
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::Relaxed) {
        if listed_at.is_none_or(|at| at.elapsed() >= RELIST_PERIOD) {
            if let Ok(watched) = watched.lock() {
                let tids = list_tids(&watched);
                files.retain(|tid, _| tids.binary_search_by_key(tid, |(t, _)| *t).is_ok());
                for (tid, group) in tids {
                    if let Entry::Vacant(slot) = files.entry(tid) {
                        // Read once: a task that exited before it could be read is skipped.
                        if let Entry::Vacant(unknown) = identities.entry(tid) {
                            match identify(tid, group, watch_start_ticks) {
                                Some(identity) => unknown.insert(identity),
                                None => continue,
                            };
                        }
                        if let Ok(file) = File::open(format!("/proc/{tid}/schedstat")) {
                            slot.insert(file);
                        }
                    }
                }
            }
            listed_at = Some(Instant::now());
        }
        for (&tid, file) in &files {
            // A task that exited since it was listed reads as an error: skipped.
            let Ok(n) = file.read_at(&mut buf, 0) else {
                continue;
            };
            let Ok(stat) = Schedstat::from_read(&buf[..n]) else {
                continue;
            };
            let identity = &identities[&tid];
            tracker.observe(tid, || identity.comm.clone(), stat.run_delay, stat.pcount);
            cpu.observe(tid, || identity.clone(), stat.sum_exec_runtime);
        }
        tracker.round(last_round.elapsed());
        last_round = Instant::now();
        std::thread::sleep(SAMPLE_PERIOD);
    }
    // The report is minutes of samples to sort (hundreds of milliseconds in a debug build
    // under TCG): as SCHED_FIFO it kept a CPU from every task pinned there, and the scheduler
    // under test was blamed for a 100-280 ms wait of a per-CPU kworker.
    observe_from_below();
    let mut report = tracker.finish();
    report.cpu_by_group = cpu.finish();
    report
}

/// SCHED_FIFO priority 1 for the calling thread; without the privilege it stays ordinary.
fn observe_from_above() {
    set_own_policy(libc::SCHED_FIFO, 1);
}

/// Back to SCHED_OTHER for the calling thread, once sampling is over.
fn observe_from_below() {
    set_own_policy(libc::SCHED_OTHER, 0);
}

fn set_own_policy(policy: libc::c_int, priority: libc::c_int) {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    unsafe {
        libc::sched_setscheduler(0, policy, &param);
    }
}

/// When task `tid` started, in clock ticks since boot.
fn start_ticks(tid: u32) -> Option<u64> {
    procfs::process::Process::new(tid as i32)
        .and_then(|task| task.stat())
        .ok()
        .map(|stat| stat.starttime)
}

/// The task's name, process, parent process and start; `None` once it is gone.
fn identify(tid: u32, group: &'static str, watch_start_ticks: Option<u64>) -> Option<TaskIdentity> {
    let task = procfs::process::Process::new(tid as i32).ok()?;
    let stat = task.stat().ok()?;
    let status = task.status().ok()?;
    Some(TaskIdentity {
        comm: stat.comm,
        group,
        tgid: status.tgid as u32,
        ppid: stat.ppid as u32,
        // Ticks are 10 ms: a task started in the watch's first tick counts as the watch's.
        born_during_watch: watch_start_ticks.is_some_and(|start| stat.starttime >= start),
    })
}

/// Every thread of the watched cgroups and processes, now, with its group label, by tid; a
/// thread watched twice keeps the first label (cgroups before processes).
fn list_tids(watched: &Watched) -> Vec<(u32, &'static str)> {
    let mut tids = Vec::new();
    for (group, dir) in &watched.cgroups {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.threads")) {
            tids.extend(
                text.lines()
                    .filter_map(|line| line.trim().parse::<u32>().ok())
                    .map(|tid| (tid, *group)),
            );
        }
    }
    for &(group, pid) in &watched.pids {
        if let Ok(tasks) = procfs::process::Process::new(pid as i32).and_then(|p| p.tasks()) {
            tids.extend(tasks.flatten().map(|task| (task.tid as u32, group)));
        }
    }
    // Stable: equal tids keep their listing order, and dedup keeps the first.
    tids.sort_by_key(|(tid, _)| *tid);
    tids.dedup_by_key(|(tid, _)| *tid);
    tids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> u64 {
        n * 1_000_000
    }

    #[test]
    fn a_wait_counts_once_the_task_got_a_cpu() {
        let mut tracker = WaitTracker::default();
        tracker.observe(7, || "flood".into(), ms(1), 10);
        // Waiting: run_delay does not move until the task arrives on a CPU.
        tracker.observe(7, || unreachable!(), ms(1), 10);
        tracker.observe(7, || unreachable!(), ms(41), 11);
        tracker.round(Duration::from_millis(5));
        let report = tracker.finish();
        assert_eq!(report.max_wait_ms, 40.0);
        assert_eq!(report.p50_wait_ms, Some(40.0));
        assert_eq!(report.max_wait_task.as_deref(), Some("flood/7"));
        assert_eq!(report.tasks_seen, 1);
        assert_eq!(report.samples, 1);
        assert_eq!(report.max_sample_gap_ms, 5.0);
    }

    #[test]
    fn the_longest_wait_wins_across_tasks_and_the_first_sample_is_a_baseline() {
        let mut tracker = WaitTracker::default();
        // Whatever a task waited before it was first seen is not attributed to the trial.
        tracker.observe(1, || "a".into(), ms(500), 3);
        tracker.observe(2, || "b".into(), 0, 0);
        tracker.observe(1, || unreachable!(), ms(510), 5);
        tracker.observe(2, || unreachable!(), ms(30), 1);
        let report = tracker.finish();
        assert_eq!(report.max_wait_ms, 30.0);
        assert_eq!(report.max_wait_task.as_deref(), Some("b/2"));
        assert_eq!(report.tasks_seen, 2);
    }

    #[test]
    fn percentiles_weigh_each_interval_by_its_waits() {
        let mut samples = vec![(1.0, 98), (50.0, 1), (100.0, 1)];
        assert_eq!(weighted_percentile(&mut samples, 0.50), Some(1.0));
        assert_eq!(weighted_percentile(&mut samples, 0.99), Some(50.0));
        assert_eq!(weighted_percentile(&mut samples, 1.0), Some(100.0));
        assert_eq!(weighted_percentile(&mut [], 0.5), None);
        // Two waits in one interval count twice, at their mean.
        let mut tracker = WaitTracker::default();
        tracker.observe(3, || "w".into(), 0, 0);
        tracker.observe(3, || unreachable!(), ms(10), 2);
        tracker.observe(3, || unreachable!(), ms(40), 3);
        let report = tracker.finish();
        assert_eq!(report.p50_wait_ms, Some(5.0));
        assert_eq!(report.p99_wait_ms, Some(30.0));
        assert_eq!(report.max_wait_ms, 30.0);
    }

    #[test]
    fn watching_this_process_sees_its_own_threads() {
        let watch = RunDelayWatch::start(Watched {
            cgroups: Vec::new(),
            pids: vec![("self", std::process::id())],
        })
        .unwrap();
        // Busy for a while, so this thread's CPU time grows between samples.
        let until = std::time::Instant::now() + Duration::from_millis(60);
        while std::time::Instant::now() < until {
            std::hint::black_box(0u64);
        }
        let report = watch.finish();
        assert!(report.tasks_seen >= 2, "{report:?}");
        assert!(report.samples >= 2, "{report:?}");
        let me = nix::unistd::gettid().as_raw() as u32;
        let tasks = &report.cpu_by_group["self"];
        let mine = tasks.iter().find(|task| task.tid == me).unwrap();
        assert_eq!(mine.tgid, std::process::id());
        assert!(mine.cpu_ns > 0, "{tasks:?}");
        assert!(report.fairness("self").is_some(), "{report:?}");
        assert_eq!(report.fairness("nobody"), None);
    }

    fn identity(group: &'static str, born_during_watch: bool) -> TaskIdentity {
        TaskIdentity {
            comm: "t".into(),
            group,
            tgid: 10,
            ppid: 1,
            born_during_watch,
        }
    }

    #[test]
    fn cpu_time_spans_first_to_last_sample_and_outlives_the_task() {
        let mut cpu = CpuTracker::default();
        // Running before the watch: only what it got since counts.
        cpu.observe(10, || identity("collector", false), ms(500));
        cpu.observe(10, || unreachable!(), ms(530));
        // Started during the watch, first listed late: all of its time counts.
        cpu.observe(11, || identity("attack", true), ms(40));
        cpu.observe(11, || unreachable!(), ms(90));
        // It exited: no more samples, and it still counts.
        cpu.observe(10, || unreachable!(), ms(545));
        let by_group = cpu.finish();
        assert_eq!(by_group["collector"][0].cpu_ns, ms(45));
        assert_eq!(by_group["attack"][0].cpu_ns, ms(90));
        assert_eq!(by_group["attack"][0].tgid, 10);
    }

    #[test]
    fn the_cdf_gives_the_wait_at_each_fraction() {
        let mut tracker = WaitTracker::default();
        tracker.observe(1, || "w".into(), 0, 0);
        for (i, wait_ms) in (1..=100).enumerate() {
            // One wait per interval, of 1, 2, ... 100 ms.
            let before: u64 = (1..=i as u64).sum();
            tracker.observe(1, || unreachable!(), ms(before + wait_ms), i as u64 + 1);
        }
        let report = tracker.finish();
        assert_eq!(report.cdf_ms.len(), CDF_FRACTIONS.len());
        assert_eq!(report.cdf_ms[0], [0.1, 10.0]);
        assert_eq!(report.cdf_ms[2], [0.5, 50.0]);
        assert_eq!(report.cdf_ms[6], [0.99, 99.0]);
        assert_eq!(report.cdf_ms[8], [1.0, 100.0]);
        assert_eq!(
            report.waits_ns.count(),
            100,
            "every wait is in the histogram"
        );
        assert!(WaitTracker::default().finish().cdf_ms.is_empty());
    }
}
