//! A private nginx on 127.0.0.1 serving a small static page, loaded by
//! `wrk -tT -cC -dDs --latency`. The result is requests per second and the request latency p50
//! and p99 from wrk's latency distribution. A syscall-heavy server (accept, epoll, read,
//! sendfile, write): exactly the events a provenance collector has to record.
//!
//! nginx runs in the foreground (`daemon off`) with its configuration, pid file, logs and temp
//! directories in a private temporary directory, on a free port of 127.0.0.1 only, and is
//! stopped (SIGTERM, then SIGKILL) on every way out of [`NginxWrk::run`].
//! Only [`Amount::Duration`] is supported (wrk has no fixed request count).

use std::fmt::Write as _;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{
    free_port, io_err, parse_err, require_tool, run_tool, split_unit, temp_dir, to_us,
    wait_listening, whole_seconds, Amount, ChildGuard, Result, Workload, WorkloadError,
    WorkloadResult,
};

/// nginx + wrk.
#[derive(Debug, Clone)]
pub struct NginxWrk {
    /// wrk threads (`-t`).
    pub threads: u32,
    /// Open connections (`-c`).
    pub connections: u32,
    /// nginx worker processes.
    pub nginx_workers: u32,
}

impl Default for NginxWrk {
    fn default() -> Self {
        NginxWrk {
            threads: 2,
            connections: 16,
            nginx_workers: 1,
        }
    }
}

/// What wrk reports with `--latency`.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkMetrics {
    pub requests_per_s: f64,
    pub requests: u64,
    pub duration_s: f64,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    /// `Non-2xx or 3xx responses:` (0 when absent).
    pub non_2xx_3xx: u64,
}

/// Parses `wrk --latency` output.
pub fn parse(output: &str) -> Result<WrkMetrics> {
    let mut requests_per_s = None;
    let mut requests = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx_3xx = 0;
    for line in output.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            requests_per_s = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx_3xx = v.trim().parse().unwrap_or(0);
        } else if let Some((n, rest)) = line.split_once(" requests in ") {
            // "24290 requests in 1.01s, 5.56MB read"
            let secs = rest.split(',').next().and_then(split_unit);
            requests = n
                .trim()
                .parse()
                .ok()
                .zip(secs.and_then(|(v, u)| to_us(v, u)));
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = split_unit(v.trim()).and_then(|(v, u)| to_us(v, u));
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = split_unit(v.trim()).and_then(|(v, u)| to_us(v, u));
        }
    }
    let missing = |what: &str| parse_err("wrk", format!("no {what}"));
    let (requests, duration_us) = requests.ok_or_else(|| missing("\"N requests in T\" line"))?;
    Ok(WrkMetrics {
        requests_per_s: requests_per_s.ok_or_else(|| missing("\"Requests/sec:\" line"))?,
        requests,
        duration_s: duration_us / 1e6,
        latency_p50_us: p50.ok_or_else(|| missing("50% latency (run with --latency)"))?,
        latency_p99_us: p99.ok_or_else(|| missing("99% latency (run with --latency)"))?,
        non_2xx_3xx,
    })
}

/// The nginx configuration for a private server rooted at `dir`.
pub fn nginx_config(dir: &std::path::Path, port: u16, workers: u32) -> String {
    let d = dir.display();
    let mut c = String::new();
    let _ = writeln!(
        c,
        "daemon off;\nmaster_process on;\nworker_processes {workers};"
    );
    let _ = writeln!(c, "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;");
    let _ = writeln!(c, "events {{ worker_connections 1024; }}");
    let _ = writeln!(c, "http {{\n  access_log off;");
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(c, "  {t}_temp_path {d}/tmp;");
    }
    let _ = writeln!(
        c,
        "  server {{\n    listen 127.0.0.1:{port};\n    root {d}/html;\n  }}\n}}"
    );
    c
}

impl Workload for NginxWrk {
    fn name(&self) -> &'static str {
        "nginx-wrk"
    }

    fn tools(&self) -> &'static [(&'static str, &'static str)] {
        &[("nginx", "nginx-light"), ("wrk", "wrk")]
    }

    fn run(&self, amount: Amount) -> Result<WorkloadResult> {
        let Amount::Duration(d) = amount else {
            return Err(WorkloadError::Unsupported {
                workload: "nginx-wrk",
                what: "a fixed size (wrk runs for a duration)".to_string(),
            });
        };
        let nginx = require_tool("nginx", "nginx-light")?;
        let wrk = require_tool("wrk", "wrk")?;
        let dir = temp_dir("nginx")?;
        let root = dir.path();
        for sub in ["html", "tmp"] {
            fs::create_dir_all(root.join(sub)).map_err(io_err(format!("create {sub}/")))?;
        }
        // Readable by nginx's unprivileged worker user when run as root.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod the nginx directory"))?;
        let page: String = (0..64).map(|i| format!("aegis-bench line {i}\n")).collect();
        fs::write(root.join("html/index.html"), page).map_err(io_err("write index.html"))?;
        let port = free_port()?;
        let conf = root.join("nginx.conf");
        fs::write(&conf, nginx_config(root, port, self.nginx_workers))
            .map_err(io_err("write nginx.conf"))?;
        let log = root.join("error.log");
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(root)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let nginx_line = crate::command_line(&cmd);
        let child = cmd.spawn().map_err(io_err(format!("spawn {nginx_line}")))?;
        let mut server = ChildGuard::new("nginx", child);
        wait_listening(&mut server, port, &log, Duration::from_secs(10))?;

        let secs = whole_seconds(d);
        let mut cmd = Command::new(wrk);
        cmd.current_dir(root)
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{secs}s"))
            .arg("--latency")
            .arg(format!("http://127.0.0.1:{port}/"));
        let wrk_line = crate::command_line(&cmd);
        let out = run_tool("wrk", cmd, root, Duration::from_secs(secs + 30));
        server.stop();
        let out = out?;
        let m = parse(&out.output)?;
        if m.non_2xx_3xx > 0 {
            return Err(WorkloadError::Failed {
                tool: "nginx".to_string(),
                status: format!("{} non-2xx/3xx responses", m.non_2xx_3xx),
                output: out.output,
            });
        }
        if m.requests_per_s <= 0.0 {
            return Err(parse_err("wrk", "zero requests/s"));
        }
        Ok(WorkloadResult {
            name: self.name().to_string(),
            runtime_s: m.duration_s,
            throughput: Some((m.requests_per_s, "requests/s".to_string())),
            latency_p50_us: Some(m.latency_p50_us),
            latency_p99_us: Some(m.latency_p99_us),
            summary: format!(
                "{nginx_line}; {wrk_line}: {} requests in {:.2} s",
                m.requests, m.duration_s
            ),
        })
    }
}
