//! The run's work directories: private (0700, they hold a log of every process's syscalls or a
//! guest's image), named `aegis-bench-<pid>-<random>` (or `aegis-bench-<pid>-<label>-<random>`)
//! in the temporary directory so the next run, on the host or for a guest, can tell one whose
//! owner died (SIGKILL, an abort) from one in use, and remove it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const PREFIX: &str = "aegis-bench-";

/// Creates this run's work directory (removed when dropped).
pub fn create() -> Result<tempfile::TempDir> {
    create_labeled("")
}

/// Creates a work directory whose name says what it holds (`vm`, `boots`); removed when
/// dropped, and by the next run if this one is killed.
pub fn create_labeled(label: &str) -> Result<tempfile::TempDir> {
    let label = if label.is_empty() {
        String::new()
    } else {
        format!("{label}-")
    };
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-{label}", std::process::id()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating a work directory")
}

/// Removes the work directories of killed runs from the temporary directory and says so.
pub fn sweep_stale_and_say() {
    for dir in sweep_stale(&std::env::temp_dir(), aegis_bench_alive) {
        crate::say!(
            "note: removed {}, the work directory of an aegis-bench that was killed",
            dir.display()
        );
    }
}

/// Removes the work directories in `tmp` whose run is gone (`alive(pid)` false) and returns
/// them. Only directories (not symlinks) owned by this user are touched.
pub fn sweep_stale(tmp: &Path, alive: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return Vec::new();
    };
    let uid = nix::unistd::geteuid().as_raw();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !alive(pid) && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Whether `pid` is a running aegis-bench (a recycled pid running something else is not).
pub fn aegis_bench_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| comm.trim_end().starts_with("aegis-bench"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_of_dead_runs_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("provenance.log"), "x").unwrap();
            dir
        };
        let dead = make("aegis-bench-4000001-abc");
        let live = make("aegis-bench-4000002-def");
        let unrelated = make("aegis-bench-notapid");
        let target = make("elsewhere");
        std::os::unix::fs::symlink(&target, tmp.path().join("aegis-bench-4000003-lnk")).unwrap();
        let removed = sweep_stale(tmp.path(), |pid| pid == 4_000_002);
        assert_eq!(removed, std::slice::from_ref(&dead));
        assert!(!dead.exists() && live.exists() && unrelated.exists());
        assert!(target.join("provenance.log").exists());

        use std::os::unix::fs::PermissionsExt;
        for ours in [create().unwrap(), create_labeled("vm").unwrap()] {
            let mode = std::fs::metadata(ours.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let labeled = make("aegis-bench-4000004-vm-ghi");
        assert_eq!(sweep_stale(tmp.path(), |pid| pid != 4_000_004), [labeled]);
        assert!(!aegis_bench_alive(u32::MAX));
    }
}
