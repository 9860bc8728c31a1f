//! The guest runner: runs `aegis-bench ARGS` inside a QEMU guest booted from a real Debian
//! kernel package, and brings result files back to the host.
//!
//! Why a guest at all: the development and CI machines run a 6.18 kernel without sched_ext, so
//! scx_rustland and Aegis cannot run on them, and the CFS row needs a kernel older than 6.6.
//! Their `/dev/kvm` is PVM rather than hardware virtualisation, so guests run under TCG
//! (`-accel tcg,thread=multi -cpu max`): slow and noisy, good for functional checks and for
//! ratios measured inside one boot, never for absolute times.
//!
//! One guest run, as data flowing through:
//! 1. [`kernel`]: the Debian package of the requested [`GuestKernel`] is fetched once through
//!    a private apt configuration (the system's archive URIs, its keyring, nothing written
//!    under `/etc/apt`) into the user's cache directory; its `vmlinuz`, `config-*` and the
//!    virtio modules it needs as modules are kept, and the config is checked for what runs
//!    need.
//! 2. [`initramfs`]: busybox, `/init` (`harness/src/vm/guest_init.sh`), this very
//!    `aegis-bench` binary and any extra binaries, with the libraries `ldd` lists, become a
//!    gzipped newc cpio, cached by the SHA-256 of its inputs. A second, tiny cpio appended to
//!    it per run carries the command (`/aegis/job.sh`) and the kernel's modules.
//! 3. [`qemu`]: boots it with the console on the first serial port (streamed to stderr) and
//!    three virtio-serial ports: the command's stdout and stderr (unix sockets, streamed to
//!    ours) and a results port (a host file) over which `/init` sends a tar of the exit status
//!    and the requested files. A second 16550 serial port works too, but moves about 130 KB/s
//!    under TCG (measured), too slow for kept provenance logs; virtio moves megabytes per
//!    second. QEMU dies with this process: on timeout, error, drop, SIGINT/SIGTERM and, through
//!    `PR_SET_PDEATHSIG`, SIGKILL.
//! 4. [`results`]: the tar is unpacked onto the host paths, each file atomically.
//!
//! [`attack`] builds `attack --vm` on top: host-side validation, then the same attack in a
//! guest with its output paths rewritten and the files brought back; [`matrix`] does the same
//! for `run --vm`. [`args`] holds the guest runner's flags.

pub mod apt;
pub mod args;
pub mod attack;
pub mod eaudit_build;
pub mod initramfs;
pub mod kernel;
pub mod matrix;
pub mod newc;
pub mod qemu;
pub mod results;
pub mod rootfs;
pub mod scap;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::error::InputError;
use crate::size::{format_size, parse_size};
use args::VmArgs;
pub use kernel::GuestKernel;

/// Where the guest runner caches kernels, apt state and initramfs images:
/// `$XDG_CACHE_HOME/aegis-bench`, else `~/.cache/aegis-bench`.
pub fn cache_dir() -> Result<PathBuf, InputError> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("aegis-bench"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("aegis-bench")),
        None => Err(InputError(
            "neither XDG_CACHE_HOME nor HOME is set: the guest runner needs a cache directory; \
             set XDG_CACHE_HOME"
                .into(),
        )),
    }
}

/// The guest to boot and how long it may run.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    pub kernel: GuestKernel,
    pub cpus: u32,
    pub mem_bytes: u64,
    /// Use only what is cached; never touch the network.
    pub offline: bool,
    /// From QEMU's start to its exit; QEMU is killed after it.
    pub timeout: Duration,
    /// How the user gives the guest more time, for the timeout error.
    pub timeout_hint: String,
    /// Programs copied into the guest's `/usr/local/bin` (with their libraries) besides
    /// `aegis-bench` itself.
    pub extra_binaries: Vec<PathBuf>,
    /// Files placed in the guest before the command runs: (absolute guest path, contents).
    pub files_in: Vec<(String, Vec<u8>)>,
    /// The trials use sysdig: its driver for the guest's kernel goes in ([`scap`]).
    pub sysdig_driver: bool,
    /// The guest's userland: busybox alone, or a Debian root disk ([`rootfs`]).
    pub userland: Userland,
    /// Whether the user named the kernel (`--vm-kernel`); if not, collectors may pick one.
    pub kernel_chosen: bool,
}

/// The guest's userland (`vm --userland`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Userland {
    /// The busybox initramfs alone: boots fastest; enough for the built-in collectors.
    #[default]
    Busybox,
    /// A Debian bookworm root disk built with mmdebstrap, with BCC and the kernel's headers
    /// (for eAudit); the busybox initramfs switches into it.
    Debian,
}

pub const DEFAULT_CPUS: u32 = 2;
pub const DEFAULT_MEM: &str = "2GiB";
pub const DEFAULT_TIMEOUT_S: u64 = 600;
/// Below this the guest kernel and a 40 MB unpacked initramfs do not fit comfortably.
const MIN_MEM_BYTES: u64 = 256 << 20;
/// TCG emulates any number of CPUs, but beyond this a 2-core host only thrashes.
const MAX_CPUS: u32 = 64;

impl GuestSpec {
    /// Checks the user's values: one-line errors that name the fix.
    pub fn new(
        kernel: GuestKernel,
        cpus: u32,
        mem: &str,
        offline: bool,
        timeout_s: u64,
    ) -> Result<GuestSpec, InputError> {
        if cpus == 0 || cpus > MAX_CPUS {
            return Err(InputError(format!(
                "--cpus {cpus} is out of range; use 1 to {MAX_CPUS}"
            )));
        }
        let mem_bytes = parse_size(mem)?;
        if mem_bytes < MIN_MEM_BYTES {
            return Err(InputError(format!(
                "--mem {mem} is too small for the guest; use at least {}, e.g. --mem 2GiB",
                format_size(MIN_MEM_BYTES)
            )));
        }
        if timeout_s == 0 {
            return Err(InputError(
                "--timeout must be at least 1 second".to_string(),
            ));
        }
        Ok(GuestSpec {
            kernel,
            cpus,
            mem_bytes,
            offline,
            timeout: Duration::from_secs(timeout_s),
            timeout_hint: "allow more time with `aegis-bench vm --timeout SECS`".to_string(),
            extra_binaries: Vec::new(),
            files_in: Vec::new(),
            sysdig_driver: false,
            userland: Userland::Busybox,
            kernel_chosen: true,
        })
    }

    /// Adds what `collectors` need in the guest. Sysdig and eAudit need a kernel with published
    /// headers: when the user did not pick a kernel, sched-ext-7 replaces the default
    /// sched-ext (6.18, no headers). In the cfs guest sysdig is the host's Debian package
    /// (with its libraries) and its driver is built on the host ([`scap`]); in sched-ext-7 both
    /// come with the Debian userland ([`rootfs::recipe`]).
    pub fn add_collectors(
        &mut self,
        collectors: &[crate::collector::CollectorKind],
        eaudit_dir: Option<&Path>,
    ) -> Result<()> {
        use crate::collector::CollectorKind;
        let sysdig = collectors.contains(&CollectorKind::Sysdig);
        let eaudit = collectors.contains(&CollectorKind::Eaudit);
        if (sysdig || eaudit) && !self.kernel_chosen && self.kernel == GuestKernel::SchedExt {
            crate::say!(
                "vm: {} the kernel's headers: booting the sched-ext-7 guest kernel (7.3) \
                 instead of sched-ext (6.18)",
                match (sysdig, eaudit) {
                    (true, true) => "sysdig and eAudit need",
                    (true, false) => "sysdig needs",
                    _ => "eAudit needs",
                }
            );
            self.kernel = GuestKernel::SchedExt7;
        }
        if eaudit {
            self.add_eaudit(eaudit_dir)?;
        }
        if sysdig {
            self.add_sysdig()?;
        }
        // The host's auditd, with its libraries (bookworm's, like the cfs guest's userland). Not
        // in sched-ext-7's forky userland: forky's auditd 4.1.2 died of SIGSEGV in every trial
        // there, and the host's 3.0.9 does not run on forky's libaudit (docs/guests.md).
        if collectors.contains(&CollectorKind::Auditd)
            && self.userland == Userland::Debian
            && self.kernel == GuestKernel::SchedExt7
        {
            return Err(InputError(
                "collector 'auditd' cannot run in the Debian userland that sysdig and eaudit \
                 need (forky's auditd 4.1.2 crashes there, the host's does not run on its \
                 libraries): run auditd in a --vm run of its own"
                    .into(),
            )
            .into());
        }
        if collectors.contains(&CollectorKind::Auditd) {
            for program in [
                crate::collector::auditd::AUDITD,
                crate::collector::audit_state::AUDITCTL,
            ] {
                let binary =
                    crate::collector::audit_state::find_program(program).ok_or_else(|| {
                        InputError(format!(
                            "collector 'auditd' runs the host's {program} in the guest, and it \
                             is not installed: apt-get install auditd (or `make setup`)"
                        ))
                    })?;
                if !self.extra_binaries.contains(&binary) {
                    self.extra_binaries.push(binary);
                }
            }
        }
        Ok(())
    }

    /// sysdig: in sched-ext-7 the Debian userland's; in cfs the host's and a driver built here.
    fn add_sysdig(&mut self) -> Result<()> {
        match self.kernel {
            GuestKernel::SchedExt7 => {
                self.userland = Userland::Debian;
                return Ok(());
            }
            GuestKernel::SchedExt => {
                return Err(InputError(format!(
                    "collector 'sysdig' cannot run in the sched-ext guest: {}",
                    scap::unsupported(self.kernel).unwrap_or_default()
                ))
                .into())
            }
            GuestKernel::Cfs => {}
        }
        let binary = crate::collector::audit_state::find_program("sysdig").ok_or_else(|| {
            InputError(
                "collector 'sysdig' runs the host's sysdig in the cfs guest, and it is not \
                 installed: apt-get install --no-install-recommends sysdig (or `make setup`)"
                    .into(),
            )
        })?;
        if !self.extra_binaries.contains(&binary) {
            self.extra_binaries.push(binary);
        }
        self.sysdig_driver = true;
        Ok(())
    }

    /// eAudit: the Debian userland, and the checkout patched and built for it at
    /// [`crate::collector::eaudit::GUEST_DIR`].
    fn add_eaudit(&mut self, eaudit_dir: Option<&Path>) -> Result<()> {
        rootfs::check_kernel(self.kernel).map_err(|err| {
            InputError(format!(
                "collector 'eaudit' needs BCC and the kernel's headers: {}",
                err.0
            ))
        })?;
        let checkout = crate::collector::eaudit::checkout(eaudit_dir).ok_or_else(|| {
            InputError(format!(
                "collector 'eaudit' needs an eAudit checkout: give --eaudit-dir DIR or set {} \
                 (none at ../shared/third_party/eaudit)",
                crate::collector::eaudit::DIR_ENV
            ))
        })?;
        let built = eaudit_build::ensure(&checkout, &cache_dir()?)?;
        let arg = format!(
            "{}:{}",
            built.display(),
            crate::collector::eaudit::GUEST_DIR
        );
        self.files_in.extend(args::read_file_arg(&arg)?);
        self.userland = Userland::Debian;
        Ok(())
    }
}

/// Runs `aegis-bench <aegis_args>` in a guest, copies each `(guest path, host path)` of
/// `files_back` that exists in the guest to the host (a directory is copied recursively, each
/// file atomically), and returns the guest command's exit status.
///
/// A requested file the guest did not write is an error when the command succeeded, and only
/// a warning when it failed (it may have stopped before writing it).
///
/// Call it from a thread that lives until it returns (the CLI calls it from `main`): QEMU's
/// `PR_SET_PDEATHSIG` fires when the thread that started it exits.
pub fn run_in_guest(
    spec: &GuestSpec,
    aegis_args: &[String],
    files_back: &[(PathBuf, PathBuf)],
) -> Result<i32> {
    run_command_in_guest(
        spec,
        &initramfs::GuestCommand::Aegis(aegis_args.to_vec()),
        files_back,
    )
}

/// [`run_in_guest`] for any [`initramfs::GuestCommand`].
pub fn run_command_in_guest(
    spec: &GuestSpec,
    command: &initramfs::GuestCommand,
    files_back: &[(PathBuf, PathBuf)],
) -> Result<i32> {
    for (guest, _) in files_back {
        results::check_guest_path(guest)?;
    }
    if spec.userland == Userland::Debian {
        rootfs::check_kernel(spec.kernel)?;
        rootfs::check_tools()?;
    }
    crate::signals::install()?;
    // Missing tools are reported before anything is downloaded or built.
    qemu::find_qemu()?;
    initramfs::check_busybox()?;
    let cache = cache_dir()?;
    // apt-get shares our process group, so a Ctrl-C during a download ends it too: report
    // that as the interruption it is, not as a failed download.
    let interrupted = |err: anyhow::Error| match crate::signals::received() {
        Some(signal) => crate::error::Interrupted(signal).into(),
        None => err,
    };
    let kernel = kernel::ensure(spec.kernel, &cache, spec.offline).map_err(interrupted)?;
    let mut files_in = spec.files_in.clone();
    if spec.sysdig_driver {
        let driver = scap::ensure(&kernel, &cache, spec.offline).map_err(interrupted)?;
        let bytes =
            std::fs::read(&driver).with_context(|| format!("reading {}", driver.display()))?;
        files_in.push((crate::collector::sysdig::GUEST_MODULE.to_string(), bytes));
    }
    let root_disk = match spec.userland {
        Userland::Busybox => None,
        Userland::Debian => {
            Some(rootfs::ensure(&cache, &kernel, spec.offline).map_err(interrupted)?)
        }
    };
    let image = initramfs::ensure_base(&cache, &spec.extra_binaries)?;
    crate::signals::check()?;
    crate::run::work_dir::sweep_stale_and_say();
    let run_dir = crate::run::work_dir::create_labeled("vm")
        .context("creating a directory for the guest run")?;
    let guest_paths: Vec<&Path> = files_back.iter().map(|(g, _)| g.as_path()).collect();
    let initrd = run_dir.path().join("initrd.img");
    initramfs::write_run_image(
        &image,
        &kernel,
        root_disk.is_some(),
        command,
        &guest_paths,
        &files_in,
        &initrd,
    )?;
    let outcome = qemu::boot(&qemu::Boot {
        kernel: &kernel,
        initrd: &initrd,
        cpus: spec.cpus,
        mem_bytes: spec.mem_bytes,
        timeout: spec.timeout,
        timeout_hint: &spec.timeout_hint,
        run_dir: run_dir.path(),
        root_disk: root_disk.as_ref().map(|disk| disk.path.as_path()),
    })?;
    let status = results::unpack(&outcome.results, files_back)?;
    crate::say!(
        "vm: guest command exited with status {status} ({:.1} s from QEMU start to power-off{})",
        outcome.elapsed.as_secs_f64(),
        outcome
            .booted_after
            .map(|t| format!(", booted in {:.1} s", t.as_secs_f64()))
            .unwrap_or_default()
    );
    Ok(status)
}

/// `aegis-bench vm [GUEST FLAGS] -- ARGS`: runs `aegis-bench ARGS` in a guest and returns its
/// exit status.
pub fn run_vm_command(args: &VmArgs) -> Result<i32> {
    if args.args.is_empty() {
        return Err(InputError(
            "give the aegis-bench command line to run in the guest after `--`, e.g. \
             `aegis-bench vm -- doctor`"
                .into(),
        )
        .into());
    }
    let mut spec = args.guest.spec(args.timeout)?;
    spec.extra_binaries = args.bins.clone();
    spec.userland = args.userland;
    for file in &args.files {
        spec.files_in.extend(args::read_file_arg(file)?);
    }
    let command = if args.exec {
        initramfs::GuestCommand::Exec(args.args.clone())
    } else {
        initramfs::GuestCommand::Aegis(args.args.clone())
    };
    run_command_in_guest(&spec, &command, &[])
}
