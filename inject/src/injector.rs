//! The one trait every injector implements, the errors that stop an injection before its first
//! write, and the executor that performs a validated plan.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::action::Action;
use crate::hwpoison::{self, Advice, ChildEnd};
use crate::status::Severity;

/// An injector turns a request (an MCE record, an EDAC request) into the actions that deliver it.
///
/// `describe` is pure: it reads no file and changes nothing, so its result is the dry run.
/// Whether the machine can take the actions is [`crate::preflight`]'s job; doing them is [`perform`]'s.
pub trait Injector {
    type Request;

    /// Everything this injector would do for `req`, in order.
    fn describe(&self, req: &Self::Request) -> Result<Vec<Action>, InjectError>;
}

/// Why an injection was refused. Raised before the first write, so nothing has changed.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("{injector} cannot set {field}: {why}")]
    Unsupported {
        injector: &'static str,
        field: &'static str,
        why: &'static str,
    },
    #[error("{field} {value} is out of range: {valid}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        valid: &'static str,
    },
    #[error("cpu {cpu} is not online: online CPUs are {online} (from {path})")]
    CpuOffline {
        cpu: u32,
        online: String,
        path: PathBuf,
    },
    #[error("bank {bank} does not exist on cpu {cpu}: {valid} (from {path})")]
    NoBank {
        cpu: u32,
        bank: u32,
        valid: String,
        path: PathBuf,
    },
    #[error(
        "status {status:#x} has VAL (bit 63) clear: the kernel ignores an invalid record; \
         set VAL, e.g. {:#x}",
        status | crate::status::VAL
    )]
    NotValid { status: u64 },
    #[error("cpu {cpu} is out of range: the guest has {vcpus} vCPUs (0-{})", .vcpus - 1)]
    NoCpu { cpu: u32, vcpus: u32 },
    #[error("bank {bank} is out of range: {whose} {banks} MCA banks (0-{})", .banks - 1)]
    BankOutOfRange {
        bank: u32,
        banks: u32,
        whose: &'static str,
    },
    /// The method cannot reach the place (`request::Request::problems` decides).
    #[error("via {via} cannot inject into {place}: {why}")]
    Misfit {
        via: &'static str,
        place: &'static str,
        why: &'static str,
    },
    #[error("flags {flags} needs an AMD CPU (the kernel writes AMD's bank MSRs), but this one is {vendor_id}; use flags sw, which only decodes")]
    NeedsAmd {
        flags: &'static str,
        vendor_id: String,
    },
    /// An interface is absent; `fix` says what to run.
    #[error("{what} is missing ({path} does not exist): {fix}")]
    Missing {
        what: String,
        path: PathBuf,
        fix: String,
    },
    #[error("cannot write {path}: {why}")]
    NotWritable { path: PathBuf, why: String },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} does not look like the kernel's: {what}")]
    Malformed { path: PathBuf, what: String },
    #[error(
        "status {status:#x} is {severity} ({reason}): on this machine that can kill processes, \
         offline memory or panic the kernel; pass {needs} to inject it anyway"
    )]
    Refused {
        status: u64,
        severity: Severity,
        reason: &'static str,
        needs: &'static str,
    },
    /// A record would land on one the guest may not have consumed (see `merge`).
    #[error(
        "{merge}; inject them apart (one command each; in a scenario, a `wait` step between \
         them), or ask for the overflow on purpose (--overflow; `overflow: true` on a scenario's \
         inject step)"
    )]
    WouldMerge { merge: crate::merge::Merge<String> },
    #[error("the {layer} layer is given twice: give each layer once")]
    DuplicateLayer { layer: &'static str },
    #[error("memory controller mc{mc} has no {layer} layer: its layers are {layers} (the fake_inject_* files in {path})")]
    NoLayer {
        mc: u32,
        layer: &'static str,
        layers: String,
        path: PathBuf,
    },
    /// The kernel keeps each fake_inject_<layer> value between injections: an unwritten layer
    /// would report the position an earlier injection left there.
    #[error("memory controller mc{mc} has layers {layers}: give a position for {missing} too (the kernel keeps the last value written to fake_inject_{missing})")]
    MissingLayer {
        mc: u32,
        missing: String,
        layers: String,
    },
    /// A request of another source (EDAC, EINJ, hwpoison, AER) that the guard refuses.
    #[error(
        "{what}: on this machine that can kill processes, offline memory or panic the kernel; \
         pass {needs} to inject it anyway"
    )]
    RefusedSource { what: String, needs: &'static str },
    /// A value the kernel interface would refuse or misread, found before anything is written.
    #[error("{field} {value}: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: String,
    },
    /// An error about one of several records.
    #[error("record {index}: {source}")]
    InRecord {
        /// 1-based.
        index: usize,
        #[source]
        source: Box<InjectError>,
    },
}

impl InjectError {
    /// Names the record an error is about, when there are several.
    pub fn in_record(self, index: usize, of: usize) -> InjectError {
        if of > 1 {
            InjectError::InRecord {
                index: index + 1,
                source: Box::new(self),
            }
        } else {
            self
        }
    }
}

/// A write that failed part-way: earlier actions did happen.
#[derive(Debug, thiserror::Error)]
pub enum PerformError {
    #[error("writing `{value}` to {path} failed after {done} of {total} writes: {source}; the kernel log (dmesg) usually says why")]
    Write {
        path: PathBuf,
        value: String,
        done: usize,
        total: usize,
        #[source]
        source: io::Error,
    },
    #[error("madvise {advice} failed after {done} of {total} actions: {source}")]
    Madvise {
        advice: Advice,
        done: usize,
        total: usize,
        #[source]
        source: io::Error,
    },
    #[error("`{0}` is a QEMU monitor action: the guest runner delivers those, not this machine")]
    NotLocal(String),
}

/// What an action reported besides having been done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// How the child process of a [`Action::Madvise`] ended.
    Madvise { advice: Advice, end: ChildEnd },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Madvise { advice, end } => {
                write!(f, "the child that called madvise {advice} {end}")
            }
        }
    }
}

/// Performs the actions of a validated plan, in order, and stops at the first failure.
///
/// Each value is written followed by a newline, in one write(2), as `echo` does: the kernel
/// parses each write on its own, and mce-inject's `flags` drops the last byte it receives.
/// A binary structure is written as it is, in one write(2). Files are opened without O_CREAT:
/// a missing kernel file is an error, never a new file. A `Monitor` action anywhere in the plan
/// refuses the whole plan before anything is written.
pub fn perform(actions: &[Action]) -> Result<Vec<Outcome>, PerformError> {
    perform_with(actions, |path, value| {
        write_once(path, format!("{value}\n").as_bytes())
    })
}

/// [`perform`] on a stand-in tree at `root`: files take writes as the kernel would
/// ([`crate::standin::write`]).
pub fn perform_stand_in(root: &Path, actions: &[Action]) -> Result<Vec<Outcome>, PerformError> {
    perform_with(actions, |path, value| {
        crate::standin::write(root, path, value)
    })
}

fn perform_with(
    actions: &[Action],
    write: impl Fn(&PathBuf, &str) -> io::Result<()>,
) -> Result<Vec<Outcome>, PerformError> {
    if let Some(Action::Monitor { line }) =
        actions.iter().find(|a| matches!(a, Action::Monitor { .. }))
    {
        return Err(PerformError::NotLocal(line.clone()));
    }
    let total = actions.len();
    let mut outcomes = Vec::new();
    for (done, action) in actions.iter().enumerate() {
        let failed = |path: &PathBuf, value: String, source| PerformError::Write {
            path: path.clone(),
            value,
            done,
            total,
            source,
        };
        match action {
            Action::Write { path, value } => {
                write(path, value).map_err(|e| failed(path, value.clone(), e))?
            }
            Action::WriteBytes {
                path,
                bytes,
                fields,
            } => write_once(path, bytes).map_err(|e| failed(path, fields.clone(), e))?,
            Action::Madvise { advice } => {
                let end =
                    hwpoison::madvise_child(*advice).map_err(|source| PerformError::Madvise {
                        advice: *advice,
                        done,
                        total,
                        source,
                    })?;
                outcomes.push(Outcome::Madvise {
                    advice: *advice,
                    end,
                });
            }
            Action::Monitor { .. } => unreachable!("refused above"),
        }
    }
    Ok(outcomes)
}

fn write_once(path: &PathBuf, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    let n = file.write(bytes)?;
    if n != bytes.len() {
        return Err(io::Error::other(format!(
            "short write: {n} of {} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perform_writes_each_value_with_a_newline_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "old value that is longer\n").unwrap();
        std::fs::write(&b, "").unwrap();
        let plan = [
            Action::Write {
                path: a.clone(),
                value: "sw".into(),
            },
            Action::Write {
                path: b.clone(),
                value: "0x10".into(),
            },
        ];
        perform(&plan).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "sw\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "0x10\n");
    }

    #[test]
    fn perform_never_creates_files_and_says_how_far_it_got() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "").unwrap();
        let missing = dir.path().join("missing");
        let plan = [
            Action::Write {
                path: a.clone(),
                value: "1".into(),
            },
            Action::Write {
                path: missing.clone(),
                value: "2".into(),
            },
        ];
        let e = perform(&plan).unwrap_err().to_string();
        assert!(e.contains("after 1 of 2 writes"), "{e}");
        assert!(e.contains("missing"), "{e}");
        assert!(!missing.exists());
    }

    #[test]
    fn perform_refuses_monitor_actions_before_writing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "untouched").unwrap();
        let plan = [
            Action::Write {
                path: a.clone(),
                value: "1".into(),
            },
            Action::Monitor {
                line: "mce 0 4 0x1 0x0 0x0 0x0".into(),
            },
        ];
        assert!(matches!(perform(&plan), Err(PerformError::NotLocal(_))));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "untouched");
    }

    #[test]
    fn in_record_only_when_there_are_several() {
        let e = InjectError::NotValid { status: 0 };
        assert!(!e.in_record(0, 1).to_string().starts_with("record"));
        let e = InjectError::NotValid { status: 0 };
        assert!(e
            .in_record(1, 3)
            .to_string()
            .starts_with("record 2: status 0x0 has VAL"));
    }
}
