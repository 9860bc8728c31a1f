//! What the harness tells scx_aegis and what it reads back.
//!
//! Per trial: the collector's pid is registered as the provenance task; a built-in collector
//! pins its ring buffer on bpffs so scx_aegis reads the exact backlog with
//! `bpf_ringbuf_query()` (without bpffs it falls back to its estimate, and says so); the
//! scheduler writes its counters to a JSON file that goes into the trial record.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;
const PIN_PREFIX: &str = "aegis-bench-";
const PIN_SUFFIX: &str = "-ring";

/// Whether bpffs is mounted where rings are pinned.
pub fn bpffs_mounted() -> bool {
    nix::sys::statfs::statfs(BPFFS)
        .map(|fs| fs.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Where trial `serial` of this run pins the collector's ring, if bpffs is there.
pub fn ring_pin_path(serial: u32) -> Option<PathBuf> {
    if !bpffs_mounted() {
        crate::say!(
            "  note: bpffs is not mounted at {BPFFS}: scx_aegis estimates the collector's \
             backlog instead of reading it (mount -t bpf bpf {BPFFS})"
        );
        return None;
    }
    remove_stale_pins();
    Some(Path::new(BPFFS).join(format!(
        "{PIN_PREFIX}{}-{serial}{PIN_SUFFIX}",
        std::process::id()
    )))
}

/// Pins left by runs that were killed before their collector could remove them.
pub fn remove_stale_pins() {
    let Ok(entries) = std::fs::read_dir(BPFFS) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(PIN_PREFIX)
            .and_then(|r| r.strip_suffix(PIN_SUFFIX))
        else {
            continue;
        };
        let owner_alive = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !owner_alive {
            std::fs::remove_file(entry.path()).ok();
        }
    }
}

/// Our pins still on bpffs (the clean-up tests check there are none).
pub fn pins() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(BPFFS) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PIN_PREFIX))
        .map(|e| e.path())
        .collect()
}

/// scx_aegis's command line for a trial.
pub fn args(collector_pid: u32, ring: Option<&Path>, stats_file: &Path) -> Vec<String> {
    let mut args = vec![
        "--provenance-pid".to_string(),
        collector_pid.to_string(),
        "--stats-file".to_string(),
        stats_file.display().to_string(),
    ];
    if let Some(ring) = ring {
        args.push("--collector-ring".into());
        args.push(ring.display().to_string());
    }
    args
}

/// The counters scx_aegis wrote at exit, checked against their schema
/// ([`scheduler::stats::ScxAegisStats`]); `None` for a scheduler that writes none. The trial
/// keeps them as a JSON value, so records written before a counter existed still read.
pub fn read_stats(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let stats: scheduler::stats::ScxAegisStats =
                serde_json::from_str(&text).with_context(|| {
                    format!("scx_aegis wrote unreadable stats to {}", path.display())
                })?;
            Ok(Some(serde_json::to_value(stats)?))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// What scx_aegis wrote in a guest reads through the schema into the same JSON value as
    /// the file holds; a file that is not its stats is an error naming it.
    #[test]
    fn stats_read_through_the_schema_unchanged() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scheduler/tests/data");
        for name in [
            "scx_aegis_stats_guest.json",
            "scx_aegis_stats_prog_stats.json",
        ] {
            let path = data.join(name);
            let raw: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(super::read_stats(&path).unwrap(), Some(raw), "{name}");
        }
        assert_eq!(super::read_stats(&data.join("absent.json")).unwrap(), None);
        let bad = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(bad.path(), "{\"levels\": 3}").unwrap();
        let err = format!("{:#}", super::read_stats(bad.path()).unwrap_err());
        assert!(err.contains("unreadable stats"), "{err}");
    }
}
