//! The kernel's own machine-check lines (`__print_mce` in arch/x86/kernel/cpu/mce/core.c):
//!
//! ```text
//! mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 4: b600000092080813
//! mce: [Hardware Error]: TSC 0 ADDR 12345000 MISC 8c
//! mce: [Hardware Error]: PROCESSOR 2:600f22 TIME 1795683525 SOCKET 0 APIC 0 microcode 1000065
//! mce: [Hardware Error]: Machine check: Processor Context Corrupt
//! ```
//!
//! `ADDR`, `MISC` (and on Scalable MCA `SYND`, `IPID`) are printed only when non-zero. The last
//! line is `mce_panic`'s message: the kernel graded the record fatal.

use super::{hex, Claim, ClaimedSeverity, Decoder};

const MARK: &str = "mce: [Hardware Error]: ";

pub fn parse(lines: &[String]) -> Vec<Claim> {
    let mut out: Vec<Claim> = Vec::new();
    for line in lines {
        let Some((_, text)) = line.split_once(MARK) else {
            continue;
        };
        if let Some(claim) = header(line, text) {
            out.push(claim);
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if let Some(rest) = text.strip_prefix("TSC ") {
            current.lines.push(line.clone());
            aux(current, rest);
        } else if text.starts_with("RIP") || text.starts_with("PROCESSOR ") {
            current.lines.push(line.clone());
        } else if text.starts_with("Machine check: ") {
            current.lines.push(line.clone());
            current.severity = Some(ClaimedSeverity::Fatal);
        }
    }
    out
}

/// `CPU 0: Machine Check[ Exception]: <mcgstatus> Bank 4: <status>`
fn header(line: &str, text: &str) -> Option<Claim> {
    let rest = text.strip_prefix("CPU ")?;
    let (cpu, rest) = rest.split_once(": Machine Check")?;
    let (_, rest) = rest.split_once(" Bank ")?;
    let (bank, status) = rest.split_once(": ")?;
    let mut claim = Claim::new(Decoder::KernelRaw, line);
    claim.cpu = Some(cpu.trim().parse().ok()?);
    claim.bank = Some(bank.trim().parse().ok()?);
    claim.status = Some(hex(status)?);
    Some(claim)
}

/// `<tsc> ADDR a MISC m SYND s IPID i`: name/value pairs after the TSC.
fn aux(claim: &mut Claim, rest: &str) {
    let words: Vec<&str> = rest.split_whitespace().collect();
    for pair in words.windows(2) {
        let value = hex(pair[1]);
        match pair[0] {
            "ADDR" => claim.addr = value,
            "MISC" => claim.misc = value,
            "SYND" => claim.synd = value,
            "IPID" => claim.ipid = value,
            _ => {}
        }
    }
}
