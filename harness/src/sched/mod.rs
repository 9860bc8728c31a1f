//! CPU schedulers a trial can run under.
//!
//! - `eevdf` / `cfs`: no sched_ext scheduler loaded; the kernel's fair class. Valid only on a
//!   kernel whose fair class it is (EEVDF replaced CFS in Linux 6.6).
//! - `eevdf:VARIANT` / `cfs:VARIANT`: the fair class plus the baseline a user tries first
//!   ([`policy::FairVariant`]): the collector at SCHED_FIFO or nice -20, the attack at nice 19,
//!   under a CPU quota, or frozen while the collector's ring is full ([`freeze`]).
//! - `scx_rustland`, `aegis`, `scx:PATH`: a sched_ext scheduler binary ([`scx`]), started per
//!   trial and confirmed through `/sys/kernel/sched_ext`.

pub mod aegis;
pub mod freeze;
pub mod policy;
pub mod scx;

use std::path::PathBuf;

use crate::error::InputError;
use crate::measure::kernel;
pub use policy::FairVariant;

/// A validated scheduler choice.
#[derive(Clone, Debug, PartialEq)]
pub enum SchedulerSpec {
    /// The fair class, optionally with a baseline policy variant.
    Fair {
        class: &'static str,
        variant: Option<FairVariant>,
    },
    /// A sched_ext scheduler binary.
    SchedExt { name: String, binary: PathBuf },
}

impl SchedulerSpec {
    /// The name as given on the command line and recorded in trials.
    pub fn name(&self) -> String {
        match self {
            SchedulerSpec::Fair {
                class,
                variant: None,
            } => class.to_string(),
            SchedulerSpec::Fair {
                class,
                variant: Some(variant),
            } => format!("{class}:{}", variant.name()),
            SchedulerSpec::SchedExt { name, .. } => name.clone(),
        }
    }

    pub fn variant(&self) -> Option<FairVariant> {
        match self {
            SchedulerSpec::Fair { variant, .. } => *variant,
            SchedulerSpec::SchedExt { .. } => None,
        }
    }
}

/// Directories searched for sched_ext scheduler binaries: `$AEGIS_TOOLS_DIR/bin`, the project's
/// `tools/bin` (installed by `make tools`) next to the build tree, the directory of this
/// binary, then `PATH`.
pub fn tool_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("AEGIS_TOOLS_DIR") {
        dirs.push(PathBuf::from(dir).join("bin"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(exe_dir) = exe.parent() {
            // target/{debug,release}/aegis-bench -> <repo>/tools/bin
            if let Some(repo) = exe_dir.parent().and_then(|target| target.parent()) {
                dirs.push(repo.join("tools/bin"));
            }
            dirs.push(exe_dir.to_path_buf());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Finds a scheduler binary by file name.
pub fn find_tool(file_name: &str) -> Option<PathBuf> {
    tool_dirs()
        .into_iter()
        .map(|dir| dir.join(file_name))
        .find(|path| path.is_file())
}

/// Where the named scheduler binary is, or why it is not there.
fn sched_ext_binary(name: &str) -> Result<PathBuf, InputError> {
    let (file_name, fix) = match name {
        "scx_rustland" => (
            "scx_rustland",
            "install it with `make tools` (cargo install scx_rustland 1.1.4 into tools/)",
        ),
        "aegis" => (
            "scx_aegis",
            "build it with `cargo build --release -p scx_aegis` (or `make build`); it is looked for next to aegis-bench and in tools/bin",
        ),
        _ => unreachable!("only named sched_ext schedulers"),
    };
    find_tool(file_name).ok_or_else(|| {
        InputError(format!(
            "scheduler '{name}' needs the {file_name} binary, which is not installed: {fix}"
        ))
    })
}

/// What a kernel offers to schedulers: this host's, or a guest's (checked before booting it).
#[derive(Clone, Debug, PartialEq)]
pub struct KernelFacts {
    /// How error messages name the kernel.
    pub name: String,
    pub fair_class: &'static str,
    pub sched_ext: bool,
    /// The `--vm-kernel` that runs in a guest when this kernel cannot, for error messages.
    pub in_guest: bool,
}

impl KernelFacts {
    pub fn host() -> Self {
        let release = kernel::release();
        KernelFacts {
            fair_class: kernel::fair_class_of(&release),
            name: format!("this kernel ({release})"),
            sched_ext: kernel::has_sched_ext(),
            in_guest: false,
        }
    }

    /// For tests and callers that only know a release string.
    pub fn of_release(release: &str, sched_ext: bool) -> Self {
        KernelFacts {
            fair_class: kernel::fair_class_of(release),
            name: format!("this kernel ({release})"),
            sched_ext,
            in_guest: false,
        }
    }
}

/// Checks a scheduler name against what a kernel runs. sched_ext binaries are looked up on
/// this machine (a guest gets them copied in).
pub fn parse(name: &str, facts: &KernelFacts) -> Result<SchedulerSpec, InputError> {
    let fair = facts.fair_class;
    let wrong_fair_class = |class: &str| {
        let fix = if facts.in_guest {
            format!(
                "use --vm-kernel {}",
                if class == "cfs" { "cfs" } else { "sched-ext" }
            )
        } else {
            format!(
                "run it in a guest with `--vm --vm-kernel {}`",
                if class == "cfs" { "cfs" } else { "sched-ext" }
            )
        };
        InputError(format!(
            "{} runs {fair}, not {class}: {class} needs a kernel {}; {fix}",
            facts.name,
            if class == "cfs" {
                "older than 6.6"
            } else {
                "6.6 or newer"
            },
        ))
    };
    let (class, variant) = match name.split_once(':') {
        Some((class @ ("eevdf" | "cfs"), variant)) => (class, Some(variant)),
        None if name == "eevdf" || name == "cfs" => (name, None),
        _ => ("", None),
    };
    if !class.is_empty() {
        if class != fair {
            return Err(wrong_fair_class(class));
        }
        let variant = variant.map(FairVariant::parse).transpose()?;
        return Ok(SchedulerSpec::Fair {
            class: fair,
            variant,
        });
    }
    let needs_sched_ext = || -> Result<(), InputError> {
        if facts.sched_ext {
            Ok(())
        } else if facts.in_guest {
            Err(InputError(format!(
                "scheduler '{name}' needs sched_ext, which {} lacks; use --vm-kernel sched-ext",
                facts.name
            )))
        } else {
            Err(InputError(format!(
                "scheduler '{name}' needs sched_ext, which {} lacks (no /sys/kernel/sched_ext); \
                 run it in a sched_ext guest with `--vm`",
                facts.name
            )))
        }
    };
    match name {
        "scx_rustland" | "aegis" => {
            needs_sched_ext()?;
            Ok(SchedulerSpec::SchedExt {
                name: name.to_string(),
                binary: sched_ext_binary(name)?,
            })
        }
        _ if name.starts_with("scx:") => {
            needs_sched_ext()?;
            let binary = PathBuf::from(&name[4..]);
            if !binary.is_file() {
                return Err(InputError(format!(
                    "scheduler binary {} does not exist; give the path of a sched_ext scheduler, e.g. scx:/usr/bin/scx_simple",
                    binary.display()
                )));
            }
            Ok(SchedulerSpec::SchedExt {
                name: name.to_string(),
                binary,
            })
        }
        other => Err(InputError(format!(
            "unknown scheduler '{other}'; choose {fair}, {fair}:collector-fifo, \
             {fair}:collector-nice, {fair}:attack-nice, {fair}:attack-quota, \
             {fair}:freeze-on-fill, scx_rustland, aegis or scx:PATH"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_class_and_variants() {
        assert_eq!(
            parse("eevdf", &KernelFacts::of_release("6.18.1", false)).unwrap(),
            SchedulerSpec::Fair {
                class: "eevdf",
                variant: None
            }
        );
        let fifo = parse(
            "eevdf:collector-fifo",
            &KernelFacts::of_release("6.18.1", false),
        )
        .unwrap();
        assert_eq!(fifo.name(), "eevdf:collector-fifo");
        assert_eq!(fifo.variant(), Some(FairVariant::CollectorFifo));
        assert_eq!(
            parse("cfs:attack-nice", &KernelFacts::of_release("6.1.0", false))
                .unwrap()
                .name(),
            "cfs:attack-nice"
        );
    }

    #[test]
    fn wrong_fair_class_names_the_guest_kernel() {
        let err = parse("cfs", &KernelFacts::of_release("6.18.1", false))
            .unwrap_err()
            .0;
        assert!(err.contains("--vm --vm-kernel cfs"), "{err}");
        let err = parse(
            "eevdf:collector-fifo",
            &KernelFacts::of_release("6.1.0", false),
        )
        .unwrap_err()
        .0;
        assert!(err.contains("runs cfs, not eevdf"), "{err}");
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let err = parse("eevdf:turbo", &KernelFacts::of_release("6.18.1", false))
            .unwrap_err()
            .0;
        assert!(err.contains("collector-fifo"), "{err}");
        let err = parse("bfs", &KernelFacts::of_release("6.18.1", false))
            .unwrap_err()
            .0;
        assert!(err.contains("scx_rustland"), "{err}");
    }
}
