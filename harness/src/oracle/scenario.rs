//! The oracle on a scenario's run: what was injected (its steps), what each compared collector
//! should hold (its kind, the machine, whether the guest panicked), and the verdict against the
//! scenario's known findings.

use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::merge;
use rasdrill_inject::Vendor;

use super::{account, claims, compare_known, Decoder, Delivery, Expectation, Injected, Verdict};
use crate::collect::Collected;
use crate::scenario::{CollectorKind, Payload, Scenario, StepKind, Target};

/// The verdict on a scenario's compared outputs; `None` when it injected no machine-check
/// record and documents no finding (nothing to judge).
pub fn judge(
    s: &Scenario,
    outputs: &[(String, Collected)],
    kernel_release: &str,
    panicked: bool,
) -> Option<Verdict> {
    let injected = injected(s);
    if injected.is_empty() && s.known_findings.is_empty() {
        return None;
    }
    let vendor = vendor(s);
    let mut findings = Vec::new();
    let mut excused = Vec::new();
    for (name, collected) in outputs {
        let Some(collector) = s.collectors.iter().find(|c| &c.name == name) else {
            continue;
        };
        let expect = Expectation {
            decoders: expected(&collector.kind, vendor, panicked),
            panicked,
            cec: has_cec(kernel_release),
        };
        let acc = account(name, &claims(&collected.lines), &injected, &expect);
        findings.extend(acc.findings);
        excused.extend(acc.excused.into_iter().map(|e| format!("{name}: {e}")));
    }
    Some(compare_known(findings, &s.known_findings, excused))
}

/// Every machine-check record the scenario's steps inject, in order, with its path.
pub fn injected(s: &Scenario) -> Vec<Injected> {
    let vendor = vendor(s);
    let mut out = Vec::new();
    for step in &s.steps {
        let StepKind::Inject(inject) = &step.kind else {
            continue;
        };
        let delivery = match inject {
            Payload::Debugfs {
                flags: InjectionType::Sw,
                ..
            } => Delivery::Software,
            _ => Delivery::Hardware,
        };
        // An overflow step's merges, on purpose: what the guest logs is the merged record.
        let vcpus = s.machine().map_or(1, |m| m.vcpus);
        out.extend(
            merge::logged(inject, vcpus)
                .into_iter()
                .map(|record| Injected {
                    record,
                    delivery,
                    vendor,
                }),
        );
    }
    out
}

fn vendor(s: &Scenario) -> Vendor {
    match &s.target {
        Target::Guest(m) => m.vendor,
        Target::Local { .. } => Vendor::Unknown,
    }
}

/// The decoders whose records a collector must hold, one per injected error. The kernel log
/// holds edac_mce_amd's decode on AMD, the kernel's raw lines on Intel (no decoder of its own)
/// and after a panic; a kmsg filter of the scenario's own, or a command, promises nothing.
fn expected(kind: &CollectorKind, vendor: Vendor, panicked: bool) -> Vec<Decoder> {
    match kind {
        CollectorKind::Kmsg { filter: None, .. } if panicked => vec![Decoder::KernelRaw],
        CollectorKind::Kmsg { filter: None, .. } => match vendor {
            Vendor::Amd => vec![Decoder::EdacMceAmd],
            Vendor::Intel => vec![Decoder::KernelRaw],
            Vendor::Unknown => Vec::new(),
        },
        _ if panicked => Vec::new(),
        CollectorKind::Trace { events } if events.iter().any(|e| e == "mce/mce_record") => {
            vec![Decoder::Trace]
        }
        CollectorKind::Rasdaemon { .. } => vec![Decoder::Rasdaemon, Decoder::RasdaemonDb],
        _ => Vec::new(),
    }
}

/// Debian's kernels have `CONFIG_RAS_CEC=y` from the 6.12 line on (6.1 has not).
fn has_cec(release: &str) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 12)
}

#[cfg(test)]
mod tests {
    use super::has_cec;

    #[test]
    fn the_cec_comes_with_the_6_12_line() {
        assert!(!has_cec("6.1.0-56-amd64"));
        assert!(has_cec("6.12.115+deb12-amd64"));
        assert!(!has_cec("none (a stand-in tree)"));
    }
}
