//! Saving a running guest and starting fresh guests from its state.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rasdrill_qemu::vm::{Diagnosed, Vm};

use crate::common::{boot, busybox_image, BOOT_TIMEOUT};

/// A guest that counts the lines it receives on ttyS1 and answers each with the count.
const COUNTER: &str = "exec 3<>/dev/ttyS1\nstty -echo <&3\nn=0\necho ready >&3\nwhile read line <&3; do n=$((n+1)); echo \"got $line $n\" >&3; done";

fn ask(channel: &mut BufReader<UnixStream>, line: &str) -> String {
    channel
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    read_line(channel)
}

fn read_line(channel: &mut BufReader<UnixStream>) -> String {
    let mut reply = String::new();
    channel.read_line(&mut reply).unwrap();
    reply.trim().to_string()
}

fn channel(vm: &mut Vm) -> BufReader<UnixStream> {
    let stream = vm.connect_agent(Duration::from_secs(10)).unwrap();
    stream.set_read_timeout(Some(BOOT_TIMEOUT)).unwrap();
    BufReader::new(stream)
}

#[test]
fn a_restored_guest_carries_on_from_the_saved_state_and_the_saved_guest_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = boot(dir.path(), &busybox_image(COUNTER));
    let mut original = channel(&mut vm);
    assert_eq!(read_line(&mut original), "ready", "{}", vm.diagnostics());
    assert_eq!(ask(&mut original, "a"), "got a 1");

    let saved = vm.save(&dir.path().join("saved"), BOOT_TIMEOUT).unwrap();
    assert!(saved.state.metadata().unwrap().len() > 1 << 20, "{saved:?}");
    // The saved guest was resumed: it goes on counting.
    assert_eq!(ask(&mut original, "b"), "got b 2");
    // Restoring needs nothing from the booted guest's files.
    std::fs::remove_file(dir.path().join("initrd.cpio")).unwrap();

    // Each restored guest starts from the count at the save, not from the original's now.
    for run in ["restored-1", "restored-2"] {
        let mut restored = Vm::restore(&saved, &dir.path().join(run), BOOT_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}", e.explained()));
        let status = restored.qmp().execute("query-status", None).unwrap();
        assert_eq!(status["status"], "running");
        let mut channel = channel(&mut restored);
        assert_eq!(
            ask(&mut channel, "c"),
            "got c 2",
            "{}",
            restored.diagnostics()
        );
        // Its console log is the boot's, kept.
        let console = std::fs::read_to_string(restored.paths().console_log).unwrap();
        assert!(console.contains("Run /init as init process"), "{console}");
        assert_eq!(restored.config().run_dir, dir.path().join(run));
    }
    assert_eq!(ask(&mut original, "d"), "got d 3");
}

#[test]
fn a_damaged_state_is_an_error_with_qemu_s_words_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = boot(dir.path(), &busybox_image(COUNTER));
    let saved = vm.save(&dir.path().join("saved"), BOOT_TIMEOUT).unwrap();
    drop(vm);
    let bytes = std::fs::read(&saved.state).unwrap();
    std::fs::write(&saved.state, &bytes[..bytes.len() / 2]).unwrap();
    let err = Vm::restore(&saved, &dir.path().join("restored"), BOOT_TIMEOUT).unwrap_err();
    // QEMU's words are in the error or in the stderr it carries.
    let message = err.explained();
    assert!(message.contains("load of migration failed"), "{message}");
}
