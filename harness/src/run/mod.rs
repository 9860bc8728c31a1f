//! `aegis-bench attack`: validate once into a [`Plan`], then arm, fire, disarm and account
//! each trial, exporting after every one.

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
pub mod workload;

pub use bench::{check_privileges, run_attack, Bench};
pub use plan::{Plan, ProducerPlan, TrialSpec};
