//! The safety guard: uncorrected and fatal errors only when asked for, on every path.

use crate::support::{Cpu, FakeMachine, EDAC_DEBUGFS_MC0, MCE_INJECT};

const UC: &str = "0xbd80000000100134"; // VAL UC EN MISCV ADDRV S AR, data-load: recoverable
const FATAL: &str = "0xb200000000070f0f"; // VAL UC EN PCC
const DEFERRED: &str = "0x9000100000000813"; // VAL EN, AMD Deferred (bit 44)

fn record(status: &str) -> Vec<&str> {
    vec!["--cpu", "0", "--bank", "4", "--status", status]
}

fn refused(m: &FakeMachine, args: &[&str], want: &str) {
    let before = m.snapshot();
    let out = m.inject(args).assert().code(2).get_output().clone();
    let stderr = m.redact(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains(want),
        "{args:?}\n got: {stderr}\nwant: {want}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(m.snapshot(), before, "{args:?} changed the tree");
}

#[test]
fn uncorrected_needs_allow_uncorrected() {
    let m = FakeMachine::new(Cpu::Intel);
    refused(
        &m,
        &record(UC),
        "status 0xbd80000000100134 is uncorrected, recoverable (UC is set, PCC is clear): on this machine \
         that can kill processes, offline memory or panic the kernel; pass --allow-uncorrected to inject it anyway",
    );
    m.inject(&[&record(UC)[..], &["--allow-uncorrected"]].concat())
        .assert()
        .success();
    assert_eq!(
        m.read(&format!("{MCE_INJECT}/status")),
        "0xbd80000000100134\n"
    );
}

#[test]
fn fatal_needs_allow_fatal_even_with_allow_uncorrected() {
    let m = FakeMachine::new(Cpu::Amd);
    let want = "status 0xb200000000070f0f is fatal (PCC is set)";
    refused(&m, &record(FATAL), want);
    refused(
        &m,
        &[&record(FATAL)[..], &["--allow-uncorrected"]].concat(),
        "pass --allow-fatal to inject it anyway",
    );
    m.inject(&[&record(FATAL)[..], &["--allow-fatal", "--flags", "hw"]].concat())
        .assert()
        .success();
    assert_eq!(m.read(&format!("{MCE_INJECT}/flags")), "hw\n");
}

#[test]
fn overflowed_uncorrected_is_fatal() {
    let m = FakeMachine::new(Cpu::Intel);
    refused(
        &m,
        &[
            &record("VAL OVER UC EN 0x0134")[..],
            &["--allow-uncorrected"],
        ]
        .concat(),
        "is fatal (UC and OVER are set: an earlier uncorrected error was lost)",
    );
}

#[test]
fn deferred_counts_as_uncorrected_on_amd_not_on_intel() {
    let amd = FakeMachine::new(Cpu::Amd);
    refused(
        &amd,
        &record(DEFERRED),
        "is deferred (AMD's Deferred bit (44) is set, UC is clear)",
    );
    let intel = FakeMachine::new(Cpu::Intel);
    intel.inject(&record(DEFERRED)).assert().success();
}

#[test]
fn any_refused_record_of_a_file_refuses_the_whole_file() {
    let m = FakeMachine::new(Cpu::Amd);
    m.write(
        "in.mce",
        "CPU 0 BANK 4 STATUS CORRECTED\nCPU 1 BANK 4 STATUS UNCORRECTED\n",
        0o644,
    );
    let f = m.path("in.mce");
    refused(
        &m,
        &["--file", f.to_str().unwrap()],
        "record 2: status 0xb000000000000000 is uncorrected",
    );
}

#[test]
fn a_refused_dry_run_still_prints_the_plan_and_exits_as_the_real_run_would() {
    let m = FakeMachine::new(Cpu::Amd);
    let before = m.snapshot();
    let out = m
        .inject(&[&record(FATAL)[..], &["--dry-run"]].concat())
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_eq!(m.redact(&out.stdout).lines().count(), 8);
    assert!(m
        .redact(&out.stdout)
        .starts_with("write <root>/sys/kernel/debug/mce-inject/flags sw\n"));
    let stderr = m.redact(&out.stderr);
    assert!(
        stderr.starts_with("error: status 0xb200000000070f0f is fatal")
            && stderr.ends_with(
                "pass --allow-fatal to inject it anyway (dry run: the real run would be refused)\n"
            ),
        "{stderr}"
    );
    assert_eq!(m.snapshot(), before);
}

#[test]
fn edac_uncorrected_requests_are_guarded_too() {
    let m = FakeMachine::new(Cpu::Amd);
    let fake_ue = [
        "--via",
        "edac",
        "--fake-inject",
        "--layer",
        "csrow=1",
        "--layer",
        "channel=0",
        "--ue",
    ];
    refused(
        &m,
        &fake_ue,
        "a fake uncorrected EDAC error (EDAC panics on it when edac_mc_panic_on_ue is set)",
    );
    m.inject(&[&fake_ue[..], &["--allow-uncorrected"]].concat())
        .assert()
        .success();
    // A stand-in file reads back as the kernel shows a debugfs bool.
    assert_eq!(m.read(&format!("{EDAC_DEBUGFS_MC0}/fake_inject_ue")), "Y\n");

    let two_bits = [
        "--via",
        "edac",
        "--section",
        "0",
        "--word",
        "0",
        "--ecc-vector",
        "0x3",
        "--write",
    ];
    refused(
        &m,
        &two_bits,
        "ECC vector 0x3 flips 2 bits, which may be uncorrectable",
    );
    m.inject(&[&two_bits[..], &["--allow-uncorrected"]].concat())
        .assert()
        .success();
}
