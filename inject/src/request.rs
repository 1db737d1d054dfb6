//! The one injection request: what to inject, where, and how, and the one planner that turns it
//! into actions.
//!
//! Every entry point builds a [`Request`]: `rasdrill inject`'s flags, an mce-inject file, a
//! scenario step. [`Request::plan`] is the only place that knows which method fits which place;
//! it describes the actions, applies the guard, and runs preflight, in that order, and refuses
//! before anything is written. A new error source is one more [`Payload`] variant and its
//! describer, guard and preflight arms below.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::action::Action;
use crate::aer::{KernelAer, KernelAerInjector, QemuAer, QemuAerInjector};
use crate::debugfs::{Debugfs, InjectionType};
use crate::edac::{AmdEcc, EccInjection, EdacFake, FakeInjection};
use crate::einj::{self, Einj, EinjRequest};
use crate::guard::{self, Allow};
use crate::hmp::Hmp;
use crate::hwpoison::{Hwpoison, PoisonRequest};
use crate::injector::{perform, perform_stand_in, InjectError, Injector, Outcome, PerformError};
use crate::lock::{InjectLock, LockError};
use crate::merge::{BankLedger, Merge};
use crate::preflight::{self, Machine};
use crate::record::MceRecord;
use crate::status::{self, Vendor};

/// The kernel keeps at most 32 banks per CPU (MAX_NR_BANKS): no bank number above is real.
pub const MAX_BANKS: u32 = 32;

/// How an injection is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Via {
    /// mce-inject's debugfs files (module mce-inject)
    Debugfs,
    /// EDAC: amd64_edac's DRAM ECC injection, or the EDAC core's fake errors (--fake-inject)
    Edac,
    /// QEMU's `mce` monitor command, into a guest (needs --guest)
    Qemu,
    /// ACPI EINJ, the firmware's error injection (lab machines; QEMU has no EINJ table)
    Einj,
    /// Memory poisoning: hwpoison-inject's debugfs files, or madvise on a page of a process
    Hwpoison,
    /// PCIe AER: QEMU's pcie_aer_inject_error (guests), or the kernel's aer_inject
    Aer,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Debugfs => "debugfs",
            Via::Edac => "edac",
            Via::Qemu => "qemu",
            Via::Einj => "einj",
            Via::Hwpoison => "hwpoison",
            Via::Aer => "aer",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An EDAC injection request (docs/kernel-interfaces.md), range-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdacRequest {
    /// amd64_edac's `inject_*` files, then a DRAM read or write.
    Amd64(EccInjection),
    /// The EDAC core's `fake_inject` (CONFIG_EDAC_DEBUG), reported through `ras:mc_event`.
    Fake(FakeInjection),
}

/// A PCIe AER injection, by one of its two methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AerRequest {
    /// QEMU's `pcie_aer_inject_error` on an emulated device (guests only).
    Qemu(QemuAer),
    /// The kernel's aer_inject (`/dev/aer_inject`).
    Kernel(KernelAer),
}

/// What is injected, with the settings of the method that delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// QEMU's `mce` monitor command, one per record; `broadcast` is its `-b`. `overflow` sends
    /// the records back to back on purpose: one landing on a record the guest has not consumed
    /// overflows its bank (see [`crate::merge`]), which is refused otherwise.
    Qemu {
        records: Vec<MceRecord>,
        broadcast: bool,
        overflow: bool,
    },
    /// The kernel's mce-inject debugfs files, one injection per record.
    Debugfs {
        records: Vec<MceRecord>,
        flags: InjectionType,
    },
    /// An EDAC memory-controller injection.
    Edac(EdacRequest),
    /// An ACPI EINJ injection through the firmware.
    Einj(EinjRequest),
    /// Memory poisoning (or unpoisoning).
    Hwpoison(PoisonRequest),
    /// A PCIe AER error.
    Aer(AerRequest),
}

impl Payload {
    pub fn via(&self) -> Via {
        match self {
            Payload::Qemu { .. } => Via::Qemu,
            Payload::Debugfs { .. } => Via::Debugfs,
            Payload::Edac(_) => Via::Edac,
            Payload::Einj(_) => Via::Einj,
            Payload::Hwpoison(_) => Via::Hwpoison,
            Payload::Aer(_) => Via::Aer,
        }
    }

    /// Whether its target is a PCIe device, which a guest has only with a PCIe topology.
    pub fn needs_pcie(&self) -> bool {
        matches!(self, Payload::Aer(_))
    }

    /// Modules a guest loads for this payload to be delivered (beyond the base mce_inject).
    pub fn guest_modules(&self) -> &'static [&'static str] {
        match self {
            Payload::Aer(AerRequest::Kernel(_)) => &["aer_inject"],
            Payload::Hwpoison(req) if req.needs_hwpoison_inject() => &["hwpoison_inject"],
            _ => &[],
        }
    }

    /// The MCE records it injects (none for the other sources).
    pub fn records(&self) -> &[MceRecord] {
        match self {
            Payload::Qemu { records, .. } | Payload::Debugfs { records, .. } => records,
            _ => &[],
        }
    }
}

/// What is known of a QEMU guest before it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFacts {
    pub vcpus: u32,
    /// MCA banks per vCPU.
    pub banks: u32,
    /// From the CPU model; decides which injection flags make sense.
    pub vendor: Vendor,
    /// The machine is q35 with a PCIe root port and an endpoint behind it (an AER target).
    pub pcie: bool,
}

/// Where the errors go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A throw-away QEMU guest: never guarded, its own files are checked by its agent.
    Guest(GuestFacts),
    /// This machine (`/`), or a directory tree that stands in for one (`--root`, a scenario's
    /// `root`): guarded alike, and checked against the files under `root`.
    Machine { root: PathBuf },
}

/// One injection: what, where and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub payload: Payload,
    pub place: Place,
}

/// A problem with a request found without looking at any machine: the field it is about (a
/// record's field, `via` or `flags`; empty for the request as a whole), and which record.
#[derive(Debug)]
pub struct Problem {
    pub field: &'static str,
    /// The record it is about (0-based), if any.
    pub record: Option<usize>,
    pub error: InjectError,
}

impl Request {
    /// Describes, guards and preflights: the actions to perform, or why not (nothing written).
    pub fn plan(&self, allow: Allow) -> Result<Vec<Action>, InjectError> {
        let actions = self.describe()?;
        self.check(&actions, allow)?;
        Ok(actions)
    }

    /// The actions, if the request fits its place; reads no file. What a dry run prints.
    pub fn describe(&self) -> Result<Vec<Action>, InjectError> {
        if let Some(first) = self.problems().into_iter().next() {
            let of = self.payload.records().len();
            return Err(match first.record {
                Some(i) => first.error.in_record(i, of),
                None => first.error,
            });
        }
        match &self.payload {
            Payload::Qemu {
                records, broadcast, ..
            } => {
                let mut actions = Vec::new();
                for r in records {
                    actions.extend(Hmp.describe(&with_broadcast(r, *broadcast))?);
                }
                Ok(actions)
            }
            Payload::Debugfs { records, flags } => {
                preflight::describe_all(&Debugfs::new(&self.root(), *flags), records)
            }
            Payload::Edac(EdacRequest::Amd64(req)) => AmdEcc::new(&self.root()).describe(req),
            Payload::Edac(EdacRequest::Fake(req)) => EdacFake::new(&self.root()).describe(req),
            Payload::Einj(req) => {
                let root = self.root();
                Einj::new(&root, einj::Layout::probe(&root)).describe(req)
            }
            Payload::Hwpoison(req) => Hwpoison::new(&self.root()).describe(req),
            Payload::Aer(AerRequest::Qemu(req)) => QemuAerInjector.describe(req),
            Payload::Aer(AerRequest::Kernel(req)) => {
                KernelAerInjector::new(&self.root()).describe(req)
            }
        }
    }

    /// The guard (on a machine), then preflight against its files, for described `actions`.
    pub fn check(&self, actions: &[Action], allow: Allow) -> Result<(), InjectError> {
        let Place::Machine { root } = &self.place else {
            // A guest is throw-away and was checked by `describe`; its agent checks its files.
            return Ok(());
        };
        match &self.payload {
            Payload::Qemu { .. } | Payload::Aer(AerRequest::Qemu(_)) => {
                unreachable!("describe refuses QEMU's monitor on a machine")
            }
            Payload::Debugfs { records, flags } => {
                guard::check(records, vendor(root), allow)?;
                preflight::check_debugfs(root, *flags, records, actions)
            }
            Payload::Edac(EdacRequest::Amd64(req)) => {
                guard::check_amd_ecc(req, allow)?;
                preflight::check_amd_ecc(root, req, actions)
            }
            Payload::Edac(EdacRequest::Fake(req)) => {
                guard::check_edac_fake(req, allow)?;
                preflight::check_edac_fake(root, req, actions)
            }
            Payload::Einj(req) => {
                let t = req.error_type();
                guard::check_harm(t.harm(), allow, || format!("EINJ error type {t}"))?;
                preflight::check_einj(root, req, actions)
            }
            Payload::Hwpoison(req) => {
                guard::check_harm(req.harm(), allow, || {
                    format!("{req} takes memory away from the machine")
                })?;
                preflight::check_hwpoison(root, req, actions)
            }
            Payload::Aer(AerRequest::Kernel(req)) => {
                guard::check_harm(req.harm(), allow, || {
                    format!("an uncorrectable AER error on {}", req.device())
                })?;
                preflight::check_kernel_aer(root, req, actions)
            }
        }
    }

    /// Every problem that can be told without a machine, in order: the method against the
    /// place, then each record against the place and the method.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Some(error) = self.misfit() {
            out.push(Problem {
                field: "via",
                record: None,
                error,
            });
            return out;
        }
        let guest = match &self.place {
            Place::Guest(facts) => Some(*facts),
            Place::Machine { .. } => None,
        };
        if let (Payload::Debugfs { flags, .. }, Some(g)) = (&self.payload, guest) {
            if flags.needs_amd() && g.vendor == Vendor::Intel {
                out.push(Problem {
                    field: "flags",
                    record: None,
                    error: InjectError::NeedsAmd {
                        flags: flags.as_str(),
                        vendor_id: "GenuineIntel".into(),
                    },
                });
            }
        }
        for (i, r) in self.payload.records().iter().enumerate() {
            let problem = |field, error| Problem {
                field,
                record: Some(i),
                error,
            };
            if let Some(g) = guest {
                if r.cpu >= g.vcpus {
                    out.push(problem(
                        "cpu",
                        InjectError::NoCpu {
                            cpu: r.cpu,
                            vcpus: g.vcpus,
                        },
                    ));
                }
            }
            let (banks, whose) = match guest {
                Some(g) => (g.banks, "QEMU gives every guest CPU"),
                None => (MAX_BANKS, "the kernel handles at most"),
            };
            if r.bank >= banks {
                out.push(problem(
                    "bank",
                    InjectError::BankOutOfRange {
                        bank: r.bank,
                        banks,
                        whose,
                    },
                ));
            }
            if r.status & status::VAL == 0 {
                out.push(problem(
                    "status",
                    InjectError::NotValid { status: r.status },
                ));
            }
            if let Err(error) = self.describe_record(r) {
                out.push(problem("", error));
            }
        }
        if let Some(g) = guest {
            // Judged as rasdrill's runner delivers them, a poll forced after each corrected
            // record; the naive way's stricter rule is checked with the whole scenario.
            if let Err(m) = BankLedger::new(g.vcpus, true).deliver(&self.payload, |i| i) {
                out.push(Problem {
                    field: "",
                    record: Some(m.record),
                    error: InjectError::WouldMerge {
                        merge: Merge {
                            record: "this one".into(),
                            onto: format!("record {}", m.onto + 1),
                            cpu: m.cpu,
                            bank: m.bank,
                            onto_raised: m.onto_raised,
                        },
                    },
                });
            }
        }
        out
    }

    /// Why the method cannot reach the place, if it cannot: the one place that decides which
    /// method fits which target.
    fn misfit(&self) -> Option<InjectError> {
        const GUEST: &str = "a QEMU guest";
        let (place, why) = match (&self.payload, &self.place) {
            (Payload::Qemu { .. }, Place::Machine { .. }) => (
                "this machine",
                "it is QEMU's monitor command, for a guest (--guest, or target: guest); on this \
                 machine, or a tree that stands in for one, use debugfs or edac",
            ),
            (Payload::Edac(_), Place::Guest(_)) => (
                GUEST,
                "it needs an EDAC memory controller, and QEMU guests have none; in a guest use \
                 qemu or debugfs, or use edac on this machine or a tree that stands in for one \
                 (--root, or target: local)",
            ),
            (Payload::Einj(_), Place::Guest(_)) => (
                GUEST,
                "QEMU's x86 machines have no ACPI EINJ table (the guest's kernel says `EINJ: \
                 EINJ table not found`); use einj on a lab machine or a tree that stands in for \
                 one (--root, or target: local)",
            ),
            (Payload::Hwpoison(req), Place::Machine { .. }) if req.chosen_in_guest() => (
                "this machine",
                "the page is one rasdrill's agent finds inside a guest (a free or page-cache \
                 page, or the one it poisoned last); on this machine, or a tree, name the page \
                 frame (pfn)",
            ),
            (Payload::Aer(_), Place::Guest(facts)) if !facts.pcie => (
                "a QEMU guest without PCIe",
                "its machine has no PCIe root port (QEMU's default machine is i440fx): give the \
                 scenario `machine: {pcie: true}` (q35, root port rp0 at 0000:00:01.0, e1000e \
                 nic0 at 0000:01:00.0)",
            ),
            (Payload::Aer(AerRequest::Qemu(_)), Place::Machine { .. }) => (
                "this machine",
                "a QEMU device id names a device of a guest (--guest); on this machine, or a \
                 tree, name a PCI device (--sbdf) for the kernel's aer_inject",
            ),
            (Payload::Hwpoison(PoisonRequest::Madvise(_)), Place::Machine { root })
                if root != Path::new("/") =>
            {
                (
                    "a tree under --root",
                    "madvise poisons a page of a real process's memory, which no tree of files \
                     can stand in for; use it on this machine (no --root) or in a guest",
                )
            }
            _ => return None,
        };
        Some(InjectError::Misfit {
            via: self.payload.via().name(),
            place,
            why,
        })
    }

    /// One record through the method's describer: whether the method can carry it.
    fn describe_record(&self, r: &MceRecord) -> Result<Vec<Action>, InjectError> {
        match &self.payload {
            Payload::Qemu { broadcast, .. } => Hmp.describe(&with_broadcast(r, *broadcast)),
            Payload::Debugfs { flags, .. } => Debugfs::new(&self.root(), *flags).describe(r),
            _ => Ok(Vec::new()),
        }
    }

    /// The root its files are under: a guest's own `/`, or the machine's root.
    fn root(&self) -> PathBuf {
        match &self.place {
            Place::Guest(_) => PathBuf::from("/"),
            Place::Machine { root } => root.clone(),
        }
    }
}

/// `broadcast` (QEMU's `-b`) on a record.
pub(crate) fn with_broadcast(r: &MceRecord, broadcast: bool) -> MceRecord {
    let mut r = r.clone();
    if broadcast {
        r.broadcast = crate::record::Broadcast::Nmi;
    }
    r
}

/// The vendor of the machine at `root` for the guard: unknown (the stricter reading) if its
/// /proc/cpuinfo says nothing.
pub fn vendor(root: &Path) -> Vendor {
    Machine::new(root)
        .vendor()
        .map(|(v, _)| v)
        .unwrap_or(Vendor::Unknown)
}

/// An injection on a machine that did not happen, or happened only in part.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Refused before any write (the method, a record, the guard, preflight): bad input.
    #[error("injection refused before any write: {0}")]
    Refused(#[from] InjectError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Perform(#[from] PerformError),
}

/// An injection done on a machine: what was performed, and what the actions reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub actions: Vec<Action>,
    /// E.g. how a madvise child ended.
    pub outcomes: Vec<Outcome>,
}

impl Request {
    /// Plans, then takes the inject lock under the machine's root and performs the actions.
    /// Only for a machine; a guest's runner delivers its actions itself.
    pub fn execute(&self, allow: Allow) -> Result<Executed, ExecuteError> {
        let actions = self.plan(allow)?;
        let root = self.root();
        let _lock = InjectLock::acquire(&root)?;
        let outcomes = if root == Path::new("/") {
            perform(&actions)?
        } else {
            perform_stand_in(&root, &actions)?
        };
        Ok(Executed { actions, outcomes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edac::EccAccess;
    use crate::status::{EN, PCC, UC, VAL};

    const CE: u64 = 0x9c7d_4100_9208_0813;

    fn record(cpu: u32, bank: u32, status: u64) -> MceRecord {
        MceRecord {
            cpu,
            bank,
            status,
            ..Default::default()
        }
    }

    fn guest() -> Place {
        Place::Guest(GuestFacts {
            vcpus: 2,
            banks: 10,
            vendor: Vendor::Intel,
            pcie: false,
        })
    }

    fn tree() -> Place {
        Place::Machine {
            root: PathBuf::from("/nonexistent-tree"),
        }
    }

    fn qemu(records: Vec<MceRecord>) -> Payload {
        Payload::Qemu {
            records,
            broadcast: false,
            overflow: false,
        }
    }

    #[test]
    fn qemu_fits_only_a_guest_and_edac_only_a_machine() {
        let on_machine = Request {
            payload: qemu(vec![record(0, 4, CE)]),
            place: tree(),
        };
        let e = on_machine.plan(Allow::default()).unwrap_err();
        assert!(matches!(e, InjectError::Misfit { via: "qemu", .. }), "{e}");
        let ecc = EccInjection::new(0, 0, 0, 1, EccAccess::Write).unwrap();
        let in_guest = Request {
            payload: Payload::Edac(EdacRequest::Amd64(ecc)),
            place: guest(),
        };
        let problems = in_guest.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "via");
        assert!(problems[0]
            .error
            .to_string()
            .starts_with("via edac cannot inject into a QEMU guest"));
    }

    #[test]
    fn a_guest_plan_is_its_monitor_lines_and_is_never_guarded() {
        let fatal = VAL | UC | EN | PCC | 0x0813;
        let request = Request {
            payload: Payload::Qemu {
                records: vec![record(1, 4, fatal)],
                broadcast: true,
                overflow: false,
            },
            place: guest(),
        };
        let actions = request.plan(Allow::default()).unwrap();
        assert_eq!(
            actions,
            vec![Action::Monitor {
                line: format!("mce -b 1 4 {fatal:#x} 0x0 0x0 0x0")
            }]
        );
    }

    #[test]
    fn every_record_problem_is_found_with_its_field_and_record() {
        let request = Request {
            payload: Payload::Debugfs {
                records: vec![record(0, 4, CE), record(2, 10, 0x1c00)],
                flags: InjectionType::Hw,
            },
            place: guest(),
        };
        let found: Vec<(&str, Option<usize>)> = request
            .problems()
            .iter()
            .map(|p| (p.field, p.record))
            .collect();
        assert_eq!(
            found,
            vec![
                ("flags", None),
                ("cpu", Some(1)),
                ("bank", Some(1)),
                ("status", Some(1))
            ]
        );
        // describe names the first, and the record when there are several.
        let e = request.describe().unwrap_err().to_string();
        assert!(e.starts_with("flags hw needs an AMD CPU"), "{e}");
        let only_records = Request {
            payload: Payload::Debugfs {
                records: vec![record(0, 4, CE), record(2, 4, CE)],
                flags: InjectionType::Sw,
            },
            place: guest(),
        };
        let e = only_records.describe().unwrap_err().to_string();
        assert_eq!(
            e,
            "record 2: cpu 2 is out of range: the guest has 2 vCPUs (0-1)"
        );
    }

    #[test]
    fn a_tree_is_guarded_like_the_machine_it_stands_for() {
        let uncorrected = VAL | UC | EN | 0x0813;
        let request = Request {
            payload: Payload::Debugfs {
                records: vec![record(0, 4, uncorrected)],
                flags: InjectionType::Sw,
            },
            place: tree(),
        };
        // The guard comes before preflight: the tree does not even exist.
        let e = request.plan(Allow::default()).unwrap_err();
        assert!(matches!(e, InjectError::Refused { .. }), "{e}");
        let allow = Allow {
            uncorrected: true,
            fatal: false,
        };
        let e = request.plan(allow).unwrap_err();
        assert!(matches!(e, InjectError::Missing { .. }), "{e}");
    }

    #[test]
    fn a_bank_beyond_the_kernels_limit_is_refused_without_reading_the_machine() {
        let request = Request {
            payload: Payload::Debugfs {
                records: vec![record(0, MAX_BANKS, CE)],
                flags: InjectionType::Sw,
            },
            place: tree(),
        };
        assert_eq!(
            request.describe().unwrap_err().to_string(),
            "bank 32 is out of range: the kernel handles at most 32 MCA banks (0-31)"
        );
    }
}
