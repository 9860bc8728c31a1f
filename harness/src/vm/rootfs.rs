//! A Debian root filesystem for guests whose collector needs a real userland (eAudit: Python,
//! BCC and the guest kernel's headers; sysdig 0.41 on a 7.x kernel: forky's packages and a
//! driver built against those headers), built with Debian's own `mmdebstrap` and booted as the
//! guest's root disk.
//!
//! The image is a suite's essential packages plus the packages of the kernel's [`recipe`],
//! fetched from the archive URIs of the system's own apt sources, turned into an ext4 image by
//! `mke2fs -d` (no mount). It is cached under `rootfs/<hash>.img` by the SHA-256 of its inputs
//! (suite, archive URIs, packages, chroot script, options, layout version) and only appears
//! complete (built under a
//! temporary name, then renamed). QEMU opens it with `snapshot=on`, so guests write to a
//! temporary overlay and the cached image never changes.
//!
//! The guest still starts from the busybox initramfs: its `/init` loads `virtio_blk`, mounts
//! `/dev/vda`, copies `/aegis`, `/usr/local/bin` and the run's files in, and `switch_root`s
//! into it, where the same `/init` runs the job (`guest_init.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::apt::{archive_uri, system_sources, Archive, KEYRING};
use super::kernel::{GuestKernel, KernelImage};
use crate::collector::sysdig::GUEST_MODULE;
use crate::error::InputError;

/// Bump when the image layout changes, so images built by older code are not reused.
const LAYOUT_VERSION: &str = "aegis-rootfs-1";
const MMDEBSTRAP: &str = "mmdebstrap";
const MKE2FS: &str = "mke2fs";
/// Documentation, manuals and translations are of no use in a guest and are a third of the
/// size.
const DPKG_OPTIONS: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
];
/// Free space left in the file system beyond its contents (guests write to it only through
/// QEMU's temporary overlay).
const FREE_BYTES: u64 = 256 << 20;
/// Cached images kept besides the one in use; each is about 650 MB on disk.
const KEEP_IMAGES: usize = 2;

/// A cached root filesystem image.
#[derive(Clone, Debug)]
pub struct RootfsImage {
    pub path: PathBuf,
}

/// What the guest userland for a kernel is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// The suite mmdebstrap bootstraps.
    pub suite: &'static str,
    /// `deb` lines: the suite's own, plus any suite the kernel's packages come from.
    pub sources: Vec<String>,
    /// Installed besides the suite's essential set.
    pub packages: Vec<String>,
    /// Run in the finished tree as `sh -c` inside `chroot`; empty for none.
    pub chroot_script: String,
}

/// The userland for `kernel`:
/// - `cfs`: bookworm, with BCC's Python bindings and the kernel's headers from
///   bookworm-security (BCC compiles against them when eAudit starts).
/// - `sched-ext-7`: forky, the first suite with a sysdig (0.41.4) whose driver source
///   (`falcosecurity-scap-dkms` 0.23.2) builds against 7.x; BCC; and the kernel's headers from
///   trixie-backports. The driver is built in the image against those headers, as dkms would
///   build it in the guest (`chroot_script`), and placed where the sysdig collector loads it.
///
/// `sched-ext` (6.18.12) has no published headers, so no userland.
pub fn recipe(kernel: &KernelImage) -> Result<Recipe, InputError> {
    check_kernel(kernel.kind)?;
    let system = system_sources();
    let missing = |what: &str| {
        InputError(format!(
            "the system's apt sources name no {what} for the guest userland"
        ))
    };
    let main = archive_uri(&system, Archive::Main).ok_or_else(|| missing("main Debian archive"))?;
    let deb = |uri: &str, suite: &str| format!("deb [signed-by={KEYRING}] {uri} {suite} main");
    let headers = format!("linux-headers-{}", kernel.release);
    Ok(match kernel.kind {
        GuestKernel::SchedExt7 => Recipe {
            suite: "forky",
            sources: vec![deb(&main, "forky"), deb(&main, kernel.kind.suite())],
            packages: ["python3-bpfcc", "sysdig", SCAP_DKMS, &headers]
                .map(str::to_string)
                .to_vec(),
            chroot_script: format!(
                "set -e; cp -r /usr/src/scap-{SCAP_VERSION} /tmp/scap; \
                 make -C /usr/lib/modules/{release}/build M=/tmp/scap modules >/tmp/scap.log \
                 2>&1 || {{ tail -20 /tmp/scap.log >&2; exit 1; }}; \
                 mkdir -p {dir}; cp /tmp/scap/scap.ko {module}; rm -rf /tmp/scap*",
                release = kernel.release,
                // Where the sysdig collector loads its driver from.
                module = GUEST_MODULE,
                dir = GUEST_MODULE.rsplit_once('/').map_or("/", |(d, _)| d),
            ),
        },
        _ => {
            let security = archive_uri(&system, Archive::Security)
                .ok_or_else(|| missing("Debian security archive"))?;
            Recipe {
                suite: "bookworm",
                sources: vec![deb(&main, "bookworm"), deb(&security, "bookworm-security")],
                packages: vec!["python3-bpfcc".to_string(), headers],
                chroot_script: String::new(),
            }
        }
    })
}

/// forky's sysdig driver source package and the version it unpacks under `/usr/src/scap-*`.
const SCAP_DKMS: &str = "falcosecurity-scap-dkms";
const SCAP_VERSION: &str = "0.23.2";

/// Whether Debian publishes headers for `kind` (checked before anything is fetched).
pub fn check_kernel(kind: GuestKernel) -> Result<(), InputError> {
    match kind {
        GuestKernel::Cfs | GuestKernel::SchedExt7 => Ok(()),
        GuestKernel::SchedExt => Err(InputError(
            "the sched-ext guest kernel (6.18.12) has no published linux-headers package, \
             which the Debian guest userland needs; use --vm-kernel sched-ext-7 (7.3, with \
             sched_ext and headers) or cfs"
                .into(),
        )),
    }
}

/// `mmdebstrap` and `mke2fs`, or the one-line reason they are missing.
pub fn check_tools() -> Result<(), InputError> {
    for (tool, package) in [(MMDEBSTRAP, "mmdebstrap"), (MKE2FS, "e2fsprogs")] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
            || Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            return Err(InputError(format!(
                "{tool} is missing: the Debian guest userland needs it (`make setup`, or \
                 apt-get install {package})"
            )));
        }
    }
    Ok(())
}

/// The cached image for `kernel`, built if missing (unless `offline`).
pub fn ensure(cache: &Path, kernel: &KernelImage, offline: bool) -> Result<RootfsImage> {
    let recipe = recipe(kernel)?;
    if !kernel.missing_modules.is_empty() {
        return Err(InputError(format!(
            "the cached {} lacks the module(s) {} the Debian root disk needs: run once \
             without --offline to fetch it again",
            kernel.package,
            kernel.missing_modules.join(", ")
        ))
        .into());
    }
    let mut hasher = Sha256::new();
    for part in [LAYOUT_VERSION, recipe.suite, &recipe.chroot_script]
        .into_iter()
        .chain(recipe.sources.iter().map(String::as_str))
        .chain(recipe.packages.iter().map(String::as_str))
        .chain(DPKG_OPTIONS.iter().copied())
    {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = format!("{:x}", hasher.finalize());
    let dir = cache.join("rootfs");
    let path = dir.join(format!("{}.img", &digest[..32]));
    if let Some(image) = cached(&path) {
        return Ok(image);
    }
    if offline {
        return Err(InputError(format!(
            "no cached Debian guest userland ({} + {}) in {}: run once without --offline to \
             build it",
            recipe.suite,
            recipe.packages.join(", "),
            dir.display()
        ))
        .into());
    }
    check_tools()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = super::kernel::lock_cache(cache)?;
    // Another run may have built it while this one waited for the lock.
    if let Some(image) = cached(&path) {
        return Ok(image);
    }
    build(&dir, &path, &recipe)?;
    // What the image holds, for `doctor`.
    std::fs::write(
        path.with_extension("about"),
        format!(
            "{} for {}: {} + {}\n",
            recipe.suite,
            kernel.release,
            recipe.suite,
            recipe.packages.join(", ")
        ),
    )
    .ok();
    prune(&dir, &path);
    Ok(RootfsImage { path })
}

fn cached(path: &Path) -> Option<RootfsImage> {
    if !path.is_file() {
        return None;
    }
    // Marks it recently used, for pruning.
    std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .ok();
    Some(RootfsImage {
        path: path.to_path_buf(),
    })
}

fn build(dir: &Path, path: &Path, recipe: &Recipe) -> Result<()> {
    let started = Instant::now();
    crate::say!(
        "vm: building the Debian guest userland ({} + {}) with mmdebstrap into {}; this takes \
         a few minutes",
        recipe.suite,
        recipe.packages.join(", "),
        path.display()
    );
    let staging = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a staging directory in {}", dir.display()))?;
    let root = staging.path().join("root");
    let mut command = Command::new(MMDEBSTRAP);
    command
        .arg("--variant=essential")
        .arg("--quiet")
        .arg(format!("--include={}", recipe.packages.join(",")));
    for option in DPKG_OPTIONS {
        command.arg(format!("--dpkgopt={option}"));
    }
    if system_skips_valid_until() {
        // The system's apt reads a frozen mirror snapshot whose Release files have expired;
        // mmdebstrap does not read the system's apt configuration, so it is told the same.
        command.arg("--aptopt=Acquire::Check-Valid-Until \"false\"");
    }
    if !recipe.chroot_script.is_empty() {
        // mmdebstrap passes the tree as $1; the script is quoted for the hook's shell.
        command.arg(format!(
            "--customize-hook=chroot \"$1\" sh -c '{}'",
            recipe.chroot_script.replace('\'', "'\\''")
        ));
    }
    command.arg(recipe.suite).arg(&root).args(&recipe.sources);
    run(&mut command, "mmdebstrap")?;
    crate::signals::check()?;
    let content = tree_bytes(&root)?;
    let size_mib = (content + content / 5 + FREE_BYTES).div_ceil(1 << 20);
    let temp = staging.path().join("root.img");
    let mut mkfs = Command::new(MKE2FS);
    mkfs.args(["-q", "-t", "ext4", "-m", "0", "-L", "aegis-root", "-d"])
        .arg(&root)
        .arg(&temp)
        .arg(format!("{size_mib}M"));
    run(&mut mkfs, "mke2fs")?;
    std::fs::rename(&temp, path)
        .with_context(|| format!("moving the image into {}", path.display()))?;
    let on_disk = std::os::unix::fs::MetadataExt::blocks(&path.metadata()?) * 512;
    crate::say!(
        "vm: built the Debian guest userland {} ({size_mib} MiB file system, {:.0} MB on \
         disk, {:.0} s)",
        path.display(),
        on_disk as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether the system's apt is configured with `Acquire::Check-Valid-Until "false"`.
fn system_skips_valid_until() -> bool {
    Command::new("apt-config")
        .args(["shell", "V", "Acquire::Check-Valid-Until"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "V='false'")
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let out = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        bail!("{what} failed ({}): {reason}", out.status);
    }
    Ok(())
}

/// Bytes of the files under `dir` plus a block per entry, for sizing the file system.
fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let meta = entry.path().symlink_metadata()?;
            total += meta.len().div_ceil(4096) * 4096 + 4096;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Deletes all but the most recently used images.
fn prune(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "img") && p != keep)
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    images.sort();
    let excess = images.len().saturating_sub(KEEP_IMAGES - 1);
    for (_, path) in images.into_iter().take(excess) {
        std::fs::remove_file(path.with_extension("about")).ok();
        std::fs::remove_file(path).ok();
    }
}

/// What each cached image holds (its `.about` line), for `doctor`.
pub fn cached_userlands(cache: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(cache.join("rootfs")) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "about"))
        .filter(|p| p.with_extension("img").is_file())
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| text.trim().to_string())
        .collect();
    found.sort();
    found
}
