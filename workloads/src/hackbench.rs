//! `hackbench -g G -l L` (from rt-tests): G groups of 20 senders and 20 receivers pass L
//! 100-byte messages from every sender to every receiver over socket pairs. Wakeup-heavy with
//! many short runnable tasks, it exercises the scheduler's wakeup and placement paths; the
//! result is the time hackbench reports and messages per second.
//!
//! [`Amount::Size`] is the loop count `L`; [`Amount::Duration`] repeats runs of
//! [`Hackbench::loops`] until the duration has passed and sums them.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{
    parse_err, require_tool, run_tool, temp_dir, Amount, Result, Workload, WorkloadResult,
};

/// Senders and receivers per group (hackbench's default `-f 20`).
const FDS: u64 = 20;

/// The hackbench workload.
#[derive(Debug, Clone)]
pub struct Hackbench {
    /// Groups (`-g`).
    pub groups: u32,
    /// Loops per run when running for a duration (`-l`).
    pub loops: u64,
}

impl Default for Hackbench {
    fn default() -> Self {
        Hackbench {
            groups: 2,
            loops: 200,
        }
    }
}

/// Parses `Time: 0.230` (seconds) from hackbench's output.
pub fn parse(output: &str) -> Result<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Time:"))
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| parse_err("hackbench", "no \"Time:\" line"))
}

impl Hackbench {
    /// Messages one run of `loops` loops passes.
    pub fn messages(&self, loops: u64) -> u64 {
        u64::from(self.groups) * FDS * FDS * loops
    }
}

impl Workload for Hackbench {
    fn name(&self) -> &'static str {
        "hackbench"
    }

    fn tools(&self) -> &'static [(&'static str, &'static str)] {
        &[("hackbench", "rt-tests")]
    }

    fn run(&self, amount: Amount) -> Result<WorkloadResult> {
        let bin = require_tool("hackbench", "rt-tests")?;
        let dir = temp_dir("hackbench")?;
        let (loops, until) = match amount {
            Amount::Size(l) => (l, None),
            Amount::Duration(d) => (self.loops, Some(Instant::now() + d)),
        };
        let mut total_time = 0.0;
        let mut runs = 0u64;
        let make_cmd = || {
            let mut cmd = Command::new(&bin);
            cmd.current_dir(dir.path())
                .arg("-g")
                .arg(self.groups.to_string())
                .arg("-l")
                .arg(loops.to_string());
            cmd
        };
        let line = crate::command_line(&make_cmd());
        loop {
            let cmd = make_cmd();
            let out = run_tool("hackbench", cmd, dir.path(), Duration::from_secs(300))?;
            total_time += parse(&out.output)?;
            runs += 1;
            if until.is_none_or(|u| Instant::now() >= u) {
                break;
            }
        }
        if total_time <= 0.0 {
            return Err(parse_err("hackbench", "zero time"));
        }
        let messages = self.messages(loops) * runs;
        Ok(WorkloadResult {
            name: self.name().to_string(),
            runtime_s: total_time,
            throughput: Some((messages as f64 / total_time, "messages/s".to_string())),
            latency_p50_us: None,
            latency_p99_us: None,
            summary: format!("{line} x{runs}: {messages} messages in {total_time:.3} s"),
        })
    }
}
