//! Load without QEMU (issue 12): 200 scenarios on stand-in trees, each starting a `command`
//! collector's daemon, run by the runner in this process, so that its file descriptors,
//! threads, child processes and temporary directories can be counted before and after. nextest
//! runs it in a process of its own (it sets TMPDIR). Two guests in parallel:
//! `harness/tests/cli/guest_reliable.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rasdrill_qemu::wait::{wait_until, Deadline};

use super::{GuestReuse, Options};
use crate::collect::rasdaemon_build::RasdaemonBuild;
use crate::golden::Mode;
use crate::guest::AccelChoice;
use crate::report::{Event, Outcome};

const SCENARIOS: usize = 200;
/// The scenarios run as two runs of 100 in a row, side by side: 200 take about 0.45 s each
/// (mostly the settling after the last step), and the machine has 2 cores.
const RUNS: usize = 2;

/// Pids of this process's children, zombies included.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read_to_string(e.path().join("stat")).is_ok_and(|stat| {
                // `pid (comm) state ppid ...`: comm may hold anything, so split at the last ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                    .unwrap_or(false)
            })
        })
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// The `rasdrill-*` entries of `dir`.
fn rasdrill_temp_entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rasdrill-"))
        .collect()
}

/// Entries of a /proc directory (`fd`, `task`) of this process.
fn count(what: &str) -> usize {
    fs::read_dir(format!("/proc/self/{what}")).unwrap().count()
}

/// `n` scenarios in `dir`: each copies an empty stand-in tree, starts a daemon, collects twice.
fn scenarios(dir: &Path, first: usize, n: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir.join("tree")).unwrap();
    (first..first + n)
        .map(|i| {
            let file = dir.join(format!("load-{i:03}.yaml"));
            fs::write(
                &file,
                format!(
                    "name: load-{i:03}\n\
                     description: one of many cheap scenarios\n\
                     target: {{local: {{root: tree}}}}\n\
                     collectors:\n\
                     \x20 - command:\n\
                     \x20     name: out\n\
                     \x20     start: [sleep, '300']\n\
                     \x20     collect: [echo, 'scenario {i}']\n\
                     steps: [{{sleep_ms: 1}}]\n"
                ),
            )
            .unwrap();
            file
        })
        .collect()
}

#[test]
fn two_hundred_scenarios_leak_no_descriptor_thread_process_or_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("rd-tmp-")
        .tempdir()
        .unwrap();
    // This test has its process to itself (nextest): the runner's temporary directories go here.
    std::env::set_var("TMPDIR", tmp.path());
    let golden = dir.path().join("golden");
    let per_run = SCENARIOS / RUNS;
    let loaded: Vec<_> = (0..RUNS)
        .map(|r| {
            let files = scenarios(&dir.path().join(format!("run{r}")), r * per_run, per_run);
            crate::scenario::load(&files).unwrap()
        })
        .collect();
    let options = Options {
        golden_dir: golden.clone(),
        mode: Some(Mode::Accept),
        accel: AccelChoice::Tcg,
        allow: Default::default(),
        kernel: None,
        line_kernels: Vec::new(),
        agent: PathBuf::from("/nonexistent/agent"),
        rasdaemon: RasdaemonBuild::default(),
        guests: GuestReuse::Shared,
    };

    let (fds, threads) = (count("fd"), count("task"));
    let reports: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = loaded
            .iter()
            .map(|scenarios| {
                scope.spawn(|| {
                    let mut events: Vec<Event> = Vec::new();
                    super::run(scenarios, &options, &mut events)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });

    for report in &reports {
        assert_eq!(report.results.len(), per_run);
        let failed: Vec<_> = report
            .results
            .iter()
            .filter(|r| r.outcome() != Outcome::Passed)
            .map(|r| format!("{}: {:?}", r.name, r.failure))
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
    }
    assert_eq!(fs::read_dir(&golden).unwrap().count(), SCENARIOS);
    assert_eq!(count("fd"), fds, "file descriptors leaked");
    // Output readers end a moment after their process.
    let settled = wait_until(
        &Deadline::after(Duration::from_secs(5)),
        Duration::from_millis(10),
        || (count("task") == threads).then_some(()),
    );
    assert!(
        settled.is_some(),
        "threads leaked: {} before, {} after",
        threads,
        count("task")
    );
    assert_eq!(children(), Vec::<u32>::new());
    assert_eq!(rasdrill_temp_entries(tmp.path()), Vec::<String>::new());
}
