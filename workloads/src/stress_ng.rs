//! `stress-ng --cpu N --metrics-brief`: N CPU-bound workers (one per CPU by default); the result
//! is bogo operations per second of wall-clock time, summed over the workers. Pure CPU demand
//! with almost no syscalls: it shows how much compute a scheduler leaves to ordinary tasks.
//!
//! [`Amount::Duration`] maps to `--timeout`, [`Amount::Size`] to `--cpu-ops` (bogo operations).

use std::process::Command;
use std::time::Duration;

use crate::{
    cpus, parse_err, require_tool, run_tool, temp_dir, whole_seconds, Amount, Result, Workload,
    WorkloadResult,
};

/// The stress-ng CPU stressor.
#[derive(Debug, Clone, Default)]
pub struct StressNg {
    /// Worker processes; 0 means one per available CPU.
    pub workers: usize,
}

/// The `cpu` row of stress-ng's `--metrics-brief` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StressNgMetrics {
    pub bogo_ops: f64,
    pub real_time_s: f64,
    pub usr_time_s: f64,
    pub sys_time_s: f64,
    pub bogo_ops_per_s_real: f64,
}

/// Parses the metrics row of `stressor` from stress-ng's output, e.g.
/// `stress-ng: metrc: [25567] cpu   2366   1.00   1.99   0.00   2361.22   1189.30`.
pub fn parse(output: &str, stressor: &str) -> Result<StressNgMetrics> {
    for line in output.lines() {
        let Some(rest) = line.split_once("] ").map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        if fields.next() != Some(stressor) {
            continue;
        }
        let nums: Vec<f64> = fields.filter_map(|f| f.parse().ok()).collect();
        if nums.len() < 5 {
            continue;
        }
        return Ok(StressNgMetrics {
            bogo_ops: nums[0],
            real_time_s: nums[1],
            usr_time_s: nums[2],
            sys_time_s: nums[3],
            bogo_ops_per_s_real: nums[4],
        });
    }
    Err(parse_err(
        "stress-ng",
        format!("no metrics row for stressor {stressor:?}"),
    ))
}

impl Workload for StressNg {
    fn name(&self) -> &'static str {
        "stress-ng-cpu"
    }

    fn tools(&self) -> &'static [(&'static str, &'static str)] {
        &[("stress-ng", "stress-ng")]
    }

    fn run(&self, amount: Amount) -> Result<WorkloadResult> {
        let bin = require_tool("stress-ng", "stress-ng")?;
        let dir = temp_dir("stress-ng")?;
        let workers = if self.workers == 0 {
            cpus()
        } else {
            self.workers
        };
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("--cpu")
            .arg(workers.to_string())
            .arg("--metrics-brief");
        let timeout = match amount {
            Amount::Duration(d) => {
                let secs = whole_seconds(d);
                cmd.arg("--timeout").arg(format!("{secs}s"));
                Duration::from_secs(secs + 30)
            }
            Amount::Size(ops) => {
                cmd.arg("--cpu-ops").arg(ops.to_string());
                Duration::from_secs(600)
            }
        };
        let line = crate::command_line(&cmd);
        let out = run_tool("stress-ng", cmd, dir.path(), timeout)?;
        let m = parse(&out.output, "cpu")?;
        if m.bogo_ops_per_s_real <= 0.0 {
            return Err(parse_err("stress-ng", "zero bogo ops/s"));
        }
        Ok(WorkloadResult {
            name: self.name().to_string(),
            runtime_s: out.elapsed.as_secs_f64(),
            throughput: Some((m.bogo_ops_per_s_real, "bogo ops/s".to_string())),
            latency_p50_us: None,
            latency_p99_us: None,
            summary: format!(
                "{line}: {} bogo ops in {:.2} s real ({:.2} s usr, {:.2} s sys)",
                m.bogo_ops, m.real_time_s, m.usr_time_s, m.sys_time_s
            ),
        })
    }
}
