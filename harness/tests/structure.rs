//! The shape of the code, checked from its source: arrows between the harness's modules
//! point down only (no import cycle; the records and the measurements import no runner and
//! no command line), and no Rust function in harness/ or scheduler/ is longer than 100 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 100;

/// Modules at the bottom: they may import each other (without cycles) and the leaf helpers
/// below, never a runner (`run`, `commands`, `vm`, `collector`, `sched`) or the command line.
const BOTTOM: &[&str] = &["results", "measure", "provlog", "export", "figures"];
const RUNNERS: &[&str] = &[
    "cli",
    "commands",
    "run",
    "vm",
    "collector",
    "sched",
    "workload",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without its `//` comment (string literals holding `//` are rare
/// enough in `use` lines and signatures not to matter here).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |at| &line[..at])
}

/// The top-level modules a file of harness/src names through `crate::`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let code: String = text.lines().map(code).collect::<Vec<_>>().join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                // The group's own closing brace, past any nested groups.
                let mut open = 1;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| {
                        open += match c {
                            '{' => 1,
                            '}' => -1,
                            _ => 0,
                        };
                        open == 0
                    })
                    .map_or(group.len(), |(at, _)| at);
                // Top-level names of the group; nested groups' insides are not top level.
                let mut depth = 0;
                let mut name = String::new();
                for c in group[..end].chars().chain([',']) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            let top = name.trim().split("::").next().unwrap_or("").to_string();
                            if !top.is_empty() {
                                refs.insert(top);
                            }
                            name.clear();
                        }
                        _ if depth == 0 => name.push(c),
                        _ => {}
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    refs.insert(name);
                }
            }
        }
        rest = after;
    }
    refs
}

/// Module graph of harness/src: top-level module -> the top-level modules it names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("harness/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let refs = graph.entry(module.clone()).or_default();
        for target in crate_refs(&text) {
            // `say!` is the crate's macro, `skel` the generated skeletons in lib.rs.
            if target != module && target != "say" && target != "skel" && target != "GIT_REV" {
                refs.insert(target);
            }
        }
    }
    graph
}

/// Every cycle's members (strongly connected components of more than one module).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(node) = todo.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    for (module, reached) in &reachable {
        if !reached.contains(*module) {
            continue;
        }
        let mut members: Vec<String> = reached
            .iter()
            .filter(|other| reachable.get(other).is_some_and(|r| r.contains(*module)))
            .cloned()
            .collect();
        members.sort();
        if !found.contains(&members) {
            found.push(members);
        }
    }
    found
}

#[test]
fn harness_modules_point_down_only() {
    let graph = module_graph();
    assert!(graph.len() > 5, "found no modules under harness/src");
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between harness modules: {cycles:?}"
    );
    let mut wrong = Vec::new();
    for bottom in BOTTOM {
        for target in graph.get(*bottom).into_iter().flatten() {
            if RUNNERS.contains(&target.as_str()) {
                wrong.push(format!("{bottom} -> {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "records/measure/export import a runner or the CLI: {wrong:?}"
    );
    // The command line is converted to typed options at the door: only commands read it.
    let readers: Vec<&String> = graph
        .iter()
        .filter(|(module, refs)| *module != "commands" && refs.contains("cli"))
        .map(|(module, _)| module)
        .collect();
    assert!(
        readers.is_empty(),
        "modules below the commands import cli.rs: {readers:?}"
    );
}

#[test]
fn the_reference_parser_sees_groups_and_paths() {
    let refs = crate_refs("use crate::{a::b, c::{d, e}, f};\nlet x = crate::g::h(); // crate::z\n");
    let want: BTreeSet<String> = ["a", "c", "f", "g"].iter().map(|s| s.to_string()).collect();
    assert_eq!(refs, want);
}

/// Functions longer than the limit: `path:line name (lines)`. Relies on rustfmt's layout (a
/// body's closing brace at the signature's indentation).
fn long_functions(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let mut words = trimmed
            .split_whitespace()
            .skip_while(|w| w.starts_with("pub") || ["const", "async", "unsafe"].contains(w));
        if words.next() != Some("fn") {
            continue;
        }
        let name: String = words
            .next()
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature ends at the first line holding `{` (a body) or ending in `;` (none).
        let Some(open) = (start..lines.len()).find(|&i| {
            let c = code(lines[i]);
            c.contains('{') || c.trim_end().ends_with(';')
        }) else {
            continue;
        };
        if !code(lines[open]).contains('{') || code(lines[open]).trim_end().ends_with('}') {
            continue;
        }
        let close = (open + 1..lines.len()).find(|&i| {
            let l = lines[i];
            l.len() > indent && l[..indent].trim().is_empty() && l[indent..].starts_with('}')
        });
        let end = close.unwrap_or(lines.len() - 1);
        let count = end - start + 1;
        if count > MAX_FN_LINES {
            long.push(format!(
                "{}:{} {name} ({count} lines)",
                file.display(),
                start + 1
            ));
        }
    }
    long
}

#[test]
fn no_function_is_longer_than_a_screen() {
    let mut files = Vec::new();
    for dir in ["harness", "scheduler"] {
        rust_files(&workspace().join(dir), &mut files);
    }
    assert!(files.len() > 20);
    let long: Vec<String> = files.iter().flat_map(|f| long_functions(f)).collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}
