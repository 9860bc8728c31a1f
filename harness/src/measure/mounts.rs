//! Pseudo file systems the BPF programs need. libbpf finds tracepoint ids in tracefs, which is
//! not mounted at boot on every machine; the harness mounts it for the run and unmounts it
//! afterwards.
//!
//! Several runs may share the mount (two `aegis-bench attack` at once, or a test suite): each
//! holds a shared `flock` on a lock file while it uses tracefs, and the file records whether
//! aegis-bench mounted it. The last run to finish (the one that can take the lock exclusively)
//! unmounts it if aegis-bench did, so no run unmounts tracefs under another, and a run killed
//! with SIGKILL leaves it for the next one to put back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::InputError;

pub const TRACEFS: &str = "/sys/kernel/tracing";
const LOCK_FILE: &str = "/run/aegis-bench-tracefs.lock";
const MOUNTED_MARKER: &[u8] = b"mounted by aegis-bench\n";

/// Holds tracefs for one run; see the module docs for what happens on drop.
pub struct TracefsGuard {
    lock: Option<File>,
    mounted_by_us: bool,
}

impl TracefsGuard {
    pub fn mounted_by_us(&self) -> bool {
        self.mounted_by_us
    }
}

fn tracefs_ready(dir: &Path) -> bool {
    dir.join("events/raw_syscalls/sys_enter").exists()
}

fn flock(file: &File, operation: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

fn open_lock() -> Option<File> {
    let path = if Path::new("/run").is_dir() {
        Path::new(LOCK_FILE)
    } else {
        Path::new("/tmp/aegis-bench-tracefs.lock")
    };
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ok()
}

fn set_marker(lock: &mut File, mounted: bool) {
    let _ = lock.set_len(0);
    let _ = lock.rewind();
    if mounted {
        let _ = lock.write_all(MOUNTED_MARKER);
    }
}

fn marker_says_mounted(lock: &mut File) -> bool {
    let mut text = Vec::new();
    let _ = lock.rewind();
    lock.read_to_end(&mut text).is_ok() && text == MOUNTED_MARKER
}

/// Makes sure tracefs is mounted, checking the legacy debugfs location too.
pub fn ensure_tracefs() -> Result<TracefsGuard, InputError> {
    let mut lock = open_lock();
    if let Some(file) = &lock {
        flock(file, libc::LOCK_EX);
    }
    let tracefs = Path::new(TRACEFS);
    let mut mounted_by_us = false;
    if !(tracefs_ready(tracefs) || tracefs_ready(Path::new("/sys/kernel/debug/tracing"))) {
        mount(
            Some("nodev"),
            tracefs,
            Some("tracefs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|errno| {
            InputError(format!(
                "cannot mount tracefs at {TRACEFS} ({errno}); the BPF tracepoints need it: mount \
                 it with `mount -t tracefs nodev {TRACEFS}` or use a kernel built with CONFIG_FTRACE"
            ))
        })?;
        if !tracefs_ready(tracefs) {
            let _ = umount2(tracefs, MntFlags::MNT_DETACH);
            return Err(InputError(format!(
                "tracefs at {TRACEFS} has no raw_syscalls/sys_enter tracepoint; use a kernel \
                 built with CONFIG_FTRACE_SYSCALLS"
            )));
        }
        mounted_by_us = true;
        if let Some(file) = lock.as_mut() {
            set_marker(file, true);
        }
    }
    if let Some(file) = &lock {
        flock(file, libc::LOCK_SH);
    }
    Ok(TracefsGuard {
        lock: lock.take(),
        mounted_by_us,
    })
}

impl Drop for TracefsGuard {
    fn drop(&mut self) {
        let Some(mut lock) = self.lock.take() else {
            return;
        };
        // Another run still holds it: that run puts it back.
        if !flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
            return;
        }
        if marker_says_mounted(&mut lock) {
            if let Err(errno) = umount2(TRACEFS, MntFlags::MNT_DETACH) {
                crate::say!("warning: could not unmount tracefs at {TRACEFS}: {errno}");
            }
            set_marker(&mut lock, false);
        }
    }
}
