//! `rasdrill`'s exit codes, and [`Failure`], the one error every command returns to main.

use std::fmt;
use std::process::ExitCode;

use rasdrill_inject::injector::{InjectError, PerformError};
use rasdrill_inject::lock::LockError;
use rasdrill_inject::mcelang::ParseError;
use rasdrill_qemu::vm::Diagnosed;

use crate::guest::GuestError;
use crate::target::TargetError;

/// What a run's exit status means. Documented to users by [`HELP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success = 0,
    /// A scenario or a check failed.
    Failed = 1,
    /// Bad input, or a refusal (safety guard, preflight check): nothing was changed.
    /// Command-line usage errors, reported by clap, use it too.
    BadInput = 2,
    /// Decoded output differs from its golden file.
    GoldenMismatch = 3,
    /// The machinery failed: a kernel write, the lock, QEMU, a guest.
    Infrastructure = 4,
    /// SIGHUP stopped a run, `inject --guest` or `bench` after it cleaned up (128 + 1).
    HungUp = 129,
    /// SIGINT (Ctrl-C) stopped it, after cleaning up (128 + 2): a second Ctrl-C ends at once.
    Interrupted = 130,
    /// Standard output was closed by its reader (`| head -1`): stop quietly with the status a
    /// shell reports for coreutils killed by SIGPIPE (128 + 13).
    OutputClosed = 141,
    /// SIGTERM stopped it, after cleaning up (128 + 15).
    Terminated = 143,
}

impl Code {
    /// The shell's 128 + signal for the signals rasdrill stops cleanly on.
    pub fn for_signal(signal: i32) -> Code {
        match signal {
            libc::SIGHUP => Code::HungUp,
            libc::SIGTERM => Code::Terminated,
            _ => Code::Interrupted,
        }
    }
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> ExitCode {
        ExitCode::from(code as u8)
    }
}

/// The exit-code table printed by `rasdrill --help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  a scenario or check failed
  2  bad input or refused (usage, record, guard, preflight); nothing was changed
  3  decoded output differs from its golden file
  4  infrastructure failure (a kernel write, the lock held by another rasdrill, QEMU)
  130  interrupted by SIGINT (Ctrl-C): QEMU and daemons stopped, temporary files removed, reports
       of what ran written; a second Ctrl-C ends at once (143 for SIGTERM, 129 for SIGHUP)
  141  standard output was closed by its reader (as coreutils killed by SIGPIPE); nothing is printed";

/// A command's failure: printed once by main as `error: <message>`, then the process exits with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    pub fn bad_input(message: impl fmt::Display) -> Self {
        Self::new(Code::BadInput, message)
    }

    pub fn infrastructure(message: impl fmt::Display) -> Self {
        Self::new(Code::Infrastructure, message)
    }

    /// The failure of a command a signal stopped.
    pub fn interrupted(signal: i32, message: impl fmt::Display) -> Self {
        Self::new(Code::for_signal(signal), message)
    }

    /// Whether main should say nothing: the only reader of the output has gone.
    pub fn is_quiet(&self) -> bool {
        self.code == Code::OutputClosed
    }
}

/// Writes `text` to standard output. A reader that went away (EPIPE) is a quiet failure, not
/// the panic `print!` would raise.
pub fn print(text: impl fmt::Display) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    write!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::new(Code::OutputClosed, ""),
            _ => Failure::infrastructure(format!("cannot write to standard output: {e}")),
        })
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<InjectError> for Failure {
    fn from(e: InjectError) -> Self {
        Self::bad_input(e)
    }
}

/// A guest's failure with its diagnostics: the terminal is the only place they are shown.
impl From<GuestError> for Failure {
    fn from(e: GuestError) -> Self {
        Self::infrastructure(e.explained())
    }
}

impl From<TargetError> for Failure {
    fn from(e: TargetError) -> Self {
        Self::infrastructure(e.explained())
    }
}

impl From<ParseError> for Failure {
    fn from(e: ParseError) -> Self {
        Self::bad_input(e)
    }
}

impl From<PerformError> for Failure {
    fn from(e: PerformError) -> Self {
        Self::infrastructure(e)
    }
}

impl From<LockError> for Failure {
    fn from(e: LockError) -> Self {
        match e {
            // A lock path that is not ours is refused before anything is written.
            LockError::Unsafe { .. } => Self::bad_input(e),
            _ => Self::infrastructure(e),
        }
    }
}
