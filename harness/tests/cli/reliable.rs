//! Faults a hostile user (or bad luck) brings: kills at the worst moment, planted symlinks,
//! oversized inputs. Each test here failed before its fix (issue 12).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use assert_cmd::cargo::cargo_bin;

use crate::support::{rasdrill, text, Cpu, FakeMachine, DEADLINE, LOCK};

/// A local scenario on an empty stand-in tree whose one `command` collector prints `lines`
/// lines of `word`, in `dir`.
fn big_output_scenario(dir: &Path, word: &str, lines: usize) -> PathBuf {
    big_output_scenario_with(dir, word, lines, "")
}

/// The same, with `extra` (whole top-level YAML lines) added to the scenario.
fn big_output_scenario_with(dir: &Path, word: &str, lines: usize, extra: &str) -> PathBuf {
    fs::create_dir_all(dir.join("tree")).unwrap();
    let file = dir.join("big.yaml");
    fs::write(
        &file,
        format!(
            "name: big\n\
             description: a collector with a lot to say\n\
             target: {{local: {{root: tree}}}}\n\
             collectors:\n\
             \x20 - command: {{name: out, collect: [sh, -c, 'yes {word} | head -n {lines}']}}\n\
             steps: [{{sleep_ms: 1}}]\n{extra}"
        ),
    )
    .unwrap();
    file
}

/// Each entry of `dir`: name, inode, length.
fn listing(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        (m.ino(), m.len()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn accept(scenario: &Path, golden: &Path) -> Command {
    let mut cmd = Command::new(cargo_bin("rasdrill"));
    cmd.arg("run")
        .arg("--accept")
        .arg("--golden")
        .arg(golden)
        .arg(scenario)
        .env_remove("CI")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn sigkill_while_accepting_a_big_output_never_leaves_a_cut_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let golden = dir.path().join("golden");
    let snap = golden.join("big__out.snap");
    // About 5 MB a version: the write takes milliseconds, and the kill lands inside it.
    let lines = 250_000;
    let whole = |word: &str| vec![word; lines].join("\n");
    let versions = ["first-version-of-it", "second-version-of-it"];
    for round in 0..2 {
        let (old, new) = (versions[round % 2], versions[(round + 1) % 2]);
        let scenario = big_output_scenario(dir.path(), old, lines);
        let status = accept(&scenario, &golden).status().unwrap();
        assert!(status.success(), "round {round}: accepting {old}: {status}");
        assert_eq!(
            rasdrill::golden::read(&snap).unwrap().content,
            whole(old),
            "round {round}"
        );
        let before = listing(&golden);
        assert_eq!(before.len(), 1, "round {round}: {before:?}");

        // Kill it the moment anything in golden/ changes: in the middle of writing.
        let scenario = big_output_scenario(dir.path(), new, lines);
        let mut child = accept(&scenario, &golden).spawn().unwrap();
        let started = Instant::now();
        let killed = loop {
            if listing(&golden) != before {
                child.kill().unwrap();
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            assert!(started.elapsed() < DEADLINE, "round {round}: still running");
        };
        child.wait().unwrap();
        assert!(
            killed,
            "round {round}: rasdrill finished before it was seen writing"
        );
        let content = match rasdrill::golden::read(&snap) {
            Ok(g) => g.content,
            Err(e) => panic!("round {round}: a kill mid-write left a broken golden file: {e}"),
        };
        assert!(
            content == whole(old) || content == whole(new),
            "round {round}: the golden file holds {} bytes of neither version",
            content.len()
        );
    }
    // The next run cleans what the kills left; the golden file is whole.
    let scenario = big_output_scenario(dir.path(), "last", 3);
    let out = accept(&scenario, &golden).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let left: Vec<String> = listing(&golden).into_keys().collect();
    assert_eq!(left, ["big__out.snap"]);
}

#[test]
fn a_symlink_planted_at_the_lock_path_is_refused_and_nothing_is_written() {
    let m = FakeMachine::new(Cpu::Amd);
    let victim = m.path("etc/important");
    fs::create_dir_all(victim.parent().unwrap()).unwrap();
    fs::write(&victim, "precious\n").unwrap();
    fs::create_dir_all(m.path(LOCK).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&victim, m.path(LOCK)).unwrap();
    let before = m.snapshot();
    let out = m
        .inject(&[
            "--cpu",
            "0",
            "--bank",
            "4",
            "--status",
            "0x9c7d410092080813",
        ])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_eq!(
        m.redact(&out.stderr),
        "error: refusing the lock <root>/run/lock/rasdrill.lock: it is a symbolic link; \
         remove it if you did not put it there\n"
    );
    assert_eq!(
        m.snapshot(),
        before,
        "nothing was written, the victim least of all"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn an_mce_inject_file_over_the_limit_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    // 1 GiB, sparse: reading it whole would take the memory the old reader took.
    let big = dir.path().join("big.mce");
    fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
    let expected = format!(
        "error: {} is larger than 4 MiB, the limit for an mce-inject file; split it\n",
        big.display()
    );
    let out = rasdrill()
        .args(["records", "dump"])
        .arg(&big)
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_eq!(text(&out.stderr), expected);
    let out = rasdrill()
        .args(["inject", "--dry-run", "--file"])
        .arg(&big)
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert_eq!(text(&out.stderr), expected);
}

#[test]
fn a_collector_over_the_output_limit_fails_clearly_and_writes_no_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    // 300,000 lines of 31 bytes: 9.3 MB, over the 8 MiB default.
    let scenario = big_output_scenario(dir.path(), &"x".repeat(30), 300_000);
    let golden = dir.path().join("golden");
    let out = Command::new(cargo_bin("rasdrill"))
        .args(["run", "--accept", "--golden"])
        .arg(&golden)
        .arg(&scenario)
        .env_remove("CI")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "collector `out`: its output is 9300000 bytes (300000 lines), over the limit of 8388608 bytes \
             (a scenario raises it with `output_limit_kib:`, at most 65536 KiB)"
        ),
        "{stderr}"
    );
    assert!(listing(&golden).is_empty(), "{:?}", listing(&golden));
}

/// `output_limit_kib` moves the cap both ways: 9.3 MB passes under a 10 MiB cap, and 2 KB
/// fails under a 1 KiB one; a cap out of range is bad input located at its line.
#[test]
fn a_scenario_sets_its_own_output_limit() {
    let run = |scenario: &Path, golden: &Path| {
        Command::new(cargo_bin("rasdrill"))
            .args(["run", "--accept", "--golden"])
            .arg(golden)
            .arg(scenario)
            .env_remove("CI")
            .output()
            .unwrap()
    };
    let raised = tempfile::tempdir().unwrap();
    let scenario = big_output_scenario_with(
        raised.path(),
        &"x".repeat(30),
        300_000,
        "output_limit_kib: 10240\n",
    );
    let out = run(&scenario, &raised.path().join("golden"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let lowered = tempfile::tempdir().unwrap();
    let scenario =
        big_output_scenario_with(lowered.path(), &"x".repeat(30), 64, "output_limit_kib: 1\n");
    let out = run(&scenario, &lowered.path().join("golden"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("its output is 1984 bytes (64 lines), over the limit of 1024 bytes"),
        "{stderr}"
    );

    let bad = tempfile::tempdir().unwrap();
    let scenario = big_output_scenario_with(bad.path(), "x", 1, "output_limit_kib: 0\n");
    let out = run(&scenario, &bad.path().join("golden"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("big.yaml:7:19: output_limit_kib: 0 is out of range (1 to 65536)"),
        "{stderr}"
    );
}

#[test]
fn the_next_run_removes_what_a_sigkilled_rasdrill_left_in_tmpdir() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("tree/sys")).unwrap();
    let slow = dir.path().join("slow.yaml");
    fs::write(
        &slow,
        "name: slow\ndescription: waits long enough to be killed\n\
         target: {local: {root: tree}}\nsteps: [{sleep_ms: 60000}]\n",
    )
    .unwrap();
    let run = |scenario: &Path| {
        let mut cmd = Command::new(cargo_bin("rasdrill"));
        cmd.args(["run", "--ci"])
            .arg(scenario)
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut child = run(&slow).spawn().unwrap();
    let prefix = format!("rasdrill-{}-root-", child.id());
    let started = Instant::now();
    while !listing(tmp.path()).keys().any(|n| n.starts_with(&prefix)) {
        assert!(started.elapsed() < DEADLINE, "{:?}", listing(tmp.path()));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<String> = listing(tmp.path()).into_keys().collect();
    assert!(
        left.iter().all(|n| n.starts_with(&prefix)) && left.len() == 1,
        "{left:?}"
    );

    // Another rasdrill's directory, alive (pid 1), stays.
    fs::create_dir(tmp.path().join("rasdrill-1-guest-x")).unwrap();
    let scenario = big_output_scenario(dir.path(), "done", 3);
    let status = run(&scenario).status().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "no golden file in CI: a mismatch, but a run"
    );
    let left: Vec<String> = listing(tmp.path()).into_keys().collect();
    assert_eq!(left, ["rasdrill-1-guest-x"]);
}
