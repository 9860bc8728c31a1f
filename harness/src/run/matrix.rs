//! The experiment matrix (`run --matrix FILE.toml`): the file model, its cells as `attack`
//! plans, and the order their trials run in.
//!
//! A matrix names schedulers, collectors, attacks, workloads and a number of repetitions (see
//! `docs/matrix.md`). Each `[[attack]]` with each scheduler and workload option becomes the
//! [`AttackOptions`] of one `attack`, validated into a [`Plan`] exactly as `attack`'s flags are,
//! so a matrix can ask for nothing the command line could not. The plans' trials are then put
//! in run order:
//!
//! - boots outermost: each boot (a guest of `run --vm`, `boots` in the file) runs every
//!   repetition of every cell, so a boot is one independent replication of the matrix;
//! - then repetitions, so that a machine that drifts during a long run (thermal state, a
//!   neighbour's load) spreads its drift over every cell instead of favouring the cells run
//!   first;
//! - within a repetition, cells in a pseudo-random order that differs per repetition and is
//!   fixed by the matrix's `order_seed` (a SHA-256 of seed, boot, repetition and trial id),
//!   so every runner, shard and resumed run agrees on it, and no scheduler always runs first
//!   or last.
//!
//! `--shard i/n` keeps every n-th trial of that order, starting at the i-th, so shards get
//! equal shares of every repetition.

use std::collections::BTreeSet;
use std::path::Path;

use attacks::FloodKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::collector::CollectorKind;
use crate::error::InputError;
use crate::results::scope::TraceScope;
use crate::run::plan::{split_scx_args, AttackOptions};
use crate::run::workload;
use crate::run::{Plan, TrialSpec};
use crate::size::parse_ring_size;

/// The matrix file, as written by users. Unknown keys are errors: a misspelt key silently
/// ignored would run a different experiment than the one asked for.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    /// How long each flood runs, in seconds (whole seconds when there are workloads).
    pub duration_s: f64,
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Independent boots, each running every repetition (`run --vm` boots one guest per boot):
    /// the unit of replication that tables and confidence intervals are computed over.
    #[serde(default = "one")]
    pub boots: u32,
    /// Scheduler names as for `attack --scheduler`, or tables `{ name, label, scx_args }` for
    /// variants (ablations): `{ name = "aegis", label = "aegis:no-delta-gating", scx_args =
    /// "--delta 0" }`.
    pub schedulers: Vec<SchedulerEntry>,
    #[serde(default = "builtin_collector")]
    pub collectors: Vec<String>,
    /// Workloads run beside the attack; `none` for the attack alone.
    #[serde(default = "no_workload")]
    pub workloads: Vec<String>,
    /// Sample run delay, fairness and the waits' CDF (`attack --watch-run-delay`).
    #[serde(default = "yes")]
    pub watch_run_delay: bool,
    /// What the built-in collectors trace (`attack --trace-scope`): `attack` or `all`.
    #[serde(default)]
    pub trace_scope: TraceScope,
    /// Fixes the order of cells within each repetition.
    #[serde(default)]
    pub order_seed: u64,
    #[serde(rename = "attack")]
    pub attacks: Vec<AttackEntry>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SchedulerEntry {
    Name(String),
    Variant {
        name: String,
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        scx_args: Option<String>,
    },
}

impl SchedulerEntry {
    pub fn name(&self) -> &str {
        match self {
            SchedulerEntry::Name(name) | SchedulerEntry::Variant { name, .. } => name,
        }
    }

    fn label(&self) -> Option<&str> {
        match self {
            SchedulerEntry::Name(_) => None,
            SchedulerEntry::Variant { label, .. } => label.as_deref(),
        }
    }

    fn scx_args(&self) -> Option<&str> {
        match self {
            SchedulerEntry::Name(_) => None,
            SchedulerEntry::Variant { scx_args, .. } => scx_args.as_deref(),
        }
    }
}

/// One `[[attack]]`: the `attack` flags of that name.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttackEntry {
    /// The attack's name in trial ids; the flood kind by default.
    #[serde(default)]
    pub name: Option<String>,
    pub flood: String,
    /// Attack intensities: flood threads.
    pub threads: Vec<u32>,
    /// The built-in collectors' ring sizes, e.g. `["16KiB"]`.
    #[serde(default)]
    pub ring_size: Vec<String>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub rate: Option<u64>,
    /// An adaptive attacker (`attack --evade`): `spin:US`, `spread:N` or `hogs:N`.
    #[serde(default)]
    pub evade: Option<String>,
    #[serde(default)]
    pub audit_backlog_limit: Vec<u32>,
    #[serde(default)]
    pub audit_backlog_wait_time: Vec<u64>,
}

impl AttackEntry {
    /// The attack's name: its `name`, else its flood kind (`openat+spin:200` with an evader,
    /// as `attack` names it).
    fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => attacks::evade::attack_name(&self.flood, self.evade.as_deref()),
        }
    }
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn builtin_collector() -> Vec<String> {
    vec!["builtin".to_string()]
}
fn no_workload() -> Vec<String> {
    vec!["none".to_string()]
}

/// A matrix read from its file: the text (copied beside the results) and its hash.
pub struct Matrix {
    pub file: MatrixFile,
    pub text: String,
    pub sha256: String,
}

impl Matrix {
    pub fn read(path: &Path) -> Result<Matrix, InputError> {
        let text = crate::files::read_input(path).map_err(|err| {
            InputError(format!(
                "cannot read the matrix {}: {err}; give an existing TOML file (see \
                 docs/matrix.md)",
                path.display()
            ))
        })?;
        Matrix::parse(&text)
            .map_err(|InputError(why)| InputError(format!("matrix {}: {why}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Matrix, InputError> {
        let file: MatrixFile = toml::from_str(text).map_err(|err| {
            InputError(format!(
                "{}; see docs/matrix.md for the keys",
                crate::error::toml_error_line(text, &err)
            ))
        })?;
        if file.schedulers.is_empty() {
            return Err(InputError(
                "`schedulers` is empty; e.g. schedulers = [\"eevdf\", \"aegis\"]".into(),
            ));
        }
        if file.attacks.is_empty() {
            return Err(InputError(
                "no [[attack]]; add one, e.g. [[attack]] flood = \"openat\" threads = [1, 8]"
                    .into(),
            ));
        }
        if file.collectors.is_empty() || file.workloads.is_empty() {
            return Err(InputError(
                "`collectors` and `workloads` may not be empty (leave them out for the \
                 built-in collector and no workload)"
                    .into(),
            ));
        }
        let mut labels = BTreeSet::new();
        for entry in &file.schedulers {
            let label = entry.label().unwrap_or(entry.name());
            if !labels.insert(label.to_string()) {
                return Err(InputError(format!(
                    "scheduler {label} appears twice; give variants distinct labels, e.g. {{ \
                     name = \"aegis\", label = \"aegis:no-delta-gating\", scx_args = \"--delta \
                     0\" }}"
                )));
            }
        }
        let mut names = BTreeSet::new();
        for attack in &file.attacks {
            let name = attack.label();
            if !names.insert(name.clone()) {
                return Err(InputError(format!(
                    "two [[attack]] entries are called {name}; give them distinct `name`s"
                )));
            }
        }
        let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
        Ok(Matrix {
            file,
            text: text.to_string(),
            sha256,
        })
    }

    /// The `attack` plans of the matrix, validated like `attack`'s flags: one per attack,
    /// scheduler entry and workload option. With `guest_schedulers`, scheduler names are left
    /// for the guest to check (its kernel decides which exist).
    pub fn plans(&self, guest_schedulers: bool) -> Result<Vec<Plan>, InputError> {
        let mut plans = Vec::new();
        for attack in &self.file.attacks {
            for scheduler in &self.file.schedulers {
                for workload in &self.file.workloads {
                    plans.push(self.plan(attack, scheduler, workload, guest_schedulers)?);
                }
            }
        }
        Ok(plans)
    }

    /// The plan of one cell group: `attack` beside `workload` under `scheduler`.
    fn plan(
        &self,
        attack: &AttackEntry,
        scheduler: &SchedulerEntry,
        workload: &str,
        guest_schedulers: bool,
    ) -> Result<Plan, InputError> {
        let flood: FloodKind = attack.flood.parse().map_err(|err| {
            InputError(format!(
                "[[attack]] {}: invalid value '{}' for '--flood <KIND>': {err}",
                attack.label(),
                attack.flood
            ))
        })?;
        let in_cell = |InputError(why)| {
            InputError(format!(
                "[[attack]] {} with scheduler {}: {why}",
                attack.label(),
                scheduler.name()
            ))
        };
        let options = cell_options(
            &self.file,
            attack,
            flood,
            scheduler,
            workload,
            guest_schedulers,
        )
        .map_err(in_cell)?;
        // The guest resolves the scheduler, so here no scheduler takes the sched_ext arguments:
        // they are checked there, with it.
        let mut plan = if guest_schedulers {
            let scx_args = options.scx_args.clone();
            let mut plan = Plan::for_guest(&AttackOptions {
                scx_args: Vec::new(),
                ..options
            })
            .map_err(in_cell)?;
            plan.scx_args = scx_args;
            plan
        } else {
            Plan::new(&options).map_err(in_cell)?
        };
        if let Some(name) = &attack.name {
            plan.attack_label = name.clone();
        }
        plan.scheduler_label = match scheduler.label() {
            Some(label) => Some(label.to_string()),
            // The plan runs the host's default; its trials will be the guest's.
            None if guest_schedulers => Some(scheduler.name().to_string()),
            None => None,
        };
        Ok(plan)
    }
}

/// Values as `attack`'s comma-list flags take them: each entry may itself be a comma list.
fn comma_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|value| value.split(',').map(String::from))
        .collect()
}

/// The options of one cell group of the matrix; what a cell leaves out is `attack`'s default.
fn cell_options(
    file: &MatrixFile,
    attack: &AttackEntry,
    flood: FloodKind,
    scheduler: &SchedulerEntry,
    workload: &str,
    guest_schedulers: bool,
) -> Result<AttackOptions, InputError> {
    let defaults = AttackOptions::default();
    let ring_sizes = if attack.ring_size.is_empty() {
        defaults.ring_sizes.clone()
    } else {
        let sizes = comma_list(&attack.ring_size);
        sizes
            .iter()
            .map(|size| parse_ring_size(size))
            .collect::<Result<_, _>>()?
    };
    let collectors = comma_list(&file.collectors)
        .iter()
        .map(|name| CollectorKind::parse(name))
        .collect::<Result<_, _>>()?;
    let workloads = match workload {
        "none" => Vec::new(),
        names => workload::parse_names(&comma_list(&[names.to_string()]))?,
    };
    Ok(AttackOptions {
        flood,
        threads: attack.threads.clone(),
        duration_s: file.duration_s,
        count: attack.count,
        rate: attack.rate,
        evade: match &attack.evade {
            Some(text) => text
                .parse()
                .map_err(|err: attacks::evade::BadEvade| InputError(err.to_string()))?,
            None => attacks::Evade::None,
        },
        ring_sizes,
        collectors,
        schedulers: if guest_schedulers {
            Vec::new()
        } else {
            comma_list(&[scheduler.name().to_string()])
        },
        scx_args: scheduler
            .scx_args()
            .map(split_scx_args)
            .transpose()?
            .unwrap_or_default(),
        workloads,
        watch_run_delay: file.watch_run_delay,
        trace_scope: file.trace_scope,
        repetitions: file.repetitions,
        boots: file.boots,
        audit_backlog_limits: or_default(
            &attack.audit_backlog_limit,
            &defaults.audit_backlog_limits,
        ),
        audit_backlog_wait_times_ms: or_default(
            &attack.audit_backlog_wait_time,
            &defaults.audit_backlog_wait_times_ms,
        ),
        ..defaults
    })
}

/// `given`, or `default` when nothing is given.
fn or_default<T: Clone>(given: &[T], default: &[T]) -> Vec<T> {
    if given.is_empty() { default } else { given }.to_vec()
}

/// One trial to run: its plan (by index) and spec, and its id.
pub struct Planned {
    pub plan: usize,
    pub spec: TrialSpec,
    pub id: String,
}

/// Every trial of the plans, in run order (see the module docs).
pub fn run_order(plans: &[Plan], order_seed: u64) -> Vec<Planned> {
    let mut all: Vec<((u32, u32), [u8; 32], Planned)> = Vec::new();
    for (index, plan) in plans.iter().enumerate() {
        for spec in plan.trials() {
            let id = plan.trial_id(&spec);
            let mut hasher = Sha256::new();
            hasher.update(order_seed.to_le_bytes());
            // Boot 0 hashes as runs of one boot always did, so their order is unchanged.
            if spec.boot > 0 {
                hasher.update(spec.boot.to_le_bytes());
            }
            hasher.update(spec.repetition.to_le_bytes());
            hasher.update(id.as_bytes());
            let key: [u8; 32] = hasher.finalize().into();
            all.push((
                (spec.boot, spec.repetition),
                key,
                Planned {
                    plan: index,
                    spec,
                    id,
                },
            ));
        }
    }
    all.sort_by_key(|(repetition, key, _)| (*repetition, *key));
    all.into_iter().map(|(_, _, planned)| planned).collect()
}

/// `--shard i/n`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let bad = || {
            InputError(format!(
                "--shard {text} is not i/n with 1 <= i <= n; e.g. --shard 2/3 runs the second \
                 of three parts"
            ))
        };
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let shard = Shard { index, count };
        if !shard.is_valid() {
            return Err(bad());
        }
        Ok(shard)
    }

    /// The most shards a matrix may be split into (more would be runners with no trial).
    pub const MAX_COUNT: u32 = 10_000;

    /// `1 <= index <= count <= MAX_COUNT`; a shard read from a file is checked too.
    pub fn is_valid(&self) -> bool {
        self.index >= 1 && self.index <= self.count && self.count <= Self::MAX_COUNT
    }

    /// Whether the trial at `position` of the run order is this shard's.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count as usize == (self.index - 1) as usize
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A small matrix for tests: two schedulers (one a labelled variant), two thread counts and
/// two rings, three repetitions.
#[cfg(test)]
pub(crate) const SMALL_TEST_MATRIX: &str = r#"
duration_s = 2
repetitions = 3
schedulers = ["eevdf", { label = "eevdf:other", name = "eevdf" }]

[[attack]]
flood = "openat"
threads = [1, 4]
ring_size = ["16KiB", "64KiB"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    use super::SMALL_TEST_MATRIX as SMALL;

    fn ids(plans: &[Plan], seed: u64) -> Vec<String> {
        run_order(plans, seed).into_iter().map(|p| p.id).collect()
    }

    #[test]
    fn a_guest_matrix_plans_a_labelled_scheduler_with_its_sched_ext_arguments() {
        // The guest resolves `aegis`; on the host no scheduler is named, and the arguments
        // must not be refused as given to none (CI's planted regressions are such matrices).
        let matrix = Matrix::parse(
            "duration_s = 2\nschedulers = [{ name = \"aegis\", label = \"aegis\", scx_args = \"--hold-fill-pct 100\" }]\n[[attack]]\nflood = \"openat\"\nthreads = [8]\n",
        )
        .unwrap();
        let plans = matrix.plans(true).unwrap();
        assert_eq!(plans[0].scx_args, ["--hold-fill-pct", "100"]);
        assert_eq!(plans[0].scheduler_label.as_deref(), Some("aegis"));
    }

    #[test]
    fn the_order_is_repetition_major_fixed_by_the_seed_and_covers_every_cell() {
        let matrix = Matrix::parse(SMALL).unwrap();
        let plans = matrix.plans(false).unwrap();
        let order = ids(&plans, 0);
        // 2 scheduler entries x 2 thread counts x 2 rings x 3 repetitions.
        assert_eq!(order.len(), 24);
        assert_eq!(
            order.iter().collect::<BTreeSet<_>>().len(),
            24,
            "ids are unique"
        );
        for (position, id) in order.iter().enumerate() {
            assert!(
                id.ends_with(&format!("/rep{}", position / 8)),
                "{id} at {position}"
            );
        }
        assert!(order.contains(&"openat/eevdf:other/builtin/ring16KiB/x4/none/rep2".into()));
        assert_eq!(order, ids(&plans, 0), "the same seed gives the same order");
        assert_ne!(order, ids(&plans, 1), "another seed gives another order");
        let cells = |rep: usize| -> Vec<String> {
            order[rep * 8..rep * 8 + 8]
                .iter()
                .map(|id| id.rsplit_once('/').unwrap().0.to_string())
                .collect()
        };
        assert_ne!(
            cells(0),
            cells(1),
            "each repetition runs its cells in its own order"
        );
    }

    #[test]
    fn each_boot_runs_every_repetition_in_its_own_order() {
        let text = SMALL.replace("repetitions = 3", "repetitions = 2\nboots = 3");
        let plans = Matrix::parse(&text).unwrap().plans(false).unwrap();
        let order = run_order(&plans, 0);
        // 8 cells x 2 repetitions x 3 boots, boot-major, then repetition-major.
        assert_eq!(order.len(), 48);
        for (position, planned) in order.iter().enumerate() {
            assert_eq!(planned.spec.boot as usize, position / 16, "{}", planned.id);
            assert_eq!(planned.spec.repetition as usize, position % 16 / 8);
            assert!(
                planned.id.ends_with(&format!(
                    "/boot{}/rep{}",
                    planned.spec.boot, planned.spec.repetition
                )),
                "{}",
                planned.id
            );
        }
        let cells = |boot: usize| -> Vec<String> {
            order[boot * 16..boot * 16 + 8]
                .iter()
                .map(|p| p.id.split("/boot").next().unwrap().to_string())
                .collect()
        };
        assert_ne!(cells(0), cells(1), "each boot has its own order");
        // Nothing always runs first: the first cell differs across the boots' repetitions.
        let firsts: BTreeSet<String> = (0..6)
            .map(|block| {
                order[block * 8]
                    .id
                    .split("/boot")
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(firsts.len() > 1, "{firsts:?}");
        // One boot's order is the order runs of one boot always had.
        let one = Matrix::parse(SMALL).unwrap().plans(false).unwrap();
        assert!(ids(&one, 0)[0].ends_with("/rep0") && !ids(&one, 0)[0].contains("/boot"));
    }

    #[test]
    fn shards_split_the_order_into_disjoint_parts_that_cover_it() {
        let plans = Matrix::parse(SMALL).unwrap().plans(false).unwrap();
        let order = ids(&plans, 0);
        let mut seen = Vec::new();
        for index in 1..=5 {
            let shard = Shard { index, count: 5 };
            let part: Vec<&String> = order
                .iter()
                .enumerate()
                .filter(|(position, _)| shard.owns(*position))
                .map(|(_, id)| id)
                .collect();
            assert!(
                part.len() == 4 || part.len() == 5,
                "{shard}: {}",
                part.len()
            );
            seen.extend(part);
        }
        seen.sort();
        let mut all: Vec<&String> = order.iter().collect();
        all.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn shard_text_is_checked() {
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 2, count: 3 });
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            let InputError(why) = Shard::parse(bad).unwrap_err();
            assert!(why.contains("e.g. --shard 2/3"), "{bad}: {why}");
        }
    }

    #[test]
    fn trace_scope_is_a_top_level_key_and_attack_by_default() {
        let plans = Matrix::parse(SMALL).unwrap().plans(false).unwrap();
        assert!(plans.iter().all(|p| p.trace_scope == TraceScope::Attack));
        let all = Matrix::parse(&format!("trace_scope = \"all\"\n{SMALL}")).unwrap();
        let plans = all.plans(false).unwrap();
        assert!(plans.iter().all(|p| p.trace_scope == TraceScope::All));
    }

    #[test]
    fn bad_matrices_name_the_problem() {
        let cases = [
            (SMALL.replace("repetitions", "repetitoins"), "repetitoins"),
            (SMALL.replace("\"16KiB\", ", "\"16 apples\", "), "16 apples"),
            (SMALL.replace("openat", "opnat"), "opnat"),
            (
                SMALL.replace("label = \"eevdf:other\", ", ""),
                "appears twice",
            ),
            (
                format!("{SMALL}\n[[attack]]\nflood = \"openat\"\nthreads = [2]\n"),
                "distinct `name`s",
            ),
            (
                "duration_s = 1\nschedulers = [\"eevdf\"]\nattack = []\n".into(),
                "[[attack]]",
            ),
            (
                SMALL.replace("duration_s = 2", "duration_s = -1"),
                "--duration",
            ),
            (
                format!("trace_scope = \"machine\"\n{SMALL}"),
                "unknown variant `machine`",
            ),
            (
                format!("trace_scope = \"all\"\ncollectors = [\"auditd\"]\n{SMALL}"),
                "--trace-scope all needs a built-in collector",
            ),
        ];
        for (text, wanted) in cases {
            let why = match Matrix::parse(&text).and_then(|m| m.plans(false).map(|_| ())) {
                Ok(()) => panic!("accepted a matrix that should fail with {wanted}"),
                Err(InputError(why)) => why,
            };
            assert!(why.contains(wanted), "wanted {wanted:?} in: {why}");
        }
    }
}
