//! Where trials go: JSON and CSV files (each rewritten atomically after every trial, so a run
//! that stops early keeps what it measured) and a table on stdout.

pub mod csv;
pub mod json;
pub mod jsonl;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::results::trial::Trial;

/// A file format for a list of trials.
pub trait Exporter {
    /// Serializes all trials so far.
    fn serialize(&self, trials: &[Trial]) -> Result<Vec<u8>>;
    fn path(&self) -> &Path;
}

/// Replaces `path` with `bytes` through a temporary file in the same directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// All requested exporters.
pub struct Exporters {
    exporters: Vec<Box<dyn Exporter>>,
}

impl Exporters {
    pub fn new(json: Option<PathBuf>, csv: Option<PathBuf>) -> Self {
        let mut exporters: Vec<Box<dyn Exporter>> = Vec::new();
        if let Some(path) = json {
            exporters.push(Box::new(json::JsonExporter::new(path)));
        }
        if let Some(path) = csv {
            exporters.push(Box::new(csv::CsvExporter::new(path)));
        }
        Self { exporters }
    }

    pub fn write(&self, trials: &[Trial]) -> Result<()> {
        for exporter in &self.exporters {
            write_atomically(exporter.path(), &exporter.serialize(trials)?)?;
        }
        Ok(())
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.exporters.iter().map(|e| e.path())
    }
}
