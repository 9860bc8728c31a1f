//! Where trials go: JSON and CSV files (each rewritten atomically after every trial, so a run
//! that stops early keeps what it measured) and a table on stdout.

pub mod csv;
pub mod json;
pub mod jsonl;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::results::trial::Trial;

/// A file format for a list of trials.
pub trait Exporter {
    /// Serializes all trials so far.
    fn serialize(&self, trials: &[Trial]) -> Result<Vec<u8>>;
    fn path(&self) -> &Path;
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
            crate::files::write_atomically(exporter.path(), &exporter.serialize(trials)?)?;
        }
        Ok(())
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.exporters.iter().map(|e| e.path())
    }
}
