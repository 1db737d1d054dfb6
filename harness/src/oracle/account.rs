//! Accounting: every injected error is decoded exactly once by each decoder a collector is
//! expected to hold, or a named reason says why not. Claims are matched to records here, then
//! checked one by one ([`super::check`]).

use rasdrill_inject::status::{Severity, Vendor, ADDRV, MISCV};

use super::check::{check, Injected};
use super::{Claim, Decoder, Field, Finding, Kind};

/// What a collector should hold, and what the run knows about the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The decoders whose records the collector's output must hold, one per injected error.
    pub decoders: Vec<Decoder>,
    /// The guest panicked: what only a running guest prints is not there.
    pub panicked: bool,
    /// The kernel has the corrected-errors collector (`CONFIG_RAS_CEC`, Debian's 6.12).
    pub cec: bool,
}

/// Why a decoder has no record of an injected error, when that is what the kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The guest panicked first: only the panic path's lines exist.
    Panic,
    /// The CEC took the corrected memory error before the decoders (`cec_add_mce`).
    Cec,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Panic => "the guest panicked",
            Reason::Cec => "absorbed by the CEC",
        }
    }
}

/// The outcome of accounting one collector's output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounting {
    pub findings: Vec<Finding>,
    /// Records not decoded for a named reason: `decoder: CPU c bank b: reason`.
    pub excused: Vec<String>,
}

/// Matches each claim to the injected record it describes (same CPU and bank; the same status
/// first), checks it, and accounts for every record.
pub fn account(
    collector: &str,
    claims: &[Claim],
    injected: &[Injected],
    expect: &Expectation,
) -> Accounting {
    let mut acc = Accounting::default();
    let mut decoders: Vec<Decoder> = expect.decoders.clone();
    for c in claims {
        if !decoders.contains(&c.decoder()) {
            decoders.push(c.decoder());
        }
    }
    for decoder in decoders {
        let mut used = vec![0usize; injected.len()];
        for claim in claims.iter().filter(|c| c.decoder() == decoder) {
            let same_place = |i: &Injected| {
                claim.cpu.is_none_or(|c| c == i.record.cpu)
                    && claim.bank.is_none_or(|b| b == i.record.bank)
            };
            let candidates: Vec<usize> = (0..injected.len())
                .filter(|&i| same_place(&injected[i]))
                .collect();
            let pick = candidates
                .iter()
                .copied()
                .find(|&i| used[i] == 0 && Some(injected[i].record.status) == claim.status)
                .or_else(|| candidates.iter().copied().find(|&i| used[i] == 0))
                .or_else(|| candidates.first().copied());
            let Some(i) = pick else {
                acc.findings.push(count_finding(
                    collector,
                    claim,
                    "no such record".to_string(),
                    "a record nobody injected",
                ));
                continue;
            };
            used[i] += 1;
            if used[i] > 1 {
                acc.findings.push(count_finding(
                    collector,
                    claim,
                    "one record".to_string(),
                    "the same record again",
                ));
                continue;
            }
            acc.findings.extend(check(collector, claim, &injected[i]));
        }
        if !expect.decoders.contains(&decoder) {
            continue;
        }
        for (i, inj) in injected.iter().enumerate().filter(|(i, _)| used[*i] == 0) {
            let r = &inj.record;
            let place = format!("CPU {} bank {} status {:#018x}", r.cpu, r.bank, r.status);
            match reason(decoder, inj, expect) {
                Some(why) => acc
                    .excused
                    .push(format!("{decoder}: {place}: {}", why.as_str())),
                None => acc.findings.push(Finding {
                    collector: collector.to_string(),
                    decoder,
                    field: Field::Record,
                    kind: Kind::MissingDecode,
                    injected: place,
                    claimed: "nothing".to_string(),
                    evidence: format!("record {} of {} not decoded", i + 1, injected.len()),
                }),
            }
        }
    }
    acc
}

fn count_finding(collector: &str, claim: &Claim, injected: String, claimed: &str) -> Finding {
    Finding {
        collector: collector.to_string(),
        decoder: claim.decoder(),
        field: Field::Count,
        kind: Kind::WrongDecode,
        injected,
        claimed: claimed.to_string(),
        evidence: claim.lines.join("\n"),
    }
}

fn reason(decoder: Decoder, inj: &Injected, expect: &Expectation) -> Option<Reason> {
    if expect.panicked {
        return Some(Reason::Panic);
    }
    let decodes_in_kernel = matches!(decoder, Decoder::KernelRaw | Decoder::EdacMceAmd);
    (expect.cec && decodes_in_kernel && cec_takes(inj)).then_some(Reason::Cec)
}

/// `cec_add_mce`: a corrected memory error with a usable address. Memory errors are AMD's
/// bank 4 DRAM ECC (extended code 8) and Intel's memory-controller codes; a usable address
/// has ADDRV (and on Intel MISCV with a physical address mode and an LSB within a page).
fn cec_takes(inj: &Injected) -> bool {
    let s = inj.record.status;
    if inj.severity() != Severity::Corrected || s & ADDRV == 0 {
        return false;
    }
    match inj.vendor {
        Vendor::Intel => {
            let misc = inj.record.misc;
            s & 0xef80 == 0x0080 && s & MISCV != 0 && (misc >> 6) & 7 == 2 && misc & 0x3f <= 12
        }
        _ => inj.record.bank == 4 && (s >> 16) & 0x1f == 0x8,
    }
}
