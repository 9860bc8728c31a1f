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

/// The lock file, in /run (root's); where there is no /run, in /tmp, opened without following
/// a symlink and used only if it is ours (anyone can plant a name in /tmp).
fn open_lock() -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = if Path::new("/run").is_dir() {
        Path::new(LOCK_FILE)
    } else {
        Path::new("/tmp/aegis-bench-tracefs.lock")
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && meta.uid() == nix::unistd::geteuid().as_raw()).then_some(file)
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

fn ready_anywhere() -> bool {
    tracefs_ready(Path::new(TRACEFS)) || tracefs_ready(Path::new("/sys/kernel/debug/tracing"))
}

/// Makes sure tracefs is mounted, checking the legacy debugfs location too. Runs that find it
/// mounted share it at once; the lock is held exclusively only to mount it (and, on drop, to
/// unmount it), so a second run never waits for the first to end, and a wait for the lock
/// polls, so Ctrl-C ends it.
pub fn ensure_tracefs() -> anyhow::Result<TracefsGuard> {
    let mut lock = open_lock();
    let mut mounted_by_us = false;
    if let Some(file) = lock.as_mut() {
        let mut said = false;
        let started = std::time::Instant::now();
        loop {
            crate::signals::check()?;
            if ready_anywhere() && flock(file, libc::LOCK_SH | libc::LOCK_NB) {
                break;
            }
            if flock(file, libc::LOCK_EX | libc::LOCK_NB) {
                if !ready_anywhere() {
                    mount_tracefs()?;
                    mounted_by_us = true;
                    set_marker(file, true);
                }
                // Downgrade: other runs may share it now.
                flock(file, libc::LOCK_SH);
                break;
            }
            if !said && started.elapsed() > std::time::Duration::from_secs(2) {
                crate::say!("waiting for another aegis-bench run to finish with tracefs...");
                said = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    } else if !ready_anywhere() {
        mount_tracefs()?;
        mounted_by_us = true;
    }
    Ok(TracefsGuard {
        lock: lock.take(),
        mounted_by_us,
    })
}

fn mount_tracefs() -> Result<(), InputError> {
    let tracefs = Path::new(TRACEFS);
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
    Ok(())
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
