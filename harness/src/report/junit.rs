//! JUnit XML, written by hand: one testsuite, one testcase per scenario, named as the suite's
//! tests are (`<scenario>::kernel-<line>`, the bare name on a local target). A scenario that failed
//! or whose output differs from its golden files is a `<failure>`; bad input and infrastructure
//! problems are `<error>`s, as CI systems expect.

use std::fmt::Write as _;

use super::{Outcome, RunReport, ScenarioResult};
use crate::golden::Verdict;

pub(super) fn render(report: &RunReport) -> String {
    let tests = report.results.len();
    let failures = report.count(Outcome::Failed)
        + report.count(Outcome::GoldenMismatch)
        + report.count(Outcome::Findings);
    let errors = report.count(Outcome::BadInput) + report.count(Outcome::Infrastructure);
    let time = format!("{:.3}", report.duration.as_secs_f64());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts =
        format!("tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time}\"");
    let _ = writeln!(out, "<testsuites name=\"rasdrill\" {counts}>");
    let _ = writeln!(
        out,
        "  <testsuite name=\"rasdrill\" {counts} skipped=\"0\">"
    );
    for r in &report.results {
        testcase(&mut out, r);
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn testcase(out: &mut String, r: &ScenarioResult) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"rasdrill.scenarios\" file=\"{}\" time=\"{:.3}\"",
        escape(&r.name_on_line()),
        escape(&r.file.display().to_string()),
        r.duration.as_secs_f64()
    );
    let (element, kind) = match r.outcome() {
        Outcome::Passed => {
            out.push_str("/>\n");
            return;
        }
        Outcome::Failed | Outcome::GoldenMismatch | Outcome::Findings => {
            ("failure", r.outcome().as_str())
        }
        Outcome::BadInput | Outcome::Infrastructure | Outcome::Interrupted => {
            ("error", r.outcome().as_str())
        }
    };
    out.push_str(">\n");
    let (message, body) = failure_text(r);
    let _ = writeln!(
        out,
        "      <{element} type=\"{kind}\" message=\"{}\">{}</{element}>",
        escape(&message),
        escape(&body)
    );
    out.push_str("    </testcase>\n");
}

/// The one-line message and the full text: the failure, the oracle's findings, then every
/// golden difference.
fn failure_text(r: &ScenarioResult) -> (String, String) {
    let mut lines = Vec::new();
    let mut body = String::new();
    if let Some(f) = &r.failure {
        lines.push(f.message.lines().next().unwrap_or_default().to_string());
        body.push_str(&f.message);
        body.push('\n');
        if let Some(details) = &f.details {
            body.push_str(details);
            body.push('\n');
        }
    }
    if let Some(v) = r.oracle.as_ref().filter(|v| !v.passed()) {
        let summary = format!("oracle: {}", v.summary());
        lines.push(summary.clone());
        body.push_str(&summary);
        body.push('\n');
        body.push_str(&v.details());
    }
    for g in r.goldens.iter().filter(|g| !g.verdict.passed()) {
        let summary = format!("{} {}", g.collector, g.verdict.summary());
        lines.push(summary.clone());
        body.push_str(&summary);
        body.push('\n');
        if let Verdict::Mismatch { diff, .. } = &g.verdict {
            body.push_str(diff);
        }
    }
    (lines.join("; "), body)
}

/// Text as XML character data or an attribute value. Characters XML 1.0 cannot hold at all
/// (most control characters) are written as `\u{..}` so the file stays well-formed.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
