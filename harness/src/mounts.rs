//! Pseudo file systems the BPF programs need. libbpf finds tracepoint ids in tracefs, which is
//! not mounted at boot on every machine; the harness mounts it for the run and unmounts it
//! afterwards if it was the one that mounted it.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::InputError;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Unmounts tracefs on drop if this guard mounted it.
pub struct TracefsGuard {
    mounted_by_us: Option<PathBuf>,
}

impl TracefsGuard {
    pub fn mounted_by_us(&self) -> bool {
        self.mounted_by_us.is_some()
    }
}

fn tracefs_ready(dir: &Path) -> bool {
    dir.join("events/raw_syscalls/sys_enter").exists()
}

/// Makes sure tracefs is mounted, checking the legacy debugfs location too.
pub fn ensure_tracefs() -> Result<TracefsGuard, InputError> {
    let tracefs = Path::new(TRACEFS);
    if tracefs_ready(tracefs) || tracefs_ready(Path::new("/sys/kernel/debug/tracing")) {
        return Ok(TracefsGuard {
            mounted_by_us: None,
        });
    }
    mount(
        Some("nodev"),
        tracefs,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|errno| {
        InputError(format!(
            "cannot mount tracefs at {TRACEFS} ({errno}); the BPF tracepoints need it: mount it \
             with `mount -t tracefs nodev {TRACEFS}` or use a kernel built with CONFIG_FTRACE"
        ))
    })?;
    if !tracefs_ready(tracefs) {
        let _ = umount2(tracefs, MntFlags::MNT_DETACH);
        return Err(InputError(format!(
            "tracefs at {TRACEFS} has no raw_syscalls/sys_enter tracepoint; use a kernel built \
             with CONFIG_FTRACE_SYSCALLS"
        )));
    }
    Ok(TracefsGuard {
        mounted_by_us: Some(tracefs.to_path_buf()),
    })
}

impl Drop for TracefsGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.mounted_by_us.take() {
            if let Err(errno) = umount2(&dir, MntFlags::MNT_DETACH) {
                crate::say!(
                    "warning: could not unmount tracefs at {}: {errno}",
                    dir.display()
                );
            }
        }
    }
}
