//! What an injector does, described before it is done (the dry run).

use std::fmt;
use std::path::PathBuf;

use crate::hwpoison::Advice;

/// One step an injector takes. The dry run prints these, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `value` to a kernel file (sysfs/debugfs). Path is absolute, already under any root.
    /// [`crate::injector::perform`] writes `value` plus a newline in one write(2), as `echo` does.
    Write { path: PathBuf, value: String },
    /// Write a binary structure to a device in one write(2) (e.g. `/dev/aer_inject`);
    /// `fields` names its members for the dry run.
    WriteBytes {
        path: PathBuf,
        bytes: Vec<u8>,
        fields: String,
    },
    /// A child process maps an anonymous page, writes it, calls madvise(`advice`) on it and
    /// reads it back; how the child ended is the outcome.
    Madvise { advice: Advice },
    /// Send one HMP line to QEMU's monitor (delivered by the guest runner).
    Monitor { line: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Write { path, value } => write!(f, "write {} {}", path.display(), value),
            Action::WriteBytes {
                path,
                bytes,
                fields,
            } => write!(
                f,
                "write {} {fields} ({} bytes)",
                path.display(),
                bytes.len()
            ),
            Action::Madvise { advice } => write!(
                f,
                "madvise {advice} on an anonymous page of a child process, which then reads it"
            ),
            Action::Monitor { line } => write!(f, "monitor {line}"),
        }
    }
}
