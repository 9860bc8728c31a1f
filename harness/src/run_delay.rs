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

use std::collections::hash_map::Entry;
use std::collections::HashMap;
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

/// How often the watched tasks' schedstat is read.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(5);
/// How often the set of watched tasks is listed again (threads come and go).
const RELIST_PERIOD: Duration = Duration::from_millis(100);

/// Which tasks to watch: every thread of these cgroups and of these processes.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub cgroups: Vec<PathBuf>,
    pub pids: Vec<u32>,
}

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
        self.report
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
    pub fn add_cgroup(&self, dir: PathBuf) {
        if let Ok(mut watched) = self.watched.lock() {
            watched.cgroups.push(dir);
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
    let mut tracker = WaitTracker::default();
    let mut files: HashMap<u32, File> = HashMap::new();
    let mut listed_at: Option<Instant> = None;
    let mut last_round = Instant::now();
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::Relaxed) {
        if listed_at.is_none_or(|at| at.elapsed() >= RELIST_PERIOD) {
            if let Ok(watched) = watched.lock() {
                let tids = list_tids(&watched);
                files.retain(|tid, _| tids.binary_search(tid).is_ok());
                for tid in tids {
                    if let Entry::Vacant(slot) = files.entry(tid) {
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
            tracker.observe(tid, || comm_of(tid), stat.run_delay, stat.pcount);
        }
        tracker.round(last_round.elapsed());
        last_round = Instant::now();
        std::thread::sleep(SAMPLE_PERIOD);
    }
    tracker.finish()
}

/// SCHED_FIFO priority 1 for the calling thread; without the privilege it stays ordinary.
fn observe_from_above() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}

fn comm_of(tid: u32) -> String {
    procfs::process::Process::new(tid as i32)
        .and_then(|task| task.stat())
        .map(|stat| stat.comm)
        .unwrap_or_default()
}

/// Every thread of the watched cgroups and processes, now.
fn list_tids(watched: &Watched) -> Vec<u32> {
    let mut tids = Vec::new();
    for dir in &watched.cgroups {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.threads")) {
            tids.extend(
                text.lines()
                    .filter_map(|line| line.trim().parse::<u32>().ok()),
            );
        }
    }
    for &pid in &watched.pids {
        if let Ok(tasks) = procfs::process::Process::new(pid as i32).and_then(|p| p.tasks()) {
            tids.extend(tasks.flatten().map(|task| task.tid as u32));
        }
    }
    tids.sort_unstable();
    tids.dedup();
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
            pids: vec![std::process::id()],
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(60));
        let report = watch.finish();
        assert!(report.tasks_seen >= 2, "{report:?}");
        assert!(report.samples >= 2, "{report:?}");
    }
}
