//! A private `redis-server` on 127.0.0.1 (no persistence) loaded by
//! `redis-benchmark --csv -n N -t set,get` (50 parallel clients, redis-benchmark's default).
//! The result is requests per second over all tests and the request latency p50 and p99.
//! redis is a single-threaded, latency-sensitive server: its tail shows run delay directly.
//!
//! `--csv` is used instead of `-q` because it carries p50 and p99 per test. Over several tests
//! (and several rounds), throughput is total requests over total time, p50 is the
//! request-weighted mean of the tests' p50s and p99 the largest p99.
//!
//! [`Amount::Size`] is the number of requests per test (`-n`); [`Amount::Duration`] repeats
//! rounds of [`Redis::requests`] until the duration has passed. The server is always stopped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{
    free_port, io_err, parse_err, require_tool, run_tool, temp_dir, wait_listening, Amount,
    ChildGuard, Result, Workload, WorkloadResult,
};

/// redis-server + redis-benchmark.
#[derive(Debug, Clone)]
pub struct Redis {
    /// Requests per test per round when running for a duration.
    pub requests: u64,
    /// redis-benchmark tests (`-t`).
    pub tests: Vec<String>,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            requests: 20_000,
            tests: vec!["set".to_string(), "get".to_string()],
        }
    }
}

/// One row of `redis-benchmark --csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisTest {
    pub test: String,
    pub requests_per_s: f64,
    pub latency_avg_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

/// Parses `redis-benchmark --csv` output (header
/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`).
pub fn parse(output: &str) -> Result<Vec<RedisTest>> {
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in output
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim())
    {
        if !line.starts_with('"') {
            continue;
        }
        let fields: Vec<String> = line
            .split(',')
            .map(|f| f.trim_matches('"').to_string())
            .collect();
        let Some(h) = &header else {
            header = Some(fields);
            continue;
        };
        let col = |name: &str| -> Result<f64> {
            let i = h
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| parse_err("redis-benchmark", format!("no {name:?} column")))?;
            fields
                .get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| parse_err("redis-benchmark", format!("bad {name:?} in {line:?}")))
        };
        rows.push(RedisTest {
            test: fields[0].clone(),
            requests_per_s: col("rps")?,
            latency_avg_ms: col("avg_latency_ms")?,
            latency_p50_ms: col("p50_latency_ms")?,
            latency_p99_ms: col("p99_latency_ms")?,
        });
    }
    if rows.is_empty() {
        return Err(parse_err("redis-benchmark", "no CSV result rows"));
    }
    Ok(rows)
}

impl Workload for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn tools(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("redis-server", "redis-server"),
            ("redis-benchmark", "redis-tools"),
        ]
    }

    fn run(&self, amount: Amount) -> Result<WorkloadResult> {
        let server_bin = require_tool("redis-server", "redis-server")?;
        let bench = require_tool("redis-benchmark", "redis-tools")?;
        let dir = temp_dir("redis")?;
        let root = dir.path();
        let port = free_port()?;
        let log = root.join("redis-server.log");
        let mut cmd = Command::new(server_bin);
        cmd.current_dir(root)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(root)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server_line = crate::command_line(&cmd);
        let child = cmd
            .spawn()
            .map_err(io_err(format!("spawn {server_line}")))?;
        let mut server = ChildGuard::new("redis-server", child);
        wait_listening(&mut server, port, &log, Duration::from_secs(10))?;

        let (requests, until) = match amount {
            Amount::Size(n) => (n, None),
            Amount::Duration(d) => (self.requests, Some(Instant::now() + d)),
        };
        let mut rows = Vec::new();
        let mut rounds = 0;
        let make_cmd = || {
            let mut cmd = Command::new(&bench);
            cmd.current_dir(root)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--csv"])
                .args(["-n", &requests.to_string(), "-t", &self.tests.join(",")]);
            cmd
        };
        let bench_line = crate::command_line(&make_cmd());
        let start = Instant::now();
        loop {
            let cmd = make_cmd();
            let out = run_tool("redis-benchmark", cmd, root, Duration::from_secs(300))?;
            rows.extend(parse(&out.output)?);
            rounds += 1;
            if until.is_none_or(|u| Instant::now() >= u) {
                break;
            }
        }
        let runtime_s = start.elapsed().as_secs_f64();
        server.stop();
        if rows.iter().any(|r| r.requests_per_s <= 0.0) {
            return Err(parse_err(
                "redis-benchmark",
                "a test reported zero requests/s",
            ));
        }
        let n = requests as f64;
        let busy_s: f64 = rows.iter().map(|r| n / r.requests_per_s).sum();
        let total = n * rows.len() as f64;
        let p50_ms = rows.iter().map(|r| r.latency_p50_ms).sum::<f64>() / rows.len() as f64;
        let p99_ms = rows.iter().map(|r| r.latency_p99_ms).fold(0.0, f64::max);
        Ok(WorkloadResult {
            name: self.name().to_string(),
            runtime_s,
            throughput: Some((total / busy_s, "requests/s".to_string())),
            latency_p50_us: Some(p50_ms * 1e3),
            latency_p99_us: Some(p99_ms * 1e3),
            summary: format!(
                "{server_line}; {bench_line} x{rounds}: {}",
                rows.iter()
                    .map(|r| format!(
                        "{} {:.0}/s p50 {} ms p99 {} ms",
                        r.test, r.requests_per_s, r.latency_p50_ms, r.latency_p99_ms
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}
