//! Every result table in README.md and docs/ is what its result file generates: `aegis-bench
//! report --check` regenerates each `<!-- report: ... -->` block and fails on any difference.

use std::path::{Path, PathBuf};

const BIN: &str = env!("CARGO_BIN_EXE_aegis-bench");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every page under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn readme_and_docs_tables_are_what_the_results_generate() {
    let files = markdown_files();
    let blocks: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .matches("<!-- report: ")
                .count()
        })
        .sum();
    assert!(
        blocks >= 5,
        "README.md and docs/ should hold the generated result tables ({blocks} blocks)"
    );
    let out = std::process::Command::new(BIN)
        .arg("report")
        .arg("--check")
        .args(&files)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a result table differs from its results:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_stale_table_fails_the_check_and_report_regenerates_it() {
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- report: ")
        .expect("the README has a report block");
    let body = readme[start..].find("-->").unwrap() + start + 4;
    // A typed-in number where a generated one was.
    let stale = format!("{}| 1 | 99.99 % |\n{}", &readme[..body], &readme[body..]);
    let path = dir.path().join("README.md");
    std::fs::write(&path, &stale).unwrap();
    let check = |extra: &[&str]| {
        std::process::Command::new(BIN)
            .arg("report")
            .args(extra)
            .arg(&path)
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let out = check(&["--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("differs from what the results generate"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        stale,
        "--check writes nothing"
    );
    assert!(check(&[]).status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), readme);
    assert!(check(&["--check"]).status.success());
}
