//! The `mce/mce_record` trace line, in both formats:
//!
//! ```text
//! 6.1:  mce_record: CPU: 1, MCGc/s: 100010a/0, MC4: 9c7d410092080813, IPID: 0000000000000000,
//!       ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, ...
//! 6.12: mce_record: CPU: 1, MCGc/s: 100010a/0, MC4: 9c7d410092080813, IPID: 0000000000000000,
//!       ADDR: 0000000012345000, MISC: 0000000000000000, SYND: 0000000000000000, RIP: ..., PPIN: 0, ...
//! ```
//!
//! Every value is printed whatever the status says (the line is the raw `struct mce`).

use super::{dec, hex, pairs, Claim, Decoder};

const MARK: &str = "mce_record: CPU: ";

pub fn parse(lines: &[String]) -> Vec<Claim> {
    lines.iter().filter_map(|l| record(l)).collect()
}

fn record(line: &str) -> Option<Claim> {
    let at = line.find(MARK)?;
    let text = &line[at + "mce_record: ".len()..];
    let mut claim = Claim::new(Decoder::Trace, line);
    for (key, value) in pairs(text, ": ") {
        match key {
            "CPU" => claim.cpu = dec(value),
            "IPID" => claim.ipid = hex(value),
            "ADDR" => claim.addr = hex(value),
            "MISC" => claim.misc = hex(value),
            "SYND" => claim.synd = hex(value),
            "ADDR/MISC/SYND" => {
                let mut v = value.split('/').map(hex);
                claim.addr = v.next().flatten();
                claim.misc = v.next().flatten();
                claim.synd = v.next().flatten();
            }
            k => {
                if let Some(bank) = k.strip_prefix("MC").and_then(|b| b.parse().ok()) {
                    claim.bank = Some(bank);
                    claim.status = hex(value);
                }
            }
        }
    }
    claim.cpu?;
    Some(claim)
}
