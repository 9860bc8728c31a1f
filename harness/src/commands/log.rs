//! `aegis-bench log`: a built-in collector's provenance log as text, filtered by path, or as
//! per-syscall record counts.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;

use crate::cli::LogArgs;
use crate::provlog::for_each_event;
use crate::syscalls;

/// Prints the log's records (those whose path contains `--path-contains`), or with
/// `--summary` the records per syscall and their total.
pub fn log(args: &LogArgs) -> Result<()> {
    if let Err(err) = std::fs::File::open(&args.file) {
        return crate::error::input_error(format!(
            "cannot open log {}: {err}; give a log kept with `attack --keep-logs DIR`",
            args.file.display()
        ));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut counts = BTreeMap::<u32, u64>::new();
    let filter = args.path_contains.as_deref().map(str::as_bytes);
    let mut closed = false;
    for_each_event(&args.file, |event| {
        if closed {
            return;
        }
        if args.summary {
            *counts.entry(event.syscall_nr).or_default() += 1;
            return;
        }
        if let Some(needle) = filter {
            if !path_contains(event.path(), needle) {
                return;
            }
        }
        // A closed pipe (`| head`) is not an error.
        closed = writeln!(out, "{event}").is_err();
    })?;
    if args.summary {
        let total: u64 = counts.values().sum();
        for (nr, count) in &counts {
            writeln!(out, "{:>12}  {}", count, syscalls::name(*nr))?;
        }
        writeln!(out, "{total:>12}  records")?;
    }
    out.flush().ok();
    Ok(())
}

/// Whether a record's path holds `needle`; the empty needle is in every path.
fn path_contains(path: Option<&[u8]>, needle: &[u8]) -> bool {
    path.is_some_and(|path| needle.is_empty() || path.windows(needle.len()).any(|w| w == needle))
}

#[cfg(test)]
mod tests {
    use super::path_contains;

    #[test]
    fn the_empty_needle_matches_every_path() {
        assert!(path_contains(Some(b"/tmp/x"), b""));
        assert!(path_contains(Some(b"/tmp/x"), b"mp/"));
        assert!(!path_contains(Some(b"/tmp/x"), b"/etc"));
        assert!(!path_contains(None, b""));
    }
}
