//! Measures the time from starting QEMU to the first output of /init, with the defaults of
//! `VmConfig` (TCG, 1 vCPU, 256 MiB) and the cached kernel; see qemu/README.md.
//!
//!     cargo run --release -p rasdrill-qemu --example boot_time -- [runs] [--seabios] [--with-crypto-tests] [--gzip]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rasdrill_qemu::cmdline::VmConfig;
use rasdrill_qemu::initramfs::Initramfs;
use rasdrill_qemu::kernel::KernelCache;
use rasdrill_qemu::vm::{Diagnosed, Vm};
use rasdrill_qemu::wait::{wait_until, Deadline};

const MARKER: &str = "RASDRILL-BOOT-MARKER";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let flag = |name: &str| args.iter().any(|a| a == name);
    let kernel = KernelCache::from_env()
        .and_then(|c| c.find(None))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();

    let mut image = Initramfs::with_base_layout();
    image
        .host_file("/bin/busybox", Path::new("/bin/busybox"), Some(0o755))
        .unwrap();
    image
        .file(
            "/init",
            format!("#!/bin/busybox sh\n/bin/busybox echo {MARKER}\n/bin/busybox poweroff -f\n"),
            0o755,
        )
        .unwrap();
    let mut initrd = dir.path().join("initrd.cpio");
    image.write_file(&initrd).unwrap();
    if flag("--gzip") {
        let status = std::process::Command::new("gzip")
            .arg("-9")
            .arg(&initrd)
            .status()
            .unwrap();
        assert!(status.success());
        initrd = PathBuf::from(format!("{}.gz", initrd.display()));
    }

    let mut times = Vec::new();
    for run in 0..runs {
        let mut config = VmConfig::new(&kernel.vmlinux, dir.path().join(format!("run{run}")));
        config.initrd = Some(initrd.clone());
        if flag("--seabios") {
            config.firmware = None;
        }
        if flag("--with-crypto-tests") {
            config.kernel_args.push("cryptomgr.notests=0".into());
        }
        let start = Instant::now();
        let mut vm = Vm::launch(config, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{}", e.explained()));
        let log = vm.paths().console_log;
        let seen = wait_until(
            &Deadline::after(Duration::from_secs(60)),
            Duration::from_millis(2),
            || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|s| s.contains(MARKER))
                    .map(|_| start.elapsed())
            },
        );
        let elapsed = seen.unwrap_or_else(|| panic!("no marker{}", vm.diagnostics()));
        vm.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{}", e.explained()));
        println!("run {run}: {:.3} s", elapsed.as_secs_f64());
        times.push(elapsed);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "median of {runs}: {:.3} s (min {:.3} s)",
        median.as_secs_f64(),
        times[0].as_secs_f64()
    );
}
