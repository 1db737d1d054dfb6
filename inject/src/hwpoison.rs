//! Memory poisoning (hwpoison): the hwpoison-inject debugfs files (module hwpoison_inject), the
//! memory sysfs files `hard_offline_page` and `soft_offline_page`, and madvise(MADV_HWPOISON /
//! MADV_SOFT_OFFLINE) on a page a process maps. The rules and their sources are in
//! docs/hwpoison.md.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::mman::{madvise, mmap_anonymous, MapFlags, MmapAdvise, ProtFlags};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::guard::Harm;
use crate::injector::{InjectError, Injector};

/// hwpoison-inject's debugfs directory, relative to the root.
pub const DIR: &str = "sys/kernel/debug/hwpoison";
/// The memory sysfs directory holding `hard_offline_page` and `soft_offline_page`.
pub const MEMORY_DIR: &str = "sys/devices/system/memory";

/// x86's page size: pfn = physical address >> 12.
pub const PAGE_SHIFT: u32 = 12;

/// The kernel's "no filter" value of `corrupt-filter-dev-major` and `-minor` (~0U).
const ANY_DEV: u32 = u32::MAX;

/// Which pages `corrupt-pfn` may poison: the kernel applies these only while
/// `corrupt-filter-enable` is 1, and then silently skips a page that does not match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only page-cache pages of files on this block device (major, minor).
    pub dev: Option<(u32, u32)>,
    /// Only pages whose stable page flags (as /proc/kpageflags shows them) masked by `.0`
    /// equal `.1`.
    pub flags: Option<(u64, u64)>,
    /// Only pages charged to the memory cgroup with this inode number.
    pub memcg: Option<u64>,
}

/// The madvise advice that injects into a process's own page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Advice {
    /// MADV_HWPOISON: memory_failure() on the page, as a hardware error would.
    Hwpoison,
    /// MADV_SOFT_OFFLINE: the page's content moves to a new page and the old one is retired.
    SoftOffline,
}

impl Advice {
    fn nix(self) -> MmapAdvise {
        match self {
            Advice::Hwpoison => MmapAdvise::MADV_HWPOISON,
            Advice::SoftOffline => MmapAdvise::MADV_SOFT_OFFLINE,
        }
    }
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Advice::Hwpoison => "MADV_HWPOISON",
            Advice::SoftOffline => "MADV_SOFT_OFFLINE",
        })
    }
}

/// A page whose frame number is not known before the injection: rasdrill's agent finds one in
/// the guest when it injects, and reports the pfn it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Page {
    /// A free page of the buddy allocator (the last one /proc/kpageflags marks BUDDY).
    Free,
    /// A page-cache page: a page of a file the agent writes in the guest's root file system
    /// (tmpfs), found through /proc/self/pagemap.
    PageCache,
}

impl Page {
    pub fn name(self) -> &'static str {
        match self {
            Page::Free => "free",
            Page::PageCache => "page-cache",
        }
    }
}

impl fmt::Display for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Page::Free => "a free page",
            Page::PageCache => "a page-cache page",
        })
    }
}

/// One poisoning (or unpoisoning) request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonRequest {
    /// Write the page frame number to `corrupt-pfn`: memory_failure() on that page.
    Corrupt { pfn: u64, filter: Option<Filter> },
    /// Write the page frame number to `unpoison-pfn`: only pages poisoned by software.
    Unpoison { pfn: u64 },
    /// Write a physical address to `hard_offline_page`: memory_failure() on its page.
    HardOffline { addr: u64 },
    /// Write a physical address to `soft_offline_page`: migrate its page's content, retire it.
    SoftOffline { addr: u64 },
    /// madvise on a page of a child process (see [`madvise_child`]).
    Madvise(Advice),
    /// `corrupt-pfn` on a page the guest's agent picks when it injects (no filter).
    CorruptPage(Page),
    /// `unpoison-pfn` on the page the guest's agent poisoned last through `corrupt-pfn`.
    UnpoisonLast,
}

impl PoisonRequest {
    /// Poisoning takes memory away from the machine (and may kill the processes that map it):
    /// guarded like an uncorrected error. Unpoisoning gives it back.
    pub fn harm(&self) -> Harm {
        match self {
            PoisonRequest::Unpoison { .. } | PoisonRequest::UnpoisonLast => Harm::None,
            _ => Harm::Uncorrected,
        }
    }

    /// The physical address the request names, if any (for the memory check).
    pub fn phys_addr(&self) -> Option<u64> {
        match *self {
            PoisonRequest::Corrupt { pfn, .. } | PoisonRequest::Unpoison { pfn } => {
                Some(pfn << PAGE_SHIFT)
            }
            PoisonRequest::HardOffline { addr } | PoisonRequest::SoftOffline { addr } => Some(addr),
            PoisonRequest::Madvise(_)
            | PoisonRequest::CorruptPage(_)
            | PoisonRequest::UnpoisonLast => None,
        }
    }

    /// Whether the page is chosen by the guest's agent, which alone can find it.
    pub fn chosen_in_guest(&self) -> bool {
        matches!(
            self,
            PoisonRequest::CorruptPage(_) | PoisonRequest::UnpoisonLast
        )
    }

    /// Whether it goes through hwpoison-inject's debugfs files (module hwpoison_inject).
    pub fn needs_hwpoison_inject(&self) -> bool {
        matches!(
            self,
            PoisonRequest::Corrupt { .. }
                | PoisonRequest::Unpoison { .. }
                | PoisonRequest::CorruptPage(_)
                | PoisonRequest::UnpoisonLast
        )
    }

    /// Whether memory_failure() runs, and so raises `ras:memory_failure_event`: soft offline
    /// migrates and unpoison undoes, neither raises it (F).
    pub fn raises_memory_failure(&self) -> bool {
        matches!(
            self,
            PoisonRequest::Corrupt { .. }
                | PoisonRequest::CorruptPage(_)
                | PoisonRequest::HardOffline { .. }
                | PoisonRequest::Madvise(Advice::Hwpoison)
        )
    }

    /// A page frame number must fit a physical address.
    pub fn check_pfn(pfn: u64) -> Result<u64, InjectError> {
        if pfn >> (64 - PAGE_SHIFT) != 0 {
            return Err(InjectError::Invalid {
                field: "page frame number",
                value: format!("{pfn:#x}"),
                why: "it is past the end of the physical address space (a pfn is an address >> 12)"
                    .into(),
            });
        }
        Ok(pfn)
    }
}

impl fmt::Display for PoisonRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoisonRequest::Corrupt { pfn, .. } => write!(f, "poisoning pfn {pfn:#x}"),
            PoisonRequest::Unpoison { pfn } => write!(f, "unpoisoning pfn {pfn:#x}"),
            PoisonRequest::HardOffline { addr } => {
                write!(f, "hard-offlining the page at {addr:#x}")
            }
            PoisonRequest::SoftOffline { addr } => {
                write!(f, "soft-offlining the page at {addr:#x}")
            }
            PoisonRequest::Madvise(advice) => write!(f, "madvise {advice} on a page"),
            PoisonRequest::CorruptPage(page) => write!(f, "poisoning {page}"),
            PoisonRequest::UnpoisonLast => f.write_str("unpoisoning the page poisoned last"),
        }
    }
}

/// Builds the writes (or the madvise) of a poisoning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hwpoison {
    root: PathBuf,
}

impl Hwpoison {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(DIR)
    }
}

impl Injector for Hwpoison {
    type Request = PoisonRequest;

    /// A corrupt-pfn injection always writes `corrupt-filter-enable` (the kernel keeps it: a
    /// filter left enabled would skip the page silently); with a filter, every filter file
    /// first (they are kept too; "any" for those not given), then enable, then the pfn.
    /// Numbers are hex with 0x: the kernel parses these writes with base 0.
    fn describe(&self, r: &PoisonRequest) -> Result<Vec<Action>, InjectError> {
        let dir = self.dir();
        let write = |path: PathBuf, value: String| Action::Write { path, value };
        let in_dir = |file: &str, value: String| write(dir.join(file), value);
        Ok(match *r {
            PoisonRequest::Corrupt { pfn, filter } => {
                let mut actions = Vec::new();
                if let Some(f) = filter {
                    let (major, minor) = f.dev.unwrap_or((ANY_DEV, ANY_DEV));
                    let (mask, value) = f.flags.unwrap_or((0, 0));
                    actions.push(in_dir("corrupt-filter-dev-major", major.to_string()));
                    actions.push(in_dir("corrupt-filter-dev-minor", minor.to_string()));
                    actions.push(in_dir("corrupt-filter-flags-mask", format!("{mask:#x}")));
                    actions.push(in_dir("corrupt-filter-flags-value", format!("{value:#x}")));
                    if let Some(memcg) = f.memcg {
                        actions.push(in_dir("corrupt-filter-memcg", memcg.to_string()));
                    }
                }
                let enable = u8::from(filter.is_some()).to_string();
                actions.push(in_dir("corrupt-filter-enable", enable));
                actions.push(in_dir("corrupt-pfn", format!("{pfn:#x}")));
                actions
            }
            PoisonRequest::Unpoison { pfn } => vec![in_dir("unpoison-pfn", format!("{pfn:#x}"))],
            PoisonRequest::HardOffline { addr } => vec![write(
                self.root.join(MEMORY_DIR).join("hard_offline_page"),
                format!("{addr:#x}"),
            )],
            PoisonRequest::SoftOffline { addr } => vec![write(
                self.root.join(MEMORY_DIR).join("soft_offline_page"),
                format!("{addr:#x}"),
            )],
            PoisonRequest::Madvise(advice) => vec![Action::Madvise { advice }],
            // What the dry run shows: the guest's agent finds the page, then plans these
            // writes again with its pfn (`Request::misfit` keeps them off any machine).
            PoisonRequest::CorruptPage(page) => vec![
                in_dir("corrupt-filter-enable", "0".into()),
                in_dir(
                    "corrupt-pfn",
                    format!("<the pfn of {page}, found in the guest>"),
                ),
            ],
            PoisonRequest::UnpoisonLast => vec![in_dir(
                "unpoison-pfn",
                "<the pfn poisoned last in the guest>".into(),
            )],
        })
    }
}

/// How the child process of [`madvise_child`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    /// It read its page back unchanged and exited 0: the page was replaced (soft offline).
    Survived,
    /// It read its page back and found other content.
    ContentLost,
    /// madvise itself failed with this errno (e.g. EPERM without CAP_SYS_ADMIN).
    Refused(nix::errno::Errno),
    /// It could not map its page (errno).
    NoPage(nix::errno::Errno),
    /// A signal killed it.
    Killed(Signal),
    /// It got SIGBUS reading its page; `code` is the signal's si_code (BUS_MCEERR_AR: the
    /// kernel found the page poisoned when the process touched it).
    Sigbus { code: i32 },
    /// It did not end within the deadline and was killed.
    TimedOut,
}

impl fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildEnd::Survived => f.write_str("read its page back unchanged and exited"),
            ChildEnd::ContentLost => f.write_str("read its page back and found other content"),
            ChildEnd::Refused(e) => write!(f, "was refused by madvise: {}", e.desc()),
            ChildEnd::NoPage(e) => write!(f, "could not map a page: {}", e.desc()),
            ChildEnd::Killed(s) => write!(f, "was killed by {}", s.as_str()),
            ChildEnd::Sigbus { code } => {
                write!(f, "got SIGBUS ({}) reading its page", bus_code_name(*code))
            }
            ChildEnd::TimedOut => f.write_str("did not end within the deadline and was killed"),
        }
    }
}

/// The names of SIGBUS's si_code values (include/uapi/asm-generic/siginfo.h).
fn bus_code_name(code: i32) -> String {
    match code {
        1 => "BUS_ADRALN".into(),
        2 => "BUS_ADRERR".into(),
        3 => "BUS_OBJERR".into(),
        4 => "BUS_MCEERR_AR".into(),
        5 => "BUS_MCEERR_AO".into(),
        c => format!("si_code {c}"),
    }
}

/// Exit codes of the child: errnos are below 200; SIGBUS is 240 + its si_code.
const EXIT_OK: i32 = 0;
const EXIT_CONTENT: i32 = 254;
const EXIT_MAP: i32 = 200;
const EXIT_SIGBUS: i32 = 240;

/// Where the child asks for its page: a fixed hint (honoured when free, as it is in a new
/// child) gives the kernel's lines about the page the same virtual address in every run.
const PAGE_HINT: usize = 0x5a5a_0000_0000;

/// How long the child may take: a few system calls and a page migration.
const CHILD_DEADLINE: Duration = Duration::from_secs(10);

/// Forks a child that maps one anonymous page, fills it, calls madvise(`advice`) on it, reads
/// it back and exits; returns how it ended. The child is reaped whatever happens.
pub fn madvise_child(advice: Advice) -> io::Result<ChildEnd> {
    run_child(advice.nix(), CHILD_DEADLINE)
}

fn run_child(advice: MmapAdvise, deadline: Duration) -> io::Result<ChildEnd> {
    // SAFETY: the child only makes system calls (mmap, madvise), touches its own new page and
    // calls _exit: it takes no lock another thread of the parent may hold, and allocates nothing.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = child(advice);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { nix::libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let end = Instant::now() + deadline;
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
                    WaitStatus::StillAlive if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    WaitStatus::StillAlive => {
                        let _ = kill(child, Signal::SIGKILL);
                        waitpid(child, None)?;
                        return Ok(ChildEnd::TimedOut);
                    }
                    WaitStatus::Exited(_, code) => return Ok(from_exit(code)),
                    WaitStatus::Signaled(_, signal, _) => return Ok(ChildEnd::Killed(signal)),
                    _ => continue,
                }
            }
        }
    }
}

fn from_exit(code: i32) -> ChildEnd {
    match code {
        EXIT_OK => ChildEnd::Survived,
        EXIT_CONTENT => ChildEnd::ContentLost,
        c if (EXIT_SIGBUS..EXIT_CONTENT).contains(&c) => ChildEnd::Sigbus {
            code: c - EXIT_SIGBUS,
        },
        c if c >= EXIT_MAP => ChildEnd::NoPage(nix::errno::Errno::from_raw(c - EXIT_MAP)),
        c => ChildEnd::Refused(nix::errno::Errno::from_raw(c)),
    }
}

/// The child's SIGBUS handler: exits with the signal's si_code, so the parent learns why.
extern "C" fn on_sigbus(
    _: nix::libc::c_int,
    info: *mut nix::libc::siginfo_t,
    _: *mut nix::libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; _exit is
    // async-signal-safe.
    unsafe {
        let code = (*info).si_code.clamp(0, EXIT_CONTENT - EXIT_SIGBUS - 1);
        nix::libc::_exit(EXIT_SIGBUS + code)
    }
}

/// The child's side: its exit code.
fn child(advice: MmapAdvise) -> i32 {
    const PAGE: usize = 1 << PAGE_SHIFT;
    const FILL: u8 = 0x5a;
    let len = std::num::NonZeroUsize::new(PAGE).expect("a page is not empty");
    let handler = SigAction::new(
        SigHandler::SigAction(on_sigbus),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls _exit. Without it the parent would still see SIGBUS.
    let _ = unsafe { sigaction(Signal::SIGBUS, &handler) };
    // SAFETY: a new private anonymous mapping aliases nothing; the address is a hint only.
    let page = match unsafe {
        mmap_anonymous(
            std::num::NonZeroUsize::new(PAGE_HINT),
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
        )
    } {
        Ok(p) => p.cast::<u8>(),
        Err(e) => return EXIT_MAP + (e as i32).min(50),
    };
    // SAFETY: the page is mapped read-write and PAGE bytes long; volatile keeps every access.
    unsafe {
        for i in 0..PAGE {
            page.as_ptr().add(i).write_volatile(FILL);
        }
        if let Err(e) = madvise(page.cast(), PAGE, advice) {
            return (e as i32).min(EXIT_MAP - 1);
        }
        // A poisoned page raises SIGBUS here.
        for i in 0..PAGE {
            if page.as_ptr().add(i).read_volatile() != FILL {
                return EXIT_CONTENT;
            }
        }
    }
    EXIT_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(actions: &[Action]) -> String {
        actions.iter().map(|a| format!("{a}\n")).collect()
    }

    #[test]
    fn corrupt_without_a_filter_disables_any_kept_filter() {
        let r = PoisonRequest::Corrupt {
            pfn: 0x12345,
            filter: None,
        };
        insta::assert_snapshot!(lines(&Hwpoison::new(Path::new("/")).describe(&r).unwrap()), @r"
        write /sys/kernel/debug/hwpoison/corrupt-filter-enable 0
        write /sys/kernel/debug/hwpoison/corrupt-pfn 0x12345
        ");
    }

    #[test]
    fn corrupt_with_a_filter_writes_every_filter_then_enables_it() {
        let r = PoisonRequest::Corrupt {
            pfn: 0x10,
            filter: Some(Filter {
                dev: None,
                flags: Some((0x20, 0x20)),
                memcg: Some(7),
            }),
        };
        insta::assert_snapshot!(lines(&Hwpoison::new(Path::new("/r")).describe(&r).unwrap()), @r"
        write /r/sys/kernel/debug/hwpoison/corrupt-filter-dev-major 4294967295
        write /r/sys/kernel/debug/hwpoison/corrupt-filter-dev-minor 4294967295
        write /r/sys/kernel/debug/hwpoison/corrupt-filter-flags-mask 0x20
        write /r/sys/kernel/debug/hwpoison/corrupt-filter-flags-value 0x20
        write /r/sys/kernel/debug/hwpoison/corrupt-filter-memcg 7
        write /r/sys/kernel/debug/hwpoison/corrupt-filter-enable 1
        write /r/sys/kernel/debug/hwpoison/corrupt-pfn 0x10
        ");
    }

    #[test]
    fn unpoison_offline_and_madvise() {
        let h = Hwpoison::new(Path::new("/"));
        let one = |r: PoisonRequest| lines(&h.describe(&r).unwrap());
        assert_eq!(
            one(PoisonRequest::Unpoison { pfn: 0x99 }),
            "write /sys/kernel/debug/hwpoison/unpoison-pfn 0x99\n"
        );
        assert_eq!(
            one(PoisonRequest::HardOffline { addr: 0x1234_5000 }),
            "write /sys/devices/system/memory/hard_offline_page 0x12345000\n"
        );
        assert_eq!(
            one(PoisonRequest::SoftOffline { addr: 0x1234_5678 }),
            "write /sys/devices/system/memory/soft_offline_page 0x12345678\n"
        );
        assert_eq!(
            one(PoisonRequest::Madvise(Advice::Hwpoison)),
            "madvise MADV_HWPOISON on an anonymous page of a child process, which then reads it\n"
        );
    }

    #[test]
    fn harm_and_addresses() {
        assert_eq!(PoisonRequest::Unpoison { pfn: 1 }.harm(), Harm::None);
        let soft = PoisonRequest::SoftOffline { addr: 0x5000 };
        assert_eq!(
            soft.harm(),
            Harm::Uncorrected,
            "soft offline takes a page away too"
        );
        assert_eq!(soft.phys_addr(), Some(0x5000));
        let corrupt = PoisonRequest::Corrupt {
            pfn: 0x12345,
            filter: None,
        };
        assert_eq!(corrupt.phys_addr(), Some(0x1234_5000));
        assert_eq!(
            PoisonRequest::Madvise(Advice::SoftOffline).phys_addr(),
            None
        );
        assert!(PoisonRequest::check_pfn(1 << 52)
            .unwrap_err()
            .to_string()
            .contains("past the end"));
        PoisonRequest::check_pfn((1 << 52) - 1).unwrap();
    }

    // The child's plumbing, with advice that poisons nothing: MADV_WILLNEED keeps the page,
    // MADV_DONTNEED drops it (it reads back as zeros). MADV_HWPOISON itself runs in guests.
    #[test]
    fn the_child_reports_how_its_page_read_back() {
        let d = Duration::from_secs(10);
        assert_eq!(
            run_child(MmapAdvise::MADV_WILLNEED, d).unwrap(),
            ChildEnd::Survived
        );
        assert_eq!(
            run_child(MmapAdvise::MADV_DONTNEED, d).unwrap(),
            ChildEnd::ContentLost
        );
    }

    #[test]
    fn child_ends_read_as_sentences() {
        assert_eq!(
            ChildEnd::Killed(Signal::SIGBUS).to_string(),
            "was killed by SIGBUS"
        );
        assert_eq!(from_exit(1), ChildEnd::Refused(nix::errno::Errno::EPERM));
        assert_eq!(from_exit(EXIT_SIGBUS + 4), ChildEnd::Sigbus { code: 4 });
        assert_eq!(
            ChildEnd::Sigbus { code: 4 }.to_string(),
            "got SIGBUS (BUS_MCEERR_AR) reading its page"
        );
        assert_eq!(
            from_exit(EXIT_MAP + 12),
            ChildEnd::NoPage(nix::errno::Errno::ENOMEM)
        );
        assert_eq!(
            ChildEnd::Refused(nix::errno::Errno::EPERM).to_string(),
            "was refused by madvise: Operation not permitted"
        );
    }
}
