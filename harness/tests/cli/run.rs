//! `rasdrill run`: the scenario suite of this repository on real QEMU (TCG) guests with the real
//! Debian kernel from the cache, compared with its golden files. Every test works on a copy of
//! `scenarios/` and `golden/` in a temporary directory (the repository never changes) and gives
//! rasdrill its own TMPDIR, to prove that no QEMU survives it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;

use crate::support::{qemu_pids_mentioning, text};

/// The decoded line the mismatch test changes, in the QEMU scenario's kernel log.
const DECODED: &str = "[Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.";

/// A copy of the suite (`scenarios/` with its trees, `golden/`) and a private TMPDIR.
struct Workspace {
    dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let ws = Workspace {
            dir: tempfile::Builder::new()
                .prefix("rd-suite-")
                .tempdir()
                .unwrap(),
            tmp: tempfile::Builder::new()
                .prefix("rd-test-")
                .tempdir()
                .unwrap(),
        };
        for sub in ["scenarios", "golden"] {
            copy_tree(&repo.join(sub), &ws.path(sub));
        }
        ws
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `rasdrill run ARGS` in the copy, outside CI unless `env` says otherwise.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(cargo_bin("rasdrill"));
        cmd.arg("run")
            .args(args)
            .current_dir(self.dir.path())
            .env("TMPDIR", self.tmp.path())
            .env_remove("CI")
            .env_remove("RASDRILL_QEMU");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let left = qemu_pids_mentioning(self.tmp.path());
        assert!(
            left.is_empty(),
            "QEMU processes survived rasdrill: {left:?}"
        );
        out
    }

    /// Every file under `golden/` with its content.
    fn golden_files(&self) -> BTreeMap<String, String> {
        fs::read_dir(self.path("golden"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect()
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else if !e.file_name().to_string_lossy().ends_with(".snap.new") {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// What a failed assertion shows.
fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn the_suite_passes_sharing_guests_and_reports_every_scenario() {
    let ws = Workspace::new();
    let before = ws.golden_files();
    let junit = ws.path("report.xml");
    let json = ws.path("report.json");
    let out = ws.run(
        &[
            "--ci",
            "--accel",
            "tcg",
            "--junit",
            junit.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    // A plain run boots the default pinned line, whatever else is cached, and says so.
    let pinned = rasdrill_qemu::pinned::default_line();
    assert!(
        stderr.contains(&format!(
            "rasdrill: guest kernel {} (pinned line {}, the default)",
            pinned.release, pinned.name
        )),
        "{stderr}"
    );
    let scenarios = fs::read_dir(ws.path("scenarios"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert!(
        stdout.contains(&format!("{scenarios} scenarios in "))
            && stdout.contains(&format!(": {scenarios} passed")),
        "{stdout}"
    );
    // One cold boot per guest spec: amd-f15h; amd-f15h on 6.12 with ras=cec_disable; amd-f15h
    // with hwpoison_inject; intel-skx; q35 with PCIe, with and without aer_inject. Every other
    // scenario shares a running guest or restores its spec's snapshot (after a panic, or after
    // an AER injection left the guest's devices in error).
    assert_eq!(stderr.matches(": guest ready in ").count(), 6, "{stderr}");
    assert!(
        stderr.contains("amd-f15h-dram-ue-panic: guest restored from its snapshot"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wait for kmsg: a line matching \"DRAM ECC error\""),
        "{stderr}"
    );
    assert_eq!(
        ws.golden_files(),
        before,
        "a passing run in CI writes nothing"
    );

    let junit = fs::read_to_string(junit).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), scenarios, "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    let text = json.to_string();
    assert!(
        text.contains("amd-f15h-dram-ce-qemu") && text.contains("local-amd64-edac"),
        "{text}"
    );
    // The committed stand-in tree is never written to.
    let tree =
        ws.path("scenarios/trees/amd64-edac/sys/devices/system/edac/mc/mc0/inject_ecc_vector");
    assert_eq!(fs::read_to_string(tree).unwrap(), "0x0\n");
}

/// A restored guest is the booted one to a scenario: with --isolate the first scenario of the
/// group runs on the booted guest, every later one on a copy restored from its snapshot, and
/// all of them match the golden files (which booted guests wrote), panic included.
#[test]
fn restored_guests_decode_exactly_as_the_booted_one() {
    let ws = Workspace::new();
    let before = ws.golden_files();
    let scenarios = [
        "scenarios/amd-f15h-dram-ce-qemu.yaml",
        "scenarios/amd-f15h-dram-ce-debugfs.yaml",
        "scenarios/amd-f15h-dram-ue-panic.yaml",
    ];
    let mut args = vec!["--ci", "--accel", "tcg", "--isolate"];
    args.extend(scenarios);
    let out = ws.run(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("booting EPYC").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("guest restored from its snapshot").count(),
        2,
        "{stderr}"
    );
    assert!(text(&out.stdout).contains(": 3 passed"), "{}", shown(&out));
    assert_eq!(ws.golden_files(), before);
}

#[test]
fn a_changed_decoded_line_fails_with_a_diff_pointing_at_it_and_a_snap_new() {
    let ws = Workspace::new();
    let golden = ws.path("golden/amd-f15h-dram-ce-qemu__kmsg.snap");
    let recorded = fs::read_to_string(&golden).unwrap();
    let changed_line = recorded
        .lines()
        .position(|l| l.ends_with(DECODED))
        .expect("the golden file has the decoded line")
        + 1;
    let edited = recorded.replace("detected on the NB.", "detected on the CPU.");
    fs::write(&golden, &edited).unwrap();

    let out = ws.run(
        &["scenarios/amd-f15h-dram-ce-qemu.yaml", "--accel", "tcg"],
        &[],
    );
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "first difference at golden/amd-f15h-dram-ce-qemu__kmsg.snap:{changed_line}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("DRAM ECC error detected on the CPU."),
        "{stderr}"
    );
    let diff_lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    assert!(
        diff_lines
            .iter()
            .any(|l| l.starts_with('-') && l.ends_with("detected on the CPU.")),
        "{stderr}"
    );
    assert!(
        diff_lines
            .iter()
            .any(|l| l.starts_with('+') && l.ends_with(DECODED)),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("golden-mismatch"),
        "{}",
        shown(&out)
    );

    assert_eq!(
        fs::read_to_string(&golden).unwrap(),
        edited,
        "the golden file is left alone"
    );
    let new = fs::read_to_string(ws.path("golden/amd-f15h-dram-ce-qemu__kmsg.snap.new")).unwrap();
    assert!(new.contains(DECODED), "{new}");
    // The other collectors of the scenario still match: no .snap.new for them.
    assert!(!ws
        .path("golden/amd-f15h-dram-ce-qemu__trace.snap.new")
        .exists());
    assert!(!ws
        .path("golden/amd-f15h-dram-ce-qemu__rasdaemon.snap.new")
        .exists());
}

#[test]
fn bad_yaml_fails_before_anything_runs_with_every_problem_located() {
    let ws = Workspace::new();
    fs::write(
        ws.path("scenarios/broken.yaml"),
        "name: broken\ndescription: d\nmachine: {profile: amd-f15h}\nsteps:\n  - inject: {via: qemu, bank: 40, status: 0x9c7d410092080813}\n  - wait: {collector: kmsg, records: 1}\n",
    )
    .unwrap();
    fs::write(ws.path("scenarios/unclosed.yaml"), "name: [unclosed\n").unwrap();
    let before = ws.golden_files();
    let out = ws.run(&["--accel", "tcg"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("scenarios/broken.yaml:5:31: steps[0].inject.bank: bank 40 is out of range"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "scenarios/broken.yaml:6:23: steps[1].wait.collector: `kmsg` is not a collector"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("scenarios/unclosed.yaml:1:7:"), "{stderr}");
    assert!(stderr.contains("nothing ran"), "{stderr}");
    assert!(!stderr.contains("booting"), "{stderr}");
    assert_eq!(ws.golden_files(), before);
}

#[test]
fn a_missing_golden_file_fails_under_ci_and_creates_nothing() {
    let ws = Workspace::new();
    fs::remove_file(ws.path("golden/local-amd64-edac__edac-files.snap")).unwrap();
    let before = ws.golden_files();
    let out = ws.run(&["scenarios/local-amd64-edac.yaml"], &[("CI", "true")]);
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("edac-files has no golden file golden/local-amd64-edac__edac-files.snap"),
        "{stderr}"
    );
    assert_eq!(ws.golden_files(), before, "nothing is written in CI");

    // Outside CI the would-be file goes to .snap.new; --accept makes it the golden file.
    let out = ws.run(&["scenarios/local-amd64-edac.yaml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let new = ws.path("golden/local-amd64-edac__edac-files.snap.new");
    assert!(new.exists());
    let out = ws.run(&["scenarios/local-amd64-edac.yaml", "--accept"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(!new.exists());
    let golden = fs::read_to_string(ws.path("golden/local-amd64-edac__edac-files.snap")).unwrap();
    assert!(
        golden.contains("sys/devices/system/edac/mc/mc0/inject_ecc_vector:0x8"),
        "{golden}"
    );
}

#[test]
fn a_wait_that_times_out_fails_the_scenario_quoting_what_was_seen() {
    let ws = Workspace::new();
    fs::write(
        ws.path("scenarios/waits.yaml"),
        "name: waits\ndescription: d\ntarget: {local: {root: trees/amd64-edac}}\n\
         collectors:\n  - command: {name: files, collect: [cat, sys/devices/system/edac/mc/mc0/mc_name]}\n\
         steps:\n  - wait: {collector: files, line: F17h, timeout_s: 0.3}\n",
    )
    .unwrap();
    let out = ws.run(&["scenarios/waits.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("steps[0] (line 7): wait for files: a line matching \"F17h\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("`files` did not see a line matching \"F17h\" within 0."),
        "{stderr}"
    );
    assert!(
        stderr.contains("F15h"),
        "the lines seen are quoted: {stderr}"
    );
}

#[test]
fn the_guard_refuses_an_uncorrected_error_on_this_machine() {
    let ws = Workspace::new();
    fs::write(
        ws.path("scenarios/uc.yaml"),
        "name: uc\ndescription: d\ntarget: local\n\
         steps:\n  - inject: {via: debugfs, bank: 4, status: 0xbe00000000000813}\n",
    )
    .unwrap();
    let out = ws.run(&["scenarios/uc.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("injection refused before any write"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --allow-fatal"), "{stderr}");
}

#[test]
fn a_stand_in_tree_is_guarded_like_the_machine_it_stands_for() {
    let ws = Workspace::new();
    fs::write(
        ws.path("scenarios/ue.yaml"),
        "name: ue\ndescription: d\ntarget: {local: {root: trees/amd64-edac}}\n\
         steps:\n  - inject: {via: edac, mc: 0, fake_inject: {csrow: 1, channel: 0, ue: true}}\n",
    )
    .unwrap();
    let out = ws.run(&["scenarios/ue.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("injection refused before any write: a fake uncorrected EDAC error"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --allow-uncorrected"), "{stderr}");
    let out = ws.run(&["scenarios/ue.yaml", "--allow-uncorrected"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
}

#[test]
fn run_help_has_examples_and_the_options() {
    let out = Command::new(cargo_bin("rasdrill"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for wanted in [
        "Examples:",
        "rasdrill run --accept",
        "--junit <FILE>",
        "--json <FILE>",
        "--golden <DIR>",
        "--ci",
        "--kernel <PATH>",
        "--allow-uncorrected",
    ] {
        assert!(help.contains(wanted), "{wanted} is missing from:\n{help}");
    }
}

#[test]
fn the_panic_golden_is_the_same_after_a_bzimage_boot_as_after_a_pvh_vmlinux_boot() {
    // The suite boots the extracted vmlinux (PVH: `Kernel Offset: disabled`); the same kernel's
    // bzImage relocates itself (KASLR) and lands elsewhere: the shipped golden must still match.
    let ws = Workspace::new();
    let kernel = rasdrill_qemu::kernel::KernelCache::from_env()
        .unwrap()
        .find(None)
        .expect("ci/test fetches the pinned kernel first");
    let bzimage = kernel.vmlinux.with_file_name("vmlinuz");
    let out = ws.run(
        &[
            "scenarios/amd-f15h-dram-ue-panic.yaml",
            "--accel",
            "tcg",
            "--ci",
            "--kernel",
            bzimage.to_str().unwrap(),
            "--modules",
            kernel.modules_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let booted = format!(
        "rasdrill: guest kernel {} (from {})",
        kernel.release,
        bzimage.display()
    );
    assert!(text(&out.stderr).contains(&booted), "{}", shown(&out));
}

/// A scenario whose command collector makes the guest kernel print a backtrace (sysrq `l`,
/// which /proc/sysrq-trigger accepts whatever kernel.sysrq says), with `extra` top-level keys
/// and kmsg settings.
fn sysrq_scenario(name: &str, kmsg: &str, extra: &str) -> String {
    format!(
        "name: {name}\ndescription: d\nmachine: {{profile: amd-f15h}}\n{extra}\
         collectors:\n  - kmsg{kmsg}\n  - command:\n      name: sysrq\n      needs: [busybox]\n      \
         start: [busybox, sh, -c, 'echo l > /proc/sysrq-trigger; exec busybox sleep 60']\n      \
         collect: [busybox, 'true']\n\
         steps:\n  - wait: {{collector: kmsg, line: 'Call Trace:', timeout_s: 10}}\ncompare: [kmsg]\n"
    )
}

#[test]
fn a_kernel_backtrace_fails_the_scenario_unless_it_expects_one_and_the_boot_log_is_opt_in() {
    let ws = Workspace::new();
    let write = |name: &str, text: String| {
        fs::create_dir_all(ws.path("crash")).unwrap();
        fs::write(ws.path(&format!("crash/{name}.yaml")), text).unwrap();
    };
    write("backtrace", sysrq_scenario("backtrace", "", ""));
    write(
        "backtrace-expected",
        sysrq_scenario(
            "backtrace-expected",
            ": {match: 'Linux version|sysrq', boot_log: true}",
            "expect_crash: true\n",
        ),
    );
    let out = ws.run(&["crash", "--accept"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the kernel reported a crash during the scenario (kmsg: Call Trace:)"),
        "{stderr}"
    );
    assert!(stderr.contains("backtrace-expected: PASSED"), "{stderr}");
    let golden = ws.golden_files();
    // The backtrace is kept whole, though the default filter keeps only RAS lines.
    let crashed = &golden["backtrace__kmsg.snap"];
    assert!(crashed.contains("] Call Trace:\n"), "{crashed}");
    assert!(crashed.contains(" </TASK>\n"), "{crashed}");
    assert!(
        !crashed.contains("Linux version"),
        "no boot log unless asked: {crashed}"
    );
    let expected = &golden["backtrace-expected__kmsg.snap"];
    assert_eq!(
        expected.matches("Linux version ").count(),
        1,
        "the boot log comes first: {expected}"
    );
    assert!(
        expected.find("Linux version") < expected.find("sysrq: Show backtrace"),
        "{expected}"
    );

    // A restored guest's boot log is the boot its snapshot was saved from.
    fs::remove_file(ws.path("golden/backtrace-expected__kmsg.snap")).unwrap();
    let out = ws.run(
        &["crash/backtrace-expected.yaml", "--isolate", "--accept"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let restored = &ws.golden_files()["backtrace-expected__kmsg.snap"];
    assert_eq!(restored.matches("Linux version ").count(), 1, "{restored}");
    assert!(
        restored.find("Linux version") < restored.find("sysrq: Show backtrace"),
        "{restored}"
    );
}

#[test]
fn a_module_the_kernel_lacks_is_refused_before_any_guest_boots() {
    let ws = Workspace::new();
    fs::write(
        ws.path("scenarios/zz-no-module.yaml"),
        "name: zz-no-module\ndescription: d\nmachine: {profile: amd-f15h}\n\
         setup: {modules: [mce-inject, edac_mce_amdd]}\ncollectors: [kmsg]\n\
         steps:\n  - sleep_ms: 1\n",
    )
    .unwrap();
    let stderr = refused_before_any_boot(&ws, &["scenarios"]);
    assert!(
        stderr.contains(
            "scenarios/zz-no-module.yaml: the scenario needs module `edac_mce_amdd`, which kernel \
             6.1.0-57-amd64 lacks: module `edac_mce_amdd` is not in"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 module is missing from the guest kernel; nothing ran"),
        "{stderr}"
    );
}

/// `rasdrill run ARGS`, which must refuse (exit 2) before any scenario starts: the shipped
/// scenarios come first in the run, and none of them may start. Its standard error.
fn refused_before_any_boot(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.run(args, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("[1/"), "nothing started: {stderr}");
    stderr
}

#[test]
fn two_qemu_steps_into_one_bank_without_a_wait_are_refused_before_any_guest_boots() {
    let ws = Workspace::new();
    let scenario = |name: &str, first: &str| {
        format!(
            "name: {name}\ndescription: d\nmachine: {{profile: amd-f15h}}\ncollectors: [kmsg]\n\
             steps:\n  - inject: {{via: qemu, bank: 4, status: {first}}}\n  \
             - inject: {{via: qemu, bank: 4, status: 0x9c7d410092080813}}\n  \
             - wait: {{collector: kmsg, line: 'DRAM ECC', timeout_s: 10}}\n"
        )
    };
    fs::write(
        ws.path("scenarios/zz-ue-then-ce.yaml"),
        scenario("zz-ue-then-ce", "0xb400000000000813"),
    )
    .unwrap();
    let stderr = refused_before_any_boot(&ws, &["scenarios"]);
    assert!(
        stderr.contains(
            "scenarios/zz-ue-then-ce.yaml:7:5: steps[1].inject: the record of steps[0] (line 6) \
             may still be in CPU 0 bank 4 (it raised #MC, and nothing confirms that the guest \
             has handled it): QEMU would merge the record of steps[1] (line 7) into it, one \
             record with OVER set; put them in separate steps with a `wait` step between"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`overflow: true` on this step to overflow the bank on purpose"),
        "{stderr}"
    );

    // Two corrected errors are polled one by one, except the naive way, which leaves them to
    // the timer poll.
    fs::remove_file(ws.path("scenarios/zz-ue-then-ce.yaml")).unwrap();
    fs::write(
        ws.path("scenarios/zz-two-ce.yaml"),
        scenario("zz-two-ce", "0x9c7d410092080813"),
    )
    .unwrap();
    let stderr = refused_before_any_boot(&ws, &["scenarios", "--naive"]);
    assert!(
        stderr.contains(
            "scenarios/zz-two-ce.yaml:7:5: steps[1].inject: the record of steps[0] (line 6) may \
             still be in CPU 0 bank 4 (a corrected error stays in its bank until the kernel \
             polls, and no poll is forced between the two)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 problem in the scenarios the naive way"),
        "{stderr}"
    );
}

#[test]
fn all_lines_runs_a_local_scenario_once_and_refuses_a_kernel_of_its_own() {
    let ws = Workspace::new();
    let json = ws.path("report.json");
    let out = ws.run(
        &[
            "scenarios/local-amd64-edac.yaml",
            "--all-lines",
            "--ci",
            "--json",
            json.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("kernel line 6.1 (1 of 2): 1 scenario\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kernel line 6.12 (2 of 2): 0 scenarios"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 1, "{report}");
    assert_eq!(scenarios[0]["kernel_line"], serde_json::Value::Null);

    let out = ws.run(&["--all-lines", "--kernel-release", "6.1"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(text(&out.stderr).contains("--all-lines"), "{}", shown(&out));
}
