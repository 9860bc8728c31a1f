//! sysdig: detected, never faked.
//!
//! sysdig captures through a driver: the `scap` kernel module (`/dev/scap0`), a classic eBPF
//! probe compiled against this kernel's headers (`-B FILE`, or `SYSDIG_BPF_PROBE`), or, in
//! newer releases, a CO-RE "modern" probe (`--modern-bpf`). [`probe`] finds out which of them
//! this machine has *without running the capture*: `sysdig -B` with no file runs
//! `scap-driver-loader`, which mounts debugfs and tries to download or compile a probe, and
//! that is not a check that may change the machine.
//!
//! Where sysdig can capture, its loss figure is still not one aegis-bench can account for
//! exactly: `Driver Drops` (printed by `sysdig -v` at the end of a capture) counts dropped
//! *events* (one on syscall entry, one on exit) of *every process on the machine*, so it
//! cannot be matched with the attack's syscalls counted by ground truth. The collector is
//! therefore refused with that reason rather than run for a number that cannot add up.

use std::path::Path;
use std::process::Command;

use super::audit_state::find_program;

/// Whether the sysdig on this machine can capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    /// It cannot; the reason.
    No(String),
    /// It can; with which driver.
    Yes(String),
}

fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "sysdig (version unknown)".to_string())
        .replace("sysdig version", "sysdig")
}

fn has_modern_probe(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--help")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("--modern-bpf"))
        .unwrap_or(false)
}

/// A `scap*.ko*` file under `dir`, searched a few levels deep.
fn find_module(dir: &Path, depth: u32) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("scap") && name.contains(".ko") {
            return Some(path);
        }
        if depth > 0 && path.is_dir() {
            if let Some(found) = find_module(&path, depth - 1) {
                return Some(found);
            }
        }
    }
    None
}

/// A prebuilt classic eBPF probe sysdig would load: `SYSDIG_BPF_PROBE`, or one in `~/.scap`
/// named for this kernel.
fn prebuilt_probe(release: &str) -> Option<std::path::PathBuf> {
    if let Some(file) = std::env::var_os("SYSDIG_BPF_PROBE").filter(|f| !f.is_empty()) {
        let file = std::path::PathBuf::from(file);
        return file.is_file().then_some(file);
    }
    let home = std::env::var_os("HOME")?;
    std::fs::read_dir(Path::new(&home).join(".scap"))
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".o") && name.contains(release)
        })
}

/// Finds out whether sysdig can capture here, without trying to.
pub fn probe() -> Capture {
    let Some(binary) = find_program("sysdig") else {
        return Capture::No(
            "sysdig is not installed (apt-get install --no-install-recommends sysdig)".into(),
        );
    };
    let release = crate::measure::kernel::release();
    if Path::new("/dev/scap0").exists() {
        return Capture::Yes("the scap kernel module (/dev/scap0)".into());
    }
    if let Some(file) = prebuilt_probe(&release) {
        return Capture::Yes(format!("the eBPF probe {}", file.display()));
    }
    if has_modern_probe(&binary) {
        return Capture::Yes("its CO-RE modern probe (--modern-bpf)".into());
    }
    let module = if !Path::new("/proc/modules").exists() {
        "this kernel cannot load modules at all (CONFIG_MODULES off), so no scap kernel module"
            .to_string()
    } else {
        match find_module(&Path::new("/lib/modules").join(&release), 4) {
            Some(file) => format!("the scap module {} is built but not loaded", file.display()),
            None => format!("no scap kernel module is loaded or built for {release}"),
        }
    };
    Capture::No(format!(
        "{} cannot capture on this kernel: {module}, no prebuilt eBPF probe (SYSDIG_BPF_PROBE, \
         ~/.scap) and no kernel headers to build one, and this version has no CO-RE modern \
         probe (no --modern-bpf option)",
        version(&binary)
    ))
}

/// Why `--collector sysdig` is refused here (one line).
pub fn why_unusable() -> String {
    match probe() {
        Capture::No(reason) => reason,
        Capture::Yes(driver) => format!(
            "sysdig can capture here with {driver}, but its Driver Drops count events (syscall \
             entries and exits) of every process on the machine, so the attack's loss cannot be \
             accounted for exactly and no figure is printed"
        ),
    }
}
