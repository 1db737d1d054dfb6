//! Booting the cached Debian kernel with a busybox initramfs.

use std::io::{Read, Write};
use std::time::Duration;

use rasdrill_qemu::initramfs::GuestModule;
use rasdrill_qemu::modules::ModuleIndex;
use rasdrill_qemu::wait::Deadline;

use crate::common::{
    alive, boot, boot_with, busybox_image, busybox_init, cached_kernel, wait_for_console,
    BOOT_TIMEOUT,
};

#[test]
fn a_guest_boots_prints_and_powers_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = boot(
        dir.path(),
        &busybox_image("echo RASDRILL-MARKER-7f3a\npoweroff -f"),
    );
    let status = vm.qmp().execute("query-status", None).unwrap();
    assert_eq!(status["status"], "running");
    let version = vm.qmp().human_monitor_command("info version").unwrap();
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version:?}"
    );
    wait_for_console(&vm, "RASDRILL-MARKER-7f3a", BOOT_TIMEOUT);
    let shutdown = vm
        .qmp()
        .wait_event("SHUTDOWN", Duration::from_secs(30))
        .unwrap();
    assert_eq!(shutdown.data["reason"], "guest-shutdown");
    let status = vm.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    let console = std::fs::read_to_string(vm.paths().console_log).unwrap();
    assert!(console.contains("Run /init as init process"), "{console}");
}

#[test]
fn a_guest_panic_ends_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = boot(
        dir.path(),
        &busybox_image("mount -t proc proc /proc\necho c > /proc/sysrq-trigger"),
    );
    // panic=-1 reboots at once; -no-reboot turns the reboot into a shutdown.
    let shutdown = vm.qmp().wait_event("SHUTDOWN", BOOT_TIMEOUT).unwrap();
    assert_eq!(shutdown.data["reason"], "guest-reset");
    vm.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(vm
        .console_tail(100)
        .contains("Kernel panic - not syncing: sysrq triggered crash"));
}

#[test]
fn the_agent_channel_carries_bytes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    // Keep ttyS1 open throughout: opening it resets the UART and drops what was received.
    let script = "exec 3<>/dev/ttyS1\necho hello-from-guest >&3\nread line <&3\necho \"pong $line\" >&3\nsleep 1\npoweroff -f";
    let mut vm = boot(dir.path(), &busybox_image(script));
    let mut agent = vm.connect_agent(Duration::from_secs(10)).unwrap();
    agent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut seen = String::new();
    let read_until = |agent: &mut std::os::unix::net::UnixStream, text: &str, seen: &mut String| {
        let deadline = Deadline::after(BOOT_TIMEOUT);
        let mut buf = [0u8; 256];
        while !seen.contains(text) {
            assert!(
                !deadline.expired(),
                "{text:?} not received; got {seen:?}{}",
                vm.diagnostics()
            );
            match agent.read(&mut buf) {
                Ok(0) => panic!("agent socket closed; got {seen:?}"),
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    read_until(&mut agent, "hello-from-guest", &mut seen);
    agent.write_all(b"ping\n").unwrap();
    read_until(&mut agent, "pong ping", &mut seen);
    vm.wait_exit(BOOT_TIMEOUT).unwrap();
}

#[test]
fn modules_load_in_dependency_order() {
    let kernel = cached_kernel();
    let index = ModuleIndex::load(&kernel.modules_dir).unwrap();
    let mut image = busybox_image("");
    let modules = image.modules(&index, &["vfat", "mce-inject"]).unwrap();
    let names: Vec<_> = modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["fat", "vfat", "mce_inject"]);
    let insmods: String = modules
        .iter()
        .map(|GuestModule { path, .. }| {
            format!(
                "insmod {} || echo INSMOD-FAILED {}\n",
                path.display(),
                path.display()
            )
        })
        .collect();
    let script = format!(
        "mount -t sysfs sys /sys\n{insmods}[ -d /sys/module/vfat ] && [ -d /sys/module/mce_inject ] && echo MODULES-LOADED\npoweroff -f"
    );
    image.file("/init", busybox_init(&script), 0o755).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut vm = boot(dir.path(), &image);
    vm.wait_exit(BOOT_TIMEOUT).unwrap();
    let console = vm.console_tail(200);
    assert!(!console.contains("INSMOD-FAILED"), "{console}");
    assert!(console.contains("MODULES-LOADED"), "{console}");
}

#[test]
fn dropping_the_vm_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = boot(dir.path(), &busybox_image("sleep 600"));
    let pid = vm.process().pid();
    assert!(alive(pid));
    drop(vm);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} is still in /proc"
    );
}

#[test]
fn two_vcpus_come_up() {
    // noapictimer leaves the secondary CPU's tick to the broadcast timer: check it still runs.
    let dir = tempfile::tempdir().unwrap();
    let script = "mount -t sysfs sys /sys\necho \"online=$(cat /sys/devices/system/cpu/online)\"\npoweroff -f";
    let mut vm = boot_with(dir.path(), &busybox_image(script), |config| {
        config.vcpus = 2
    });
    vm.wait_exit(BOOT_TIMEOUT).unwrap();
    assert!(
        vm.console_tail(100).contains("online=0-1"),
        "{}",
        vm.console_tail(100)
    );
}
