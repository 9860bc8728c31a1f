//! One module per subcommand, named like it.

pub mod attack;
pub mod calibrate;
pub mod doctor;
pub mod figures;
pub mod gate;
pub mod log;
pub mod merge;
pub mod report;
pub mod run;
pub mod sim;
pub mod train;
pub mod worker;
