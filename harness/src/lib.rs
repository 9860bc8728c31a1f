//! aegis-bench: does a provenance collector record every event while an attacker floods the
//! kernel with syscalls?
//!
//! One trial, as data flowing through:
//! 1. *arm*: create the attack's cgroup, load the ground-truth counter (a BPF program on
//!    `raw_syscalls/sys_enter` that only increments per (cgroup, syscall)), start the collector
//!    and wait until it is attached;
//! 2. *fire*: the attack worker joins the cgroup and floods, tallying its own syscalls, and
//!    performs the canary mid-flood;
//! 3. *disarm*: empty the cgroup, drain and stop the collector, detach the counter;
//! 4. *account*: truth must equal the attack's tally and received + dropped must equal truth
//!    over the traced syscalls, or the trial fails instead of printing a number;
//! 5. *export*: a table row, and the trial appended atomically to JSON and CSV.

/// Writes a line to stderr, ignoring failure: a closed stderr (the reader went away) must not
/// turn into a panic halfway through restoring the kernel's state.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes a line to stdout, ignoring failure: a reader that went away (`| head`) must not
/// turn the end of a run into a panic after its results were written.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod bpf_intf;
pub mod cli;
pub mod collector;
pub mod commands;
pub mod error;
pub mod export;
pub mod figures;
pub mod files;
pub mod measure;
pub mod provlog;
pub mod report;
pub mod results;
pub mod run;
pub mod sched;
pub mod signals;
pub mod size;
pub mod stats;
pub mod syscalls;
pub mod vm;

/// Generated libbpf-rs skeletons of `bpf/*.bpf.c`.
pub mod skel {
    #![allow(clippy::all, missing_docs, non_camel_case_types, dead_code)]
    pub mod truth {
        include!(concat!(env!("OUT_DIR"), "/truth.skel.rs"));
    }
    pub mod collector {
        include!(concat!(env!("OUT_DIR"), "/collector.skel.rs"));
    }
    pub mod collector_compact {
        include!(concat!(env!("OUT_DIR"), "/collector_compact.skel.rs"));
    }
    pub mod collector_lsm {
        include!(concat!(env!("OUT_DIR"), "/collector_lsm.skel.rs"));
    }
}

/// The revision this binary was built from (`git describe --always --dirty`).
pub const GIT_REV: &str = env!("AEGIS_GIT_REV");

/// The cargo profile this binary was built with: trials record it, since a debug build's
/// collector drains slower.
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};
