//! The options of the error sources (`rasdrill inject`'s flags, and a scenario step's keys) for the error sources besides machine checks and EDAC: ACPI EINJ,
//! memory poisoning (hwpoison) and PCIe AER. Each group builds its part of the one request; the
//! planner (`rasdrill_inject::request`) decides where it fits.

use clap::{Args, ValueEnum};
use rasdrill_inject::aer::{AerError, KernelAer, QemuAer, TlpLog};
use rasdrill_inject::einj::{EinjRequest, ErrorType, Sbdf};
use rasdrill_inject::hwpoison::{Advice, Filter, Page, PoisonRequest};
use rasdrill_inject::request::AerRequest;

use crate::exit::Failure;

/// The first flag of `flags` that was given, for "does not apply" messages.
fn first(flags: &[(bool, &'static str)]) -> Option<&'static str> {
    flags.iter().find_map(|(set, name)| set.then_some(*name))
}

/// ACPI EINJ requests (--via einj). The address is `--addr`.
#[derive(Debug, Args)]
#[command(next_help_heading = "EINJ (--via einj)")]
pub struct EinjArgs {
    /// The error type, one bit as available_error_type lists it (0x8: memory correctable)
    #[arg(long, value_name = "TYPE", value_parser = number)]
    pub einj_type: Option<u64>,
    /// The address mask (default: the page, 0xfffffffffffff000)
    #[arg(long, value_parser = number)]
    pub mask: Option<u64>,
    /// A processor target: the APIC id
    #[arg(long, value_parser = number_u32)]
    pub apic: Option<u32>,
    /// A PCIe target (and the device for --via aer): SSSS:BB:DD.F or BB:DD.F, as lspci prints
    #[arg(long, value_name = "SBDF", value_parser = sbdf)]
    pub sbdf: Option<Sbdf>,
    /// Set up the injection without triggering it (the firmware's notrigger)
    #[arg(long)]
    pub notrigger: bool,
}

impl EinjArgs {
    /// The EINJ-only flag given, if any (`--sbdf` is shared with --via aer).
    pub fn given(&self) -> Option<&'static str> {
        first(&[
            (self.einj_type.is_some(), "--einj-type"),
            (self.mask.is_some(), "--mask"),
            (self.apic.is_some(), "--apic"),
            (self.notrigger, "--notrigger"),
        ])
    }

    pub fn request(&self, addr: Option<u64>) -> Result<EinjRequest, Failure> {
        let Some(t) = self.einj_type else {
            return Err(Failure::bad_input(
                "--via einj needs --einj-type (e.g. 0x8, memory correctable, with --addr)",
            ));
        };
        Ok(EinjRequest::new(
            ErrorType::new(t)?,
            addr,
            self.mask,
            self.apic,
            self.sbdf,
            self.notrigger,
        )?)
    }
}

/// How `--madvise` advises the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MadviseArg {
    /// MADV_HWPOISON: the page is poisoned as a hardware error would
    Hwpoison,
    /// MADV_SOFT_OFFLINE: the page's content moves to a new page, the old one is retired
    SoftOffline,
}

/// Which page `--page` poisons in a guest: its agent finds one when it injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PageArg {
    /// A free page of the buddy allocator (the highest /proc/kpageflags marks BUDDY)
    Free,
    /// A page-cache page of a file the agent writes in the guest's tmpfs
    PageCache,
}

/// Which memory sysfs file `--offline` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OfflineArg {
    /// hard_offline_page: memory_failure() on the page
    Hard,
    /// soft_offline_page: migrate the content, retire the page
    Soft,
}

/// Memory poisoning requests (--via hwpoison).
#[derive(Debug, Args)]
#[command(next_help_heading = "hwpoison (--via hwpoison)")]
pub struct HwpoisonArgs {
    /// Poison this page frame through hwpoison-inject's corrupt-pfn (module hwpoison_inject)
    #[arg(long, value_parser = number)]
    pub pfn: Option<u64>,
    /// Poison a page the guest's agent finds (--guest only): the pfn it used is reported
    #[arg(long, value_enum, value_name = "PAGE", conflicts_with = "pfn")]
    pub page: Option<PageArg>,
    /// Unpoison --pfn instead (unpoison-pfn; only pages poisoned by software); without --pfn,
    /// in a guest scenario: the page the agent poisoned last
    #[arg(long)]
    pub unpoison: bool,
    /// corrupt-pfn: only page-cache pages of this block device
    #[arg(long, value_name = "MAJOR:MINOR", value_parser = dev, requires = "pfn")]
    pub filter_dev: Option<(u32, u32)>,
    /// corrupt-pfn: only pages whose page flags masked by MASK equal VALUE
    #[arg(long, value_name = "MASK:VALUE", value_parser = flags, requires = "pfn")]
    pub filter_flags: Option<(u64, u64)>,
    /// corrupt-pfn: only pages of the memory cgroup with this inode number
    #[arg(long, value_name = "INODE", value_parser = number, requires = "pfn")]
    pub filter_memcg: Option<u64>,
    /// A child process maps a page, writes it, calls madvise with this advice and reads it back
    #[arg(long, value_enum, value_name = "ADVICE")]
    pub madvise: Option<MadviseArg>,
    /// Offline the page at --addr through the memory sysfs files
    #[arg(long, value_enum, value_name = "HOW")]
    pub offline: Option<OfflineArg>,
}

impl HwpoisonArgs {
    pub fn given(&self) -> Option<&'static str> {
        first(&[
            (self.pfn.is_some(), "--pfn"),
            (self.page.is_some(), "--page"),
            (self.unpoison, "--unpoison"),
            (self.filter_dev.is_some(), "--filter-dev"),
            (self.filter_flags.is_some(), "--filter-flags"),
            (self.filter_memcg.is_some(), "--filter-memcg"),
            (self.madvise.is_some(), "--madvise"),
            (self.offline.is_some(), "--offline"),
        ])
    }

    pub fn request(&self, addr: Option<u64>) -> Result<PoisonRequest, Failure> {
        let ways = [
            self.pfn.is_some(),
            self.page.is_some(),
            self.unpoison && self.pfn.is_none(),
            self.madvise.is_some(),
            self.offline.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() != 1 {
            return Err(Failure::bad_input(
                "--via hwpoison needs exactly one of --pfn (corrupt-pfn, or unpoison-pfn with \
                 --unpoison), --page free|page-cache (a guest's page), --unpoison alone (the \
                 page a guest scenario poisoned last), --madvise hwpoison|soft-offline, or \
                 --offline hard|soft with --addr",
            ));
        }

        if addr.is_some() && self.offline.is_none() {
            return Err(Failure::bad_input(
                "--addr is for --offline; corrupt-pfn takes a page frame number (--pfn, the \
                 address >> 12)",
            ));
        }
        if let Some(page) = self.page {
            return Ok(PoisonRequest::CorruptPage(match page {
                PageArg::Free => Page::Free,
                PageArg::PageCache => Page::PageCache,
            }));
        }
        if self.unpoison && self.pfn.is_none() {
            return Ok(PoisonRequest::UnpoisonLast);
        }
        if let Some(pfn) = self.pfn {
            let pfn = PoisonRequest::check_pfn(pfn)?;
            let filtered = self.filter_dev.is_some()
                || self.filter_flags.is_some()
                || self.filter_memcg.is_some();
            if self.unpoison {
                if filtered {
                    return Err(Failure::bad_input(
                        "the --filter-* options are for poisoning: unpoison-pfn has no filter",
                    ));
                }
                return Ok(PoisonRequest::Unpoison { pfn });
            }
            let filter = filtered.then_some(Filter {
                dev: self.filter_dev,
                flags: self.filter_flags,
                memcg: self.filter_memcg,
            });
            return Ok(PoisonRequest::Corrupt { pfn, filter });
        }
        if let Some(advice) = self.madvise {
            return Ok(PoisonRequest::Madvise(match advice {
                MadviseArg::Hwpoison => Advice::Hwpoison,
                MadviseArg::SoftOffline => Advice::SoftOffline,
            }));
        }
        let Some(addr) = addr else {
            return Err(Failure::bad_input(
                "--offline needs the physical address of the page (--addr)",
            ));
        };
        Ok(match self.offline {
            Some(OfflineArg::Soft) => PoisonRequest::SoftOffline { addr },
            _ => PoisonRequest::HardOffline { addr },
        })
    }
}

/// PCIe AER requests (--via aer): QEMU's monitor (--qdev, in a guest) or the kernel's
/// aer_inject (--sbdf).
#[derive(Debug, Args)]
#[command(next_help_heading = "AER (--via aer)")]
pub struct AerArgs {
    /// The error: a name (DLP, SDN, COMP_TIME, UNSUP, POISON_TLP, RCVR, BAD_TLP, BAD_DLLP,
    /// REP_TIMER, ...) or one status bit in hex; repeatable with --sbdf
    #[arg(long, value_name = "ERROR")]
    pub aer_error: Vec<String>,
    /// Read hex --aer-error bits as correctable-status bits
    #[arg(long)]
    pub correctable: bool,
    /// Inject through QEMU's pcie_aer_inject_error on the guest device with this qdev id
    /// (rp0: the root port, nic0: the endpoint behind it)
    #[arg(long, value_name = "ID", conflicts_with = "sbdf")]
    pub qdev: Option<String>,
    /// QEMU: signal an uncorrectable non-fatal error as Advisory Non-Fatal (-a)
    #[arg(long, requires = "qdev")]
    pub advisory: bool,
    /// The TLP header log, 4 words (e.g. 0x40000001,0x100000f,0xfee00000,0x0)
    #[arg(long, value_name = "W0,W1,W2,W3", value_parser = words)]
    pub tlp_header: Option<[u32; 4]>,
    /// QEMU: the TLP prefix log, 4 words, after --tlp-header
    #[arg(long, value_name = "W0,W1,W2,W3", value_parser = words, requires = "tlp_header")]
    pub tlp_prefix: Option<[u32; 4]>,
}

impl AerArgs {
    /// The AER-only flag given, if any (`--sbdf` is shared with --via einj).
    pub fn given(&self) -> Option<&'static str> {
        first(&[
            (!self.aer_error.is_empty(), "--aer-error"),
            (self.correctable, "--correctable"),
            (self.qdev.is_some(), "--qdev"),
            (self.advisory, "--advisory"),
            (self.tlp_header.is_some(), "--tlp-header"),
            (self.tlp_prefix.is_some(), "--tlp-prefix"),
        ])
    }

    pub fn request(&self, sbdf: Option<Sbdf>) -> Result<AerRequest, Failure> {
        if self.aer_error.is_empty() {
            return Err(Failure::bad_input(
                "--via aer needs --aer-error (e.g. RCVR, COMP_TIME or DLP)",
            ));
        }
        let errors = self
            .aer_error
            .iter()
            .map(|e| AerError::parse(e, self.correctable))
            .collect::<Result<Vec<_>, _>>()?;
        match (&self.qdev, sbdf) {
            (Some(id), _) => {
                let [error] = errors[..] else {
                    return Err(Failure::bad_input(
                        "QEMU's pcie_aer_inject_error takes one error: give --aer-error once",
                    ));
                };
                let log = self.tlp_header.map(|header| TlpLog {
                    header,
                    prefix: self.tlp_prefix,
                });
                Ok(AerRequest::Qemu(QemuAer::new(
                    id,
                    error,
                    self.advisory,
                    log,
                )?))
            }
            (None, Some(device)) => {
                if self.tlp_prefix.is_some() {
                    return Err(Failure::bad_input(
                        "--tlp-prefix is QEMU's (--qdev): the kernel's aer_inject has no prefix log",
                    ));
                }
                let header = self.tlp_header.unwrap_or_default();
                Ok(AerRequest::Kernel(KernelAer::new(device, &errors, header)?))
            }
            (None, None) => Err(Failure::bad_input(
                "--via aer needs the device: --qdev ID (QEMU's monitor, in a --guest) or --sbdf \
                 SSSS:BB:DD.F (the kernel's aer_inject)",
            )),
        }
    }
}

fn sbdf(s: &str) -> Result<Sbdf, String> {
    Sbdf::parse(s).map_err(|e| e.to_string())
}

fn dev(s: &str) -> Result<(u32, u32), String> {
    let (major, minor) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not MAJOR:MINOR, e.g. 8:1"))?;
    Ok((number_u32(major)?, number_u32(minor)?))
}

fn flags(s: &str) -> Result<(u64, u64), String> {
    let (mask, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not MASK:VALUE, e.g. 0x20:0x20"))?;
    Ok((number(mask)?, number(value)?))
}

fn words(s: &str) -> Result<[u32; 4], String> {
    let words = s
        .split(',')
        .map(|w| number_u32(w.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    words
        .try_into()
        .map_err(|w: Vec<u32>| format!("`{s}` has {} words: give 4, comma-separated", w.len()))
}

/// C-style numbers (`42`, `0x2a`), as the mce-inject language reads them.
fn number(s: &str) -> Result<u64, String> {
    rasdrill_inject::mcelang::parse_number(s)
}

fn number_u32(s: &str) -> Result<u32, String> {
    let v = number(s)?;
    u32::try_from(v).map_err(|_| format!("{s} is too large: at most {}", u32::MAX))
}
