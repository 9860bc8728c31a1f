//! Fuzzing on the stable toolchain: every decoder of a file another program (or a damaged
//! disk, or someone with write access to it) wrote is fed random mutations of real files and
//! random bytes, and must answer with a value or an error: never a panic, never a hang.
//!
//! Seeds are the real files: `fuzz/corpus/` (a provenance log of each format, an auditd log,
//! a guest's results tar, Aegis's statistics) and the checked-in matrices and results.
//! Mutations flip, insert, delete and overwrite bytes and cut the file short. Each decoder runs
//! for `AEGIS_FUZZ_SECONDS` (2 in `make test`; `make fuzz` runs 600), in rounds of 256 cases
//! with a fresh seed; a panic fails the test with the smallest input proptest shrinks it to.
//! A debug build, so integer overflow panics too. No root needed. With `AEGIS_FUZZ_RECORD=DIR`
//! each decoder's cases and seconds are appended to `DIR/fuzz.jsonl`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use aegis_bench::collector::audit_log::{self, AttackFilter};
use aegis_bench::provlog::{compact, LogReader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files under `dirs` (relative to the repository) whose name ends with `suffix`.
fn seeds(dirs: &[&str], suffix: &str) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for dir in dirs {
        let mut stack = vec![repo().join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.to_string_lossy().ends_with(suffix) {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no seed files for {dirs:?}");
    // Big files make slow cases: their first 64 KiB carry every structure.
    files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .unwrap()
                .into_iter()
                .take(64 << 10)
                .collect()
        })
        .collect()
}

/// Random edits of a random seed, or (one case in eight) random bytes.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let mutated = (
        0..n,
        prop::collection::vec((any::<Index>(), any::<u8>(), 0u8..4), 0..16),
        any::<Option<Index>>(),
    )
        .prop_map(move |(seed, edits, cut)| {
            let mut bytes = seeds[seed].clone();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let k = at.index(bytes.len());
                match op {
                    0 => bytes[k] = byte,
                    1 => bytes.insert(k, byte),
                    2 => {
                        bytes.remove(k);
                    }
                    _ => bytes[k] ^= 1 << (byte % 8),
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        });
    prop_oneof![7 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..4096)]
}

/// Runs `decode` on inputs from `seeds` for the budget; panics name the decoder and input.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, decode: impl Fn(&[u8])) {
    let budget = Duration::from_secs_f64(
        std::env::var("AEGIS_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    );
    let strategy = inputs(seeds);
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < budget {
        let config = Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        };
        let seed: [u8; 32] = rand::random();
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        if let Err(err) = runner.run(&strategy, |input| {
            decode(&input);
            Ok(())
        }) {
            panic!("fuzz {name}: {err}");
        }
        cases += 256;
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("fuzz {name}: {cases} cases in {seconds:.0} s, no panic");
    // `make fuzz` keeps a record of each decoder's run (results/fuzz/fuzz.jsonl).
    if let Some(dir) = std::env::var_os("AEGIS_FUZZ_RECORD") {
        use std::io::Write;
        let line = serde_json::json!({
            "decoder": name,
            "cases": cases,
            "seconds": (seconds * 10.0).round() / 10.0,
            "panics": 0,
            "git_rev": aegis_bench::GIT_REV,
            "build_profile": aegis_bench::BUILD_PROFILE,
        });
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&dir).join("fuzz.jsonl"))
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }
}

/// A scratch file the path-based decoders read each case from.
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input");
        Scratch { _dir: dir, path }
    }

    fn with(&self, bytes: &[u8]) -> &Path {
        std::fs::write(&self.path, bytes).unwrap();
        &self.path
    }
}

#[test]
fn provenance_log_full() {
    fuzz(
        "provenance log (full)",
        seeds(&["fuzz/corpus/provlog-full"], ".log"),
        |bytes| {
            let Ok(mut reader) = LogReader::new(bytes) else {
                return;
            };
            while let Ok(Some(event)) = reader.next_event() {
                let _ = event.to_string();
            }
        },
    );
}

#[test]
fn provenance_log_compact() {
    let scratch = Scratch::new();
    fuzz(
        "provenance log (compact)",
        seeds(&["fuzz/corpus/provlog-compact"], ".log"),
        |bytes| {
            let _ = compact::read_log(scratch.with(bytes), |event| {
                let _ = event.to_string();
            });
            // A batch alone, as the consumer decodes it from the ring.
            let batch = bytes.get(16..).unwrap_or_default();
            let mut counts = [0u64; aegis_bench::bpf_intf::MAX_SYSCALL_NR];
            let mut groups = [0u64; aegis_bench::bpf_intf::NR_GROUPS];
            let _ = compact::count_records(batch, &mut counts, &mut groups);
        },
    );
}

#[test]
fn auditd_log() {
    let scratch = Scratch::new();
    let filter = AttackFilter {
        pid: 11598,
        key: "aegis-bench-11540".into(),
    };
    fuzz(
        "auditd log",
        seeds(&["fuzz/corpus/audit-log"], ".log"),
        |bytes| {
            let path = scratch.with(bytes);
            let _ = audit_log::summarize(path, &filter);
            let _ = audit_log::find_canary(path, &filter, Path::new("/dev/null"));
        },
    );
}

#[test]
fn guest_results_tar() {
    let scratch = Scratch::new();
    let out = tempfile::tempdir().unwrap();
    let back = [(PathBuf::from("/aegis-out/run"), out.path().join("run"))];
    fuzz(
        "guest results tar",
        seeds(&["fuzz/corpus/guest-results"], ".tar"),
        |bytes| {
            let _ = aegis_bench::vm::results::unpack(scratch.with(bytes), &back);
        },
    );
}

#[test]
fn matrix_toml() {
    fuzz("matrix TOML", seeds(&["matrices"], ".toml"), |bytes| {
        if let Ok(matrix) = aegis_bench::run::matrix::Matrix::parse(&String::from_utf8_lossy(bytes))
        {
            let _ = matrix.plans(true);
        }
    });
}

#[test]
fn gate_thresholds() {
    fuzz(
        "gate thresholds",
        seeds(&["matrices/ci-gate.toml"], ".toml"),
        |bytes| {
            let _ = aegis_bench::commands::gate::thresholds::parse_thresholds(
                &String::from_utf8_lossy(bytes),
            );
        },
    );
}

#[test]
fn run_json() {
    fuzz("run.json", seeds(&["results"], "run.json"), |bytes| {
        if let Ok(info) = serde_json::from_slice::<aegis_bench::commands::run::RunInfo>(bytes) {
            let _ = info.shard.is_valid();
        }
    });
}

#[test]
fn trial_files() {
    fuzz(
        "trial files",
        seeds(
            &[
                "results/demo-example",
                "results/ci-baseline",
                "results/aegis",
                "results/ablations",
            ],
            "trials.json",
        )
        .into_iter()
        .chain(seeds(
            &["results/ablations", "results/ci-baseline"],
            ".jsonl",
        ))
        .collect(),
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            let trials = aegis_bench::export::jsonl::parse(&text)
                .ok()
                .or_else(|| serde_json::from_slice(bytes).ok());
            // What the tables, the gate and merge compute from them.
            if let Some(trials) = trials {
                for request in TABLES {
                    let request = aegis_bench::report::Request::parse(request).unwrap();
                    let _ = request.render(&trials, Path::new("/nonexistent"));
                }
            }
        },
    );
}

/// Every kind of generated table, as `report` blocks ask for them.
const TABLES: &[&str] = &[
    "trials x",
    "loss x collector=builtin workload=none",
    "delivered x",
    "throughput x workload=stress-ng-cpu",
    "kept x workload=stress-ng-cpu",
    "canary x",
    "ratios x",
    "lossy x",
    "metrics x rows=scheduler,workload cols=loss_pct,/scheduler_stats/nr_dispatches",
];

#[test]
fn scheduler_stats() {
    let scratch = Scratch::new();
    fuzz(
        "scheduler stats",
        seeds(&["fuzz/corpus/scheduler-stats"], ".json"),
        |bytes| {
            let _ = aegis_bench::sched::aegis::read_stats(scratch.with(bytes));
        },
    );
}
