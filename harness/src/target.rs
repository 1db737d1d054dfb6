//! Where a scenario's errors go and where its collectors read: a guest (through its agent) or
//! this machine (the same requests, answered in process). One request vocabulary, two transports.

use std::path::Path;
use std::time::Duration;

use rasdrill_qemu::vm::{Diagnosed, Diagnostics};

use crate::agent::protocol::{
    ExitInfo, KmsgRecord, Reply, Request, RunOutput, RunSpec, SpawnSpec, Spawned, TraceBatch,
};
use crate::guest::{Guest, GuestError, REQUEST_TIMEOUT};

/// A request failed on the target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error("{what}: {message}")]
    Refused { what: String, message: String },
    #[error("{what}: unexpected reply {got}")]
    Unexpected { what: String, got: String },
}

impl Diagnosed for TargetError {
    fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            TargetError::Guest(g) => g.diagnostics(),
            TargetError::Refused { .. } | TargetError::Unexpected { .. } => None,
        }
    }
}

/// What collectors and steps use. `request` is the one transport-specific method.
pub trait Target {
    /// One agent request, with its own deadline.
    fn request(
        &mut self,
        what: &str,
        request: Request,
        timeout: Duration,
    ) -> Result<Reply, TargetError>;

    /// The guest, when the target is one (QEMU's monitor, panics).
    fn guest(&mut self) -> Option<&mut Guest> {
        None
    }

    fn kmsg(&mut self, after: Option<u64>) -> Result<Vec<KmsgRecord>, TargetError> {
        match self.request(
            "reading the kernel log",
            Request::Kmsg { after },
            REQUEST_TIMEOUT,
        )? {
            Reply::Kmsg { records } => Ok(records),
            other => Err(unexpected("reading the kernel log", other)),
        }
    }

    /// The sequence number of the newest kernel log record (`None`: the log is empty): pass it
    /// as `after` to see only what comes next.
    fn kmsg_last(&mut self) -> Result<Option<u64>, TargetError> {
        match self.request("reading the kernel log", Request::KmsgLast, REQUEST_TIMEOUT)? {
            Reply::Kmsg { records } => Ok(records.last().map(|r| r.seq)),
            other => Err(unexpected("reading the kernel log", other)),
        }
    }

    fn trace(&mut self, after: Option<u64>) -> Result<TraceBatch, TargetError> {
        match self.request(
            "reading trace events",
            Request::Trace { after },
            REQUEST_TIMEOUT,
        )? {
            Reply::Trace(batch) => Ok(batch),
            other => Err(unexpected("reading trace events", other)),
        }
    }

    /// Runs a command to completion; its own timeout is `spec.timeout_ms`.
    fn run(&mut self, spec: &RunSpec) -> Result<RunOutput, TargetError> {
        let what = format!("running {:?}", spec.argv);
        let timeout = Duration::from_millis(spec.timeout_ms) + REQUEST_TIMEOUT;
        match self.request(&what, Request::Run(spec.clone()), timeout)? {
            Reply::Run(out) => Ok(out),
            other => Err(unexpected(&what, other)),
        }
    }

    fn spawn(&mut self, spec: &SpawnSpec) -> Result<Spawned, TargetError> {
        let what = format!("starting {:?}", spec.argv);
        match self.request(&what, Request::Spawn(spec.clone()), REQUEST_TIMEOUT)? {
            Reply::Spawned(s) => Ok(s),
            other => Err(unexpected(&what, other)),
        }
    }

    /// Signals a spawned process, waits `grace`, then kills it.
    fn kill(&mut self, name: &str, signal: i32, grace: Duration) -> Result<ExitInfo, TargetError> {
        let what = format!("stopping {name}");
        let request = Request::Kill {
            name: name.to_string(),
            signal,
            grace_ms: grace.as_millis() as u64,
        };
        match self.request(&what, request, grace + REQUEST_TIMEOUT)? {
            Reply::Killed(exit) => Ok(exit),
            other => Err(unexpected(&what, other)),
        }
    }

    fn read_file(&mut self, path: &Path) -> Result<String, TargetError> {
        let what = format!("reading {}", path.display());
        match self.request(
            &what,
            Request::ReadFile {
                path: path.to_path_buf(),
            },
            REQUEST_TIMEOUT,
        )? {
            Reply::File { contents } => Ok(contents),
            other => Err(unexpected(&what, other)),
        }
    }

    fn write_file(&mut self, path: &Path, contents: &str) -> Result<(), TargetError> {
        let what = format!("writing {}", path.display());
        let request = Request::WriteFile {
            path: path.to_path_buf(),
            contents: contents.to_string(),
        };
        match self.request(&what, request, REQUEST_TIMEOUT)? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&what, other)),
        }
    }

    fn mkdir(&mut self, path: &Path) -> Result<(), TargetError> {
        let what = format!("creating {}", path.display());
        match self.request(
            &what,
            Request::Mkdir {
                path: path.to_path_buf(),
            },
            REQUEST_TIMEOUT,
        )? {
            Reply::Done => Ok(()),
            other => Err(unexpected(&what, other)),
        }
    }
}

fn unexpected(what: &str, got: Reply) -> TargetError {
    TargetError::Unexpected {
        what: what.to_string(),
        got: format!("{got:?}"),
    }
}

impl Target for Guest {
    fn request(
        &mut self,
        what: &str,
        request: Request,
        timeout: Duration,
    ) -> Result<Reply, TargetError> {
        Ok(self.call(what, timeout, |agent, deadline| {
            agent.request(request, deadline)
        })?)
    }

    fn guest(&mut self) -> Option<&mut Guest> {
        Some(self)
    }
}
