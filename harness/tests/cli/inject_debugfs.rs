//! `rasdrill inject` through mce-inject's debugfs files: the plan, the real writes in the
//! kernel's order, and validation that changes nothing.

use std::fs;

use crate::support::{
    read_in_order, writes, Cpu, FakeMachine, LOCK, MCE_INJECT, MCE_INJECT_ORDER as ORDER,
};

const DRAM_CE: [&str; 8] = [
    "--cpu",
    "1",
    "--bank",
    "4",
    "--status",
    "0x9c7d410092080813",
    "--addr",
    "0x12345000",
];

#[test]
fn dry_run_prints_one_line_per_write_in_order_and_changes_nothing() {
    let m = FakeMachine::new(Cpu::Amd);
    let before = m.snapshot();
    let mut args = DRAM_CE.to_vec();
    args.push("--dry-run");
    let out = m
        .inject(&args)
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    insta::assert_snapshot!(m.redact(&out), @r"
    write <root>/sys/kernel/debug/mce-inject/flags sw
    write <root>/sys/kernel/debug/mce-inject/cpu 1
    write <root>/sys/kernel/debug/mce-inject/status 0x9c7d410092080813
    write <root>/sys/kernel/debug/mce-inject/addr 0x12345000
    write <root>/sys/kernel/debug/mce-inject/misc 0x0
    write <root>/sys/kernel/debug/mce-inject/synd 0x0
    write <root>/sys/kernel/debug/mce-inject/ipid 0x0
    write <root>/sys/kernel/debug/mce-inject/bank 4
    ");
    assert_eq!(m.snapshot(), before);
}

#[test]
fn the_real_run_writes_every_file_once_in_the_kernels_order() {
    let m = FakeMachine::new(Cpu::Amd);
    m.fifos(MCE_INJECT, &ORDER);
    let run = m.spawn_inject(
        &[
            &DRAM_CE[..],
            &[
                "--misc",
                "0xd01a",
                "--synd",
                "0x5",
                "--ipid",
                "0xb000000000",
            ],
        ]
        .concat(),
    );
    let got = read_in_order(&m, MCE_INJECT, &ORDER);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    // ADDR and MISC set ADDRV and MISCV (already set in this status); each value ends in a newline.
    assert_eq!(
        got,
        writes(&[
            ("flags", "sw\n"),
            ("cpu", "1\n"),
            ("status", "0x9c7d410092080813\n"),
            ("addr", "0x12345000\n"),
            ("misc", "0xd01a\n"),
            ("synd", "0x5\n"),
            ("ipid", "0xb000000000\n"),
            ("bank", "4\n"),
        ])
    );
    assert_eq!(
        done.stdout,
        "injected record 1: cpu 1 bank 4 status 0x9c7d410092080813 (corrected) through mce-inject (sw)\n"
    );
}

#[test]
fn records_of_a_file_are_injected_one_after_another() {
    let m = FakeMachine::new(Cpu::Amd);
    m.fifos(MCE_INJECT, &ORDER);
    let input = m.path("two.mce");
    fs::write(
        &input,
        "CPU 0 BANK 4 STATUS CORRECTED ADDR 0x1000   # ADDR after STATUS keeps ADDRV\n\
         CPU 3 BANK 9 ADDR 0x2000 STATUS VAL EN 0x0813 # ADDR before STATUS loses it\n",
    )
    .unwrap();
    let run = m.spawn_inject(&["--file", input.to_str().unwrap(), "--flags", "hw"]);
    let got = read_in_order(&m, MCE_INJECT, &[ORDER, ORDER].concat());
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(
        got,
        writes(&[
            ("flags", "hw\n"),
            ("cpu", "0\n"),
            ("status", "0x9400000000000000\n"),
            ("addr", "0x1000\n"),
            ("misc", "0x0\n"),
            ("synd", "0x0\n"),
            ("ipid", "0x0\n"),
            ("bank", "4\n"),
            ("flags", "hw\n"),
            ("cpu", "3\n"),
            ("status", "0x9000000000000813\n"),
            ("addr", "0x2000\n"),
            ("misc", "0x0\n"),
            ("synd", "0x0\n"),
            ("ipid", "0x0\n"),
            ("bank", "9\n"),
        ])
    );
    assert_eq!(done.stdout.lines().count(), 2, "{}", done.stdout);
}

#[test]
fn the_real_run_leaves_the_last_values_in_regular_files() {
    // The same tree without FIFOs: what an observer of plain files sees afterwards.
    let m = FakeMachine::new(Cpu::Intel);
    m.inject(&["--cpu", "2", "--bank", "0", "--status", "VAL EN 0x0005"])
        .assert()
        .success();
    for (f, v) in [
        ("flags", "sw\n"),
        ("cpu", "2\n"),
        ("status", "0x9000000000000005\n"),
        ("addr", "0x0\n"),
        ("misc", "0x0\n"),
        ("synd", "0x0\n"),
        ("ipid", "0x0\n"),
        ("bank", "0\n"),
    ] {
        assert_eq!(m.read(&format!("{MCE_INJECT}/{f}")), v, "{f}");
    }
    assert!(
        m.path(LOCK).exists(),
        "the lock file is created by a real run"
    );
}

/// Each case breaks one thing; rasdrill must exit 2 with that sentence and write nothing.
#[test]
fn validation_failures_change_nothing() {
    struct Case {
        name: &'static str,
        cpu: Cpu,
        setup: fn(&FakeMachine),
        args: &'static [&'static str],
        error: &'static str,
    }
    let ce = &[
        "--cpu",
        "1",
        "--bank",
        "4",
        "--status",
        "0x9c7d410092080813",
    ];
    let cases = [
        Case {
            name: "offline cpu",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--cpu", "7", "--bank", "4", "--status", "0x9c7d410092080813"],
            error: "cpu 7 is not online: online CPUs are 0-3 (from <root>/sys/devices/system/cpu/online)",
        },
        Case {
            name: "cpu list with a hole",
            cpu: Cpu::Amd,
            setup: |m| m.write("sys/devices/system/cpu/online", "0,2-3\n", 0o444),
            args: ce,
            error: "cpu 1 is not online: online CPUs are 0,2-3",
        },
        Case {
            name: "missing bank",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--cpu", "1", "--bank", "12", "--status", "0x9c7d410092080813"],
            error: "bank 12 does not exist on cpu 1: its banks are 0-9 (from <root>/sys/devices/system/machinecheck/machinecheck1)",
        },
        Case {
            name: "VAL clear",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--bank", "4", "--status", "0x1c7d410092080813"],
            error: "status 0x1c7d410092080813 has VAL (bit 63) clear: the kernel ignores an invalid record; set VAL, e.g. 0x9c7d410092080813",
        },
        Case {
            name: "hw on Intel",
            cpu: Cpu::Intel,
            setup: |_| {},
            args: &["--bank", "4", "--status", "0x9c7d410092080813", "--flags", "hw"],
            error: "flags hw needs an AMD CPU (the kernel writes AMD's bank MSRs), but this one is GenuineIntel; use flags sw, which only decodes",
        },
        Case {
            name: "module not loaded",
            cpu: Cpu::Amd,
            setup: |m| m.unload_mce_inject(),
            args: ce,
            error: "mce-inject's debugfs directory is missing (<root>/sys/kernel/debug/mce-inject does not exist): run `modprobe mce-inject`",
        },
        Case {
            name: "debugfs not mounted",
            cpu: Cpu::Amd,
            setup: |m| m.unmount_debugfs(),
            args: ce,
            error: "mce-inject's debugfs directory is missing (<root>/sys/kernel/debug/mce-inject does not exist): run `mount -t debugfs none /sys/kernel/debug`",
        },
        Case {
            name: "neither",
            cpu: Cpu::Amd,
            setup: |m| {
                m.unmount_debugfs();
                m.remove("sys/module/mce_inject");
            },
            args: ce,
            error: "run `mount -t debugfs none /sys/kernel/debug` and `modprobe mce-inject`",
        },
        Case {
            name: "a file of the interface missing",
            cpu: Cpu::Amd,
            setup: |m| m.remove(&format!("{MCE_INJECT}/ipid")),
            args: ce,
            error: "mce-inject's `ipid` file is missing (<root>/sys/kernel/debug/mce-inject/ipid does not exist)",
        },
        Case {
            name: "not writable",
            cpu: Cpu::Amd,
            setup: |m| m.chmod(&format!("{MCE_INJECT}/status"), 0o444),
            args: ce,
            error: "cannot write <root>/sys/kernel/debug/mce-inject/status: its mode is 0444, without write permission",
        },
        Case {
            name: "a field debugfs cannot carry",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--bank", "4", "--status", "0x9c7d410092080813", "--mcgstatus", "0x5"],
            error: "mce-inject's debugfs interface cannot set MCGSTATUS: the kernel sets MCG_STATUS itself",
        },
        Case {
            name: "no record",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--cpu", "1"],
            error: "no record given: pass --bank and --status (and --cpu, default 0), or --file FILE",
        },
        Case {
            name: "a bad number",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--bank", "4", "--status", "9c7d410092080813"],
            error: "`9c7d410092080813` is not a number: hex needs a 0x prefix (write 0x9c7d410092080813)",
        },
        Case {
            name: "a syntax error in the file",
            cpu: Cpu::Amd,
            setup: |m| m.write("in.mce", "CPU 0 BANK 4 STATUS 0x9c00000000000000\nCPU 1 BANK 4 STATUS b200000000070f0f\n", 0o644),
            args: &["--file", "<root>/in.mce"],
            error: "<root>/in.mce:2:21: `b200000000070f0f` is not a number: hex needs a 0x prefix (write 0xb200000000070f0f)",
        },
        Case {
            name: "the second record of a file is bad",
            cpu: Cpu::Amd,
            setup: |m| m.write("in.mce", "CPU 0 BANK 4 STATUS CORRECTED\nCPU 5 BANK 4 STATUS CORRECTED\n", 0o644),
            args: &["--file", "<root>/in.mce"],
            error: "record 2: cpu 5 is not online: online CPUs are 0-3",
        },
        Case {
            name: "HOLD in a file",
            cpu: Cpu::Amd,
            setup: |m| m.write("in.mce", "CPU 0 BANK 4 STATUS CORRECTED HOLD\n", 0o644),
            args: &["--file", "<root>/in.mce"],
            error: "mce-inject's debugfs interface cannot set HOLD: it is a mode of the legacy /dev/mcelog injector",
        },
        Case {
            name: "an empty file",
            cpu: Cpu::Amd,
            setup: |m| m.write("in.mce", "# nothing\n", 0o644),
            args: &["--file", "<root>/in.mce"],
            error: "the --file input holds no records",
        },
        Case {
            name: "file and record options together",
            cpu: Cpu::Amd,
            setup: |m| m.write("in.mce", "CPU 0 BANK 4 STATUS CORRECTED\n", 0o644),
            args: &["--file", "<root>/in.mce", "--cpu", "1"],
            error: "--cpu and --file both describe records: use one or the other",
        },
        Case {
            name: "qemu without a guest",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--via", "qemu", "--bank", "4", "--status", "0x9c7d410092080813"],
            error: "via qemu cannot inject into this machine: it is QEMU's monitor command, for a guest (--guest",
        },
        Case {
            name: "an EDAC option",
            cpu: Cpu::Amd,
            setup: |_| {},
            args: &["--bank", "4", "--status", "0x9c7d410092080813", "--section", "1"],
            error: "--section is for --via edac",
        },
    ];
    for case in cases {
        let m = FakeMachine::new(case.cpu);
        (case.setup)(&m);
        let before = m.snapshot();
        let root = m.root().to_str().unwrap().to_string();
        let args: Vec<String> = case
            .args
            .iter()
            .map(|a| a.replace("<root>", &root))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for dry_run in [false, true] {
            let mut a = args.clone();
            if dry_run {
                a.push("--dry-run");
            }
            let out = m.inject(&a).assert().code(2).get_output().clone();
            let stderr = m.redact(&out.stderr);
            // One paragraph; clap's usage errors add a pointer to --help.
            let one_paragraph = stderr.lines().count() == 1
                || stderr.ends_with("For more information, try '--help'.\n");
            assert!(
                stderr.starts_with("error: ")
                    && stderr.lines().next().unwrap().contains(case.error)
                    && one_paragraph,
                "{} (dry run {dry_run}):\n got: {stderr}\nwant: {}",
                case.name,
                case.error
            );
            if !dry_run {
                assert!(
                    out.stdout.is_empty(),
                    "{}: {}",
                    case.name,
                    m.redact(&out.stdout)
                );
            }
            assert_eq!(
                m.snapshot(),
                before,
                "{} (dry run {dry_run}) changed the tree",
                case.name
            );
        }
    }
}

#[test]
fn a_write_the_kernel_rejects_is_an_infrastructure_failure() {
    // `bank` is where the kernel checks MCG_CAP and returns EINVAL; a directory fails the same way
    // (EISDIR) after every check passed, so it stands in for a kernel refusal.
    let m = FakeMachine::new(Cpu::Amd);
    m.remove(&format!("{MCE_INJECT}/bank"));
    fs::create_dir(m.path(&format!("{MCE_INJECT}/bank"))).unwrap();
    let out = m.inject(&DRAM_CE).assert().code(4).get_output().clone();
    let stderr = m.redact(&out.stderr);
    assert!(
        stderr.starts_with("error: writing `4` to <root>/sys/kernel/debug/mce-inject/bank failed after 7 of 8 writes: Is a directory"),
        "{stderr}"
    );
    // The writes before it did happen.
    assert_eq!(
        m.read(&format!("{MCE_INJECT}/status")),
        "0x9c7d410092080813\n"
    );
}
