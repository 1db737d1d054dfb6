//! ACPI EINJ, the firmware's error injection, through `<debugfs>/apei/einj/` (module einj).
//!
//! Lab machines only: QEMU's x86 machines have no EINJ table. The rules below, and where each
//! comes from, are in docs/einj.md; scenarios/trees/einj-acpi5 stands in for the files.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::action::Action;
use crate::guard::Harm;
use crate::injector::{InjectError, Injector};

/// Where the EINJ files live, relative to the root.
pub const DIR: &str = "sys/kernel/debug/apei/einj";

/// x86's page mask: the kernel refuses a memory injection whose mask lacks any of these bits.
pub const PAGE_MASK: u64 = !0xfff;

/// Error types with this bit are vendor defined: not listed in `available_error_type`.
const VENDOR_BIT: u32 = 1 << 31;

/// The files every ACPI 5 (or param_extension) injection writes, in this order, before
/// `error_inject`: the kernel keeps each value between injections.
pub const PARAM_FILES: [&str; 6] = ["flags", "param1", "param2", "param3", "param4", "notrigger"];

/// SET_ERROR_TYPE_WITH_ADDRESS `flags` bits: which of param1..4 the firmware should use.
const FLAG_APIC: u32 = 1;
const FLAG_MEM: u32 = 2;
const FLAG_SBDF: u32 = 4;

/// The error types the kernel names (ACPI 6.x table 18.30), bit by bit.
const NAMES: [(u32, &str); 18] = [
    (1 << 0, "Processor Correctable"),
    (1 << 1, "Processor Uncorrectable non-fatal"),
    (1 << 2, "Processor Uncorrectable fatal"),
    (1 << 3, "Memory Correctable"),
    (1 << 4, "Memory Uncorrectable non-fatal"),
    (1 << 5, "Memory Uncorrectable fatal"),
    (1 << 6, "PCI Express Correctable"),
    (1 << 7, "PCI Express Uncorrectable non-fatal"),
    (1 << 8, "PCI Express Uncorrectable fatal"),
    (1 << 9, "Platform Correctable"),
    (1 << 10, "Platform Uncorrectable non-fatal"),
    (1 << 11, "Platform Uncorrectable fatal"),
    (1 << 12, "CXL.cache Protocol Correctable"),
    (1 << 13, "CXL.cache Protocol Uncorrectable non-fatal"),
    (1 << 14, "CXL.cache Protocol Uncorrectable fatal"),
    (1 << 15, "CXL.mem Protocol Correctable"),
    (1 << 16, "CXL.mem Protocol Uncorrectable non-fatal"),
    (1 << 17, "CXL.mem Protocol Uncorrectable fatal"),
];

/// One EINJ error type: a single bit, or the vendor bit with at most one other bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorType(u32);

impl ErrorType {
    /// The kernel's rules for `error_type`: 32 bits, at most one bit besides the vendor bit,
    /// and a standard type needs its one bit.
    pub fn new(value: u64) -> Result<Self, InjectError> {
        let invalid = |why: &str| InjectError::Invalid {
            field: "EINJ error type",
            value: format!("{value:#x}"),
            why: why.into(),
        };
        let v = u32::try_from(value)
            .map_err(|_| invalid("error types are 32 bits (the kernel refuses higher bits)"))?;
        let bits = v & !VENDOR_BIT;
        if bits & bits.wrapping_sub(1) != 0 {
            return Err(invalid(
                "it sets several types: the kernel takes one type per injection",
            ));
        }
        if v == 0 {
            return Err(invalid(
                "it sets no type: give one, e.g. 0x8 for a correctable memory error",
            ));
        }
        Ok(Self(v))
    }

    pub fn value(self) -> u32 {
        self.0
    }

    pub fn is_vendor(self) -> bool {
        self.0 & VENDOR_BIT != 0
    }

    /// A memory type (0x8, 0x10, 0x20): the kernel checks its address and mask.
    pub fn is_memory(self) -> bool {
        !self.is_vendor() && self.0 & 0x38 != 0
    }

    /// The kernel's name of a standard type.
    pub fn name(self) -> Option<&'static str> {
        if self.is_vendor() {
            return Some("Vendor Defined Error Types");
        }
        NAMES.iter().find(|(b, _)| *b == self.0).map(|(_, n)| *n)
    }

    /// Correctable types harm nothing; non-fatal ones are uncorrected; fatal ones, and vendor
    /// types (whose effect only the vendor documents), need --allow-fatal.
    pub fn harm(self) -> Harm {
        match self.name() {
            _ if self.is_vendor() => Harm::Fatal,
            Some(n) if n.ends_with("non-fatal") => Harm::Uncorrected,
            Some(n) if n.ends_with("fatal") => Harm::Fatal,
            Some(_) => Harm::None,
            None => Harm::Fatal,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{:#x} ({name})", self.0),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

/// A PCIe segment, bus, device and function, as EINJ packs it into a u32:
/// segment in bits 31:24, bus 23:16, device 15:11, function 10:8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sbdf {
    pub segment: u8,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Sbdf {
    /// Parses `SSSS:BB:DD.F` or `BB:DD.F` (hex, as lspci prints).
    pub fn parse(text: &str) -> Result<Self, InjectError> {
        let invalid = |why: &str| InjectError::Invalid {
            field: "PCI address",
            value: format!("`{text}`"),
            why: why.into(),
        };
        let format = "expected SSSS:BB:DD.F or BB:DD.F in hex, as lspci prints it";
        let parts: Vec<&str> = text.split(':').collect();
        let (segment, bus, rest) = match parts.as_slice() {
            [s, b, r] => (*s, *b, *r),
            [b, r] => ("0", *b, *r),
            _ => return Err(invalid(format)),
        };
        let (device, function) = rest.split_once('.').ok_or_else(|| invalid(format))?;
        let hex = |s: &str, max: u32, what: &str| {
            u32::from_str_radix(s, 16)
                .ok()
                .filter(|v| *v <= max)
                .ok_or_else(|| invalid(&format!("the {what} must be 0 to {max:#x}")))
        };
        Ok(Self {
            segment: hex(segment, 0xff, "segment (EINJ keeps 8 bits)")? as u8,
            bus: hex(bus, 0xff, "bus")? as u8,
            device: hex(device, 0x1f, "device")? as u8,
            function: hex(function, 7, "function")? as u8,
        })
    }

    /// The u32 EINJ expects.
    pub fn packed(self) -> u32 {
        (self.segment as u32) << 24
            | (self.bus as u32) << 16
            | (self.device as u32) << 11
            | (self.function as u32) << 8
    }
}

impl fmt::Display for Sbdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// One EINJ injection, checked against the kernel's rules that need no machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EinjRequest {
    error_type: ErrorType,
    /// Physical address and mask, when the injection targets memory.
    memory: Option<(u64, u64)>,
    apic: Option<u32>,
    sbdf: Option<Sbdf>,
    notrigger: bool,
}

impl EinjRequest {
    /// `mask` defaults to the page mask; it needs every page-mask bit (the kernel insists on
    /// page granularity or finer). Memory types need `addr`. A vendor type takes one target,
    /// because its `vendor_flags` selects one.
    pub fn new(
        error_type: ErrorType,
        addr: Option<u64>,
        mask: Option<u64>,
        apic: Option<u32>,
        sbdf: Option<Sbdf>,
        notrigger: bool,
    ) -> Result<Self, InjectError> {
        if mask.is_some() && addr.is_none() {
            return Err(InjectError::Invalid {
                field: "EINJ mask",
                value: format!("{:#x}", mask.unwrap_or_default()),
                why: "a mask needs an address (--addr)".into(),
            });
        }
        if error_type.is_memory() && addr.is_none() {
            return Err(InjectError::Invalid {
                field: "EINJ error type",
                value: error_type.to_string(),
                why: "a memory error needs a physical address (--addr): the kernel refuses an \
                      address that is not RAM"
                    .into(),
            });
        }
        let memory = match addr {
            Some(addr) => {
                let mask = mask.unwrap_or(PAGE_MASK);
                if mask & PAGE_MASK != PAGE_MASK {
                    return Err(InjectError::Invalid {
                        field: "EINJ mask",
                        value: format!("{mask:#x}"),
                        why: format!(
                            "the kernel refuses a memory injection whose mask lacks page-mask \
                             bits: use {PAGE_MASK:#x} (the page) or a finer mask"
                        ),
                    });
                }
                Some((addr, mask))
            }
            None => None,
        };
        let targets = [memory.is_some(), apic.is_some(), sbdf.is_some()];
        if error_type.is_vendor() && targets.iter().filter(|t| **t).count() > 1 {
            return Err(InjectError::Invalid {
                field: "EINJ error type",
                value: error_type.to_string(),
                why: "a vendor type takes one target (vendor_flags selects processor, memory or \
                      PCIe): give one of --addr, --apic, --sbdf"
                    .into(),
            });
        }
        Ok(Self {
            error_type,
            memory,
            apic,
            sbdf,
            notrigger,
        })
    }

    pub fn error_type(&self) -> ErrorType {
        self.error_type
    }

    /// The physical address and mask, when given.
    pub fn memory(&self) -> Option<(u64, u64)> {
        self.memory
    }

    /// Whether the request sets anything besides the type, which needs the param files.
    pub fn has_params(&self) -> bool {
        self.memory.is_some() || self.apic.is_some() || self.sbdf.is_some() || self.notrigger
    }

    /// The SET_ERROR_TYPE_WITH_ADDRESS `flags` (standard types) or `vendor_flags` (vendor
    /// types): one bit per target given.
    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.apic.is_some() {
            flags |= FLAG_APIC;
        }
        if self.memory.is_some() {
            flags |= FLAG_MEM;
        }
        if self.sbdf.is_some() {
            flags |= FLAG_SBDF;
        }
        flags
    }

    /// param1..param4. With `flags` set the kernel reads them as address, mask, APIC id and
    /// SBDF; a vendor type's one target goes in param1 (its mask in param2).
    fn params(&self) -> [u64; 4] {
        let (addr, mask) = self.memory.unwrap_or((0, 0));
        let apic = self.apic.map_or(0, u64::from);
        let sbdf = self.sbdf.map_or(0, |s| u64::from(s.packed()));
        if self.error_type.is_vendor() {
            [addr | apic | sbdf, mask, 0, 0]
        } else {
            [addr, mask, apic, sbdf]
        }
    }
}

/// Which EINJ files this firmware has: the param files exist only with ACPI 5's
/// SET_ERROR_TYPE_WITH_ADDRESS (or einj.param_extension=1), `vendor_flags` only with a vendor
/// extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub params: bool,
    pub vendor: bool,
}

impl Layout {
    /// What an ACPI 5 firmware with a vendor extension offers: every file.
    pub const FULL: Layout = Layout {
        params: true,
        vendor: true,
    };

    /// Looks at which files exist under `root`'s EINJ directory; without the directory, every
    /// file (the checks then report the directory missing).
    pub fn probe(root: &Path) -> Layout {
        let dir = root.join(DIR);
        if !dir.is_dir() {
            return Layout::FULL;
        }
        Layout {
            params: dir.join("param1").exists(),
            vendor: dir.join("vendor_flags").exists(),
        }
    }
}

/// Builds the writes of an EINJ injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Einj {
    dir: PathBuf,
    layout: Layout,
}

impl Einj {
    pub fn new(root: &Path, layout: Layout) -> Self {
        Self {
            dir: root.join(DIR),
            layout,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Injector for Einj {
    type Request = EinjRequest;

    /// `error_type`, then every param file (flags, param1..4, notrigger; `vendor_flags` for a
    /// vendor type), then `error_inject` last, which injects. Numbers are hex with 0x, which
    /// both the kernel's `0x%llx` attributes and its hex scanner take.
    fn describe(&self, r: &EinjRequest) -> Result<Vec<Action>, InjectError> {
        let write = |file: &str, value: String| Action::Write {
            path: self.dir.join(file),
            value,
        };
        let mut actions = vec![write("error_type", format!("{:#x}", r.error_type.value()))];
        if self.layout.params {
            let vendor = r.error_type.is_vendor();
            let flags = if vendor { 0 } else { r.flags() };
            actions.push(write("flags", format!("{flags:#x}")));
            for (i, p) in r.params().iter().enumerate() {
                actions.push(write(&format!("param{}", i + 1), format!("{p:#x}")));
            }
            actions.push(write("notrigger", u8::from(r.notrigger).to_string()));
            if vendor {
                actions.push(write("vendor_flags", format!("{:#x}", r.flags())));
            }
        } else if r.has_params() {
            return Err(InjectError::Unsupported {
                injector: "this firmware's EINJ",
                field: "an address, APIC id, PCI address or notrigger",
                why: "it has no param files (an ACPI 4.0 table): the firmware picks the target; \
                      if the BIOS supports the parameter extension, load einj with \
                      param_extension=1",
            });
        }
        if r.error_type.is_vendor() && !self.layout.vendor {
            return Err(InjectError::Unsupported {
                injector: "this firmware's EINJ",
                field: "a vendor error type",
                why: "it has no vendor extension (no vendor and vendor_flags files)",
            });
        }
        actions.push(write("error_inject", "1".into()));
        Ok(actions)
    }
}

/// One line of `available_error_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub value: u32,
    /// EINJv2 types are listed as `V2_0x...`; rasdrill does not inject them.
    pub v2: bool,
    pub name: String,
}

/// Parses `available_error_type`: one `0x%08x<TAB>name` (or `V2_0x%08x<TAB>name`) line per type.
pub fn parse_available(text: &str) -> Result<Vec<Available>, String> {
    let mut types = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || format!("line {}: expected `0x%08x<TAB>name`, found {line:?}", i + 1);
        let (value, name) = line.split_once('\t').ok_or_else(bad)?;
        let (v2, hex) = match value.strip_prefix("V2_") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let digits = hex.strip_prefix("0x").ok_or_else(bad)?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| bad())?;
        types.push(Available {
            value,
            v2,
            name: name.trim().to_string(),
        });
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(actions: &[Action]) -> String {
        actions.iter().map(|a| format!("{a}\n")).collect()
    }

    fn t(v: u64) -> ErrorType {
        ErrorType::new(v).unwrap()
    }

    #[test]
    fn types_follow_the_kernels_rules() {
        assert_eq!(t(0x8).to_string(), "0x8 (Memory Correctable)");
        assert!(t(0x8).is_memory() && t(0x20).is_memory() && !t(0x40).is_memory());
        assert_eq!(
            t(0x8000_0002).to_string(),
            "0x80000002 (Vendor Defined Error Types)"
        );
        assert!(
            !t(0x8000_0008).is_memory(),
            "vendor types are checked by vendor_flags"
        );
        let e = |v| ErrorType::new(v).unwrap_err().to_string();
        assert_eq!(
            e(0x18),
            "EINJ error type 0x18: it sets several types: the kernel takes one type per injection"
        );
        assert!(e(0x1_0000_0008).contains("32 bits"));
        assert!(e(0).contains("sets no type"));
        assert!(e(0x8000_0003).contains("several types"));
    }

    #[test]
    fn harm_follows_the_type() {
        assert_eq!(t(0x1).harm(), Harm::None);
        assert_eq!(t(0x8).harm(), Harm::None);
        assert_eq!(t(0x10).harm(), Harm::Uncorrected);
        assert_eq!(t(0x80).harm(), Harm::Uncorrected);
        assert_eq!(t(0x20).harm(), Harm::Fatal);
        assert_eq!(t(0x100).harm(), Harm::Fatal);
        assert_eq!(t(0x8000_0000).harm(), Harm::Fatal);
        assert_eq!(
            t(1 << 20).harm(),
            Harm::Fatal,
            "unnamed types are not assumed harmless"
        );
    }

    #[test]
    fn sbdf_packs_as_einj_documents() {
        let s = Sbdf::parse("0001:3a:1f.7").unwrap();
        assert_eq!(s.packed(), 0x013a_ff00);
        assert_eq!(s.to_string(), "0001:3a:1f.7");
        assert_eq!(Sbdf::parse("00:03.0").unwrap().packed(), 0x1800);
        let e = |s| Sbdf::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("00:20.0"),
            "PCI address `00:20.0`: the device must be 0 to 0x1f"
        );
        assert!(e("100:00:00.0").contains("segment (EINJ keeps 8 bits)"));
        assert!(e("00:03").contains("expected SSSS:BB:DD.F"));
        assert!(e("00:03.8").contains("function must be 0 to 0x7"));
    }

    #[test]
    fn a_memory_injection_writes_every_file_and_error_inject_last() {
        let r = EinjRequest::new(t(0x8), Some(0x1234_5000), None, None, None, false).unwrap();
        let plan = Einj::new(Path::new("/"), Layout::FULL)
            .describe(&r)
            .unwrap();
        insta::assert_snapshot!(lines(&plan), @r"
        write /sys/kernel/debug/apei/einj/error_type 0x8
        write /sys/kernel/debug/apei/einj/flags 0x2
        write /sys/kernel/debug/apei/einj/param1 0x12345000
        write /sys/kernel/debug/apei/einj/param2 0xfffffffffffff000
        write /sys/kernel/debug/apei/einj/param3 0x0
        write /sys/kernel/debug/apei/einj/param4 0x0
        write /sys/kernel/debug/apei/einj/notrigger 0
        write /sys/kernel/debug/apei/einj/error_inject 1
        ");
    }

    #[test]
    fn processor_and_pcie_targets_use_param3_and_param4() {
        let sbdf = Sbdf::parse("00:03.0").unwrap();
        let r = EinjRequest::new(t(0x2), None, None, Some(4), None, true).unwrap();
        let plan = Einj::new(Path::new("/r"), Layout::FULL)
            .describe(&r)
            .unwrap();
        insta::assert_snapshot!(lines(&plan), @r"
        write /r/sys/kernel/debug/apei/einj/error_type 0x2
        write /r/sys/kernel/debug/apei/einj/flags 0x1
        write /r/sys/kernel/debug/apei/einj/param1 0x0
        write /r/sys/kernel/debug/apei/einj/param2 0x0
        write /r/sys/kernel/debug/apei/einj/param3 0x4
        write /r/sys/kernel/debug/apei/einj/param4 0x0
        write /r/sys/kernel/debug/apei/einj/notrigger 1
        write /r/sys/kernel/debug/apei/einj/error_inject 1
        ");
        let r = EinjRequest::new(t(0x40), None, None, None, Some(sbdf), false).unwrap();
        let plan = lines(
            &Einj::new(Path::new("/"), Layout::FULL)
                .describe(&r)
                .unwrap(),
        );
        assert!(
            plan.contains("flags 0x4\n") && plan.contains("param4 0x1800\n"),
            "{plan}"
        );
    }

    #[test]
    fn a_type_alone_still_resets_the_kept_values() {
        // flags and params keep the values of the last injection: a platform error after a
        // memory one must not reuse its address.
        let r = EinjRequest::new(t(0x200), None, None, None, None, false).unwrap();
        let plan = lines(
            &Einj::new(Path::new("/"), Layout::FULL)
                .describe(&r)
                .unwrap(),
        );
        for file in ["flags 0x0", "param1 0x0", "param2 0x0", "notrigger 0"] {
            assert!(plan.contains(file), "{file} missing in\n{plan}");
        }
    }

    #[test]
    fn vendor_types_put_their_target_in_param1_and_set_vendor_flags() {
        let r =
            EinjRequest::new(t(0x8000_0001), Some(0x2000), Some(!0xff), None, None, false).unwrap();
        let plan = Einj::new(Path::new("/"), Layout::FULL)
            .describe(&r)
            .unwrap();
        insta::assert_snapshot!(lines(&plan), @r"
        write /sys/kernel/debug/apei/einj/error_type 0x80000001
        write /sys/kernel/debug/apei/einj/flags 0x0
        write /sys/kernel/debug/apei/einj/param1 0x2000
        write /sys/kernel/debug/apei/einj/param2 0xffffffffffffff00
        write /sys/kernel/debug/apei/einj/param3 0x0
        write /sys/kernel/debug/apei/einj/param4 0x0
        write /sys/kernel/debug/apei/einj/notrigger 0
        write /sys/kernel/debug/apei/einj/vendor_flags 0x2
        write /sys/kernel/debug/apei/einj/error_inject 1
        ");
        let e = EinjRequest::new(t(0x8000_0001), Some(0), None, Some(1), None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a vendor type takes one target"), "{e}");
        let no_vendor = Layout {
            params: true,
            vendor: false,
        };
        let e = Einj::new(Path::new("/"), no_vendor)
            .describe(&r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("it has no vendor extension"), "{e}");
    }

    #[test]
    fn masks_and_addresses_follow_the_kernels_rules() {
        let e = |addr, mask| {
            EinjRequest::new(t(0x10), addr, mask, None, None, false)
                .unwrap_err()
                .to_string()
        };
        assert!(e(None, None).contains("a memory error needs a physical address"));
        assert_eq!(
            e(Some(0x1000), Some(0xffff_ffff_ffff_0fff)),
            "EINJ mask 0xffffffffffff0fff: the kernel refuses a memory injection whose mask lacks \
             page-mask bits: use 0xfffffffffffff000 (the page) or a finer mask"
        );
        assert!(e(Some(0x1000), Some(0)).contains("lacks page-mask bits"));
        let e = EinjRequest::new(t(0x1), None, Some(PAGE_MASK), None, None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a mask needs an address"), "{e}");
        // Finer than a page is fine.
        let r = EinjRequest::new(t(0x10), Some(0x1234_5678), Some(!0x3f), None, None, false);
        assert_eq!(r.unwrap().memory(), Some((0x1234_5678, !0x3f)));
    }

    #[test]
    fn firmware_without_param_files_gets_the_type_only() {
        let legacy = Layout {
            params: false,
            vendor: false,
        };
        let r = EinjRequest::new(t(0x2), None, None, None, None, false).unwrap();
        insta::assert_snapshot!(lines(&Einj::new(Path::new("/"), legacy).describe(&r).unwrap()), @r"
        write /sys/kernel/debug/apei/einj/error_type 0x2
        write /sys/kernel/debug/apei/einj/error_inject 1
        ");
        let r = EinjRequest::new(t(0x8), Some(0x1000), None, None, None, false).unwrap();
        let e = Einj::new(Path::new("/"), legacy)
            .describe(&r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("param_extension=1"), "{e}");
    }

    #[test]
    fn available_error_type_is_parsed_as_the_kernel_prints_it() {
        let text = "0x00000002\tProcessor Uncorrectable non-fatal\n0x00000008\tMemory Correctable\nV2_0x00000002\tEINJV2 Memory Error\n";
        let types = parse_available(text).unwrap();
        assert_eq!(types.len(), 3);
        assert_eq!(types[1].value, 8);
        assert_eq!(types[1].name, "Memory Correctable");
        assert!(types[2].v2 && types[2].value == 2);
        assert_eq!(
            parse_available("8 Memory Correctable\n").unwrap_err(),
            "line 1: expected `0x%08x<TAB>name`, found \"8 Memory Correctable\""
        );
        assert_eq!(parse_available("").unwrap(), vec![]);
    }
}
