//! `aegis-bench doctor`: what this machine can run, one line per capability.

use std::mem::MaybeUninit;
use std::path::Path;
use std::process::Command;

use crate::{measure::cgroup, measure::kernel, measure::mounts};

/// One capability: `Ok(detail)` or `Err(reason and fix)`.
pub struct Check {
    pub name: &'static str,
    pub result: Result<String, String>,
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    Check { name, result }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Some(
        String::from_utf8_lossy(&text)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    )
    .filter(|_| out.status.success())
}

fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
}

/// Every check, in the order `doctor` prints them.
pub fn run_checks() -> Vec<Check> {
    let release = kernel::release();
    let root = nix::unistd::geteuid().is_root();
    let mut checks = kernel_checks(&release, root);
    checks.extend(bpf_checks(root));
    checks.extend(collector_checks(root));
    checks.extend(guest_checks());
    checks.extend(scheduler_checks(&release));
    checks.push(check(
        "clang for BPF",
        match which("clang-19") {
            Some(path) => Ok(command_output(&path, &["--version"]).unwrap_or(path)),
            None => Err("clang-19 not installed: `make setup` (apt-get install clang-19)".into()),
        },
    ));
    checks
}

/// The kernel, its fair class and what it offers: root, sched_ext, cgroups, BTF.
fn kernel_checks(release: &str, root: bool) -> Vec<Check> {
    let fair = kernel::fair_class_of(release);
    vec![
        check("kernel", Ok(release.to_string())),
        check(
            "fair class",
            Ok(format!(
                "{fair} (Linux {} the fair class; the native row is `--scheduler {fair}`)",
                if fair == "eevdf" {
                    ">= 6.6: EEVDF is"
                } else {
                    "< 6.6: CFS is"
                },
            )),
        ),
        check(
            "root",
            if root {
                Ok("yes".into())
            } else {
                Err("not root: attack needs root (sudo)".into())
            },
        ),
        check(
            "sched_ext",
            match kernel::sched_ext_state() {
                Some(state) => Ok(format!(
                    "state {state}; scx_rustland and Aegis can run natively"
                )),
                None => Err(format!(
                    "this kernel ({release}) has no sched_ext (no /sys/kernel/sched_ext, \
                     CONFIG_SCHED_CLASS_EXT off): scx_rustland and Aegis need a sched_ext guest \
                     (`--vm`, `aegis-bench vm`) or a bare-metal sched_ext kernel"
                )),
            },
        ),
        check(
            "cgroup v2",
            cgroup::cgroup2_root()
                .map(|root| format!("mounted at {}", root.display()))
                .map_err(|err| err.0),
        ),
        check("cpu controller", cpu_controller_check()),
        check(
            "BTF",
            if Path::new("/sys/kernel/btf/vmlinux").exists() {
                Ok("/sys/kernel/btf/vmlinux".into())
            } else {
                Err(
                    "no /sys/kernel/btf/vmlinux: use a kernel built with CONFIG_DEBUG_INFO_BTF"
                        .into(),
                )
            },
        ),
    ]
}

/// Where the attack-quota baseline finds a cpu controller.
fn cpu_controller_check() -> Result<String, String> {
    if Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
        Ok("cgroup v1 /sys/fs/cgroup/cpu (for quota baselines)".into())
    } else if cgroup::cgroup2_root()
        .ok()
        .and_then(|root| std::fs::read_to_string(root.join("cgroup.controllers")).ok())
        .is_some_and(|c| c.split_whitespace().any(|c| c == "cpu"))
    {
        Ok("cgroup v2".into())
    } else {
        Err("no cpu controller: the attack-quota baseline cannot run".into())
    }
}

/// tracefs and the two BPF programs a native attack loads (tried for real, so root only).
fn bpf_checks(root: bool) -> Vec<Check> {
    if !root {
        return vec![
            check("tracefs", Err("run doctor as root to check".into())),
            check("BPF programs", Err("run doctor as root to check".into())),
        ];
    }
    let tracefs = mounts::ensure_tracefs();
    let mut checks = vec![check(
        "tracefs",
        match &tracefs {
            Ok(guard) if guard.mounted_by_us() => Ok(format!(
                "not mounted; mountable at {} (attack mounts it for the run)",
                mounts::TRACEFS
            )),
            Ok(_) => Ok("mounted".into()),
            Err(err) => Err(format!("{err:#}")),
        },
    )];
    if tracefs.is_ok() {
        checks.push(check(
            "BPF tracepoint + per-CPU hash (ground truth)",
            bpf_truth_check(),
        ));
        checks.push(check(
            "BPF ring buffer (built-in collector)",
            bpf_collector_check(),
        ));
    }
    checks
}

/// sysdig here or in a guest, with the guest drivers already built: the cfs guest's on the
/// host, sched-ext-7's in its Debian userland.
fn sysdig_check() -> Result<String, String> {
    let cached: Vec<String> = crate::vm::cache_dir()
        .ok()
        .and_then(|cache| std::fs::read_dir(cache.join("drivers").join("scap")).ok())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".ko").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let cfs = if cached.is_empty() {
        "cfs guest driver not built yet (the first --vm --vm-kernel cfs run builds it)".to_string()
    } else {
        format!("cfs guest driver cached for {}", cached.join(", "))
    };
    let drivers = format!(
        "{cfs}; sched-ext-7 driver {}",
        if cached_userlands()
            .iter()
            .any(|about| about.contains("sysdig"))
        {
            "built in its cached Debian userland"
        } else {
            "not built yet (the first --vm --collector sysdig run builds its Debian userland)"
        }
    );
    match crate::collector::sysdig::doctor_line() {
        Ok(line) => Ok(format!("{line}; {drivers}")),
        Err(line) => Err(format!("{line}; {drivers}")),
    }
}

/// The cached Debian guest userlands, one line each.
fn cached_userlands() -> Vec<String> {
    crate::vm::cache_dir()
        .map(|cache| crate::vm::rootfs::cached_userlands(&cache))
        .unwrap_or_default()
}

/// The real collectors: auditd here, sysdig and eAudit only where their needs are met; and
/// the built-in collector at the LSM hooks, which needs BPF-LSM.
fn collector_checks(root: bool) -> Vec<Check> {
    vec![
        check(
            "builtin-lsm (collector)",
            match crate::measure::kernel::check_bpf_lsm() {
                Ok(()) => Ok("BPF-LSM programs load here (file_open, path_unlink, \
                              bprm_check_security, socket_connect)"
                    .to_string()),
                Err(why) => Err(format!(
                    "not here: {why} (the guests' Debian kernels have BPF-LSM active)"
                )),
            },
        ),
        check("auditd (collector)", audit_check(root)),
        check("sysdig (collector)", sysdig_check()),
        check(
            "eaudit (collector)",
            match crate::collector::eaudit::why_not_here(None) {
                None => Ok("can record here".to_string()),
                Some(reason) => Err(format!(
                    "not here: {reason}; runs in the Debian userland of the sched-ext-7 guest \
                     (--vm) and the cfs guest (--vm --vm-kernel cfs)"
                )),
            },
        ),
    ]
}

/// QEMU and the cached guest kernels.
fn guest_checks() -> Vec<Check> {
    vec![
        check(
            "QEMU",
            match crate::vm::qemu::find_qemu() {
                Ok(path) => Ok(qemu_detail(&path)),
                Err(err) => Err(err.0),
            },
        ),
        check("guest kernels", guest_kernels_check()),
        check(
            "Debian guest userlands",
            match cached_userlands() {
                found if found.is_empty() => Err(
                    "none cached: the first guest run with sysdig (sched-ext-7) or eaudit \
                     builds one with mmdebstrap"
                        .to_string(),
                ),
                found => Ok(found.join("; ")),
            },
        ),
    ]
}

/// Which schedulers run where, and the sched_ext binaries.
fn scheduler_checks(release: &str) -> Vec<Check> {
    vec![
        check("schedulers", Ok(schedulers_line(release))),
        check(
            "scx_rustland",
            sched_ext_binary(
                "scx_rustland",
                "not installed: `make tools` (cargo install scx_rustland 1.1.4 into tools/)",
            ),
        ),
        check(
            "scx_aegis",
            sched_ext_binary(
                "scx_aegis",
                "not built: `cargo build --release -p scx_aegis` (or `make build`)",
            ),
        ),
    ]
}

fn audit_check(root: bool) -> Result<String, String> {
    use crate::collector::{audit_state, auditd};
    if audit_state::find_program(auditd::AUDITD).is_none() {
        return Err("auditd not installed: apt-get install auditd (or `make setup`)".into());
    }
    if !root {
        return Err(
            "auditd installed; run doctor as root to query the kernel's audit status".into(),
        );
    }
    auditd::check_available().map_err(|err| err.0)?;
    let status = audit_state::status().map_err(|err| format!("{err:#}"))?;
    let version = audit_state::auditctl(&["-v"])
        .map(|v| v.trim().replace("auditctl version", "auditd"))
        .unwrap_or_else(|_| "auditd".into());
    Ok(format!(
        "{version} can run as a collector (audit enabled {}, no audit daemon registered, \
         backlog limit {}, lost so far {})",
        status.enabled, status.backlog_limit, status.lost
    ))
}

/// Which `--scheduler` names run natively here and which only in a guest.
fn schedulers_line(release: &str) -> String {
    let fair = kernel::fair_class_of(release);
    let other = if fair == "eevdf" { "cfs" } else { "eevdf" };
    let other_kernel = if fair == "eevdf" { "cfs" } else { "sched-ext" };
    let variants = "collector-fifo, collector-nice, attack-nice, attack-quota";
    if kernel::has_sched_ext() {
        format!(
            "native: {fair} and {fair}:{{{variants}}}, scx_rustland, aegis, scx:PATH; guest only: \
             {other}[:...] (--vm --vm-kernel {other_kernel})"
        )
    } else {
        format!(
            "native: {fair} and {fair}:{{{variants}}}; guest only: scx_rustland, aegis, scx:PATH \
             (--vm), {other}[:...] (--vm --vm-kernel {other_kernel})"
        )
    }
}

fn bpf_truth_check() -> Result<String, String> {
    let mut object = MaybeUninit::uninit();
    crate::measure::truth::GroundTruth::attach(
        &mut object,
        0,
        crate::results::scope::TraceScope::Attack,
        false,
        false,
    )
    .map(|_| "loads and attaches to raw_syscalls/sys_enter".to_string())
    .map_err(|err| format!("{err:#}"))
}

fn bpf_collector_check() -> Result<String, String> {
    use crate::skel::collector::CollectorSkelBuilder;
    use libbpf_rs::skel::{OpenSkel, SkelBuilder};
    let mut object = MaybeUninit::uninit();
    CollectorSkelBuilder::default()
        .open(&mut object)
        .and_then(|open| open.load())
        .map(|_| "collector loads with its ring buffer".to_string())
        .map_err(|err| format!("{err:#}"))
}

/// Prints the checks; returns whether `attack` can run here.
pub fn print() -> bool {
    let checks = run_checks();
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &checks {
        match &c.result {
            Ok(detail) => crate::out!("{:width$}  ok    {detail}", c.name),
            Err(reason) => crate::out!("{:width$}  no    {reason}", c.name),
        }
    }
    let essential = [
        "root",
        "cgroup v2",
        "tracefs",
        "BPF tracepoint + per-CPU hash (ground truth)",
        "BPF ring buffer (built-in collector)",
    ];
    checks
        .iter()
        .filter(|c| essential.contains(&c.name))
        .all(|c| c.result.is_ok())
}

/// QEMU's version, and why guests run under TCG.
fn qemu_detail(path: &Path) -> String {
    let path = path.display().to_string();
    let version = command_output(&path, &["--version"]).unwrap_or(path);
    let kvm = if Path::new("/sys/module/kvm_pvm").exists() {
        "/dev/kvm is PVM (kvm_pvm), not hardware virtualisation"
    } else if Path::new("/dev/kvm").exists() {
        "the runner does not use /dev/kvm"
    } else {
        "no /dev/kvm"
    };
    format!(
        "{version}; guests run under TCG only ({kvm}): compare figures as ratios within one boot"
    )
}

/// The guest kernels in the cache.
fn guest_kernels_check() -> Result<String, String> {
    let cache = crate::vm::cache_dir().map_err(|err| err.0)?;
    let cached = crate::vm::kernel::cached_kernels(&cache);
    if cached.is_empty() {
        return Err(format!(
            "none cached in {}: the first `aegis-bench vm` (or `attack --vm`) downloads them",
            cache.join("kernels").display()
        ));
    }
    Ok(cached
        .iter()
        .map(|(kind, package, release)| format!("{}: {package} ({release})", kind.name()))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Where a sched_ext scheduler binary is and where it can run, or how to get it.
fn sched_ext_binary(file_name: &str, missing: &str) -> Result<String, String> {
    match crate::sched::find_tool(file_name) {
        Some(path) => Ok(format!(
            "{} ({})",
            path.display(),
            if kernel::has_sched_ext() {
                "runs natively"
            } else {
                "runs in a guest with --vm"
            }
        )),
        None => Err(missing.to_string()),
    }
}
