//! `sysbench cpu --threads=N --percentile=99 --histogram=on run`: N equal-weight threads each
//! verifying primes up to 10000 per event. The result is events per second and per-event
//! latency: p99 from sysbench's own percentile line, p50 from its latency histogram (sysbench
//! prints only one percentile). Steady CPU throughput plus the latency tail of equal tasks.
//!
//! [`Amount::Duration`] maps to `--time`, [`Amount::Size`] to `--events` (with `--time=0`).

use std::process::Command;
use std::time::Duration;

use crate::{
    cpus, parse_err, require_tool, run_tool, temp_dir, whole_seconds, Amount, Result, Workload,
    WorkloadResult,
};

/// The sysbench CPU test.
#[derive(Debug, Clone, Default)]
pub struct Sysbench {
    /// Threads; 0 means one per available CPU.
    pub threads: usize,
}

/// What sysbench's CPU test reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SysbenchMetrics {
    pub events_per_s: f64,
    pub total_time_s: f64,
    pub total_events: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

fn value_after<'a>(output: &'a str, label: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
}

/// The percentile `p` (0..100) of sysbench's latency histogram (`value |*** count` lines).
pub fn histogram_percentile(output: &str, p: f64) -> Option<f64> {
    let buckets: Vec<(f64, u64)> = output
        .lines()
        .filter_map(|l| {
            let (value, rest) = l.split_once('|')?;
            let count = rest.split_whitespace().last()?.parse().ok()?;
            Some((value.trim().parse().ok()?, count))
        })
        .collect();
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    if total == 0 {
        return None;
    }
    let target = (p / 100.0 * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    buckets.iter().find_map(|&(value, count)| {
        seen += count;
        (seen >= target).then_some(value)
    })
}

/// Parses sysbench CPU test output.
pub fn parse(output: &str) -> Result<SysbenchMetrics> {
    let err = |what: &str| parse_err("sysbench", format!("no {what:?} line"));
    let events_per_s = value_after(output, "events per second:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err("events per second:"))?;
    let total_time_s = value_after(output, "total time:")
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .ok_or_else(|| err("total time:"))?;
    let total_events = value_after(output, "total number of events:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err("total number of events:"))?;
    let latency_p99_ms = value_after(output, "99th percentile:").and_then(|v| v.parse().ok());
    Ok(SysbenchMetrics {
        events_per_s,
        total_time_s,
        total_events,
        latency_p50_ms: histogram_percentile(output, 50.0),
        latency_p99_ms,
    })
}

impl Workload for Sysbench {
    fn name(&self) -> &'static str {
        "sysbench-cpu"
    }

    fn tools(&self) -> &'static [(&'static str, &'static str)] {
        &[("sysbench", "sysbench")]
    }

    fn run(&self, amount: Amount) -> Result<WorkloadResult> {
        let bin = require_tool("sysbench", "sysbench")?;
        let dir = temp_dir("sysbench")?;
        let threads = if self.threads == 0 {
            cpus()
        } else {
            self.threads
        };
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("cpu")
            .arg(format!("--threads={threads}"))
            .arg("--percentile=99")
            .arg("--histogram=on");
        let timeout = match amount {
            Amount::Duration(d) => {
                let secs = whole_seconds(d);
                cmd.arg(format!("--time={secs}"));
                Duration::from_secs(secs + 30)
            }
            Amount::Size(events) => {
                cmd.arg("--time=0").arg(format!("--events={events}"));
                Duration::from_secs(600)
            }
        };
        cmd.arg("run");
        let line = crate::command_line(&cmd);
        let out = run_tool("sysbench", cmd, dir.path(), timeout)?;
        let m = parse(&out.output)?;
        if m.events_per_s <= 0.0 {
            return Err(parse_err("sysbench", "zero events/s"));
        }
        Ok(WorkloadResult {
            name: self.name().to_string(),
            runtime_s: m.total_time_s,
            throughput: Some((m.events_per_s, "events/s".to_string())),
            latency_p50_us: m.latency_p50_ms.map(|v| v * 1e3),
            latency_p99_us: m.latency_p99_ms.map(|v| v * 1e3),
            summary: format!(
                "{line}: {} events in {:.3} s",
                m.total_events, m.total_time_s
            ),
        })
    }
}
