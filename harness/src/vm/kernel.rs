//! Guest kernels: real Debian kernel packages, fetched once into the cache.
//!
//! - `sched-ext`: `linux-image-6.18.12+deb13-cloud-amd64` from trixie-backports, the kernel the
//!   measurements in `shared/ENVIRONMENT.md` were made on (Debian's 6.12 kernels do not enable
//!   sched_ext). Pinned, so result sets stay comparable.
//! - `sched-ext-7`: `linux-image-7.3.4+deb13-cloud-amd64` from trixie-backports, for the real
//!   collectors: Debian publishes its headers (the sysdig driver and eAudit's BCC compile
//!   against them) and it has BPF-LSM. Its image is split into `linux-base-*` (config),
//!   `linux-binary-*` (vmlinuz) and `linux-modules-*` (xz-compressed modules, unpacked here).
//! - `cfs`: the newest `linux-image-6.1.0-*-cloud-amd64` from bookworm-security, the last
//!   Debian kernel line before EEVDF replaced CFS in 6.6.
//!
//! Cache layout: `kernels/<package>/{vmlinuz,config,release,modules/}`. A package directory
//! only appears complete (it is renamed into place), and a cached kernel is used without
//! asking the network; delete `kernels/` to fetch the newest `cfs` kernel again.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::apt::{Archive, PrivateApt};
use crate::error::InputError;

/// The guest kernels the runner boots (`--vm-kernel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestKernel {
    /// Linux 6.18 with sched_ext (and EEVDF as its fair class).
    #[value(name = "sched-ext")]
    SchedExt,
    /// Linux 7.3 with sched_ext and published headers, for Sysdig and eAudit.
    #[value(name = "sched-ext-7")]
    SchedExt7,
    /// Linux 6.1, whose fair class is CFS.
    #[value(name = "cfs")]
    Cfs,
}

impl GuestKernel {
    /// What the guest's kernel offers schedulers, for checking `--scheduler` before booting.
    pub fn facts(self) -> crate::sched::KernelFacts {
        match self {
            GuestKernel::SchedExt => crate::sched::KernelFacts {
                name: "the sched-ext guest kernel (6.18)".into(),
                fair_class: "eevdf",
                sched_ext: true,
                in_guest: true,
            },
            GuestKernel::SchedExt7 => crate::sched::KernelFacts {
                name: "the sched-ext-7 guest kernel (7.3)".into(),
                fair_class: "eevdf",
                sched_ext: true,
                in_guest: true,
            },
            GuestKernel::Cfs => crate::sched::KernelFacts {
                name: "the cfs guest kernel (6.1)".into(),
                fair_class: "cfs",
                sched_ext: false,
                in_guest: true,
            },
        }
    }
}

const SCHED_EXT_PACKAGE: &str = "linux-image-6.18.12+deb13-cloud-amd64";
const SCHED_EXT7_PACKAGE: &str = "linux-image-7.3.4+deb13-cloud-amd64";
const CFS_PREFIX: &str = "linux-image-6.1.0-";
const CFS_SUFFIX: &str = "-cloud-amd64";

/// Kernel options a guest run needs, and what for.
const REQUIRED_CONFIG: &[(&str, &str)] = &[
    ("CONFIG_BPF_SYSCALL", "BPF programs"),
    ("CONFIG_DEBUG_INFO_BTF", "BTF for the BPF programs"),
    ("CONFIG_CGROUPS", "the attack's cgroup"),
    ("CONFIG_FTRACE_SYSCALLS", "the syscall tracepoints"),
    ("CONFIG_BLK_DEV_INITRD", "booting from an initramfs"),
    ("CONFIG_RD_GZIP", "a gzipped initramfs"),
    ("CONFIG_DEVTMPFS", "/dev in the guest"),
    ("CONFIG_TMPFS", "/tmp in the guest"),
    ("CONFIG_SERIAL_8250_CONSOLE", "the guest console on ttyS0"),
];

impl GuestKernel {
    pub const ALL: [GuestKernel; 3] = [
        GuestKernel::SchedExt,
        GuestKernel::SchedExt7,
        GuestKernel::Cfs,
    ];

    /// The `--vm-kernel` name.
    pub fn name(self) -> &'static str {
        match self {
            GuestKernel::SchedExt => "sched-ext",
            GuestKernel::SchedExt7 => "sched-ext-7",
            GuestKernel::Cfs => "cfs",
        }
    }

    pub fn suite(self) -> &'static str {
        match self {
            GuestKernel::SchedExt | GuestKernel::SchedExt7 => "trixie-backports",
            GuestKernel::Cfs => "bookworm-security",
        }
    }

    pub(crate) fn archive(self) -> Archive {
        match self {
            GuestKernel::SchedExt | GuestKernel::SchedExt7 => Archive::Main,
            GuestKernel::Cfs => Archive::Security,
        }
    }

    /// The package, or the pattern of packages, this kernel comes from.
    pub fn package_description(self) -> String {
        match self {
            GuestKernel::SchedExt => SCHED_EXT_PACKAGE.to_string(),
            GuestKernel::SchedExt7 => SCHED_EXT7_PACKAGE.to_string(),
            GuestKernel::Cfs => format!("{CFS_PREFIX}*{CFS_SUFFIX}"),
        }
    }

    /// Whether `package` is (one of) this kernel's package(s); for `cfs`, its ABI number.
    fn matches(self, package: &str) -> Option<u32> {
        match self {
            GuestKernel::SchedExt => (package == SCHED_EXT_PACKAGE).then_some(0),
            GuestKernel::SchedExt7 => (package == SCHED_EXT7_PACKAGE).then_some(0),
            GuestKernel::Cfs => package
                .strip_prefix(CFS_PREFIX)?
                .strip_suffix(CFS_SUFFIX)?
                .parse()
                .ok(),
        }
    }

    /// The best of `packages` for this kernel: the pinned one, or the newest ABI.
    fn pick<'a>(self, packages: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        packages
            .into_iter()
            .filter_map(|p| self.matches(p).map(|abi| (abi, p)))
            .max()
            .map(|(_, p)| p)
    }

    fn required_config(self) -> Vec<(&'static str, &'static str)> {
        let mut required = REQUIRED_CONFIG.to_vec();
        if self.facts().sched_ext {
            required.push(("CONFIG_SCHED_CLASS_EXT", "sched_ext schedulers"));
        }
        required
    }
}

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct KernelImage {
    pub kind: GuestKernel,
    pub package: String,
    /// `uname -r` in the guest, e.g. `6.18.12+deb13-cloud-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    pub config: PathBuf,
    /// Modules the guest loads before anything else (the virtio transport of the result
    /// ports, where the kernel builds it as modules), dependencies first.
    pub modules: Vec<PathBuf>,
    /// Modules of [`wanted_modules`] the kernel builds as modules but the cache lacks (a
    /// kernel cached by an older aegis-bench, before virtio-blk was kept).
    pub missing_modules: Vec<String>,
}

/// The kernel, from the cache or (unless `offline`) from the Debian archive.
pub fn ensure(kind: GuestKernel, cache: &Path, offline: bool) -> Result<KernelImage> {
    let kernels = cache.join("kernels");
    if let Some(image) = cached(kind, cache)? {
        // Offline, a kernel without the virtio-blk module still boots the busybox guest;
        // the Debian root filesystem says what is missing.
        if image.missing_modules.is_empty() || offline {
            check_config(&image)?;
            return Ok(image);
        }
    }
    if offline {
        return Err(InputError(format!(
            "no cached {} guest kernel ({}) in {}: run once without --offline to download it \
             from {}",
            kind.name(),
            kind.package_description(),
            kernels.display(),
            kind.suite()
        ))
        .into());
    }
    std::fs::create_dir_all(&kernels).with_context(|| format!("creating {}", kernels.display()))?;
    let _lock = lock_cache(cache)?;
    // Another run may have fetched it while this one waited for the lock.
    if let Some(image) = cached(kind, cache)? {
        if image.missing_modules.is_empty() {
            check_config(&image)?;
            return Ok(image);
        }
        crate::say!(
            "vm: the cached {} lacks the module(s) {}; fetching it again",
            image.package,
            image.missing_modules.join(", ")
        );
    }
    let image = fetch(kind, cache, &kernels)?;
    check_config(&image)?;
    Ok(image)
}

/// Serializes fetches (apt's own lock would fail a second run instead of making it wait).
pub(crate) fn lock_cache(cache: &Path) -> Result<nix::fcntl::Flock<File>> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let path = cache.join("lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", path.display()))
}

/// Every complete kernel in the cache, as (kind, package, release).
pub fn cached_kernels(cache: &Path) -> Vec<(GuestKernel, String, String)> {
    let Ok(entries) = std::fs::read_dir(cache.join("kernels")) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .flatten()
        .filter_map(|entry| {
            let package = entry.file_name().to_string_lossy().into_owned();
            let kind = GuestKernel::ALL
                .into_iter()
                .find(|kind| kind.matches(&package).is_some())?;
            let release = std::fs::read_to_string(entry.path().join("release")).ok()?;
            Some((kind, package, release.trim().to_string()))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

fn cached(kind: GuestKernel, cache: &Path) -> Result<Option<KernelImage>> {
    let kernels = cache.join("kernels");
    let packages: Vec<String> = cached_kernels(cache)
        .into_iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(_, package, _)| package)
        .collect();
    let Some(package) = kind.pick(packages.iter().map(String::as_str)) else {
        return Ok(None);
    };
    let dir = kernels.join(package);
    let release = std::fs::read_to_string(dir.join("release"))?
        .trim()
        .to_string();
    let modules_dir = dir.join("modules");
    let modules: Vec<PathBuf> = match std::fs::read_to_string(modules_dir.join("order")) {
        Ok(order) => order.lines().map(|name| modules_dir.join(name)).collect(),
        Err(_) => Vec::new(),
    };
    let config = std::fs::read_to_string(dir.join("config"))
        .map(|text| parse_config(&text))
        .unwrap_or_default();
    let missing_modules = wanted_modules(kind)
        .into_iter()
        .filter(|(option, _)| config.get(*option).map(String::as_str) == Some("m"))
        .map(|(_, module)| module.to_string())
        .filter(|module| {
            !modules
                .iter()
                .any(|path| path.file_name() == Some(format!("{module}.ko").as_ref()))
        })
        .collect();
    Ok(Some(KernelImage {
        kind,
        package: package.to_string(),
        release,
        vmlinuz: dir.join("vmlinuz"),
        config: dir.join("config"),
        modules,
        missing_modules,
    }))
}

fn fetch(kind: GuestKernel, cache: &Path, kernels: &Path) -> Result<KernelImage> {
    let suite = kind.suite();
    let apt = PrivateApt::new(&cache.join("apt").join(suite), kind.archive(), suite)?;
    crate::say!(
        "vm: fetching the {} guest kernel ({}) from {suite} ({}) into {}",
        kind.name(),
        kind.package_description(),
        apt.uri,
        kernels.display()
    );
    apt.update()
        .with_context(|| format!("updating the package list of {suite} from {}", apt.uri))?;
    let available = apt
        .search_names(&format!(
            "^{}$",
            regex_escape(&kind.package_description()).replace("\\*", "[0-9]+")
        ))
        .with_context(|| format!("searching {suite} for {}", kind.package_description()))?;
    let package = kind
        .pick(available.iter().map(String::as_str))
        .with_context(|| {
            format!(
                "{suite} ({}) has no package {}; Debian may have dropped it: update the \
                 guest kernel in harness/src/vm/kernel.rs",
                apt.uri,
                kind.package_description()
            )
        })?
        .to_string();
    let staging = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(kernels)
        .with_context(|| format!("creating a staging directory in {}", kernels.display()))?;
    let root = staging.path().join("root");
    apt.extract(&package, staging.path(), &root)?;
    let (vmlinuz, config, release) = unpacked_image(&apt, &package, staging.path(), &root)?;
    let config_text = std::fs::read_to_string(&config)
        .with_context(|| format!("{package} has no {}", config.display()))?;

    let dest = staging.path().join("kernel");
    let modules_dir = dest.join("modules");
    std::fs::create_dir_all(&modules_dir)?;
    std::fs::copy(&vmlinuz, dest.join("vmlinuz"))?;
    std::fs::copy(&config, dest.join("config"))?;
    std::fs::write(dest.join("release"), format!("{release}\n"))?;
    let modules = transport_modules(kind, &package, &parse_config(&config_text), &root, &release)?;
    let mut order = String::new();
    for module in &modules {
        let name = format!("{}.ko", module_name(module));
        std::fs::write(modules_dir.join(&name), module_bytes(module)?)?;
        order.push_str(&name);
        order.push('\n');
    }
    std::fs::write(modules_dir.join("order"), order)?;

    let final_dir = kernels.join(&package);
    if final_dir.exists() {
        // An older, incomplete copy of the same package: out of the way first (the rename
        // below only replaces an empty directory).
        std::fs::rename(&final_dir, staging.path().join("old"))
            .with_context(|| format!("moving the old {} aside", final_dir.display()))?;
    }
    std::fs::rename(&dest, &final_dir)
        .with_context(|| format!("moving the kernel into {}", final_dir.display()))?;
    crate::say!("vm: cached {package} ({release})");
    cached(kind, cache)?.context("the kernel just fetched is not in the cache")
}

/// The kernel's vmlinuz, config and release in the unpacked `package`: under `boot/`, or, for
/// an image split into parts (7.x), under `usr/lib/modules/RELEASE/` of its `linux-base-*`,
/// `linux-binary-*` and `linux-modules-*` packages, which are unpacked beside it first.
fn unpacked_image(
    apt: &PrivateApt,
    package: &str,
    staging: &Path,
    root: &Path,
) -> Result<(PathBuf, PathBuf, String)> {
    if let Some((vmlinuz, release)) = find_with_prefix(&root.join("boot"), "vmlinuz-") {
        let config = root.join("boot").join(format!("config-{release}"));
        return Ok((vmlinuz, config, release));
    }
    let suffix = package
        .strip_prefix("linux-image-")
        .with_context(|| format!("{package} is not a linux-image-* package"))?;
    for part in ["base", "binary", "modules"] {
        apt.extract(&format!("linux-{part}-{suffix}"), staging, root)?;
    }
    let modules = root.join("usr/lib/modules");
    let (dir, release) = find_with_prefix(&modules, "")
        .with_context(|| format!("{package}'s parts have no usr/lib/modules/RELEASE"))?;
    Ok((dir.join("vmlinuz"), dir.join("config"), release))
}

/// A module file's contents, uncompressed (the guest loads plain `.ko` files).
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    if !path.to_string_lossy().ends_with(".ko.xz") {
        return std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    }
    let out = std::process::Command::new("xz")
        .arg("-dc")
        .arg(path)
        .output()
        .context("running xz to unpack a kernel module (apt-get install xz-utils)")?;
    if !out.status.success() {
        bail!(
            "xz -dc {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = ".+*?()[]{}|^$\\".contains(c);
            special.then_some('\\').into_iter().chain(Some(c))
        })
        .collect()
}

/// The one file in `dir` named `prefix*`, and the rest of its name.
fn find_with_prefix(dir: &Path, prefix: &str) -> Option<(PathBuf, String)> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rest = name.strip_prefix(prefix)?.to_string();
        Some((entry.path(), rest))
    })
}

/// `CONFIG_X=value` lines (`# CONFIG_X is not set` is simply absent).
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| line.starts_with("CONFIG_"))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// The options `kind` needs that `config` lacks, as `CONFIG_X=y (what for)`.
pub fn missing_config(kind: GuestKernel, config: &BTreeMap<String, String>) -> Vec<String> {
    let mut missing: Vec<String> = kind
        .required_config()
        .into_iter()
        .filter(|(option, _)| config.get(*option).map(String::as_str) != Some("y"))
        .map(|(option, why)| format!("{option}=y ({why})"))
        .collect();
    for (option, why) in [
        ("CONFIG_VIRTIO_PCI", "the result ports"),
        ("CONFIG_VIRTIO_CONSOLE", "the result ports"),
    ] {
        if !matches!(config.get(option).map(String::as_str), Some("y" | "m")) {
            missing.push(format!("{option}=y or =m ({why})"));
        }
    }
    missing
}

fn check_config(image: &KernelImage) -> Result<()> {
    let text = std::fs::read_to_string(&image.config)
        .with_context(|| format!("reading {}", image.config.display()))?;
    let missing = missing_config(image.kind, &parse_config(&text));
    if !missing.is_empty() {
        return Err(InputError(format!(
            "the {} guest kernel {} ({}) lacks {}; it cannot run the harness",
            image.kind.name(),
            image.package,
            image.config.display(),
            missing.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// A module's name as the kernel sees it: file stem, `-` as `_`.
fn module_name(path: &Path) -> String {
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let stem = file.split(".ko").next().unwrap_or(&file);
    stem.replace('-', "_")
}

/// The `depends=` field of a module's `.modinfo` section.
pub fn module_depends(bytes: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = bytes.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let value = &bytes[start + KEY.len()..];
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|name| !name.is_empty())
        .map(|name| name.replace('-', "_"))
        .collect()
}

/// The modules the guest loads before anything else, where the kernel builds them as modules:
/// the virtio console over PCI (the result ports) and, for the kernel the Debian root disk of
/// [`super::rootfs`] boots with (cfs and sched-ext-7), virtio-blk.
fn wanted_modules(kind: GuestKernel) -> Vec<(&'static str, &'static str)> {
    let mut wanted = vec![
        ("CONFIG_VIRTIO_PCI", "virtio_pci"),
        ("CONFIG_VIRTIO_CONSOLE", "virtio_console"),
    ];
    if kind != GuestKernel::SchedExt {
        wanted.push(("CONFIG_VIRTIO_BLK", "virtio_blk"));
    }
    wanted
}

/// The module files to load for [`wanted_modules`], dependencies first; none when the kernel
/// has them all built in.
fn transport_modules(
    kind: GuestKernel,
    package: &str,
    config: &BTreeMap<String, String>,
    root: &Path,
    release: &str,
) -> Result<Vec<PathBuf>> {
    let wanted: Vec<&str> = wanted_modules(kind)
        .into_iter()
        .filter(|(option, _)| config.get(*option).map(String::as_str) == Some("m"))
        .map(|(_, module)| module)
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut index = BTreeMap::new();
    for base in ["lib/modules", "usr/lib/modules"] {
        index_modules(&root.join(base).join(release), &mut index);
    }
    let mut order = Vec::new();
    for module in wanted {
        add_with_dependencies(package, module, &index, &mut order, 0)?;
    }
    Ok(order)
}

fn index_modules(dir: &Path, index: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            index_modules(&path, index);
        } else if path.to_string_lossy().contains(".ko") {
            index.insert(module_name(&path), path);
        }
    }
}

fn add_with_dependencies(
    package: &str,
    module: &str,
    index: &BTreeMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        bail!("module dependencies of {module} in {package} form a cycle");
    }
    let path = index
        .get(module)
        .with_context(|| format!("{package} builds {module} as a module but does not ship it"))?;
    if order.contains(path) {
        return Ok(());
    }
    let name = path.to_string_lossy();
    if !name.ends_with(".ko") && !name.ends_with(".ko.xz") {
        bail!(
            "{package} ships {} compressed in a way the guest runner does not unpack",
            path.display()
        );
    }
    let bytes = module_bytes(path)?;
    for dependency in module_depends(&bytes) {
        add_with_dependencies(package, &dependency, index, order, depth + 1)?;
    }
    order.push(path.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_pinned_and_the_newest_packages() {
        let available = [
            "linux-image-6.1.0-9-cloud-amd64",
            "linux-image-6.1.0-56-cloud-amd64",
            "linux-image-6.1.0-55-cloud-amd64",
            "linux-image-6.1.0-56-amd64",
            "linux-image-6.18.12+deb13-cloud-amd64",
            "linux-image-6.18.15+deb13-cloud-amd64",
        ];
        assert_eq!(
            GuestKernel::Cfs.pick(available),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(
            GuestKernel::SchedExt.pick(available),
            Some("linux-image-6.18.12+deb13-cloud-amd64")
        );
        assert_eq!(GuestKernel::SchedExt.pick(["linux-image-6.12.9"]), None);
    }

    #[test]
    fn names_missing_options() {
        let mut config = parse_config(
            "CONFIG_BPF_SYSCALL=y\n# CONFIG_SCHED_CLASS_EXT is not set\nCONFIG_VIRTIO_PCI=m\n",
        );
        let missing = missing_config(GuestKernel::SchedExt, &config);
        assert!(missing
            .iter()
            .any(|m| m.starts_with("CONFIG_SCHED_CLASS_EXT=y")));
        assert!(missing
            .iter()
            .any(|m| m.starts_with("CONFIG_DEBUG_INFO_BTF=y")));
        assert!(missing
            .iter()
            .any(|m| m.starts_with("CONFIG_VIRTIO_CONSOLE")));
        assert!(!missing.iter().any(|m| m.starts_with("CONFIG_BPF_SYSCALL")));
        assert!(!missing.iter().any(|m| m.starts_with("CONFIG_VIRTIO_PCI")));
        for (option, _) in GuestKernel::SchedExt.required_config() {
            config.insert(option.to_string(), "y".into());
        }
        config.insert("CONFIG_VIRTIO_CONSOLE".into(), "y".into());
        assert!(missing_config(GuestKernel::SchedExt, &config).is_empty());
        config.remove("CONFIG_SCHED_CLASS_EXT");
        assert!(missing_config(GuestKernel::Cfs, &config).is_empty());
    }

    #[test]
    fn reads_module_dependencies() {
        let modinfo = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0retpoline=Y\0";
        assert_eq!(module_depends(modinfo), ["virtio", "virtio_ring"]);
        assert!(module_depends(b"\0depends=\0name=virtio").is_empty());
        assert_eq!(
            module_name(Path::new("/x/virtio-pci-legacy-dev.ko")),
            "virtio_pci_legacy_dev"
        );
    }

    #[test]
    fn escapes_package_patterns() {
        assert_eq!(
            regex_escape("linux-image-6.1.0-*-cloud-amd64").replace("\\*", "[0-9]+"),
            "linux-image-6\\.1\\.0-[0-9]+-cloud-amd64"
        );
        assert_eq!(regex_escape("a+b"), "a\\+b");
    }
}
