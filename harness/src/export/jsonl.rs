//! JSON lines: one trial object a line (`run`'s `trials.jsonl`), so that other tools can
//! stream a run that is still going.

use anyhow::{bail, Context, Result};

use super::Exporter;
use crate::results::trial::Trial;
use std::path::{Path, PathBuf};

/// The name of a `run` output directory's trial file.
pub const FILE_NAME: &str = "trials.jsonl";

pub struct JsonLinesExporter {
    path: PathBuf,
}

impl JsonLinesExporter {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl Exporter for JsonLinesExporter {
    fn serialize(&self, trials: &[Trial]) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        for trial in trials {
            serde_json::to_writer(&mut bytes, trial)?;
            bytes.push(b'\n');
        }
        Ok(bytes)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Parses JSON lines into trials; blank lines are skipped, a bad line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Trial>> {
    let mut trials = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let trial = serde_json::from_str(line)
            .with_context(|| format!("line {} is not a trial", number + 1))?;
        trials.push(trial);
    }
    if trials.is_empty() && !text.trim().is_empty() {
        bail!("no trials in it");
    }
    Ok(trials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    #[test]
    fn lines_round_trip_and_a_bad_line_is_named() {
        let trials = vec![
            example_trial("eevdf", 8, 60.0, None),
            example_trial("aegis", 8, 0.0, Some(("stress-ng-cpu", 0.9))),
        ];
        let bytes = JsonLinesExporter::new("x".into())
            .serialize(&trials)
            .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(parse(&text).unwrap(), trials);
        let broken = format!("{text}{{\"scheduler\": 1}}\n");
        let err = format!("{:#}", parse(&broken).unwrap_err());
        assert!(err.contains("line 3"), "{err}");
    }
}
