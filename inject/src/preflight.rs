//! Everything checked before the first write, against the kernel files under a root directory
//! (`/` on a real machine or in a guest, a temporary tree in tests).
//!
//! The `check_*` functions check a plan already described (so a dry run can print it first);
//! [`crate::request::Request::plan`] calls them. [`debugfs_plan`] and the other `*_plan` functions
//! describe and check in one call, returning the actions to [`crate::injector::perform`].

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use crate::action::Action;
use crate::aer::{self, KernelAer, KernelAerInjector};
use crate::debugfs::{self, Debugfs, InjectionType};
use crate::edac::{self, AmdEcc, EccInjection, EdacFake, FakeInjection};
use crate::einj::{self, Einj, EinjRequest};
use crate::hwpoison::{self, Hwpoison, PoisonRequest};
use crate::injector::{InjectError, Injector};
use crate::record::MceRecord;
use crate::status::{self, Vendor};

const DEBUGFS_MOUNT: &str = "/sys/kernel/debug";
const MOUNT_DEBUGFS: &str = "mount -t debugfs none /sys/kernel/debug";

/// A machine's kernel files, seen from `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    root: PathBuf,
}

impl Machine {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel` (e.g. `sys/devices/system/cpu/online`) under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> Result<(String, PathBuf), InjectError> {
        let path = self.path(rel);
        match fs::read_to_string(&path) {
            Ok(text) => Ok((text, path)),
            Err(source) => Err(InjectError::Unreadable { path, source }),
        }
    }

    /// The online CPUs, from `sys/devices/system/cpu/online` ("0-3,5").
    pub fn online_cpus(&self) -> Result<(Ranges, PathBuf), InjectError> {
        let (text, path) = self.read("sys/devices/system/cpu/online")?;
        let cpus = Ranges::parse(&text).ok_or_else(|| InjectError::Malformed {
            path: path.clone(),
            what: format!("expected CPU ranges like 0-3,5, found {:?}", text.trim()),
        })?;
        Ok((cpus, path))
    }

    /// The CPU vendor and its `vendor_id`, from `proc/cpuinfo`.
    pub fn vendor(&self) -> Result<(Vendor, String), InjectError> {
        let (text, path) = self.read("proc/cpuinfo")?;
        let id = text
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "vendor_id").then(|| value.trim().to_string())
            })
            .ok_or_else(|| InjectError::Malformed {
                path,
                what: "it has no vendor_id line".into(),
            })?;
        Ok((Vendor::from_vendor_id(&id), id))
    }

    /// The banks of `cpu`: the `bank<N>` files of `sys/devices/system/machinecheck/machinecheck<cpu>`.
    pub fn banks(&self, cpu: u32) -> (Ranges, PathBuf) {
        let dir = self.path(&format!(
            "sys/devices/system/machinecheck/machinecheck{cpu}"
        ));
        let banks = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| {
                        e.ok()?
                            .file_name()
                            .to_str()?
                            .strip_prefix("bank")?
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        (Ranges::from_values(banks), dir)
    }

    /// Whether debugfs is mounted at /sys/kernel/debug, from `proc/mounts`.
    pub fn debugfs_mounted(&self) -> bool {
        let Ok((mounts, _)) = self.read("proc/mounts") else {
            return false;
        };
        mounts.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == DEBUGFS_MOUNT && f[2] == "debugfs"
        })
    }

    /// mce-inject's debugfs directory and all its files are present.
    pub fn check_mce_inject(&self) -> Result<(), InjectError> {
        let dir = self.path(debugfs::DIR);
        if !dir.is_dir() {
            let loaded = self.path("sys/module/mce_inject").is_dir();
            let fix = match (loaded, self.debugfs_mounted()) {
                (false, false) => format!("run `{MOUNT_DEBUGFS}` and `modprobe mce-inject`"),
                (false, true) => "run `modprobe mce-inject`".into(),
                (true, false) => format!("run `{MOUNT_DEBUGFS}`"),
                (true, true) => {
                    "mce_inject is loaded and debugfs is mounted, yet the directory is absent: \
                                 is debugfs restricted (kernel lockdown or debugfs=off)?"
                        .into()
                }
            };
            return Err(InjectError::Missing {
                what: "mce-inject's debugfs directory".into(),
                path: dir,
                fix,
            });
        }
        for file in debugfs::WRITE_ORDER {
            let path = dir.join(file);
            if !path.exists() {
                return Err(InjectError::Missing {
                    what: format!("mce-inject's `{file}` file"),
                    path,
                    fix: "this kernel's mce-inject lacks a field rasdrill always writes".into(),
                });
            }
        }
        Ok(())
    }
}

impl Machine {
    /// The ranges of `proc/iomem` that hold memory the kernel may poison or inject into:
    /// System RAM, Persistent Memory and Soft Reserved (the kernel's EINJ check).
    pub fn memory(&self) -> Result<Vec<MemoryRange>, InjectError> {
        let (text, path) = self.read("proc/iomem")?;
        let mut ranges = Vec::new();
        for line in text.lines() {
            let malformed = || InjectError::Malformed {
                path: path.clone(),
                what: format!("expected `start-end : name` lines, found {line:?}"),
            };
            let (span, name) = line.split_once(" : ").ok_or_else(malformed)?;
            let (start, end) = span.trim().split_once('-').ok_or_else(malformed)?;
            let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| malformed());
            let (start, end) = (hex(start)?, hex(end)?);
            let name = name.trim();
            if matches!(name, "System RAM" | "Persistent Memory" | "Soft Reserved") {
                ranges.push(MemoryRange { start, end });
            }
        }
        // The kernel shows zeros to readers without CAP_SYS_ADMIN.
        if ranges.iter().all(|r| r.start == 0 && r.end == 0) {
            return Err(InjectError::NotWritable {
                path,
                why: "it shows no memory addresses: the kernel hides them from processes without \
                      CAP_SYS_ADMIN (are you root?)"
                    .into(),
            });
        }
        Ok(ranges)
    }

    /// Refuses `addr` unless it lies in memory (see [`Machine::memory`]).
    pub fn check_in_memory(&self, field: &'static str, addr: u64) -> Result<(), InjectError> {
        let ranges = self.memory()?;
        if ranges.iter().any(|r| r.start <= addr && addr <= r.end) {
            return Ok(());
        }
        let listed: Vec<String> = ranges.iter().map(ToString::to_string).collect();
        Err(InjectError::Invalid {
            field,
            value: format!("{addr:#x}"),
            why: format!(
                "it is not in memory: {} lists System RAM at {}",
                self.path("proc/iomem").display(),
                listed.join(", ")
            ),
        })
    }
}

/// One memory range of `proc/iomem`, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    pub start: u64,
    pub end: u64,
}

impl fmt::Display for MemoryRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.start, self.end)
    }
}

/// A set of small numbers written as the kernel writes CPU lists: `0-3,5`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    pub fn parse(text: &str) -> Option<Ranges> {
        let text = text.trim();
        if text.is_empty() {
            return Some(Ranges::default());
        }
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let v = part.parse().ok()?;
                    (v, v)
                }
            };
            if a > b {
                return None;
            }
            ranges.push((a, b));
        }
        Some(Ranges(ranges))
    }

    pub fn from_values(mut values: Vec<u32>) -> Ranges {
        values.sort_unstable();
        values.dedup();
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for v in values {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == v => *end = v,
                _ => ranges.push((v, v)),
            }
        }
        Ranges(ranges)
    }

    pub fn contains(&self, v: u32) -> bool {
        self.0.iter().any(|&(a, b)| a <= v && v <= b)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The record's status has VAL: the kernel (and QEMU) ignore or refuse a record without it.
pub fn check_valid(r: &MceRecord) -> Result<(), InjectError> {
    if r.status & status::VAL == 0 {
        return Err(InjectError::NotValid { status: r.status });
    }
    Ok(())
}

/// Each record can go through mce-inject on this machine: valid status, online CPU, existing
/// bank, and an AMD CPU for every injection type but `sw`.
pub fn check_records(
    m: &Machine,
    kind: InjectionType,
    records: &[MceRecord],
) -> Result<(), InjectError> {
    let (online, online_path) = m.online_cpus()?;
    let vendor = if kind.needs_amd() {
        Some(m.vendor()?)
    } else {
        None
    };
    for (i, r) in records.iter().enumerate() {
        let check = || {
            check_valid(r)?;
            if !online.contains(r.cpu) {
                return Err(InjectError::CpuOffline {
                    cpu: r.cpu,
                    online: online.to_string(),
                    path: online_path.clone(),
                });
            }
            let (banks, dir) = m.banks(r.cpu);
            if !banks.contains(r.bank) {
                let valid = if banks.is_empty() {
                    format!("no bank<N> files exist in machinecheck{}", r.cpu)
                } else {
                    format!("its banks are {banks}")
                };
                return Err(InjectError::NoBank {
                    cpu: r.cpu,
                    bank: r.bank,
                    valid,
                    path: dir,
                });
            }
            if let Some((v, id)) = &vendor {
                if *v != Vendor::Amd {
                    return Err(InjectError::NeedsAmd {
                        flags: kind.as_str(),
                        vendor_id: id.clone(),
                    });
                }
            }
            Ok(())
        };
        check().map_err(|e| e.in_record(i, records.len()))?;
    }
    Ok(())
}

/// Every file the plan writes exists and may be written by this process.
pub fn check_writable(actions: &[Action]) -> Result<(), InjectError> {
    for a in actions {
        let (Action::Write { path, .. } | Action::WriteBytes { path, .. }) = a else {
            continue;
        };
        let not_writable = |why: String| InjectError::NotWritable {
            path: path.clone(),
            why,
        };
        let meta = fs::metadata(path).map_err(|e| not_writable(format!("{e}")))?;
        let mode = meta.permissions().mode();
        // kernfs and debugfs refuse writes to a file without write bits even from root, which
        // access(2) does not report for root: look at the mode too.
        if mode & 0o222 == 0 {
            return Err(not_writable(format!(
                "its mode is {:04o}, without write permission: the kernel refuses writes to it, even from root",
                mode & 0o7777
            )));
        }
        access(path.as_path(), AccessFlags::W_OK)
            .map_err(|e| not_writable(format!("{} (are you root?)", e.desc())))?;
    }
    Ok(())
}

/// The checks of [`debugfs_plan`], for a plan already described.
pub fn check_debugfs(
    root: &Path,
    kind: InjectionType,
    records: &[MceRecord],
    actions: &[Action],
) -> Result<(), InjectError> {
    let m = Machine::new(root);
    m.check_mce_inject()?;
    check_records(&m, kind, records)?;
    check_writable(actions)
}

/// Describes `records` through mce-inject's debugfs files and checks everything: the actions to perform.
pub fn debugfs_plan(
    root: &Path,
    kind: InjectionType,
    records: &[MceRecord],
) -> Result<Vec<Action>, InjectError> {
    let actions = describe_all(&Debugfs::new(root, kind), records)?;
    check_debugfs(root, kind, records, &actions)?;
    Ok(actions)
}

/// All actions for many requests, in order; an error names the request when there are several.
pub fn describe_all<I: Injector>(
    injector: &I,
    requests: &[I::Request],
) -> Result<Vec<Action>, InjectError> {
    let mut actions = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        actions.extend(
            injector
                .describe(r)
                .map_err(|e| e.in_record(i, requests.len()))?,
        );
    }
    Ok(actions)
}

/// Checks an amd64_edac DRAM ECC injection whose plan is already described.
pub fn check_amd_ecc(
    root: &Path,
    req: &EccInjection,
    actions: &[Action],
) -> Result<(), InjectError> {
    let m = Machine::new(root);
    let dir = AmdEcc::new(root).mc_dir(req.mc());
    if !dir.is_dir() {
        return Err(InjectError::Missing {
            what: format!("EDAC memory controller mc{}", req.mc()),
            path: dir,
            fix: format!(
                "load this machine's EDAC driver (amd64_edac); present: {}",
                present_mcs(&m.path(edac::MC_DIR))
            ),
        });
    }
    let section = dir.join("inject_section");
    if !section.exists() {
        return Err(InjectError::Missing {
            what: "amd64_edac's DRAM ECC injection".into(),
            path: section,
            fix: "amd64_edac offers it only when built with CONFIG_EDAC_DEBUG, on AMD families 0x10 to 0x16".into(),
        });
    }
    check_writable(actions)
}

/// Checks an EDAC core fake injection whose plan is already described.
pub fn check_edac_fake(
    root: &Path,
    req: &FakeInjection,
    actions: &[Action],
) -> Result<(), InjectError> {
    let m = Machine::new(root);
    let dir = EdacFake::new(root).mc_dir(req.mc());
    if !dir.is_dir() {
        let fix = if m.debugfs_mounted() {
            format!(
                "the EDAC core makes it only when built with CONFIG_EDAC_DEBUG, for a registered memory \
                 controller; present: {}",
                present_mcs(&m.path(edac::DEBUGFS_DIR))
            )
        } else {
            format!("run `{MOUNT_DEBUGFS}`")
        };
        return Err(InjectError::Missing {
            what: format!("the EDAC core's fake injection for mc{}", req.mc()),
            path: dir,
            fix,
        });
    }
    let layer_of = |name: &str| {
        let layer = name.strip_prefix("fake_inject_")?;
        (layer != "ue" && layer != "count").then(|| layer.to_string())
    };
    for (layer, _) in req.layers() {
        if !dir.join(layer.file()).exists() {
            return Err(InjectError::NoLayer {
                mc: req.mc(),
                layer: layer.name(),
                layers: names_in(&dir, layer_of),
                path: dir,
            });
        }
    }
    let given: Vec<&str> = req.layers().iter().map(|(l, _)| l.name()).collect();
    let present = fs::read_dir(&dir).into_iter().flatten().flatten();
    let mut missing: Vec<String> = present
        .filter_map(|e| layer_of(&e.file_name().to_string_lossy()))
        .filter(|l| !given.contains(&l.as_str()))
        .collect();
    missing.sort();
    if let Some(missing) = missing.into_iter().next() {
        return Err(InjectError::MissingLayer {
            mc: req.mc(),
            missing,
            layers: names_in(&dir, layer_of),
        });
    }
    check_writable(actions)
}

/// The checks of [`einj_plan`], for a plan already described: the EINJ files exist, the type
/// is one this firmware offers, a memory target is RAM, and every file can be written.
pub fn check_einj(root: &Path, req: &EinjRequest, actions: &[Action]) -> Result<(), InjectError> {
    let m = Machine::new(root);
    let dir = m.path(einj::DIR);
    if !dir.is_dir() {
        let fix = if !m.debugfs_mounted() {
            format!("run `{MOUNT_DEBUGFS}`")
        } else if !m.path("sys/module/einj").is_dir() {
            "run `modprobe einj`; if it fails, this machine's firmware has no EINJ table (dmesg \
             says so): look for WHEA or error injection in the BIOS setup"
                .into()
        } else {
            "einj is loaded, yet the directory is absent: is debugfs restricted (kernel lockdown)?"
                .into()
        };
        return Err(InjectError::Missing {
            what: "ACPI EINJ's debugfs directory".into(),
            path: dir,
            fix,
        });
    }
    let (text, path) = m.read(&format!("{}/available_error_type", einj::DIR))?;
    let available =
        einj::parse_available(&text).map_err(|what| InjectError::Malformed { path, what })?;
    let t = req.error_type();
    if !t.is_vendor() && !available.iter().any(|a| !a.v2 && a.value == t.value()) {
        let offered: Vec<String> = available
            .iter()
            .filter(|a| !a.v2)
            .map(|a| format!("{:#x} ({})", a.value, a.name))
            .collect();
        return Err(InjectError::Invalid {
            field: "EINJ error type",
            value: t.to_string(),
            why: format!(
                "this firmware does not offer it; available_error_type lists {}",
                if offered.is_empty() {
                    "none".into()
                } else {
                    offered.join(", ")
                }
            ),
        });
    }
    if let Some((addr, mask)) = req.memory() {
        m.check_in_memory("EINJ address", addr & mask)?;
    }
    check_writable(actions)
}

/// Describes an EINJ injection for the files this machine has and checks everything.
pub fn einj_plan(root: &Path, req: &EinjRequest) -> Result<Vec<Action>, InjectError> {
    let actions = Einj::new(root, einj::Layout::probe(root)).describe(req)?;
    check_einj(root, req, &actions)?;
    Ok(actions)
}

/// The checks of [`hwpoison_plan`], for a plan already described: the interface exists, the
/// page is memory, and every file can be written.
pub fn check_hwpoison(
    root: &Path,
    req: &PoisonRequest,
    actions: &[Action],
) -> Result<(), InjectError> {
    let m = Machine::new(root);
    match req {
        PoisonRequest::CorruptPage(_) | PoisonRequest::UnpoisonLast => {
            unreachable!("the planner keeps pages the agent chooses off any machine")
        }
        PoisonRequest::Corrupt { .. } | PoisonRequest::Unpoison { .. } => {
            let dir = m.path(hwpoison::DIR);
            if !dir.is_dir() {
                let fix = if m.debugfs_mounted() {
                    "run `modprobe hwpoison_inject` (it needs CONFIG_HWPOISON_INJECT)".into()
                } else {
                    format!("run `{MOUNT_DEBUGFS}` and `modprobe hwpoison_inject`")
                };
                return Err(InjectError::Missing {
                    what: "hwpoison-inject's debugfs directory".into(),
                    path: dir,
                    fix,
                });
            }
            let memcg = dir.join("corrupt-filter-memcg");
            let wants_memcg =
                matches!(req, PoisonRequest::Corrupt { filter: Some(f), .. } if f.memcg.is_some());
            if wants_memcg && !memcg.exists() {
                return Err(InjectError::Missing {
                    what: "hwpoison-inject's memory cgroup filter".into(),
                    path: memcg,
                    fix: "the kernel offers it only with CONFIG_MEMCG: drop the memcg filter"
                        .into(),
                });
            }
        }
        PoisonRequest::HardOffline { .. } | PoisonRequest::SoftOffline { .. } => {
            for a in actions {
                if let Action::Write { path, .. } = a {
                    if !path.exists() {
                        return Err(InjectError::Missing {
                            what: "the memory sysfs offline files".into(),
                            path: path.clone(),
                            fix: "the kernel offers them only with CONFIG_MEMORY_FAILURE".into(),
                        });
                    }
                }
            }
        }
        PoisonRequest::Madvise(_) => {}
    }
    if let Some(addr) = req.phys_addr() {
        m.check_in_memory("physical address", addr)?;
    }
    check_writable(actions)
}

/// Describes a poisoning request and checks everything.
pub fn hwpoison_plan(root: &Path, req: &PoisonRequest) -> Result<Vec<Action>, InjectError> {
    let actions = Hwpoison::new(root).describe(req)?;
    check_hwpoison(root, req, &actions)?;
    Ok(actions)
}

/// The checks of [`kernel_aer_plan`], for a plan already described: `/dev/aer_inject` exists,
/// the device exists, and the device node can be written.
pub fn check_kernel_aer(
    root: &Path,
    req: &KernelAer,
    actions: &[Action],
) -> Result<(), InjectError> {
    let m = Machine::new(root);
    let dev = m.path(aer::DEV);
    if !dev.exists() {
        return Err(InjectError::Missing {
            what: "the kernel's AER injector".into(),
            path: dev,
            fix: "run `modprobe aer_inject` (it needs CONFIG_PCIEAER_INJECT)".into(),
        });
    }
    let devices = m.path("sys/bus/pci/devices");
    let device = devices.join(req.device().to_string());
    if !device.exists() {
        return Err(InjectError::Missing {
            what: format!("PCI device {}", req.device()),
            path: device,
            fix: format!(
                "name a device of this machine; present: {}",
                names_in(&devices, |n| Some(n.to_string()))
            ),
        });
    }
    check_writable(actions)
}

/// Describes an injection through the kernel's aer_inject and checks everything.
pub fn kernel_aer_plan(root: &Path, req: &KernelAer) -> Result<Vec<Action>, InjectError> {
    let actions = KernelAerInjector::new(root).describe(req)?;
    check_kernel_aer(root, req, &actions)?;
    Ok(actions)
}

/// The `mc<N>` entries of an EDAC directory, for error messages.
fn present_mcs(dir: &Path) -> String {
    names_in(dir, |name| {
        name.strip_prefix("mc")?.parse::<u32>().ok()?;
        Some(name.to_string())
    })
}

/// What `pick` makes of the entry names of `dir`, sorted and joined for an error message;
/// `none` when there are none (or `dir` cannot be read).
fn names_in(dir: &Path, pick: impl Fn(&str) -> Option<String>) -> String {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| pick(e.ok()?.file_name().to_str()?))
        .collect();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = Ranges::parse("0-3,5\n").unwrap();
        assert!(r.contains(0) && r.contains(3) && r.contains(5));
        assert!(!r.contains(4) && !r.contains(6));
        assert_eq!(r.to_string(), "0-3,5");
        assert_eq!(Ranges::parse("7").unwrap().to_string(), "7");
        assert_eq!(Ranges::parse("").unwrap(), Ranges::default());
        assert_eq!(Ranges::parse("3-1"), None);
        assert_eq!(Ranges::parse("a"), None);
        assert_eq!(
            Ranges::from_values(vec![9, 0, 1, 2, 5, 4, 2]).to_string(),
            "0-2,4-5,9"
        );
    }

    #[test]
    fn valid_needs_val() {
        assert!(check_valid(&MceRecord {
            status: status::VAL,
            ..Default::default()
        })
        .is_ok());
        let e = check_valid(&MceRecord {
            status: 0x1c00000000000813,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "status 0x1c00000000000813 has VAL (bit 63) clear: the kernel ignores an invalid record; set VAL, e.g. 0x9c00000000000813"
        );
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn vendor_and_cpus_are_read_from_the_root() {
        let t = tree(&[
            (
                "proc/cpuinfo",
                "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 21\n",
            ),
            ("sys/devices/system/cpu/online", "0-1\n"),
            ("sys/devices/system/machinecheck/machinecheck1/bank0", ""),
            ("sys/devices/system/machinecheck/machinecheck1/bank1", ""),
            (
                "sys/devices/system/machinecheck/machinecheck1/check_interval",
                "",
            ),
        ]);
        let m = Machine::new(t.path());
        assert_eq!(
            m.vendor().unwrap(),
            (Vendor::Amd, "AuthenticAMD".to_string())
        );
        assert_eq!(m.online_cpus().unwrap().0.to_string(), "0-1");
        assert_eq!(m.banks(1).0.to_string(), "0-1");
        assert!(m.banks(0).0.is_empty());
        assert!(!m.debugfs_mounted());
    }

    #[test]
    fn unreadable_and_malformed_files_are_named() {
        let t = tree(&[
            ("sys/devices/system/cpu/online", "zero\n"),
            ("proc/cpuinfo", "processor : 0\n"),
        ]);
        let m = Machine::new(t.path());
        let e = m.online_cpus().unwrap_err().to_string();
        assert!(e.ends_with("online does not look like the kernel's: expected CPU ranges like 0-3,5, found \"zero\""), "{e}");
        let e = m.vendor().unwrap_err().to_string();
        assert!(
            e.ends_with("cpuinfo does not look like the kernel's: it has no vendor_id line"),
            "{e}"
        );
        let e = Machine::new(&t.path().join("nowhere"))
            .online_cpus()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn files_without_write_bits_are_refused_even_for_root() {
        let t = tree(&[("f", "")]);
        let f = t.path().join("f");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o444)).unwrap();
        let plan = [Action::Write {
            path: f.clone(),
            value: "1".into(),
        }];
        let e = check_writable(&plan).unwrap_err().to_string();
        assert!(
            e.contains("its mode is 0444, without write permission"),
            "{e}"
        );
        fs::set_permissions(&f, fs::Permissions::from_mode(0o200)).unwrap();
        check_writable(&plan).unwrap();
        let missing = [Action::Write {
            path: t.path().join("nope"),
            value: "1".into(),
        }];
        assert!(check_writable(&missing)
            .unwrap_err()
            .to_string()
            .contains("No such file"));
        // Monitor lines are not files.
        check_writable(&[Action::Monitor { line: "mce".into() }]).unwrap();
    }

    const IOMEM: &str = "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n00100000-7ffdffff : System RAM\n  01000000-01e02a26 : Kernel code\n";

    #[test]
    fn iomem_as_root_and_as_a_user() {
        let t = tree(&[("proc/iomem", IOMEM)]);
        let m = Machine::new(t.path());
        assert_eq!(m.memory().unwrap().len(), 2);
        m.check_in_memory("physical address", 0x1000).unwrap();
        let e = m
            .check_in_memory("physical address", 0xa0000)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("physical address 0xa0000: it is not in memory"),
            "{e}"
        );
        let hidden = tree(&[(
            "proc/iomem",
            "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n",
        )]);
        let e = Machine::new(hidden.path())
            .memory()
            .unwrap_err()
            .to_string();
        assert!(e.contains("(are you root?)"), "{e}");
        let bad = tree(&[("proc/iomem", "System RAM\n")]);
        assert!(Machine::new(bad.path()).memory().is_err());
    }

    #[test]
    fn hwpoison_checks_come_before_any_write() {
        use crate::hwpoison::{Filter, PoisonRequest};
        let corrupt = PoisonRequest::Corrupt {
            pfn: 0x1234,
            filter: None,
        };
        let bare = tree(&[("proc/iomem", IOMEM), ("proc/mounts", "")]);
        let e = hwpoison_plan(bare.path(), &corrupt)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hwpoison-inject's debugfs directory is missing")
                && e.contains("mount -t debugfs"),
            "{e}"
        );
        let files = [
            ("proc/iomem", IOMEM),
            ("sys/kernel/debug/hwpoison/corrupt-pfn", ""),
            ("sys/kernel/debug/hwpoison/unpoison-pfn", ""),
            ("sys/kernel/debug/hwpoison/corrupt-filter-enable", "0\n"),
            (
                "sys/kernel/debug/hwpoison/corrupt-filter-dev-major",
                "4294967295\n",
            ),
            (
                "sys/kernel/debug/hwpoison/corrupt-filter-dev-minor",
                "4294967295\n",
            ),
            ("sys/kernel/debug/hwpoison/corrupt-filter-flags-mask", "0\n"),
            (
                "sys/kernel/debug/hwpoison/corrupt-filter-flags-value",
                "0\n",
            ),
        ];
        let t = tree(&files);
        let plan = hwpoison_plan(t.path(), &corrupt).unwrap();
        crate::perform(&plan).unwrap();
        let read = |f: &str| {
            fs::read_to_string(t.path().join("sys/kernel/debug/hwpoison").join(f)).unwrap()
        };
        assert_eq!(read("corrupt-pfn"), "0x1234\n");
        assert_eq!(read("corrupt-filter-enable"), "0\n");
        let outside = PoisonRequest::Corrupt {
            pfn: 0xa0,
            filter: None,
        };
        let e = hwpoison_plan(t.path(), &outside).unwrap_err().to_string();
        assert!(
            e.starts_with("physical address 0xa0000: it is not in memory"),
            "{e}"
        );
        let memcg = PoisonRequest::Corrupt {
            pfn: 0x1234,
            filter: Some(Filter {
                memcg: Some(5),
                ..Default::default()
            }),
        };
        let e = hwpoison_plan(t.path(), &memcg).unwrap_err().to_string();
        assert!(e.contains("only with CONFIG_MEMCG"), "{e}");
        let e = hwpoison_plan(t.path(), &PoisonRequest::SoftOffline { addr: 0x2000 })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("soft_offline_page does not exist") && e.contains("CONFIG_MEMORY_FAILURE"),
            "{e}"
        );
        assert_eq!(
            read("corrupt-pfn"),
            "0x1234\n",
            "nothing written by refused requests"
        );
    }

    #[test]
    fn kernel_aer_checks_the_device_and_writes_one_struct() {
        use crate::aer::{AerError, KernelAer};
        use crate::einj::Sbdf;
        let rcvr = AerError::parse("RCVR", true).unwrap();
        let req = KernelAer::new(Sbdf::parse("00:03.0").unwrap(), &[rcvr], [0; 4]).unwrap();
        let bare = tree(&[("sys/bus/pci/devices/0000:00:01.0/vendor", "0x8086\n")]);
        let e = kernel_aer_plan(bare.path(), &req).unwrap_err().to_string();
        assert!(e.contains("modprobe aer_inject"), "{e}");
        let t = tree(&[
            ("dev/aer_inject", ""),
            ("sys/bus/pci/devices/0000:00:01.0/vendor", "0x8086\n"),
        ]);
        let e = kernel_aer_plan(t.path(), &req).unwrap_err().to_string();
        assert!(
            e.starts_with("PCI device 0000:00:03.0 is missing")
                && e.ends_with("present: 0000:00:01.0"),
            "{e}"
        );
        let req = KernelAer::new(Sbdf::parse("00:01.0").unwrap(), &[rcvr], [0; 4]).unwrap();
        let plan = kernel_aer_plan(t.path(), &req).unwrap();
        crate::perform(&plan).unwrap();
        let written = fs::read(t.path().join("dev/aer_inject")).unwrap();
        assert_eq!(written, req.bytes());
    }
}
