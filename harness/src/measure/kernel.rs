//! Facts about the running kernel: release, fair class, sched_ext.

use std::path::Path;

/// `uname -r`.
pub fn release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// (major, minor) of a release string such as `6.18.44-fc-v657`.
pub fn version_of(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The fair class of a kernel: EEVDF replaced CFS in Linux 6.6.
pub fn fair_class_of(release: &str) -> &'static str {
    match version_of(release) {
        Some(version) if version >= (6, 6) => "eevdf",
        Some(_) => "cfs",
        None => "eevdf",
    }
}

pub fn fair_class() -> &'static str {
    fair_class_of(&release())
}

/// `/sys/kernel/sched_ext/state`, or `None` when the kernel has no sched_ext.
pub fn sched_ext_state() -> Option<String> {
    std::fs::read_to_string("/sys/kernel/sched_ext/state")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The ops name of the loaded sched_ext scheduler, if one is enabled.
pub fn sched_ext_ops() -> Option<String> {
    if sched_ext_state()? != "enabled" {
        return None;
    }
    std::fs::read_to_string("/sys/kernel/sched_ext/root/ops")
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn has_sched_ext() -> bool {
    Path::new("/sys/kernel/sched_ext").exists()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The kernel's timer frequency (`CONFIG_HZ`), from /proc/config.gz or /boot/config-*: audit's
/// backlog wait time is in jiffies, and the scheduler tick is one jiffy.
pub fn hz() -> Option<u64> {
    let from_proc = std::process::Command::new("gzip")
        .args(["-dc", "/proc/config.gz"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    let config = from_proc
        .or_else(|| std::fs::read_to_string(format!("/boot/config-{}", release())).ok())?;
    config
        .lines()
        .find_map(|line| line.strip_prefix("CONFIG_HZ="))
        .and_then(|hz| hz.trim().parse().ok())
}

impl crate::results::trial::Environment {
    /// This machine and build: the kernel release, the host name and the git revision.
    pub fn here() -> Self {
        Self {
            kernel: release(),
            machine: hostname(),
            git_rev: crate::GIT_REV.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_fair_class() {
        assert_eq!(fair_class_of("6.18.44-fc-v657"), "eevdf");
        assert_eq!(fair_class_of("6.6.0"), "eevdf");
        assert_eq!(fair_class_of("6.1.0-32-cloud-amd64"), "cfs");
        assert_eq!(fair_class_of("5.15.0"), "cfs");
        assert_eq!(version_of("6.12.9+bpo-amd64"), Some((6, 12)));
    }
}
