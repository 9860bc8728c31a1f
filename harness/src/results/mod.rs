//! The records: what a trial, a collector, the simulator and scx_aegis report. Figures,
//! the gate and the exporters read these types; nothing here imports a runner.

pub mod collector;
pub mod policy;
pub mod scope;
pub mod sim;
pub mod trial;
