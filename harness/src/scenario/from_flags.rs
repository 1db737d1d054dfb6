//! Scenarios that a command builds from its flags instead of reading a file (`inject --guest`,
//! `fuzz`): one guest, the kernel log and the trace of its source (`mce_record`, or
//! `aer_event` for PCIe AER, whose guest then has the PCIe topology), the command's steps.

use std::path::PathBuf;

use rasdrill_inject::Payload;

use super::{
    Collector, CollectorKind, Loc, Machine, Scenario, Setup, Step, StepKind, Target,
    DEFAULT_OUTPUT_LIMIT,
};
use crate::profile::Profile;

/// The collectors of such a scenario, by their names in scenarios.
pub const KMSG: &str = "kmsg";
pub const TRACE: &str = "trace";
/// The tracepoint that counts the records the guest's kernel logged.
pub const MCE_RECORD: &str = "mce/mce_record";
/// The tracepoint of the AER driver's reports, one per error.
pub const AER_EVENT: &str = "ras/aer_event";
/// The tracepoint memory_failure() raises for a poisoned page.
pub const MEMORY_FAILURE: &str = "ras/memory_failure_event";

impl Scenario {
    /// A scenario for a guest of `profile` that collects the kernel log and the trace (of
    /// `mce_record`; `aer_event` with a PCIe topology when a step injects AER;
    /// `memory_failure_event` when a step poisons memory) from before its first step, runs
    /// `steps` in order and compares `compare`.
    /// `origin` stands where a file name would be, e.g. `(command line)`.
    pub fn from_flags(
        origin: &str,
        name: String,
        description: String,
        profile: &'static Profile,
        steps: Vec<StepKind>,
        compare: Vec<String>,
    ) -> Scenario {
        let pcie = steps
            .iter()
            .any(|s| matches!(s, StepKind::Inject(p) if p.needs_pcie()));
        let poisons = steps
            .iter()
            .any(|s| matches!(s, StepKind::Inject(Payload::Hwpoison(_))));
        let event = match (pcie, poisons) {
            (true, _) => AER_EVENT,
            (false, true) => MEMORY_FAILURE,
            (false, false) => MCE_RECORD,
        };
        Scenario {
            file: PathBuf::from(origin),
            name,
            description,
            target: Target::Guest(Machine {
                pcie,
                ..Machine::of_profile(profile)
            }),
            setup: Setup::default(),
            collectors: vec![
                Collector {
                    name: KMSG.into(),
                    kind: CollectorKind::Kmsg {
                        filter: None,
                        boot_log: false,
                    },
                },
                Collector {
                    name: TRACE.into(),
                    kind: CollectorKind::Trace {
                        events: vec![event.into()],
                    },
                },
            ],
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(index, kind)| Step {
                    index,
                    loc: Loc::default(),
                    kind,
                })
                .collect(),
            compare,
            known_findings: Vec::new(),
            expect_crash: false,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }
}
