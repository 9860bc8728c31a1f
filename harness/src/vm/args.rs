//! The guest runner's own flags: which guest to boot (flattened into `vm`, `attack` and
//! `run`), and the `vm` command's.

use std::path::PathBuf;

use clap::Args;

use super::{GuestKernel, GuestSpec, Userland, DEFAULT_CPUS, DEFAULT_MEM, DEFAULT_TIMEOUT_S};
use crate::error::InputError;

/// The guest to boot, for `vm`, `attack --vm` and `run --vm`.
#[derive(Clone, Debug, Default, Args)]
pub struct GuestArgs {
    /// Guest kernel: sched-ext (Debian's Linux 6.18 with sched_ext; EEVDF), sched-ext-7 (Linux
    /// 7.3 with sched_ext and published headers; picked for sysdig and eaudit) or cfs (Debian's
    /// Linux 6.1; CFS) [default: sched-ext]
    #[arg(long, value_name = "KERNEL", value_enum)]
    pub vm_kernel: Option<GuestKernel>,
    /// Guest CPUs [default: 2]
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Guest memory, e.g. 2GiB [default: 2GiB]
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Use only the cached guest kernel; never download.
    #[arg(long)]
    pub offline: bool,
}

impl GuestArgs {
    /// The guest flags given, for the error when they come without --vm.
    pub fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.vm_kernel.is_some() {
            given.push("--vm-kernel");
        }
        if self.cpus.is_some() {
            given.push("--cpus");
        }
        if self.mem.is_some() {
            given.push("--mem");
        }
        if self.offline {
            given.push("--offline");
        }
        given
    }

    /// `--cpus` and friends mean nothing without `--vm`; say so instead of ignoring them.
    pub fn refuse_without_vm(&self, vm: bool) -> Result<(), InputError> {
        let given = self.given();
        if !vm && !given.is_empty() {
            return Err(InputError(format!(
                "{} only applies to guest runs: add --vm",
                given.join(", ")
            )));
        }
        Ok(())
    }

    /// The guest these flags describe, with defaults, allowed `timeout_s` to run.
    pub fn spec(&self, timeout_s: u64) -> Result<GuestSpec, InputError> {
        let mut spec = GuestSpec::new(
            self.vm_kernel.unwrap_or(GuestKernel::SchedExt),
            self.cpus.unwrap_or(DEFAULT_CPUS),
            self.mem.as_deref().unwrap_or(DEFAULT_MEM),
            self.offline,
            timeout_s,
        )?;
        spec.kernel_chosen = self.vm_kernel.is_some();
        Ok(spec)
    }
}

/// `aegis-bench vm [GUEST FLAGS] -- ARGS`.
#[derive(Debug, Args)]
pub struct VmArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Kill the guest after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_S)]
    pub timeout: u64,
    /// Also copy this program (with its libraries) into the guest's /usr/local/bin;
    /// repeatable.
    #[arg(long = "bin", value_name = "PATH")]
    pub bins: Vec<PathBuf>,
    /// The guest's userland: busybox (the initramfs alone) or debian (a Debian root disk with
    /// BCC and the kernel's headers: bookworm for cfs, forky with sysdig for sched-ext-7)
    #[arg(long, value_name = "USERLAND", value_enum, default_value_t = Userland::Busybox)]
    pub userland: Userland,
    /// Copy a host file, or a directory recursively, into the guest: HOST:GUEST (GUEST an
    /// absolute path); repeatable.
    #[arg(long = "file", value_name = "HOST:GUEST")]
    pub files: Vec<String>,
    /// Run ARGS as a program and its arguments in the guest instead of `aegis-bench ARGS`.
    #[arg(long)]
    pub exec: bool,
    /// The aegis-bench command line to run in the guest, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `--file HOST:GUEST`: the files to place in the guest, as (absolute guest path, contents);
/// a directory gives every regular file under it (symlinks and empty directories are left
/// out).
pub fn read_file_arg(arg: &str) -> Result<Vec<(String, Vec<u8>)>, InputError> {
    let (host, guest) = arg.split_once(':').ok_or_else(|| {
        InputError(format!(
            "--file {arg}: give HOST:GUEST, e.g. --file ./prog.py:/root/prog.py"
        ))
    })?;
    if !guest.starts_with('/') || guest.split('/').any(|part| part == "..") {
        return Err(InputError(format!(
            "--file {arg}: the guest path {guest} must be absolute, without `..`"
        )));
    }
    let host = PathBuf::from(host);
    let unreadable = |err: std::io::Error, path: &std::path::Path| {
        InputError(format!(
            "--file {arg}: cannot read {}: {err}",
            path.display()
        ))
    };
    if !host.is_dir() {
        let bytes = std::fs::read(&host).map_err(|e| unreadable(e, &host))?;
        return Ok(vec![(guest.to_string(), bytes)]);
    }
    let mut files = Vec::new();
    let mut stack = vec![(host.clone(), guest.trim_end_matches('/').to_string())];
    while let Some((dir, guest_dir)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| unreadable(e, &dir))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let target = format!("{guest_dir}/{name}");
            let meta = path.symlink_metadata().map_err(|e| unreadable(e, &path))?;
            if meta.is_dir() {
                stack.push((path, target));
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).map_err(|e| unreadable(e, &path))?;
                files.push((target, bytes));
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A command with the guest flags and `--vm`, as `attack` and `run` have them.
    #[derive(Debug, Parser)]
    struct WithGuest {
        #[arg(long)]
        vm: bool,
        #[command(flatten)]
        guest: GuestArgs,
    }

    fn parse(args: &[&str]) -> WithGuest {
        WithGuest::try_parse_from(["test"].iter().chain(args)).unwrap()
    }

    #[test]
    fn file_args_copy_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tree/sub")).unwrap();
        std::fs::write(dir.path().join("tree/a"), b"A").unwrap();
        std::fs::write(dir.path().join("tree/sub/b"), b"B").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("tree/link")).unwrap();
        let tree = format!("{}:/opt/t/", dir.path().join("tree").display());
        let mut files = read_file_arg(&tree).unwrap();
        files.sort();
        assert_eq!(
            files,
            [
                ("/opt/t/a".to_string(), b"A".to_vec()),
                ("/opt/t/sub/b".to_string(), b"B".to_vec())
            ]
        );
        let one = format!("{}:/root/a", dir.path().join("tree/a").display());
        assert_eq!(
            read_file_arg(&one).unwrap(),
            [("/root/a".into(), b"A".to_vec())]
        );
        for (arg, wanted) in [
            ("no-colon", "give HOST:GUEST"),
            ("x:relative", "must be absolute"),
            ("x:/a/../b", "must be absolute"),
            ("/nonexistent/x:/x", "cannot read /nonexistent/x"),
        ] {
            let err = read_file_arg(arg).unwrap_err().0;
            assert!(err.contains(wanted), "{arg}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn guest_flags_need_vm() {
        let bare = parse(&[]);
        assert!(bare.guest.refuse_without_vm(bare.vm).is_ok());
        let without = parse(&["--cpus", "4", "--offline"]);
        let err = without.guest.refuse_without_vm(without.vm).unwrap_err().0;
        assert_eq!(
            err,
            "--cpus, --offline only applies to guest runs: add --vm"
        );
        let with = parse(&["--vm", "--cpus", "4", "--vm-kernel", "cfs"]);
        assert!(with.guest.refuse_without_vm(with.vm).is_ok());
        assert_eq!(with.guest.vm_kernel, Some(GuestKernel::Cfs));
    }
}
