//! The agent's request loop: read a request line, act, write one reply line.
//!
//! The loop only needs a reader, a writer and an [`Agent`]; PID 1 gives it the serial port
//! and the real kernel files, tests give it a socket pair and a directory.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rasdrill_qemu::wait::{wait_until, Deadline};

use rasdrill_inject::aer::KernelAer;
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::{preflight, InjectError, MceRecord, PerformError};

use super::kmsg::{self, KmsgLog, KmsgRecord};
use super::poison::{self, PoisonState};
use super::process::{self, Children, Daemons, ProcessError};
use super::protocol::{to_line, Envelope, FromAgent, Ready, Reply, Request};
use super::trace::TraceBuffer;

/// Where the agent finds the files it serves: `/` in the guest, a directory in tests.
#[derive(Debug, Clone)]
pub struct Environment {
    pub root: PathBuf,
}

impl Environment {
    /// A guest path (absolute) under this environment's root.
    pub fn path(&self, guest_path: impl AsRef<Path>) -> PathBuf {
        let path = guest_path.as_ref();
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// The root when it is a stand-in tree, not the machine's (or guest's) own `/`.
    pub fn stand_in(&self) -> Option<&Path> {
        (self.root != Path::new("/")).then_some(self.root.as_path())
    }

    pub fn kmsg(&self) -> PathBuf {
        self.path("/dev/kmsg")
    }

    pub fn tracefs(&self) -> PathBuf {
        self.path("/sys/kernel/tracing")
    }

    /// Where spawned processes' output files go.
    pub fn log_dir(&self) -> PathBuf {
        self.path("/var/log/rasdrill")
    }
}

/// A request that failed; its message goes back to the host as `Error`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("trace events are not available: {0}")]
    Trace(String),
    #[error("injection refused before any write: {0}")]
    Refused(#[from] InjectError),
    #[error(transparent)]
    Inject(#[from] PerformError),
    #[error("the kernel consumed no injected record for {stall:?} after {injected} were injected")]
    Stalled { injected: u64, stall: Duration },
    /// The page a poisoning names could not be found (or none was poisoned before).
    #[error("{0}")]
    NoPage(String),
    #[error(
        "{lost} kernel log records were lost during the burst (the kernel overwrote them \
         before the agent read them)"
    )]
    KmsgLost { lost: u64 },
}

fn file_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> RequestError + 'a {
    move |source| RequestError::File {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Everything a request may use.
pub struct Agent {
    env: Environment,
    ready: Ready,
    /// The `trace_pipe` reader, or why it could not start.
    trace: Result<Arc<TraceBuffer>, String>,
    /// The kernel log drained as it is written (the guest), or `None` to read the file afresh
    /// for each request (a lab machine or a stand-in tree, whose log is not ours to hold).
    kmsg_log: Option<Arc<KmsgLog>>,
    daemons: Daemons,
    children: Children,
    poison: PoisonState,
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The host asked for it; the reply has been sent.
    Poweroff,
    /// The input ended.
    InputClosed,
}

impl Agent {
    pub fn new(
        env: Environment,
        ready: Ready,
        trace: Result<Arc<TraceBuffer>, String>,
        children: Children,
    ) -> Agent {
        let daemons = Daemons::new(children.clone(), env.log_dir());
        Agent {
            env,
            ready,
            trace,
            kmsg_log: None,
            daemons,
            children,
            poison: PoisonState::default(),
        }
    }

    /// Serves the kernel log from `log` instead of reading the file for each request.
    pub fn with_kmsg_log(mut self, log: Arc<KmsgLog>) -> Agent {
        self.kmsg_log = Some(log);
        self
    }

    /// The kernel log records above `after`.
    fn kmsg_after(&self, after: Option<u64>) -> Result<Vec<KmsgRecord>, RequestError> {
        match &self.kmsg_log {
            Some(log) => log.after(after).map_err(file_error("read", log.path())),
            None => {
                let path = self.env.kmsg();
                kmsg::read_after(&path, after).map_err(file_error("read", &path))
            }
        }
    }

    /// Answers one request (the serial loop calls this; so does the local target, in process).
    pub fn handle(&mut self, request: Request) -> Result<Reply, RequestError> {
        match request {
            Request::Status => Ok(Reply::Status(self.ready.clone())),
            Request::Inject { record, flags } => self.inject(&record, flags),
            Request::AerInject { aer } => self.aer_inject(&aer),
            Request::Burst {
                record,
                flags,
                count,
            } => self.burst(&record, flags, count),
            Request::Poison { request } => self
                .children
                .holding_off_the_reaper(|| poison::poison(&self.env, &mut self.poison, &request)),
            Request::KmsgLast => {
                let last = match &self.kmsg_log {
                    Some(log) => log.last().map_err(file_error("read", log.path()))?,
                    None => self.kmsg_after(None)?.pop(),
                };
                Ok(Reply::Kmsg {
                    records: last.into_iter().collect(),
                })
            }
            Request::Kmsg { after } => Ok(Reply::Kmsg {
                records: self.kmsg_after(after)?,
            }),
            Request::Trace { after } => {
                let buffer = self
                    .trace
                    .as_ref()
                    .map_err(|e| RequestError::Trace(e.clone()))?;
                Ok(Reply::Trace(
                    buffer.after(after).map_err(RequestError::Trace)?,
                ))
            }
            Request::Run(spec) => Ok(Reply::Run(process::run(&self.children, &spec)?)),
            Request::Spawn(spec) => Ok(Reply::Spawned(self.daemons.spawn(&spec)?)),
            Request::Kill {
                name,
                signal,
                grace_ms,
            } => {
                let exit = self
                    .daemons
                    .kill(&name, signal, Duration::from_millis(grace_ms))?;
                Ok(Reply::Killed(exit))
            }
            Request::ReadFile { path } => {
                let path = self.env.path(path);
                let contents = match self.env.stand_in() {
                    // A stand-in tree answers as the kernel would (a write-only file refuses).
                    Some(root) => rasdrill_inject::standin::read(root, &path),
                    None => std::fs::read_to_string(&path),
                }
                .map_err(file_error("read", &path))?;
                Ok(Reply::File { contents })
            }
            Request::WriteFile { path, contents } => {
                let path = self.env.path(path);
                match self.env.stand_in() {
                    Some(root) if rasdrill_inject::standin::models(root, &path) => {
                        let value = contents.strip_suffix('\n').unwrap_or(&contents);
                        rasdrill_inject::standin::write(root, &path, value)
                    }
                    _ => std::fs::write(&path, contents),
                }
                .map_err(file_error("write", &path))?;
                Ok(Reply::Done)
            }
            Request::Mkdir { path } => {
                let path = self.env.path(path);
                std::fs::create_dir_all(&path).map_err(file_error("create directory", &path))?;
                Ok(Reply::Done)
            }
            Request::Poweroff => Ok(Reply::Done),
        }
    }

    /// Checks the record against this machine completely, then writes mce-inject's files.
    fn inject(&self, record: &MceRecord, kind: InjectionType) -> Result<Reply, RequestError> {
        let actions = preflight::debugfs_plan(&self.env.root, kind, std::slice::from_ref(record))?;
        rasdrill_inject::perform(&actions)?;
        Ok(Reply::Injected {
            writes: actions.iter().map(ToString::to_string).collect(),
        })
    }

    /// Checks the device and `/dev/aer_inject` (the module was loaded at boot), then writes.
    fn aer_inject(&self, aer: &KernelAer) -> Result<Reply, RequestError> {
        let actions = preflight::kernel_aer_plan(&self.env.root, aer)?;
        rasdrill_inject::perform(&actions)?;
        Ok(Reply::Injected {
            writes: actions.iter().map(ToString::to_string).collect(),
        })
    }
}

impl Agent {
    /// Injects `count` copies of `record`, checked once, never more than [`BURST_IN_FLIGHT`]
    /// ahead of what the kernel has consumed. The kernel keeps injected records in a small
    /// pool (about 80) until its decoder work runs, and drops records that find it full
    /// ("MCE records pool full!"); each consumed record is one `mce_record` trace line.
    /// The decoders' lines fill the kernel's log ring faster than the host asks for them, so
    /// the agent drains the log before each injection: the ring never holds more than the
    /// lines of the records in flight, and a record the ring lost anyway fails the burst.
    fn burst(
        &self,
        record: &MceRecord,
        kind: InjectionType,
        count: u32,
    ) -> Result<Reply, RequestError> {
        let trace = self
            .trace
            .as_ref()
            .map_err(|e| RequestError::Trace(format!("a burst is paced by the trace: {e}")))?;
        let actions = preflight::debugfs_plan(&self.env.root, kind, std::slice::from_ref(record))?;
        let start = trace.count("mce_record");
        let consumed = || (trace.count("mce_record") - start) as u64;
        let lost_before = self.kmsg_log.as_ref().map_or(0, |log| log.lost());
        let drain = || match &self.kmsg_log {
            Some(log) => log.drain().map_err(file_error("read", log.path())),
            None => Ok(()),
        };
        for injected in 0..u64::from(count) {
            drain()?;
            let room = || (injected < consumed() + BURST_IN_FLIGHT).then_some(());
            if wait_until(&Deadline::after(BURST_STALL), BURST_POLL, room).is_none() {
                return Err(RequestError::Stalled {
                    injected,
                    stall: BURST_STALL,
                });
            }
            rasdrill_inject::perform(&actions)?;
        }
        drain()?;
        let lost = self.kmsg_log.as_ref().map_or(0, |log| log.lost()) - lost_before;
        if lost > 0 {
            return Err(RequestError::KmsgLost { lost });
        }
        Ok(Reply::Burst { injected: count })
    }
}

/// How many records a burst keeps in the kernel's pool at most. A record leaves the pool only
/// after every decoder has run on it (its trace line comes first), and 32 in flight was seen to
/// overflow the pool of kernel 6.1 under TCG once in 300.
pub const BURST_IN_FLIGHT: u64 = 16;
/// How often a waiting burst looks at the count again.
const BURST_POLL: Duration = Duration::from_micros(200);
/// How long a burst waits for the kernel to consume a record before it gives up.
const BURST_STALL: Duration = Duration::from_secs(10);

/// Sends `Ready`, then answers requests until the host asks for power-off or the input ends.
pub fn serve(
    agent: &mut Agent,
    mut input: impl BufRead,
    mut output: impl Write,
) -> io::Result<Ending> {
    send(&mut output, &FromAgent::Ready(agent.ready.clone()))?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(Ending::InputClosed);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let envelope: Envelope = match serde_json::from_str(text) {
            Ok(envelope) => envelope,
            Err(e) => {
                let id = request_id(text);
                let message = format!("cannot read request {text:?}: {e}");
                send(&mut output, &FromAgent::Error { id, message })?;
                continue;
            }
        };
        let poweroff = envelope.request == Request::Poweroff;
        let message = match agent.handle(envelope.request) {
            Ok(reply) => FromAgent::Ok {
                id: envelope.id,
                reply,
            },
            Err(e) => FromAgent::Error {
                id: envelope.id,
                message: e.to_string(),
            },
        };
        send(&mut output, &message)?;
        if poweroff {
            return Ok(Ending::Poweroff);
        }
    }
}

/// The id of a request we could not fully read, so its sender still gets an answer.
fn request_id(text: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

fn send(output: &mut impl Write, message: &FromAgent) -> io::Result<()> {
    output.write_all(to_line(message).as_bytes())?;
    output.flush()
}
