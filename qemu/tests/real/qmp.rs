//! The QMP client against a real QEMU with no guest code running (`-S`): no kernel needed.

use std::path::Path;
use std::time::Duration;

use rasdrill_qemu::process::QemuProcess;
use rasdrill_qemu::qmp::{Qmp, QmpError};
use serde_json::json;

fn paused_qemu(dir: &Path) -> (QemuProcess, Qmp) {
    let socket = dir.join("qmp.sock");
    let args: Vec<String> = [
        "-S",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-cpu",
        "qemu64,-hypervisor",
        "-chardev",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!(
        "socket,id=qmp,path={},server=on,wait=off",
        socket.display()
    )])
    .chain(["-mon".to_string(), "chardev=qmp,mode=control".to_string()])
    .collect();
    let process = QemuProcess::spawn(Path::new("qemu-system-x86_64"), &args).unwrap();
    let qmp = Qmp::connect(&socket, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", process.stderr_tail()));
    (process, qmp)
}

#[test]
fn greeting_status_and_hmp_text() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut qmp) = paused_qemu(dir.path());
    let version = &qmp.greeting()["QMP"]["version"]["qemu"];
    let version = format!(
        "{}.{}.{}",
        version["major"], version["minor"], version["micro"]
    );
    let status = qmp.execute("query-status", None).unwrap();
    assert_eq!(status["status"], "prelaunch");
    assert_eq!(status["running"], false);
    let text = qmp.human_monitor_command("info version").unwrap();
    assert!(text.starts_with(&version), "{text:?} vs greeting {version}");
    // HMP errors come back as text in a successful reply (docs/kernel-interfaces.md, "QEMU's mce
    // monitor command and QMP").
    let text = qmp
        .human_monitor_command("mce 0 12 0x9000000000000000 0 0 0")
        .unwrap();
    assert_eq!(text.trim(), "Invalid MCE bank number");
}

#[test]
fn command_errors_carry_class_and_description() {
    let dir = tempfile::tempdir().unwrap();
    let (_process, mut qmp) = paused_qemu(dir.path());
    let err = qmp.execute("no-such-command", None).unwrap_err();
    let QmpError::Command { class, desc, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(class, "CommandNotFound");
    assert_eq!(desc, "The command no-such-command has not been found");
    assert!(
        err.to_string()
            .starts_with("QMP `no-such-command` failed after 0.0"),
        "{err}"
    );
    // The connection stays usable after an error.
    assert_eq!(
        qmp.execute("query-status", Some(json!({}))).unwrap()["status"],
        "prelaunch"
    );
}

#[test]
fn events_are_buffered_until_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (mut process, mut qmp) = paused_qemu(dir.path());
    qmp.execute("cont", None).unwrap();
    qmp.execute("stop", None).unwrap();
    qmp.execute("system_reset", None).unwrap();
    // RESUME and STOP arrived during the commands; waiting for RESET leaves them buffered.
    let reset = qmp.wait_event("RESET", Duration::from_secs(10)).unwrap();
    assert_eq!(reset.data["reason"], "host-qmp-system-reset");
    assert!(reset.timestamp_us.is_some());
    let names: Vec<_> = qmp
        .take_events()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["RESUME", "STOP"]);
    // quit: QEMU says SHUTDOWN, then closes the socket and exits.
    let _ = qmp.execute("quit", None);
    let shutdown = qmp.wait_event("SHUTDOWN", Duration::from_secs(10)).unwrap();
    assert_eq!(shutdown.data["reason"], "host-qmp-quit");
    let status = process
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("QEMU exits after quit");
    assert!(status.success());
    let err = qmp.execute("query-status", None).unwrap_err();
    assert!(
        matches!(err, QmpError::Closed { .. } | QmpError::Io { .. }),
        "{err}"
    );
}
