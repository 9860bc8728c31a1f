//! Running trials: options validated once into a [`Plan`], then each trial armed, fired,
//! disarmed and accounted, exporting after every one.

pub mod bench;
pub mod matrix;
pub mod plan;
pub mod producer;
pub mod trial;
pub mod workload;

pub use bench::{check_privileges, run_attack, Bench};
pub use plan::{AttackOptions, Plan, ProducerPlan, TrialSpec};
