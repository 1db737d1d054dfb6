//! The `rasdrill` binary: the one place errors are reported and exit codes chosen
//! (see `rasdrill --help` and harness/src/exit.rs).

use std::process::ExitCode;

fn main() -> ExitCode {
    match rasdrill::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.is_quiet() {
                eprintln!("error: {}", failure.message);
            }
            failure.code.into()
        }
    }
}
