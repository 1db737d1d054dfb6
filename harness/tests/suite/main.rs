//! The shipped suite as one test per scenario and kernel line, for cargo-nextest: each test runs
//! `rasdrill run <scenario> --ci --kernel-release <release>`, so nextest can list, filter, retry
//! and partition the suite (`cargo nextest run --test suite --partition hash:1/4`) and write its
//! JUnit, while `rasdrill run` keeps working alone. A test is named
//! `<scenario>::kernel-<line>`, e.g. `amd-f15h-dram-ce-qemu::kernel-6.1`.
//!
//! The kernel lines are the cached kernels' lines (`rasdrill kernel fetch` puts the pinned ones
//! there); a local scenario, which boots nothing, is one test on the line `none`.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use rasdrill::scenario;
use rasdrill_qemu::kernel::KernelCache;

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
    let kernels = kernel_lines();
    let mut trials = Vec::new();
    for s in &scenarios {
        let lines: Vec<(String, Option<String>)> = if s.machine().is_some() {
            kernels
                .iter()
                .map(|(line, release)| (line.clone(), Some(release.clone())))
                .collect()
        } else {
            vec![("none".to_string(), None)]
        };
        for (line, release) in lines {
            let file = s.file.clone();
            let name = format!("{}::kernel-{line}", s.name);
            trials.push(Trial::test(name, move || run(&file, release.as_deref())));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// `(line, release)` of each cached kernel: `6.1.0-57-amd64` is on the line `6.1`.
fn kernel_lines() -> Vec<(String, String)> {
    let Ok(cache) = KernelCache::from_env() else {
        return Vec::new();
    };
    let mut lines: Vec<(String, String)> = Vec::new();
    for kernel in cache.list().unwrap_or_default() {
        let line: String = kernel
            .release
            .split(['.', '-'])
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        // The newest release of a line stands for it (the cache lists releases in order).
        lines.retain(|(l, _)| *l != line);
        lines.push((line, kernel.release.clone()));
    }
    lines
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
