//! `aegis-bench merge --out DIR PART...`: joins the output directories of the shards of one
//! matrix (`run --shard i/n`) into one, after checking they belong to one matrix and overlap
//! nowhere.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::run::{RunDir, RunInfo, MATRIX_COPY};
use crate::cli::MergeArgs;
use crate::error::InputError;
use crate::export::jsonl;
use crate::results::trial::Trial;
use crate::run::matrix::Shard;

/// `aegis-bench merge --out DIR PART...`.
pub fn merge(args: &MergeArgs) -> Result<()> {
    let mut joined = Joined::default();
    for part in &args.parts {
        joined.add(part)?;
    }
    let Joined {
        first,
        mut shards,
        mut trials,
        planned,
    } = joined;
    let (_, first_info, matrix_text) = first.expect("clap requires at least one part");
    shards.sort_by_key(|s| s.index);
    let count = shards[0].count;
    let missing: Vec<String> = (1..=count)
        .filter(|i| !shards.iter().any(|s| s.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        crate::say!(
            "warning: shard(s) {} missing; the merged run is partial",
            missing.join(", ")
        );
    }
    trials
        .sort_by(|a, b| (a.id.repetition, &a.id.trial_id).cmp(&(b.id.repetition, &b.id.trial_id)));
    let out = RunDir {
        dir: args.out.clone(),
    };
    if out.has_trials() {
        return Err(InputError(format!(
            "{} already holds trials; merge into a new directory",
            out.dir.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&out.dir).with_context(|| format!("creating {}", out.dir.display()))?;
    crate::files::write_atomically(&out.dir.join(MATRIX_COPY), matrix_text.as_bytes())?;
    let info = RunInfo {
        matrix_sha256: first_info.matrix_sha256,
        shard: Shard::WHOLE,
        trials_planned: planned,
        trials_done: trials.len(),
        merged_shards: shards,
        git_rev: crate::GIT_REV.to_string(),
    };
    out.write(&trials, &info)?;
    crate::out!(
        "merged {} part(s), {} trial(s), into {}",
        args.parts.len(),
        trials.len(),
        out.dir.display()
    );
    Ok(())
}

/// The parts read so far.
#[derive(Default)]
struct Joined {
    /// The first part: its directory, run.json and matrix copy.
    first: Option<(PathBuf, RunInfo, String)>,
    shards: Vec<Shard>,
    trials: Vec<Trial>,
    /// Trials the parts planned, together.
    planned: usize,
}

impl Joined {
    /// Adds the part in `part`, refusing one of another matrix or one that overlaps the parts
    /// so far.
    fn add(&mut self, part: &Path) -> Result<()> {
        let dir = RunDir {
            dir: part.to_path_buf(),
        };
        if !dir.has_trials() {
            return Err(InputError(format!(
                "{} has no {}: give the --out directories of `run --shard` runs",
                part.display(),
                jsonl::FILE_NAME
            ))
            .into());
        }
        let info = dir.read_info()?;
        let matrix_text = crate::files::read_input(&part.join(MATRIX_COPY))
            .with_context(|| format!("reading {}", part.join(MATRIX_COPY).display()))?;
        let part_shards = if info.merged_shards.is_empty() {
            vec![info.shard]
        } else {
            info.merged_shards.clone()
        };
        if let Some(bad) = part_shards.iter().find(|s| !s.is_valid()) {
            return Err(InputError(format!(
                "{} names shard {bad}, which is not i/n with 1 <= i <= n <= {}: that run.json \
                 was not written by `run --shard`",
                part.join("run.json").display(),
                Shard::MAX_COUNT
            ))
            .into());
        }
        match &self.first {
            None => self.first = Some((part.to_path_buf(), info.clone(), matrix_text)),
            Some((first_dir, first_info, _)) => {
                if info.matrix_sha256 != first_info.matrix_sha256 {
                    return Err(InputError(format!(
                        "{} and {} ran different matrices; merge only the shards of one matrix",
                        first_dir.display(),
                        part.display()
                    ))
                    .into());
                }
            }
        }
        self.add_shards(part, part_shards)?;
        if info.trials_done < info.trials_planned {
            crate::say!(
                "warning: {} is incomplete: {} of {} trials (finish it with `run --resume`)",
                part.display(),
                info.trials_done,
                info.trials_planned
            );
        }
        self.planned += info.trials_planned;
        self.add_trials(part, dir.read_trials()?)
    }

    /// The part's shards, which must split the matrix like the others and be new.
    fn add_shards(&mut self, part: &Path, part_shards: Vec<Shard>) -> Result<()> {
        if let Some(other) = self.shards.iter().find(|s| s.count != part_shards[0].count) {
            return Err(InputError(format!(
                "{} holds shard {} but another part holds shard {other}: the parts split the \
                 matrix differently",
                part.display(),
                part_shards[0]
            ))
            .into());
        }
        for shard in part_shards {
            if self.shards.contains(&shard) {
                return Err(InputError(format!(
                    "shard {shard} is given twice (again in {})",
                    part.display()
                ))
                .into());
            }
            self.shards.push(shard);
        }
        Ok(())
    }

    /// The part's trials, none of which another part may hold.
    fn add_trials(&mut self, part: &Path, part_trials: Vec<Trial>) -> Result<()> {
        for trial in part_trials {
            if self
                .trials
                .iter()
                .any(|t| t.id.trial_id == trial.id.trial_id)
            {
                return Err(InputError(format!(
                    "trial {} is in two parts (again in {}); were the shards given the same \
                     --shard?",
                    trial.id.trial_id,
                    part.display()
                ))
                .into());
            }
            self.trials.push(trial);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::trial::example_trial;

    use crate::run::matrix::SMALL_TEST_MATRIX as SMALL;

    fn shard_dir(root: &Path, shard: Shard, trial_ids: &[&str], sha: &str) -> PathBuf {
        let dir = root.join(format!("part{}", shard.index));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MATRIX_COPY), SMALL).unwrap();
        let trials: Vec<Trial> = trial_ids
            .iter()
            .map(|id| {
                let mut trial = example_trial("eevdf", 1, 10.0, None);
                trial.id.trial_id = id.to_string();
                trial.id.repetition = id.rsplit_once("/rep").unwrap().1.parse().unwrap();
                trial
            })
            .collect();
        let info = RunInfo {
            matrix_sha256: sha.into(),
            shard,
            trials_planned: trial_ids.len(),
            trials_done: trial_ids.len(),
            merged_shards: Vec::new(),
            git_rev: "r".into(),
        };
        RunDir { dir: dir.clone() }.write(&trials, &info).unwrap();
        dir
    }

    #[test]
    fn merge_joins_shards_and_refuses_overlaps_and_other_matrices() {
        let root = tempfile::tempdir().unwrap();
        let a = shard_dir(
            root.path(),
            Shard { index: 1, count: 2 },
            &["x/rep0", "y/rep1"],
            "s",
        );
        let b = shard_dir(root.path(), Shard { index: 2, count: 2 }, &["z/rep0"], "s");
        let out = root.path().join("merged");
        merge(&MergeArgs {
            out: out.clone(),
            parts: vec![a.clone(), b.clone()],
        })
        .unwrap();
        let merged = RunDir { dir: out.clone() };
        let ids: Vec<String> = merged
            .read_trials()
            .unwrap()
            .into_iter()
            .map(|t| t.id.trial_id)
            .collect();
        assert_eq!(ids, ["x/rep0", "z/rep0", "y/rep1"]);
        let info = merged.read_info().unwrap();
        assert_eq!((info.trials_planned, info.trials_done), (3, 3));
        assert_eq!(info.merged_shards.len(), 2);

        let refused = |parts: Vec<PathBuf>, wanted: &str| {
            let err = merge(&MergeArgs {
                out: root.path().join(format!("refused-{}", wanted.len())),
                parts,
            })
            .unwrap_err();
            assert!(format!("{err:#}").contains(wanted), "{err:#}");
        };
        refused(vec![a.clone(), a.clone()], "given twice");
        let other = shard_dir(root.path(), Shard { index: 3, count: 3 }, &["q/rep0"], "s");
        refused(vec![a.clone(), other], "split the matrix differently");
        let foreign = shard_dir(root.path(), Shard { index: 4, count: 4 }, &["w/rep0"], "t");
        refused(vec![a.clone(), foreign], "different matrices");
        let err = merge(&MergeArgs {
            out: out.clone(),
            parts: vec![a, b],
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("already holds trials"),
            "{err:#}"
        );
    }
}
