//! The `rasdrill` command line: the top-level commands and their dispatch.
//! Each command's arguments and work live in [`crate::cmd`].

use clap::{Parser, Subcommand};

use crate::cmd::bench::{self, BenchCommand};
use crate::cmd::diff::{self as diff_cmd, DiffArgs};
use crate::cmd::fuzz::{self, FuzzArgs};
use crate::cmd::inject::{self, InjectArgs};
use crate::cmd::kernel::{self, KernelCommand};
use crate::cmd::records::{self, RecordsCommand};
use crate::cmd::run::{self as run_cmd, RunArgs};
use crate::exit::{self, Code, Failure};
use rasdrill_qemu::interrupt;

const AFTER_HELP: &str = "\
Examples:
  rasdrill run
  rasdrill diff before.json after.json --html diff.html
  rasdrill records explain 0x9c7d410092080813
  rasdrill records dump errors.mce
  rasdrill inject --cpu 0 --bank 4 --status 0x9c7d410092080813 --addr 0x12345000 --dry-run
  rasdrill inject --guest amd-f15h --via qemu --bank 4 --status 0x9c7d410092080813
  rasdrill fuzz --seed 1 --count 20
  rasdrill kernel fetch
  rasdrill bench boot";

#[derive(Debug, Parser)]
#[command(
    name = "rasdrill",
    version,
    about = "Rehearse hardware failures: inject machine-check and memory errors, and check what decodes them",
    after_help = format!("{AFTER_HELP}\n\n{}", exit::HELP),
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios (default: scenarios/) and compare what the decoders said with golden files
    #[command(after_help = run_cmd::EXAMPLES)]
    Run(Box<RunArgs>),
    /// Compare two runs' JSON reports: which decoded lines moved, per scenario and collector
    #[command(after_help = diff_cmd::EXAMPLES)]
    Diff(DiffArgs),
    /// Explain and print machine-check records
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Inject MCE, EDAC, EINJ, hwpoison or AER errors on this machine or in a throw-away guest
    #[command(after_help = inject::EXAMPLES)]
    Inject(Box<InjectArgs>),
    /// Inject seeded random corrected errors into a guest and check every decoder's claims
    #[command(after_help = fuzz::EXAMPLES)]
    Fuzz(Box<FuzzArgs>),
    /// Fetch and list the guest kernels
    #[command(subcommand, after_help = kernel::EXAMPLES)]
    Kernel(KernelCommand),
    /// Measure: cold start to agent ready (median of several boots)
    #[command(subcommand, after_help = bench::EXAMPLES)]
    Bench(BenchCommand),
    /// Be the guest's /init: the agent the host drives over a serial line (run by the kernel, not by hand)
    #[command(hide = true)]
    Agent,
}

/// Parses the process's arguments (clap reports usage errors itself, with exit code 2) and runs
/// the command.
pub fn run() -> Result<(), Failure> {
    // As the guest's /init the kernel gives us no useful arguments: be the agent.
    if crate::agent::is_init() {
        return agent();
    }
    rasdrill_qemu::process::install_cleanup_handlers();
    let cli = Cli::parse();
    if cleans_up_after_a_signal(&cli.command) {
        interrupt::cooperate();
    }
    let result = dispatch(cli);
    match interrupt::requested() {
        // What failed after the signal (a killed guest) is its consequence, not news.
        Some(signal) => match result {
            Err(f) if f.code == Code::for_signal(signal) => Err(f),
            _ => Err(Failure::interrupted(
                signal,
                format!("interrupted by {}", interrupt::name(signal)),
            )),
        },
        None => result,
    }
}

/// The commands that boot guests or start daemons stop cleanly on a first SIGINT or SIGTERM:
/// QEMU killed, daemons stopped, temporary directories removed, reports written. The others
/// end at once.
fn cleans_up_after_a_signal(command: &Command) -> bool {
    match command {
        Command::Run(_) | Command::Bench(_) => true,
        Command::Inject(args) => args.guest.is_some(),
        _ => false,
    }
}

pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run(args) => run_cmd::run(*args),
        Command::Diff(args) => diff_cmd::run(args),
        Command::Records(cmd) => records::run(cmd),
        Command::Inject(args) => inject::run(*args),
        Command::Fuzz(args) => fuzz::run(*args),
        Command::Kernel(cmd) => kernel::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Agent => agent(),
    }
}

fn agent() -> Result<(), Failure> {
    match crate::agent::run() {
        Ok(never) => match never {},
        Err(e) => Err(Failure::bad_input(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
