//! Boots QEMU under TCG and watches it until the guest powers off, the timeout passes or a
//! signal arrives.
//!
//! Wiring (all of it checked by `tests/vm.rs`):
//! - ttyS0, the console: QEMU's stdout, printed line by line on our stderr once `/init` says
//!   `AEGIS-GUEST-START` (earlier lines, firmware and kernel, are only shown when the guest
//!   never gets that far);
//! - virtio-serial ports `aegis.stdout` and `aegis.stderr`: unix sockets QEMU connects to at
//!   start, copied to our stdout and stderr as the guest command writes;
//! - virtio-serial port `aegis.results`: a host file, the tar `/init` sends at the end.
//!
//! QEMU runs in its own process group (a Ctrl-C reaches only us, and we stop it), with
//! `PR_SET_PDEATHSIG` so that it dies with us even after a SIGKILL, and inside a guard that
//! kills it on every way out of [`boot`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::kernel::KernelImage;
use crate::error::{InputError, Interrupted};

pub const QEMU: &str = "qemu-system-x86_64";
/// A firmware that boots `-kernel` directly and prints nothing; SeaBIOS (the fallback) is
/// slower and writes escape sequences to the console.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";
const START_MARKER: &str = "AEGIS-GUEST-START";
const EXIT_MARKER: &str = "AEGIS-GUEST-EXIT";
const POLL: Duration = Duration::from_millis(20);

pub struct Boot<'a> {
    pub kernel: &'a KernelImage,
    pub initrd: &'a Path,
    pub cpus: u32,
    pub mem_bytes: u64,
    pub timeout: Duration,
    /// How the user gives the guest more time, for the timeout error.
    pub timeout_hint: &'a str,
    /// A private directory for the sockets and the results file.
    pub run_dir: &'a Path,
    /// The Debian root disk ([`super::rootfs`]), opened as a snapshot so it never changes.
    pub root_disk: Option<&'a Path>,
}

pub struct Outcome {
    /// The tar the guest sent (empty if it sent none).
    pub results: PathBuf,
    /// From QEMU's start to its exit.
    pub elapsed: Duration,
    /// From QEMU's start to `/init` running, if it got there.
    pub booted_after: Option<Duration>,
}

/// The `qemu-system-x86_64` in PATH.
pub fn find_qemu() -> Result<PathBuf, InputError> {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(QEMU))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            InputError(format!(
                "{QEMU} is not installed: `make setup` installs qemu-system-x86 from \
                 bookworm-backports"
            ))
        })
}

/// `QEMU version 9.2.0 (Debian ...)`'s version, or `None` if QEMU does not say.
pub fn version() -> Option<String> {
    let out = std::process::Command::new(find_qemu().ok()?)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    Some(
        line.trim_start_matches("QEMU emulator version")
            .trim()
            .to_string(),
    )
}

/// The QEMU command line (without the program).
pub fn qemu_args(boot: &Boot<'_>, sockets: &[(&str, &Path)], results: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        // /dev/kvm on these machines is PVM, not hardware virtualisation: TCG only.
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
        "-nodefaults",
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "stdio",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "-name".to_string(),
        format!("aegis-bench-guest-{}", std::process::id()),
        "-m".to_string(),
        format!("{}M", boot.mem_bytes >> 20),
        "-smp".to_string(),
        boot.cpus.to_string(),
        "-kernel".to_string(),
        boot.kernel.vmlinuz.display().to_string(),
        "-initrd".to_string(),
        boot.initrd.display().to_string(),
        "-append".to_string(),
        "console=ttyS0 panic=-1 quiet".to_string(),
    ]);
    if Path::new(QBOOT).is_file() {
        args.extend(["-bios".to_string(), QBOOT.to_string()]);
    }
    if let Some(disk) = boot.root_disk {
        // snapshot=on: the guest's writes go to a temporary overlay QEMU deletes at exit.
        args.extend([
            "-drive".to_string(),
            format!(
                "file={},if=virtio,format=raw,snapshot=on,cache=unsafe",
                disk.display().to_string().replace(',', ",,")
            ),
        ]);
    }
    args.extend([
        "-device".to_string(),
        "virtio-serial-pci,id=ports".to_string(),
    ]);
    let mut ports: Vec<(String, String)> = sockets
        .iter()
        .map(|(name, path)| {
            (
                name.to_string(),
                format!("socket,id={name},path={}", path.display()),
            )
        })
        .collect();
    ports.push((
        "results".to_string(),
        format!("file,id=results,path={}", results.display()),
    ));
    for (name, chardev) in ports {
        args.extend([
            "-chardev".to_string(),
            chardev,
            "-device".to_string(),
            format!("virtserialport,bus=ports.0,chardev={name},name=aegis.{name}"),
        ]);
    }
    args
}

/// Kills QEMU when dropped, whatever the way out.
struct QemuGuard(Child);

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What the console reader learned.
#[derive(Default)]
struct Console {
    started_at: Option<Instant>,
    /// `/init` is done: the rest is the kernel powering off.
    finished: bool,
    /// Lines before `/init` started, shown only if it never did.
    early: Vec<String>,
}

fn read_console(out: impl Read, console: Arc<Mutex<Console>>) {
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        let mut console = console.lock().unwrap_or_else(|e| e.into_inner());
        if text.contains(START_MARKER) {
            console.started_at.get_or_insert_with(Instant::now);
        } else if text.contains(EXIT_MARKER) {
            // The status travels in the results tar. What follows is the kernel powering off.
            console.finished = true;
        } else if console.finished {
        } else if console.started_at.is_some() {
            crate::say!("{text}");
        } else {
            console.early.push(text.to_string());
        }
    }
}

/// Copies what the guest writes on a port socket to `sink`, as it arrives.
fn forward(listener: UnixListener, mut sink: impl Write) {
    let Ok((mut stream, _)) = listener.accept() else {
        return;
    };
    drop(listener);
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // A closed stdout on our side (`| head`) must not stop QEMU's writes.
                let _ = sink.write_all(&buf[..n]);
                let _ = sink.flush();
            }
        }
    }
}

/// The guest command's stdout and stderr ports: unix sockets QEMU connects to, each copied to
/// ours by a thread.
struct Ports(Vec<(&'static str, PathBuf, JoinHandle<()>)>);

impl Ports {
    /// Binds the sockets in `run_dir` and starts copying what arrives on them.
    fn listen(run_dir: &Path) -> Result<Ports> {
        let mut ports = Vec::new();
        for name in ["stdout", "stderr"] {
            let path = run_dir.join(format!("{name}.sock"));
            let listener =
                UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
            let handle = if name == "stdout" {
                std::thread::spawn(move || forward(listener, std::io::stdout()))
            } else {
                std::thread::spawn(move || forward(listener, std::io::stderr()))
            };
            ports.push((name, path, handle));
        }
        Ok(Ports(ports))
    }

    fn sockets(&self) -> Vec<(&str, &Path)> {
        self.0
            .iter()
            .map(|(name, path, _)| (*name, path.as_path()))
            .collect()
    }

    /// Waits for the copying to end. A socket QEMU never connected to is still waiting in
    /// accept(); a connection of our own releases it.
    fn join(self) {
        for (_, path, handle) in self.0 {
            let _ = UnixStream::connect(&path);
            let _ = handle.join();
        }
    }
}

/// The QEMU command: in its own process group, and killed when we die.
fn command(qemu: &Path, args: &[String]) -> Command {
    let mut command = Command::new(qemu);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // PR_SET_PDEATHSIG fires when the spawning *thread* exits: this is the main thread.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // We died between fork and prctl: nobody would ever kill this QEMU.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "aegis-bench exited while starting QEMU",
                ));
            }
            Ok(())
        });
    }
    command
}

/// Starts the threads that read QEMU's console (its stdout) into `console`, and its stderr.
fn read_outputs(
    guard: &mut QemuGuard,
    console: &Arc<Mutex<Console>>,
) -> Result<(JoinHandle<()>, JoinHandle<String>)> {
    let console_thread = {
        let out = guard.0.stdout.take().context("QEMU's stdout")?;
        let console = console.clone();
        std::thread::spawn(move || read_console(out, console))
    };
    let stderr_thread = {
        let mut err = guard.0.stderr.take().context("QEMU's stderr")?;
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })
    };
    Ok((console_thread, stderr_thread))
}

/// Boots the guest and waits for it to power off.
pub fn boot(boot: &Boot<'_>) -> Result<Outcome> {
    let qemu = find_qemu()?;
    let results = boot.run_dir.join("results.tar");
    let ports = Ports::listen(boot.run_dir)?;
    let args = qemu_args(boot, &ports.sockets(), &results);

    crate::say!(
        "vm: booting {} ({}) under QEMU TCG: {} CPUs, {} MiB, timeout {} s",
        boot.kernel.package,
        boot.kernel.release,
        boot.cpus,
        boot.mem_bytes >> 20,
        boot.timeout.as_secs()
    );
    let mut command = command(&qemu, &args);
    let started = Instant::now();
    let mut guard = QemuGuard(
        command
            .spawn()
            .with_context(|| format!("starting {}", qemu.display()))?,
    );
    let console = Arc::new(Mutex::new(Console::default()));
    let (console_thread, stderr_thread) = read_outputs(&mut guard, &console)?;

    let booting = || {
        let console = console.lock().unwrap_or_else(|e| e.into_inner());
        console.started_at.is_none()
    };
    let status = wait(&mut guard, started, boot, booting);
    let elapsed = started.elapsed();
    // QEMU is gone (or killed): let the readers finish.
    drop(guard);
    let _ = console_thread.join();
    let qemu_stderr = stderr_thread.join().unwrap_or_default();
    ports.join();
    let console = std::mem::take(&mut *console.lock().unwrap_or_else(|e| e.into_inner()));
    let booted_after = console.started_at.map(|t| t.duration_since(started));

    if booted_after.is_none() {
        for line in &console.early {
            crate::say!("{line}");
        }
    }
    let status = status?;
    if !results.metadata().is_ok_and(|m| m.len() > 0) {
        return Err(no_results(
            boot,
            status,
            elapsed,
            booted_after,
            &qemu_stderr,
        ));
    }
    Ok(Outcome {
        results,
        elapsed,
        booted_after,
    })
}

/// Why the guest sent no results.
fn no_results(
    boot: &Boot<'_>,
    status: ExitStatus,
    elapsed: Duration,
    booted_after: Option<Duration>,
    qemu_stderr: &str,
) -> anyhow::Error {
    let qemu_said = qemu_stderr.trim();
    if !status.success() {
        return anyhow!(
            "QEMU failed ({status}) after {:.1} s{}",
            elapsed.as_secs_f64(),
            if qemu_said.is_empty() {
                String::new()
            } else {
                format!(": {}", qemu_said.lines().last().unwrap_or(qemu_said))
            }
        );
    }
    if booted_after.is_none() {
        return anyhow!(
            "the guest powered off before /init started (kernel output above); the kernel \
             {} may not boot under TCG",
            boot.kernel.package
        );
    }
    anyhow!("the guest powered off without sending its results (guest console above)")
}

/// Waits for QEMU to exit; kills it on timeout or signal.
fn wait(
    guard: &mut QemuGuard,
    started: Instant,
    boot: &Boot<'_>,
    booting: impl Fn() -> bool,
) -> Result<ExitStatus> {
    loop {
        if let Some(status) = guard.0.try_wait().context("waiting for QEMU")? {
            return Ok(status);
        }
        if let Some(signal) = crate::signals::received() {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            return Err(Interrupted(signal).into());
        }
        if started.elapsed() > boot.timeout {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            bail!(
                "the guest did not finish within its {} s timeout ({}), so QEMU was killed; TCG \
                 runs slowly and swings 3x with host load: {}",
                boot.timeout.as_secs(),
                if booting() {
                    "the kernel was still booting"
                } else {
                    "the command was still running"
                },
                boot.timeout_hint
            );
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::kernel::GuestKernel;

    #[test]
    fn command_line_uses_tcg_and_three_ports() {
        let kernel = KernelImage {
            kind: GuestKernel::SchedExt,
            package: "linux-image-x".into(),
            release: "6.18".into(),
            vmlinuz: "/cache/vmlinuz".into(),
            config: "/cache/config".into(),
            missing_modules: Vec::new(),
            modules: Vec::new(),
        };
        let boot = Boot {
            kernel: &kernel,
            initrd: Path::new("/run/initrd.img"),
            cpus: 2,
            mem_bytes: 2 << 30,
            timeout: Duration::from_secs(5),
            timeout_hint: "",
            run_dir: Path::new("/run"),
            root_disk: None,
        };
        let args = qemu_args(
            &boot,
            &[
                ("stdout", Path::new("/run/o.sock")),
                ("stderr", Path::new("/run/e.sock")),
            ],
            Path::new("/run/results.tar"),
        )
        .join(" ");
        assert!(args.contains("-accel tcg,thread=multi -cpu max"), "{args}");
        assert!(args.contains("-m 2048M -smp 2"), "{args}");
        assert!(
            args.contains("-kernel /cache/vmlinuz -initrd /run/initrd.img"),
            "{args}"
        );
        assert!(
            args.contains("-append console=ttyS0 panic=-1 quiet"),
            "{args}"
        );
        assert!(!args.contains("enable-kvm"), "{args}");
        assert!(!args.contains("-drive"), "{args}");
        let with_disk = Boot {
            root_disk: Some(Path::new("/cache/rootfs/a,b.img")),
            ..boot
        };
        let disk_args = qemu_args(&with_disk, &[], Path::new("/run/results.tar")).join(" ");
        assert!(
            disk_args
                .contains("-drive file=/cache/rootfs/a,,b.img,if=virtio,format=raw,snapshot=on"),
            "{disk_args}"
        );
        for name in ["stdout", "stderr", "results"] {
            assert!(
                args.contains(&format!("chardev={name},name=aegis.{name}")),
                "{args}"
            );
        }
        assert!(
            args.contains("file,id=results,path=/run/results.tar"),
            "{args}"
        );
        assert!(args.contains("socket,id=stdout,path=/run/o.sock"), "{args}");
    }
}
