//! Perf event counters of one process's threads: context switches and CPU migrations
//! (software events, counted by the kernel everywhere), cycles and instructions (hardware
//! events, only where the machine has a PMU).
//!
//! A counter is opened per thread that exists when [`ProcessCounters::open`] runs, with
//! `inherit`, so threads and child processes those threads start later are counted too: when
//! an inherited child exits, its count folds into its parent's counter. The totals are
//! therefore only complete once the process has finished (or at least its short-lived
//! threads have), and a counter stays readable after its thread exited. Kernel-mode events
//! are included: a context switch happens in the kernel, and so does most of a collector's
//! work. Each counter is a file descriptor, closed on drop and never inherited by programs
//! the harness starts afterwards.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use perf_event::events::{Event, Hardware, Software};
use perf_event::{Builder, Counter};

/// What to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    ContextSwitches,
    CpuMigrations,
    Cycles,
    Instructions,
}

impl Counted {
    pub const SOFTWARE: [Counted; 2] = [Counted::ContextSwitches, Counted::CpuMigrations];
    pub const HARDWARE: [Counted; 2] = [Counted::Cycles, Counted::Instructions];

    /// `perf`'s name of the event.
    pub fn name(self) -> &'static str {
        match self {
            Counted::ContextSwitches => "context-switches",
            Counted::CpuMigrations => "cpu-migrations",
            Counted::Cycles => "cycles",
            Counted::Instructions => "instructions",
        }
    }

    pub fn is_hardware(self) -> bool {
        matches!(self, Counted::Cycles | Counted::Instructions)
    }

    fn event(self) -> Event {
        match self {
            Counted::ContextSwitches => Software::CONTEXT_SWITCHES.into(),
            Counted::CpuMigrations => Software::CPU_MIGRATIONS.into(),
            Counted::Cycles => Hardware::CPU_CYCLES.into(),
            Counted::Instructions => Hardware::INSTRUCTIONS.into(),
        }
    }
}

/// Why an event could not be counted: the failing call and the OS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub what: String,
    pub errno: Option<i32>,
}

impl Unavailable {
    fn new(what: String, err: &io::Error) -> Self {
        Self {
            what: format!("{what} failed: {err}"),
            errno: err.raw_os_error(),
        }
    }

    /// The kernel has no such event here (no PMU: virtualized hosts, TCG guests), as opposed
    /// to a refusal or a lack of file descriptors.
    pub fn no_such_event(&self) -> bool {
        matches!(
            self.errno,
            Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP)
        )
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

/// One event over all of a process's threads.
struct EventCounters {
    counted: Counted,
    /// `Err` once opening it failed on some thread: a partial total would mislead.
    counters: Result<Vec<Counter>, Unavailable>,
}

/// Counters of one process, opened on every thread it has (see the module docs).
pub struct ProcessCounters {
    pid: u32,
    events: Vec<EventCounters>,
}

/// How often the threads are listed again while opening, for threads started meanwhile (a
/// thread started by one already counted is inherited; one started by another is not).
const MAX_LISTINGS: usize = 5;

impl ProcessCounters {
    /// Opens `counted` on every thread of process `pid`. Never fails as a whole: an event that
    /// cannot be opened reads as [`Unavailable`] from [`ProcessCounters::totals`].
    pub fn open(pid: u32, counted: &[Counted]) -> Self {
        let mut events: Vec<EventCounters> = counted
            .iter()
            .map(|&counted| EventCounters {
                counted,
                counters: Ok(Vec::new()),
            })
            .collect();
        let mut opened_tids: Vec<u32> = Vec::new();
        for _ in 0..MAX_LISTINGS {
            let tids = match threads_of(pid) {
                Ok(tids) => tids,
                Err(err) => {
                    if opened_tids.is_empty() {
                        let failure =
                            Unavailable::new(format!("listing process {pid}'s threads"), &err);
                        for event in &mut events {
                            event.counters = Err(failure.clone());
                        }
                    }
                    break;
                }
            };
            let new: Vec<u32> = tids
                .into_iter()
                .filter(|tid| !opened_tids.contains(tid))
                .collect();
            if new.is_empty() {
                break;
            }
            for &tid in &new {
                for event in &mut events {
                    let Ok(counters) = &mut event.counters else {
                        continue;
                    };
                    match open_one(event.counted, tid) {
                        Ok(counter) => counters.push(counter),
                        // The thread exited since it was listed: nothing left to count.
                        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(err) => {
                            event.counters = Err(Unavailable::new(
                                format!("perf_event_open({})", event.counted.name()),
                                &err,
                            ));
                        }
                    }
                }
            }
            opened_tids.extend(new);
        }
        // Every thread exited before it could be counted: no total, rather than a false 0.
        for event in &mut events {
            if matches!(&event.counters, Ok(counters) if counters.is_empty()) {
                event.counters = Err(Unavailable {
                    what: format!("process {pid} had no thread left to count"),
                    errno: Some(libc::ESRCH),
                });
            }
        }
        Self { pid, events }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Each event's total over the threads (and what they started), so far.
    pub fn totals(&mut self) -> Vec<(Counted, Result<u64, Unavailable>)> {
        self.events
            .iter_mut()
            .map(|event| (event.counted, event.total()))
            .collect()
    }

    /// The total of one event, if it was asked for.
    pub fn total(&mut self, counted: Counted) -> Option<Result<u64, Unavailable>> {
        let event = self.events.iter_mut().find(|e| e.counted == counted)?;
        Some(event.total())
    }
}

impl EventCounters {
    fn total(&mut self) -> Result<u64, Unavailable> {
        match &mut self.counters {
            Ok(counters) => sum(self.counted, counters),
            Err(why) => Err(why.clone()),
        }
    }
}

/// A trial's totals of one process; `None` where not asked for or not countable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub context_switches: Option<u64>,
    pub cpu_migrations: Option<u64>,
    pub cycles: Option<u64>,
    pub instructions: Option<u64>,
    /// Why the hardware events asked for could not be counted (`no PMU: ...`).
    pub hardware_unavailable: Option<String>,
}

impl ProcessCounters {
    /// Reads every total and closes the counters. What could not be counted is said on
    /// stderr, once per run for each distinct reason (a machine without a PMU says so once,
    /// not every trial), naming `whose` counters they were.
    pub fn finish(mut self, whose: &str) -> Totals {
        let mut totals = Totals::default();
        for (counted, total) in self.totals() {
            let total = match total {
                Ok(total) => Some(total),
                Err(why) => {
                    let why = if counted.is_hardware() && why.no_such_event() {
                        format!("no PMU: {why}")
                    } else {
                        why.to_string()
                    };
                    say_once(&format!(
                        "  note: {whose}'s {} not counted: {why}",
                        counted.name()
                    ));
                    if counted.is_hardware() && totals.hardware_unavailable.is_none() {
                        totals.hardware_unavailable = Some(why);
                    }
                    None
                }
            };
            match counted {
                Counted::ContextSwitches => totals.context_switches = total,
                Counted::CpuMigrations => totals.cpu_migrations = total,
                Counted::Cycles => totals.cycles = total,
                Counted::Instructions => totals.instructions = total,
            }
        }
        totals
    }
}

fn say_once(message: &str) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !said.iter().any(|m| m == message) {
        crate::say!("{message}");
        said.push(message.to_string());
    }
}

fn open_one(counted: Counted, tid: u32) -> io::Result<Counter> {
    let mut builder = Builder::new()
        .kind(counted.event())
        .observe_pid(tid as libc::pid_t)
        .any_cpu();
    builder.inherit(true).include_kernel().enabled(true);
    let counter = builder.build()?;
    // perf-event opens without O_CLOEXEC; programs started later must not hold the counter.
    fcntl(counter.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(io::Error::from)?;
    Ok(counter)
}

/// The sum over the counters, each scaled up by the share of time it was scheduled on the
/// PMU (hardware counters are time-shared when there are more than it holds).
fn sum(counted: Counted, counters: &mut [Counter]) -> Result<u64, Unavailable> {
    let mut total: u64 = 0;
    for counter in counters {
        let read = counter.read_count_and_time().map_err(|err| {
            Unavailable::new(format!("reading the {} counter", counted.name()), &err)
        })?;
        let count = if read.time_running > 0 && read.time_running < read.time_enabled {
            (read.count as u128 * read.time_enabled as u128 / read.time_running as u128) as u64
        } else {
            read.count
        };
        total = total.saturating_add(count);
    }
    Ok(total)
}

fn threads_of(pid: u32) -> io::Result<Vec<u32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// perf_event_open on another thread needs root (or CAP_PERFMON); skip where refused.
    fn refused(why: &Unavailable) -> bool {
        if matches!(why.errno, Some(libc::EACCES | libc::EPERM)) {
            eprintln!("skipped: perf_event_open refused here ({why}); run the tests as root");
            return true;
        }
        false
    }

    #[test]
    fn counts_the_context_switches_of_a_thread_that_sleeps() {
        // One thread of our own, observed by its tid alone (no other thread of the test
        // binary counts), parked until its counter is open.
        let (ready_tx, ready_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            ready_tx
                .send(nix::unistd::gettid().as_raw() as u32)
                .unwrap();
            go_rx.recv().unwrap();
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let tid = ready_rx.recv().unwrap();
        let mut counter = match open_one(Counted::ContextSwitches, tid) {
            Ok(counter) => counter,
            Err(err) => {
                let why = Unavailable::new("perf_event_open(context-switches)".into(), &err);
                if refused(&why) {
                    return;
                }
                panic!("{why}");
            }
        };
        go_tx.send(()).unwrap();
        sleeper.join().unwrap();
        // Read after the thread exited: the count survives it.
        let switches = sum(Counted::ContextSwitches, std::slice::from_mut(&mut counter)).unwrap();
        assert!(
            (20..200).contains(&switches),
            "{switches} context switches for 20 sleeps"
        );
    }

    #[test]
    fn a_process_total_includes_threads_started_after_opening() {
        let mut counters = ProcessCounters::open(std::process::id(), &[Counted::ContextSwitches]);
        if let Some(Err(why)) = counters.total(Counted::ContextSwitches) {
            if refused(&why) {
                return;
            }
            panic!("{why}");
        }
        let before = counters.total(Counted::ContextSwitches).unwrap().unwrap();
        // Started after opening, by a counted thread (this one): inherited.
        std::thread::spawn(|| {
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .join()
        .unwrap();
        let after = counters.total(Counted::ContextSwitches).unwrap().unwrap();
        assert!(after >= before + 20, "{before} -> {after}");
        assert_eq!(counters.total(Counted::Cycles), None);
    }

    #[test]
    fn a_process_that_is_gone_is_unavailable_not_an_error() {
        // Pid numbers stop well below this (pid_max is at most 2^22).
        let mut counters = ProcessCounters::open(1 << 30, &Counted::SOFTWARE);
        for (_, total) in counters.totals() {
            let why = total.unwrap_err();
            assert!(why.to_string().contains("listing process"), "{why}");
        }
    }

    #[test]
    fn hardware_counters_either_count_or_say_why() {
        let counters = ProcessCounters::open(
            std::process::id(),
            &[
                Counted::ContextSwitches,
                Counted::Cycles,
                Counted::Instructions,
            ],
        );
        std::hint::black_box((0..100_000u64).sum::<u64>());
        let totals = counters.finish("the test");
        if totals.context_switches.is_none() {
            eprintln!("skipped: perf_event_open refused here; run the tests as root");
            return;
        }
        assert_eq!(totals.cpu_migrations, None, "not asked for");
        for count in [totals.cycles, totals.instructions].into_iter().flatten() {
            assert!(count > 0, "{totals:?}");
        }
        if totals.cycles.is_none() || totals.instructions.is_none() {
            // e.g. "no PMU: perf_event_open(cycles) failed: No such file or directory"
            let why = totals.hardware_unavailable.as_deref().unwrap_or_default();
            assert!(why.contains("perf_event_open("), "{totals:?}");
            eprintln!("hardware counters unavailable here: {why}");
        }
    }
}
