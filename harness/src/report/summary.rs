//! The table printed at the end of a run.

use std::fmt::Write as _;

use super::{seconds, Outcome, RunReport};

pub(super) fn table(report: &RunReport) -> String {
    let width = report
        .results
        .iter()
        .map(|r| r.name_on_line().len())
        .chain(["scenario".len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<15}  {:>9}  {:>4}",
        "scenario", "result", "duration", "boot"
    );
    for r in &report.results {
        let share = if r.duration.is_zero() {
            0.0
        } else {
            100.0 * r.boot.as_secs_f64() / r.duration.as_secs_f64()
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<15}  {:>9}  {:>3.0}%",
            r.name_on_line(),
            r.outcome().as_str(),
            seconds(r.duration),
            share
        );
    }
    let counts: Vec<String> = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::GoldenMismatch,
        Outcome::Findings,
        Outcome::BadInput,
        Outcome::Infrastructure,
    ]
    .into_iter()
    .filter_map(|o| match report.count(o) {
        0 => None,
        n => Some(format!("{n} {}", o.as_str())),
    })
    .collect();
    let boot: std::time::Duration = report.results.iter().map(|r| r.boot).sum();
    let n = report.results.len();
    let _ = writeln!(
        out,
        "{n} scenario{} in {} (booting {}): {}",
        if n == 1 { "" } else { "s" },
        seconds(report.duration),
        seconds(boot),
        if counts.is_empty() {
            "nothing ran".to_string()
        } else {
            counts.join(", ")
        }
    );
    out
}
