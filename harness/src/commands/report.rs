//! `aegis-bench report FILE.md...`: the result tables in markdown files regenerated from the
//! result files their blocks name ([`crate::report`]); `--check` compares instead of writing.

use anyhow::Result;

use crate::cli::ReportArgs;
use crate::error::InputError;
use crate::report::{first_difference, regenerate};

/// Returns the exit status: 1 when `--check` found a block that differs.
pub fn report(args: &ReportArgs) -> Result<i32> {
    let root = std::env::current_dir()?;
    let mut stale = 0;
    for path in &args.files {
        let text = crate::files::read_input(path).map_err(|err| {
            InputError(format!(
                "cannot read {}: {err}; give markdown files holding report blocks",
                path.display()
            ))
        })?;
        let new = regenerate(&text, &root)
            .map_err(|err| InputError(format!("{}: {err:#}", path.display())))?;
        match first_difference(&text, &new) {
            None => crate::say!("{}: up to date", path.display()),
            Some((line, old, generated)) if args.check => {
                stale += 1;
                crate::say!(
                    "{}:{line}: differs from what the results generate\n  file:      {old}\n  \
                     generated: {generated}\n  run `aegis-bench report {}` to regenerate it",
                    path.display(),
                    path.display()
                );
            }
            Some(_) => {
                crate::files::write_atomically(path, new.as_bytes())?;
                crate::say!("{}: regenerated", path.display());
            }
        }
    }
    Ok(if stale > 0 { 1 } else { 0 })
}
