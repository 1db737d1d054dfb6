//! The oracle: what each decoder claimed about a machine-check record, checked against the
//! record rasdrill injected.
//!
//! A golden file records what a decoder said; it cannot say whether the decoder was right.
//! rasdrill knows the truth, so each decoder's output is read back into [`Claim`]s (one parser
//! per output format: [`kernel`], [`trace`], [`amd`], [`rasdaemon`]), and every claim is checked
//! against the injected record and rasdrill's own status model (`inject::status`, the one behind
//! `records explain`) in [`check`]. A mismatch is a [`Finding`] carrying its evidence. [`account`]
//! checks that each collector saw every injected error exactly once, or names why not.

pub mod account;
pub mod amd;
pub mod check;
pub mod kernel;
pub mod known;
pub mod rasdaemon;
pub mod scenario;
pub mod trace;

use std::fmt;

use serde::Serialize;

pub use account::{account, Expectation};
pub use check::{Delivery, Injected};
pub use known::{compare_known, KnownFinding, Verdict};
pub use scenario::judge;

/// Which decoder printed a record (one collector can hold several: the kernel log holds the
/// raw `mce:` lines and edac_mce_amd's; rasdaemon prints a line and a database row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decoder {
    /// The kernel's own `mce: [Hardware Error]: CPU n: Machine Check...` lines.
    KernelRaw,
    /// edac_mce_amd's `[Hardware Error]:` lines.
    EdacMceAmd,
    /// The `mce/mce_record` trace line (kernel 6.1 and 6.12 formats).
    Trace,
    /// rasdaemon's `mce_record:` line.
    Rasdaemon,
    /// A row of rasdaemon's `mce_record` table, as `ras-mc-ctl`-style `key=value` lines.
    RasdaemonDb,
}

impl Decoder {
    pub fn as_str(self) -> &'static str {
        match self {
            Decoder::KernelRaw => "kernel-raw",
            Decoder::EdacMceAmd => "edac-mce-amd",
            Decoder::Trace => "trace",
            Decoder::Rasdaemon => "rasdaemon",
            Decoder::RasdaemonDb => "rasdaemon-db",
        }
    }

    pub fn parse(name: &str) -> Option<Decoder> {
        [
            Decoder::KernelRaw,
            Decoder::EdacMceAmd,
            Decoder::Trace,
            Decoder::Rasdaemon,
            Decoder::RasdaemonDb,
        ]
        .into_iter()
        .find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity as a decoder words it. Decoders are coarser than the model: "uncorrected"
/// says nothing about whether the kernel can recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimedSeverity {
    Corrected,
    Deferred,
    Uncorrected,
    Fatal,
}

impl fmt::Display for ClaimedSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimedSeverity::Corrected => "corrected",
            ClaimedSeverity::Deferred => "deferred",
            ClaimedSeverity::Uncorrected => "uncorrected",
            ClaimedSeverity::Fatal => "fatal",
        })
    }
}

/// The MCA error-code class a decoder names (bits 15:0), with the fields it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimedClass {
    pub kind: ClassKind,
    /// SDM field name (`LL`, `TT`, `RRRR`, `II`, `PP`, `T`, `MMM`, `CCCC`) and its value.
    pub fields: Vec<(&'static str, u8)>,
}

/// The classes decoders distinguish; `McaCode` maps onto them in [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassKind {
    GenericCache,
    Tlb,
    MemoryController,
    Cache,
    Bus,
    Internal,
    /// Any other simple code (no error, unclassified, parity...).
    Other,
    /// A decoder's line that names no class, only fields read from fixed bits (edac_mce_amd's
    /// `cache level: LL, tx: TT`, printed for TLB codes and for codes it has no branch for).
    Unnamed,
}

impl fmt::Display for ClassKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClassKind::GenericCache => "generic cache hierarchy error",
            ClassKind::Tlb => "TLB error",
            ClassKind::MemoryController => "memory controller error",
            ClassKind::Cache => "cache hierarchy error",
            ClassKind::Bus => "bus and interconnect error",
            ClassKind::Internal => "internal error",
            ClassKind::Other => "simple error code",
            ClassKind::Unnamed => "no class named",
        })
    }
}

/// One status flag as a decoder shows it: `shown` is false where the decoder printed `-` in
/// the flag's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub name: &'static str,
    pub shown: bool,
}

/// What one decoder said about one record. `None` is "not printed".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Claim {
    pub decoder: Option<Decoder>,
    /// The decoder's lines for this record, as printed: the evidence.
    pub lines: Vec<String>,
    pub cpu: Option<u32>,
    pub bank: Option<u32>,
    pub status: Option<u64>,
    pub flags: Vec<Flag>,
    pub addr: Option<u64>,
    pub misc: Option<u64>,
    pub synd: Option<u64>,
    pub ipid: Option<u64>,
    pub severity: Option<ClaimedSeverity>,
    pub class: Option<ClaimedClass>,
}

impl Claim {
    fn new(decoder: Decoder, line: &str) -> Claim {
        Claim {
            decoder: Some(decoder),
            lines: vec![line.to_string()],
            ..Claim::default()
        }
    }

    pub fn decoder(&self) -> Decoder {
        self.decoder.expect("parsers always name the decoder")
    }
}

/// Every record any known decoder printed in `lines` (one collector's output), in order.
/// Lines no parser knows are ignored: collectors print more than records.
pub fn claims(lines: &[String]) -> Vec<Claim> {
    let mut out = Vec::new();
    out.extend(kernel::parse(lines));
    out.extend(amd::parse(lines));
    out.extend(trace::parse(lines));
    out.extend(rasdaemon::parse(lines));
    out
}

/// Which claim was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    Cpu,
    Bank,
    Status,
    Flag,
    Address,
    Misc,
    Synd,
    Ipid,
    Severity,
    Class,
    /// The record was not decoded (and no reason explains it).
    Record,
    /// The record was decoded more than once, or a record nobody injected was decoded.
    Count,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Cpu => "cpu",
            Field::Bank => "bank",
            Field::Status => "status",
            Field::Flag => "flag",
            Field::Address => "address",
            Field::Misc => "misc",
            Field::Synd => "synd",
            Field::Ipid => "ipid",
            Field::Severity => "severity",
            Field::Class => "class",
            Field::Record => "record",
            Field::Count => "count",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        [
            Field::Cpu,
            Field::Bank,
            Field::Status,
            Field::Flag,
            Field::Address,
            Field::Misc,
            Field::Synd,
            Field::Ipid,
            Field::Severity,
            Field::Class,
            Field::Record,
            Field::Count,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// How a finding is classified in the README's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The decoder printed something the record contradicts.
    WrongDecode,
    /// The decoder printed nothing where the record says it should have.
    MissingDecode,
}

/// A claim that contradicts the injected record, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The collector whose output held the claim.
    pub collector: String,
    pub decoder: Decoder,
    pub field: Field,
    pub kind: Kind,
    /// What was injected (or what the model derives from it), as people read it.
    pub injected: String,
    /// What the decoder claimed.
    pub claimed: String,
    /// The decoder's line(s) that made the claim.
    pub evidence: String,
}

impl Finding {
    /// `collector/decoder/field`: how a scenario lists a known finding.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.collector,
            self.decoder,
            self.field.as_str()
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::WrongDecode => "wrong decode",
            Kind::MissingDecode => "missing decode",
        };
        write!(
            f,
            "{} ({kind}): injected {}, claimed {}\n    {}",
            self.key(),
            self.injected,
            self.claimed,
            self.evidence.replace('\n', "\n    ")
        )
    }
}

/// Splits `a, b, c` fields and `key: value` / `key=value` pairs: the shape of the trace and
/// rasdaemon lines.
pub(crate) fn pairs<'a>(text: &'a str, sep: &str) -> Vec<(&'a str, &'a str)> {
    text.split(", ")
        .filter_map(|part| part.split_once(sep))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

pub(crate) fn hex(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    u64::from_str_radix(t, 16).ok()
}

pub(crate) fn dec<T: std::str::FromStr>(text: &str) -> Option<T> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests;
