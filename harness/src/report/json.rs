//! The run as JSON, for tools: every scenario, its result, timings and golden comparisons.

use serde::Serialize;

use super::{GoldenResult, Outcome, RunReport, ScenarioResult};
use crate::golden::Verdict;

#[derive(Serialize)]
struct Run<'a> {
    result: &'static str,
    exit_code: u8,
    /// The signal that stopped the run (`SIGINT`, `SIGTERM`): the scenarios are what ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted: Option<String>,
    duration_s: f64,
    counts: Counts,
    scenarios: Vec<Scenario<'a>>,
}

#[derive(Serialize)]
struct Counts {
    passed: usize,
    failed: usize,
    golden_mismatch: usize,
    findings: usize,
    bad_input: usize,
    infrastructure: usize,
}

#[derive(Serialize)]
struct Scenario<'a> {
    name: &'a str,
    /// The pinned kernel line its guest booted (`null` on a local target).
    kernel_line: Option<&'a str>,
    file: String,
    description: &'a str,
    result: &'static str,
    duration_s: f64,
    boot_s: f64,
    failure: Option<Failure<'a>>,
    goldens: Vec<Golden<'a>>,
    /// The oracle's verdict: known, new and vanished findings, excused records.
    oracle: Option<&'a crate::oracle::Verdict>,
}

#[derive(Serialize)]
struct Failure<'a> {
    message: &'a str,
    details: Option<&'a str>,
}

#[derive(Serialize)]
struct Golden<'a> {
    collector: &'a str,
    /// matched, mismatch, missing, corrupt or accepted.
    verdict: &'static str,
    golden: Option<String>,
    new: Option<String>,
    diff: Option<&'a str>,
    /// The guest kernel's release the output came from.
    kernel: &'a str,
    /// The collector's normalised output: what was compared with the golden file.
    output: &'a str,
}

pub(super) fn render(report: &RunReport) -> serde_json::Value {
    let run = Run {
        result: report.outcome().as_str(),
        exit_code: report.exit_code() as u8,
        interrupted: report.interrupted.map(rasdrill_qemu::interrupt::name),
        duration_s: report.duration.as_secs_f64(),
        counts: Counts {
            passed: report.count(Outcome::Passed),
            failed: report.count(Outcome::Failed),
            golden_mismatch: report.count(Outcome::GoldenMismatch),
            findings: report.count(Outcome::Findings),
            bad_input: report.count(Outcome::BadInput),
            infrastructure: report.count(Outcome::Infrastructure),
        },
        scenarios: report.results.iter().map(scenario).collect(),
    };
    serde_json::to_value(run).expect("the report serialises")
}

fn scenario(r: &ScenarioResult) -> Scenario<'_> {
    Scenario {
        name: &r.name,
        kernel_line: r.kernel_line.as_deref(),
        file: r.file.display().to_string(),
        description: &r.description,
        result: r.outcome().as_str(),
        duration_s: r.duration.as_secs_f64(),
        boot_s: r.boot.as_secs_f64(),
        failure: r.failure.as_ref().map(|f| Failure {
            message: &f.message,
            details: f.details.as_deref(),
        }),
        goldens: r.goldens.iter().map(golden).collect(),
        oracle: r.oracle.as_ref(),
    }
}

fn golden(g: &GoldenResult) -> Golden<'_> {
    let path = |p: &std::path::Path| p.display().to_string();
    let (name, golden, new, diff) = match &g.verdict {
        Verdict::Matched => ("matched", None, None, None),
        Verdict::Mismatch { golden, new, diff } => (
            "mismatch",
            Some(path(golden)),
            new.as_deref().map(path),
            Some(diff.as_str()),
        ),
        Verdict::Missing { golden, new } => (
            "missing",
            Some(path(golden)),
            new.as_deref().map(path),
            None,
        ),
        Verdict::Corrupt { golden, new, .. } => (
            "corrupt",
            Some(path(golden)),
            new.as_deref().map(path),
            None,
        ),
        Verdict::Accepted { golden, diff } => {
            ("accepted", Some(path(golden)), None, diff.as_deref())
        }
    };
    Golden {
        collector: &g.collector,
        verdict: name,
        golden,
        new,
        diff,
        kernel: &g.kernel,
        output: &g.output,
    }
}
