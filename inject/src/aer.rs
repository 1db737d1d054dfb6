//! PCIe AER errors, through QEMU's `pcie_aer_inject_error` monitor command (guests) and through
//! the kernel's aer_inject (`/dev/aer_inject`, module aer_inject). Rules and sources: docs/aer.md.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::action::Action;
use crate::einj::Sbdf;
use crate::guard::Harm;
use crate::injector::{InjectError, Injector};

/// One AER status bit, by the name QEMU and the kernel's aer-inject tool give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AerError {
    pub name: &'static str,
    /// The bit in the Uncorrectable or Correctable Error Status register.
    pub bit: u32,
    pub correctable: bool,
    /// Fatal by the PCIe default severity (QEMU's PCI_ERR_UNC_SEVERITY_DEFAULT); the device's
    /// severity register decides in the end.
    pub fatal_by_default: bool,
}

const fn unc(name: &'static str, bit: u32, fatal_by_default: bool) -> AerError {
    AerError {
        name,
        bit,
        correctable: false,
        fatal_by_default,
    }
}

const fn cor(name: &'static str, bit: u32) -> AerError {
    AerError {
        name,
        bit,
        correctable: true,
        fatal_by_default: false,
    }
}

/// The errors QEMU can inject (its PCI_ERR_UNC_SUPPORTED and PCI_ERR_COR_SUPPORTED), named as
/// in its pcie_aer_error_list. QEMU's TRAIN (bit 0) is in its list but not supported.
pub const ERRORS: [AerError; 24] = [
    unc("DLP", 1 << 4, true),
    unc("SDN", 1 << 5, true),
    unc("POISON_TLP", 1 << 12, false),
    unc("FCP", 1 << 13, true),
    unc("COMP_TIME", 1 << 14, false),
    unc("COMP_ABORT", 1 << 15, false),
    unc("UNX_COMP", 1 << 16, false),
    unc("RX_OVER", 1 << 17, true),
    unc("MALF_TLP", 1 << 18, true),
    unc("ECRC", 1 << 19, false),
    unc("UNSUP", 1 << 20, false),
    unc("ACSV", 1 << 21, false),
    unc("INTN", 1 << 22, true),
    unc("MCBTLP", 1 << 23, false),
    unc("ATOP_EBLOCKED", 1 << 24, false),
    unc("TLP_PRF_BLOCKED", 1 << 25, false),
    cor("RCVR", 1 << 0),
    cor("BAD_TLP", 1 << 6),
    cor("BAD_DLLP", 1 << 7),
    cor("REP_ROLL", 1 << 8),
    cor("REP_TIMER", 1 << 12),
    cor("ADV_NONFATAL", 1 << 13),
    cor("INTERNAL", 1 << 14),
    cor("HL_OVERFLOW", 1 << 15),
];

impl AerError {
    /// By name (`DLP`, `RCVR`, ...), or by status bit (`0x10`) with `correctable` saying which
    /// register; exactly one bit QEMU supports.
    pub fn parse(text: &str, correctable: bool) -> Result<AerError, InjectError> {
        if let Some(e) = ERRORS.iter().find(|e| e.name == text) {
            return Ok(*e);
        }
        let names = |c: bool| {
            ERRORS
                .iter()
                .filter(|e| e.correctable == c)
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let invalid = |why: String| InjectError::Invalid {
            field: "AER error",
            value: format!("`{text}`"),
            why,
        };
        let bit = text
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "expected a name (uncorrectable: {}; correctable: {}) or one status bit in hex",
                    names(false),
                    names(true)
                ))
            })?;
        let register = if correctable {
            "correctable"
        } else {
            "uncorrectable"
        };
        ERRORS
            .iter()
            .find(|e| e.bit == bit && e.correctable == correctable)
            .copied()
            .ok_or_else(|| {
                invalid(format!(
                    "it is not one {register} status bit QEMU supports ({}): QEMU refuses other \
                     values, and 7.2 aborts on several bits",
                    names(correctable)
                ))
            })
    }

    /// Correctable errors harm nothing; uncorrectable ones need --allow-uncorrected, fatal
    /// ones by default severity --allow-fatal.
    pub fn harm(self) -> Harm {
        match (self.correctable, self.fatal_by_default) {
            (true, _) => Harm::None,
            (false, false) => Harm::Uncorrected,
            (false, true) => Harm::Fatal,
        }
    }
}

impl fmt::Display for AerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.correctable {
            "correctable"
        } else {
            "uncorrectable"
        };
        write!(f, "{} ({kind}, status bit {:#x})", self.name, self.bit)
    }
}

/// A TLP header log (4 dwords), and optionally a TLP prefix log (4 dwords).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlpLog {
    pub header: [u32; 4],
    pub prefix: Option<[u32; 4]>,
}

/// One injection through QEMU's monitor: `pcie_aer_inject_error [-a] <id> <name> [header [prefix]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuAer {
    /// The qdev id of the PCIe device (`-device ...,id=rp0`).
    id: String,
    error: AerError,
    /// `-a`: an uncorrectable non-fatal error is signalled as Advisory Non-Fatal (correctable).
    advisory: bool,
    log: Option<TlpLog>,
}

impl QemuAer {
    pub fn new(
        id: &str,
        error: AerError,
        advisory: bool,
        log: Option<TlpLog>,
    ) -> Result<Self, InjectError> {
        let well_formed = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !well_formed {
            return Err(InjectError::Invalid {
                field: "QEMU device id",
                value: format!("`{id}`"),
                why: "a qdev id starts with a letter and holds letters, digits, '-', '.' and '_'"
                    .into(),
            });
        }
        if advisory && error.correctable {
            return Err(InjectError::Invalid {
                field: "AER error",
                value: error.to_string(),
                why: "advisory (-a) applies to uncorrectable non-fatal errors only".into(),
            });
        }
        Ok(Self {
            id: id.to_string(),
            error,
            advisory,
            log,
        })
    }

    pub fn error(&self) -> AerError {
        self.error
    }

    /// The monitor line. The error goes by name, which also tells QEMU its register (`-c` only
    /// matters for numbers).
    pub fn command(&self) -> String {
        let mut line = String::from("pcie_aer_inject_error ");
        if self.advisory {
            line.push_str("-a ");
        }
        line.push_str(&self.id);
        line.push(' ');
        line.push_str(self.error.name);
        if let Some(log) = &self.log {
            let words = log.header.iter().chain(log.prefix.iter().flatten());
            for w in words {
                line.push_str(&format!(" {w:#x}"));
            }
        }
        line
    }
}

/// Builds QEMU monitor lines. The guest runner delivers them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QemuAerInjector;

impl Injector for QemuAerInjector {
    type Request = QemuAer;

    fn describe(&self, r: &QemuAer) -> Result<Vec<Action>, InjectError> {
        Ok(vec![Action::Monitor { line: r.command() }])
    }
}

/// What QEMU said instead of `OK id: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AerReplyError {
    #[error("QEMU found no PCI device with that id: \"{0}\"")]
    NoDevice(String),
    #[error("QEMU said the device is not PCI Express: \"{0}\"")]
    NotExpress(String),
    #[error("QEMU refused the error: \"{0}\"")]
    Refused(String),
}

/// Interprets the text of a `human-monitor-command` reply to a `pcie_aer_inject_error` line.
pub fn check_reply(text: &str) -> Result<(), AerReplyError> {
    let t = text.trim();
    if t.starts_with("OK id: ") {
        return Ok(());
    }
    let t = t.to_string();
    Err(if t.starts_with("id or pci device path is invalid") {
        AerReplyError::NoDevice(t)
    } else if t.starts_with("the device doesn't support pci express") {
        AerReplyError::NotExpress(t)
    } else {
        AerReplyError::Refused(t)
    })
}

/// Where the kernel's injector lives, relative to the root.
pub const DEV: &str = "dev/aer_inject";

/// One injection through the kernel's aer_inject: the device and the status bits it reports.
/// Serialisable: the host sends it to a guest's agent, which writes it there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelAer {
    /// The device; the kernel keeps a 32-bit domain, EINJ-style [`Sbdf`] 8 bits of it.
    device: Sbdf,
    uncor_status: u32,
    cor_status: u32,
    header: [u32; 4],
}

impl KernelAer {
    /// `errors` may mix correctable and uncorrectable bits (the kernel takes both registers).
    pub fn new(device: Sbdf, errors: &[AerError], header: [u32; 4]) -> Result<Self, InjectError> {
        if errors.is_empty() {
            return Err(InjectError::Invalid {
                field: "AER errors",
                value: "none".into(),
                why: "give at least one error to inject".into(),
            });
        }
        let bits = |c: bool| {
            errors
                .iter()
                .filter(|e| e.correctable == c)
                .fold(0, |acc, e| acc | e.bit)
        };
        Ok(Self {
            device,
            uncor_status: bits(false),
            cor_status: bits(true),
            header,
        })
    }

    pub fn device(&self) -> Sbdf {
        self.device
    }

    /// The worst of the errors, for the guard.
    pub fn harm(&self) -> Harm {
        ERRORS
            .iter()
            .filter(|e| {
                let status = if e.correctable {
                    self.cor_status
                } else {
                    self.uncor_status
                };
                status & e.bit != 0
            })
            .map(|e| e.harm())
            .max()
            .unwrap_or(Harm::None)
    }

    /// `struct aer_error_inj` as x86_64 lays it out: bus, dev, fn (u8 each), a pad byte, then
    /// uncor_status, cor_status, header_log0..3 and domain (u32 each, little endian): 32 bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let d = self.device;
        let mut b = vec![d.bus, d.device, d.function, 0];
        let words = [self.uncor_status, self.cor_status]
            .into_iter()
            .chain(self.header)
            .chain([u32::from(d.segment)]);
        for w in words {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b
    }

    fn fields(&self) -> String {
        let d = self.device;
        let [h0, h1, h2, h3] = self.header;
        format!(
            "aer_error_inj{{domain {:#x}, bus {:#x}, dev {:#x}, fn {:#x}, uncor_status {:#010x}, \
             cor_status {:#010x}, header_log {h0:#x} {h1:#x} {h2:#x} {h3:#x}}}",
            d.segment, d.bus, d.device, d.function, self.uncor_status, self.cor_status
        )
    }
}

/// Builds the one write to `/dev/aer_inject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelAerInjector {
    root: PathBuf,
}

impl KernelAerInjector {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
}

impl Injector for KernelAerInjector {
    type Request = KernelAer;

    fn describe(&self, r: &KernelAer) -> Result<Vec<Action>, InjectError> {
        Ok(vec![Action::WriteBytes {
            path: self.root.join(DEV),
            bytes: r.bytes(),
            fields: r.fields(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str) -> AerError {
        AerError::parse(name, false).unwrap()
    }

    #[test]
    fn names_and_bits() {
        assert_eq!(e("DLP").bit, 0x10);
        assert_eq!(AerError::parse("0x10", false).unwrap().name, "DLP");
        assert_eq!(AerError::parse("0x1", true).unwrap().name, "RCVR");
        assert_eq!(AerError::parse("0x1000", true).unwrap().name, "REP_TIMER");
        assert_eq!(AerError::parse("0x1000", false).unwrap().name, "POISON_TLP");
        let bad = |t, c| AerError::parse(t, c).unwrap_err().to_string();
        assert!(bad("0x11", false).contains("7.2 aborts on several bits"));
        assert!(bad("0x1", false).contains("not one uncorrectable status bit"));
        assert!(bad("0x2", true)
            .contains("not one correctable status bit QEMU supports (RCVR, BAD_TLP"));
        assert!(bad("FOO", false)
            .starts_with("AER error `FOO`: expected a name (uncorrectable: DLP, SDN"));
    }

    #[test]
    fn harm_by_default_severity() {
        assert_eq!(e("RCVR").harm(), Harm::None);
        assert_eq!(e("COMP_TIME").harm(), Harm::Uncorrected);
        assert_eq!(e("UNSUP").harm(), Harm::Uncorrected);
        assert_eq!(e("DLP").harm(), Harm::Fatal);
        assert_eq!(e("SDN").harm(), Harm::Fatal);
    }

    #[test]
    fn qemu_lines() {
        let line = |id, err, a, log| QemuAer::new(id, e(err), a, log).unwrap().command();
        assert_eq!(
            line("rp0", "DLP", false, None),
            "pcie_aer_inject_error rp0 DLP"
        );
        assert_eq!(
            line("nic0", "BAD_TLP", false, None),
            "pcie_aer_inject_error nic0 BAD_TLP"
        );
        let log = TlpLog {
            header: [0x4000_0001, 0x0100_000f, 0xfee0_0000, 0],
            prefix: None,
        };
        assert_eq!(
            line("nic0", "POISON_TLP", false, Some(log)),
            "pcie_aer_inject_error nic0 POISON_TLP 0x40000001 0x100000f 0xfee00000 0x0"
        );
        let with_prefix = TlpLog {
            header: [1, 2, 3, 4],
            prefix: Some([5, 6, 7, 8]),
        };
        assert_eq!(
            line("rp0", "UNSUP", true, Some(with_prefix)),
            "pcie_aer_inject_error -a rp0 UNSUP 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8"
        );
        let bad = QemuAer::new("0rp", e("DLP"), false, None)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("starts with a letter"), "{bad}");
        assert!(QemuAer::new("rp 0", e("DLP"), false, None).is_err());
        let bad = QemuAer::new("rp0", e("RCVR"), true, None)
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("advisory (-a) applies to uncorrectable"),
            "{bad}"
        );
    }

    // The replies QEMU 7.2 gave on q35 with a pcie-root-port rp0, an e1000e nic0 behind it and
    // a conventional pci-bridge pb0.
    #[test]
    fn qemu_replies() {
        check_reply("OK id: rp0 root bus: 0000:00, bus: 0 devfn: 1.0\r\n").unwrap();
        assert!(matches!(
            check_reply("id or pci device path is invalid or device not found. nope\r\n"),
            Err(AerReplyError::NoDevice(_))
        ));
        assert!(matches!(
            check_reply("the device doesn't support pci express. pb0\r\n"),
            Err(AerReplyError::NotExpress(_))
        ));
        assert_eq!(
            check_reply("failed to inject error: Invalid argument\r\n")
                .unwrap_err()
                .to_string(),
            "QEMU refused the error: \"failed to inject error: Invalid argument\""
        );
    }

    #[test]
    fn the_kernel_struct_is_laid_out_as_on_x86_64() {
        let dev = Sbdf::parse("0001:02:03.4").unwrap();
        let r = KernelAer::new(
            dev,
            &[e("DLP"), AerError::parse("RCVR", true).unwrap()],
            [0xa, 0xb, 0xc, 0xd],
        )
        .unwrap();
        let b = r.bytes();
        assert_eq!(b.len(), 32);
        assert_eq!(&b[..4], &[2, 3, 4, 0]);
        assert_eq!(&b[4..8], &0x10u32.to_le_bytes());
        assert_eq!(&b[8..12], &1u32.to_le_bytes());
        assert_eq!(&b[12..16], &0xau32.to_le_bytes());
        assert_eq!(&b[24..28], &0xdu32.to_le_bytes());
        assert_eq!(&b[28..32], &1u32.to_le_bytes());
        assert_eq!(r.harm(), Harm::Fatal);
        let plan = KernelAerInjector::new(Path::new("/")).describe(&r).unwrap();
        assert_eq!(
            plan[0].to_string(),
            "write /dev/aer_inject aer_error_inj{domain 0x1, bus 0x2, dev 0x3, fn 0x4, \
             uncor_status 0x00000010, cor_status 0x00000001, header_log 0xa 0xb 0xc 0xd} (32 bytes)"
        );
        assert!(KernelAer::new(dev, &[], [0; 4]).is_err());
        let ce = KernelAer::new(dev, &[AerError::parse("BAD_TLP", true).unwrap()], [0; 4]).unwrap();
        assert_eq!(ce.harm(), Harm::None);
    }
}
