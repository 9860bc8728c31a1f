//! `aegis-bench gate`: compares a run with a baseline, metric by metric.

use anyhow::Result;

use crate::cli::GateArgs;

/// Runs the gate; returns the exit status (0 no regression, 1 regression).
pub fn gate(_args: &GateArgs) -> Result<i32> {
    anyhow::bail!("aegis-bench gate is being written")
}
