//! The kernel cache as `rasdrill kernel fetch` leaves it.

use rasdrill_qemu::kernel::{extract_vmlinux, FetchEvent, KernelCache};
use rasdrill_qemu::modules::ModuleIndex;

use crate::common::cached_kernel;

#[test]
fn the_cached_kernel_is_complete() {
    let kernel = cached_kernel();
    let vmlinux = std::fs::read(&kernel.vmlinux).unwrap();
    assert!(vmlinux.starts_with(b"\x7fELF"));
    // The vmlinux is exactly what the bzImage next to it holds.
    let vmlinuz = std::fs::read(kernel.vmlinux.with_file_name("vmlinuz")).unwrap();
    assert!(
        extract_vmlinux(&vmlinuz).unwrap() == vmlinux,
        "vmlinux differs from the bzImage's payload"
    );
    // modules.dep is there (the .deb has none) and knows the modules rasdrill loads.
    assert!(kernel.modules_dir.join("modules.dep").is_file());
    let index = ModuleIndex::from_modules_dep(&kernel.modules_dir).unwrap();
    let order = index
        .load_order(&[
            "mce-inject",
            "edac_mce_amd",
            "einj",
            "hwpoison-inject",
            "amd64_edac",
        ])
        .unwrap();
    let names: Vec<_> = order.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "mce_inject",
            "edac_mce_amd",
            "einj",
            "hwpoison_inject",
            "amd64_edac"
        ]
    );
}

#[test]
fn fetch_resolves_debians_kernel_and_reuses_the_cache() {
    let cache = KernelCache::from_env().unwrap();
    let before = cached_kernel();
    let mut events = Vec::new();
    let fetched = cache
        .fetch(Some(&before.release), &mut |e| events.push(e))
        .unwrap();
    assert_eq!(fetched, before);
    let FetchEvent::Resolved { package, release } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(package, &format!("linux-image-{}-unsigned", before.release));
    assert_eq!(release, &before.release);
    assert!(
        matches!(&events[1], FetchEvent::AlreadyCached { .. }),
        "{events:?}"
    );
    assert_eq!(events.len(), 2, "{events:?}");
}
