//! Guest runs leave nothing behind (issue 12): one interrupted by Ctrl-C mid-scenario, and two
//! booting guests at once. In the `qemu` test group (.config/nextest.toml): one at a time.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rasdrill_qemu::wait::{wait_until, Deadline};

use crate::interrupt::rasdrill_temp_entries;
use crate::support::{qemu_pids_mentioning, DEADLINE};

/// Pids of this process's children, zombies included.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// A guest scenario (the default amd-f15h guest, its kernel log) whose one step sleeps `sleep_ms`.
fn guest_scenario(dir: &Path, name: &str, sleep_ms: u64) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    fs::write(
        &file,
        format!(
            "name: {name}\n\
             description: a guest, and a step that sleeps\n\
             machine: {{profile: amd-f15h}}\n\
             collectors: [kmsg]\n\
             steps: [{{sleep_ms: {sleep_ms}}}]\n"
        ),
    )
    .unwrap();
    file
}

/// `rasdrill run --accept` of `scenario` with its own golden directory and TMPDIR `tmp`, TCG,
/// progress lines sent to the returned channel.
fn start_run(scenario: &Path, golden: &Path, tmp: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(cargo_bin("rasdrill"))
        .args(["run", "--accept", "--accel", "tcg", "--golden"])
        .arg(golden)
        .arg(scenario)
        .env("TMPDIR", tmp)
        .env_remove("RASDRILL_QEMU")
        .env_remove("CI")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

/// Every line until the run ends (the channel closes) or the deadline passes.
fn drain(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, deadline: Instant) {
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(line);
    }
}

#[test]
fn sigint_during_a_guest_scenario_kills_qemu_removes_its_files_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("rd-tmp-")
        .tempdir()
        .unwrap();
    let scenario = guest_scenario(dir.path(), "long", 60_000);
    let (mut child, lines) = start_run(&scenario, &dir.path().join("golden"), tmp.path());
    let deadline = Instant::now() + DEADLINE * 3;
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let sleeping = line.contains("steps[0]") && !line.contains("done");
        seen.push(line);
        if sleeping {
            break;
        }
    }
    assert_eq!(
        qemu_pids_mentioning(tmp.path()).len(),
        1,
        "{}",
        seen.join("\n")
    );
    assert!(!rasdrill_temp_entries(tmp.path()).is_empty());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    drain(&lines, &mut seen, Instant::now() + DEADLINE);
    let status = wait_until(
        &Deadline::after(DEADLINE),
        Duration::from_millis(10),
        || child.try_wait().unwrap(),
    );
    let seen = seen.join("\n");
    let Some(status) = status else {
        let _ = child.kill();
        panic!("rasdrill did not end after SIGINT:\n{seen}");
    };
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.ends_with("error: interrupted by SIGINT: 1 scenario ran, the last one cut short"),
        "{seen}"
    );
    assert_eq!(qemu_pids_mentioning(tmp.path()), Vec::<u32>::new());
    assert_eq!(rasdrill_temp_entries(tmp.path()), Vec::<String>::new());
    assert!(!dir.path().join("golden").exists(), "nothing was accepted");
}

#[test]
fn two_guest_runs_at_once_both_pass_and_leave_no_qemu_process_descriptor_or_file() {
    let fds = fs::read_dir("/proc/self/fd").unwrap().count();
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("rd-tmp-")
        .tempdir()
        .unwrap();
    let runs: Vec<_> = ["first", "second"]
        .iter()
        .map(|name| {
            let scenario = guest_scenario(dir.path(), name, 1);
            start_run(
                &scenario,
                &dir.path().join(format!("golden-{name}")),
                tmp.path(),
            )
        })
        .collect();
    // Both boot at once: each QEMU is up while the other run has not finished.
    let both = wait_until(
        &Deadline::after(DEADLINE * 3),
        Duration::from_millis(20),
        || (qemu_pids_mentioning(tmp.path()).len() == 2).then_some(()),
    );
    let deadline = Instant::now() + DEADLINE * 6;
    for (name, (mut child, lines)) in ["first", "second"].iter().zip(runs) {
        let mut seen = Vec::new();
        drain(&lines, &mut seen, deadline);
        let status = child.wait().unwrap();
        assert!(status.success(), "{name}: {status}\n{}", seen.join("\n"));
    }
    assert!(both.is_some(), "the two guests never ran at the same time");
    for name in ["first", "second"] {
        let golden = dir.path().join(format!("golden-{name}/{name}__kmsg.snap"));
        assert!(golden.is_file(), "{}", golden.display());
    }
    assert_eq!(qemu_pids_mentioning(tmp.path()), Vec::<u32>::new());
    assert_eq!(rasdrill_temp_entries(tmp.path()), Vec::<String>::new());
    assert_eq!(children_of(std::process::id()), Vec::<u32>::new());
    assert_eq!(fs::read_dir("/proc/self/fd").unwrap().count(), fds);
}
