//! One module per subcommand, named like it.

pub mod attack;
pub mod calibrate;
pub mod doctor;
pub mod gate;
pub mod merge;
pub mod run;
pub mod sim_eval;
pub mod train;
