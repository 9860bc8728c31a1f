//! Per-thread syscall counts indexed by syscall number.

use std::collections::BTreeMap;

/// Syscall numbers on x86_64 stay below this.
pub const MAX_SYSCALL_NR: usize = 512;

/// How many times each syscall number was issued by one thread. Allocated before the flood so
/// counting never allocates.
#[derive(Clone)]
pub struct SyscallTally {
    counts: Box<[u64; MAX_SYSCALL_NR]>,
}

impl Default for SyscallTally {
    fn default() -> Self {
        Self {
            counts: Box::new([0; MAX_SYSCALL_NR]),
        }
    }
}

impl SyscallTally {
    /// Records one call of syscall `nr`.
    #[inline(always)]
    pub fn add(&mut self, nr: libc::c_long) {
        self.counts[nr as usize] += 1;
    }

    pub fn get(&self, nr: libc::c_long) -> u64 {
        self.counts[nr as usize]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, other: &SyscallTally) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    /// Zeroes every count (no allocation, no syscall: a spread evader's child starts so).
    pub fn clear(&mut self) {
        self.counts.fill(0);
    }

    /// The counts by syscall number, to copy where another process can read them.
    pub fn counts(&self) -> &[u64; MAX_SYSCALL_NR] {
        &self.counts
    }

    /// Adds counts by syscall number (another process's [`SyscallTally::counts`]).
    pub fn add_counts(&mut self, counts: &[u64; MAX_SYSCALL_NR]) {
        for (mine, theirs) in self.counts.iter_mut().zip(counts.iter()) {
            *mine += theirs;
        }
    }

    /// The non-zero counts, keyed by syscall number.
    pub fn to_map(&self) -> BTreeMap<u32, u64> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(nr, count)| (nr as u32, *count))
            .collect()
    }
}
