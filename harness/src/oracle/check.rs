//! One claim against the record it describes: the oracle's rules.
//!
//! The truth is the injected record, read through rasdrill's status model
//! (`rasdrill_inject::status`: named bits, severity, MCA error code). What the kernel logs is
//! not always what was written, and the rules say so:
//! - through the hardware path (QEMU's `mce`, mce-inject `hw`) the kernel reads MCi_ADDR only
//!   when ADDRV is set, MCi_MISC only when MISCV is set, and, because QEMU's MCG_CAP has SER_P,
//!   masks the address below MCi_MISC's address LSB (`mce_read_aux`); it never reads a syndrome
//!   or an IPID on a CPU without Scalable MCA, so they are logged as 0;
//! - through mce-inject `sw`, the record is logged as written.

use rasdrill_inject::status::{
    self, McaCode, Severity, Vendor, ADDRV, AMD_CECC, AMD_DEFERRED, AMD_POISON, AMD_SYNDV,
    AMD_UECC, EN, MISCV, OVER, PCC, UC,
};
use rasdrill_inject::MceRecord;

use super::{Claim, ClaimedClass, ClaimedSeverity, ClassKind, Decoder, Field, Finding, Kind};

/// How the record reached the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to the bank registers (QEMU's `mce`, mce-inject `hw`/`df`/`th`): the kernel
    /// reads them back.
    Hardware,
    /// Handed to the kernel's log as a `struct mce` (mce-inject `sw`).
    Software,
}

/// One injected record, with what the oracle needs to judge claims about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub record: MceRecord,
    pub delivery: Delivery,
    pub vendor: Vendor,
}

impl Injected {
    fn status(&self) -> u64 {
        self.record.status
    }

    /// The address the kernel logs, when ADDRV makes it meaningful.
    fn address(&self) -> Option<u64> {
        let r = &self.record;
        if r.status & ADDRV == 0 {
            return None;
        }
        if self.delivery == Delivery::Hardware && r.status & MISCV != 0 {
            let lsb = (r.misc & 0x3f) as u32;
            return Some(
                r.addr
                    .checked_shr(lsb)
                    .unwrap_or(0)
                    .checked_shl(lsb)
                    .unwrap_or(0),
            );
        }
        Some(r.addr)
    }

    /// MCi_MISC as logged, when MISCV makes it meaningful.
    fn misc(&self) -> Option<u64> {
        (self.record.status & MISCV != 0).then_some(self.record.misc)
    }

    /// A syndrome or IPID as logged.
    fn unread(&self, value: u64) -> u64 {
        match self.delivery {
            Delivery::Hardware => 0,
            Delivery::Software => value,
        }
    }

    pub fn severity(&self) -> Severity {
        Severity::of(self.status(), self.vendor)
    }
}

/// Whether the status has the flag a decoder names (the names decoders print).
pub fn flag_is_set(name: &str, status: u64) -> Option<bool> {
    let ecc = (status & (AMD_CECC | AMD_UECC)) >> AMD_UECC.trailing_zeros();
    Some(match name {
        "Over" => status & OVER != 0,
        "UE" => status & UC != 0,
        // edac_mce_amd prints `-` instead of CE for a deferred error.
        "CE" => status & (UC | AMD_DEFERRED) == 0,
        "EN" => status & EN != 0,
        "MiscV" => status & MISCV != 0,
        "AddrV" => status & ADDRV != 0,
        "PCC" => status & PCC != 0,
        "SyndV" => status & AMD_SYNDV != 0,
        "CECC" => ecc == 0b10,
        "UECC" => ecc == 0b01,
        "Deferred" => status & AMD_DEFERRED != 0,
        "Poison" => status & AMD_POISON != 0,
        _ => return None,
    })
}

/// The class and fields the model reads from an MCA error code.
pub fn class_of(code: u16) -> ClaimedClass {
    let (kind, fields) = match McaCode::classify(code) {
        McaCode::GenericCacheHierarchy { ll } => (ClassKind::GenericCache, vec![("LL", ll)]),
        McaCode::Tlb { tt, ll } => (ClassKind::Tlb, vec![("TT", tt), ("LL", ll)]),
        McaCode::MemoryController { mmm, channel } => (
            ClassKind::MemoryController,
            vec![("MMM", mmm), ("CCCC", channel)],
        ),
        McaCode::CacheHierarchy { rrrr, tt, ll } => (
            ClassKind::Cache,
            vec![("RRRR", rrrr), ("TT", tt), ("LL", ll)],
        ),
        McaCode::Bus {
            pp,
            t,
            rrrr,
            ii,
            ll,
        } => (
            ClassKind::Bus,
            vec![("PP", pp), ("T", t), ("RRRR", rrrr), ("II", ii), ("LL", ll)],
        ),
        McaCode::InternalTimer | McaCode::InternalUnclassified => (ClassKind::Internal, Vec::new()),
        _ => (ClassKind::Other, Vec::new()),
    };
    ClaimedClass { kind, fields }
}

fn severity_fits(claimed: ClaimedSeverity, model: Severity) -> bool {
    match claimed {
        ClaimedSeverity::Corrected => model == Severity::Corrected,
        ClaimedSeverity::Deferred => model == Severity::Deferred,
        // "Uncorrected" does not say whether the kernel can recover.
        ClaimedSeverity::Uncorrected => {
            matches!(model, Severity::UncorrectedRecoverable | Severity::Fatal)
        }
        ClaimedSeverity::Fatal => model == Severity::Fatal,
    }
}

/// Decoders that print an address or MISC only when they consider it valid.
fn prints_when_valid(d: Decoder) -> bool {
    matches!(d, Decoder::KernelRaw | Decoder::EdacMceAmd)
}

/// Every way `claim` contradicts `injected`.
pub fn check(collector: &str, claim: &Claim, injected: &Injected) -> Vec<Finding> {
    let mut out = Vec::new();
    let decoder = claim.decoder();
    let evidence = claim.lines.join("\n");
    let mut found = |field: Field, kind: Kind, injected: String, claimed: String| {
        out.push(Finding {
            collector: collector.to_string(),
            decoder,
            field,
            kind,
            injected,
            claimed,
            evidence: evidence.clone(),
        })
    };
    let wrong = Kind::WrongDecode;
    let r = &injected.record;
    let status = r.status;

    if let Some(cpu) = claim.cpu.filter(|c| *c != r.cpu) {
        found(
            Field::Cpu,
            wrong,
            format!("CPU {}", r.cpu),
            format!("CPU {cpu}"),
        );
    }
    if let Some(bank) = claim.bank.filter(|b| *b != r.bank) {
        found(
            Field::Bank,
            wrong,
            format!("bank {}", r.bank),
            format!("bank {bank}"),
        );
    }
    if let Some(s) = claim.status.filter(|s| *s != status) {
        found(
            Field::Status,
            wrong,
            format!("{status:#018x}"),
            format!("{s:#018x}"),
        );
    }
    for flag in &claim.flags {
        let Some(set) = flag_is_set(flag.name, status) else {
            continue;
        };
        if set != flag.shown {
            let (kind, said) = if flag.shown {
                (wrong, format!("{} shown", flag.name))
            } else {
                (Kind::MissingDecode, format!("{} not shown", flag.name))
            };
            found(
                Field::Flag,
                kind,
                format!(
                    "{} {} in {status:#018x}",
                    flag.name,
                    if set { "set" } else { "clear" }
                ),
                said,
            );
        }
    }

    value(
        &mut found,
        Field::Address,
        "ADDRV",
        claim.addr,
        injected.address(),
        prints_when_valid(decoder),
        // The kernel's raw line leaves out a zero address.
        decoder == Decoder::EdacMceAmd
            || (decoder == Decoder::KernelRaw && injected.address().unwrap_or(0) != 0),
    );
    value(
        &mut found,
        Field::Misc,
        "MISCV",
        claim.misc,
        injected.misc(),
        prints_when_valid(decoder),
        decoder == Decoder::KernelRaw && injected.misc().unwrap_or(0) != 0,
    );
    if let Some(s) = claim.synd.filter(|s| *s != injected.unread(r.synd)) {
        let want = injected.unread(r.synd);
        found(Field::Synd, wrong, format!("{want:#x}"), format!("{s:#x}"));
    }
    if let Some(i) = claim.ipid.filter(|i| *i != injected.unread(r.ipid)) {
        let want = injected.unread(r.ipid);
        found(Field::Ipid, wrong, format!("{want:#x}"), format!("{i:#x}"));
    }

    if let Some(claimed) = claim.severity {
        let (model, why) = Severity::classify(status, injected.vendor);
        if !severity_fits(claimed, model) {
            found(
                Field::Severity,
                wrong,
                format!("{model} ({why})"),
                claimed.to_string(),
            );
        }
    }
    if let Some(claimed) = &claim.class {
        let code = (status & status::MCA_CODE_MASK) as u16;
        let model = class_of(code);
        let fields_differ = claimed
            .fields
            .iter()
            .any(|f| model.fields.iter().any(|m| m.0 == f.0 && m.1 != f.1));
        let kind = match (claimed.kind, model.kind) {
            (c, m) if c == m => None,
            // Fields read from fixed bits without naming a class are right for the classes
            // that keep those fields there (TLB: TT and LL; generic cache: LL).
            (ClassKind::Unnamed, ClassKind::Tlb | ClassKind::GenericCache) => None,
            // No class named for a class the decoder has no branch for: a decode missing.
            (
                ClassKind::Unnamed,
                ClassKind::MemoryController | ClassKind::Internal | ClassKind::Other,
            ) => Some(Kind::MissingDecode),
            _ => Some(wrong),
        };
        if let Some(kind) = kind.or(fields_differ.then_some(wrong)) {
            found(
                Field::Class,
                kind,
                format!("code {code:#06x}: {}", describe(&model)),
                describe(claimed),
            );
        }
    }
    out
}

/// An address or MISC value: checked when its valid bit is set; `conditional` decoders must
/// not show it when the bit is clear, and must show it when `required`.
fn value(
    found: &mut impl FnMut(Field, Kind, String, String),
    field: Field,
    bit: &str,
    claimed: Option<u64>,
    truth: Option<u64>,
    conditional: bool,
    required: bool,
) {
    match (claimed, truth) {
        (Some(c), Some(t)) if c != t => found(
            field,
            Kind::WrongDecode,
            format!("{t:#x}"),
            format!("{c:#x}"),
        ),
        (Some(c), None) if conditional => found(
            field,
            Kind::WrongDecode,
            format!("{bit} clear: no valid value"),
            format!("{c:#x}"),
        ),
        (None, Some(t)) if required => found(
            field,
            Kind::MissingDecode,
            format!("{t:#x} ({bit} set)"),
            "nothing".to_string(),
        ),
        _ => {}
    }
}

fn describe(c: &ClaimedClass) -> String {
    let fields: Vec<String> = c.fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
    if fields.is_empty() {
        c.kind.to_string()
    } else {
        format!("{} ({})", c.kind, fields.join(" "))
    }
}
