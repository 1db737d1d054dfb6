//! `rasdrill diff`: which decoded lines moved between two runs, per scenario and collector.
//!
//! A side is a run's JSON report (`rasdrill run --json`), which holds each collector's normalised
//! output. Scenarios are matched by name and collectors by name; outputs are compared line by
//! line. A scenario *changed* when a collector's output differs, when a collector or the
//! scenario exists on one side only, or when it failed on one side only (a decoder change can
//! make a wait time out). A scenario that failed on both sides cannot be compared.

mod html;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::Code;

pub use html::render as html;

/// Why a report cannot be read as a side.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a rasdrill JSON report: {reason}", path.display())]
    NotAReport { path: PathBuf, reason: String },
    #[error(
        "{}: scenario {scenario}, collector {collector} has no `output` (the report was written \
         by an older rasdrill: run the scenarios again)",
        path.display()
    )]
    NoOutput {
        path: PathBuf,
        scenario: String,
        collector: String,
    },
}

/// One run: its scenarios and what each collector said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// How reports name this side (a file name, or `baseline`).
    pub label: String,
    pub scenarios: Vec<ScenarioOutput>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioOutput {
    pub name: String,
    /// Why it did not finish, if it did not.
    pub failure: Option<String>,
    pub collectors: Vec<CollectorOutput>,
    /// The oracle's findings on this side: each finding's text and how the scenario's
    /// verdict sorted it (`new`, `known`, `vanished`).
    pub findings: Vec<(String, &'static str)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorOutput {
    pub name: String,
    /// The guest kernel release the output came from.
    pub kernel: String,
    pub output: String,
}

/// The JSON report, as far as a diff needs it (harness/src/report/json.rs writes it).
#[derive(Deserialize)]
struct RawRun {
    scenarios: Vec<RawScenario>,
}

#[derive(Deserialize)]
struct RawScenario {
    name: String,
    failure: Option<RawFailure>,
    goldens: Vec<RawGolden>,
    /// Absent in reports of scenarios that injected nothing (and of older rasdrills).
    #[serde(default)]
    oracle: Option<RawOracle>,
}

/// The oracle's verdict as `report/json.rs` writes it (`oracle::Verdict`).
#[derive(Deserialize)]
struct RawOracle {
    #[serde(default)]
    known: Vec<RawFinding>,
    #[serde(default)]
    new: Vec<RawFinding>,
    #[serde(default)]
    vanished: Vec<RawKnown>,
}

#[derive(Deserialize)]
struct RawFinding {
    collector: String,
    decoder: String,
    field: String,
    injected: String,
    claimed: String,
}

impl RawFinding {
    /// The finding as the diff shows it: its key, the injected and the claimed value.
    fn text(&self) -> String {
        format!(
            "{}/{}/{}: injected {}, claimed {}",
            self.collector, self.decoder, self.field, self.injected, self.claimed
        )
    }
}

#[derive(Deserialize)]
struct RawKnown {
    key: String,
}

impl RawOracle {
    fn findings(self) -> Vec<(String, &'static str)> {
        let new = self.new.iter().map(|f| (f.text(), "new"));
        let known = self.known.iter().map(|f| (f.text(), "known"));
        let vanished = self.vanished.into_iter().map(|k| {
            (
                format!("{}: listed as known, did not appear", k.key),
                "vanished",
            )
        });
        new.chain(known).chain(vanished).collect()
    }
}

#[derive(Deserialize)]
struct RawFailure {
    message: String,
}

#[derive(Deserialize)]
struct RawGolden {
    collector: String,
    #[serde(default)]
    kernel: String,
    output: Option<String>,
}

impl Side {
    /// Reads a JSON report; the side is labelled with its path.
    pub fn read(path: &Path) -> Result<Side, DiffError> {
        let text = std::fs::read_to_string(path).map_err(|source| DiffError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Side::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Side, DiffError> {
        let raw: RawRun = serde_json::from_str(text).map_err(|e| DiffError::NotAReport {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let scenarios = raw
            .scenarios
            .into_iter()
            .map(|s| {
                let collectors = s
                    .goldens
                    .into_iter()
                    .map(|g| match g.output {
                        Some(output) => Ok(CollectorOutput {
                            name: g.collector,
                            kernel: g.kernel,
                            output,
                        }),
                        None => Err(DiffError::NoOutput {
                            path: path.to_path_buf(),
                            scenario: s.name.clone(),
                            collector: g.collector,
                        }),
                    })
                    .collect::<Result<_, _>>()?;
                Ok(ScenarioOutput {
                    name: s.name,
                    failure: s.failure.map(|f| f.message),
                    collectors,
                    findings: s.oracle.map(RawOracle::findings).unwrap_or_default(),
                })
            })
            .collect::<Result<_, DiffError>>()?;
        Ok(Side {
            label: path.display().to_string(),
            scenarios,
        })
    }

    fn scenario(&self, name: &str) -> Option<&ScenarioOutput> {
        self.scenarios.iter().find(|s| s.name == name)
    }
}

/// Which side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Base,
    New,
}

impl Which {
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Base => "base",
            Which::New => "new",
        }
    }
}

/// How one scenario compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every collector said the same on both sides.
    Same,
    /// At least one collector's output differs, or a collector exists on one side only.
    Changed,
    /// The scenario is in one report only.
    OnlyIn(Which),
    /// It failed on one side only: the message.
    FailedOn(Which, String),
    /// It failed on both sides: nothing to compare.
    FailedOnBoth,
}

/// One collector of one scenario, both sides; `None` where that side has no such output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorPair {
    pub name: String,
    pub base: Option<CollectorOutput>,
    pub new: Option<CollectorOutput>,
}

impl CollectorPair {
    pub fn changed(&self) -> bool {
        self.base.as_ref().map(|c| &c.output) != self.new.as_ref().map(|c| &c.output)
    }

    /// A unified diff of the output, base first; empty when nothing changed.
    pub fn unified(&self, base_label: &str, new_label: &str) -> String {
        if !self.changed() {
            return String::new();
        }
        let text = |c: &Option<CollectorOutput>| {
            c.as_ref()
                .map(|c| format!("{}\n", c.output))
                .unwrap_or_default()
        };
        let label = |side: &str, c: &Option<CollectorOutput>| match c {
            Some(c) if !c.kernel.is_empty() => format!("{side}: {} ({})", self.name, c.kernel),
            Some(_) => format!("{side}: {}", self.name),
            None => format!("{side}: no {} output", self.name),
        };
        let (old, new) = (text(&self.base), text(&self.new));
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header(&label(base_label, &self.base), &label(new_label, &self.new))
            .to_string()
    }
}

/// One oracle finding of one scenario, both sides: how each side's verdict sorted it
/// (`new`, `known`, `vanished`), `None` where that side does not have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingPair {
    pub finding: String,
    pub base: Option<&'static str>,
    pub new: Option<&'static str>,
}

impl FindingPair {
    /// Present on one side only: the decoder change made or cured it.
    pub fn moved(&self) -> bool {
        self.base.is_some() != self.new.is_some()
    }
}

/// One scenario on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioDiff {
    pub name: String,
    pub status: Status,
    /// Every collector either side has, base order first.
    pub collectors: Vec<CollectorPair>,
    /// Every oracle finding either side has, base order first.
    pub findings: Vec<FindingPair>,
}

impl ScenarioDiff {
    /// Something moved: a decoder author has to look at it.
    pub fn moved(&self) -> bool {
        !matches!(self.status, Status::Same | Status::FailedOnBoth)
    }

    pub fn changed_collectors(&self) -> impl Iterator<Item = &CollectorPair> {
        self.collectors.iter().filter(|c| c.changed())
    }

    /// What moved, in a few words: `kmsg, trace`, `only in new`, `failed on new`.
    pub fn what(&self) -> String {
        match &self.status {
            Status::Same => "same".into(),
            Status::Changed => self
                .changed_collectors()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            Status::OnlyIn(which) => format!("only in {}", which.as_str()),
            Status::FailedOn(which, _) => format!("failed on {}", which.as_str()),
            Status::FailedOnBoth => "failed on both sides".into(),
        }
    }
}

/// Two runs compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    /// Base order, then scenarios only the new side has.
    pub scenarios: Vec<ScenarioDiff>,
}

/// Compares two runs, scenario by scenario and collector by collector.
pub fn compare(base: &Side, new: &Side) -> Comparison {
    let mut names: Vec<&str> = base.scenarios.iter().map(|s| s.name.as_str()).collect();
    for s in &new.scenarios {
        if base.scenario(&s.name).is_none() {
            names.push(&s.name);
        }
    }
    let scenarios = names
        .into_iter()
        .map(|name| scenario(name, base.scenario(name), new.scenario(name)))
        .collect();
    Comparison {
        base: base.label.clone(),
        new: new.label.clone(),
        scenarios,
    }
}

fn scenario(
    name: &str,
    base: Option<&ScenarioOutput>,
    new: Option<&ScenarioOutput>,
) -> ScenarioDiff {
    let b: &[CollectorOutput] = base.map_or(&[], |s| &s.collectors);
    let n: &[CollectorOutput] = new.map_or(&[], |s| &s.collectors);
    let mut seen = BTreeSet::new();
    let collectors: Vec<CollectorPair> = b
        .iter()
        .chain(n.iter())
        .filter(|c| seen.insert(c.name.clone()))
        .map(|c| CollectorPair {
            name: c.name.clone(),
            base: b.iter().find(|x| x.name == c.name).cloned(),
            new: n.iter().find(|x| x.name == c.name).cloned(),
        })
        .collect();
    let bf: &[(String, &'static str)] = base.map_or(&[], |s| &s.findings);
    let nf: &[(String, &'static str)] = new.map_or(&[], |s| &s.findings);
    let on = |side: &[(String, &'static str)], f: &str| {
        side.iter().find(|(t, _)| t == f).map(|(_, how)| *how)
    };
    let mut seen = BTreeSet::new();
    let findings: Vec<FindingPair> = bf
        .iter()
        .chain(nf.iter())
        .filter(|(f, _)| seen.insert(f.clone()))
        .map(|(f, _)| FindingPair {
            finding: f.clone(),
            base: on(bf, f),
            new: on(nf, f),
        })
        .collect();
    let failure = |s: Option<&ScenarioOutput>| s.and_then(|s| s.failure.clone());
    let status = match (base, new) {
        (None, _) => Status::OnlyIn(Which::New),
        (_, None) => Status::OnlyIn(Which::Base),
        _ => match (failure(base), failure(new)) {
            (Some(_), Some(_)) => Status::FailedOnBoth,
            (Some(m), None) => Status::FailedOn(Which::Base, m),
            (None, Some(m)) => Status::FailedOn(Which::New, m),
            (None, None) if collectors.iter().any(CollectorPair::changed) => Status::Changed,
            (None, None) => Status::Same,
        },
    };
    ScenarioDiff {
        name: name.to_string(),
        status,
        collectors,
        findings,
    }
}

impl Comparison {
    pub fn moved(&self) -> impl Iterator<Item = &ScenarioDiff> {
        self.scenarios.iter().filter(|s| s.moved())
    }

    /// `2 of 6 scenarios changed: a (kmsg, trace), b (failed on new)`; scenarios that failed on
    /// both sides are named after it.
    pub fn summary(&self) -> String {
        let moved: Vec<String> = self
            .moved()
            .map(|s| format!("{} ({})", s.name, s.what()))
            .collect();
        let total = self.scenarios.len();
        let mut out = format!(
            "{} of {total} scenario{} changed",
            moved.len(),
            if total == 1 { "" } else { "s" }
        );
        if !moved.is_empty() {
            let _ = write!(out, ": {}", moved.join(", "));
        }
        let both: Vec<&str> = self
            .scenarios
            .iter()
            .filter(|s| s.status == Status::FailedOnBoth)
            .map(|s| s.name.as_str())
            .collect();
        if !both.is_empty() {
            let _ = write!(
                out,
                "; not compared, failed on both sides: {}",
                both.join(", ")
            );
        }
        out
    }

    /// Each moved scenario with its diffs, then the summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in self.moved() {
            let _ = writeln!(out, "== {}: {}", s.name, s.what());
            if let Status::FailedOn(which, message) = &s.status {
                let _ = writeln!(out, "failed on {}: {message}", which.as_str());
            }
            for c in s.changed_collectors() {
                out.push_str(&c.unified(&self.base, &self.new));
            }
            out.push('\n');
        }
        for s in &self.scenarios {
            for f in s.findings.iter().filter(|f| f.moved()) {
                let side = if f.new.is_some() { "new" } else { "base" };
                let _ = writeln!(
                    out,
                    "{}: oracle finding only in {side}: {}",
                    s.name, f.finding
                );
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// 3 when something moved; 1 when nothing moved but a scenario could not be compared; else 0.
    pub fn exit_code(&self) -> Code {
        if self.moved().next().is_some() {
            Code::GoldenMismatch
        } else if self
            .scenarios
            .iter()
            .any(|s| s.status == Status::FailedOnBoth)
        {
            Code::Failed
        } else {
            Code::Success
        }
    }
}

#[cfg(test)]
mod tests;
