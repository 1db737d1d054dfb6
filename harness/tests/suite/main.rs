//! The shipped suite as one test per scenario and kernel line, for cargo-nextest: each test runs
//! `rasdrill run <scenario> --ci --kernel-release <release>`, so nextest can list, filter, retry
//! and partition the suite (`cargo nextest run --test suite --partition hash:1/4`) and write its
//! JUnit, while `rasdrill run` keeps working alone. A test is named
//! `<scenario>::kernel-<line>`, e.g. `amd-f15h-dram-ce-qemu::kernel-6.1`.
//!
//! The kernel lines are the pinned ones (`rasdrill_qemu::pinned::LINES`), each run on its pinned
//! release: what is cached decides nothing. A pinned line whose kernel is not cached is still a
//! test of each scenario, which fails saying to run `rasdrill kernel fetch`, so that a line
//! cannot drop out of CI unnoticed. A scenario that names its own line
//! (`machine.kernel_line`) is one test on that line; a local scenario, which boots nothing, is
//! one test on the line `none`.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use rasdrill::scenario;
use rasdrill_qemu::kernel::KernelCache;
use rasdrill_qemu::pinned;

fn main() {
    let args = Arguments::from_args();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenarios = match scenario::load(&[repo.join(scenario::DEFAULT_DIR)]) {
        Ok(s) => s,
        Err(invalid) => {
            for p in &invalid.problems {
                eprintln!("{p}");
            }
            std::process::exit(2);
        }
    };
    let mut trials = Vec::new();
    for s in &scenarios {
        let lines: Vec<&'static str> = match s.machine() {
            None => vec!["none"],
            Some(m) => match m.kernel_line {
                Some(line) => vec![line.name],
                None => pinned::LINES.iter().map(|l| l.name).collect(),
            },
        };
        for line in lines {
            let file = s.file.clone();
            let name = format!("{}::kernel-{line}", s.name);
            let release = pinned::by_name(line).map(|l| l.release);
            trials.push(Trial::test(name, move || {
                if let Some(release) = release {
                    cached(line, release)?;
                }
                run(&file, release)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Fails unless the pinned `release` of `line` is in the kernel cache.
fn cached(line: &str, release: &str) -> Result<(), Failed> {
    let cache = KernelCache::from_env().map_err(|e| format!("no kernel cache: {e}"))?;
    cache.find(Some(release)).map(drop).map_err(|e| {
        format!(
            "pinned kernel line {line} cannot run: {e}\n\
             run `rasdrill kernel fetch` (it fetches every pinned line)"
        )
        .into()
    })
}

/// One scenario on one kernel, as CI runs it: nothing written, the exit code decides.
fn run(file: &PathBuf, release: Option<&str>) -> Result<(), Failed> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rasdrill"));
    command.arg("run").arg(file).arg("--ci");
    if let Some(release) = release {
        command.args(["--kernel-release", release]);
    }
    let out = command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .map_err(|e| format!("cannot run rasdrill: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`rasdrill run {} --ci` exited with {}\n{}{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}
