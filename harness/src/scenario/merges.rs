//! QEMU injections of a scenario that would merge in the guest's banks
//! ([`rasdrill_inject::merge`]), found before anything boots.
//!
//! Steps are followed in order: an inject step's records go into the ledger, a `wait` (or
//! `expect_panic`) step is where the scenario has seen the guest log them, so they count as
//! consumed; a `sleep_ms` confirms nothing.

use std::path::Path;

use rasdrill_inject::merge::BankLedger;

use super::{Problem, Scenario, Step, StepKind};

/// How to fix an accidental merge, as a scenario says it.
const HINT: &str = "put them in separate steps with a `wait` step between (e.g. `wait: \
                    {collector: trace, records: 1}`, for what the guest logged), or say \
                    `overflow: true` on this step to overflow the bank on purpose";

/// Every step whose records would land on records the guest may not have consumed, in a guest
/// of `vcpus` CPUs whose runner forces a poll after each corrected record (`polls_each`) or
/// not (the naive way).
pub(crate) fn find(file: &Path, steps: &[Step], vcpus: u32, polls_each: bool) -> Vec<Problem> {
    let mut ledger = BankLedger::new(vcpus, polls_each);
    let mut found = Vec::new();
    for step in steps {
        match &step.kind {
            StepKind::Inject(payload) => {
                let n = payload.records().len();
                if let Err(m) = ledger.deliver(payload, |i| label(step, i, n)) {
                    found.push(Problem {
                        file: file.to_path_buf(),
                        loc: step.loc,
                        field: format!("steps[{}].inject", step.index),
                        message: format!("{m}; {HINT}"),
                    });
                    // One report per merge: start over after it.
                    ledger.consumed();
                }
            }
            StepKind::Wait(_) | StepKind::ExpectPanic(_) => ledger.consumed(),
            StepKind::Sleep(_) => {}
        }
    }
    found
}

/// The merges of guest scenarios run the naive way (no poll forced after corrected errors).
pub fn naive(scenarios: &[Scenario]) -> Vec<Problem> {
    scenarios
        .iter()
        .filter_map(|s| s.machine().map(|m| (s, m.vcpus)))
        .flat_map(|(s, vcpus)| find(&s.file, &s.steps, vcpus, false))
        .collect()
}

/// `the record of steps[0] (line 12)`, or `record 2 of steps[0] (line 12)` in a step of several.
fn label(step: &Step, i: usize, of: usize) -> String {
    let at = match step.loc.line {
        0 => format!("steps[{}]", step.index),
        line => format!("steps[{}] (line {line})", step.index),
    };
    match of {
        1 => format!("the record of {at}"),
        _ => format!("record {} of {at}", i + 1),
    }
}
