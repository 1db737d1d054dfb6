//! Memory poisoning in the guest: the agent finds the page a request names (a free page, a
//! page-cache page, the page it poisoned last), then plans and performs the request with the
//! inject crate's own describer, preflight and executor against its root, as `rasdrill inject
//! --via hwpoison` does on a machine. It logs what happened to the kernel log, so the kmsg
//! collector (and a golden file) shows the page and how a poisoned process ended.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::path::Path;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use rasdrill_inject::guard::Allow;
use rasdrill_inject::hwpoison::{Page, PoisonRequest, PAGE_SHIFT};
use rasdrill_inject::{Payload, Place, Request};

use super::protocol::Reply;
use super::server::{Environment, RequestError};

/// What the agent remembers between poisoning requests.
#[derive(Debug, Default)]
pub struct PoisonState {
    /// The pfn the last `corrupt-pfn` write poisoned, for `UnpoisonLast`.
    last: Option<u64>,
}

/// The prefix of the agent's own kernel log lines: the kmsg collector's default filter keeps
/// lines that say "hwpoison".
const LOG_PREFIX: &str = "rasdrill hwpoison:";

/// The file whose page is the page-cache page (in the guest's root, a tmpfs).
const PAGE_CACHE_FILE: &str = "/rasdrill-page-cache";

/// /proc/kpageflags' KPF_BUDDY (include/uapi/linux/kernel-page-flags.h): the first page of a
/// free block of the buddy allocator.
const KPF_BUDDY: u64 = 1 << 10;
/// /proc/self/pagemap: bit 63 page present, bits 0-54 the pfn (Documentation/admin-guide/mm/pagemap.rst).
const PM_PRESENT: u64 = 1 << 63;
const PM_PFN_MASK: u64 = (1 << 55) - 1;

const PAGE: usize = 1 << PAGE_SHIFT;

/// Performs a poisoning request in the guest; the reply names the pfn when the agent chose it.
pub fn poison(
    env: &Environment,
    state: &mut PoisonState,
    request: &PoisonRequest,
) -> Result<Reply, RequestError> {
    let (concrete, chosen) = match *request {
        PoisonRequest::CorruptPage(page) => {
            let pfn = find(env, page)?;
            log(env, &format!("poisoning {page}, pfn {pfn:#x}"));
            (PoisonRequest::Corrupt { pfn, filter: None }, Some(pfn))
        }
        PoisonRequest::UnpoisonLast => {
            let pfn = state.last.ok_or_else(|| {
                RequestError::NoPage("no page was poisoned through corrupt-pfn yet".into())
            })?;
            log(env, &format!("unpoisoning pfn {pfn:#x}, poisoned last"));
            (PoisonRequest::Unpoison { pfn }, Some(pfn))
        }
        ref other => (other.clone(), None),
    };
    // The guest is throw-away: nothing to guard. Preflight checks its own files.
    let planned = Request {
        payload: Payload::Hwpoison(concrete.clone()),
        place: Place::Machine {
            root: env.root.clone(),
        },
    };
    let allow = Allow {
        uncorrected: true,
        fatal: true,
    };
    let actions = planned.plan(allow)?;
    let outcomes = match env.stand_in() {
        Some(root) => rasdrill_inject::injector::perform_stand_in(root, &actions)?,
        None => rasdrill_inject::perform(&actions)?,
    };
    match concrete {
        PoisonRequest::Corrupt { pfn, .. } => state.last = Some(pfn),
        PoisonRequest::Unpoison { pfn } if state.last == Some(pfn) => state.last = None,
        _ => {}
    }
    let outcomes: Vec<String> = outcomes.iter().map(ToString::to_string).collect();
    for outcome in &outcomes {
        log(env, outcome);
    }
    Ok(Reply::Poisoned {
        pfn: chosen,
        writes: actions.iter().map(ToString::to_string).collect(),
        outcomes,
    })
}

/// The pfn of the page `page` names.
fn find(env: &Environment, page: Page) -> Result<u64, RequestError> {
    let found = match page {
        Page::Free => free_page(&env.path("/proc/kpageflags")),
        Page::PageCache => page_cache_page(&env.path(PAGE_CACHE_FILE)),
    };
    found.map_err(|e| RequestError::NoPage(format!("cannot find {page}: {e}")))
}

/// The highest pfn whose flags say BUDDY: the allocator hands out low pages first, so the top
/// of memory stays free in a guest that only runs the agent.
fn free_page(kpageflags: &Path) -> io::Result<u64> {
    let mut bytes = Vec::new();
    File::open(kpageflags)?.read_to_end(&mut bytes)?;
    bytes
        .chunks_exact(8)
        .enumerate()
        .rev()
        .find(|(_, flags)| {
            u64::from_ne_bytes((*flags).try_into().expect("8 bytes")) & KPF_BUDDY != 0
        })
        .map(|(pfn, _)| pfn as u64)
        .ok_or_else(|| io::Error::other("no page is marked BUDDY in /proc/kpageflags"))
}

/// Writes one page to a new file, maps it to learn the pfn of its page-cache page through
/// /proc/self/pagemap, and unmaps it; the file stays, so the page stays in the page cache.
fn page_cache_page(file: &Path) -> io::Result<u64> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(file)?;
    f.write_all(&[0x5a; PAGE])?;
    let len = NonZeroUsize::new(PAGE).expect("a page is not empty");
    // SAFETY: a new shared read-only mapping of a file only this process writes.
    let addr = unsafe { mmap(None, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED, &f, 0) }?;
    // SAFETY: the mapping is PAGE bytes and readable; the read faults the page in.
    let _ = unsafe { addr.cast::<u8>().as_ptr().read_volatile() };
    let pfn = pfn_of(addr.as_ptr() as usize);
    // SAFETY: unmapping what was mapped above; nothing refers to it any more.
    unsafe { munmap(addr, PAGE) }?;
    pfn
}

/// The pfn of this process's page at `addr` (root reads real pfns).
fn pfn_of(addr: usize) -> io::Result<u64> {
    let mut pagemap = File::open("/proc/self/pagemap")?;
    pagemap.seek(SeekFrom::Start((addr >> PAGE_SHIFT) as u64 * 8))?;
    let mut entry = [0u8; 8];
    pagemap.read_exact(&mut entry)?;
    let entry = u64::from_ne_bytes(entry);
    if entry & PM_PRESENT == 0 || entry & PM_PFN_MASK == 0 {
        return Err(io::Error::other(format!(
            "/proc/self/pagemap gives no pfn for {addr:#x} (entry {entry:#x})"
        )));
    }
    Ok(entry & PM_PFN_MASK)
}

/// One line in the kernel log, best effort: the reply carries the same facts.
fn log(env: &Environment, text: &str) {
    let line = format!("{LOG_PREFIX} {text}\n");
    if let Ok(mut kmsg) = OpenOptions::new().write(true).open(env.kmsg()) {
        let _ = kmsg.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_page_is_the_highest_buddy_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpageflags");
        let flags: Vec<u64> = vec![KPF_BUDDY, 0, KPF_BUDDY | 1, 1 << 5, 0];
        let bytes: Vec<u8> = flags.iter().flat_map(|f| f.to_ne_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(free_page(&path).unwrap(), 2);
        std::fs::write(&path, 0u64.to_ne_bytes()).unwrap();
        assert!(free_page(&path).is_err());
    }
}
