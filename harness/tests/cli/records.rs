//! `rasdrill records explain|dump`.

use std::fs;

use predicates::prelude::*;

use crate::support::{self, rasdrill};

fn stdout_of(args: &[&str]) -> String {
    support::stdout_of(rasdrill().args(args))
}

#[test]
fn explain_a_dram_ecc_status() {
    insta::assert_snapshot!(stdout_of(&["records", "explain", "0x9c7d410092080813"]));
}

#[test]
fn explain_several_as_amd_and_with_flags() {
    insta::assert_snapshot!(stdout_of(&[
        "records",
        "explain",
        "--vendor",
        "amd",
        "0xbc00000000100134",
        "VAL DEFERRED 0x0c0f",
    ]));
}

#[test]
fn explain_refuses_kernel_log_hex_without_0x() {
    rasdrill()
        .args(["records", "explain", "9c7d410092080813"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "`9c7d410092080813` is not a number: hex needs a 0x prefix (write 0x9c7d410092080813)",
        ));
}

#[test]
fn dump_prints_canonical_records_with_one_blank_line_between() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.mce");
    let b = dir.path().join("b.mce");
    fs::write(
        &a,
        "# a corrected DRAM ECC error, as written by hand\n\
         cpu 1 bank 4 status corrected 0x0813 addr 0x12345000 misc 0xd01a\n\
         MCE STATUS FATAL 0x134 MCGSTATUS MCIP EIPV RIP 0x10:<0xffffffff81000000> {do_idle+0x1c/0x30}\n",
    )
    .unwrap();
    fs::write(
        &b,
        "CPU 2: MACHINE CHECK EXCEPTION: 0x5 BANK 3: 0xb200000000000f0f\n\
         TSC 0x12345 TIME 1700000000 PROCESSOR 2:0x600f12 SOCKETID 1 APICID 2 HOLD IN_PROC POLL\n",
    )
    .unwrap();
    let out = stdout_of(&["records", "dump", a.to_str().unwrap(), b.to_str().unwrap()]);
    insta::assert_snapshot!(out);

    // The canonical text is itself valid input and prints unchanged.
    let c = dir.path().join("c.mce");
    fs::write(&c, &out).unwrap();
    assert_eq!(stdout_of(&["records", "dump", c.to_str().unwrap()]), out);
}

#[test]
fn dump_reads_standard_input() {
    rasdrill()
        .args(["records", "dump", "-"])
        .write_stdin("cpu 0 bank 4 status val en addr 0x1000")
        .assert()
        .success()
        .stdout("CPU 0 BANK 4\nADDR 0x1000\nSTATUS 0x9400000000000000\n");
}

#[test]
fn dump_names_file_line_and_column_of_a_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.mce");
    fs::write(&f, "CPU 0 BANK 4\nSTATUS VAL UC\nADDR 12345000x\n").unwrap();
    rasdrill()
        .args(["records", "dump", f.to_str().unwrap()])
        .assert()
        .code(2)
        .stdout("")
        .stderr(format!(
            "error: {}:3:6: `12345000x` is not a number: expected decimal (42), hex (0x2a) or octal (052)\n",
            f.display()
        ));
}

#[test]
fn dump_of_a_missing_file_is_bad_input() {
    rasdrill()
        .args(["records", "dump", "/nonexistent/x.mce"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "error: cannot read /nonexistent/x.mce: No such file",
        ));
}

#[test]
fn explain_refuses_a_bare_16_digit_status_instead_of_reading_it_as_decimal() {
    // The kernel's `Machine Check: 0 Bank 4: 9000000000000813` is hex; as decimal it would be
    // explained as another status without a word of warning.
    rasdrill()
        .args(["records", "explain", "9000000000000813"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "`9000000000000813` is ambiguous: the kernel log prints a status as 16 hex digits without 0x",
        ))
        .stderr(predicate::str::contains("write 0x9000000000000813"));
}

#[test]
fn a_closed_stdout_ends_quietly_like_coreutils() {
    // The reader is gone before rasdrill writes a byte: EPIPE on the first write, every time.
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("rasdrill"))
        .args(["records", "explain", "0x9c7d410092080813"])
        .stdout(std::process::Stdio::from(write))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert_eq!(stderr, "");
}
