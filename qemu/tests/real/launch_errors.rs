//! What a user sees when QEMU is missing or refuses its command line.

use std::time::Duration;

use rasdrill_qemu::cmdline::VmConfig;
use rasdrill_qemu::process::ProcessError;
use rasdrill_qemu::vm::{Vm, VmError};

#[test]
fn a_missing_qemu_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = VmConfig::new("/nonexistent/vmlinux", dir.path().join("run"));
    config.qemu = "qemu-system-x86_64-not-installed".into();
    let err = Vm::launch(config, Duration::from_secs(10)).unwrap_err();
    assert!(
        matches!(err, VmError::Spawn(ProcessError::NotFound { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "qemu-system-x86_64-not-installed not found: install qemu-system-x86 (apt-get install qemu-system-x86) or set RASDRILL_QEMU"
    );
}

#[test]
fn qemu_refusing_its_arguments_fails_fast_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinux");
    std::fs::write(&kernel, b"not a kernel").unwrap();
    let mut config = VmConfig::new(&kernel, dir.path().join("run"));
    config.qemu = "qemu-system-x86_64".into();
    config.cpu = "no-such-cpu-model".into();
    let err = Vm::launch(config, Duration::from_secs(60)).unwrap_err();
    let VmError::Process {
        source: ProcessError::Exited {
            status, elapsed, ..
        },
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(status.code(), Some(1));
    assert!(*elapsed < Duration::from_secs(30), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("qemu-system-x86_64 exited after "),
        "{message}"
    );
    assert!(
        message.contains("unable to find CPU model 'no-such-cpu-model'"),
        "{message}"
    );
}
