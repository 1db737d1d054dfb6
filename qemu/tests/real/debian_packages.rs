//! Debian packages as the rasdaemon collector fetches them: real apt, the real archive (network).

use std::fs;

use rasdrill_qemu::debian::{FetchEvent, PackageCache};

/// Real apt, real archive: downloads a small package once, then finds it cached.
#[test]
fn fetch_downloads_unpacks_and_then_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(dir.path());
    let mut events = Vec::new();
    let packages = cache
        .fetch(&["libsqlite3-0"], &mut |e| events.push(e))
        .unwrap();
    let lib = packages[0]
        .root
        .join("usr/lib/x86_64-linux-gnu/libsqlite3.so.0");
    assert!(lib.exists(), "{events:?}");
    assert!(
        matches!(
            &events[..],
            [
                FetchEvent::Downloading { .. },
                FetchEvent::Downloaded { .. },
                FetchEvent::Unpacked { .. }
            ]
        ),
        "{events:?}"
    );
    // Nothing is left behind in the work directory.
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

    let mut again = Vec::new();
    assert_eq!(
        cache
            .fetch(&["libsqlite3-0"], &mut |e| again.push(e))
            .unwrap(),
        packages
    );
    assert!(
        matches!(&again[..], [FetchEvent::AllCached { .. }]),
        "{again:?}"
    );
}
