//! rasdaemon's two outputs (the rasdaemon collector prints both): its `mce_record:` line
//!
//! ```text
//! mce_record: <date> bank=7, status= 9c00004000010091, MEMORY CONTROLLER RD_CHANNEL1_ERR
//!   Transaction: Memory read error MscodDataRdErr, mci=Corrected_error Error_enabled, ...,
//!   cpu= 0, socketid= 0, misc= 8c, addr= 1234000, mcgstatus=0, mcgcap= 100010a, apicid= 0
//! ```
//!
//! and the rows of its database, one `key=value` per line under `mce_record id=N:`. Values are
//! hexadecimal in the line, decimal (with the hexadecimal in brackets) in the rows. A decoder
//! that has nothing for a CPU (0.6.8 on AMD family 15h: `cpu_type= generic CPU`) prints no
//! error message and no `mci=`: no claim, which is "not decoded", never a wrong decode.

use super::{dec, hex, Claim, ClaimedClass, ClaimedSeverity, ClassKind, Decoder, Flag};

pub fn parse(lines: &[String]) -> Vec<Claim> {
    let mut out: Vec<Claim> = Vec::new();
    let mut row: Option<Claim> = None;
    for line in lines {
        if let Some(claim) = event_line(line) {
            out.extend(row.take());
            out.push(claim);
        } else if line.starts_with("mce_record id=") {
            out.extend(row.take());
            row = Some(Claim::new(Decoder::RasdaemonDb, line));
        } else if let Some(current) = row.as_mut() {
            if !line.starts_with(char::is_whitespace) {
                out.extend(row.take());
                continue;
            }
            current.lines.push(line.clone());
            if let Some((key, value)) = line.trim().split_once('=') {
                column(current, key, value);
            }
        }
    }
    out.extend(row);
    out
}

fn event_line(line: &str) -> Option<Claim> {
    let rest = line.strip_prefix("mce_record:")?;
    if !rest.contains(" bank=") {
        return None;
    }
    let mut claim = Claim::new(Decoder::Rasdaemon, line);
    for part in rest.split(", ") {
        match part.split_once('=') {
            // The first key follows the timestamp.
            Some((key, value)) => {
                let key = key.rsplit(' ').next().unwrap_or(key);
                let value = value.trim();
                match key {
                    "bank" => claim.bank = dec(value),
                    "cpu" => claim.cpu = dec(value),
                    "status" => claim.status = hex(value),
                    "addr" => claim.addr = hex(value),
                    "misc" => claim.misc = hex(value),
                    "synd" => claim.synd = hex(value),
                    "ipid" => claim.ipid = hex(value),
                    "mci" => mci(&mut claim, value),
                    _ => {}
                }
            }
            None => {
                if claim.class.is_none() {
                    claim.class = error_msg(part);
                }
            }
        }
    }
    claim.bank?;
    Some(claim)
}

/// One database column: `status=-7205759128914820975 (0x9c00004000010091)`, `cpu=0`,
/// `mcistatus_msg='Corrected_error Error_enabled'`.
fn column(claim: &mut Claim, key: &str, value: &str) {
    let number = || match value.split_once("(0x") {
        Some((_, h)) => hex(h.trim_end_matches(')')),
        None => dec::<i64>(value).map(|v| v as u64),
    };
    let text = value.trim_matches('\'');
    match key {
        "cpu" => claim.cpu = number().map(|v| v as u32),
        "bank" => claim.bank = number().map(|v| v as u32),
        "status" => claim.status = number(),
        "addr" => claim.addr = number(),
        "misc" => claim.misc = number(),
        "synd" => claim.synd = number(),
        "ipid" => claim.ipid = number(),
        "mcistatus_msg" => mci(claim, text),
        "error_msg" => claim.class = error_msg(text),
        _ => {}
    }
}

/// `Corrected_error Error_enabled ...`: the severity and the flags rasdaemon names. It names
/// a flag only when it is set, so only shown flags are claims.
fn mci(claim: &mut Claim, value: &str) {
    for word in value.split_whitespace() {
        match word {
            "Corrected_error" => claim.severity = Some(ClaimedSeverity::Corrected),
            "Uncorrected_error" => claim.severity = Some(ClaimedSeverity::Uncorrected),
            "Error_enabled" => claim.flags.push(shown("EN")),
            "Error_overflow" => claim.flags.push(shown("Over")),
            "Processor_context_corrupt" => claim.flags.push(shown("PCC")),
            "MiscV" | "Misc_valid" => claim.flags.push(shown("MiscV")),
            "AddrV" | "Addr_valid" => claim.flags.push(shown("AddrV")),
            _ => {}
        }
    }
}

fn shown(name: &'static str) -> Flag {
    Flag { name, shown: true }
}

/// The error class of rasdaemon's Intel decode. Only the memory-controller form is read
/// (`MEMORY CONTROLLER RD_CHANNEL1_ERR`): it is the one seen in real output here.
fn error_msg(text: &str) -> Option<ClaimedClass> {
    let rest = text.trim().strip_prefix("MEMORY CONTROLLER ")?;
    let word = rest.split_whitespace().next()?;
    let (request, channel) = word.split_once("_CHANNEL")?;
    let mnemonics = ["GEN", "RD", "WR", "AC", "MS", "RES5", "RES6", "RES7"];
    let mut fields = Vec::new();
    if let Some(m) = mnemonics.iter().position(|m| *m == request) {
        fields.push(("MMM", m as u8));
    }
    if let Some(c) = channel.strip_suffix("_ERR").and_then(|c| c.parse().ok()) {
        fields.push(("CCCC", c));
    }
    Some(ClaimedClass {
        kind: ClassKind::MemoryController,
        fields,
    })
}
