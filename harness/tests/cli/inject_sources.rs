//! `rasdrill inject --via einj | hwpoison | aer` against trees that reproduce the kernel's files:
//! the exact writes in order, the dry run, and bad input refused with nothing written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{rasdrill, read_fifo, read_in_order, text, writes, Cpu, FakeMachine};

const EINJ: &str = "sys/kernel/debug/apei/einj";
const HWPOISON: &str = "sys/kernel/debug/hwpoison";
const EINJ_FILES: [&str; 8] = [
    "error_type",
    "flags",
    "param1",
    "param2",
    "param3",
    "param4",
    "notrigger",
    "error_inject",
];
/// The System RAM of the trees' proc/iomem (the einj-acpi5 stand-in's).
const IOMEM: &str = "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n\
                     00100000-7ffdffff : System RAM\n7ffe0000-7fffffff : Reserved\n\
                     100000000-27fffffff : System RAM\n";

/// A machine with the einj-acpi5 stand-in's files, modes as the kernel sets them.
fn einj_machine() -> FakeMachine {
    let m = FakeMachine::new(Cpu::Intel);
    let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/trees/einj-acpi5");
    for rel in [
        "proc/iomem",
        "sys/module/einj/refcnt",
        &format!("{EINJ}/available_error_type"),
    ] {
        let mode = if rel.ends_with("available_error_type") {
            0o400
        } else {
            0o444
        };
        m.write(rel, &fs::read_to_string(tree.join(rel)).unwrap(), mode);
    }
    for f in &EINJ_FILES[..7] {
        let content = fs::read_to_string(tree.join(EINJ).join(f)).unwrap();
        m.write(&format!("{EINJ}/{f}"), &content, 0o600);
    }
    m.write(&format!("{EINJ}/error_inject"), "", 0o200);
    m
}

/// A machine with hwpoison-inject's files (mm/hwpoison-inject.c: 0200 triggers, 0600 filters).
fn hwpoison_machine() -> FakeMachine {
    let m = FakeMachine::new(Cpu::Intel);
    m.write("proc/iomem", IOMEM, 0o444);
    for f in ["corrupt-pfn", "unpoison-pfn"] {
        m.write(&format!("{HWPOISON}/{f}"), "", 0o200);
    }
    for (f, v) in [
        ("corrupt-filter-enable", "0\n"),
        ("corrupt-filter-dev-major", "4294967295\n"),
        ("corrupt-filter-dev-minor", "4294967295\n"),
        ("corrupt-filter-flags-mask", "0\n"),
        ("corrupt-filter-flags-value", "0\n"),
        ("corrupt-filter-memcg", "0\n"),
    ] {
        m.write(&format!("{HWPOISON}/{f}"), v, 0o600);
    }
    m
}

/// A machine with the kernel's aer_inject device and one PCI device, 0000:00:1c.0.
fn aer_machine() -> FakeMachine {
    let m = FakeMachine::new(Cpu::Intel);
    m.write("dev/aer_inject", "", 0o600);
    m.write("sys/bus/pci/devices/0000:00:1c.0/vendor", "0x8086\n", 0o444);
    m
}

fn fifo(m: &FakeMachine, rel: &str) {
    let p = m.path(rel);
    fs::remove_file(&p).unwrap();
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Runs `args` expecting exit 2 with `message` in stderr and nothing changed under the root.
fn refused(m: &FakeMachine, args: &[&str], message: &str) {
    let before = m.snapshot();
    let out = m.inject(args).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(message),
        "{args:?}: expected {message:?} in\n{stderr}"
    );
    assert!(text(&out.stdout).is_empty(), "{args:?} printed a plan");
    assert_eq!(m.snapshot(), before, "{args:?} changed the tree");
}

#[test]
fn einj_dry_run_prints_every_write_and_changes_nothing() {
    let m = einj_machine();
    let before = m.snapshot();
    let out = m
        .inject(&[
            "--via",
            "einj",
            "--einj-type",
            "0x8",
            "--addr",
            "0x12345000",
            "--dry-run",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    insta::assert_snapshot!(m.redact(&out), @r"
    write <root>/sys/kernel/debug/apei/einj/error_type 0x8
    write <root>/sys/kernel/debug/apei/einj/flags 0x2
    write <root>/sys/kernel/debug/apei/einj/param1 0x12345000
    write <root>/sys/kernel/debug/apei/einj/param2 0xfffffffffffff000
    write <root>/sys/kernel/debug/apei/einj/param3 0x0
    write <root>/sys/kernel/debug/apei/einj/param4 0x0
    write <root>/sys/kernel/debug/apei/einj/notrigger 0
    write <root>/sys/kernel/debug/apei/einj/error_inject 1
    ");
    assert_eq!(m.snapshot(), before);
}

#[test]
fn einj_writes_every_file_in_order_with_error_inject_last() {
    let m = einj_machine();
    m.fifos(EINJ, &EINJ_FILES);
    let run = m.spawn_inject(&[
        "--via",
        "einj",
        "--einj-type",
        "0x10",
        "--addr",
        "0x12345678",
        "--mask",
        "0xffffffffffffffc0",
        "--allow-uncorrected",
    ]);
    let got = read_in_order(&m, EINJ, &EINJ_FILES);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(
        got,
        writes(&[
            ("error_type", "0x10\n"),
            ("flags", "0x2\n"),
            ("param1", "0x12345678\n"),
            ("param2", "0xffffffffffffffc0\n"),
            ("param3", "0x0\n"),
            ("param4", "0x0\n"),
            ("notrigger", "0\n"),
            ("error_inject", "1\n"),
        ])
    );
    assert_eq!(
        done.stdout,
        "injected EINJ error type 0x10 (Memory Uncorrectable non-fatal)\n"
    );
}

#[test]
fn einj_a_pcie_target_sets_its_flag_and_param4() {
    let m = einj_machine();
    m.fifos(EINJ, &EINJ_FILES);
    let run = m.spawn_inject(&[
        "--via",
        "einj",
        "--einj-type",
        "0x40",
        "--sbdf",
        "00:1c.0",
        "--notrigger",
    ]);
    let got = read_in_order(&m, EINJ, &EINJ_FILES);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(
        got,
        writes(&[
            ("error_type", "0x40\n"),
            ("flags", "0x4\n"),
            ("param1", "0x0\n"),
            ("param2", "0x0\n"),
            ("param3", "0x0\n"),
            ("param4", "0xe000\n"),
            ("notrigger", "1\n"),
            ("error_inject", "1\n"),
        ])
    );
}

#[test]
fn einj_bad_input_is_refused_before_any_write() {
    let m = einj_machine();
    let mem = |t: &'static str| -> Vec<&'static str> {
        vec!["--via", "einj", "--einj-type", t, "--addr", "0x12345000"]
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--via", "einj", "--einj-type", "0x200"],
            "EINJ error type 0x200 (Platform Correctable): this firmware does not \
             offer it; available_error_type lists 0x2 (Processor Uncorrectable non-fatal), 0x8 \
             (Memory Correctable), 0x10 (Memory Uncorrectable non-fatal), 0x20 (Memory \
             Uncorrectable fatal), 0x40 (PCI Express Correctable)",
        ),
        (mem("0x18"), "it sets several types"),
        (
            mem("0x10"),
            "EINJ error type 0x10 (Memory Uncorrectable non-fatal): on this machine that can \
             kill processes, offline memory or panic the kernel; pass --allow-uncorrected",
        ),
        (
            [mem("0x20"), vec!["--allow-uncorrected"]].concat(),
            "pass --allow-fatal",
        ),
        (
            [mem("0x8"), vec!["--mask", "0xffffffffffff0fff"]].concat(),
            "EINJ mask 0xffffffffffff0fff: the kernel refuses a memory injection whose mask \
             lacks page-mask bits",
        ),
        (
            vec!["--via", "einj", "--einj-type", "0x8"],
            "a memory error needs a physical address (--addr)",
        ),
        (
            vec![
                "--via",
                "einj",
                "--einj-type",
                "0x8",
                "--addr",
                "0x7fff0000",
            ],
            "EINJ address 0x7fff0000: it is not in memory",
        ),
        (vec!["--via", "einj"], "--via einj needs --einj-type"),
        (
            [mem("0x8"), vec!["--bank", "4"]].concat(),
            "--bank describes an MCE record, which --via einj does not take",
        ),
        (
            vec![
                "--einj-type",
                "0x8",
                "--bank",
                "4",
                "--status",
                "0x8000000000000000",
            ],
            "--einj-type is for --via einj",
        ),
    ];
    for (args, message) in cases {
        refused(&m, &args, message);
    }
}

/// The planner refuses a method that cannot reach a guest before anything boots.
#[test]
fn sources_a_guest_cannot_take_are_refused_before_it_boots() {
    let cases: [(&[&str], &str); 1] = [(
        &[
            "--via",
            "einj",
            "--einj-type",
            "0x8",
            "--addr",
            "0x12345000",
        ],
        "via einj cannot inject into a QEMU guest: QEMU's x86 machines have no ACPI EINJ table",
    )];
    for (args, message) in cases {
        let out = rasdrill()
            .args(["inject", "--guest"])
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn einj_missing_is_explained() {
    let m = einj_machine();
    m.remove(EINJ);
    m.remove("sys/module/einj");
    refused(
        &m,
        &["--via", "einj", "--einj-type", "0x2", "--allow-uncorrected"],
        "ACPI EINJ's debugfs directory is missing",
    );
}

#[test]
fn hwpoison_corrupt_pfn_disables_a_kept_filter_then_writes_the_pfn() {
    let m = hwpoison_machine();
    let files = ["corrupt-filter-enable", "corrupt-pfn"];
    m.fifos(HWPOISON, &files);
    let run = m.spawn_inject(&[
        "--via",
        "hwpoison",
        "--pfn",
        "0x12345",
        "--allow-uncorrected",
    ]);
    let got = read_in_order(&m, HWPOISON, &files);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(
        got,
        writes(&[
            ("corrupt-filter-enable", "0\n"),
            ("corrupt-pfn", "0x12345\n")
        ])
    );
    assert_eq!(done.stdout, "done: poisoning pfn 0x12345\n");
}

#[test]
fn hwpoison_filters_are_written_before_they_are_enabled() {
    let m = hwpoison_machine();
    let out = m
        .inject(&[
            "--via",
            "hwpoison",
            "--pfn",
            "0x12345",
            "--filter-flags",
            "0x20:0x20",
            "--dry-run",
        ])
        .output()
        .unwrap();
    // The dry run prints the plan and says the real run would be refused (no --allow-*).
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    insta::assert_snapshot!(m.redact(&out.stdout), @r"
    write <root>/sys/kernel/debug/hwpoison/corrupt-filter-dev-major 4294967295
    write <root>/sys/kernel/debug/hwpoison/corrupt-filter-dev-minor 4294967295
    write <root>/sys/kernel/debug/hwpoison/corrupt-filter-flags-mask 0x20
    write <root>/sys/kernel/debug/hwpoison/corrupt-filter-flags-value 0x20
    write <root>/sys/kernel/debug/hwpoison/corrupt-filter-enable 1
    write <root>/sys/kernel/debug/hwpoison/corrupt-pfn 0x12345
    ");
    assert!(text(&out.stderr).contains(
        "poisoning pfn 0x12345 takes memory away from the machine: on this machine that can \
         kill processes, offline memory or panic the kernel; pass --allow-uncorrected to inject \
         it anyway (dry run: the real run would be refused)"
    ));
}

#[test]
fn hwpoison_unpoison_needs_no_allow() {
    let m = hwpoison_machine();
    m.fifos(HWPOISON, &["unpoison-pfn"]);
    let run = m.spawn_inject(&["--via", "hwpoison", "--pfn", "0x12345", "--unpoison"]);
    let got = read_in_order(&m, HWPOISON, &["unpoison-pfn"]);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(got, writes(&[("unpoison-pfn", "0x12345\n")]));
}

#[test]
fn hwpoison_bad_input_is_refused_before_any_write() {
    let m = hwpoison_machine();
    let allow = "--allow-uncorrected";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--via", "hwpoison", "--pfn", "0x12345"],
            "pass --allow-uncorrected",
        ),
        (
            vec!["--via", "hwpoison", "--pfn", "0x90000", allow],
            "physical address 0x90000000: it is not in memory",
        ),
        (
            vec!["--via", "hwpoison", "--pfn", "0x10000000000000", allow],
            "page frame number 0x10000000000000: it is past the end",
        ),
        (
            vec!["--via", "hwpoison", allow],
            "--via hwpoison needs exactly one of --pfn",
        ),
        (
            vec![
                "--via",
                "hwpoison",
                "--pfn",
                "1",
                "--madvise",
                "hwpoison",
                allow,
            ],
            "--via hwpoison needs exactly one of --pfn",
        ),
        (
            vec![
                "--via", "hwpoison", "--pfn", "0x12345", "--addr", "0x1000", allow,
            ],
            "--addr is for --offline",
        ),
        (
            vec![
                "--via",
                "hwpoison",
                "--pfn",
                "0x12345",
                "--unpoison",
                "--filter-memcg",
                "3",
            ],
            "unpoison-pfn has no filter",
        ),
        (
            vec!["--via", "hwpoison", "--madvise", "hwpoison", allow],
            "via hwpoison cannot inject into a tree under --root: madvise poisons a page of a \
             real process's memory",
        ),
        (
            vec!["--via", "debugfs", "--pfn", "0x12345"],
            "--pfn is for --via hwpoison",
        ),
        (
            vec!["--via", "hwpoison", "--page", "free", allow],
            "via hwpoison cannot inject into this machine: the page is one rasdrill's agent \
             finds inside a guest",
        ),
        (
            vec!["--via", "hwpoison", "--unpoison"],
            "via hwpoison cannot inject into this machine: the page is one rasdrill's agent",
        ),
    ];
    for (args, message) in cases {
        refused(&m, &args, message);
    }
    m.remove(HWPOISON);
    refused(
        &m,
        &["--via", "hwpoison", "--pfn", "0x12345", allow],
        "hwpoison-inject's debugfs directory is missing",
    );
}

#[test]
fn aer_writes_the_kernels_struct_in_one_write() {
    let m = aer_machine();
    fifo(&m, "dev/aer_inject");
    let run = m.spawn_inject(&[
        "--via",
        "aer",
        "--sbdf",
        "0000:00:1c.0",
        "--aer-error",
        "RCVR",
        "--aer-error",
        "BAD_TLP",
    ]);
    let got = read_fifo(&m.path("dev/aer_inject")).unwrap();
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let mut want = vec![0x00, 0x1c, 0x0, 0];
    for word in [0u32, 0x41, 0, 0, 0, 0, 0] {
        want.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(got, want);
    assert_eq!(
        done.stdout,
        "injected AER status into 0000:00:1c.0 through the kernel's aer_inject\n"
    );
}

#[test]
fn aer_dry_run_names_the_structs_fields() {
    let m = aer_machine();
    let out = m
        .inject(&[
            "--via",
            "aer",
            "--sbdf",
            "00:1c.0",
            "--aer-error",
            "POISON_TLP",
            "--tlp-header",
            "0x40000001,0x100000f,0xfee00000,0x0",
            "--allow-uncorrected",
            "--dry-run",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    insta::assert_snapshot!(m.redact(&out), @"write <root>/dev/aer_inject aer_error_inj{domain 0x0, bus 0x0, dev 0x1c, fn 0x0, uncor_status 0x00001000, cor_status 0x00000000, header_log 0x40000001 0x100000f 0xfee00000 0x0} (32 bytes)");
}

#[test]
fn aer_bad_input_is_refused_before_any_write() {
    let m = aer_machine();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--via", "aer", "--sbdf", "00:1c.0", "--aer-error", "DLP"],
            "an uncorrectable AER error on 0000:00:1c.0: on this machine that can kill \
             processes, offline memory or panic the kernel; pass --allow-fatal",
        ),
        (
            vec!["--via", "aer", "--sbdf", "00:1c.0", "--aer-error", "UNSUP"],
            "pass --allow-uncorrected",
        ),
        (
            vec!["--via", "aer", "--sbdf", "00:1d.0", "--aer-error", "RCVR"],
            "PCI device 0000:00:1d.0 is missing",
        ),
        (
            vec!["--via", "aer", "--sbdf", "00:1c.0", "--aer-error", "FOO"],
            "AER error `FOO`: expected a name",
        ),
        (
            vec!["--via", "aer", "--aer-error", "RCVR"],
            "--via aer needs the device",
        ),
        (
            vec!["--via", "aer", "--qdev", "rp0", "--aer-error", "RCVR"],
            "via aer cannot inject into this machine: a QEMU device id names a device of a guest",
        ),
        (
            vec!["--via", "aer", "--sbdf", "00:1c.0"],
            "--via aer needs --aer-error",
        ),
        (
            vec![
                "--via",
                "aer",
                "--qdev",
                "rp0",
                "--aer-error",
                "RCVR",
                "--aer-error",
                "BAD_TLP",
                "--guest",
            ],
            "QEMU's pcie_aer_inject_error takes one error",
        ),
        (
            vec!["--via", "einj", "--einj-type", "0x8", "--aer-error", "RCVR"],
            "--aer-error is for --via aer",
        ),
    ];
    for (args, message) in cases {
        refused(&m, &args, message);
    }
    m.remove("dev/aer_inject");
    refused(
        &m,
        &["--via", "aer", "--sbdf", "00:1c.0", "--aer-error", "RCVR"],
        "the kernel's AER injector is missing",
    );
}

#[test]
fn a_dev_node_without_write_permission_is_refused() {
    let m = aer_machine();
    fs::set_permissions(m.path("dev/aer_inject"), fs::Permissions::from_mode(0o400)).unwrap();
    refused(
        &m,
        &["--via", "aer", "--sbdf", "00:1c.0", "--aer-error", "RCVR"],
        "without write permission",
    );
}
