//! Ctrl-C and SIGTERM during `rasdrill run` (issue 12, defect 3): the daemon a `command`
//! collector started is stopped, the temporary directories are removed, the reports say what
//! ran and which scenario was cut short, and the exit code is 128 + the signal. Stand-in trees:
//! no QEMU (a guest run interrupted is in `guest_reliable`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::cargo_bin;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rasdrill_qemu::wait::{wait_until, Deadline};

use crate::support::{text, DEADLINE};

const POLL: Duration = Duration::from_millis(10);

/// A local scenario on an empty stand-in tree whose `command` collector starts a daemon
/// (`sleep`, its pid written to `pid_file`), then runs `step`.
fn daemon_scenario(dir: &Path, name: &str, pid_file: &Path, step: &str) -> PathBuf {
    fs::create_dir_all(dir.join("tree")).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    fs::write(
        &file,
        format!(
            "name: {name}\n\
             description: a local daemon, then a long step\n\
             target: {{local: {{root: tree}}}}\n\
             collectors:\n\
             \x20 - command:\n\
             \x20     name: out\n\
             \x20     start: [sh, -c, 'echo $$ > {pid}; exec sleep 300']\n\
             \x20     collect: [echo, collected]\n\
             steps: [{step}]\n",
            pid = pid_file.display()
        ),
    )
    .unwrap();
    file
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// What rasdrill left in a private TMPDIR: its `rasdrill-*` entries.
pub fn rasdrill_temp_entries(tmp: &Path) -> Vec<String> {
    fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rasdrill-"))
        .collect()
}

struct Interrupted {
    dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
    pid_file: PathBuf,
}

impl Interrupted {
    fn new() -> Interrupted {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("daemon.pid");
        Interrupted {
            tmp: tempfile::Builder::new()
                .prefix("rd-tmp-")
                .tempdir()
                .unwrap(),
            dir,
            pid_file,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rasdrill run --accept` of three scenarios: a quick one, one whose daemon runs while its
    /// `long_step` lasts a minute, and one that never starts.
    fn start(&self, long_step: &str) -> Child {
        let step = "{sleep_ms: 1}";
        let quick = daemon_scenario(self.dir.path(), "a-quick", &self.path("quick.pid"), step);
        let long = daemon_scenario(self.dir.path(), "b-long", &self.pid_file, long_step);
        let never = daemon_scenario(self.dir.path(), "c-never", &self.path("never.pid"), step);
        Command::new(cargo_bin("rasdrill"))
            .args(["run", "--accept", "--golden"])
            .arg(self.path("golden"))
            .arg("--junit")
            .arg(self.path("report.xml"))
            .arg("--json")
            .arg(self.path("report.json"))
            .args([&quick, &long, &never])
            .env("TMPDIR", self.tmp.path())
            .env_remove("CI")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Starts the run, waits for the long scenario's daemon, sends `signal` to rasdrill.
    /// Returns rasdrill's exit code, its stderr and the daemon's pid.
    fn interrupt(&self, signal: Signal, long_step: &str) -> (Option<i32>, String, u32) {
        let child = self.start(long_step);
        let daemon: u32 = wait_until(&Deadline::after(DEADLINE), POLL, || {
            fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
        })
        .expect("the long scenario's daemon starts");
        assert!(alive(daemon));
        assert!(
            !rasdrill_temp_entries(self.tmp.path()).is_empty(),
            "the stand-in tree's copy is in TMPDIR while the scenario runs"
        );
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = wait_with_deadline(child);
        (out.status.code(), text(&out.stderr), daemon)
    }
}

/// Waits for `child`, killing it if it outlives the test's deadline.
fn wait_with_deadline(mut child: Child) -> std::process::Output {
    let ended = wait_until(&Deadline::after(DEADLINE), POLL, || {
        child.try_wait().unwrap()
    });
    if ended.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        ended.is_some(),
        "rasdrill did not end after the signal:\n{}",
        text(&out.stderr)
    );
    out
}

#[test]
fn sigint_mid_run_stops_the_daemon_removes_temp_dirs_and_writes_the_reports() {
    let t = Interrupted::new();
    let (code, stderr, daemon) = t.interrupt(Signal::SIGINT, "{sleep_ms: 60000}");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.ends_with("error: interrupted by SIGINT: 2 scenarios ran, the last one cut short\n"),
        "{stderr}"
    );
    assert!(!alive(daemon), "the collector's daemon {daemon} survived");
    assert_eq!(rasdrill_temp_entries(t.tmp.path()), Vec::<String>::new());
    assert!(
        !t.path("never.pid").exists(),
        "a scenario started after the signal"
    );

    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(t.path("report.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], "SIGINT");
    assert_eq!(json["exit_code"], 130);
    let results: Vec<(&str, &str)> = json["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [("a-quick", "passed"), ("b-long", "interrupted")],
        "{json:#}"
    );
    let message = json["scenarios"][1]["failure"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("steps[0]") && message.ends_with("interrupted by SIGINT"),
        "{message}"
    );
    let junit = fs::read_to_string(t.path("report.xml")).unwrap();
    assert!(junit.contains("tests=\"2\""), "{junit}");
    assert!(
        junit.contains("<error type=\"interrupted\" message=\"steps[0]"),
        "{junit}"
    );
    // The quick scenario was accepted; the cut one compared (and accepted) nothing.
    let golden: Vec<String> = fs::read_dir(t.path("golden"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(golden, ["a-quick__out.snap"]);
}

#[test]
fn sigterm_mid_run_cleans_up_the_same_way_and_exits_143() {
    let t = Interrupted::new();
    // A wait this time: it polls its collector for a minute unless the signal ends it.
    let wait = "{wait: {collector: out, line: never printed, timeout_s: 60}}";
    let (code, stderr, daemon) = t.interrupt(Signal::SIGTERM, wait);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr
            .ends_with("error: interrupted by SIGTERM: 2 scenarios ran, the last one cut short\n"),
        "{stderr}"
    );
    assert!(!alive(daemon), "the collector's daemon {daemon} survived");
    assert_eq!(rasdrill_temp_entries(t.tmp.path()), Vec::<String>::new());
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(t.path("report.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], "SIGTERM");
    assert_eq!(json["scenarios"][1]["result"], "interrupted");
}

/// A second Ctrl-C does not wait for the cleanup (here a `stop` command that would take a
/// minute after the first), and still kills what rasdrill started.
#[test]
fn a_second_sigint_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("rd-tmp-")
        .tempdir()
        .unwrap();
    fs::create_dir_all(dir.path().join("tree")).unwrap();
    let stopping = dir.path().join("stopping");
    let scenario = dir.path().join("slow-stop.yaml");
    fs::write(
        &scenario,
        format!(
            "name: slow-stop\n\
             description: a collector whose stop takes a minute\n\
             target: {{local: {{root: tree}}}}\n\
             collectors:\n\
             \x20 - command:\n\
             \x20     name: out\n\
             \x20     collect: [echo, collected]\n\
             \x20     stop: [sh, -c, 'echo $$ > {}; exec sleep 60']\n\
             steps: [{{sleep_ms: 60000}}]\n",
            stopping.display()
        ),
    )
    .unwrap();
    let child = Command::new(cargo_bin("rasdrill"))
        .args(["run", "--ci"])
        .arg(&scenario)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    // The step is under way once the tree's copy exists.
    wait_until(&Deadline::after(DEADLINE), POLL, || {
        (!rasdrill_temp_entries(tmp.path()).is_empty()).then_some(())
    })
    .expect("the scenario starts");
    kill(pid, Signal::SIGINT).unwrap();
    let stop: u32 = wait_until(&Deadline::after(DEADLINE), POLL, || {
        fs::read_to_string(&stopping).ok()?.trim().parse().ok()
    })
    .expect("the first SIGINT stops the collectors");
    kill(pid, Signal::SIGINT).unwrap();
    let out = wait_with_deadline(child);
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let gone = wait_until(&Deadline::after(DEADLINE), POLL, || {
        (!alive(stop)).then_some(())
    });
    assert!(gone.is_some(), "the `stop` command {stop} survived");
}
