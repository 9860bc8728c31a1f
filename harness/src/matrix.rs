//! `aegis-bench run --matrix` and `aegis-bench merge`.

use anyhow::Result;

use crate::cli::{MergeArgs, RunArgs};

pub fn run(_args: &RunArgs) -> Result<i32> {
    anyhow::bail!("aegis-bench run is being written")
}

pub fn merge(_args: &MergeArgs) -> Result<()> {
    anyhow::bail!("aegis-bench merge is being written")
}
