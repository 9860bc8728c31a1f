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

/// `/proc/sys/kernel/random/boot_id`: a random id the kernel picks at each boot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo_model(&cpuinfo)
}

fn cpuinfo_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// Online CPUs.
pub fn cpus() -> Option<u32> {
    std::thread::available_parallelism()
        .ok()
        .map(|n| n.get() as u32)
}

/// The environment variable through which the guest runner tells a guest its host.
pub const HOST_FACTS_VAR: &str = "AEGIS_BENCH_HOST";

impl crate::results::trial::HostFacts {
    /// This machine, with QEMU's version if it will run guests.
    pub fn here(qemu_version: Option<String>) -> Self {
        Self {
            machine: hostname(),
            kernel: release(),
            cpu_model: cpu_model(),
            cpus: cpus(),
            qemu_version,
        }
    }

    /// The host a guest runner described in [`HOST_FACTS_VAR`]; this machine otherwise.
    pub fn of_this_run() -> Self {
        std::env::var(HOST_FACTS_VAR)
            .ok()
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_else(|| Self::here(None))
    }
}

impl crate::results::trial::Environment {
    /// This machine, its boot and build, and the physical host (itself, or a guest's host).
    pub fn here() -> Self {
        let host = crate::results::trial::HostFacts::of_this_run();
        Self {
            kernel: release(),
            machine: hostname(),
            git_rev: crate::GIT_REV.to_string(),
            boot_id: boot_id(),
            cpu_model: cpu_model(),
            cpus: cpus(),
            build_profile: Some(crate::BUILD_PROFILE.to_string()),
            host_machine: Some(host.machine),
            host_kernel: Some(host.kernel),
            host_cpu_model: host.cpu_model,
            host_cpus: host.cpus,
            qemu_version: host.qemu_version,
            model_sha256: None,
        }
    }
}

const SECURITYFS: &str = "/sys/kernel/security";

/// The kernel's active LSMs, in order (securityfs's `lsm`). securityfs is mounted for the look
/// where it is not, and unmounted again.
pub fn active_lsms() -> Result<Vec<String>, String> {
    let file = Path::new(SECURITYFS).join("lsm");
    let read = |file: &Path| {
        std::fs::read_to_string(file)
            .map(|text| text.trim().split(',').map(String::from).collect::<Vec<_>>())
    };
    if let Ok(lsms) = read(&file) {
        return Ok(lsms);
    }
    use nix::mount::{mount, umount, MsFlags};
    mount(
        Some("securityfs"),
        SECURITYFS,
        Some("securityfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|err| {
        format!("cannot mount securityfs on {SECURITYFS} to read the active LSMs: {err}")
    })?;
    let lsms = read(&file);
    umount(SECURITYFS).ok();
    lsms.map_err(|err| format!("reading {}: {err}", file.display()))
}

/// Fails, naming why, unless BPF-LSM programs run here (`builtin-lsm`): `bpf` among the active
/// LSMs and the kernel's BTF to attach by.
pub fn check_bpf_lsm() -> Result<(), crate::error::InputError> {
    let refuse = |why: String| {
        Err(crate::error::InputError(format!(
            "builtin-lsm cannot run on this kernel ({}): {why}",
            release()
        )))
    };
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return refuse("it has no BTF (/sys/kernel/btf/vmlinux) to attach LSM programs by".into());
    }
    match active_lsms() {
        Ok(lsms) if lsms.iter().any(|lsm| lsm == "bpf") => {
            match crate::measure::truth::check_hooks_load() {
                Ok(()) => Ok(()),
                Err(err) => refuse(format!("{err:#}; use --vm")),
            }
        }
        Ok(lsms) => refuse(format!(
            "BPF-LSM is not active (LSMs: {}); boot it with `bpf` in lsm=..., or use --vm",
            lsms.join(",")
        )),
        Err(why) => refuse(why),
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

    #[test]
    fn reads_the_cpu_model_and_this_boot() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) \
                       CPU @ 2.20GHz\nflags\t\t: fpu\n";
        assert_eq!(
            cpuinfo_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpuinfo_model("processor : 0\n"), None);
        let id = boot_id().expect("Linux has a boot id");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(boot_id(), Some(id), "one boot, one id");
    }
}
