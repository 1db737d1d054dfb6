//! `rasdrill diff`: which decoded lines moved between two runs.

use std::path::PathBuf;

use clap::Args;

use crate::diff::{self, Comparison, Side};
use crate::exit::{Code, Failure};

pub const EXAMPLES: &str = "\
Examples:
  # Two runs of the suite, e.g. before and after a decoder change:
  rasdrill run --json before.json
  rasdrill run --kernel ~/linux/vmlinux --modules ~/linux/mods/lib/modules/6.12.0 --json after.json
  rasdrill diff before.json after.json
  # The same, with a side-by-side HTML page for reviewers:
  rasdrill diff before.json after.json --html diff.html

Prints, per scenario and collector, a unified diff of the normalised output, then one summary
line (`2 of 43 scenarios changed: ...`).
Exit codes: 0 nothing moved; 3 something moved; 1 nothing moved but a scenario failed on both
sides (not compared); 2 a report cannot be read.";

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline run's JSON report (`rasdrill run --json FILE`)
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The run to compare with it
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Also write a self-contained HTML page with side-by-side diffs here
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(args: DiffArgs) -> Result<(), Failure> {
    let base = Side::read(&args.base).map_err(Failure::bad_input)?;
    let new = Side::read(&args.new).map_err(Failure::bad_input)?;
    report(&diff::compare(&base, &new), args.html.as_deref())
}

/// Prints the comparison, writes the HTML page if asked, and turns the result into the exit code.
pub fn report(c: &Comparison, html: Option<&std::path::Path>) -> Result<(), Failure> {
    print!("{}", c.text());
    if let Some(path) = html {
        std::fs::write(path, diff::html(c)).map_err(|e| {
            Failure::infrastructure(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    match c.exit_code() {
        Code::Success => Ok(()),
        code => Err(Failure::new(code, c.summary())),
    }
}
