//! `rasdrill inject --guest`: real QEMU (TCG), the real Debian kernel from the cache, the
//! rasdrill agent as /init. Each test gives rasdrill its own TMPDIR, where every QEMU it
//! starts keeps its run directory, so the test can prove that no QEMU of its own survives.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use rasdrill_qemu::wait::{wait_until, Deadline};

use crate::support::{text, DEADLINE};

const DRAM_ECC: &[&str] = &[
    "--cpu",
    "0",
    "--bank",
    "4",
    "--status",
    "0x9c7d410092080813",
    "--addr",
    "0x12345000",
];
/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(20);
const DECODED: &str = "[Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.";

/// One rasdrill invocation with a private TMPDIR.
struct GuestRun {
    tmp: tempfile::TempDir,
}

impl GuestRun {
    fn new() -> GuestRun {
        GuestRun {
            tmp: tempfile::Builder::new()
                .prefix("rd-test-")
                .tempdir()
                .unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(cargo_bin("rasdrill"));
        cmd.args(args)
            .env("TMPDIR", self.tmp.path())
            .env_remove("RASDRILL_QEMU");
        cmd
    }

    fn inject(&self, args: &[&str]) -> Output {
        let mut all = vec!["inject", "--guest", "amd-f15h", "--accel", "tcg"];
        all.extend_from_slice(args);
        let out = self.command(&all).output().unwrap();
        self.assert_no_qemu();
        out
    }

    /// Pids of live processes whose command line mentions this run's TMPDIR (QEMU's sockets
    /// and console are there).
    fn qemu_pids(&self) -> Vec<u32> {
        crate::support::qemu_pids_mentioning(self.tmp.path())
    }

    fn assert_no_qemu(&self) {
        let left = self.qemu_pids();
        assert!(
            left.is_empty(),
            "QEMU processes survived rasdrill: {left:?}"
        );
    }

    /// Starts `rasdrill inject --via qemu` in the background and returns once its QEMU runs
    /// (the guest is booting).
    fn start_booting(&self) -> Booting {
        let child = self
            .command(
                &[
                    &["inject", "--guest", "--accel", "tcg", "--via", "qemu"],
                    DRAM_ECC,
                ]
                .concat(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut booting = Booting { child };
        let started = wait_until(&Deadline::after(DEADLINE), POLL, || {
            assert!(
                booting.child.try_wait().unwrap().is_none(),
                "rasdrill exited before QEMU started"
            );
            (!self.qemu_pids().is_empty()).then_some(())
        });
        assert!(started.is_some(), "QEMU never started");
        booting
    }

    fn wait_for_no_qemu(&self) {
        let gone = wait_until(&Deadline::after(DEADLINE), POLL, || {
            self.qemu_pids().is_empty().then_some(())
        });
        assert!(
            gone.is_some(),
            "QEMU survived rasdrill: {:?}",
            self.qemu_pids()
        );
    }
}

/// A rasdrill started in the background; SIGKILLed and reaped on drop, so a test that fails
/// half-way leaves no rasdrill (and so no QEMU) behind.
struct Booting {
    child: Child,
}

impl Drop for Booting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mce_record_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("mce_record:"))
        .collect()
}

#[test]
fn a_corrected_dram_ecc_error_through_qemu_is_decoded_by_edac_mce_amd() {
    let run = GuestRun::new();
    let out = run.inject(&[&["--via", "qemu"], DRAM_ECC].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    assert!(stdout.contains(DECODED), "{stdout}");
    assert!(
        stdout.contains("MC4_STATUS[-|CE|MiscV|AddrV|-|CECC|-]: 0x9c7d410092080813"),
        "{stdout}"
    );
    let records = mce_record_lines(&stdout);
    assert_eq!(records.len(), 1, "{stdout}");
    assert!(
        records[0].contains("MC4: 9c7d410092080813"),
        "{}",
        records[0]
    );
    assert!(
        records[0].contains("ADDR/MISC/SYND: 0000000012345000/"),
        "{}",
        records[0]
    );
    assert!(text(&out.stderr).contains("sent `mce 0 4 0x9c7d410092080813 0x0 0x12345000 0x0`"));
}

#[test]
fn the_same_record_through_the_guests_debugfs_is_decoded_within_a_second() {
    let run = GuestRun::new();
    // --timeout 1: rasdrill fails unless the decoded lines arrive within a second.
    let out = run.inject(
        &[
            &["--via", "debugfs", "--flags", "sw", "--timeout", "1"],
            DRAM_ECC,
        ]
        .concat(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    assert!(stdout.contains(DECODED), "{stdout}");
    assert_eq!(mce_record_lines(&stdout).len(), 1, "{stdout}");
    assert!(
        text(&out.stderr).contains("wrote 8 mce-inject files in the guest"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_uncorrected_error_through_qemu_panics_the_guest_and_is_reported() {
    let run = GuestRun::new();
    let args = [
        "--via",
        "qemu",
        "--bank",
        "4",
        "--status",
        "0xbc00000000000813",
        "--addr",
        "0x12345000",
    ];
    let expected = run.inject(&[&args[..], &["--expect-panic"]].concat());
    let stdout = text(&expected.stdout);
    assert!(
        expected.status.success(),
        "{}\n{}",
        stdout,
        text(&expected.stderr)
    );
    assert!(
        stdout.contains("== guest panic ==\nKernel panic - not syncing:"),
        "{stdout}"
    );
    assert!(stdout.contains("Machine check"), "{stdout}");
    assert!(text(&expected.stderr).contains("QEMU is gone"));
}

#[test]
fn an_unexpected_panic_fails_with_its_message() {
    let run = GuestRun::new();
    let out = run.inject(&[
        "--via",
        "qemu",
        "--bank",
        "4",
        "--status",
        "0xbc00000000000813",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("error: the guest panicked: Kernel panic - not syncing:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bank_out_of_range_is_refused_before_booting() {
    let run = GuestRun::new();
    let out = run.inject(&[
        "--via",
        "qemu",
        "--bank",
        "10",
        "--status",
        "0x9c7d410092080813",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: bank 10 is out of range: QEMU gives every guest CPU 10 MCA banks (0-9)"
    );
}

#[test]
fn a_cpu_the_guest_does_not_have_is_refused_before_booting() {
    let run = GuestRun::new();
    let out = run.inject(&[
        "--via",
        "debugfs",
        "--cpu",
        "2",
        "--bank",
        "4",
        "--status",
        "0x9c7d410092080813",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: cpu 2 is out of range: the guest has 2 vCPUs (0-1)"
    );
}

#[test]
fn a_missing_kernel_says_how_to_get_one() {
    let run = GuestRun::new();
    let empty_cache = tempfile::tempdir().unwrap();
    let out = run
        .command(&[&["inject", "--guest", "--via", "qemu"], DRAM_ECC].concat())
        .env("RASDRILL_CACHE", empty_cache.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = text(&out.stderr);
    // The pinned default release, where it was looked for, and how to get it.
    assert!(stderr.contains("is not in"), "{stderr}");
    assert!(
        stderr.contains("run `rasdrill kernel fetch --release "),
        "{stderr}"
    );
    assert!(stderr.contains("--kernel PATH --modules DIR"), "{stderr}");
}

#[test]
fn a_missing_qemu_says_how_to_install_it() {
    let run = GuestRun::new();
    let out = run
        .command(&[&["inject", "--guest", "--via", "qemu"], DRAM_ECC].concat())
        .env("RASDRILL_QEMU", "/nonexistent/qemu-system-x86_64")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/qemu-system-x86_64 not found: install qemu-system-x86"),
        "{stderr}"
    );
}

#[test]
fn qemu_failing_to_start_the_kernel_is_reported_with_its_stderr() {
    let run = GuestRun::new();
    let not_a_kernel = run.tmp.path().join("not-a-kernel");
    fs::write(&not_a_kernel, "this is not a kernel image\n").unwrap();
    let modules = cached_modules_dir();
    let out = run.inject(
        &[
            &[
                "--via",
                "qemu",
                "--kernel",
                not_a_kernel.to_str().unwrap(),
                "--modules",
                modules.to_str().unwrap(),
            ][..],
            DRAM_ECC,
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("QEMU exited") || stderr.contains("exited after"),
        "{stderr}"
    );
    // QEMU's own words ("qemu: linux kernel too old to load a ram disk"), not only its name.
    assert!(
        stderr.contains("its stderr ends with:\nqemu"),
        "QEMU's own error text is quoted: {stderr}"
    );
}

#[test]
fn a_guest_that_does_not_come_up_in_time_is_reported_and_killed() {
    let run = GuestRun::new();
    // No Debian kernel reaches /init in 0.5 s under TCG: the boot deadline passes.
    let out = run
        .command(
            &[
                &["inject", "--guest", "--accel", "tcg", "--via", "qemu"],
                DRAM_ECC,
            ]
            .concat(),
        )
        .env("RASDRILL_BOOT_TIMEOUT", "0.5")
        .output()
        .unwrap();
    run.assert_no_qemu();
    assert_eq!(out.status.code(), Some(4));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the guest did not answer while booting: timed out after"),
        "{stderr}"
    );
    assert!(stderr.contains("--- last console lines ---"), "{stderr}");
}

#[test]
fn killing_rasdrill_with_sigkill_mid_boot_takes_qemu_with_it() {
    let run = GuestRun::new();
    let mut booting = run.start_booting();
    booting.child.kill().unwrap();
    booting.child.wait().unwrap();
    run.wait_for_no_qemu();
}

#[test]
fn interrupting_rasdrill_mid_boot_kills_qemu_and_exits() {
    let run = GuestRun::new();
    let mut booting = run.start_booting();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(booting.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_until(&Deadline::after(DEADLINE), POLL, || {
        booting.child.try_wait().unwrap()
    })
    .expect("rasdrill ignored SIGINT");
    assert!(!status.success());
    run.assert_no_qemu();
}

fn cached_modules_dir() -> PathBuf {
    let cache = rasdrill_qemu::kernel::KernelCache::from_env().unwrap();
    let kernel = cache
        .find(None)
        .expect("the tests need a cached kernel: run `rasdrill kernel fetch` (ci/test does)");
    assert!(Path::new(&kernel.modules_dir).is_dir());
    kernel.modules_dir
}

/// A wait on a guest that stops answering ends at its deadline plus the documented margin
/// (issue 12: it used to wait out the poll's own 30 s).
#[test]
fn a_frozen_guest_fails_its_wait_at_the_timeout_plus_the_margin() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("rd-test-")
        .tempdir()
        .unwrap();
    let scenario = dir.path().join("frozen.yaml");
    fs::write(
        &scenario,
        "name: frozen\n\
         description: a guest that stops answering during a wait\n\
         machine: {profile: amd-f15h}\n\
         collectors: [kmsg]\n\
         steps:\n\
         \x20 - sleep_ms: 1500\n\
         \x20 - wait: {collector: kmsg, line: never printed, timeout_s: 4}\n",
    )
    .unwrap();
    let mut child = Command::new(cargo_bin("rasdrill"))
        .args(["run", "--ci", "--accel", "tcg"])
        .arg(&scenario)
        .env("TMPDIR", tmp.path())
        .env_remove("RASDRILL_QEMU")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Freeze QEMU (SIGSTOP: no vCPU, no serial line) while the first step sleeps.
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + DEADLINE * 3;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let sleeping = line.contains("steps[0]") && !line.contains("done");
        seen.push(line);
        if sleeping {
            break;
        }
    }
    let qemu = crate::support::qemu_pids_mentioning(tmp.path());
    assert_eq!(qemu.len(), 1, "{qemu:?}\n{}", seen.join("\n"));
    let pid = nix::unistd::Pid::from_raw(qemu[0] as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(line);
    }
    let status = child.wait().unwrap();
    let seen = seen.join("\n");
    assert_eq!(status.code(), Some(4), "{seen}");
    // `steps[1] FAILED after 6.59 s: ...`: the wait's 4 s, its 2 s margin, and no more
    // (before, the poll under way waited out its own 30 s).
    let after: f64 = seen
        .lines()
        .find_map(|l| l.split("steps[1] FAILED after ").nth(1))
        .and_then(|rest| rest.split(" s").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failed wait in:\n{seen}"));
    assert!((4.0..8.0).contains(&after), "{after} s\n{seen}");
    assert!(
        crate::support::qemu_pids_mentioning(tmp.path()).is_empty(),
        "the frozen QEMU survived"
    );
}

/// `rasdrill fuzz` in one guest: the records `--list` prints (the same twice) are the ones
/// injected, the last line counts them, and the exit code follows the counts.
#[test]
fn fuzz_injects_the_seeds_records_and_reports_them_in_its_last_line() {
    let run = GuestRun::new();
    let list = |seed: &str| {
        let out = run
            .command(&["fuzz", "--seed", seed, "--count", "5", "--list"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let listed = list("1");
    assert_eq!(listed, list("1"), "the same seed lists the same records");
    assert_ne!(listed, list("2"));
    assert_eq!(listed.lines().count(), 5);

    let fuzz = |out_dir: &std::path::Path, known: &[&str]| {
        let out = run
            .command(&[
                "fuzz", "--seed", "1", "--count", "5", "--accel", "tcg", "--out",
            ])
            .arg(out_dir)
            .args(known)
            .output()
            .unwrap();
        run.assert_no_qemu();
        out
    };
    let out_dir = run.tmp.path().join("findings");
    let out = fuzz(&out_dir, &[]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    for line in listed.lines() {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{line}: "))),
            "{line} not reported:\n{stdout}\n{stderr}"
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    let counts = regex::Regex::new(r"^fuzz: 5 records, (\d+) findings, (\d+) oopses \(seed 1\)$")
        .unwrap()
        .captures(last)
        .unwrap_or_else(|| panic!("last line {last:?}\n{stderr}"))
        .iter()
        .skip(1)
        .map(|c| c.unwrap().as_str().parse::<usize>().unwrap())
        .collect::<Vec<_>>();
    let clean = counts == [0, 0];
    let expected = if clean { Some(0) } else { Some(1) };
    assert_eq!(out.status.code(), expected, "{stdout}\n{stderr}");
    // A reproducer for each failing record, none when clean.
    let written = fs::read_dir(&out_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written == 0, clean, "{stdout}");

    // The same seed gives the same report, in a fresh guest: the records, each verdict, the
    // findings with their (normalised) evidence, the shrunk reproducers, the last line.
    let again_dir = run.tmp.path().join("again");
    let again = fuzz(&again_dir, &[]);
    let again_stdout = text(&again.stdout).replace(
        &again_dir.display().to_string(),
        &out_dir.display().to_string(),
    );
    assert_eq!(again_stdout, stdout, "{}", text(&again.stderr));
    assert_eq!(again.status.code(), out.status.code());

    // A finding `--known` lists is reported as known: the record is ok, nothing is counted.
    let key = "kmsg/edac-mce-amd/class";
    let known = fuzz(&run.tmp.path().join("known"), &["--known", key]);
    let known_stdout = text(&known.stdout);
    let suffix = format!(": finding {key}");
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("record ") && l.ends_with(&suffix))
    {
        let record = &line[..line.len() - suffix.len()];
        let ok = format!("{record}: ok (known: {key})");
        assert!(
            known_stdout.lines().any(|l| l == ok),
            "{ok}\n{known_stdout}"
        );
    }
}

/// The pfn in `pfn 0x...` of a line, e.g. the agent's note or a memory_failure_event.
fn pfn_after(text: &str, marker: &str) -> Option<u64> {
    let at = text.find(marker)? + marker.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u64::from_str_radix(&digits, 16).ok()
}

#[test]
fn a_free_page_the_agent_finds_is_poisoned_and_seen_by_the_kernel_log_and_the_trace() {
    let run = GuestRun::new();
    let out = run.inject(&["--via", "hwpoison", "--page", "free", "--timeout", "10"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The page the agent chose is the one the kernel and the tracepoint report.
    let pfn = pfn_after(&stderr, "poisoning a free page (pfn 0x").expect(&stderr);
    assert!(
        stdout.contains(&format!(
            "Memory failure: {pfn:#x}: recovery action for free buddy page: Recovered"
        )),
        "{stdout}"
    );
    let events: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("memory_failure_event:"))
        .collect();
    assert_eq!(
        events,
        [format!(
            "memory_failure_event: pfn {pfn:#x}: recovery action for free buddy page: Recovered"
        )],
        "{stdout}"
    );
    assert!(
        stderr.contains("write /sys/kernel/debug/hwpoison/corrupt-pfn"),
        "{stderr}"
    );
}

#[test]
fn madvise_hwpoison_in_a_guest_kills_the_agents_child_with_sigbus_bus_mceerr_ar() {
    let run = GuestRun::new();
    let out = run.inject(&["--via", "hwpoison", "--madvise", "hwpoison"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let outcome =
        "the child that called madvise MADV_HWPOISON got SIGBUS (BUS_MCEERR_AR) reading its page";
    assert!(stderr.contains(outcome), "{stderr}");
    assert!(
        stdout.contains(&format!("rasdrill hwpoison: {outcome}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("due to hardware memory corruption fault at 5a5a00000000"),
        "{stdout}"
    );
    let pfn = pfn_after(&stdout, "memory_failure_event: pfn 0x").expect(&stdout);
    assert!(
        stdout.contains(&format!(
            "Injecting memory failure for pfn {pfn:#x} at process virtual address 0x5a5a00000000"
        )),
        "{stdout}"
    );
}

#[test]
fn unpoisoning_in_a_guest_before_any_page_was_poisoned_is_refused_by_the_agent() {
    let run = GuestRun::new();
    let out = run.inject(&["--via", "hwpoison", "--unpoison"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no page was poisoned through corrupt-pfn yet"),
        "{stderr}"
    );
}

/// QEMU's pcie_aer_inject_error on the root port of the q35 guest that --via aer gets: the AER
/// driver's report, the aer_event trace line and the recovery's outcome.
#[test]
fn an_aer_error_through_qemu_reaches_the_root_ports_aer_driver() {
    let run = GuestRun::new();
    let out = run.inject(&["--via", "aer", "--qdev", "rp0", "--aer-error", "COMP_TIME"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("q35 with PCIe"), "{stderr}");
    assert!(
        stderr.contains("sent `pcie_aer_inject_error rp0 COMP_TIME` to QEMU's monitor"),
        "{stderr}"
    );
    assert!(
        stdout.contains(
            "pcieport 0000:00:01.0: AER: Uncorrected (Non-Fatal) error message received from 0000:00:01.0"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("[14] CmpltTO"), "{stdout}");
    assert!(
        stdout.contains("aer_event: 0000:00:01.0 PCIe Bus Error: severity=Uncorrected, non-fatal, Completion Timeout"),
        "{stdout}"
    );
}

/// The kernel's aer_inject, written by the guest's agent, on the e1000e endpoint: a correctable
/// error, which QEMU 7.2 itself cannot deliver.
#[test]
fn a_correctable_aer_error_through_the_guests_aer_inject_is_reported_for_the_endpoint() {
    let run = GuestRun::new();
    let out = run.inject(&[
        "--via",
        "aer",
        "--sbdf",
        "0000:01:00.0",
        "--aer-error",
        "BAD_TLP",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("in the guest: write /dev/aer_inject aer_error_inj{domain 0x0, bus 0x1, dev 0x0, fn 0x0, uncor_status 0x00000000, cor_status 0x00000040"),
        "{stderr}"
    );
    assert!(
        stdout.contains("AER: Corrected error message received from 0000:01:00.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "aer_event: 0000:01:00.0 PCIe Bus Error: severity=Corrected, Bad TLP, TLP Header=Not available"
        ),
        "{stdout}"
    );
}

/// Two corrected DRAM ECC errors on CPU 0 bank 4 at different addresses, as an mce-inject file
/// in the run's directory.
fn two_corrected_errors_in_one_bank(run: &GuestRun) -> String {
    let path = run.tmp.path().join("two.mce");
    fs::write(
        &path,
        "CPU 0 BANK 4\nSTATUS 0x9c7d410092080813\nADDR 0x12345000\n\n\
         CPU 0 BANK 4\nSTATUS 0x9c7d410092080813\nADDR 0x12346000\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn two_corrected_errors_into_one_bank_give_two_records() {
    let run = GuestRun::new();
    let file = two_corrected_errors_in_one_bank(&run);
    let out = run.inject(&["--via", "qemu", "--file", &file]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    let records = mce_record_lines(&stdout);
    assert_eq!(records.len(), 2, "{stdout}");
    for (record, addr) in records.iter().zip(["12345000", "12346000"]) {
        // Not merged: no OVER (0xdc7d...), each with its own address.
        assert!(record.contains("MC4: 9c7d410092080813"), "{record}");
        assert!(
            record.contains(&format!("ADDR/MISC/SYND: 00000000{addr}/")),
            "{record}"
        );
    }
}

#[test]
fn an_overflow_asked_for_gives_one_record_with_over_and_says_so() {
    let run = GuestRun::new();
    let file = two_corrected_errors_in_one_bank(&run);
    let out = run.inject(&["--via", "qemu", "--file", &file, "--overflow"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "overflow on purpose: record 2 landed on record 1 in CPU 0 bank 4 before the guest \
             consumed it; QEMU set OVER, and the guest logs one record for the two"
        ),
        "{stderr}"
    );
    let records = mce_record_lines(&stdout);
    assert_eq!(records.len(), 1, "{stdout}");
    // OVER (bit 62) on the second record, whose address QEMU kept.
    assert!(
        records[0].contains("MC4: dc7d410092080813"),
        "{}",
        records[0]
    );
    assert!(
        records[0].contains("ADDR/MISC/SYND: 0000000012346000/"),
        "{}",
        records[0]
    );
    assert!(stdout.contains("MC4_STATUS[Over|CE|"), "{stdout}");
}

#[test]
fn a_record_onto_an_unconsumed_uncorrected_one_is_refused_before_booting() {
    let run = GuestRun::new();
    let path = run.tmp.path().join("ue-ce.mce");
    fs::write(
        &path,
        "CPU 0 BANK 4\nSTATUS UNCORRECTED 0x0813\n\nCPU 0 BANK 4\nSTATUS CORRECTED 0x0813\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let expected = "error: record 2: record 1 may still be in CPU 0 bank 4 (it raised #MC, and \
                    nothing confirms that the guest has handled it): QEMU would merge this one \
                    into it, one record with OVER set; inject them apart (one command each; in \
                    a scenario, a `wait` step between them), or ask for the overflow on purpose \
                    (--overflow; `overflow: true` on a scenario's inject step)";
    // The dry run and the real run agree, and neither boots.
    for dry in [&["--dry-run"][..], &[]] {
        let out = run.inject(&[&["--via", "qemu", "--file", &file], dry].concat());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr).trim(), expected);
    }
    let out = run.inject(&["--via", "qemu", "--file", &file, "--overflow", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "monitor mce 0 4 0xb000000000000813 0x0 0x0 0x0\n\
         monitor mce 0 4 0x9000000000000813 0x0 0x0 0x0\n"
    );
}
