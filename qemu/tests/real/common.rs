//! Helpers shared by the real-QEMU tests.

use std::path::Path;
use std::time::Duration;

use rasdrill_qemu::cmdline::VmConfig;
use rasdrill_qemu::initramfs::Initramfs;
use rasdrill_qemu::kernel::{Kernel, KernelCache};
use rasdrill_qemu::vm::{Diagnosed, Vm};
use rasdrill_qemu::wait::{wait_until, Deadline};

/// Generous for TCG on a loaded 2-core machine; a healthy boot takes about 2 s.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The newest cached kernel; a clear failure (not a skip) when there is none.
pub fn cached_kernel() -> Kernel {
    let cache = KernelCache::from_env().expect("a cache directory");
    cache
        .find(None)
        .unwrap_or_else(|e| panic!("these tests boot the cached Debian kernel: {e}"))
}

/// An initramfs whose /init is `script`, run by the static busybox at /bin/busybox, with
/// /dev/ttyS1 for the agent channel.
pub fn busybox_image(script: &str) -> Initramfs {
    let mut image = Initramfs::with_base_layout();
    image
        .host_file("/bin/busybox", Path::new("/bin/busybox"), Some(0o755))
        .unwrap();
    image.symlink("/bin/sh", "busybox").unwrap();
    image.char_device("/dev/ttyS1", 0o600, 4, 65).unwrap();
    image.file("/init", busybox_init(script), 0o755).unwrap();
    image
}

/// The `/init` of [`busybox_image`]: busybox installs its applets, then runs `script`.
pub fn busybox_init(script: &str) -> String {
    format!("#!/bin/busybox sh\nexport PATH=/bin\n/bin/busybox --install -s /bin\n{script}\n")
}

/// Writes `image` into `dir`, then boots the cached kernel with it under TCG.
pub fn boot(dir: &Path, image: &Initramfs) -> Vm {
    boot_with(dir, image, |_| {})
}

/// Like [`boot`], after `edit` has adjusted the default config.
pub fn boot_with(dir: &Path, image: &Initramfs, edit: impl FnOnce(&mut VmConfig)) -> Vm {
    let initrd = dir.join("initrd.cpio");
    image.write_file(&initrd).unwrap();
    let mut config = VmConfig::new(cached_kernel().vmlinux, dir.join("run"));
    config.initrd = Some(initrd);
    edit(&mut config);
    Vm::launch(config, BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{}", e.explained()))
}

/// Waits until the console log contains `text`; panics with the diagnostics otherwise.
pub fn wait_for_console(vm: &Vm, text: &str, timeout: Duration) {
    let deadline = Deadline::after(timeout);
    let log = vm.paths().console_log;
    let found = wait_until(&deadline, Duration::from_millis(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|s| s.contains(text))
            .map(|_| ())
    });
    if found.is_none() {
        panic!(
            "{text:?} not on the console within {timeout:?}{}",
            vm.diagnostics()
        );
    }
}

/// True while `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
