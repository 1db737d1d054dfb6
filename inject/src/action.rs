//! What an injector does, described before it is done (the dry run).

use std::fmt;
use std::path::PathBuf;

/// One step an injector takes. The dry run prints these, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `value` to a kernel file (sysfs/debugfs). Path is absolute, already under any root.
    /// [`crate::injector::perform`] writes `value` plus a newline in one write(2), as `echo` does.
    Write { path: PathBuf, value: String },
    /// Send one HMP line to QEMU's monitor (delivered by the guest runner).
    Monitor { line: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Write { path, value } => write!(f, "write {} {}", path.display(), value),
            Action::Monitor { line } => write!(f, "monitor {line}"),
        }
    }
}
