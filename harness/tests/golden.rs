//! The trial record's exports, byte for byte: fixed trials (taken from checked-in result
//! files, one hand-made with a `--cmd` producer and hardware counters) go through the JSON,
//! JSON-lines and CSV exporters, and must come out exactly as the golden files written at the
//! revision before the record was restructured. A change to a field's name, order, type or
//! format fails here; regenerate the golden files only when the interface is meant to change
//! (`AEGIS_UPDATE_GOLDEN=1 cargo test -p aegis-bench --test golden`) and say so in the CHANGELOG.

use std::path::{Path, PathBuf};

use aegis_bench::export::csv::CsvExporter;
use aegis_bench::export::json::{self, JsonExporter};
use aegis_bench::export::jsonl::JsonLinesExporter;
use aegis_bench::export::Exporter;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(name: &str, bytes: &[u8]) {
    let path = golden_dir().join(name);
    if std::env::var_os("AEGIS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    if expected != bytes {
        let (want, got) = (
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(bytes),
        );
        let line = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\n want: {}\n  got: {}",
            line + 1,
            want.lines().nth(line).unwrap_or("<end>"),
            got.lines().nth(line).unwrap_or("<end>")
        );
    }
}

#[test]
fn exports_are_byte_for_byte_the_golden_files() {
    let trials = json::read(&golden_dir().join("trials-in.json")).unwrap();
    assert_eq!(trials.len(), 20);
    let json = JsonExporter::new("x".into()).serialize(&trials).unwrap();
    check("trials.json", &json);
    check(
        "trials.jsonl",
        &JsonLinesExporter::new("x".into())
            .serialize(&trials)
            .unwrap(),
    );
    check(
        "trials.csv",
        &CsvExporter::new("x".into()).serialize(&trials).unwrap(),
    );
    // What was written reads back as the same trials.
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &json).unwrap();
    assert_eq!(json::read(tmp.path()).unwrap(), trials);
}
