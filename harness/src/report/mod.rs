//! What a run tells people and machines: progress while it runs, a summary table at the end,
//! JUnit XML and JSON files, and the exit code.
//!
//! The runner sends [`Event`]s to a [`Sink`] (the human [`Progress`] lines on stderr), collects one
//! [`ScenarioResult`] per scenario, and hands them to a [`RunReport`].

mod json;
mod junit;

/// Text as XML or HTML character data or an attribute value (the JUnit and HTML reports).
pub(crate) use junit::escape;
mod progress;
mod summary;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rasdrill_qemu::vm::Diagnosed;

use crate::exit::Code;
use crate::golden::Verdict;

pub use progress::{Event, PanicSeen, Progress, Sink};

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioResult {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    /// The pinned kernel line its guest booted (`6.12`; `None` on a local target), which a run of
    /// every line (`--all-lines`) tells results apart by.
    pub kernel_line: Option<String>,
    /// Why it did not finish its steps, if it did not.
    pub failure: Option<Failure>,
    /// One per compared collector, in the scenario's `compare` order.
    pub goldens: Vec<GoldenResult>,
    /// The oracle's verdict on what the decoders claimed (`None`: nothing was injected).
    pub oracle: Option<crate::oracle::Verdict>,
    /// From start to the end of the last comparison.
    pub duration: Duration,
    /// How much of `duration` went to booting the guest (zero on a local target).
    pub boot: Duration,
}

/// A scenario that could not run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// One paragraph: what failed, where, after how long.
    pub message: String,
    /// More text that helps (the last console lines, QEMU's stderr), if any.
    pub details: Option<String>,
}

/// The diagnostics an error carries (console tail, QEMU's stderr), as a failure's details.
pub fn details(e: &dyn Diagnosed) -> Option<String> {
    e.diagnostics()
        .map(|d| d.to_string().trim_start_matches('\n').to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The scenario's expectation did not hold (a wait timed out, no panic came...).
    Failed,
    /// The scenario or its inputs were wrong (found only at run time, e.g. a refused injection).
    BadInput,
    /// The machinery failed: QEMU, the guest agent, a kernel write.
    Infrastructure,
    /// A signal (Ctrl-C, SIGTERM) stopped it.
    Interrupted,
}

/// One collector's output compared with its golden file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenResult {
    pub collector: String,
    pub verdict: Verdict,
    /// What the collector said, normalised: what was compared (`rasdrill diff` compares runs by it).
    pub output: String,
    /// The guest kernel's release (`uname -r`), or what stood in for it on a local target.
    pub kernel: String,
}

/// A scenario's result in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Passed,
    GoldenMismatch,
    /// A decoder's claim contradicts the injected record (and is not a known finding), or a
    /// known finding no longer appears.
    Findings,
    Failed,
    Infrastructure,
    BadInput,
    /// Stopped by a signal: the run is incomplete, whatever else happened.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::GoldenMismatch => "golden-mismatch",
            Outcome::Findings => "findings",
            Outcome::Failed => "failed",
            Outcome::Infrastructure => "infrastructure",
            Outcome::BadInput => "bad-input",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The exit code of a run whose worst outcome is this one.
    pub fn code(self) -> Code {
        match self {
            Outcome::Passed => Code::Success,
            Outcome::GoldenMismatch => Code::GoldenMismatch,
            Outcome::Findings => Code::Failed,
            Outcome::Failed => Code::Failed,
            Outcome::Infrastructure => Code::Infrastructure,
            Outcome::BadInput => Code::BadInput,
            Outcome::Interrupted => Code::Interrupted,
        }
    }
}

impl ScenarioResult {
    /// Its name with its kernel line, as the suite's tests are named
    /// (`amd-f15h-dram-ce-qemu::kernel-6.12`); just the name on a local target.
    pub fn name_on_line(&self) -> String {
        match &self.kernel_line {
            Some(line) => format!("{}::kernel-{line}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn outcome(&self) -> Outcome {
        match &self.failure {
            Some(f) => match f.kind {
                FailureKind::Failed => Outcome::Failed,
                FailureKind::BadInput => Outcome::BadInput,
                FailureKind::Infrastructure => Outcome::Infrastructure,
                FailureKind::Interrupted => Outcome::Interrupted,
            },
            None if self.oracle.as_ref().is_some_and(|v| !v.passed()) => Outcome::Findings,
            None if self.goldens.iter().all(|g| g.verdict.passed()) => Outcome::Passed,
            None => Outcome::GoldenMismatch,
        }
    }
}

/// Every scenario's result, and how long the whole run took.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunReport {
    pub results: Vec<ScenarioResult>,
    pub duration: Duration,
    /// The signal that stopped the run early, if one did: `results` holds what ran.
    pub interrupted: Option<i32>,
}

impl RunReport {
    /// Adds a later run's results (another kernel line's): one report of both.
    pub fn append(&mut self, later: RunReport) {
        self.results.extend(later.results);
        self.duration += later.duration;
        self.interrupted = self.interrupted.or(later.interrupted);
    }

    /// The run's worst outcome decides the exit code, in this order: bad input (2; nothing
    /// meaningful ran), infrastructure (4; results are incomplete), a failed scenario (1), new or
    /// vanished oracle findings (1), a golden mismatch (3), success (0). An empty run is a success only if nothing was asked.
    pub fn outcome(&self) -> Outcome {
        self.results
            .iter()
            .map(ScenarioResult::outcome)
            .max()
            .unwrap_or(Outcome::Passed)
    }

    /// The outcome's code; after a signal, 128 + the signal (130, 143, 129).
    pub fn exit_code(&self) -> Code {
        match self.interrupted {
            Some(signal) => Code::for_signal(signal),
            None => self.outcome().code(),
        }
    }

    /// How many scenarios ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome() == outcome)
            .count()
    }

    /// The table printed at the end of a run.
    pub fn summary(&self) -> String {
        summary::table(self)
    }

    /// JUnit XML: one testsuite, one testcase per scenario.
    pub fn junit(&self) -> String {
        junit::render(self)
    }

    pub fn json(&self) -> serde_json::Value {
        json::render(self)
    }

    pub fn write_junit(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.junit())
    }

    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_string_pretty(&self.json()).map_err(io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}

/// `6.20 s`: durations as people read them in reports.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests;
