//! JSON: a list of trial objects (see [`crate::results::trial::Trial`] for the fields).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Exporter;
use crate::results::trial::Trial;

pub struct JsonExporter {
    path: PathBuf,
}

impl JsonExporter {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

impl Exporter for JsonExporter {
    fn serialize(&self, trials: &[Trial]) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(trials)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads trials from a JSON list (`attack --json`), a JSON-lines file (`run`'s
/// `trials.jsonl`) or a `run` output directory (its `trials.jsonl`).
pub fn read(path: &Path) -> Result<Vec<Trial>> {
    use anyhow::Context;
    let path = if path.is_dir() {
        path.join(super::jsonl::FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text =
        crate::files::read_input(&path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as a list of trials", path.display()));
    }
    super::jsonl::parse(&text).with_context(|| format!("parsing {}", path.display()))
}
