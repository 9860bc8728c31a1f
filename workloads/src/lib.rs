//! Standard workloads run beside an attack, or alone for the no-attack overhead. Each one wraps
//! a real benchmark tool packaged by Debian, runs it as a child process and parses its output
//! into a [`WorkloadResult`]: wall-clock runtime, throughput and, where the tool reports them,
//! latency percentiles.
//!
//! | module | tool (Debian package) | measures | why it is here |
//! | --- | --- | --- | --- |
//! | [`stress_ng`] | `stress-ng` (stress-ng) | CPU bogo ops/s of N `--cpu` workers | pure CPU demand: how much compute a scheduler leaves to ordinary tasks while a collector and an attack compete for the CPUs |
//! | [`hackbench`] | `hackbench` (rt-tests) | time for groups of processes to pass messages over socket pairs | wakeup-heavy, many short-lived runnable tasks: stresses the scheduler's wakeup and placement paths |
//! | [`sysbench`] | `sysbench` (sysbench) | CPU events/s and per-event latency p50/p99 | steady CPU throughput plus the latency tail of equal-weight threads |
//! | [`nginx_wrk`] | `nginx` (nginx-light) + `wrk` (wrk) | HTTP requests/s and latency p50/p99 against a private nginx on 127.0.0.1 | a syscall-heavy server (accept/read/write/epoll): exactly the events a provenance collector traces |
//! | [`redis`] | `redis-server` (redis-server) + `redis-benchmark` (redis-tools) | requests/s and latency p50/p99 against a private redis on 127.0.0.1 | a latency-sensitive single-threaded server, sensitive to run delay |
//! | [`compile`] | `make` (make) + `gcc` (gcc) | time to build a multi-file C project with `make -j` | the classic mixed workload: many fork/exec/open calls and CPU-bound compiler processes |
//!
//! Every wrapper first checks its tools ([`Workload::check_available`]); a missing tool is an
//! [`Unavailable`] error naming the package to install (`scripts/setup.sh` installs them all).
//! Servers (nginx, redis) listen on 127.0.0.1 only, on a free port, with their configuration and
//! data in a private temporary directory, and are always stopped: also on errors, timeouts and
//! panics (they are held by a guard that terminates them on drop).
//!
//! How much a workload does is an [`Amount`]: a duration (the tool runs for that long, or its
//! fixed-size unit of work is repeated until that long has passed) or a size (a fixed amount of
//! work, for runtime comparisons between schedulers). Every child process is bounded in time.

use std::fs::File;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod compile;
pub mod hackbench;
pub mod nginx_wrk;
pub mod redis;
pub mod stress_ng;
pub mod sysbench;

/// How much work a workload does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Amount {
    /// Run for about this long: time-bounded tools run for it, size-bounded tools repeat their
    /// configured unit of work until it has passed (always at least once).
    Duration(Duration),
    /// A fixed amount of work, in the workload's own unit (bogo ops, loops, requests, builds,
    /// events; see each module). Not every workload supports it.
    Size(u64),
}

/// The outcome of one workload run. Units are in the field names; throughput carries its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// The workload's [`Workload::name`].
    pub name: String,
    /// Wall-clock time of the measured part of the run, in seconds.
    pub runtime_s: f64,
    /// Throughput and its unit, e.g. `(2361.2, "bogo ops/s")`.
    pub throughput: Option<(f64, String)>,
    /// Median latency of one operation, in microseconds.
    pub latency_p50_us: Option<f64>,
    /// 99th-percentile latency of one operation, in microseconds.
    pub latency_p99_us: Option<f64>,
    /// The exact command lines run and the tool's key output lines.
    pub summary: String,
}

/// A tool a workload needs is not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tool} not installed: apt-get install {package}")]
pub struct Unavailable {
    /// The executable that was not found.
    pub tool: String,
    /// The Debian package that ships it.
    pub package: String,
}

/// Why a workload run failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{tool} failed ({status}); output:\n{output}")]
    Failed {
        tool: String,
        status: String,
        output: String,
    },
    #[error("{tool} did not finish within {timeout_s:.1} s")]
    TimedOut { tool: String, timeout_s: f64 },
    #[error("cannot parse {tool} output: {reason}")]
    Parse { tool: String, reason: String },
    #[error("{workload} does not support {what}")]
    Unsupported {
        workload: &'static str,
        what: String,
    },
    #[error("{server} did not start listening on 127.0.0.1:{port} within {timeout_s:.1} s; its log:\n{log}")]
    ServerStart {
        server: String,
        port: u16,
        timeout_s: f64,
        log: String,
    },
}

pub type Result<T, E = WorkloadError> = std::result::Result<T, E>;

/// A standard workload wrapping a real tool.
pub trait Workload {
    /// A short stable name, used in result files (e.g. `stress-ng-cpu`).
    fn name(&self) -> &'static str;
    /// The executables the workload runs, each with the Debian package that ships it.
    fn tools(&self) -> &'static [(&'static str, &'static str)];
    /// Checks that every tool the workload runs is installed.
    fn check_available(&self) -> Result<(), Unavailable> {
        for (tool, package) in self.tools() {
            require_tool(tool, package)?;
        }
        Ok(())
    }
    /// Prepares, runs the tool as a child process, and parses its output.
    fn run(&self, amount: Amount) -> Result<WorkloadResult>;
}

/// All six workloads with their default settings.
pub fn all() -> Vec<Box<dyn Workload>> {
    vec![
        Box::new(stress_ng::StressNg::default()),
        Box::new(hackbench::Hackbench::default()),
        Box::new(sysbench::Sysbench::default()),
        Box::new(nginx_wrk::NginxWrk::default()),
        Box::new(redis::Redis::default()),
        Box::new(compile::Compile::default()),
    ]
}

/// The names of [`all`], in its order.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|w| w.name()).collect()
}

/// The workload called `name` ([`Workload::name`]) with its default settings.
pub fn by_name(name: &str) -> Option<Box<dyn Workload>> {
    all().into_iter().find(|w| w.name() == name)
}

/// Directories searched for tools besides `$PATH` (nginx lives in /usr/sbin, which a non-root
/// `$PATH` often lacks).
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Finds an executable in `$PATH` and the usual system directories.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `tool` or returns the error naming `package`.
pub fn require_tool(tool: &str, package: &str) -> Result<PathBuf, Unavailable> {
    find_tool(tool).ok_or_else(|| Unavailable {
        tool: tool.to_string(),
        package: package.to_string(),
    })
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> WorkloadError {
    let what = what.into();
    move |source| WorkloadError::Io { what, source }
}

pub(crate) fn parse_err(tool: &str, reason: impl Into<String>) -> WorkloadError {
    WorkloadError::Parse {
        tool: tool.to_string(),
        reason: reason.into(),
    }
}

/// A command line as a shell would show it, for summaries and errors.
pub(crate) fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| match s.to_string_lossy() {
            s if s.is_empty() => "''".to_string(),
            s => s.into_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a finished tool printed (stdout and stderr interleaved) and how long it ran.
#[derive(Debug)]
pub(crate) struct ToolOutput {
    pub output: String,
    pub elapsed: Duration,
}

/// Runs `cmd` to completion with stdout and stderr captured together in a file under `dir`,
/// killing it after `timeout`. A non-zero exit is an error carrying the output.
pub(crate) fn run_tool(
    tool: &str,
    mut cmd: Command,
    dir: &Path,
    timeout: Duration,
) -> Result<ToolOutput> {
    let log_path = dir.join(format!("{tool}.out"));
    let log = File::create(&log_path).map_err(io_err(format!("create {}", log_path.display())))?;
    let log2 = log.try_clone().map_err(io_err("dup log file"))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(io_err(format!("spawn {}", command_line(&cmd))))?;
    let mut guard = ChildGuard::new(tool, child);
    let status = guard.wait_timeout(timeout)?;
    let elapsed = start.elapsed();
    let output = read_lossy(&log_path)?;
    match status {
        None => Err(WorkloadError::TimedOut {
            tool: tool.to_string(),
            timeout_s: timeout.as_secs_f64(),
        }),
        Some(status) if !status.success() => Err(WorkloadError::Failed {
            tool: tool.to_string(),
            status: status.to_string(),
            output,
        }),
        Some(_) => Ok(ToolOutput { output, elapsed }),
    }
}

pub(crate) fn read_lossy(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io_err(format!("read {}", path.display())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Owns a child process and stops it when dropped: SIGTERM, then SIGKILL if it has not exited
/// within two seconds, then reaps it. Servers are held by one for their whole life, so they are
/// stopped on every path out of a run, panics included.
pub(crate) struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    pub(crate) fn new(name: &str, child: Child) -> Self {
        ChildGuard {
            name: name.to_string(),
            child: Some(child),
        }
    }

    /// Waits for the child to exit; `None` if it is still running after `timeout` (it is then
    /// stopped).
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.try_wait()?;
            if status.is_some() {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.stop();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status if the child has exited.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(io_err(format!("wait for {}", self.name))),
            None => Ok(None),
        }
    }

    /// Stops the child (SIGTERM, SIGKILL after 2 s) and reaps it.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("bind 127.0.0.1:0 to find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io_err("local address of 127.0.0.1:0"))?
        .port())
}

/// Waits until something accepts connections on 127.0.0.1:`port`, failing early if the server
/// exits, and with its log if it does not listen within `timeout`.
pub(crate) fn wait_listening(
    server: &mut ChildGuard,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    loop {
        if TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        let exited = server.try_wait()?.is_some();
        if exited || Instant::now() >= deadline {
            return Err(WorkloadError::ServerStart {
                server: server.name.clone(),
                port,
                timeout_s: timeout.as_secs_f64(),
                log: read_lossy(log).unwrap_or_default(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private temporary directory for one run.
pub(crate) fn temp_dir(name: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("aegis-{name}-"))
        .tempdir()
        .map_err(io_err("create a temporary directory"))
}

/// Whole seconds for a tool's duration flag: at least 1.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs_f64().round().max(1.0) as u64
}

/// The CPUs this process may run on (at least 1).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Converts a number with a time unit (`us`, `ms`, `s`, `m`, `h`) to microseconds.
pub(crate) fn to_us(value: f64, unit: &str) -> Option<f64> {
    let factor = match unit {
        "ns" => 1e-3,
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(value * factor)
}

/// Splits `578.00us` into `(578.0, "us")`.
pub(crate) fn split_unit(s: &str) -> Option<(f64, &str)> {
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(idx);
    Some((num.parse().ok()?, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A reaped child's pid is gone (a zombie would still show up here).
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn guard_stops_its_child_on_drop() {
        let child = Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id();
        drop(ChildGuard::new("sleep", child));
        assert!(!alive(pid));
    }

    #[test]
    fn guard_kills_a_child_that_ignores_sigterm() {
        let child = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.1; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        drop(ChildGuard::new("sh", child));
        assert!(!alive(pid));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_tool_times_out() {
        let dir = temp_dir("test").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("100");
        let err = run_tool("sleep", cmd, dir.path(), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, WorkloadError::TimedOut { .. }), "{err}");
    }

    #[test]
    fn run_tool_reports_failure_with_output() {
        let dir = temp_dir("test").unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let err = run_tool("sh", cmd, dir.path(), Duration::from_secs(10)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom") && msg.contains('3'), "{msg}");
    }

    #[test]
    fn workloads_are_found_by_name() {
        let names = names();
        assert_eq!(
            names,
            [
                "stress-ng-cpu",
                "hackbench",
                "sysbench-cpu",
                "nginx-wrk",
                "redis",
                "compile"
            ]
        );
        for name in names {
            let w = by_name(name).unwrap();
            assert_eq!(w.name(), name);
            assert!(!w.tools().is_empty());
        }
        assert!(by_name("stress-ng").is_none());
        assert_eq!(
            by_name("hackbench").unwrap().tools(),
            [("hackbench", "rt-tests")]
        );
    }

    #[test]
    fn units() {
        assert_eq!(split_unit("578.00us"), Some((578.0, "us")));
        assert_eq!(
            split_unit("1.18ms").and_then(|(v, u)| to_us(v, u)),
            Some(1180.0)
        );
        assert_eq!(to_us(1.01, "s"), Some(1_010_000.0));
        assert_eq!(to_us(1.0, "parsecs"), None);
        assert_eq!(whole_seconds(Duration::from_millis(300)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2600)), 3);
    }
}
