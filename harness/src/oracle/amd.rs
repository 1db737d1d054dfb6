//! edac_mce_amd's decode (drivers/edac/mce_amd.c, `amd_decode_mce`), one record:
//!
//! ```text
//! [Hardware Error]: Corrected error, no action required.
//! [Hardware Error]: CPU:1 (15:2:2) MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813
//! [Hardware Error]: Error Addr: 0x0000000012345000
//! [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.
//! [Hardware Error]: cache level: L3/GEN, mem/io: MEM, mem-tx: RD, part-proc: SRC (no timeout)
//! ```
//!
//! The flag list is positional: `Over`, `CE`/`UE`, `MiscV`, `AddrV`, `PCC`; then `CECC` or
//! `UECC` only when status bits 46:45 are non-zero; then, from family 15h, `Deferred` and
//! `Poison` (not on family 15h bank 4, where bit 43 means something else); from family 17h,
//! `Scrub`. A `-` is the flag shown as clear.

use super::{hex, Claim, ClaimedClass, ClaimedSeverity, ClassKind, Decoder, Flag};

const MARK: &str = "[Hardware Error]: ";

pub fn parse(lines: &[String]) -> Vec<Claim> {
    let mut out: Vec<Claim> = Vec::new();
    // Lines after a record's header belong to it until the next header.
    let mut open = false;
    for line in lines {
        let Some(at) = line.find(MARK) else {
            continue;
        };
        // The kernel's own lines carry the `mce: ` prefix; edac_mce_amd's do not.
        if line[..at].ends_with("mce: ") {
            continue;
        }
        let text = &line[at + MARK.len()..];
        if let Some(severity) = severity(text) {
            let mut claim = Claim::new(Decoder::EdacMceAmd, line);
            claim.severity = Some(severity);
            out.push(claim);
            open = true;
            continue;
        }
        let Some(current) = out.last_mut().filter(|_| open) else {
            continue;
        };
        current.lines.push(line.clone());
        if let Some(rest) = text.strip_prefix("CPU:") {
            status_line(current, rest);
        } else if let Some(rest) = text.strip_prefix("Error Addr: ") {
            current.addr = hex(rest);
        } else if let Some(rest) = text.strip_prefix("IPID: ") {
            current.ipid = hex(rest);
        } else if let Some(rest) = text.strip_prefix("Syndrome: ") {
            current.synd = hex(rest);
        } else if let Some(class) = class(text) {
            current.class = Some(class);
            // The error-code line is the decode's last.
            open = false;
        }
    }
    out
}

/// `decode_error_status`: the first line of every record.
fn severity(text: &str) -> Option<ClaimedSeverity> {
    Some(match text.trim() {
        "Corrected error, no action required." => ClaimedSeverity::Corrected,
        "Deferred error, no action required." => ClaimedSeverity::Deferred,
        "Uncorrected, software restartable error." | "Uncorrected, software containable error." => {
            ClaimedSeverity::Uncorrected
        }
        "System Fatal error." => ClaimedSeverity::Fatal,
        _ => return None,
    })
}

/// `1 (15:2:2) MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813`
fn status_line(claim: &mut Claim, rest: &str) {
    let Some((cpu, rest)) = rest.split_once(" (") else {
        return;
    };
    claim.cpu = cpu.trim().parse().ok();
    let Some((signature, rest)) = rest.split_once(") MC") else {
        return;
    };
    let family = signature
        .split(':')
        .next()
        .and_then(|f| u32::from_str_radix(f, 16).ok());
    let Some((bank, rest)) = rest.split_once("_STATUS[") else {
        return;
    };
    claim.bank = bank.parse().ok();
    let Some((flags, value)) = rest.split_once("]: ") else {
        return;
    };
    claim.status = hex(value);
    if let (Some(family), Some(bank)) = (family, claim.bank) {
        claim.flags = slots(&flags.split('|').collect::<Vec<_>>(), family, bank);
    }
}

/// Names each position of the flag list, as `amd_decode_mce` prints it.
fn slots(tokens: &[&str], family: u32, bank: u32) -> Vec<Flag> {
    let mut flags = Vec::new();
    let mut t = tokens.iter().copied();
    let mut next = || t.next();
    for name in ["Over", "CE/UE", "MiscV", "AddrV", "PCC"] {
        let Some(token) = next() else { return flags };
        if name == "CE/UE" {
            flags.push(Flag {
                name: "CE",
                shown: token == "CE",
            });
            flags.push(Flag {
                name: "UE",
                shown: token == "UE",
            });
        } else {
            flags.push(Flag {
                name,
                shown: token == name,
            });
        }
    }
    let mut later: Vec<&'static str> = Vec::new();
    if family >= 0x15 {
        later.push("Deferred");
        if family != 0x15 || bank != 4 {
            later.push("Poison");
        }
    }
    if family >= 0x17 {
        later.push("Scrub");
    }
    let mut token = next();
    // The ECC slot is printed only when set.
    match token {
        Some("CECC") | Some("UECC") => {
            let shown = token.expect("matched");
            for name in ["CECC", "UECC"] {
                flags.push(Flag {
                    name,
                    shown: name == shown,
                });
            }
            token = next();
        }
        _ => {
            for name in ["CECC", "UECC"] {
                flags.push(Flag { name, shown: false });
            }
        }
    }
    for name in later {
        let Some(value) = token else { break };
        flags.push(Flag {
            name,
            shown: value == name,
        });
        token = next();
    }
    flags
}

/// `amd_decode_err_code`, which reads the low 16 bits with the macros of mce_amd.h:
/// `internal: UU` for `INT_ERROR`; else `cache level: LL`, then `mem/io: II` for `BUS_ERROR`
/// or `tx: TT` for any other code, then `mem-tx: RRRR` for `MEM_ERROR` and `BUS_ERROR`, then
/// `part-proc: PP (T)` for `BUS_ERROR`. So `tx:` alone names no class: the decoder prints it
/// for TLB codes and for every code it has no branch for (memory controller, simple codes),
/// reading bits 1:0 and 3:2 as LL and TT whatever the class.
fn class(text: &str) -> Option<ClaimedClass> {
    if text.starts_with("internal: ") {
        return Some(ClaimedClass {
            kind: ClassKind::Internal,
            fields: Vec::new(),
        });
    }
    let rest = text.strip_prefix("cache level: ")?;
    let mut fields = Vec::new();
    let mut kind = ClassKind::Unnamed;
    for (i, part) in rest.split(", ").enumerate() {
        let (key, value) = if i == 0 {
            ("cache level", part)
        } else {
            part.split_once(": ")?
        };
        match key {
            // ll_msgs, tt_msgs, ii_msgs, rrrr_msgs, pp_msgs, to_msgs of mce_amd.c (6.1).
            "cache level" => fields.push(("LL", index(&["RESV", "L1", "L2", "L3/GEN"], value)?)),
            "mem/io" => {
                kind = ClassKind::Bus;
                fields.push(("II", index(&["MEM", "RESV", "IO", "GEN"], value)?));
            }
            "tx" => fields.push(("TT", index(&["INSN", "DATA", "GEN", "RESV"], value)?)),
            "mem-tx" => {
                if kind != ClassKind::Bus {
                    // `MEM_ERROR`: the cache hierarchy class (0000 0001 RRRR TTLL).
                    kind = ClassKind::Cache;
                }
                let requests = ["GEN", "RD", "WR", "DRD", "DWR", "IRD", "PRF", "EV", "SNP"];
                // R4_MSG prints `Wrong R4!` for the reserved 9..15: no value to compare.
                if let Some(r) = index(&requests, value) {
                    fields.push(("RRRR", r));
                }
            }
            "part-proc" => {
                let (pp, timeout) = value.split_once(" (")?;
                fields.push(("PP", index(&["SRC", "RES", "OBS", "GEN"], pp)?));
                let t = index(&["no timeout)", "timed out)"], timeout)?;
                fields.push(("T", t));
            }
            _ => return None,
        }
    }
    Some(ClaimedClass { kind, fields })
}

fn index(names: &[&str], value: &str) -> Option<u8> {
    names
        .iter()
        .position(|n| *n == value.trim())
        .map(|i| i as u8)
}
