//! `rasdrill records explain|dump`: machine-check records for people.

use std::io;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use rasdrill_inject::mcelang;
use rasdrill_inject::status::{Explanation, Vendor};

use crate::exit::Failure;

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Explain MCi_STATUS values: named bits, MCA error code, severity
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Print the records of mce-inject language files canonically
    #[command(after_help = DUMP_EXAMPLES)]
    Dump(DumpArgs),
}

const EXPLAIN_EXAMPLES: &str = "\
Examples:
  rasdrill records explain 0x9c7d410092080813
  rasdrill records explain --vendor intel 0xbd80000000100134
  rasdrill records explain 'VAL UC EN PCC 0x0134'";

const DUMP_EXAMPLES: &str = "\
Examples:
  rasdrill records dump corrected.mce
  echo 'CPU 0 BANK 4 STATUS CORRECTED ADDR 0x1000' | rasdrill records dump -";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VendorArg {
    Intel,
    Amd,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Read vendor-specific bits as this vendor's (default: show both)
    #[arg(long, value_enum)]
    pub vendor: Option<VendorArg>,
    /// Status values: numbers (0x9c7d410092080813) or flags (`VAL UC EN 0x134`)
    #[arg(required = true, value_name = "STATUS", value_parser = super::status)]
    pub statuses: Vec<u64>,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// mce-inject language files; `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(cmd: RecordsCommand) -> Result<(), Failure> {
    match cmd {
        RecordsCommand::Explain(args) => {
            let vendor = match args.vendor {
                None => Vendor::Unknown,
                Some(VendorArg::Intel) => Vendor::Intel,
                Some(VendorArg::Amd) => Vendor::Amd,
            };
            let texts: Vec<String> = args
                .statuses
                .iter()
                .map(|&s| Explanation::new(s, vendor).to_string())
                .collect();
            crate::exit::print(format_args!("{}\n", texts.join("\n\n")))
        }
        RecordsCommand::Dump(args) => {
            let mut records = Vec::new();
            for file in &args.files {
                records.extend(read_records(file)?);
            }
            crate::exit::print(mcelang::print_all(&records))
        }
    }
}

/// The records of one mce-inject language file (`-` is standard input).
pub fn read_records(file: &Path) -> Result<Vec<rasdrill_inject::MceRecord>, Failure> {
    let (text, name) = if file.as_os_str() == "-" {
        let name = "<stdin>";
        (
            mcelang::read_text(io::stdin().lock(), name),
            name.to_string(),
        )
    } else {
        (mcelang::read_file(file), file.display().to_string())
    };
    let text = text.map_err(Failure::bad_input)?;
    Ok(mcelang::parse(&text, &name)?)
}
