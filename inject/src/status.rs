//! MCi_STATUS: its named bits, the MCA error code in bits 15:0, and the severity a status carries.
//!
//! Bit positions follow the kernel's arch/x86/include/asm/mce.h (architectural and AMD bits) and
//! drivers/edac/mce_amd.c (AMD's CECC/UECC pair, bits 46:45).

use std::fmt;

pub const VAL: u64 = 1 << 63;
pub const OVER: u64 = 1 << 62;
pub const UC: u64 = 1 << 61;
pub const EN: u64 = 1 << 60;
pub const MISCV: u64 = 1 << 59;
pub const ADDRV: u64 = 1 << 58;
pub const PCC: u64 = 1 << 57;
/// Intel: signalled as a machine-check exception (software error recovery).
pub const S: u64 = 1 << 56;
/// Intel: action required before the interrupted context may continue.
pub const AR: u64 = 1 << 55;
/// Intel: corrected-error threshold status "yellow" (bits 54:53 = 10).
pub const TES_YELLOW: u64 = 1 << 54;
/// AMD: task context corrupt (same bit as Intel's AR).
pub const AMD_TCC: u64 = 1 << 55;
/// AMD: MCi_SYND is valid.
pub const AMD_SYNDV: u64 = 1 << 53;
/// AMD: corrected ECC error (bits 46:45 = 10).
pub const AMD_CECC: u64 = 1 << 46;
/// AMD: uncorrected ECC error (bits 46:45 = 01).
pub const AMD_UECC: u64 = 1 << 45;
/// AMD: an uncorrected error whose handling was deferred (no #MC).
pub const AMD_DEFERRED: u64 = 1 << 44;
/// AMD: the error was a consumption of poisoned data.
pub const AMD_POISON: u64 = 1 << 43;

/// The MCA error code: bits 15:0.
pub const MCA_CODE_MASK: u64 = 0xffff;
/// The model-specific error code: bits 31:16.
pub const MODEL_CODE_SHIFT: u32 = 16;

/// Which processors give a bit its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Architectural,
    Intel,
    Amd,
}

/// One named bit of MCi_STATUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedBit {
    pub name: &'static str,
    pub mask: u64,
    pub scope: Scope,
    /// What the bit says when it is set, in a few words.
    pub meaning: &'static str,
}

impl NamedBit {
    pub fn position(&self) -> u32 {
        self.mask.trailing_zeros()
    }
}

/// Every named bit, highest first. AR and TCC share bit 55; which one applies depends on the vendor.
pub const NAMED_BITS: &[NamedBit] = &[
    bit(
        "VAL",
        VAL,
        Scope::Architectural,
        "the bank holds a valid error",
    ),
    bit(
        "OVER",
        OVER,
        Scope::Architectural,
        "an earlier error was lost (overflow)",
    ),
    bit(
        "UC",
        UC,
        Scope::Architectural,
        "the error was not corrected",
    ),
    bit(
        "EN",
        EN,
        Scope::Architectural,
        "reporting was enabled for this error",
    ),
    bit(
        "MISCV",
        MISCV,
        Scope::Architectural,
        "MCi_MISC holds more information",
    ),
    bit(
        "ADDRV",
        ADDRV,
        Scope::Architectural,
        "MCi_ADDR holds the error address",
    ),
    bit(
        "PCC",
        PCC,
        Scope::Architectural,
        "processor context is corrupt: cannot continue",
    ),
    bit(
        "S",
        S,
        Scope::Intel,
        "signalled as a machine-check exception",
    ),
    bit(
        "AR",
        AR,
        Scope::Intel,
        "action required before the context may resume",
    ),
    bit(
        "TES_YELLOW",
        TES_YELLOW,
        Scope::Intel,
        "corrected-error threshold reached (yellow)",
    ),
    bit("TCC", AMD_TCC, Scope::Amd, "task context is corrupt"),
    bit(
        "SYNDV",
        AMD_SYNDV,
        Scope::Amd,
        "MCi_SYND holds the syndrome",
    ),
    bit("CECC", AMD_CECC, Scope::Amd, "corrected ECC error"),
    bit("UECC", AMD_UECC, Scope::Amd, "uncorrected ECC error"),
    bit(
        "DEFERRED",
        AMD_DEFERRED,
        Scope::Amd,
        "uncorrected, handling deferred (no #MC)",
    ),
    bit(
        "POISON",
        AMD_POISON,
        Scope::Amd,
        "poisoned data was consumed",
    ),
];

const fn bit(name: &'static str, mask: u64, scope: Scope, meaning: &'static str) -> NamedBit {
    NamedBit {
        name,
        mask,
        scope,
        meaning,
    }
}

/// The named bit called `name` (case-insensitive), if there is one.
pub fn named_bit(name: &str) -> Option<&'static NamedBit> {
    NAMED_BITS
        .iter()
        .find(|b| b.name.eq_ignore_ascii_case(name))
}

/// Builds a status value from named parts, so tests and scenarios say what they mean.
///
/// ```
/// use rasdrill_inject::status::{self, StatusBuilder};
/// let s = StatusBuilder::new()
///     .set(status::VAL | status::EN | status::ADDRV)
///     .mca_code(0x0813)
///     .model_code(0x9208)
///     .build();
/// assert_eq!(s, 0x9400_0000_9208_0813);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusBuilder {
    bits: u64,
}

impl StatusBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets bits, e.g. `status::VAL | status::UC`.
    pub fn set(mut self, mask: u64) -> Self {
        self.bits |= mask;
        self
    }

    /// Sets the MCA error code (bits 15:0), replacing any earlier one.
    pub fn mca_code(mut self, code: u16) -> Self {
        self.bits = (self.bits & !MCA_CODE_MASK) | u64::from(code);
        self
    }

    /// Sets the model-specific error code (bits 31:16), replacing any earlier one.
    pub fn model_code(mut self, code: u16) -> Self {
        self.bits =
            (self.bits & !(0xffff << MODEL_CODE_SHIFT)) | (u64::from(code) << MODEL_CODE_SHIFT);
        self
    }

    pub fn build(self) -> u64 {
        self.bits
    }
}

/// The CPU vendor: it decides what the vendor-specific bits mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vendor {
    Intel,
    /// AMD, and Hygon (whose machine-check architecture is AMD's).
    Amd,
    /// Not known: both vendors' bits are shown, and AMD's Deferred bit counts (the more severe reading).
    #[default]
    Unknown,
}

impl Vendor {
    /// The vendor named by /proc/cpuinfo's `vendor_id`.
    pub fn from_vendor_id(id: &str) -> Vendor {
        match id.trim() {
            "GenuineIntel" => Vendor::Intel,
            "AuthenticAMD" | "HygonGenuine" => Vendor::Amd,
            _ => Vendor::Unknown,
        }
    }

    fn knows(self, scope: Scope) -> bool {
        match (self, scope) {
            (_, Scope::Architectural) | (Vendor::Unknown, _) => true,
            (Vendor::Intel, s) => s == Scope::Intel,
            (Vendor::Amd, s) => s == Scope::Amd,
        }
    }
}

/// How bad an error is, derived from its status in one place ([`Severity::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Corrected,
    /// AMD: uncorrected, but the hardware deferred it (no #MC; the page may be offlined).
    Deferred,
    /// UC without PCC: the kernel may recover (kill a process, offline a page).
    UncorrectedRecoverable,
    /// PCC, or an uncorrected error that overflowed: the kernel panics.
    Fatal,
}

impl Severity {
    /// The severity of `status` on a CPU of `vendor`, with the rule that decided it.
    ///
    /// Rules, first match wins:
    /// 1. PCC set: fatal.
    /// 2. UC and OVER set: fatal (an earlier uncorrected error was lost; the kernel panics).
    /// 3. UC set: uncorrected, recoverable.
    /// 4. AMD Deferred set (AMD or unknown vendor): deferred.
    /// 5. Otherwise: corrected.
    ///
    /// VAL and EN are ignored on purpose: a record without VAL is refused elsewhere
    /// (preflight), and a UC without EN still counts as uncorrected, because the guard that
    /// uses this must err towards refusing.
    pub fn classify(status: u64, vendor: Vendor) -> (Severity, &'static str) {
        if status & PCC != 0 {
            (Severity::Fatal, "PCC is set")
        } else if status & UC != 0 && status & OVER != 0 {
            (
                Severity::Fatal,
                "UC and OVER are set: an earlier uncorrected error was lost",
            )
        } else if status & UC != 0 {
            (Severity::UncorrectedRecoverable, "UC is set, PCC is clear")
        } else if status & AMD_DEFERRED != 0 && vendor != Vendor::Intel {
            (
                Severity::Deferred,
                "AMD's Deferred bit (44) is set, UC is clear",
            )
        } else {
            (Severity::Corrected, "UC and PCC are clear")
        }
    }

    pub fn of(status: u64, vendor: Vendor) -> Severity {
        Self::classify(status, vendor).0
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Corrected => "corrected",
            Severity::Deferred => "deferred",
            Severity::UncorrectedRecoverable => "uncorrected, recoverable",
            Severity::Fatal => "fatal",
        })
    }
}

/// The class of an MCA error code (bits 15:0), with its fields decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McaCode {
    NoError,
    Unclassified,
    MicrocodeRomParity,
    External,
    Frc,
    InternalParity,
    SmmHandler,
    InternalTimer,
    /// 0000 01xx xxxx xxxx, not all x zero.
    InternalUnclassified,
    /// 000F 0000 0000 11LL
    GenericCacheHierarchy {
        ll: u8,
    },
    /// 000F 0000 0001 TTLL
    Tlb {
        tt: u8,
        ll: u8,
    },
    /// 000F 0000 1MMM CCCC
    MemoryController {
        mmm: u8,
        channel: u8,
    },
    /// 000F 0001 RRRR TTLL
    CacheHierarchy {
        rrrr: u8,
        tt: u8,
        ll: u8,
    },
    /// 000F 1PPT RRRR IILL
    Bus {
        pp: u8,
        t: u8,
        rrrr: u8,
        ii: u8,
        ll: u8,
    },
    /// Not an architectural encoding.
    Unknown,
}

/// Bit 12 of a compound code: corrected-error reporting was filtered.
const FILTER: u16 = 1 << 12;

impl McaCode {
    pub fn classify(code: u16) -> McaCode {
        match code {
            0x0000 => return McaCode::NoError,
            0x0001 => return McaCode::Unclassified,
            0x0002 => return McaCode::MicrocodeRomParity,
            0x0003 => return McaCode::External,
            0x0004 => return McaCode::Frc,
            0x0005 => return McaCode::InternalParity,
            0x0006 => return McaCode::SmmHandler,
            0x0400 => return McaCode::InternalTimer,
            c if c & 0xfc00 == 0x0400 => return McaCode::InternalUnclassified,
            _ => {}
        }
        let c = code & !FILTER;
        let field = |shift: u16, width: u16| ((c >> shift) & ((1 << width) - 1)) as u8;
        if c & 0xf800 == 0x0800 {
            McaCode::Bus {
                pp: field(9, 2),
                t: field(8, 1),
                rrrr: field(4, 4),
                ii: field(2, 2),
                ll: field(0, 2),
            }
        } else if c & 0xff00 == 0x0100 {
            McaCode::CacheHierarchy {
                rrrr: field(4, 4),
                tt: field(2, 2),
                ll: field(0, 2),
            }
        } else if c & 0xff80 == 0x0080 {
            McaCode::MemoryController {
                mmm: field(4, 3),
                channel: field(0, 4),
            }
        } else if c & 0xfff0 == 0x0010 {
            McaCode::Tlb {
                tt: field(2, 2),
                ll: field(0, 2),
            }
        } else if c & 0xfffc == 0x000c {
            McaCode::GenericCacheHierarchy { ll: field(0, 2) }
        } else {
            McaCode::Unknown
        }
    }

    /// The class in a few words.
    pub fn class(&self) -> &'static str {
        match self {
            McaCode::NoError => "no error",
            McaCode::Unclassified => "unclassified error",
            McaCode::MicrocodeRomParity => "microcode ROM parity error",
            McaCode::External => "external error (BINIT# from another processor)",
            McaCode::Frc => "FRC (functional redundancy check) error",
            McaCode::InternalParity => "internal parity error",
            McaCode::SmmHandler => "SMM handler code access violation",
            McaCode::InternalTimer => "internal timer error",
            McaCode::InternalUnclassified => "internal unclassified error",
            McaCode::GenericCacheHierarchy { .. } => "generic cache hierarchy error",
            McaCode::Tlb { .. } => "TLB error",
            McaCode::MemoryController { .. } => "memory controller error",
            McaCode::CacheHierarchy { .. } => "cache hierarchy error",
            McaCode::Bus { .. } => "bus and interconnect error",
            McaCode::Unknown => "not an architectural error code",
        }
    }

    /// The decoded fields: (name, bits as written in the SDM, meaning).
    pub fn fields(&self) -> Vec<(&'static str, String, &'static str)> {
        let bin = |v: u8, width: usize| format!("{v:0width$b}");
        match *self {
            McaCode::GenericCacheHierarchy { ll } => vec![("LL", bin(ll, 2), level(ll))],
            McaCode::Tlb { tt, ll } => vec![
                ("TT", bin(tt, 2), transaction(tt)),
                ("LL", bin(ll, 2), level(ll)),
            ],
            McaCode::MemoryController { mmm, channel } => vec![
                ("MMM", bin(mmm, 3), memory_request(mmm)),
                (
                    "CCCC",
                    bin(channel, 4),
                    if channel == 0xf {
                        "channel not specified"
                    } else {
                        "channel number"
                    },
                ),
            ],
            McaCode::CacheHierarchy { rrrr, tt, ll } => vec![
                ("RRRR", bin(rrrr, 4), request(rrrr)),
                ("TT", bin(tt, 2), transaction(tt)),
                ("LL", bin(ll, 2), level(ll)),
            ],
            McaCode::Bus {
                pp,
                t,
                rrrr,
                ii,
                ll,
            } => vec![
                ("PP", bin(pp, 2), participation(pp)),
                (
                    "T",
                    bin(t, 1),
                    if t == 1 {
                        "the request timed out"
                    } else {
                        "the request did not time out"
                    },
                ),
                ("RRRR", bin(rrrr, 4), request(rrrr)),
                ("II", bin(ii, 2), memory_or_io(ii)),
                ("LL", bin(ll, 2), level(ll)),
            ],
            _ => Vec::new(),
        }
    }
}

fn transaction(tt: u8) -> &'static str {
    ["instruction", "data", "generic", "reserved"][usize::from(tt & 3)]
}

fn level(ll: u8) -> &'static str {
    ["level 0", "level 1", "level 2", "generic level"][usize::from(ll & 3)]
}

fn request(rrrr: u8) -> &'static str {
    match rrrr {
        0 => "generic error (ERR)",
        1 => "generic read (RD)",
        2 => "generic write (WR)",
        3 => "data read (DRD)",
        4 => "data write (DWR)",
        5 => "instruction fetch (IRD)",
        6 => "prefetch (PREFETCH)",
        7 => "eviction (EVICT)",
        8 => "snoop (SNOOP)",
        _ => "reserved request type",
    }
}

fn memory_request(mmm: u8) -> &'static str {
    match mmm {
        0 => "generic undefined request",
        1 => "memory read error",
        2 => "memory write error",
        3 => "address/command error",
        4 => "memory scrubbing error",
        _ => "reserved",
    }
}

fn participation(pp: u8) -> &'static str {
    [
        "the local processor originated the request (SRC)",
        "the local processor responded to the request (RES)",
        "the local processor observed the error as a third party (OBS)",
        "generic",
    ][usize::from(pp & 3)]
}

fn memory_or_io(ii: u8) -> &'static str {
    [
        "memory access (MEM)",
        "reserved",
        "I/O (IO)",
        "other transaction",
    ][usize::from(ii & 3)]
}

/// A status value explained for a person who has no SDM at hand. Display prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub status: u64,
    pub vendor: Vendor,
}

impl Explanation {
    pub fn new(status: u64, vendor: Vendor) -> Self {
        Self { status, vendor }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.status;
        let vendor_note = match self.vendor {
            Vendor::Intel => "read as Intel",
            Vendor::Amd => "read as AMD",
            Vendor::Unknown => "vendor not given: Intel and AMD bits both shown",
        };
        writeln!(f, "status 0x{s:016x} ({vendor_note})")?;
        let (severity, why) = Severity::classify(s, self.vendor);
        writeln!(f, "severity: {severity} ({why})")?;

        let known: Vec<&NamedBit> = NAMED_BITS
            .iter()
            .filter(|b| self.vendor.knows(b.scope))
            .collect();
        writeln!(f, "set:")?;
        for b in known.iter().filter(|b| s & b.mask != 0) {
            let scope = match (self.vendor, b.scope) {
                (Vendor::Unknown, Scope::Intel) => "(Intel) ",
                (Vendor::Unknown, Scope::Amd) => "(AMD) ",
                _ => "",
            };
            writeln!(
                f,
                "  {:>2} {:<10}  {scope}{}",
                b.position(),
                b.name,
                b.meaning
            )?;
        }
        let clear: Vec<&str> = known
            .iter()
            .filter(|b| s & b.mask == 0)
            .map(|b| b.name)
            .collect();
        writeln!(f, "clear: {}", clear.join(" "))?;
        if self.vendor != Vendor::Amd {
            writeln!(
                f,
                "corrected error count (Intel, bits 52:38): {}",
                (s >> 38) & 0x7fff
            )?;
        }

        let code = (s & MCA_CODE_MASK) as u16;
        let class = McaCode::classify(code);
        writeln!(
            f,
            "MCA error code 0x{code:04x} (bits 15:0): {}",
            class.class()
        )?;
        let compound = !class.fields().is_empty();
        if compound && code & FILTER != 0 {
            writeln!(f, "  F    1     corrected-error reporting was filtered")?;
        }
        for (name, bits, meaning) in class.fields() {
            writeln!(f, "  {name:<4} {bits:<5} {meaning}")?;
        }
        write!(
            f,
            "model-specific error code 0x{:04x} (bits 31:16)",
            (s >> MODEL_CODE_SHIFT) & 0xffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd_bit_positions_match_the_kernel() {
        assert_eq!(AMD_SYNDV.trailing_zeros(), 53);
        assert_eq!(AMD_CECC.trailing_zeros(), 46);
        assert_eq!(AMD_UECC.trailing_zeros(), 45);
        assert_eq!(AMD_DEFERRED.trailing_zeros(), 44);
        assert_eq!(AMD_POISON.trailing_zeros(), 43);
    }

    #[test]
    fn builder_composes_bits_and_codes() {
        let s = StatusBuilder::new()
            .set(VAL | EN | MISCV | ADDRV | AMD_CECC)
            .mca_code(0x0813)
            .model_code(0x9208)
            .build();
        assert_eq!(s, 0x9c00_4000_9208_0813);
        // Later codes replace earlier ones rather than OR-ing.
        let s = StatusBuilder::new()
            .mca_code(0xffff)
            .mca_code(0x0134)
            .model_code(0xffff)
            .model_code(1)
            .build();
        assert_eq!(s, 0x0001_0134);
    }

    #[test]
    fn named_bits_are_found_case_insensitively() {
        assert_eq!(named_bit("addrv").unwrap().mask, ADDRV);
        assert_eq!(named_bit("Deferred").unwrap().mask, AMD_DEFERRED);
        assert!(named_bit("nope").is_none());
    }

    #[test]
    fn severity_rules() {
        let v = Vendor::Intel;
        assert_eq!(Severity::of(VAL | EN, v), Severity::Corrected);
        assert_eq!(
            Severity::of(VAL | UC | EN, v),
            Severity::UncorrectedRecoverable
        );
        assert_eq!(Severity::of(VAL | UC | EN | PCC, v), Severity::Fatal);
        // PCC alone is fatal: the kernel grades PCC as a panic regardless of UC.
        assert_eq!(Severity::of(VAL | PCC, v), Severity::Fatal);
        // An overflowed uncorrected error is fatal; an overflowed corrected one is not.
        assert_eq!(Severity::of(VAL | UC | OVER, v), Severity::Fatal);
        assert_eq!(Severity::of(VAL | OVER | EN, v), Severity::Corrected);
        // UC without EN still counts as uncorrected (err towards refusing).
        assert_eq!(Severity::of(VAL | UC, v), Severity::UncorrectedRecoverable);
    }

    #[test]
    fn deferred_depends_on_vendor() {
        let s = VAL | AMD_DEFERRED;
        assert_eq!(Severity::of(s, Vendor::Amd), Severity::Deferred);
        assert_eq!(Severity::of(s, Vendor::Unknown), Severity::Deferred);
        // On Intel, bit 44 is part of the corrected error count.
        assert_eq!(Severity::of(s, Vendor::Intel), Severity::Corrected);
        // UC wins over Deferred.
        assert_eq!(
            Severity::of(s | UC, Vendor::Amd),
            Severity::UncorrectedRecoverable
        );
    }

    #[test]
    fn severity_orders_by_danger() {
        assert!(Severity::Corrected < Severity::Deferred);
        assert!(Severity::Deferred < Severity::UncorrectedRecoverable);
        assert!(Severity::UncorrectedRecoverable < Severity::Fatal);
    }

    #[test]
    fn simple_codes() {
        let cases = [
            (0x0000, McaCode::NoError),
            (0x0001, McaCode::Unclassified),
            (0x0002, McaCode::MicrocodeRomParity),
            (0x0003, McaCode::External),
            (0x0004, McaCode::Frc),
            (0x0005, McaCode::InternalParity),
            (0x0006, McaCode::SmmHandler),
            (0x0400, McaCode::InternalTimer),
            (0x0401, McaCode::InternalUnclassified),
            (0x07ff, McaCode::InternalUnclassified),
            (0x0007, McaCode::Unknown),
            (0x2000, McaCode::Unknown),
        ];
        for (code, want) in cases {
            assert_eq!(McaCode::classify(code), want, "code {code:#06x}");
        }
    }

    #[test]
    fn compound_codes() {
        assert_eq!(
            McaCode::classify(0x000e),
            McaCode::GenericCacheHierarchy { ll: 2 }
        );
        assert_eq!(McaCode::classify(0x0015), McaCode::Tlb { tt: 1, ll: 1 });
        assert_eq!(
            McaCode::classify(0x009f),
            McaCode::MemoryController {
                mmm: 1,
                channel: 0xf
            }
        );
        assert_eq!(
            McaCode::classify(0x00c2),
            McaCode::MemoryController { mmm: 4, channel: 2 }
        );
        // 0x0134: data read, data, level 0 (the Intel SRAR data-load code).
        assert_eq!(
            McaCode::classify(0x0134),
            McaCode::CacheHierarchy {
                rrrr: 3,
                tt: 1,
                ll: 0
            }
        );
        assert_eq!(
            McaCode::classify(0x0813),
            McaCode::Bus {
                pp: 0,
                t: 0,
                rrrr: 1,
                ii: 0,
                ll: 3
            }
        );
        assert_eq!(
            McaCode::classify(0x0f6b),
            McaCode::Bus {
                pp: 3,
                t: 1,
                rrrr: 6,
                ii: 2,
                ll: 3
            }
        );
        // The filter bit (12) does not change the class.
        assert_eq!(McaCode::classify(0x1134), McaCode::classify(0x0134));
        assert_eq!(McaCode::classify(0x1813), McaCode::classify(0x0813));
    }

    #[test]
    fn vendor_ids() {
        assert_eq!(Vendor::from_vendor_id("AuthenticAMD"), Vendor::Amd);
        assert_eq!(Vendor::from_vendor_id("HygonGenuine"), Vendor::Amd);
        assert_eq!(Vendor::from_vendor_id("GenuineIntel\n"), Vendor::Intel);
        assert_eq!(Vendor::from_vendor_id("CentaurHauls"), Vendor::Unknown);
    }

    #[test]
    fn explain_the_dram_ecc_example() {
        insta::assert_snapshot!(
            Explanation::new(0x9c7d_4100_9208_0813, Vendor::Unknown).to_string()
        );
    }

    #[test]
    fn explain_a_fatal_intel_error() {
        let s = StatusBuilder::new()
            .set(VAL | UC | EN | PCC | S | AR | ADDRV)
            .mca_code(0x1134)
            .build();
        insta::assert_snapshot!(Explanation::new(s, Vendor::Intel).to_string());
    }
}
