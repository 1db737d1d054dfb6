//! Scenarios: the YAML files `rasdrill run` executes, their schema and their validation.
//!
//! A scenario is read completely and checked before anything boots; every problem of every file
//! is reported at once, each with its file, line, column and field (see `docs/scenarios.md`).
//!
//! ```no_run
//! # use std::path::PathBuf;
//! let scenarios = rasdrill::scenario::load(&[PathBuf::from("scenarios")])?;
//! for s in &scenarios {
//!     for step in &s.steps {
//!         println!("{}: {}", s.name, step);
//!     }
//! }
//! # Ok::<(), rasdrill::scenario::Invalid>(())
//! ```

mod from_flags;
mod mce_file;
pub mod merges;
mod parse;
mod problem;
mod read;
mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rasdrill_inject::debugfs::InjectionType;
pub use rasdrill_inject::edac::{EccAccess, EccInjection, FakeInjection, Layer};
pub use rasdrill_inject::request::{EdacRequest, GuestFacts, Payload};
use rasdrill_inject::{MceRecord, Vendor};
use regex::Regex;

use crate::profile::Profile;

pub use from_flags::{AER_EVENT, KMSG, MCE_RECORD, MEMORY_FAILURE, TRACE};
pub use problem::{Invalid, Problem};
pub use yaml::Loc;

/// Where `rasdrill run` looks when given no path.
pub const DEFAULT_DIR: &str = "scenarios";

/// A validated scenario: everything the runner needs, nothing left to check.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it was read from, as given (relative paths stay relative).
    pub file: PathBuf,
    /// Unique among the scenarios of one run; names the golden files.
    pub name: String,
    pub description: String,
    pub target: Target,
    pub setup: Setup,
    pub collectors: Vec<Collector>,
    pub steps: Vec<Step>,
    /// Names of the collectors whose normalised output is compared with golden files.
    pub compare: Vec<String>,
    /// Oracle findings the scenario documents (`collector/decoder/field` and why).
    pub known_findings: Vec<crate::oracle::KnownFinding>,
    /// The scenario provokes a kernel crash report (oops, BUG, WARNING, call trace) on purpose:
    /// one must be seen, and it does not fail the scenario.
    pub expect_crash: bool,
    /// The most one collector may return for this scenario, in bytes (`output_limit_kib`).
    pub output_limit: usize,
}

/// What one collector may return unless its scenario says otherwise, in bytes (the suite's
/// largest output is a few KB): a decoder stuck in a loop fails clearly instead of filling
/// memory, golden files and diffs.
pub const DEFAULT_OUTPUT_LIMIT: usize = 8 << 20;
/// The most a scenario may allow one collector (`output_limit_kib`), in KiB: 64 MiB.
pub const MAX_OUTPUT_LIMIT_KIB: u64 = 64 << 10;

/// Where the errors go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A throw-away QEMU guest.
    Guest(Machine),
    /// This machine; `root` is a directory tree that stands in for `/` (fake sysfs/debugfs).
    Local { root: Option<PathBuf> },
}

/// The guest machine. Its CPU model picks the decoders (kernel and rasdaemon): always pinned.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The profile it came from, if the scenario named one.
    pub profile: Option<&'static Profile>,
    /// QEMU's `-cpu` value.
    pub cpu_model: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// Guessed from the CPU model; decides which status bits and injection flags make sense.
    pub vendor: Vendor,
    pub kernel: Option<KernelOverride>,
    /// q35 with a PCIe root port and an e1000e behind it (`pcie: true`), for AER.
    pub pcie: bool,
    /// The pinned line this scenario always boots, whatever line the run is on (a scenario about
    /// one line's behaviour, e.g. 6.12's CEC); `None`: the run's line.
    pub kernel_line: Option<&'static rasdrill_qemu::pinned::KernelLine>,
    /// Added to the guest kernel's command line: part of the guest's identity, so such a
    /// scenario gets a guest of its own.
    pub kernel_args: Vec<String>,
}

/// A kernel other than the default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelOverride {
    /// A bzImage or an uncompressed vmlinux.
    pub path: PathBuf,
    /// The `lib/modules/<release>` directory that goes with it.
    pub modules: Option<PathBuf>,
}

/// What is prepared before the first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Modules loaded before the first step (the machine profile's decoder modules come too).
    pub modules: Vec<String>,
    /// The machine-check poll interval (`check_interval`), which bounds when a corrected error
    /// injected through QEMU is seen.
    pub poll_interval: Duration,
    /// Write 1 to `<debugfs>/mce/fake_panic`: a fatal machine check logs instead of panicking.
    pub fake_panic: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            modules: Vec::new(),
            poll_interval: Duration::from_secs(1),
            fake_panic: false,
        }
    }
}

/// Something that gathers what the decoders said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// `kmsg`, `trace`, `rasdaemon`, or a command collector's own name.
    pub name: String,
    pub kind: CollectorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectorKind {
    /// The kernel log; `filter` (a validated regular expression) replaces the default choice
    /// of RAS lines (see `collect::kmsg`).
    /// `boot_log` puts the lines of the guest's boot (up to its agent's readiness) first.
    Kmsg {
        filter: Option<String>,
        boot_log: bool,
    },
    /// Tracepoints, `group/event` (e.g. `mce/mce_record`).
    Trace { events: Vec<String> },
    /// rasdaemon's decoded events; `build` is the scenario's own choice of rasdaemon (else the
    /// run's).
    Rasdaemon {
        build: Option<crate::collect::rasdaemon_build::RasdaemonBuild>,
    },
    /// Any command: `start` before the first step, `collect` for the output, `stop` at the end.
    Command {
        start: Option<Vec<String>>,
        collect: Vec<String>,
        stop: Option<Vec<String>>,
        /// Host programs copied into the guest (with their libraries), by name or path.
        needs: Vec<String>,
    },
}

/// One step, in order.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position in `steps`, from 0.
    pub index: usize,
    /// Where the step starts in the scenario file; line 0 for a step built from command-line
    /// flags (`rasdrill inject --guest`).
    pub loc: Loc,
    pub kind: StepKind,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Inject(Payload),
    Wait(Wait),
    /// The guest must panic; always the last step.
    ExpectPanic(ExpectPanic),
    /// A plain pause (prefer `wait`).
    Sleep(Duration),
}

/// Wait until a collector has seen enough, or fail at the deadline.
#[derive(Debug, Clone)]
pub struct Wait {
    pub collector: String,
    pub until: WaitFor,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum WaitFor {
    /// At least this many records (what a record is, the collector says).
    Records(u32),
    /// A line matching this pattern.
    Line(Regex),
}

/// The guest must panic within `timeout`, with a panic line matching `message` if given.
#[derive(Debug, Clone)]
pub struct ExpectPanic {
    pub timeout: Duration,
    pub message: Option<Regex>,
}

impl Machine {
    /// The machine a profile describes, with the run's kernel.
    pub fn of_profile(profile: &'static Profile) -> Machine {
        Machine {
            profile: Some(profile),
            cpu_model: profile.cpu_model.to_string(),
            vcpus: profile.vcpus,
            memory_mib: profile.memory_mib,
            vendor: crate::profile::vendor_of(profile.cpu_model),
            kernel: None,
            pcie: false,
            kernel_line: None,
            kernel_args: Vec::new(),
        }
    }

    /// What the injection planner needs to know of the guest before it boots.
    pub fn facts(&self) -> GuestFacts {
        GuestFacts {
            vcpus: self.vcpus,
            banks: rasdrill_qemu::cmdline::GUEST_BANKS,
            vendor: self.vendor,
            pcie: self.pcie,
        }
    }
}

impl Scenario {
    /// The machine, for a guest scenario.
    pub fn machine(&self) -> Option<&Machine> {
        match &self.target {
            Target::Guest(m) => Some(m),
            Target::Local { .. } => None,
        }
    }

    /// What runs the scenario, for progress lines and golden headers: the guest's CPU model,
    /// or `local` (with its stand-in root).
    pub fn machine_label(&self) -> String {
        match &self.target {
            Target::Guest(m) => m.cpu_model.clone(),
            Target::Local { root: None } => "local".to_string(),
            Target::Local { root: Some(root) } => format!("local (root {})", root.display()),
        }
    }

    /// Whether the guest keeps what the scenario did, so that no other scenario may use it
    /// after: a PCIe AER error leaves its device's sticky error status behind (and a failed
    /// recovery a link down), which the next scenario's report would show.
    pub fn spoils_guest(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(&s.kind, StepKind::Inject(p) if p.needs_pcie()))
    }

    pub fn collector(&self, name: &str) -> Option<&Collector> {
        self.collectors.iter().find(|c| c.name == name)
    }

    /// Every MCE record the scenario injects, in order (the inline ones and those of files).
    pub fn records(&self) -> impl Iterator<Item = &MceRecord> {
        self.steps.iter().flat_map(|s| match &s.kind {
            StepKind::Inject(inject) => inject.records(),
            _ => &[],
        })
    }

    /// Whether the guest is expected to panic (the last step is `expect_panic`).
    pub fn expects_panic(&self) -> bool {
        matches!(
            self.steps.last().map(|s| &s.kind),
            Some(StepKind::ExpectPanic(_))
        )
    }
}

impl fmt::Display for Step {
    /// `steps[1] (line 14): wait for kmsg: a line matching "DRAM ECC"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.line == 0 {
            return write!(f, "steps[{}]: {}", self.index, self.kind);
        }
        write!(
            f,
            "steps[{}] (line {}): {}",
            self.index, self.loc.line, self.kind
        )
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKind::Inject(Payload::Edac(EdacRequest::Amd64(ecc))) => {
                write!(f, "inject via edac: amd64_edac ECC error on mc{}", ecc.mc())
            }
            StepKind::Inject(Payload::Edac(EdacRequest::Fake(fake))) => {
                write!(f, "inject via edac: fake error on mc{}", fake.mc())
            }
            StepKind::Inject(Payload::Hwpoison(req)) => write!(f, "inject via hwpoison: {req}"),
            StepKind::Inject(inject) => {
                write!(f, "inject via {}: ", inject.via())?;
                match inject.records() {
                    [one] => write!(
                        f,
                        "cpu {} bank {} status {:#018x}",
                        one.cpu, one.bank, one.status
                    ),
                    many => write!(f, "{} records", many.len()),
                }
            }
            StepKind::Wait(w) => {
                write!(f, "wait for {}: ", w.collector)?;
                match &w.until {
                    WaitFor::Records(1) => f.write_str("1 record")?,
                    WaitFor::Records(n) => write!(f, "{n} records")?,
                    WaitFor::Line(re) => write!(f, "a line matching {:?}", re.as_str())?,
                }
                write!(f, " within {} s", w.timeout.as_secs_f64())
            }
            StepKind::ExpectPanic(p) => {
                write!(f, "expect a panic within {} s", p.timeout.as_secs_f64())?;
                match &p.message {
                    Some(re) => write!(f, " matching {:?}", re.as_str()),
                    None => Ok(()),
                }
            }
            StepKind::Sleep(d) => write!(f, "sleep {} ms", d.as_millis()),
        }
    }
}

/// Loads and validates the scenarios named by `paths`: files, and directories (every `*.yaml`
/// directly inside, sorted by name). Reports every problem of every file, or none.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Scenario>, Invalid> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match scenario_files(path) {
            Ok(found) => files.extend(found),
            Err(problem) => problems.push(problem),
        }
    }
    let mut scenarios: Vec<Scenario> = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(s) => {
                if let Some(other) = scenarios.iter().find(|o| o.name == s.name) {
                    problems.push(Problem {
                        file: s.file.clone(),
                        loc: Loc::default(),
                        field: "name".into(),
                        message: format!(
                            "`{}` is also the name of {}: golden files are named after scenarios, \
                             so names must be unique",
                            s.name,
                            other.file.display()
                        ),
                    });
                } else {
                    scenarios.push(s);
                }
            }
            Err(invalid) => problems.extend(invalid.problems),
        }
    }
    if problems.is_empty() {
        Ok(scenarios)
    } else {
        Err(Invalid { problems })
    }
}

/// Loads and validates one scenario file.
pub fn load_file(file: &Path) -> Result<Scenario, Invalid> {
    let problem = |loc, message| Invalid {
        problems: vec![Problem {
            file: file.to_path_buf(),
            loc,
            field: String::new(),
            message,
        }],
    };
    let bytes = std::fs::read(file)
        .map_err(|e| problem(Loc::default(), format!("cannot read the scenario: {e}")))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => from_str(file, text),
        Err(e) => {
            let (loc, byte) = first_bad_byte(&bytes, e.valid_up_to());
            Err(problem(
                loc,
                format!("byte 0x{byte:02x} is not UTF-8: a scenario is UTF-8 text"),
            ))
        }
    }
}

/// Where the first byte that is not UTF-8 is (columns count characters), and that byte.
fn first_bad_byte(bytes: &[u8], valid_up_to: usize) -> (Loc, u8) {
    let good = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
    let line_start = good.rfind('\n').map_or(0, |i| i + 1);
    let loc = Loc {
        line: good.matches('\n').count() as u64 + 1,
        column: good[line_start..].chars().count() as u64 + 1,
    };
    (loc, bytes[valid_up_to])
}

/// Validates a scenario's text; `file` names it in errors and anchors its relative paths.
pub fn from_str(file: &Path, text: &str) -> Result<Scenario, Invalid> {
    parse::scenario(file, text).map_err(|problems| Invalid { problems })
}

fn scenario_files(path: &Path) -> Result<Vec<PathBuf>, Problem> {
    let problem = |message: String| Problem {
        file: path.to_path_buf(),
        loc: Loc::default(),
        field: String::new(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| problem(format!("cannot list: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| problem(format!("cannot list: {e}")))?;
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "yaml") && p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(problem("no scenarios here (expected *.yaml files)".into()));
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
