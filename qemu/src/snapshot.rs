//! Saving a running guest's whole state to a file, and starting fresh guests from it.
//!
//! Saving: `stop`, QMP `migrate` to `exec:cat > FILE`, then `cont`, so the saved guest carries
//! on. A stopped guest is written in one pass (no dirty-page rounds), and the bandwidth cap
//! (128 MiB/s by default in QEMU 7.2) is lifted first. Restoring: the saved argv plus
//! `-incoming exec:cat FILE`. QEMU loads the whole state before the guest runs an instruction
//! and stays paused (the state was saved stopped); `cont` resumes the guest exactly where it
//! was: same memory, same devices, same virtual clock (it does not advance while stopped).
//!
//! Why this mechanism, on Debian 12's QEMU 7.2: internal snapshots (`savevm`/`loadvm`) need a
//! qcow2 disk, which these disk-less guests do not have; the `file:` URI and mapped-ram
//! arrived in QEMU 8.2 and 9.0; `x-ignore-shared` with file-backed RAM skips copying RAM but
//! lets every restored guest write into the one RAM file (each restore would need a copy of
//! all of it). Migration writes zero pages as flags, so a 256 MiB guest saves to about 65 MB,
//! which `cat` streams in well under the time QEMU takes to start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cmdline::{shell_quote, ConfigError, VmConfig};
use crate::qmp::QmpError;
use crate::vm::{Diagnosed, Diagnostics, Vm, VmError};
use crate::wait::{seconds, wait_until, Deadline};

/// How often a migration's progress is asked for.
const POLL: Duration = Duration::from_millis(2);

/// A guest saved by [`Vm::save`]: its state, the console log of the boot it came from, and
/// the config it ran with (a restored guest must run with the same devices and memory), whose
/// initrd is a copy kept beside the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    pub state: PathBuf,
    pub console_log: PathBuf,
    pub config: VmConfig,
}

/// Saving or restoring failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("QEMU could not {action} the guest's state ({status})")]
    Migration {
        action: &'static str,
        status: String,
        diagnostics: Box<Diagnostics>,
    },
    #[error("QEMU did not {action} the guest's state within {}", seconds(*.elapsed))]
    Timeout {
        action: &'static str,
        elapsed: Duration,
        diagnostics: Box<Diagnostics>,
    },
    #[error("{source}")]
    Qmp {
        source: QmpError,
        diagnostics: Box<Diagnostics>,
    },
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Diagnosed for SnapshotError {
    fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            SnapshotError::Migration { diagnostics, .. }
            | SnapshotError::Timeout { diagnostics, .. }
            | SnapshotError::Qmp { diagnostics, .. } => Some(diagnostics),
            SnapshotError::Vm(e) => e.diagnostics(),
            SnapshotError::File { .. } | SnapshotError::Config(_) => None,
        }
    }
}

impl Vm {
    /// Saves the running guest into `dir` (`state` and `console.log`), within `timeout`, and
    /// lets it run on. Save at a quiet moment: nothing half-sent on the serial lines.
    pub fn save(&mut self, dir: &Path, timeout: Duration) -> Result<SavedState, SnapshotError> {
        let deadline = Deadline::after(timeout);
        fs::create_dir_all(dir).map_err(file_error("create", dir))?;
        let state = dir.join("state");
        let uri = format!(
            "exec:cat > {}",
            shell_quote(state.to_str().ok_or_else(|| ConfigError::NotUtf8 {
                what: "saved state",
                path: state.clone(),
            })?)
        );
        self.qmp_call("stop", None)?;
        // u64::MAX would be refused: QEMU keeps the limit in bytes per second as an int64.
        let unlimited = json!({ "max-bandwidth": i64::MAX });
        self.qmp_call("migrate-set-parameters", Some(unlimited))?;
        self.qmp_call("migrate", Some(json!({ "uri": uri })))?;
        let finished = wait_until(&deadline, POLL, || {
            match self.qmp_call("query-migrate", None) {
                Ok(info) => match info.get("status").and_then(Value::as_str) {
                    Some("completed") => Some(Ok(())),
                    Some("failed" | "cancelled") => Some(Err(self.migration_error("save", &info))),
                    _ => None,
                },
                Err(e) => Some(Err(e)),
            }
        });
        match finished {
            Some(result) => result?,
            None => return Err(self.timeout("save", &deadline)),
        }
        self.qmp_call("cont", None)?;
        let console_log = dir.join("console.log");
        let booted = self.paths().console_log;
        fs::copy(&booted, &console_log).map_err(file_error("copy the console log", &booted))?;
        let mut config = self.config().clone();
        // QEMU reads -initrd even when it loads a state (the state only fills memory), and the
        // booted guest's run directory may be gone by the time a copy is restored.
        if let Some(initrd) = &config.initrd {
            let kept = dir.join("initrd");
            fs::hard_link(initrd, &kept)
                .or_else(|_| fs::copy(initrd, &kept).map(drop))
                .map_err(file_error("keep a copy of the initrd", initrd))?;
            config.initrd = Some(kept);
        }
        Ok(SavedState {
            state,
            console_log,
            config,
        })
    }

    /// Starts a guest from `saved` in `run_dir` and resumes it, all within `timeout`. Its
    /// console log starts with the saved guest's.
    pub fn restore(
        saved: &SavedState,
        run_dir: &Path,
        timeout: Duration,
    ) -> Result<Vm, SnapshotError> {
        let deadline = Deadline::after(timeout);
        let mut config = saved.config.clone();
        config.run_dir = run_dir.to_path_buf();
        config.incoming = Some(saved.state.clone());
        fs::create_dir_all(run_dir).map_err(file_error("create", run_dir))?;
        let console_log = config.paths().console_log;
        fs::copy(&saved.console_log, &console_log)
            .map_err(file_error("copy the console log", &saved.console_log))?;
        let mut vm = Vm::launch(config, deadline.remaining())?;
        // `inmigrate` until the whole state is loaded, then `paused`; a failed load ends QEMU.
        let loaded = wait_until(&deadline, POLL, || {
            if let Err(e) = vm.check_running() {
                return Some(Err(SnapshotError::Vm(e)));
            }
            match vm.qmp_call("query-status", None) {
                Ok(status) => match status.get("status").and_then(Value::as_str) {
                    Some("inmigrate") => None,
                    Some("paused" | "running") => Some(Ok(())),
                    _ => Some(Err(vm.migration_error("load", &status))),
                },
                Err(e) => Some(Err(vm.exited_or(e))),
            }
        });
        match loaded {
            Some(result) => result?,
            None => return Err(vm.timeout("load", &deadline)),
        }
        vm.qmp_call("cont", None)?;
        Ok(vm)
    }

    fn qmp_call(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, SnapshotError> {
        self.qmp()
            .execute(command, arguments)
            .map_err(|source| SnapshotError::Qmp {
                source,
                diagnostics: self.diagnostics(),
            })
    }

    /// A connection QEMU dropped usually means it is exiting, and its stderr says why.
    fn exited_or(&mut self, error: SnapshotError) -> SnapshotError {
        let _ = self.process().wait_timeout(Duration::from_secs(2));
        match self.check_running() {
            Err(exited) => SnapshotError::Vm(exited),
            Ok(()) => error,
        }
    }

    fn migration_error(&self, action: &'static str, info: &Value) -> SnapshotError {
        SnapshotError::Migration {
            action,
            status: info.to_string(),
            diagnostics: self.diagnostics(),
        }
    }

    fn timeout(&self, action: &'static str, deadline: &Deadline) -> SnapshotError {
        SnapshotError::Timeout {
            action,
            elapsed: deadline.elapsed(),
            diagnostics: self.diagnostics(),
        }
    }
}

fn file_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::File {
        action,
        path: path.to_path_buf(),
        source,
    }
}
