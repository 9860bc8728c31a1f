//! The guest's root file system: a gzipped newc cpio the kernel unpacks into RAM.
//!
//! The *base image* holds busybox (static, with a link for every applet, so `/bin/true`
//! exists for the execve flood), `/init` (`guest_init.sh`), this `aegis-bench` binary, any
//! extra binaries, and the shared libraries `ldd` lists for them, at the paths `ldd` names. It
//! is cached under `initramfs/` by the SHA-256 of all of that, so a rebuilt `aegis-bench` gets
//! a new image and an unchanged one boots at once. Binaries go in with their debug info
//! stripped (`strip --strip-debug`, symbols kept): a debug build shrinks from ~37 MB to ~8 MB,
//! which saves seconds of gunzip under TCG on every boot.
//!
//! The *run image* is the base image followed by a second small gzipped cpio with this run's
//! `/aegis/job.sh`, `/aegis/back` and kernel modules; the kernel unpacks concatenated archives
//! in order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::kernel::KernelImage;
use super::newc::NewcWriter;
use crate::error::InputError;

const INIT_SCRIPT: &str = include_str!("guest_init.sh");
/// Bump when the image layout changes, so cached images built by older code are not reused.
const LAYOUT_VERSION: &str = "aegis-initramfs-1";
const BUSYBOX: &str = "/bin/busybox";
/// Guest directory for `aegis-bench` and extra binaries (first in the guest's PATH).
pub const GUEST_BIN_DIR: &str = "usr/local/bin";
/// Cached images kept besides the one in use; each is a few MB.
const KEEP_IMAGES: usize = 4;

/// A cached base image.
#[derive(Clone, Debug)]
pub struct BaseImage {
    pub path: PathBuf,
}

/// A file that goes into the image.
struct Input {
    /// Path in the guest, relative (`usr/local/bin/aegis-bench`).
    guest: String,
    host: PathBuf,
    /// An ELF program of ours: strip its debug info.
    strip: bool,
}

/// The shared libraries `ldd` lists for a program, the dynamic loader included; none for a
/// static program.
pub fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .context("running ldd (from libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if text.contains("not a dynamic executable") || err.contains("not a dynamic executable") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", program.display(), err.trim());
    }
    parse_ldd(&text).with_context(|| format!("libraries of {}", program.display()))
}

/// Parses `ldd` output: `name => /path (0x..)`, `/lib64/ld-linux-x86-64.so.2 (0x..)`, and the
/// vDSO (no file).
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("statically linked") {
            continue;
        }
        let path = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.trim();
                if target.starts_with("not found") {
                    bail!("{} is not found", name.trim());
                }
                target.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

fn relative(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

/// The guest's shell and tools come from busybox-static.
pub fn check_busybox() -> Result<(), InputError> {
    if !Path::new(BUSYBOX).is_file() {
        return Err(InputError(format!(
            "{BUSYBOX} is missing: the guest runner needs busybox-static (`make setup`, or \
             apt-get install busybox-static)"
        )));
    }
    Ok(())
}

/// Everything the base image contains, in a fixed order.
fn inputs(extra_binaries: &[PathBuf]) -> Result<Vec<Input>> {
    check_busybox()?;
    // The running binary itself, not the file at its path: a rebuild during a long run
    // replaces that file, and later boots would carry a binary of another revision.
    let exe = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    let mut programs = vec![(exe, "aegis-bench".to_string())];
    for binary in extra_binaries {
        let name = binary
            .file_name()
            .with_context(|| format!("{} has no file name", binary.display()))?
            .to_string_lossy()
            .into_owned();
        if !binary.is_file() {
            return Err(InputError(format!(
                "{} is not a file to copy into the guest",
                binary.display()
            ))
            .into());
        }
        if programs.iter().any(|(_, n)| *n == name) {
            return Err(InputError(format!(
                "two programs named {name} for the guest's /{GUEST_BIN_DIR}"
            ))
            .into());
        }
        programs.push((binary.clone(), name));
    }
    let mut inputs = vec![Input {
        guest: relative(Path::new(BUSYBOX)),
        host: PathBuf::from(BUSYBOX),
        strip: false,
    }];
    let mut libraries: Vec<PathBuf> = shared_libraries(Path::new(BUSYBOX))?;
    for (host, name) in &programs {
        inputs.push(Input {
            guest: format!("{GUEST_BIN_DIR}/{name}"),
            host: host.clone(),
            strip: true,
        });
        for library in shared_libraries(host)? {
            if !libraries.contains(&library) {
                libraries.push(library);
            }
        }
    }
    libraries.sort();
    for library in libraries {
        inputs.push(Input {
            guest: relative(&library),
            host: library,
            strip: false,
        });
    }
    Ok(inputs)
}

/// `busybox --list-full`: the applet paths (`bin/sh`, `sbin/poweroff`, ...).
fn applets() -> Result<Vec<String>> {
    let out = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {BUSYBOX} --list-full"))?;
    if !out.status.success() {
        bail!("{BUSYBOX} --list-full failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "bin/busybox")
        .map(str::to_string)
        .collect())
}

/// The cached base image for these extra binaries, built if missing.
pub fn ensure_base(cache: &Path, extra_binaries: &[PathBuf]) -> Result<BaseImage> {
    let inputs = inputs(extra_binaries)?;
    let applets = applets()?;
    let mut hasher = Sha256::new();
    for part in [LAYOUT_VERSION, INIT_SCRIPT, &applets.join("\n")] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    for input in &inputs {
        let bytes = std::fs::read(&input.host)
            .with_context(|| format!("reading {}", input.host.display()))?;
        hasher.update((input.guest.len() as u64).to_le_bytes());
        hasher.update(input.guest.as_bytes());
        hasher.update([input.strip as u8]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest = format!("{:x}", hasher.finalize());
    let dir = cache.join("initramfs");
    let path = dir.join(format!("{}.cpio.gz", &digest[..32]));
    if path.is_file() {
        // Marks it recently used, for pruning.
        File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .ok();
        return Ok(BaseImage { path });
    }
    let started = std::time::Instant::now();
    crate::files::write_atomically_with(&path, |file| write_base(file, &inputs, &applets))?;
    crate::say!(
        "vm: built the guest initramfs {} ({:.1} MB, {:.1} s)",
        path.display(),
        path.metadata().map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    prune(&dir, &path);
    Ok(BaseImage { path })
}

/// Writes the base image into `file`: the directory layout, `/init`, the inputs (ELF programs
/// of ours without their debug info) and busybox's applets, as a gzipped cpio archive.
fn write_base(file: &File, inputs: &[Input], applets: &[String]) -> Result<()> {
    let strip_dir = crate::run::work_dir::create_labeled("strip")
        .context("creating a directory to strip binaries in")?;
    let gz = GzEncoder::new(BufWriter::new(file), Compression::fast());
    let mut cpio = NewcWriter::new(gz);
    for dir in [
        "proc", "sys", "dev", "tmp", "run", "root", "etc", "var/tmp", "aegis",
    ] {
        cpio.dir(dir, 0o755)?;
    }
    cpio.char_device("dev/console", 0o600, 5, 1)?;
    cpio.char_device("dev/null", 0o666, 1, 3)?;
    // nginx's workers switch to its compiled-in user, nobody.
    cpio.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    cpio.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    cpio.file("init", 0o755, INIT_SCRIPT.as_bytes())?;
    for input in inputs {
        let source = if input.strip {
            strip_debug(&input.host, strip_dir.path())
        } else {
            input.host.clone()
        };
        let bytes =
            std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
        cpio.file(&input.guest, 0o755, &bytes)?;
    }
    for applet in applets {
        if !inputs.iter().any(|input| input.guest == *applet) {
            cpio.symlink(applet, BUSYBOX)?;
        }
    }
    let gz = cpio.finish()?;
    gz.finish()?.flush()?;
    Ok(())
}

/// A copy of `program` without debug info, or `program` itself when `strip` is unavailable
/// or fails (a larger image boots slower but works the same).
fn strip_debug(program: &Path, scratch: &Path) -> PathBuf {
    let out = scratch.join(program.file_name().unwrap_or_default());
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .output()
        .is_ok_and(|o| o.status.success());
    if stripped {
        out
    } else {
        program.to_path_buf()
    }
}

/// Deletes all but the most recently used images.
fn prune(dir: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut images: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".cpio.gz") && p != keep)
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    images.sort();
    let excess = images.len().saturating_sub(KEEP_IMAGES - 1);
    for (_, path) in images.into_iter().take(excess) {
        std::fs::remove_file(path).ok();
    }
}

/// The script `/init` sources: a function running `aegis-bench` with these arguments. The
/// host's facts go along (trials record the machine QEMU ran on), and so does the clean-up
/// tests' fault injection (`AEGIS_BENCH_INJECT_FAULT`).
pub fn job_script(command: &GuestCommand) -> String {
    let fault = match std::env::var(FAULT_VAR) {
        Ok(value) if !value.is_empty() => {
            format!("export {FAULT_VAR}={}\n", shell_words::quote(&value))
        }
        _ => String::new(),
    };
    let host = crate::results::trial::HostFacts::here(super::qemu::version());
    let host = serde_json::to_string(&host).expect("host facts serialize");
    let line = match command {
        GuestCommand::Aegis(args) => {
            format!("/{GUEST_BIN_DIR}/aegis-bench {}", shell_words::join(args))
        }
        GuestCommand::Exec(args) => shell_words::join(args),
    };
    format!(
        "# Written by the host for this run.\nexport {}={}\n{fault}aegis_command() {{\n    {line}\n}}\n",
        crate::measure::kernel::HOST_FACTS_VAR,
        shell_words::quote(&host),
    )
}

const FAULT_VAR: &str = "AEGIS_BENCH_INJECT_FAULT";

/// What the guest runs.
#[derive(Clone, Debug)]
pub enum GuestCommand {
    /// `aegis-bench ARGS`.
    Aegis(Vec<String>),
    /// Any program with its arguments (`vm --exec`).
    Exec(Vec<String>),
}

/// Writes the run image: the base image, then a cpio with the job, the list of files to send
/// back (one absolute path a line), the files the command reads (`files_in`: absolute guest
/// path and contents) and the kernel's modules.
pub fn write_run_image(
    base: &BaseImage,
    kernel: &KernelImage,
    rootfs: bool,
    command: &GuestCommand,
    files_back: &[&Path],
    files_in: &[(String, Vec<u8>)],
    out: &Path,
) -> Result<()> {
    std::fs::copy(&base.path, out)
        .with_context(|| format!("copying {} to {}", base.path.display(), out.display()))?;
    let file = File::options()
        .append(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    let mut cpio = NewcWriter::new(GzEncoder::new(BufWriter::new(file), Compression::fast()));
    cpio.file("aegis/job.sh", 0o644, job_script(command).as_bytes())?;
    let mut back = String::new();
    for path in files_back {
        back.push_str(&path.to_string_lossy());
        back.push('\n');
    }
    cpio.file("aegis/back", 0o644, back.as_bytes())?;
    // The kernel's config where `measure::kernel::hz` looks for it (the guest kernels have no
    // /proc/config.gz): `calibrate` in a guest records its tick.
    let config = std::fs::read(&kernel.config)
        .with_context(|| format!("reading {}", kernel.config.display()))?;
    cpio.dir("boot", 0o755)?;
    let config_path = format!("boot/config-{}", kernel.release);
    cpio.file(&config_path, 0o644, &config)?;
    // What `/init` copies onto the Debian root disk besides /aegis and /usr/local/bin.
    let mut carry = format!("/{config_path}\n");
    // The kernel's unpacker creates no missing parents: each directory gets its own entry.
    let mut dirs_made = std::collections::BTreeSet::from(["boot".to_string()]);
    for (guest_path, bytes) in files_in {
        let relative = guest_path.trim_start_matches('/');
        let mut parent = Path::new(relative).parent();
        let mut parents = Vec::new();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            parents.push(dir.to_string_lossy().into_owned());
            parent = dir.parent();
        }
        for dir in parents.into_iter().rev() {
            if dirs_made.insert(dir.clone()) {
                cpio.dir(&dir, 0o755)?;
            }
        }
        cpio.file(relative, 0o644, bytes)?;
        carry.push_str(&format!("/{relative}\n"));
    }
    if rootfs {
        cpio.file("aegis/rootfs", 0o644, b"")?;
        cpio.file("aegis/carry", 0o644, carry.as_bytes())?;
    }
    if !kernel.modules.is_empty() {
        let mut order = String::new();
        for module in &kernel.modules {
            let name = module.file_name().unwrap_or_default().to_string_lossy();
            let bytes =
                std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
            cpio.file(&format!("aegis/modules/{name}"), 0o644, &bytes)?;
            order.push_str(&name);
            order.push('\n');
        }
        cpio.file("aegis/modules/order", 0o644, order.as_bytes())?;
    }
    cpio.finish()?.finish()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd5c5f6000)\n\
            \tlibelf.so.1 => /lib/x86_64-linux-gnu/libelf.so.1 (0x00007f578cc36000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f578c33e000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f578cc64000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libelf.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        let err = parse_ldd("\tlibbpf.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libbpf.so.1 is not found"));
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn finds_this_test_binary_libraries() {
        let exe = std::env::current_exe().unwrap();
        let libraries = shared_libraries(&exe).unwrap();
        assert!(libraries
            .iter()
            .any(|l| l.to_string_lossy().contains("libc.so")));
        assert!(libraries.iter().all(|l| l.is_absolute() && l.exists()));
    }

    #[test]
    fn job_script_quotes_arguments() {
        let args: Vec<String> = ["attack", "--cmd", "stress-ng --cpu 2", "it's"]
            .map(String::from)
            .to_vec();
        let script = job_script(&GuestCommand::Aegis(args.clone()));
        assert!(
            script
                .contains("/usr/local/bin/aegis-bench attack --cmd 'stress-ng --cpu 2' 'it'\\''s'"),
            "{script}"
        );
        let exec = job_script(&GuestCommand::Exec(vec!["python3".into(), "a b.py".into()]));
        assert!(exec.contains("\n    python3 'a b.py'\n"), "{exec}");
        assert!(!exec.contains("aegis-bench python3"), "{exec}");
    }
}
