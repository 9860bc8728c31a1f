//! One module per subcommand, named like it.

pub mod attack;
pub mod calibrate;
pub mod doctor;
pub mod gate;
pub mod sim_eval;
pub mod train;
