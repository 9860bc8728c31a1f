//! `aegis-bench sim`: `validate` (the simulator against real host runs) and `evaluate` (the
//! simulated schedulers against the bound and the fair share). `sim --validate` and `sim --evaluate`, their old
//! spelling, land here too.

pub mod evaluate;
pub mod validate;

use anyhow::{bail, Result};

use crate::cli::{SimArgs, SimCommand};

/// The flood both commands simulate (the one `make demo` runs).
pub const FLOOD: &str = "openat";

pub fn sim(args: &SimArgs) -> Result<()> {
    match args.subcommand() {
        Some(SimCommand::Validate(args)) => validate::run(&args),
        Some(SimCommand::Evaluate(args)) => evaluate::run(&args),
        None => bail!(
            "`aegis-bench sim` needs a subcommand, `validate` (root) or `evaluate`, and --json FILE"
        ),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::{Cli, Command, SimCommand};

    fn sim(args: &[&str]) -> Result<Option<SimCommand>, clap::Error> {
        let argv = ["aegis-bench", "sim"].iter().chain(args);
        let Command::Sim(sim) = Cli::try_parse_from(argv)?.command else {
            unreachable!("parsed a sim command line");
        };
        Ok(sim.subcommand())
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_old_flags_spell_the_same_subcommands() {
        let validate = [
            "--json",
            "v.json",
            "--threads",
            "1,4",
            "--repetitions",
            "2",
            "--eevdf-model",
            "simple",
            "--per-cpu-run-queues",
            "--real-trials",
            "t.json",
        ];
        let new = sim(&[&["validate"], &validate[..]].concat()).unwrap();
        assert!(matches!(new, Some(SimCommand::Validate(_))), "{new:?}");
        assert_eq!(
            sim(&[&["--validate"], &validate[..]].concat()).unwrap(),
            new
        );
        let evaluate = [
            "--quick",
            "--cpus",
            "2,8",
            "--model",
            "m.json",
            "--wakeup-latency-us",
            "20",
            "--ring-size",
            "16KiB",
        ];
        let new = sim(&[&["evaluate"], &evaluate[..]].concat()).unwrap();
        assert!(matches!(new, Some(SimCommand::Evaluate(_))), "{new:?}");
        assert_eq!(
            sim(&[&evaluate[..], &["--evaluate"]].concat()).unwrap(),
            new
        );
        // The old spelling took every flag of both and ignored the other's.
        assert_eq!(
            sim(&["--validate", "--cpus", "2"]).unwrap(),
            sim(&["validate"]).unwrap()
        );
        assert_eq!(sim(&[]).unwrap(), None);
    }

    #[test]
    fn the_two_spellings_do_not_mix() {
        assert!(sim(&["--validate", "--evaluate"]).is_err());
        assert!(sim(&["--json", "v.json", "validate"]).is_err());
        assert!(sim(&["validate", "--validate"]).is_err());
        assert!(sim(&["validate", "--cpus", "2"]).is_err());
    }
}
