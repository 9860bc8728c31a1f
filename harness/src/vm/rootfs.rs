//! A Debian root filesystem for guests whose collector needs a real userland (eAudit: Python,
//! BCC and the guest kernel's headers), built with Debian's own `mmdebstrap` and booted as the
//! guest's root disk.
//!
//! The image is the bookworm suite's essential packages plus [`packages`] for the kernel
//! (`python3-bpfcc` and `linux-headers-<release>` from bookworm-security), fetched from the
//! archive URIs of the system's own apt sources, turned into an ext4 image by `mke2fs -d`
//! (no mount). It is cached under `rootfs/<hash>.img` by the SHA-256 of its inputs (suite,
//! archive URIs, packages, options, layout version) and only appears complete (built under a
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
use crate::error::InputError;

/// Bump when the image layout changes, so images built by older code are not reused.
const LAYOUT_VERSION: &str = "aegis-rootfs-1";
const SUITE: &str = "bookworm";
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

/// The packages the guest userland holds for `kernel`, besides bookworm's essential set:
/// BCC's Python bindings and the kernel's own headers (BCC compiles against them when it
/// starts). Only kernels whose headers Debian publishes qualify.
pub fn packages(kernel: &KernelImage) -> Result<Vec<String>, InputError> {
    check_kernel(kernel.kind)?;
    Ok(vec![
        "python3-bpfcc".to_string(),
        format!("linux-headers-{}", kernel.release),
    ])
}

/// Whether Debian publishes headers for `kind` (checked before anything is fetched).
pub fn check_kernel(kind: GuestKernel) -> Result<(), InputError> {
    match kind {
        GuestKernel::Cfs => Ok(()),
        GuestKernel::SchedExt => Err(InputError(
            "the sched-ext guest kernel (6.18.12) has no published linux-headers package, \
             which the Debian guest userland's BCC needs; use --vm-kernel cfs"
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

/// The `deb` lines of the image: the system's main archive for bookworm and its security
/// archive for bookworm-security.
fn sources() -> Result<Vec<String>> {
    let system = system_sources();
    let main = archive_uri(&system, Archive::Main)
        .context("the system's apt sources name no main Debian archive for the guest userland")?;
    let security = archive_uri(&system, Archive::Security).context(
        "the system's apt sources name no Debian security archive for the guest userland",
    )?;
    Ok(vec![
        format!("deb [signed-by={KEYRING}] {main} {SUITE} main"),
        format!("deb [signed-by={KEYRING}] {security} {SUITE}-security main"),
    ])
}

/// The cached image for `kernel`, built if missing (unless `offline`).
pub fn ensure(cache: &Path, kernel: &KernelImage, offline: bool) -> Result<RootfsImage> {
    let packages = packages(kernel)?;
    if !kernel.missing_modules.is_empty() {
        return Err(InputError(format!(
            "the cached {} lacks the module(s) {} the Debian root disk needs: run once \
             without --offline to fetch it again",
            kernel.package,
            kernel.missing_modules.join(", ")
        ))
        .into());
    }
    let sources = sources()?;
    let mut hasher = Sha256::new();
    for part in [LAYOUT_VERSION, SUITE]
        .into_iter()
        .chain(sources.iter().map(String::as_str))
        .chain(packages.iter().map(String::as_str))
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
            "no cached Debian guest userland ({}) in {}: run once without --offline to build \
             it",
            packages.join(", "),
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
    build(&dir, &path, &sources, &packages)?;
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

fn build(dir: &Path, path: &Path, sources: &[String], packages: &[String]) -> Result<()> {
    let started = Instant::now();
    crate::say!(
        "vm: building the Debian guest userland ({SUITE} + {}) with mmdebstrap into {}; \
         this takes a minute or more",
        packages.join(", "),
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
        .arg(format!("--include={}", packages.join(",")));
    for option in DPKG_OPTIONS {
        command.arg(format!("--dpkgopt={option}"));
    }
    command.arg(SUITE).arg(&root).args(sources);
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
        std::fs::remove_file(path).ok();
    }
}
