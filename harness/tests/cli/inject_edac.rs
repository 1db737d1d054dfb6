//! `rasdrill inject --via edac`: amd64_edac DRAM ECC injection and EDAC core fake errors.

use crate::support::{read_in_order, writes, Cpu, FakeMachine, EDAC_DEBUGFS_MC0, EDAC_MC0};

const ECC: [&str; 9] = [
    "--via",
    "edac",
    "--section",
    "3",
    "--word",
    "8",
    "--ecc-vector",
    "0x8000",
    "--read",
];

#[test]
fn ecc_dry_run() {
    let m = FakeMachine::new(Cpu::Amd);
    let before = m.snapshot();
    let out = m
        .inject(&[&ECC[..], &["--dry-run"]].concat())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    insta::assert_snapshot!(m.redact(&out), @r"
    write <root>/sys/devices/system/edac/mc/mc0/inject_section 3
    write <root>/sys/devices/system/edac/mc/mc0/inject_word 8
    write <root>/sys/devices/system/edac/mc/mc0/inject_ecc_vector 0x8000
    write <root>/sys/devices/system/edac/mc/mc0/inject_read 1
    ");
    assert_eq!(m.snapshot(), before);
}

#[test]
fn ecc_writes_in_order_with_the_access_last() {
    let m = FakeMachine::new(Cpu::Amd);
    let files = [
        "inject_section",
        "inject_word",
        "inject_ecc_vector",
        "inject_write",
    ];
    m.fifos(EDAC_MC0, &files);
    let run = m.spawn_inject(&[
        "--via",
        "edac",
        "--mc",
        "0",
        "--section",
        "1",
        "--word",
        "2",
        "--ecc-vector",
        "0x10",
        "--write",
    ]);
    let got = read_in_order(&m, EDAC_MC0, &files);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(
        got,
        writes(&[
            ("inject_section", "1\n"),
            ("inject_word", "2\n"),
            ("inject_ecc_vector", "0x10\n"),
            ("inject_write", "1\n"),
        ])
    );
    assert_eq!(
        done.stdout,
        "injected a DRAM ECC error on mc0 (inject_write)\n"
    );
}

#[test]
fn fake_injection_writes_layers_then_triggers() {
    let m = FakeMachine::new(Cpu::Intel);
    let files = [
        "fake_inject_csrow",
        "fake_inject_channel",
        "fake_inject_ue",
        "fake_inject_count",
        "fake_inject",
    ];
    m.fifos(EDAC_DEBUGFS_MC0, &files);
    let run = m.spawn_inject(&[
        "--via",
        "edac",
        "--fake-inject",
        "--layer",
        "csrow=2",
        "--layer",
        "channel=1",
        "--count",
        "3",
    ]);
    let got = read_in_order(&m, EDAC_DEBUGFS_MC0, &files);
    let done = run.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(
        got,
        writes(&[
            ("fake_inject_csrow", "2\n"),
            ("fake_inject_channel", "1\n"),
            ("fake_inject_ue", "0\n"),
            ("fake_inject_count", "3\n"),
            ("fake_inject", "1\n"),
        ])
    );
}

#[test]
fn edac_validation_failures_change_nothing() {
    let fake = ["--via", "edac", "--fake-inject"];
    type Case<'a> = (&'a str, fn(&FakeMachine), Vec<&'a str>, &'a str);
    let cases: [Case; 13] = [
        (
            "no such controller",
            |_| {},
            [&ECC[..], &["--mc", "1"]].concat(),
            "EDAC memory controller mc1 is missing (<root>/sys/devices/system/edac/mc/mc1 does not exist): \
             load this machine's EDAC driver (amd64_edac); present: mc0",
        ),
        (
            "no controller at all",
            |m| m.remove("sys/devices/system/edac/mc/mc0"),
            ECC.to_vec(),
            "present: none",
        ),
        (
            "no CONFIG_EDAC_DEBUG",
            |m| {
                for f in ["inject_section", "inject_word", "inject_ecc_vector", "inject_write", "inject_read"] {
                    m.remove(&format!("{EDAC_MC0}/{f}"));
                }
            },
            ECC.to_vec(),
            "amd64_edac's DRAM ECC injection is missing (<root>/sys/devices/system/edac/mc/mc0/inject_section does not exist): \
             amd64_edac offers it only when built with CONFIG_EDAC_DEBUG, on AMD families 0x10 to 0x16",
        ),
        (
            "word out of range",
            |_| {},
            vec!["--via", "edac", "--section", "0", "--word", "9", "--ecc-vector", "0x1", "--write"],
            "word 9 is out of range: amd64_edac takes 0 to 8",
        ),
        (
            "vector out of range",
            |_| {},
            vec!["--via", "edac", "--section", "0", "--word", "0", "--ecc-vector", "0x10000", "--write"],
            "ecc vector 65536 is out of range: amd64_edac takes 16 bits, 0x0 to 0xffff",
        ),
        (
            "no access",
            |_| {},
            vec!["--via", "edac", "--section", "0", "--word", "0", "--ecc-vector", "0x1"],
            "amd64_edac injection needs --read or --write",
        ),
        (
            "incomplete",
            |_| {},
            vec!["--via", "edac", "--section", "0", "--write"],
            "amd64_edac injection needs --section, --word, --ecc-vector and --read or --write",
        ),
        (
            "a layer the controller lacks",
            |_| {},
            [&fake[..], &["--layer", "slot=1"]].concat(),
            "memory controller mc0 has no slot layer: its layers are channel, csrow",
        ),
        (
            "a layer left to its last value",
            |_| {},
            [&fake[..], &["--layer", "csrow=1"]].concat(),
            "memory controller mc0 has layers channel, csrow: give a position for channel too \
             (the kernel keeps the last value written to fake_inject_channel)",
        ),
        (
            "debugfs not mounted",
            |m| m.unmount_debugfs(),
            fake.to_vec(),
            "the EDAC core's fake injection for mc0 is missing (<root>/sys/kernel/debug/edac/mc0 does not exist): \
             run `mount -t debugfs none /sys/kernel/debug`",
        ),
        (
            "an MCE record option",
            |_| {},
            [&ECC[..], &["--cpu", "1"]].concat(),
            "--cpu describes an MCE record, which --via edac does not take",
        ),
        (
            "mixed forms",
            |_| {},
            [&fake[..], &["--word", "1"]].concat(),
            "--word is for amd64_edac injection, not --fake-inject",
        ),
        (
            "a fake option without --fake-inject",
            |_| {},
            [&ECC[..], &["--ue"]].concat(),
            "--ue needs --fake-inject",
        ),
    ];
    for (name, setup, args, want) in cases {
        let m = FakeMachine::new(Cpu::Amd);
        setup(&m);
        let before = m.snapshot();
        for dry_run in [false, true] {
            let mut a = args.clone();
            if dry_run {
                a.push("--dry-run");
            }
            let out = m.inject(&a).assert().code(2).get_output().clone();
            let stderr = m.redact(&out.stderr);
            assert!(
                stderr.starts_with("error: ") && stderr.contains(want),
                "{name} (dry run {dry_run}):\n got: {stderr}\nwant: {want}"
            );
            assert_eq!(m.snapshot(), before, "{name} changed the tree");
        }
    }
}
