//! One attack, run inside one process that moves itself into the attack's cgroup.
//!
//! Order matters for exact accounting. Everything that is not the flood happens first, outside
//! the cgroup: threads are spawned and parked, files opened, the report file mapped. Then the
//! process writes its pid into the cgroup's `cgroup.procs` (that write enters the kernel from
//! outside the cgroup, so it is not counted), the threads are released, and from then on every
//! syscall of ours is tallied. The report goes into a shared mapping of the report file, so
//! writing it issues no syscall; the final `exit_group` is tallied in advance.
//!
//! A collector that can only scope its recording by process id (auditd) needs the worker's pid
//! *after* everything outside the cgroup is done and *before* the flood starts. With a gate
//! file the worker, once in the cgroup, raises a flag in a shared mapping and spins (no
//! syscalls, so nothing is counted or recorded) until the harness raises the other flag.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use libc::{SYS_clone, SYS_close, SYS_exit_group, SYS_openat, SYS_unlinkat, SYS_wait4};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::flood::{FloodKind, FloodSpec, FloodState};
use crate::tally::MAX_SYSCALL_NR;
use crate::{Evade, SyscallTally};

/// Size of the report file the harness creates and the worker maps.
pub const REPORT_BYTES: usize = 64 * 1024;

/// Size of the gate file (see [`WorkerConfig::gate`]): a `u32` the worker sets to 1 at
/// [`GATE_JOINED_OFFSET`] once it is in the cgroup, and a `u32` the harness sets to 1 at
/// [`GATE_GO_OFFSET`] to let the flood start.
pub const GATE_BYTES: usize = 4096;
pub const GATE_JOINED_OFFSET: usize = 0;
pub const GATE_GO_OFFSET: usize = 4;
/// How long the worker waits at the gate before giving up.
const GATE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the worker is told to do.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The flood, or `None` with `cmd` set.
    pub flood: Option<FloodSpec>,
    /// Run this program as the producer instead of a flood (truth then comes from the cgroup).
    pub cmd: Option<Vec<String>>,
    /// Duration cap for `cmd` (the flood carries its own).
    pub duration: Duration,
    /// `cgroup.procs` of the attack's cgroup.
    pub cgroup_procs: PathBuf,
    /// File of [`REPORT_BYTES`] bytes, created by the harness, receiving the JSON report.
    pub report: PathBuf,
    /// Path of the canary file to create and unlink; must not exist.
    pub canary_path: PathBuf,
    /// Directory for the flood's small input file.
    pub scratch_dir: PathBuf,
    /// Nice value for the whole attack, set before any thread starts (threads inherit it).
    pub nice: Option<i32>,
    /// Further `cgroup.procs` files to join first (e.g. a cgroup v1 cpu-quota group); joined
    /// while the process is still outside the counted cgroup, so those writes are not counted.
    pub extra_cgroup_procs: Vec<PathBuf>,
    /// A file of [`GATE_BYTES`] zero bytes, created by the harness: hold at the gate once in
    /// the cgroup, before any thread is released (see the module docs).
    pub gate: Option<PathBuf>,
}

/// When and where the canary happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryRecord {
    pub path: String,
    /// CLOCK_MONOTONIC, comparable with BPF's bpf_ktime_get_ns().
    pub ts_ns: u64,
    /// Whether creating the file succeeded (it is unlinked either way).
    pub created: bool,
}

/// What the worker reports back through the shared mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    pub flood: Option<FloodKind>,
    pub threads: u32,
    /// Every syscall the worker issued inside the cgroup, by number.
    pub syscalls: std::collections::BTreeMap<u32, u64>,
    /// Numbers whose ground truth must equal `syscalls` exactly: `None` means all of them,
    /// an empty list (a `--cmd` producer) means none can be checked.
    pub exact_syscalls: Option<Vec<u32>>,
    pub iterations: u64,
    pub per_thread_iterations: Vec<u64>,
    /// CLOCK_MONOTONIC at release and after the last thread finished.
    pub start_ns: u64,
    pub end_ns: u64,
    pub canary: Option<CanaryRecord>,
    pub cmd_exit_code: Option<i32>,
}

impl AttackReport {
    pub fn flood_secs(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }

    /// Reads a report from the file the worker mapped (JSON, zero-padded).
    pub fn read(path: &std::path::Path) -> io::Result<AttackReport> {
        let bytes = std::fs::read(path)?;
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        if end == 0 {
            return Err(io::Error::other("the attack worker wrote no report"));
        }
        serde_json::from_slice(&bytes[..end]).map_err(io::Error::other)
    }
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // vDSO: no syscall.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Creates and unlinks the canary file, tallying the three syscalls.
fn perform_canary(path: &std::ffi::CStr, tally: &mut SyscallTally) -> CanaryRecord {
    let ts_ns = monotonic_ns();
    let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL | libc::O_CLOEXEC;
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = unsafe { libc::syscall(SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, 0o600) };
    tally.add(SYS_openat);
    // Only our own file is unlinked: one that was there first belongs to someone else.
    if fd >= 0 {
        unsafe { libc::syscall(SYS_close, fd) };
        tally.add(SYS_close);
        unsafe { libc::syscall(SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0) };
        tally.add(SYS_unlinkat);
    }
    CanaryRecord {
        path: path.to_string_lossy().into_owned(),
        ts_ns,
        created: fd >= 0,
    }
}

/// When thread 0 performs the canary: a random point in the middle half of its work.
#[derive(Clone, Copy)]
struct CanaryDue {
    after: Duration,
    after_iterations: Option<u64>,
}

struct ThreadResult {
    tally: SyscallTally,
    iterations: u64,
    canary: Option<CanaryRecord>,
}

/// A shared writable mapping of a file the harness created: the worker talks to the harness
/// through memory, because every syscall it makes inside the cgroup is counted.
struct SharedMapping {
    ptr: *mut u8,
    len: usize,
}

impl SharedMapping {
    fn map(path: &std::path::Path, len: usize, what: &str) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::other(format!(
                "{what} file is smaller than {len} bytes"
            )));
        }
        // SAFETY: a fresh shared mapping of a file we hold open; unmapped at process exit.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

/// The shared mapping of the report file.
struct ReportMapping(SharedMapping);

impl ReportMapping {
    fn map(path: &std::path::Path) -> io::Result<Self> {
        SharedMapping::map(path, REPORT_BYTES, "report").map(Self)
    }

    /// Writes without syscalls; page faults are not syscalls.
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() >= self.0.len {
            return Err(io::Error::other(
                "attack report does not fit the report file",
            ));
        }
        // SAFETY: the mapping is REPORT_BYTES long and only this thread writes it.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.ptr, bytes.len());
            *self.0.ptr.add(bytes.len()) = 0;
        }
        Ok(())
    }
}

/// The shared mapping of the gate file.
struct GateMapping(SharedMapping);

impl GateMapping {
    fn map(path: &std::path::Path) -> io::Result<Self> {
        SharedMapping::map(path, GATE_BYTES, "gate").map(Self)
    }

    fn word(&self, offset: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: offset + 4 <= GATE_BYTES, 4-byte aligned inside a page-aligned mapping that
        // lives until the process exits.
        unsafe { &*(self.0.ptr.add(offset) as *const std::sync::atomic::AtomicU32) }
    }

    /// Says "joined" and spins until the harness says "go". Issues no syscall: the mapping
    /// is read with plain loads and the clock through the vDSO.
    fn hold(&self) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        self.word(GATE_JOINED_OFFSET).store(1, Ordering::Release);
        let deadline = monotonic_ns() + GATE_TIMEOUT.as_nanos() as u64;
        let mut spins = 0u64;
        while self.word(GATE_GO_OFFSET).load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
            spins += 1;
            if spins % (1 << 16) == 0 && monotonic_ns() > deadline {
                return Err(io::Error::other(
                    "the harness did not open the gate within two minutes",
                ));
            }
        }
        Ok(())
    }
}

/// Runs the attack and exits the process. Returns only on a setup error (before the process
/// joined the cgroup), which the caller reports.
pub fn run(config: &WorkerConfig) -> io::Result<std::convert::Infallible> {
    let mapping = ReportMapping::map(&config.report)?;
    let canary_path = std::ffi::CString::new(config.canary_path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("NUL in canary path"))?;
    if let Some(nice) = config.nice {
        // PRIO_PROCESS with 0 is the calling thread on Linux; threads started later inherit.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut extra_procs = config
        .extra_cgroup_procs
        .iter()
        .map(|path| OpenOptions::new().write(true).open(path))
        .collect::<io::Result<Vec<_>>>()?;
    let mut procs = OpenOptions::new().write(true).open(&config.cgroup_procs)?;
    let gate = config.gate.as_deref().map(GateMapping::map).transpose()?;
    let pid_line = format!("{}\n", std::process::id());
    let join_cgroups = || -> io::Result<()> {
        for extra in &mut extra_procs {
            extra.write_all(pid_line.as_bytes())?;
        }
        procs.write_all(pid_line.as_bytes())?;
        match &gate {
            Some(gate) => gate.hold(),
            None => Ok(()),
        }
    };

    let mut report = match (&config.flood, &config.cmd) {
        (Some(spec), None) => {
            let small_file = config.scratch_dir.join("small-file");
            std::fs::write(&small_file, b"provenance\n")?;
            run_flood(spec, &small_file, &canary_path, join_cgroups)?
        }
        (None, Some(cmd)) => run_cmd(cmd, config.duration, &canary_path, join_cgroups)?,
        _ => {
            return Err(io::Error::other(
                "exactly one of a flood and a command is needed",
            ))
        }
    };

    // The exit below is ours too.
    *report.syscalls.entry(SYS_exit_group as u32).or_default() += 1;
    let json = serde_json::to_vec(&report).map_err(io::Error::other)?;
    mapping.write(&json)?;
    // SAFETY: exit_group without running destructors or atexit handlers (no more syscalls).
    unsafe { libc::syscall(SYS_exit_group, 0) };
    unreachable!("exit_group returned")
}

fn run_flood(
    spec: &FloodSpec,
    small_file: &std::path::Path,
    canary_path: &std::ffi::CStr,
    join_cgroup: impl FnOnce() -> io::Result<()>,
) -> io::Result<AttackReport> {
    let threads = spec.threads.max(1);
    let mut rng = rand::thread_rng();
    let fraction = rng.gen_range(0.25..0.75);
    let canary_due = CanaryDue {
        after: spec.duration.mul_f64(fraction),
        after_iterations: spec
            .count
            .map(|count| ((count / threads as u64) as f64 * fraction) as u64),
    };
    let hogs = match spec.evade {
        Evade::Hogs { threads } => threads,
        _ => 0,
    };
    // Parked threads: `ready` once all exist, `go` after the process joined the cgroup.
    let parked = (threads + hogs) as usize + 1;
    let ready = Arc::new(Barrier::new(parked));
    let go = Arc::new(Barrier::new(parked));
    let mut hog_handles = Vec::with_capacity(hogs as usize);
    for index in 0..hogs {
        let (ready, go) = (ready.clone(), go.clone());
        let duration = spec.duration;
        let handle = std::thread::Builder::new()
            .name(format!("hog-{index}"))
            .spawn(move || {
                ready.wait();
                go.wait();
                spin_for(duration);
            })?;
        hog_handles.push(handle);
    }
    let mut handles = Vec::with_capacity(threads as usize);
    for index in 0..threads {
        let state = FloodState::new(spec.kind, small_file)?;
        let evade = match spec.evade {
            Evade::Spread { iterations } => ThreadEvade::Spread {
                iterations,
                area: SpreadArea::new()?,
                child_tally: SyscallTally::default(),
            },
            Evade::Spin { us } => ThreadEvade::Spin(Duration::from_micros(us.into())),
            Evade::None | Evade::Hogs { .. } => ThreadEvade::None,
        };
        let share = spec.count.map(|count| {
            count / threads as u64 + u64::from((index as u64) < count % threads as u64)
        });
        let pace = spec
            .rate_per_s
            .filter(|rate| *rate > 0)
            .map(|rate| Duration::from_secs_f64(threads as f64 / rate as f64));
        let canary = (index == 0).then(|| (canary_path.to_owned(), canary_due));
        let (ready, go) = (ready.clone(), go.clone());
        let duration = spec.duration;
        let handle = std::thread::Builder::new()
            .name(format!("flood-{index}"))
            .spawn(move || {
                ready.wait();
                go.wait();
                flood_thread(state, evade, duration, share, pace, canary)
            })?;
        handles.push(handle);
    }
    ready.wait();
    join_cgroup()?;
    let start_ns = monotonic_ns();
    go.wait();

    let mut tally = SyscallTally::default();
    let mut per_thread_iterations = Vec::with_capacity(handles.len());
    let mut canary = None;
    for handle in handles {
        let result = handle
            .join()
            .map_err(|_| io::Error::other("a flood thread panicked"))?;
        tally.merge(&result.tally);
        per_thread_iterations.push(result.iterations);
        canary = canary.or(result.canary);
    }
    for handle in hog_handles {
        handle
            .join()
            .map_err(|_| io::Error::other("a hog thread panicked"))?;
    }
    let end_ns = monotonic_ns();
    Ok(AttackReport {
        flood: Some(spec.kind),
        threads,
        syscalls: tally.to_map(),
        exact_syscalls: spec.kind.exact_syscalls().map(|nrs| nrs.to_vec()),
        iterations: per_thread_iterations.iter().sum(),
        per_thread_iterations,
        start_ns,
        end_ns,
        canary,
        cmd_exit_code: None,
    })
}

/// A flood thread's part of its [`Evade`].
enum ThreadEvade {
    None,
    Spin(Duration),
    Spread {
        iterations: u32,
        area: SpreadArea,
        /// The child's tally, allocated before the flood (a child of a threaded process must
        /// not allocate: another thread may have held the allocator's lock at the clone).
        child_tally: SyscallTally,
    },
}

/// Spins on the CPU (no syscalls: `Instant::now` is a vDSO call) for `duration`.
fn spin_for(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// A page shared with a spread evader's children, where each leaves its syscall counts and
/// iterations before it exits. Mapped before the flood and never unmapped: `munmap` would be
/// a syscall in the cgroup, and the worker exits right after the flood.
struct SpreadArea {
    counts: *mut [u64; MAX_SYSCALL_NR],
    iterations: *mut u64,
}

// The mapping is only used by the thread that owns the area (and its children).
unsafe impl Send for SpreadArea {}

impl SpreadArea {
    fn new() -> io::Result<SpreadArea> {
        let bytes = std::mem::size_of::<[u64; MAX_SYSCALL_NR]>() + 8;
        // SAFETY: a fresh anonymous mapping, checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let counts = base.cast::<[u64; MAX_SYSCALL_NR]>();
        // SAFETY: the iterations slot follows the counts inside the mapping.
        let iterations = unsafe { counts.add(1).cast::<u64>() };
        Ok(SpreadArea { counts, iterations })
    }
}

/// One short-lived process of a spread evader: a raw `clone` whose child runs up to `batch`
/// iterations (fewer if the flood's time is up), leaves its counts in `area` and exits; the
/// parent waits for it and adds them. Returns the child's iterations.
fn spread_batch(
    state: &mut FloodState,
    batch: u64,
    start: Instant,
    duration: Duration,
    area: &SpreadArea,
    child_tally: &mut SyscallTally,
    tally: &mut SyscallTally,
) -> u64 {
    child_tally.clear();
    // SAFETY: the child only runs the flood's raw syscalls and writes the shared page; it
    // takes no lock and allocates nothing.
    unsafe {
        let pid = libc::syscall(SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
        tally.add(SYS_clone);
        if pid == 0 {
            let mut done = 0;
            while done < batch && start.elapsed() < duration {
                state.iterate(child_tally);
                done += 1;
            }
            area.counts.write_volatile(*child_tally.counts());
            area.iterations.write_volatile(done);
            libc::syscall(SYS_exit_group, 0);
            unreachable!("exit_group returned");
        }
        if pid < 0 {
            return 0;
        }
        let mut status = 0;
        libc::syscall(SYS_wait4, pid, &mut status as *mut libc::c_int, 0, 0);
        tally.add(SYS_wait4);
        tally.add(SYS_exit_group);
        tally.add_counts(&area.counts.read_volatile());
        area.iterations.read_volatile()
    }
}

fn flood_thread(
    mut state: FloodState,
    mut evade: ThreadEvade,
    duration: Duration,
    share: Option<u64>,
    pace: Option<Duration>,
    mut canary: Option<(std::ffi::CString, CanaryDue)>,
) -> ThreadResult {
    let mut tally = SyscallTally::default();
    let mut iterations = 0u64;
    let mut canary_record = None;
    let start = Instant::now();
    loop {
        if share.is_some_and(|max| iterations >= max) {
            break;
        }
        // Instant::now() is a vDSO call, not a syscall.
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        if let Some((path, due)) = &canary {
            let by_count = due.after_iterations.is_some_and(|at| iterations >= at);
            if elapsed >= due.after || by_count {
                canary_record = Some(perform_canary(path, &mut tally));
                canary = None;
            }
        }
        match &mut evade {
            ThreadEvade::None => {
                state.iterate(&mut tally);
                iterations += 1;
            }
            ThreadEvade::Spin(spin) => {
                state.iterate(&mut tally);
                iterations += 1;
                spin_for(*spin);
            }
            ThreadEvade::Spread {
                iterations: per_child,
                area,
                child_tally,
            } => {
                let batch = share.map_or(u64::from(*per_child), |max| {
                    (max - iterations).min(u64::from(*per_child))
                });
                iterations += spread_batch(
                    &mut state,
                    batch,
                    start,
                    duration,
                    area,
                    child_tally,
                    &mut tally,
                );
            }
        }
        if let Some(pace) = pace {
            // Never past the flood's end: a pace longer than the flood (`--rate 1 --threads 4`
            // paces each thread at 4 s) would otherwise stretch a 1 s flood to 4 s.
            let on_schedule = pace.mul_f64(iterations as f64).min(duration);
            let elapsed = start.elapsed();
            if on_schedule > elapsed {
                std::thread::sleep(on_schedule - elapsed);
            }
        }
    }
    // A flood shorter than the canary's moment still performs it, at its end.
    if let Some((path, _)) = canary {
        canary_record = Some(perform_canary(&path, &mut tally));
    }
    state.close(&mut tally);
    ThreadResult {
        tally,
        iterations,
        canary: canary_record,
    }
}

fn run_cmd(
    cmd: &[String],
    duration: Duration,
    canary_path: &std::ffi::CStr,
    join_cgroup: impl FnOnce() -> io::Result<()>,
) -> io::Result<AttackReport> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| io::Error::other("--cmd needs a program"))?;
    join_cgroup()?;
    let start_ns = monotonic_ns();
    let start = Instant::now();
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|err| {
            io::Error::other(format!("cannot start --cmd program '{program}': {err}"))
        })?;
    let canary_after = duration.mul_f64(rand::thread_rng().gen_range(0.25..0.75));
    let mut tally = SyscallTally::default();
    let mut canary = None;
    let exit_code = loop {
        if canary.is_none() && start.elapsed() >= canary_after {
            canary = Some(perform_canary(canary_path, &mut tally));
        }
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if start.elapsed() >= duration {
            let _ = child.kill();
            break child.wait()?.code();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if canary.is_none() {
        canary = Some(perform_canary(canary_path, &mut tally));
    }
    Ok(AttackReport {
        flood: None,
        threads: 1,
        syscalls: tally.to_map(),
        exact_syscalls: Some(Vec::new()),
        iterations: 0,
        per_thread_iterations: Vec::new(),
        start_ns,
        end_ns: monotonic_ns(),
        canary,
        cmd_exit_code: exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_longer_than_the_flood_ends_with_the_flood() {
        let state = FloodState::new(FloodKind::Openat, std::path::Path::new("/dev/null")).unwrap();
        let start = Instant::now();
        let result = flood_thread(
            state,
            ThreadEvade::None,
            Duration::from_millis(100),
            None,
            Some(Duration::from_secs(60)),
            None,
        );
        // One iteration, then the sleep stops at the flood's end, not a minute later (the
        // margin is for a loaded machine).
        assert_eq!(result.iterations, 1);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_spread_evader_tallies_its_children_exactly() {
        let state = FloodState::new(FloodKind::Openat, std::path::Path::new("/dev/null")).unwrap();
        let evade = ThreadEvade::Spread {
            iterations: 5,
            area: SpreadArea::new().unwrap(),
            child_tally: SyscallTally::default(),
        };
        let result = flood_thread(state, evade, Duration::from_secs(60), Some(23), None, None);
        assert_eq!(result.iterations, 23);
        let t = &result.tally;
        assert_eq!((t.get(SYS_openat), t.get(libc::SYS_close)), (23, 23));
        // 23 iterations in children of 5: five children, each cloned, waited for and exited.
        assert_eq!(t.get(SYS_clone), 5);
        assert_eq!(t.get(SYS_wait4), 5);
        assert_eq!(t.get(SYS_exit_group), 5);
        assert_eq!(t.total(), 23 * 2 + 5 * 3);
    }

    #[test]
    fn a_spinning_evader_spins_between_iterations() {
        let state = FloodState::new(FloodKind::Openat, std::path::Path::new("/dev/null")).unwrap();
        let evade = ThreadEvade::Spin(Duration::from_millis(2));
        let result = flood_thread(state, evade, Duration::from_millis(50), None, None, None);
        // Each iteration is followed by 2 ms of spinning: at most 25 fit in 50 ms, however
        // fast or loaded the machine.
        assert!(
            (1..=25).contains(&result.iterations),
            "{}",
            result.iterations
        );
        assert_eq!(result.tally.get(SYS_openat), result.iterations);
    }
}
