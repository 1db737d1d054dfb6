//! The messages between the host and the agent: one JSON object per line.
//!
//! The host sends [`Envelope`]s; the agent sends [`FromAgent`]: `Ready` once when its setup
//! is done, then exactly one `Ok` or `Error` per request, carrying the request's id.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rasdrill_inject::aer::KernelAer;
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::hwpoison::PoisonRequest;
use rasdrill_inject::MceRecord;
use serde::{Deserialize, Serialize};

pub use super::kmsg::KmsgRecord;
pub use super::trace::{TraceBatch, TraceEvent, UnparsedLine};

/// A request with the id its reply will carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub id: u64,
    pub request: Request,
}

/// Host to agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The `Ready` facts again (for a host that connected late).
    Status,
    /// Deliver a record through mce-inject's debugfs files, after the inject crate's preflight.
    Inject {
        record: MceRecord,
        #[serde(with = "injection_type")]
        flags: InjectionType,
    },
    /// `count` copies of one record through mce-inject, checked once, paced by what the kernel
    /// has consumed (its record pool holds about 80; more are dropped).
    Burst {
        record: MceRecord,
        #[serde(with = "injection_type")]
        flags: InjectionType,
        count: u32,
    },
    /// One write of `struct aer_error_inj` to the kernel's `/dev/aer_inject`, after the
    /// inject crate's preflight (the device, the injector).
    AerInject { aer: KernelAer },
    /// Poison (or unpoison) a page through the inject crate's hwpoison planner, after its
    /// preflight; the agent finds a page the request leaves to it.
    Poison { request: PoisonRequest },
    /// Kernel log records with a sequence number above `after`.
    Kmsg { after: Option<u64> },
    /// The newest kernel log record alone (as `Reply::Kmsg`): a cursor for what comes next,
    /// without sending the whole log over the serial line.
    KmsgLast,
    /// Trace lines with a sequence number above `after`.
    Trace { after: Option<u64> },
    /// Run a command to completion.
    Run(RunSpec),
    /// Start a background process (a collector daemon) under a name.
    Spawn(SpawnSpec),
    /// Signal a spawned process's group, wait up to `grace_ms`, then SIGKILL it.
    Kill {
        name: String,
        signal: i32,
        grace_ms: u64,
    },
    /// Read a text file.
    ReadFile { path: PathBuf },
    /// Create or replace a file.
    WriteFile { path: PathBuf, contents: String },
    /// `mkdir -p`.
    Mkdir { path: PathBuf },
    /// Reply, then power the guest off.
    Poweroff,
}

/// mce-inject's `flags` on the wire: the word the kernel accepts (`sw`, `hw`, `df`, `th`).
mod injection_type {
    use rasdrill_inject::debugfs::InjectionType;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &InjectionType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InjectionType, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A command for `Run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub argv: Vec<String>,
    /// Added to the agent's environment (which has PATH, HOME and TERM).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Written to the command's stdin, which is then closed; `None` means /dev/null.
    #[serde(default)]
    pub stdin: Option<String>,
    /// The command and its process group are killed when this runs out.
    pub timeout_ms: u64,
}

impl RunSpec {
    /// A command with no input, extra environment or working directory.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>, timeout_ms: u64) -> RunSpec {
        RunSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            timeout_ms,
        }
    }
}

/// A background process for `Spawn`; its output goes to files the reply names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnSpec {
    /// A short name (letters, digits, `-`, `_`) used by `Kill` and in the output file names.
    pub name: String,
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
}

/// How a process ended: exactly one of the two is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// What `Run` returns. Output that is not UTF-8 is converted lossily.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    pub exit: ExitInfo,
    pub stdout: String,
    pub stderr: String,
    /// The timeout ran out and the command's process group was killed.
    pub timed_out: bool,
    pub elapsed_ms: u64,
}

/// What `Spawn` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spawned {
    pub pid: u32,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The facts the agent reports once its setup is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub kernel_release: String,
    pub cpus_online: u32,
    /// CLOCK_BOOTTIME when the agent became ready.
    pub uptime_ms: u64,
    /// How long the agent's own setup took.
    pub setup_ms: u64,
    /// Module file names (without `.ko`) that are loaded.
    pub modules_loaded: Vec<String>,
    /// Modules that did not load: the host treats any as a broken guest.
    pub module_failures: Vec<ModuleFailure>,
    pub tracepoints_enabled: Vec<String>,
    /// Setup steps that failed without stopping the agent (a module that refused to load...).
    pub warnings: Vec<String>,
}

/// A module the agent could not load, with the kernel's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFailure {
    pub name: String,
    pub path: PathBuf,
    /// finit_module's error (`Exec format error (os error 8)`).
    pub error: String,
    /// What the kernel logged while refusing it (`Invalid ELF header magic: != \x7fELF`).
    pub kernel_said: Vec<String>,
}

impl std::fmt::Display for ModuleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "module {} ({}) did not load: {}",
            self.name,
            self.path.display(),
            self.error
        )?;
        if !self.kernel_said.is_empty() {
            write!(f, "; the kernel said: {}", self.kernel_said.join(" / "))?;
        }
        Ok(())
    }
}

/// Agent to host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FromAgent {
    Ready(Ready),
    Ok {
        id: u64,
        reply: Reply,
    },
    /// `id` is 0 when the request line could not be read at all.
    Error {
        id: u64,
        message: String,
    },
}

/// The result of a request that succeeded; one variant per kind of request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Status(Ready),
    /// The kernel file writes performed, in order (`write <path> <value>`; for AerInject the
    /// structure's fields).
    Injected {
        writes: Vec<String>,
    },
    /// A burst: how many records were injected.
    Burst {
        injected: u32,
    },
    /// A poisoning: the pfn the agent chose (if it chose one), the writes (or the madvise),
    /// and what the actions reported (how a madvise child ended).
    Poisoned {
        pfn: Option<u64>,
        writes: Vec<String>,
        outcomes: Vec<String>,
    },
    Kmsg {
        records: Vec<KmsgRecord>,
    },
    Trace(TraceBatch),
    Run(RunOutput),
    Spawned(Spawned),
    Killed(ExitInfo),
    File {
        contents: String,
    },
    /// WriteFile, Mkdir and Poweroff.
    Done,
}

/// One message as the line that carries it (no newline inside: JSON escapes them).
pub fn to_line<T: Serialize>(message: &T) -> String {
    let mut line = serde_json::to_string(message).expect("protocol messages are plain data");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        value: T,
    ) {
        let line = to_line(&value);
        assert!(
            line.ends_with('\n') && !line[..line.len() - 1].contains('\n'),
            "{line}"
        );
        let back: T = serde_json::from_str(&line).unwrap();
        assert_eq!(back, value, "{line}");
    }

    #[test]
    fn requests_round_trip() {
        let record = MceRecord {
            bank: 4,
            status: 0x9c7d_4100_9208_0813,
            addr: 0x1234_5000,
            ..MceRecord::default()
        };
        let mut run = RunSpec::new(["/bin/echo", "hi\nthere"], 5000);
        run.env.insert("LANG".into(), "C".into());
        run.stdin = Some("input\n".into());
        let requests = [
            Request::Status,
            Request::Inject {
                record,
                flags: InjectionType::Hw,
            },
            Request::Kmsg { after: None },
            Request::Kmsg {
                after: Some(u64::MAX),
            },
            Request::KmsgLast,
            Request::Burst {
                record: MceRecord::default(),
                flags: InjectionType::Sw,
                count: 1000,
            },
            Request::Trace { after: Some(3) },
            Request::Poison {
                request: PoisonRequest::CorruptPage(rasdrill_inject::hwpoison::Page::PageCache),
            },
            Request::Poison {
                request: PoisonRequest::Corrupt {
                    pfn: 0xf000,
                    filter: Some(rasdrill_inject::hwpoison::Filter {
                        dev: None,
                        flags: Some((1, 1)),
                        memcg: None,
                    }),
                },
            },
            Request::Poison {
                request: PoisonRequest::Madvise(rasdrill_inject::hwpoison::Advice::SoftOffline),
            },
            Request::Run(run),
            Request::Spawn(SpawnSpec {
                name: "rasdaemon".into(),
                argv: vec!["rasdaemon".into(), "-f".into(), "-r".into()],
                env: BTreeMap::new(),
                cwd: Some("/".into()),
            }),
            Request::Kill {
                name: "rasdaemon".into(),
                signal: 15,
                grace_ms: 2000,
            },
            Request::ReadFile {
                path: "/proc/cpuinfo".into(),
            },
            Request::WriteFile {
                path: "/tmp/x".into(),
                contents: "a\nb".into(),
            },
            Request::Mkdir {
                path: "/run/x".into(),
            },
            Request::Poweroff,
        ];
        for (id, request) in requests.into_iter().enumerate() {
            round_trip(Envelope {
                id: id as u64 + 1,
                request,
            });
        }
    }

    #[test]
    fn replies_round_trip() {
        let ready = Ready {
            kernel_release: "6.1.0-56-amd64".into(),
            cpus_online: 1,
            uptime_ms: 2400,
            setup_ms: 30,
            modules_loaded: vec!["mce-inject".into()],
            module_failures: vec![],
            tracepoints_enabled: vec!["mce/mce_record".into()],
            warnings: vec![],
        };
        let exit = ExitInfo {
            code: None,
            signal: Some(9),
        };
        let replies = [
            Reply::Status(ready.clone()),
            Reply::Injected {
                writes: vec!["write /sys/kernel/debug/mce-inject/bank 4".into()],
            },
            Reply::Poisoned {
                pfn: Some(0xf000),
                writes: vec!["write /sys/kernel/debug/hwpoison/corrupt-pfn 0xf000".into()],
                outcomes: vec![],
            },
            Reply::Kmsg {
                records: crate::agent::kmsg::parse_records("6,1,2,-;x\n SUBSYSTEM=y\n").unwrap(),
            },
            Reply::Trace(TraceBatch {
                events: vec![],
                unparsed: vec![UnparsedLine {
                    seq: 1,
                    line: "CPU:0 [LOST 1 EVENTS]".into(),
                }],
                dropped: 2,
            }),
            Reply::Run(RunOutput {
                exit,
                stdout: "é\n".into(),
                stderr: String::new(),
                timed_out: true,
                elapsed_ms: 5,
            }),
            Reply::Spawned(Spawned {
                pid: 7,
                stdout: "/a".into(),
                stderr: "/b".into(),
            }),
            Reply::Killed(exit),
            Reply::File {
                contents: "x".into(),
            },
            Reply::Done,
        ];
        round_trip(FromAgent::Ready(ready));
        for reply in replies {
            round_trip(FromAgent::Ok { id: 9, reply });
        }
        round_trip(FromAgent::Error {
            id: 0,
            message: "bad\nline".into(),
        });
    }

    #[test]
    fn wire_format_is_explicit() {
        let line = to_line(&Envelope {
            id: 3,
            request: Request::Kmsg { after: Some(12) },
        });
        assert_eq!(
            line,
            "{\"id\":3,\"request\":{\"kind\":\"kmsg\",\"after\":12}}\n"
        );
        let line = to_line(&FromAgent::Ok {
            id: 3,
            reply: Reply::Done,
        });
        assert_eq!(
            line,
            "{\"type\":\"ok\",\"id\":3,\"reply\":{\"kind\":\"done\"}}\n"
        );
        let unknown = r#"{"id":1,"request":{"kind":"kmsg","after":1,"extra":2}}"#;
        assert!(serde_json::from_str::<Envelope>(unknown).is_err());
        let record = serde_json::to_value(MceRecord::default()).unwrap();
        let inject = serde_json::json!({"id": 1, "request": {"kind": "inject", "record": record, "flags": "th"}});
        let envelope: Envelope = serde_json::from_value(inject.clone()).unwrap();
        assert!(matches!(
            envelope.request,
            Request::Inject {
                flags: InjectionType::Th,
                ..
            }
        ));
        let mut bad = inject;
        bad["request"]["flags"] = "hardware".into();
        let err = serde_json::from_value::<Envelope>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected sw, hw, df or th"), "{err}");
    }
}
