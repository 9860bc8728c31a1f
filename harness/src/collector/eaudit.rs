//! eAudit (Sekar et al., IEEE S&P 2024): an external checkout, detected and refused with the
//! reason.
//!
//! eAudit is run from its checkout (`make all`, then `./ecapd` or `./eauditd`, which load the
//! Python/BCC front end `eauditd.py`); BCC compiles its BPF program (`eauditk.c`) when it starts,
//! which needs BCC and this kernel's headers. [`why_unusable`] names the first thing missing.
//!
//! Where everything is present the collector is still refused: its machine-readable summary
//! (`-m PREFIX`, printed on stderr when it stops: `PREFIXsyscalls N`, `PREFIXlost N`, ...)
//! gives `lost` in *bytes* (bytes sent to the ring buffer minus bytes received) and `syscalls`
//! summed over *every process on the machine*. Neither can be matched with the attack's
//! syscalls counted by ground truth, so an exact account is impossible from them. (Confirmed
//! by a run in the cfs guest's Debian userland, `docs/eaudit-notes.md`: there the log names
//! each record's pid and tid, the way to an exact account.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming a checkout when `--eaudit-dir` is not given.
pub const DIR_ENV: &str = "AEGIS_EAUDIT_DIR";

/// The checkout to use: the flag, else the environment.
pub fn checkout(flag: Option<&Path>) -> Option<PathBuf> {
    flag.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    })
}

fn bcc_missing() -> Option<String> {
    let imported = Command::new("python3")
        .args(["-c", "import bcc"])
        .output()
        .map(|out| out.status.success());
    match imported {
        Ok(true) => None,
        Ok(false) => Some("BCC (python3 cannot import bcc: apt-get install python3-bpfcc)".into()),
        Err(_) => Some("BCC and python3 (no python3)".into()),
    }
}

fn headers_missing() -> Option<String> {
    let release = crate::measure::kernel::release();
    let build = Path::new("/lib/modules").join(&release).join("build");
    let kheaders = Path::new("/sys/kernel/kheaders.tar.xz");
    if build.exists() || kheaders.exists() {
        None
    } else {
        Some(format!(
            "kernel headers for {release} (no {}, no {})",
            build.display(),
            kheaders.display()
        ))
    }
}

/// Why `--collector eaudit` is refused here (one line).
pub fn why_unusable(flag: Option<&Path>) -> String {
    let missing: Vec<String> = [bcc_missing(), headers_missing()]
        .into_iter()
        .flatten()
        .collect();
    let needs = if missing.is_empty() {
        String::new()
    } else {
        format!("; eAudit also needs {}", missing.join(" and "))
    };
    let Some(dir) = checkout(flag) else {
        return format!("no eAudit checkout: give --eaudit-dir DIR or set {DIR_ENV}{needs}");
    };
    if !dir.is_dir() {
        return format!(
            "the eAudit checkout {} does not exist{needs}",
            dir.display()
        );
    }
    let has = |file: &str| dir.join(file).is_file();
    if !(has("eauditk.c") && (has("ecapd") || has("eauditd"))) {
        return format!(
            "{} is not an eAudit checkout (no eauditk.c with ecapd or eauditd){needs}",
            dir.display()
        );
    }
    if !missing.is_empty() {
        return format!(
            "eAudit in {} cannot run here: it needs {}",
            dir.display(),
            missing.join(" and ")
        );
    }
    "eAudit's machine-readable summary (-m) gives `lost` in bytes and `syscalls` for every \
     process on the machine, so the attack's loss cannot be accounted for exactly and no figure \
     is printed"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_eaudit_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let reason = why_unusable(Some(dir.path()));
        assert!(reason.contains("is not an eAudit checkout"), "{reason}");
        let reason = why_unusable(Some(&dir.path().join("nope")));
        assert!(reason.contains("does not exist"), "{reason}");
    }
}
