//! The guard for real hardware: an uncorrected or fatal error is injected only when asked for.
//!
//! It applies to every injection type, `sw` included: the kernel's default decode chain hands an
//! uncorrected memory record with a usable address to memory_failure(), which offlines the page.

use crate::injector::InjectError;
use crate::record::MceRecord;
use crate::status::{Severity, Vendor};

/// What the user explicitly allowed. `fatal` implies `uncorrected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    pub uncorrected: bool,
    pub fatal: bool,
}

/// Refuses the first record whose severity was not allowed. Deferred errors count as uncorrected.
pub fn check(records: &[MceRecord], vendor: Vendor, allow: Allow) -> Result<(), InjectError> {
    for (i, r) in records.iter().enumerate() {
        let (severity, reason) = Severity::classify(r.status, vendor);
        let needs = match severity {
            Severity::Corrected => None,
            Severity::Deferred | Severity::UncorrectedRecoverable => {
                (!allow.uncorrected && !allow.fatal).then_some("--allow-uncorrected")
            }
            Severity::Fatal => (!allow.fatal).then_some("--allow-fatal"),
        };
        if let Some(needs) = needs {
            let e = InjectError::Refused {
                status: r.status,
                severity,
                reason,
                needs,
            };
            return Err(e.in_record(i, records.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AMD_DEFERRED, EN, PCC, UC, VAL};

    fn rec(status: u64) -> MceRecord {
        MceRecord {
            status,
            ..Default::default()
        }
    }

    #[test]
    fn corrected_always_passes() {
        check(&[rec(VAL | EN)], Vendor::Intel, Allow::default()).unwrap();
    }

    #[test]
    fn uncorrected_needs_allow_uncorrected_or_fatal() {
        let r = [rec(VAL | UC | EN)];
        let e = check(&r, Vendor::Intel, Allow::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "status 0xb000000000000000 is uncorrected, recoverable (UC is set, PCC is clear): on this machine \
             that can kill processes, offline memory or panic the kernel; pass --allow-uncorrected to inject it anyway"
        );
        check(
            &r,
            Vendor::Intel,
            Allow {
                uncorrected: true,
                fatal: false,
            },
        )
        .unwrap();
        check(
            &r,
            Vendor::Intel,
            Allow {
                uncorrected: false,
                fatal: true,
            },
        )
        .unwrap();
    }

    #[test]
    fn fatal_needs_allow_fatal() {
        let r = [rec(VAL | EN), rec(VAL | UC | EN | PCC)];
        let e = check(
            &r,
            Vendor::Amd,
            Allow {
                uncorrected: true,
                fatal: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("record 2: status 0xb200000000000000 is fatal (PCC is set)"),
            "{e}"
        );
        assert!(e.ends_with("pass --allow-fatal to inject it anyway"), "{e}");
        check(
            &r,
            Vendor::Amd,
            Allow {
                uncorrected: false,
                fatal: true,
            },
        )
        .unwrap();
    }

    #[test]
    fn deferred_counts_as_uncorrected_on_amd_only() {
        let r = [rec(VAL | AMD_DEFERRED)];
        assert!(check(&r, Vendor::Amd, Allow::default())
            .unwrap_err()
            .to_string()
            .contains("is deferred"));
        check(&r, Vendor::Intel, Allow::default()).unwrap();
    }
}
