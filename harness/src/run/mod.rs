//! Running trials: options validated once into a [`Plan`], then each trial armed, fired,
//! disarmed and accounted in one loop ([`Bench::run_all`]) that exports after every trial, for
//! `attack` and `run --matrix` alike.

pub mod account;
mod arm;
pub mod bench;
mod disarm;
mod fire;
pub mod matrix;
pub mod plan;
pub mod producer;
mod record;
pub mod trial;
pub mod work_dir;
pub mod workload;

pub use bench::{check_privileges, run_attack, Bench, TrialSink};
pub use plan::{AttackOptions, Plan, ProducerPlan, TrialSpec};
