//! The host's side of the agent protocol, over the unix socket QEMU gives the guest's ttyS1.
//!
//! Every call takes a deadline; every error says how long we had waited.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rasdrill_inject::aer::KernelAer;
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::hwpoison::PoisonRequest;
use rasdrill_inject::MceRecord;

use super::protocol::{
    to_line, Envelope, ExitInfo, FromAgent, KmsgRecord, Ready, Reply, Request, RunOutput, RunSpec,
    SpawnSpec, Spawned, TraceBatch,
};

/// Talking to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("timed out after {elapsed:?} waiting for {what}")]
    Timeout { what: String, elapsed: Duration },
    #[error("the agent's connection closed after {elapsed:?} while {what}")]
    Closed { what: String, elapsed: Duration },
    #[error("i/o error after {elapsed:?} while {what}: {source}")]
    Io {
        what: String,
        elapsed: Duration,
        source: io::Error,
    },
    #[error("the agent sent a line that is not a protocol message after {elapsed:?} ({line:?}): {source}")]
    Protocol {
        line: String,
        elapsed: Duration,
        source: serde_json::Error,
    },
    #[error("the agent answered {request} (id {id}) with an error after {elapsed:?}: {message}")]
    Agent {
        request: String,
        id: u64,
        message: String,
        elapsed: Duration,
    },
    #[error("the agent answered {request} (id {id}) with an unexpected message: {got}")]
    Unexpected {
        request: String,
        id: u64,
        got: String,
    },
}

/// What a poisoning in the guest did (see [`Reply::Poisoned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poisoned {
    /// The pfn the agent chose, when the request left the page to it.
    pub pfn: Option<u64>,
    pub writes: Vec<String>,
    /// How each madvise child ended, in words.
    pub outcomes: Vec<String>,
}

/// A connection to one agent.
pub struct AgentClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Bytes of a line not yet complete when a read timed out.
    pending: Vec<u8>,
    next_id: u64,
    ready: Option<Ready>,
}

impl AgentClient {
    pub fn connect(stream: UnixStream) -> io::Result<AgentClient> {
        let writer = stream.try_clone()?;
        Ok(AgentClient {
            reader: BufReader::new(stream),
            writer,
            pending: Vec::new(),
            next_id: 1,
            ready: None,
        })
    }

    /// The facts of the agent's `Ready`, once seen.
    pub fn ready(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// Waits for the agent's `Ready`. Lines that are not messages are skipped until then
    /// (a host that connects mid-line sees the end of one); they are named on timeout.
    pub fn wait_ready(&mut self, deadline: Instant) -> Result<Ready, ClientError> {
        if let Some(ready) = &self.ready {
            return Ok(ready.clone());
        }
        let started = Instant::now();
        let mut skipped: Option<String> = None;
        loop {
            let what = match &skipped {
                None => "the agent's Ready".to_string(),
                Some(line) => format!("the agent's Ready (skipped the line {line:?})"),
            };
            let line = self.read_line(&what, started, deadline)?;
            match serde_json::from_str::<FromAgent>(&line) {
                Ok(FromAgent::Ready(ready)) => {
                    self.ready = Some(ready.clone());
                    return Ok(ready);
                }
                Ok(_) | Err(_) => skipped = Some(line),
            }
        }
    }

    /// Reads one non-empty line, keeping a partial line across timeouts.
    fn read_line(
        &mut self,
        what: &str,
        started: Instant,
        deadline: Instant,
    ) -> Result<String, ClientError> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    what: what.to_string(),
                    elapsed: started.elapsed(),
                });
            }
            let io_error = |source| ClientError::Io {
                what: format!("reading {what}"),
                elapsed: started.elapsed(),
                source,
            };
            self.reader
                .get_ref()
                .set_read_timeout(Some(deadline - now))
                .map_err(io_error)?;
            match self.reader.read_until(b'\n', &mut self.pending) {
                Ok(0) => {
                    let what = format!("waiting for {what}");
                    return Err(ClientError::Closed {
                        what,
                        elapsed: started.elapsed(),
                    });
                }
                Ok(_) if self.pending.ends_with(b"\n") => {
                    let line = String::from_utf8_lossy(&self.pending).trim().to_string();
                    self.pending.clear();
                    if !line.is_empty() {
                        return Ok(line);
                    }
                }
                // EOF in the middle of a line: the next read returns 0.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    /// Sends one request and returns its reply. Replies to older requests (whose wait timed
    /// out) are skipped.
    pub fn request(&mut self, request: Request, deadline: Instant) -> Result<Reply, ClientError> {
        let started = Instant::now();
        let id = self.next_id;
        self.next_id += 1;
        let name = request_name(&request);
        let line = to_line(&Envelope { id, request });
        let what = format!("the reply to {name} (id {id})");
        self.writer
            .set_write_timeout(Some(
                deadline
                    .saturating_duration_since(started)
                    .max(Duration::from_millis(1)),
            ))
            .and_then(|()| self.writer.write_all(line.as_bytes()))
            .and_then(|()| self.writer.flush())
            .map_err(|source| {
                let what = format!("sending {name} (id {id})");
                let elapsed = started.elapsed();
                match source.kind() {
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                        ClientError::Closed { what, elapsed }
                    }
                    _ => ClientError::Io {
                        what,
                        elapsed,
                        source,
                    },
                }
            })?;
        loop {
            let line = self.read_line(&what, started, deadline)?;
            let message: FromAgent =
                serde_json::from_str(&line).map_err(|source| ClientError::Protocol {
                    line: line.clone(),
                    elapsed: started.elapsed(),
                    source,
                })?;
            match message {
                FromAgent::Ok { id: got, reply } if got == id => return Ok(reply),
                // 0: the agent could not read our line at all.
                FromAgent::Error { id: got, message } if got == id || got == 0 => {
                    return Err(ClientError::Agent {
                        request: name,
                        id,
                        message,
                        elapsed: started.elapsed(),
                    })
                }
                FromAgent::Ok { id: got, .. } | FromAgent::Error { id: got, .. } if got < id => {
                    continue
                }
                FromAgent::Ready(ready) if self.ready.is_none() => self.ready = Some(ready),
                other => {
                    return Err(ClientError::Unexpected {
                        request: name,
                        id,
                        got: format!("{other:?}"),
                    })
                }
            }
        }
    }

    pub fn status(&mut self, deadline: Instant) -> Result<Ready, ClientError> {
        match self.request(Request::Status, deadline)? {
            Reply::Status(ready) => Ok(ready),
            other => Err(self.unexpected("status", other)),
        }
    }

    /// Injects through mce-inject (the agent runs the preflight first); returns the writes made.
    pub fn inject(
        &mut self,
        record: &MceRecord,
        flags: InjectionType,
        deadline: Instant,
    ) -> Result<Vec<String>, ClientError> {
        let request = Request::Inject {
            record: record.clone(),
            flags,
        };
        match self.request(request, deadline)? {
            Reply::Injected { writes } => Ok(writes),
            other => Err(self.unexpected("inject", other)),
        }
    }

    /// One aer_inject write in the guest; the reply is what was written.
    pub fn aer_inject(
        &mut self,
        aer: &KernelAer,
        deadline: Instant,
    ) -> Result<Vec<String>, ClientError> {
        let request = Request::AerInject { aer: aer.clone() };
        match self.request(request, deadline)? {
            Reply::Injected { writes } => Ok(writes),
            other => Err(self.unexpected("aer_inject", other)),
        }
    }

    /// Poisons (or unpoisons) a page in the guest (the agent runs the preflight first).
    pub fn poison(
        &mut self,
        request: &PoisonRequest,
        deadline: Instant,
    ) -> Result<Poisoned, ClientError> {
        let request = Request::Poison {
            request: request.clone(),
        };
        match self.request(request, deadline)? {
            Reply::Poisoned {
                pfn,
                writes,
                outcomes,
            } => Ok(Poisoned {
                pfn,
                writes,
                outcomes,
            }),
            other => Err(self.unexpected("poison", other)),
        }
    }

    pub fn kmsg(
        &mut self,
        after: Option<u64>,
        deadline: Instant,
    ) -> Result<Vec<KmsgRecord>, ClientError> {
        match self.request(Request::Kmsg { after }, deadline)? {
            Reply::Kmsg { records } => Ok(records),
            other => Err(self.unexpected("kmsg", other)),
        }
    }

    pub fn trace(
        &mut self,
        after: Option<u64>,
        deadline: Instant,
    ) -> Result<TraceBatch, ClientError> {
        match self.request(Request::Trace { after }, deadline)? {
            Reply::Trace(batch) => Ok(batch),
            other => Err(self.unexpected("trace", other)),
        }
    }

    /// Runs a command; `deadline` should leave room beyond the command's own `timeout_ms`.
    pub fn run(&mut self, spec: &RunSpec, deadline: Instant) -> Result<RunOutput, ClientError> {
        match self.request(Request::Run(spec.clone()), deadline)? {
            Reply::Run(output) => Ok(output),
            other => Err(self.unexpected("run", other)),
        }
    }

    pub fn spawn(&mut self, spec: &SpawnSpec, deadline: Instant) -> Result<Spawned, ClientError> {
        match self.request(Request::Spawn(spec.clone()), deadline)? {
            Reply::Spawned(spawned) => Ok(spawned),
            other => Err(self.unexpected("spawn", other)),
        }
    }

    pub fn kill(
        &mut self,
        name: &str,
        signal: i32,
        grace: Duration,
        deadline: Instant,
    ) -> Result<ExitInfo, ClientError> {
        let request = Request::Kill {
            name: name.to_string(),
            signal,
            grace_ms: grace.as_millis() as u64,
        };
        match self.request(request, deadline)? {
            Reply::Killed(exit) => Ok(exit),
            other => Err(self.unexpected("kill", other)),
        }
    }

    pub fn read_file(
        &mut self,
        path: impl AsRef<Path>,
        deadline: Instant,
    ) -> Result<String, ClientError> {
        let request = Request::ReadFile {
            path: path.as_ref().to_path_buf(),
        };
        match self.request(request, deadline)? {
            Reply::File { contents } => Ok(contents),
            other => Err(self.unexpected("read_file", other)),
        }
    }

    pub fn write_file(
        &mut self,
        path: impl AsRef<Path>,
        contents: &str,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        let request = Request::WriteFile {
            path: path.as_ref().to_path_buf(),
            contents: contents.to_string(),
        };
        self.expect_done("write_file", request, deadline)
    }

    pub fn mkdir(&mut self, path: impl AsRef<Path>, deadline: Instant) -> Result<(), ClientError> {
        let request = Request::Mkdir {
            path: PathBuf::from(path.as_ref()),
        };
        self.expect_done("mkdir", request, deadline)
    }

    /// Asks the guest to power off; the reply comes before it does.
    pub fn poweroff(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.expect_done("poweroff", Request::Poweroff, deadline)
    }

    fn expect_done(
        &mut self,
        name: &str,
        request: Request,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        match self.request(request, deadline)? {
            Reply::Done => Ok(()),
            other => Err(self.unexpected(name, other)),
        }
    }

    fn unexpected(&self, request: &str, reply: Reply) -> ClientError {
        ClientError::Unexpected {
            request: request.to_string(),
            id: self.next_id - 1,
            got: format!("{reply:?}"),
        }
    }
}

fn request_name(request: &Request) -> String {
    let name = match request {
        Request::Status => "status",
        Request::Inject { .. } => "inject",
        Request::AerInject { aer } => return format!("aer_inject {}", aer.device()),
        Request::Kmsg { .. } => "kmsg",
        Request::KmsgLast => "kmsg_last",
        Request::Burst { .. } => "burst",
        Request::Poison { .. } => "poison",
        Request::Trace { .. } => "trace",
        Request::Run(spec) => return format!("run {:?}", spec.argv),
        Request::Spawn(spec) => return format!("spawn {}", spec.name),
        Request::Kill { name, .. } => return format!("kill {name}"),
        Request::ReadFile { path } => return format!("read_file {}", path.display()),
        Request::WriteFile { path, .. } => return format!("write_file {}", path.display()),
        Request::Mkdir { path } => return format!("mkdir {}", path.display()),
        Request::Poweroff => "poweroff",
    };
    name.to_string()
}
