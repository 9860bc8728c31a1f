//! The multi-queue backbone and the exponential waiting-time rule.
//!
//! Tasks sit in one of [`NR_LEVELS`] levels, served in priority order: provenance tasks (the
//! collector's threads, registered by the harness) first, ordinary tasks next, producers (tasks
//! whose recent syscall rate crosses a threshold) last. Strict priority alone would starve the
//! lower levels, so a task in level `k` that has waited `base_wait_ns << k` is *overdue* and is
//! served ahead of every level; among overdue tasks the lowest level goes first (its bound is
//! the tighter one), and within it the one furthest past its bound. No task waits longer than
//! its bound plus the time for the tasks already overdue ahead of it to run one slice each.

/// Number of levels.
pub const NR_LEVELS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Provenance = 0,
    Ordinary = 1,
    Producer = 2,
}

impl Level {
    pub const ALL: [Level; NR_LEVELS] = [Level::Provenance, Level::Ordinary, Level::Producer];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Classification inputs for one task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskSignals {
    /// Registered as a provenance task (by pid, comm or cgroup).
    pub provenance: bool,
    /// The task's syscall rate while it runs, as syscalls per rate window of CPU time: see
    /// [`syscalls_per_window_of_cpu`].
    pub recent_syscalls: u32,
}

/// A task's syscalls in a rate window scaled to a whole window of CPU time:
/// `syscalls * window_ns / ran_ns` (saturating), or `None` if it did not run in the window
/// (keep the previous value then).
///
/// Counting per window of *wall* time misclassifies producers that share CPUs: with 8
/// producers on 2 CPUs each runs in one window of three, so a producer that waits for a CPU
/// has made no syscall in the last window and looks ordinary exactly when it is picked (in the
/// simulator the collector could then never preempt it). The rate while running is what marks
/// a super producer, whatever its share of the CPU.
pub fn syscalls_per_window_of_cpu(syscalls: u32, ran_ns: u64, window_ns: u64) -> Option<u32> {
    (ran_ns > 0).then(|| (syscalls as u64 * window_ns / ran_ns).min(u32::MAX as u64) as u32)
}

/// A window in which the task ran less than this keeps its previous rate: a producer held
/// back runs a syscall at a time and must stay a producer (BPF: `AEGIS_MIN_RATE_RUN_US`).
pub const MIN_RATE_RUN_NS: u64 = 1_000_000;

/// Fewer syscalls than this in the window in progress never make a task a producer before the
/// window ends (BPF: `AEGIS_MIN_PRODUCER_SYSCALLS`).
pub const MIN_PRODUCER_SYSCALLS: u32 = 8;

/// The rate a finished window measured, if the task ran long enough in it to measure one.
pub fn window_rate(syscalls: u32, ran_ns: u64, window_ns: u64) -> Option<u32> {
    if ran_ns < MIN_RATE_RUN_NS {
        return None;
    }
    syscalls_per_window_of_cpu(syscalls, ran_ns, window_ns)
}

/// The rate of the window in progress, once it has [`MIN_PRODUCER_SYSCALLS`]: the BPF
/// `sys_enter` program makes a task that crosses the threshold mid-run a producer at once,
/// not from the next window (a new flood thread would otherwise run a whole window as an
/// ordinary task, past the hold).
pub fn rate_so_far(syscalls: u32, ran_ns: u64, window_ns: u64) -> Option<u32> {
    if syscalls < MIN_PRODUCER_SYSCALLS {
        return None;
    }
    syscalls_per_window_of_cpu(syscalls, ran_ns, window_ns)
}

/// The backbone's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backbone {
    /// Syscalls per rate window above which a task counts as a producer.
    pub producer_syscalls_per_window: u32,
    /// Wait bound of level 0; level k's bound is `base_wait_ns << k`.
    pub base_wait_ns: u64,
}

impl Default for Backbone {
    fn default() -> Self {
        Backbone {
            // A 10 ms window: 1000 syscalls = 100k/s, far above ordinary programs.
            producer_syscalls_per_window: 1_000,
            // Bounds of 16/32/64 ms: a starvation guarantee, not a latency target (a bound
            // below the round-robin time of the runnable tasks cannot be met by anyone).
            base_wait_ns: 16_000_000,
        }
    }
}

impl Backbone {
    pub fn classify(&self, signals: TaskSignals) -> Level {
        if signals.provenance {
            Level::Provenance
        } else if signals.recent_syscalls > self.producer_syscalls_per_window {
            Level::Producer
        } else {
            Level::Ordinary
        }
    }

    pub fn wait_bound_ns(&self, level: Level) -> u64 {
        self.base_wait_ns << level.index()
    }

    /// How far past its bound a task is (0 if not overdue).
    pub fn overdue_ns(&self, level: Level, waited_ns: u64) -> u64 {
        waited_ns.saturating_sub(self.wait_bound_ns(level))
    }

    /// Chooses among queued tasks given as `(level, waited_ns, vtime)`: if any is overdue, the
    /// most overdue of the highest-priority level that has one; else the highest level, lowest
    /// vtime. Ties go to the lower index. As `find_overdue_on` in bpf/aegis.bpf.c.
    pub fn choose(&self, queued: &[(Level, u64, u64)]) -> Option<usize> {
        let mut best: Option<(usize, (u8, u8, u64))> = None;
        for (i, &(level, waited, vtime)) in queued.iter().enumerate() {
            let overdue = self.overdue_ns(level, waited);
            // Sort key, smaller first: overdue tasks (0) before others (1); overdue ones by
            // level, then most overdue; the others by level, then vtime.
            let key = if overdue > 0 {
                (0u8, level as u8, u64::MAX - overdue)
            } else {
                (1u8, level as u8, vtime)
            };
            if best.is_none_or(|(_, k)| key < k) {
                best = Some((i, key));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let b = Backbone::default();
        let sig = |provenance, recent_syscalls| TaskSignals {
            provenance,
            recent_syscalls,
        };
        assert_eq!(b.classify(sig(true, 1_000_000)), Level::Provenance);
        assert_eq!(b.classify(sig(false, 5_000)), Level::Producer);
        assert_eq!(b.classify(sig(false, 10)), Level::Ordinary);
    }

    #[test]
    fn higher_levels_first_until_a_bound_is_passed() {
        let b = Backbone::default();
        let queued = [
            (Level::Producer, 1_000_000, 5),
            (Level::Ordinary, 0, 9),
            (Level::Provenance, 0, 100),
        ];
        assert_eq!(b.choose(&queued), Some(2));
        // The producer has now waited past its bound (4 x base): it goes first.
        let overdue = b.wait_bound_ns(Level::Producer) + 1;
        let queued = [(Level::Producer, overdue, 5), (Level::Provenance, 0, 100)];
        assert_eq!(b.choose(&queued), Some(0));
        // Among overdue tasks the higher level goes first, however far past its bound the
        // lower one is; within a level, the most overdue.
        let queued = [
            (Level::Producer, 10 * b.wait_bound_ns(Level::Producer), 5),
            (Level::Ordinary, b.wait_bound_ns(Level::Ordinary) + 1, 9),
            (Level::Ordinary, b.wait_bound_ns(Level::Ordinary) + 2, 9),
        ];
        assert_eq!(b.choose(&queued), Some(2));
        // Within a level, lower vtime first.
        let queued = [(Level::Ordinary, 0, 9), (Level::Ordinary, 0, 3)];
        assert_eq!(b.choose(&queued), Some(1));
        assert_eq!(b.choose(&[]), None);
    }

    #[test]
    fn syscall_rate_is_per_cpu_time() {
        // 300 syscalls in 1 ms of a 10 ms window: 3000 per window of CPU time.
        assert_eq!(
            syscalls_per_window_of_cpu(300, 1_000_000, 10_000_000),
            Some(3_000)
        );
        assert_eq!(syscalls_per_window_of_cpu(0, 0, 10_000_000), None);
        assert_eq!(
            syscalls_per_window_of_cpu(u32::MAX, 1, 10_000_000),
            Some(u32::MAX)
        );
        // Too little CPU in a finished window measures nothing; too few syscalls in the
        // window in progress neither.
        assert_eq!(window_rate(5, MIN_RATE_RUN_NS - 1, 10_000_000), None);
        assert_eq!(window_rate(5, MIN_RATE_RUN_NS, 10_000_000), Some(50));
        assert_eq!(
            rate_so_far(MIN_PRODUCER_SYSCALLS - 1, 1_000, 10_000_000),
            None
        );
        assert_eq!(
            rate_so_far(MIN_PRODUCER_SYSCALLS, 1_000, 10_000_000),
            Some(MIN_PRODUCER_SYSCALLS * 10_000)
        );
    }

    #[test]
    fn bounds_grow_exponentially() {
        let b = Backbone {
            base_wait_ns: 1_000,
            ..Backbone::default()
        };
        assert_eq!(
            Level::ALL.map(|l| b.wait_bound_ns(l)),
            [1_000, 2_000, 4_000]
        );
    }
}
