//! Scenarios that a command builds from its flags instead of reading a file (`inject --guest`,
//! `fuzz`): one guest, the kernel log and the `mce_record` trace, the command's steps.

use std::path::PathBuf;

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

impl Scenario {
    /// A scenario for a guest of `profile` that collects the kernel log and the `mce_record`
    /// trace from before its first step, runs `steps` in order and compares `compare`.
    /// `origin` stands where a file name would be, e.g. `(command line)`.
    pub fn from_flags(
        origin: &str,
        name: String,
        description: String,
        profile: &'static Profile,
        steps: Vec<StepKind>,
        compare: Vec<String>,
    ) -> Scenario {
        Scenario {
            file: PathBuf::from(origin),
            name,
            description,
            target: Target::Guest(Machine::of_profile(profile)),
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
                        events: vec![MCE_RECORD.into()],
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
