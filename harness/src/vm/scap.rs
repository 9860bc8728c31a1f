//! sysdig's driver for a guest kernel: Debian's own driver source
//! (`falcosecurity-scap-dkms`, the package bookworm's sysdig recommends) built against the
//! kernel's own headers package, the way dkms would build it in the guest, but once, on the
//! host, and cached as `drivers/scap/<release>.ko`.
//!
//! This host-side build serves the cfs guest: bookworm's 2022 driver source builds against its
//! 6.1 headers with the host's own compiler. The sched-ext-7 guest's driver (forky's 0.23.2
//! source, 7.3 headers, trixie's compiler) is built inside its Debian userland instead
//! ([`super::rootfs::recipe`]); Debian publishes no headers for the sched-ext guest's pinned
//! 6.18 kernel. The headers packages install a `Makefile` that
//! includes the common headers by absolute path; extracted into a staging directory, it is
//! rewritten to include them there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::apt::{Archive, PrivateApt};
use super::kernel::{GuestKernel, KernelImage};
use crate::collector::audit_state::find_program;
use crate::error::InputError;

/// The driver source's package, from bookworm's main archive.
const DKMS_PACKAGE: &str = "falcosecurity-scap-dkms";
const DKMS_SUITE: &str = "bookworm";
/// The compiler Debian built the cfs kernel with (its headers' Makefile asks for it).
const COMPILER: &str = "gcc-12";

/// Why this host-side build serves no driver for `kind`, if it does not.
pub fn unsupported(kind: GuestKernel) -> Option<String> {
    match kind {
        GuestKernel::Cfs => None,
        GuestKernel::SchedExt7 => Some(
            "the sched-ext-7 guest's sysdig driver is built in its Debian userland, not on the \
             host"
                .into(),
        ),
        GuestKernel::SchedExt => Some(
            "sysdig needs its kernel module, and Debian publishes no headers for the sched-ext \
             guest's kernel (6.18.12+deb13-cloud-amd64) to build it against; use --vm-kernel \
             sched-ext-7 (7.3 with sched_ext and headers) or cfs"
                .into(),
        ),
    }
}

/// The cached driver for `kernel`, if any.
pub fn cached(kernel: &KernelImage, cache: &Path) -> Option<PathBuf> {
    let path = driver_path(kernel, cache);
    path.is_file().then_some(path)
}

fn driver_path(kernel: &KernelImage, cache: &Path) -> PathBuf {
    cache
        .join("drivers")
        .join("scap")
        .join(format!("{}.ko", kernel.release))
}

/// The driver for `kernel`: from the cache, or fetched and built (unless `offline`).
pub fn ensure(kernel: &KernelImage, cache: &Path, offline: bool) -> Result<PathBuf> {
    if let Some(why) = unsupported(kernel.kind) {
        return Err(InputError(format!(
            "collector 'sysdig' cannot run in this guest: {why}"
        ))
        .into());
    }
    if let Some(path) = cached(kernel, cache) {
        return Ok(path);
    }
    let dest = driver_path(kernel, cache);
    if offline {
        return Err(InputError(format!(
            "no cached sysdig driver for {} ({}): run once without --offline to build it",
            kernel.release,
            dest.display()
        ))
        .into());
    }
    for program in [COMPILER, "make"] {
        if find_program(program).is_none() {
            return Err(InputError(format!(
                "building sysdig's driver for the guest needs {program}: apt-get install \
                 {program} (or `make setup`)"
            ))
            .into());
        }
    }
    let dir = dest.parent().context("driver path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = super::kernel::lock_cache(cache)?;
    if let Some(path) = cached(kernel, cache) {
        return Ok(path);
    }
    crate::say!(
        "vm: building sysdig's driver ({DKMS_PACKAGE} from {DKMS_SUITE}) for {}",
        kernel.release
    );
    let started = std::time::Instant::now();
    let staging = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a build directory in {}", dir.display()))?;
    let (headers_dir, source) = fetch_sources(kernel, cache, staging.path())?;
    let built = build(kernel, &headers_dir, &source, staging.path())?;
    // The guest only needs the code: debug info would add megabytes to every boot.
    let stripped = staging.path().join("scap.ko");
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg(&built)
        .arg("-o")
        .arg(&stripped)
        .status()
        .context("running strip (binutils)")?;
    if !status.success() {
        bail!("strip --strip-debug {} failed", built.display());
    }
    std::fs::rename(&stripped, &dest)
        .with_context(|| format!("moving the driver into {}", dest.display()))?;
    crate::say!(
        "vm: cached sysdig's driver {} ({:.0} s)",
        dest.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(dest)
}

/// Unpacks the driver source and the kernel's headers under `staging`; returns the headers'
/// directory (its Makefile pointed at the unpacked common headers) and the source directory.
fn fetch_sources(kernel: &KernelImage, cache: &Path, staging: &Path) -> Result<(PathBuf, PathBuf)> {
    let root = staging.join("root");
    let source_apt = PrivateApt::new(
        &cache.join("apt").join(DKMS_SUITE),
        Archive::Main,
        DKMS_SUITE,
    )?;
    source_apt
        .update()
        .with_context(|| format!("updating the package list of {DKMS_SUITE}"))?;
    source_apt.extract(DKMS_PACKAGE, staging, &root)?;
    let headers_apt = PrivateApt::new(
        &cache.join("apt").join(kernel.kind.suite()),
        kernel.kind.archive(),
        kernel.kind.suite(),
    )?;
    let packages = headers_packages(&kernel.release)?;
    for package in &packages {
        if headers_apt.extract(package, staging, &root).is_err() {
            // The lists may predate the kernel's headers: update once and retry.
            headers_apt.update()?;
            headers_apt.extract(package, staging, &root)?;
        }
    }
    let headers_dir = root.join("usr/src").join(&packages[0][..]);
    let common = root.join("usr/src").join(&packages[1]);
    std::fs::write(
        headers_dir.join("Makefile"),
        format!("include {}/Makefile\n", common.display()),
    )?;
    Ok((headers_dir, find_source(&root.join("usr/src"))?))
}

/// `make modules` of the driver against the headers (the log kept in `staging`); the module,
/// its vermagic checked against the kernel.
fn build(
    kernel: &KernelImage,
    headers_dir: &Path,
    source: &Path,
    staging: &Path,
) -> Result<PathBuf> {
    let out = Command::new("make")
        .arg("-C")
        .arg(headers_dir)
        .arg(format!("M={}", source.display()))
        .arg("modules")
        .output()
        .context("running make")?;
    std::fs::write(
        staging.join("build.log"),
        [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
    )?;
    let built = source.join("scap.ko");
    if !out.status.success() || !built.is_file() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "building sysdig's driver for {} failed ({}): {}",
            kernel.release,
            out.status,
            stderr.trim().lines().last().unwrap_or("no message")
        );
    }
    let bytes = std::fs::read(&built)?;
    if !vermagic(&bytes).is_some_and(|magic| magic.starts_with(&format!("{} ", kernel.release))) {
        bail!(
            "the driver built for {} has vermagic {:?}: the headers do not match the kernel",
            kernel.release,
            vermagic(&bytes)
        );
    }
    Ok(built)
}

/// The packages that hold `release`'s headers: its own, the common headers and the build
/// tools (`6.1.0-57-cloud-amd64` needs `linux-headers-6.1.0-57-common` and `linux-kbuild-6.1`).
fn headers_packages(release: &str) -> Result<Vec<String>> {
    let mut parts = release.splitn(3, '-');
    let (version, abi) = (parts.next(), parts.next());
    let (Some(version), Some(abi)) = (version, abi) else {
        bail!("cannot tell the headers packages of kernel {release}");
    };
    let series: Vec<&str> = version.split('.').take(2).collect();
    Ok(vec![
        format!("linux-headers-{release}"),
        format!("linux-headers-{version}-{abi}-common"),
        format!("linux-kbuild-{}", series.join(".")),
    ])
}

/// The driver source the dkms package installs: `usr/src/scap-VERSION`.
fn find_source(src: &Path) -> Result<PathBuf> {
    std::fs::read_dir(src)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("scap-"))
                && path.join("dkms.conf").is_file()
        })
        .with_context(|| format!("{DKMS_PACKAGE} installed no usr/src/scap-*/dkms.conf"))
}

/// The `vermagic=` field of a module's `.modinfo` section.
fn vermagic(bytes: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"vermagic=";
    let start = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let value = &bytes[start..];
    let end = value.iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&value[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_headers_packages_of_a_cloud_kernel() {
        assert_eq!(
            headers_packages("6.1.0-57-cloud-amd64").unwrap(),
            [
                "linux-headers-6.1.0-57-cloud-amd64",
                "linux-headers-6.1.0-57-common",
                "linux-kbuild-6.1"
            ]
        );
        assert!(headers_packages("6").is_err());
    }

    #[test]
    fn reads_a_modules_vermagic() {
        let bytes = b"\0license=GPL\0vermagic=6.1.0-57-cloud-amd64 SMP mod_unload \0name=scap\0";
        assert_eq!(
            vermagic(bytes).as_deref(),
            Some("6.1.0-57-cloud-amd64 SMP mod_unload ")
        );
        assert_eq!(vermagic(b"nothing"), None);
    }

    #[test]
    fn only_the_cfs_guest_has_a_host_built_driver() {
        assert!(unsupported(GuestKernel::Cfs).is_none());
        assert!(unsupported(GuestKernel::SchedExt)
            .unwrap()
            .contains("--vm-kernel sched-ext-7"));
        assert!(unsupported(GuestKernel::SchedExt7)
            .unwrap()
            .contains("Debian userland"));
    }
}
