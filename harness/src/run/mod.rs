//! `aegis-bench attack`: validate once into a [`Plan`], then arm, fire, disarm and account
//! each trial, exporting after every one.

pub mod account;
pub mod bench;
pub mod matrix;
pub mod plan;
pub mod producer;
pub mod trial;
pub mod workload;

pub use bench::{check_privileges, run_attack, Bench};
pub use plan::{Plan, ProducerPlan, TrialSpec};
