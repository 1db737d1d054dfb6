//! The guard for real hardware: an uncorrected or fatal error is injected only when asked for.
//!
//! It applies to every injection type, `sw` included: the kernel's default decode chain hands an
//! uncorrected memory record with a usable address to memory_failure(), which offlines the page.

use crate::edac::{EccInjection, FakeInjection};
use crate::injector::InjectError;
use crate::record::MceRecord;
use crate::status::{Severity, Vendor};

/// What the user explicitly allowed. `fatal` implies `uncorrected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    pub uncorrected: bool,
    pub fatal: bool,
}

impl Allow {
    /// Whether uncorrected (and deferred) errors may be injected: `fatal` implies it.
    fn allows_uncorrected(self) -> bool {
        self.uncorrected || self.fatal
    }
}

/// Refuses the first record whose severity was not allowed. Deferred errors count as uncorrected.
pub fn check(records: &[MceRecord], vendor: Vendor, allow: Allow) -> Result<(), InjectError> {
    for (i, r) in records.iter().enumerate() {
        let (severity, reason) = Severity::classify(r.status, vendor);
        let needs = match severity {
            Severity::Corrected => None,
            Severity::Deferred | Severity::UncorrectedRecoverable => {
                (!allow.allows_uncorrected()).then_some("--allow-uncorrected")
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

/// How much an error of a source other than machine checks can harm the machine it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Harm {
    /// Corrected, or nothing injected at all (e.g. an unpoison).
    None,
    /// Uncorrected, or memory taken away from the machine: needs `--allow-uncorrected`.
    Uncorrected,
    /// Fatal, or of unknown effect: needs `--allow-fatal`.
    Fatal,
}

/// Refuses a request whose harm was not allowed; `what` names it in the refusal.
pub fn check_harm(
    harm: Harm,
    allow: Allow,
    what: impl FnOnce() -> String,
) -> Result<(), InjectError> {
    let needs = match harm {
        Harm::None => None,
        Harm::Uncorrected => (!allow.allows_uncorrected()).then_some("--allow-uncorrected"),
        Harm::Fatal => (!allow.fatal).then_some("--allow-fatal"),
    };
    match needs {
        Some(needs) => Err(InjectError::RefusedSource {
            what: what(),
            needs,
        }),
        None => Ok(()),
    }
}

/// amd64_edac flips the `ecc_vector` bits of a DRAM word: one bit is correctable, more may not be.
pub fn check_amd_ecc(req: &EccInjection, allow: Allow) -> Result<(), InjectError> {
    let bits = req.ecc_vector().count_ones();
    let harm = if bits > 1 {
        Harm::Uncorrected
    } else {
        Harm::None
    };
    check_harm(harm, allow, || {
        format!(
            "ECC vector {:#x} flips {bits} bits, which may be uncorrectable",
            req.ecc_vector()
        )
    })
}

/// The EDAC core reports a fake uncorrected error like a real one: with `edac_mc_panic_on_ue` set
/// the kernel panics.
pub fn check_edac_fake(req: &FakeInjection, allow: Allow) -> Result<(), InjectError> {
    let harm = if req.uncorrected() {
        Harm::Uncorrected
    } else {
        Harm::None
    };
    check_harm(harm, allow, || {
        "a fake uncorrected EDAC error (EDAC panics on it when edac_mc_panic_on_ue is set)".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edac::{EccAccess, Layer};
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

    #[test]
    fn edac_requests() {
        let allow = Allow {
            uncorrected: true,
            fatal: false,
        };
        let one_bit = EccInjection::new(0, 0, 0, 0x10, EccAccess::Write).unwrap();
        check_amd_ecc(&one_bit, Allow::default()).unwrap();
        let two_bits = EccInjection::new(0, 0, 0, 0x11, EccAccess::Write).unwrap();
        let e = check_amd_ecc(&two_bits, Allow::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ECC vector 0x11 flips 2 bits, which may be uncorrectable:"),
            "{e}"
        );
        assert!(
            e.ends_with("pass --allow-uncorrected to inject it anyway"),
            "{e}"
        );
        check_amd_ecc(&two_bits, allow).unwrap();

        let ce = FakeInjection::new(0, &[(Layer::Csrow, 0)], false, 1).unwrap();
        check_edac_fake(&ce, Allow::default()).unwrap();
        let ue = FakeInjection::new(0, &[(Layer::Csrow, 0)], true, 1).unwrap();
        assert!(check_edac_fake(&ue, Allow::default()).is_err());
        check_edac_fake(&ue, allow).unwrap();
    }

    #[test]
    fn harm_of_other_sources() {
        let what = || "a fatal EINJ error".to_string();
        check_harm(Harm::None, Allow::default(), what).unwrap();
        let e = check_harm(
            Harm::Fatal,
            Allow {
                uncorrected: true,
                fatal: false,
            },
            what,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "a fatal EINJ error: on this machine that can kill processes, offline memory or panic \
             the kernel; pass --allow-fatal to inject it anyway"
        );
        check_harm(
            Harm::Fatal,
            Allow {
                uncorrected: false,
                fatal: true,
            },
            what,
        )
        .unwrap();
        assert!(check_harm(Harm::Uncorrected, Allow::default(), what).is_err());
        check_harm(
            Harm::Uncorrected,
            Allow {
                uncorrected: false,
                fatal: true,
            },
            what,
        )
        .unwrap();
    }
}
