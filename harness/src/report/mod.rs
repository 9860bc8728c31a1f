//! Result tables generated into markdown files (`aegis-bench report`), so every measured
//! number in README.md and docs/ comes from a checked-in result file and is regenerated from
//! it, never typed in.
//!
//! A generated block is written between two markers; the first names the table and the
//! result file (a run directory or a trials file, relative to the directory the command runs
//! in, the repository root):
//!
//! ```text
//! <!-- report: loss results/paper/run collector=builtin workload=none -->
//! ...generated...
//! <!-- /report -->
//! ```
//!
//! Kinds: `trials FILE` (the table `attack` prints), `loss`, `delivered`, `throughput` and
//! `kept` (per flood-thread count and scheduler; options `collector=`, `workload=`),
//! `canary` (trials that recorded the canary, per scheduler and collector), `ratios`
//! (paired per-boot ratios of Aegis to the baselines; option `collector=`) and `metrics`
//! (any numeric fields: `rows=FIELD,... cols=FIELD,... [where=FIELD:VALUE,...]
//! [decimals=N]`, fields by JSON name or pointer such as `/scheduler_stats/nr_preempt_kicks`),
//! `failures` (trials recorded and set aside as failed, per scheduler, from the run
//! directory's `failures.jsonl`) and `lossy` (each trial of `scheduler=` (default aegis) that
//! dropped any event). Every table but `trials` ends with the line saying what it is over
//! ([`tables::replication`]). `sim-evaluate FILE table=...` reads a `sim evaluate` report
//! instead of trials ([`sim`]); `sim-validate FILE` and `sim-validate-rounds DIR` read `sim
//! validate` reports ([`validate`]).
//! `report --check` regenerates every block and fails on any difference (a test runs it on
//! README.md and docs/).

pub mod sim;
pub mod tables;
pub mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::results::trial::Trial;
use tables::{RatioColumn, Selection};

const START: &str = "<!-- report: ";
const END: &str = "<!-- /report -->";

/// One block's request: `kind path key=value...`.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub kind: String,
    pub path: String,
    pub options: BTreeMap<String, String>,
}

impl Request {
    pub fn parse(text: &str) -> Result<Request> {
        let mut words = text.split_whitespace();
        let (Some(kind), Some(path)) = (words.next(), words.next()) else {
            bail!("`{text}` needs a kind and a result file, e.g. `loss results/paper/run`");
        };
        let mut options = BTreeMap::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| anyhow!("`{word}` in `{text}` is not key=value"))?;
            options.insert(key.to_string(), value.to_string());
        }
        Ok(Request {
            kind: kind.to_string(),
            path: path.to_string(),
            options,
        })
    }

    fn option(&self, key: &str, default: &str) -> String {
        self.options
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    fn selection(&self) -> Selection {
        Selection {
            collector: self.option("collector", "builtin"),
            workload: self.option("workload", "none"),
        }
    }

    /// `failures`: the run directory's `failures.jsonl` (none when it has no such file).
    fn failed(&self, root: &Path) -> Result<Vec<(String, String)>> {
        let path = root.join(&self.path).join("failures.jsonl");
        Ok(crate::results::trial::Failure::read_all(&path)?
            .into_iter()
            .map(|f| (f.trial_id, f.error))
            .collect())
    }

    /// `metrics`: `rows=a,b cols=m1,m2 [where=field:value,...] [decimals=N]`.
    fn metrics(&self, trials: &[Trial]) -> Result<String> {
        let list = |key: &str| -> Vec<String> {
            self.options
                .get(key)
                .map(|v| v.split(',').map(String::from).collect())
                .unwrap_or_default()
        };
        let (rows, cols) = (list("rows"), list("cols"));
        if rows.is_empty() || cols.is_empty() {
            bail!("a metrics block needs rows=FIELD,... and cols=FIELD,...");
        }
        let filter = list("where")
            .iter()
            .map(|pair| {
                pair.split_once(':')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow!("where={pair} is not field:value"))
            })
            .collect::<Result<Vec<_>>>()?;
        let decimals = self.option("decimals", "2").parse().unwrap_or(2);
        Ok(tables::metrics(trials, &rows, &cols, &filter, decimals))
    }

    /// `ratios vs=A,B metric=throughput|p99|delivered`: Aegis over each named baseline, paired
    /// by boot, one column each.
    fn ratios_vs(
        &self,
        trials: &[Trial],
        selection: &Selection,
        baselines: &str,
    ) -> Result<String> {
        let (what, metric): (&str, fn(&Trial) -> Option<f64>) =
            match self.option("metric", "throughput").as_str() {
                "throughput" => ("workload throughput", |t| {
                    t.beside.workload_throughput_per_s
                }),
                "p99" => ("workload p99 latency", |t| t.beside.workload_latency_p99_us),
                "delivered" => ("delivered events/s", |t| Some(t.accounting.delivered_per_s)),
                other => bail!("metric={other} is not one of throughput, p99, delivered"),
            };
        let titles: Vec<(String, &str)> = baselines
            .split(',')
            .map(|b| (format!("{what}, aegis / {b}"), b))
            .collect();
        let columns: Vec<RatioColumn<'_>> = titles
            .iter()
            .map(|(title, b)| RatioColumn {
                title,
                a: "aegis",
                b,
                metric: &metric,
            })
            .collect();
        Ok(tables::ratios(trials, &selection.collector, &columns))
    }

    /// The block's text, from `trials` (and files beside them under `root`).
    pub fn render(&self, trials: &[Trial], root: &Path) -> Result<String> {
        let selection = self.selection();
        let table = match self.kind.as_str() {
            "trials" => {
                return Ok(format!(
                    "```\n{}\n```\n",
                    crate::export::table::render(trials)
                ))
            }
            "loss" => tables::loss(trials, &selection),
            "collectors" => tables::collectors(trials, &selection.workload),
            "delivered" => tables::delivered(trials, &selection),
            "throughput" => tables::workload_throughput(trials, &selection),
            "kept" => tables::workload_kept(trials, &selection),
            "canary" => tables::canary(trials),
            "metrics" => self.metrics(trials)?,
            "failures" => tables::failures(trials, &self.failed(root)?),
            "lossy" => tables::lossy(trials, &self.option("scheduler", "aegis")),
            "ratios" => match self.options.get("vs") {
                None => tables::ratios(trials, &selection.collector, &aegis_ratios()),
                Some(baselines) => self.ratios_vs(trials, &selection, baselines)?,
            },
            "overhead" => tables::overhead(trials),
            other => bail!(
                "unknown report kind `{other}`; use trials, loss, collectors, delivered, throughput, \
                 kept, canary, ratios, overhead, metrics, failures, lossy, sim-evaluate, sim-validate \
                 or sim-validate-rounds"
            ),
        };
        Ok(format!(
            "{table}\n_{}_\n",
            tables::replication(
                &only(trials, &selection, &self.kind),
                !matches!(self.kind.as_str(), "canary" | "lossy")
            )
        ))
    }
}

/// The trials a table of `kind` is computed from, for its replication line.
fn only(trials: &[Trial], selection: &Selection, kind: &str) -> Vec<Trial> {
    let workload = |t: &Trial| t.beside.workload.as_deref().unwrap_or("none") == selection.workload;
    trials
        .iter()
        .filter(|t| match kind {
            "canary" | "metrics" | "failures" | "lossy" => true,
            "collectors" => workload(t),
            "overhead" => t.beside.workload.is_some(),
            "ratios" => t.id.collector == selection.collector,
            _ => t.id.collector == selection.collector && workload(t),
        })
        .cloned()
        .collect()
}

/// Aegis against the baselines, paired by boot.
fn aegis_ratios() -> Vec<RatioColumn<'static>> {
    fn delivered(t: &Trial) -> Option<f64> {
        Some(t.accounting.delivered_per_s)
    }
    fn throughput(t: &Trial) -> Option<f64> {
        t.beside.workload_throughput_per_s
    }
    vec![
        RatioColumn {
            title: "delivered events/s, aegis / eevdf:collector-fifo",
            a: "aegis",
            b: "eevdf:collector-fifo",
            metric: &delivered,
        },
        RatioColumn {
            title: "workload throughput, aegis / eevdf",
            a: "aegis",
            b: "eevdf",
            metric: &throughput,
        },
        RatioColumn {
            title: "workload throughput, aegis / eevdf:collector-fifo",
            a: "aegis",
            b: "eevdf:collector-fifo",
            metric: &throughput,
        },
    ]
}

/// `text` with every block regenerated from the result files under `root`. A marker counts
/// at the start of a line outside fenced code (so docs can show one as an example).
pub fn regenerate(text: &str, root: &Path) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut cache: BTreeMap<String, Vec<Trial>> = BTreeMap::new();
    let mut lines = text.split_inclusive('\n');
    let mut in_fence = false;
    while let Some(line) = lines.next() {
        out.push_str(line);
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        let Some(header) = line.strip_prefix(START).filter(|_| !in_fence) else {
            continue;
        };
        let request_text = header
            .trim_end()
            .strip_suffix("-->")
            .ok_or_else(|| anyhow!("a `{START}` marker is not closed with --> on its line"))?
            .trim();
        let request = Request::parse(request_text)?;
        if !line.ends_with('\n') {
            out.push('\n');
        }
        // Skip the old body, up to and including the end marker.
        let end = lines
            .by_ref()
            .find(|l| l.trim_end() == END)
            .ok_or_else(|| anyhow!("block `{request_text}` has no `{END}` line"))?;
        if request.kind == "sim-evaluate" {
            let path = root.join(&request.path);
            let report: crate::results::sim::EvalReport = serde_json::from_str(
                &crate::files::read_input(&path)
                    .with_context(|| format!("block `{request_text}`: {}", path.display()))?,
            )
            .with_context(|| format!("block `{request_text}`: {}", path.display()))?;
            out.push_str(&sim::render(&report, &request.option("table", ""))?);
            out.push_str(end);
            continue;
        }
        let validate = match request.kind.as_str() {
            "sim-validate" => {
                Some(validate::read(&root.join(&request.path)).map(|r| validate::points(&r)))
            }
            "sim-validate-rounds" => Some(validate::rounds(root, &request.path)),
            _ => None,
        };
        if let Some(table) = validate {
            out.push_str(&table.with_context(|| format!("block `{request_text}`"))?);
            out.push_str(end);
            continue;
        }
        if !cache.contains_key(&request.path) {
            // `a+b`: the trials of several runs in one table.
            let mut trials = Vec::new();
            for path in request.path.split('+') {
                trials.extend(
                    crate::export::json::read(&root.join(path))
                        .with_context(|| format!("block `{request_text}`: {path}"))?,
                );
            }
            cache.insert(request.path.clone(), trials);
        }
        out.push_str(&request.render(&cache[&request.path], root)?);
        out.push_str(end);
    }
    Ok(out)
}

/// The first line where `old` and `new` differ, for a one-line message.
pub fn first_difference(old: &str, new: &str) -> Option<(usize, String, String)> {
    let (mut a, mut b) = (old.lines(), new.lines());
    for line in 1.. {
        match (a.next(), b.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                return Some((
                    line,
                    x.unwrap_or("(end)").to_string(),
                    y.unwrap_or("(end)").to_string(),
                ))
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_named() {
        let request = Request::parse("loss results/paper/run collector=builtin-compact").unwrap();
        assert_eq!(request.kind, "loss");
        assert_eq!(request.path, "results/paper/run");
        assert_eq!(request.selection().collector, "builtin-compact");
        assert_eq!(request.selection().workload, "none");
        assert!(Request::parse("loss").is_err());
        let err = Request::parse("loss x collector").unwrap_err().to_string();
        assert!(err.contains("key=value"), "{err}");
        let err = Request::parse("losses x")
            .unwrap()
            .render(&[], Path::new("."))
            .unwrap_err();
        assert!(err.to_string().contains("unknown report kind"), "{err}");
    }

    #[test]
    fn blocks_are_regenerated_in_place_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let trials = crate::export::json::read(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/trials-in.json"
        )))
        .unwrap();
        std::fs::write(
            dir.path().join("t.json"),
            serde_json::to_string(&trials).unwrap(),
        )
        .unwrap();
        let text =
            "# Title\n\nBefore.\n<!-- report: canary t.json -->\nstale\n<!-- /report -->\nAfter.\n";
        let new = regenerate(text, dir.path()).unwrap();
        assert!(
            new.starts_with("# Title\n\nBefore.\n<!-- report: canary t.json -->\n| scheduler |")
        );
        assert!(new.ends_with("<!-- /report -->\nAfter.\n"), "{new}");
        assert!(!new.contains("stale"));
        assert_eq!(
            regenerate(&new, dir.path()).unwrap(),
            new,
            "regenerating is stable"
        );
        let (line, old, _) = first_difference(text, &new).unwrap();
        assert_eq!((line, old.as_str()), (5, "stale"));
        let unclosed = "<!-- report: canary t.json -->\nstale\n";
        assert!(regenerate(unclosed, dir.path()).is_err());
        let example = "```text\n<!-- report: KIND FILE -->\n...\n<!-- /report -->\n```\n";
        assert_eq!(
            regenerate(example, dir.path()).unwrap(),
            example,
            "fenced: an example"
        );
        let missing = "<!-- report: canary nothing.json -->\n<!-- /report -->";
        let err = format!("{:#}", regenerate(missing, dir.path()).unwrap_err());
        assert!(err.contains("nothing.json"), "{err}");
    }
}
