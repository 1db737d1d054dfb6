//! EDAC injection: amd64_edac's DRAM ECC injection and the EDAC core's fake errors.
//!
//! Both need CONFIG_EDAC_DEBUG and neither exists under QEMU: they are for lab machines, and are
//! tested here against directory trees that reproduce the kernel's files (drivers/edac/).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::action::Action;
use crate::injector::{InjectError, Injector};

/// Where amd64_edac's memory controllers live, relative to the root.
pub const MC_DIR: &str = "sys/devices/system/edac/mc";
/// Where the EDAC core's debugfs files live, relative to the root.
pub const DEBUGFS_DIR: &str = "sys/kernel/debug/edac";

/// The DRAM access that performs an amd64_edac injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EccAccess {
    Read,
    Write,
}

impl EccAccess {
    /// The file whose write performs the access.
    pub fn file(self) -> &'static str {
        match self {
            EccAccess::Read => "inject_read",
            EccAccess::Write => "inject_write",
        }
    }
}

/// One amd64_edac DRAM ECC injection (families 0x10-0x16). Range-checked on construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EccInjection {
    mc: u32,
    section: u8,
    word: u8,
    ecc_vector: u16,
    access: EccAccess,
}

impl EccInjection {
    /// `section` picks the 16-byte section of the cache line (0-3), `word` the 16-bit word in it
    /// (0-8), `ecc_vector` the bits to flip (16 bits).
    pub fn new(
        mc: u32,
        section: u64,
        word: u64,
        ecc_vector: u64,
        access: EccAccess,
    ) -> Result<Self, InjectError> {
        let range = |field, value: u64, max: u64, valid| {
            if value > max {
                Err(InjectError::OutOfRange {
                    field,
                    value,
                    valid,
                })
            } else {
                Ok(value)
            }
        };
        Ok(Self {
            mc,
            section: range("section", section, 3, "amd64_edac takes 0 to 3")? as u8,
            word: range("word", word, 8, "amd64_edac takes 0 to 8")? as u8,
            ecc_vector: range(
                "ecc vector",
                ecc_vector,
                0xffff,
                "amd64_edac takes 16 bits, 0x0 to 0xffff",
            )? as u16,
            access,
        })
    }

    pub fn mc(&self) -> u32 {
        self.mc
    }

    pub fn access(&self) -> EccAccess {
        self.access
    }

    pub fn ecc_vector(&self) -> u16 {
        self.ecc_vector
    }
}

/// amd64_edac's `inject_*` sysfs files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdEcc {
    root: PathBuf,
}

impl AmdEcc {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The memory controller's sysfs directory.
    pub fn mc_dir(&self, mc: u32) -> PathBuf {
        self.root.join(MC_DIR).join(format!("mc{mc}"))
    }
}

impl Injector for AmdEcc {
    type Request = EccInjection;

    fn describe(&self, r: &EccInjection) -> Result<Vec<Action>, InjectError> {
        let dir = self.mc_dir(r.mc);
        let write = |file: &str, value: String| Action::Write {
            path: dir.join(file),
            value,
        };
        // section and word are parsed as decimal, the vector as hex (kstrtoul base 16 takes 0x).
        Ok(vec![
            write("inject_section", r.section.to_string()),
            write("inject_word", r.word.to_string()),
            write("inject_ecc_vector", format!("{:#x}", r.ecc_vector)),
            write(r.access.file(), "1".into()),
        ])
    }
}

/// An EDAC memory-controller layer, as named in `fake_inject_<layer>` (edac_layer_name[]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Branch,
    Channel,
    Slot,
    Csrow,
    Memory,
}

impl Layer {
    pub const ALL: [Layer; 5] = [
        Layer::Branch,
        Layer::Channel,
        Layer::Slot,
        Layer::Csrow,
        Layer::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Branch => "branch",
            Layer::Channel => "channel",
            Layer::Slot => "slot",
            Layer::Csrow => "csrow",
            Layer::Memory => "memory",
        }
    }

    pub fn file(self) -> String {
        format!("fake_inject_{}", self.name())
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not an EDAC layer: expected branch, channel, slot, csrow or memory"
                )
            })
    }
}

/// One EDAC core fake injection: reports `count` errors at the given layer positions through
/// the `ras:mc_event` tracepoint, without touching hardware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeInjection {
    mc: u32,
    layers: Vec<(Layer, u8)>,
    uncorrected: bool,
    count: u16,
}

impl FakeInjection {
    /// Each layer position is a u8; `count` is a u16 where 0 means 1 (the kernel's rule).
    pub fn new(
        mc: u32,
        layers: &[(Layer, u64)],
        uncorrected: bool,
        count: u64,
    ) -> Result<Self, InjectError> {
        let mut checked = Vec::new();
        for &(layer, pos) in layers {
            if checked.iter().any(|(l, _)| *l == layer) {
                return Err(InjectError::DuplicateLayer {
                    layer: layer.name(),
                });
            }
            let pos = u8::try_from(pos).map_err(|_| InjectError::OutOfRange {
                field: "layer position",
                value: pos,
                valid: "the kernel keeps a u8, 0 to 255",
            })?;
            checked.push((layer, pos));
        }
        let count = u16::try_from(count).map_err(|_| InjectError::OutOfRange {
            field: "count",
            value: count,
            valid: "the kernel keeps a u16, 0 to 65535 (0 means 1)",
        })?;
        Ok(Self {
            mc,
            layers: checked,
            uncorrected,
            count,
        })
    }

    pub fn mc(&self) -> u32 {
        self.mc
    }

    pub fn layers(&self) -> &[(Layer, u8)] {
        &self.layers
    }

    pub fn uncorrected(&self) -> bool {
        self.uncorrected
    }
}

/// The EDAC core's `fake_inject*` debugfs files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdacFake {
    root: PathBuf,
}

impl EdacFake {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The memory controller's debugfs directory.
    pub fn mc_dir(&self, mc: u32) -> PathBuf {
        self.root.join(DEBUGFS_DIR).join(format!("mc{mc}"))
    }
}

impl Injector for EdacFake {
    type Request = FakeInjection;

    fn describe(&self, r: &FakeInjection) -> Result<Vec<Action>, InjectError> {
        let dir = self.mc_dir(r.mc);
        let write = |file: String, value: String| Action::Write {
            path: dir.join(file),
            value,
        };
        let mut actions: Vec<Action> = r
            .layers
            .iter()
            .map(|(l, pos)| write(l.file(), pos.to_string()))
            .collect();
        actions.push(write(
            "fake_inject_ue".into(),
            if r.uncorrected { "1" } else { "0" }.into(),
        ));
        actions.push(write("fake_inject_count".into(), r.count.to_string()));
        // Any write to fake_inject reports the errors.
        actions.push(write("fake_inject".into(), "1".into()));
        Ok(actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(actions: &[Action]) -> String {
        actions.iter().map(|a| format!("{a}\n")).collect()
    }

    #[test]
    fn ecc_injection_writes_the_access_last() {
        let r = EccInjection::new(0, 3, 8, 0x8001, EccAccess::Write).unwrap();
        insta::assert_snapshot!(lines(&AmdEcc::new(Path::new("/")).describe(&r).unwrap()), @r"
        write /sys/devices/system/edac/mc/mc0/inject_section 3
        write /sys/devices/system/edac/mc/mc0/inject_word 8
        write /sys/devices/system/edac/mc/mc0/inject_ecc_vector 0x8001
        write /sys/devices/system/edac/mc/mc0/inject_write 1
        ");
        let r = EccInjection::new(2, 0, 0, 0, EccAccess::Read).unwrap();
        let last = AmdEcc::new(Path::new("/r"))
            .describe(&r)
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(
            last.to_string(),
            "write /r/sys/devices/system/edac/mc/mc2/inject_read 1"
        );
    }

    #[test]
    fn ecc_injection_is_range_checked() {
        let e = |s, w, v| {
            EccInjection::new(0, s, w, v, EccAccess::Read)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(4, 0, 0),
            "section 4 is out of range: amd64_edac takes 0 to 3"
        );
        assert_eq!(
            e(0, 9, 0),
            "word 9 is out of range: amd64_edac takes 0 to 8"
        );
        assert_eq!(
            e(0, 0, 0x10000),
            "ecc vector 65536 is out of range: amd64_edac takes 16 bits, 0x0 to 0xffff"
        );
    }

    #[test]
    fn fake_injection_sets_layers_then_triggers() {
        let r = FakeInjection::new(0, &[(Layer::Csrow, 1), (Layer::Channel, 0)], true, 3).unwrap();
        insta::assert_snapshot!(lines(&EdacFake::new(Path::new("/")).describe(&r).unwrap()), @r"
        write /sys/kernel/debug/edac/mc0/fake_inject_csrow 1
        write /sys/kernel/debug/edac/mc0/fake_inject_channel 0
        write /sys/kernel/debug/edac/mc0/fake_inject_ue 1
        write /sys/kernel/debug/edac/mc0/fake_inject_count 3
        write /sys/kernel/debug/edac/mc0/fake_inject 1
        ");
    }

    #[test]
    fn fake_injection_is_range_checked() {
        let e = FakeInjection::new(0, &[(Layer::Slot, 256)], false, 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "layer position 256 is out of range: the kernel keeps a u8, 0 to 255"
        );
        let e = FakeInjection::new(0, &[], false, 65536)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("count 65536 is out of range"), "{e}");
        let e = FakeInjection::new(0, &[(Layer::Slot, 1), (Layer::Slot, 2)], false, 1)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "the slot layer is given twice: give each layer once");
    }

    #[test]
    fn layer_names() {
        for l in Layer::ALL {
            assert_eq!(l.name().parse::<Layer>(), Ok(l));
        }
        assert!("rank"
            .parse::<Layer>()
            .unwrap_err()
            .contains("expected branch, channel"));
    }
}
