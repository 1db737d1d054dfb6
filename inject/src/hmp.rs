//! QEMU's x86 `mce` monitor command: `mce [-b] cpu bank status mcg_status addr misc`.
//!
//! HMP only; from QMP it goes through `human-monitor-command`, and an error comes back as text
//! inside a successful reply, which [`check_reply`] interprets.

use crate::action::Action;
use crate::injector::{InjectError, Injector};
use crate::record::{Broadcast, Context, Delivery, MceRecord};
use crate::status::UC;

/// Builds QEMU `mce` lines. The guest runner delivers them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hmp;

const NAME: &str = "QEMU's mce command";

fn unsupported(r: &MceRecord) -> Option<(&'static str, &'static str)> {
    let not_modelled = "QEMU models only CTL, STATUS, ADDR and MISC per bank";
    let not_set = "QEMU's mce command does not take it; the guest kernel fills it in";
    [
        (r.synd != 0, "SYND", not_modelled),
        (r.ipid != 0, "IPID", not_modelled),
        (
            r.mcgcap != 0,
            "MCGCAP",
            "MCG_CAP is set by the -cpu model, not by the record",
        ),
        (r.tsc != 0, "TSC", not_set),
        (r.time != 0, "TIME", not_set),
        (r.cpuvendor != 0 || r.cpuid != 0, "PROCESSOR", not_set),
        (r.socketid != 0, "SOCKETID", not_set),
        (r.apicid != 0, "APICID", not_set),
        (
            r.ip != 0 || r.cs != 0,
            "RIP",
            "the guest's RIP is wherever the vCPU is",
        ),
        (
            r.hold,
            "HOLD",
            "it is a mode of mce-inject's /dev/mcelog injector",
        ),
        (
            r.delivery != Delivery::Auto,
            "POLL/EXCP",
            "QEMU raises #MC for uncorrected errors and polls the rest",
        ),
        (
            r.context != Context::Random,
            "IN_IRQ/IN_PROC",
            "it is a mode of mce-inject's /dev/mcelog injector",
        ),
    ]
    .into_iter()
    .find(|(set, _, _)| *set)
    .map(|(_, field, why)| (field, why))
}

/// The `mce` line for `r`. IRQBROADCAST and NMIBROADCAST become `-b` (QEMU sends an uncorrected
/// error to every other CPU, which panics a guest); NOBROADCAST and no mode send no `-b`.
pub fn command(r: &MceRecord) -> Result<String, InjectError> {
    if let Some((field, why)) = unsupported(r) {
        return Err(InjectError::Unsupported {
            injector: NAME,
            field,
            why,
        });
    }
    let b = if broadcasts(r) { "-b " } else { "" };
    Ok(format!(
        "mce {b}{} {} {:#x} {:#x} {:#x} {:#x}",
        r.cpu, r.bank, r.status, r.mcgstatus, r.addr, r.misc
    ))
}

/// Whether QEMU sends `r` with `-b` (IRQBROADCAST or NMIBROADCAST).
pub fn broadcasts(r: &MceRecord) -> bool {
    matches!(r.broadcast, Broadcast::Irq | Broadcast::Nmi)
}

/// Whether QEMU raises #MC for `r` at once: an uncorrected record, or a broadcast (`-b` puts an
/// uncorrected one into every other CPU). Anything else waits in its bank for the kernel's poll.
pub fn raises_mc(r: &MceRecord) -> bool {
    r.status & UC != 0 || broadcasts(r)
}

impl Injector for Hmp {
    type Request = MceRecord;

    fn describe(&self, r: &MceRecord) -> Result<Vec<Action>, InjectError> {
        Ok(vec![Action::Monitor { line: command(r)? }])
    }
}

/// What QEMU said instead of the empty reply that means success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HmpError {
    #[error("QEMU said \"MCE injection not supported\": the guest CPU model has no MCG_CAP (pick a -cpu with MCA)")]
    NotSupported,
    #[error("QEMU said \"Invalid MCE bank number\": the bank must be below MCG_CAP[7:0] (10 banks on QEMU's models)")]
    InvalidBank,
    #[error("QEMU said \"Invalid MCE status code\": the status needs VAL (bit 63)")]
    InvalidStatus,
    #[error("QEMU said \"Guest CPU does not support MCA broadcast\": drop the broadcast mode")]
    NoBroadcast,
    /// The guest was reset: CR4.MCE clear or an MCE already in progress.
    #[error("QEMU said \"{0}\": the guest is being reset")]
    TripleFault(String),
    #[error("QEMU said \"{0}\" to the mce command")]
    Other(String),
}

/// Interprets the text of a `human-monitor-command` reply to an `mce` line: empty means done.
pub fn check_reply(text: &str) -> Result<(), HmpError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(());
    }
    Err(if t.contains("MCE injection not supported") {
        HmpError::NotSupported
    } else if t.contains("Invalid MCE bank number") {
        HmpError::InvalidBank
    } else if t.contains("Invalid MCE status code") {
        HmpError::InvalidStatus
    } else if t.contains("Guest CPU does not support MCA broadcast") {
        HmpError::NoBroadcast
    } else if t.contains("raising triple fault") {
        HmpError::TripleFault(t.to_string())
    } else {
        HmpError::Other(t.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> MceRecord {
        MceRecord {
            cpu: 1,
            bank: 4,
            status: 0x9c7d410092080813,
            mcgstatus: 0x5,
            addr: 0x12345000,
            misc: 0xd01a,
            ..Default::default()
        }
    }

    #[test]
    fn describes_one_monitor_line() {
        let actions = Hmp.describe(&rec()).unwrap();
        assert_eq!(
            actions,
            [Action::Monitor {
                line: "mce 1 4 0x9c7d410092080813 0x5 0x12345000 0xd01a".into()
            }]
        );
        assert_eq!(
            actions[0].to_string(),
            "monitor mce 1 4 0x9c7d410092080813 0x5 0x12345000 0xd01a"
        );
    }

    #[test]
    fn broadcast_becomes_dash_b() {
        for (b, want) in [
            (Broadcast::None, "mce 0 0 0x1 0x0 0x0 0x0"),
            (Broadcast::Off, "mce 0 0 0x1 0x0 0x0 0x0"),
            (Broadcast::Irq, "mce -b 0 0 0x1 0x0 0x0 0x0"),
            (Broadcast::Nmi, "mce -b 0 0 0x1 0x0 0x0 0x0"),
        ] {
            let r = MceRecord {
                status: 1,
                broadcast: b,
                ..Default::default()
            };
            assert_eq!(command(&r).unwrap(), want);
        }
    }

    #[test]
    fn refuses_what_qemu_cannot_carry() {
        for (r, field) in [
            (MceRecord { synd: 1, ..rec() }, "SYND"),
            (MceRecord { ipid: 1, ..rec() }, "IPID"),
            (MceRecord { tsc: 1, ..rec() }, "TSC"),
            (MceRecord { ip: 1, ..rec() }, "RIP"),
            (
                MceRecord {
                    hold: true,
                    ..rec()
                },
                "HOLD",
            ),
            (
                MceRecord {
                    delivery: Delivery::Exception,
                    ..rec()
                },
                "POLL/EXCP",
            ),
        ] {
            let e = command(&r).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("QEMU's mce command cannot set {field}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn replies() {
        assert_eq!(check_reply(""), Ok(()));
        assert_eq!(check_reply("\r\n"), Ok(()));
        assert_eq!(
            check_reply("MCE injection not supported\r\n"),
            Err(HmpError::NotSupported)
        );
        assert_eq!(
            check_reply("Invalid MCE bank number\r\n"),
            Err(HmpError::InvalidBank)
        );
        assert_eq!(
            check_reply("Invalid MCE status code\r\n"),
            Err(HmpError::InvalidStatus)
        );
        assert_eq!(
            check_reply("Guest CPU does not support MCA broadcast\r\n"),
            Err(HmpError::NoBroadcast)
        );
        let tf = "CPU 0: Previous MCE still in progress, raising triple fault";
        assert_eq!(check_reply(tf), Err(HmpError::TripleFault(tf.into())));
        let e = check_reply("unknown command: 'mce'\r\n").unwrap_err();
        assert_eq!(e, HmpError::Other("unknown command: 'mce'".into()));
        assert_eq!(
            e.to_string(),
            "QEMU said \"unknown command: 'mce'\" to the mce command"
        );
    }
}
