//! A running guest: the QEMU process, its QMP connection and its run directory, with the
//! diagnostics (console tail, QEMU's stderr, elapsed time) that every failure carries as data
//! beside its one-sentence message (see [`Diagnosed`]).

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::cmdline::{ConfigError, RunPaths, VmConfig};
use crate::process::{ProcessError, QemuProcess};
use crate::qmp::{Qmp, QmpError};
use crate::wait::{connect_until, seconds, wait_until, Deadline};

/// How many console lines a [`Diagnostics`] keeps.
pub const CONSOLE_TAIL_LINES: usize = 30;

/// What a person needs to see when a guest misbehaves. This crate keeps the console tail;
/// callers reuse it rather than cutting their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Time since QEMU was started.
    pub elapsed: Duration,
    /// The last lines of ttyS0.
    pub console_tail: String,
    /// The end of QEMU's stderr.
    pub stderr_tail: String,
}

impl fmt::Display for Diagnostics {
    /// Starts with a newline, so it can follow an error sentence directly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n(QEMU started {} ago)", seconds(self.elapsed))?;
        if !self.console_tail.trim().is_empty() {
            write!(
                f,
                "\n--- last console lines ---\n{}",
                self.console_tail.trim_end()
            )?;
        }
        if !self.stderr_tail.trim().is_empty() {
            write!(f, "\n--- QEMU stderr ---\n{}", self.stderr_tail.trim_end())?;
        }
        Ok(())
    }
}

/// An error that may carry [`Diagnostics`]. Its `Display` is the sentence saying what went
/// wrong; the diagnostics are data beside it, for the reader to place (a report's details,
/// the lines after an error on a terminal).
pub trait Diagnosed: fmt::Display {
    fn diagnostics(&self) -> Option<&Diagnostics>;

    /// The sentence followed by the diagnostics: everything, for a reader that gets only text.
    fn explained(&self) -> String {
        match self.diagnostics() {
            Some(d) => format!("{self}{d}"),
            None => self.to_string(),
        }
    }
}

/// Why a guest could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot create the run directory {path}: {source}")]
    RunDir { path: PathBuf, source: io::Error },
    /// QEMU could not be started at all (e.g. not installed).
    #[error(transparent)]
    Spawn(ProcessError),
    #[error("{source}")]
    Process {
        source: ProcessError,
        diagnostics: Box<Diagnostics>,
    },
    #[error("{source}")]
    Qmp {
        source: QmpError,
        diagnostics: Box<Diagnostics>,
    },
    #[error("cannot connect to the agent socket {path} within {}: {source}", seconds(*.elapsed))]
    Agent {
        path: PathBuf,
        elapsed: Duration,
        source: io::Error,
        diagnostics: Box<Diagnostics>,
    },
    #[error("QEMU did not exit within {}", seconds(*.elapsed))]
    StillRunning {
        elapsed: Duration,
        diagnostics: Box<Diagnostics>,
    },
}

impl Diagnosed for VmError {
    fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            VmError::Process { diagnostics, .. }
            | VmError::Qmp { diagnostics, .. }
            | VmError::Agent { diagnostics, .. }
            | VmError::StillRunning { diagnostics, .. } => Some(diagnostics),
            VmError::Config(_) | VmError::RunDir { .. } | VmError::Spawn(_) => None,
        }
    }
}

/// A QEMU guest whose QMP monitor is ready. Dropping it kills QEMU's process group.
#[derive(Debug)]
pub struct Vm {
    config: VmConfig,
    qmp: Qmp,
    process: QemuProcess,
}

impl Vm {
    /// Creates the run directory, starts QEMU and connects to QMP, all within `timeout`.
    /// Fails at once, with QEMU's stderr, if QEMU exits first (bad option, missing file,
    /// unknown CPU model). The guest is booting when this returns; connect to the agent
    /// socket straight away (see [`Vm::connect_agent`]).
    ///
    /// QEMU is spawned from the calling thread, which must outlive the guest (see
    /// [`crate::process`]).
    pub fn launch(config: VmConfig, timeout: Duration) -> Result<Vm, VmError> {
        let argv = config.argv()?;
        fs::create_dir_all(&config.run_dir).map_err(|source| VmError::RunDir {
            path: config.run_dir.clone(),
            source,
        })?;
        let mut process = QemuProcess::spawn(&config.qemu, &argv).map_err(VmError::Spawn)?;
        let paths = config.paths();
        let deadline = Deadline::after(timeout);
        enum Ready {
            Listening(UnixStream),
            Exited(ProcessError),
        }
        let ready = wait_until(&deadline, Duration::from_millis(5), || {
            match process.check_running() {
                Err(exited) => Some(Ready::Exited(exited)),
                Ok(()) => UnixStream::connect(&paths.qmp_socket)
                    .ok()
                    .map(Ready::Listening),
            }
        });
        let diagnose = |process: &QemuProcess| diagnostics(process, &paths.console_log);
        let stream = match ready {
            Some(Ready::Listening(stream)) => stream,
            Some(Ready::Exited(source)) => return Err(process_error(source, diagnose(&process))),
            None => {
                let source = QmpError::Connect {
                    path: paths.qmp_socket.clone(),
                    elapsed: deadline.elapsed(),
                    source: io::ErrorKind::TimedOut.into(),
                };
                return Err(VmError::Qmp {
                    source,
                    diagnostics: diagnose(&process),
                });
            }
        };
        let qmp = match Qmp::handshake(stream, deadline.remaining().max(Duration::from_secs(1))) {
            Ok(qmp) => qmp,
            Err(source) => {
                // QEMU listens before it has checked all its options: a connection it drops
                // usually means it is exiting, and its stderr says why.
                let _ = process.wait_timeout(Duration::from_secs(2));
                return Err(match process.check_running() {
                    Err(exited) => process_error(exited, diagnose(&process)),
                    Ok(()) => VmError::Qmp {
                        source,
                        diagnostics: diagnose(&process),
                    },
                });
            }
        };
        Ok(Vm {
            config,
            qmp,
            process,
        })
    }

    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// The console log and socket paths.
    pub fn paths(&self) -> RunPaths {
        self.config.paths()
    }

    /// The QMP connection.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// The QEMU process.
    pub fn process(&mut self) -> &mut QemuProcess {
        &mut self.process
    }

    /// Connects to ttyS1. QEMU accepts one client at a time and drops what the guest writes
    /// while no client is connected, so connect before the guest speaks and let the host
    /// speak first (or have the agent repeat its hello until answered).
    pub fn connect_agent(&mut self, timeout: Duration) -> Result<UnixStream, VmError> {
        let path = self.paths().agent_socket;
        let deadline = Deadline::after(timeout);
        connect_until(&path, &deadline).map_err(|source| VmError::Agent {
            path,
            elapsed: deadline.elapsed(),
            source,
            diagnostics: self.diagnostics(),
        })
    }

    /// The last `lines` lines of the console log.
    pub fn console_tail(&self, lines: usize) -> String {
        console_tail(&self.paths().console_log, lines)
    }

    /// Elapsed time, console tail and QEMU's stderr, for an error message.
    pub fn diagnostics(&self) -> Box<Diagnostics> {
        diagnostics(&self.process, &self.paths().console_log)
    }

    /// `Ok` while QEMU runs; an error with its exit status and diagnostics once it has exited.
    pub fn check_running(&mut self) -> Result<(), VmError> {
        self.process
            .check_running()
            .map_err(|source| process_error(source, self.diagnostics()))
    }

    /// Waits up to `timeout` for QEMU to exit by itself (guest power-off, panic with
    /// `panic=-1`, or `quit`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        match self.process.wait_timeout(timeout) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(VmError::StillRunning {
                elapsed: timeout,
                diagnostics: self.diagnostics(),
            }),
            Err(source) => Err(process_error(source, self.diagnostics())),
        }
    }

    /// Asks QEMU to quit over QMP and waits up to `timeout`; kills it if that fails.
    pub fn shutdown(mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        // `quit` may lose its reply when QEMU exits first: its exit is what counts.
        let _ = self.qmp.execute("quit", None);
        match self.wait_exit(timeout) {
            Ok(status) => Ok(status),
            Err(e) => {
                let _ = self.process.kill();
                Err(e)
            }
        }
    }

    /// Kills QEMU's process group now and reaps it (dropping the `Vm` does the same).
    pub fn kill(mut self) -> Result<ExitStatus, VmError> {
        self.process
            .kill()
            .map_err(|source| process_error(source, self.diagnostics()))
    }
}

fn diagnostics(process: &QemuProcess, console_log: &Path) -> Box<Diagnostics> {
    Box::new(Diagnostics {
        elapsed: process.elapsed(),
        console_tail: console_tail(console_log, CONSOLE_TAIL_LINES),
        stderr_tail: process.stderr_tail(),
    })
}

/// A process error with diagnostics, minus the stderr the error itself already quotes.
fn process_error(source: ProcessError, mut diagnostics: Box<Diagnostics>) -> VmError {
    if matches!(source, ProcessError::Exited { .. }) {
        diagnostics.stderr_tail.clear();
    }
    VmError::Process {
        source,
        diagnostics,
    }
}

/// The last `lines` lines of a file, lossily decoded; empty if it cannot be read.
fn console_tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    last_lines(&String::from_utf8_lossy(&bytes), lines)
}

/// The last `lines` lines of `text`: how much of a console an error quotes.
pub fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_print_only_what_there_is() {
        let mut d = Diagnostics {
            elapsed: Duration::from_millis(2500),
            ..Default::default()
        };
        assert_eq!(d.to_string(), "\n(QEMU started 2.500s ago)");
        d.console_tail = "[ 0.1] Linux version\nKernel panic\n".into();
        d.stderr_tail = "qemu: warning\n".into();
        assert_eq!(
            d.to_string(),
            "\n(QEMU started 2.500s ago)\n--- last console lines ---\n[ 0.1] Linux version\nKernel panic\n--- QEMU stderr ---\nqemu: warning"
        );
    }

    #[test]
    fn console_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(console_tail(&log, 2), "c\nd");
        assert_eq!(console_tail(&log, 10), "a\nb\nc\nd");
        assert_eq!(console_tail(&dir.path().join("none"), 2), "");
    }
}
