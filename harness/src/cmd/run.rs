//! `rasdrill run`: run scenarios, compare what the decoders said with golden files.

use std::path::PathBuf;

use clap::Args;
use rasdrill_inject::guard::Allow;
use rasdrill_qemu::kernel::{Kernel, KernelCache, KernelError};
use rasdrill_qemu::pinned::{self, KernelLine};

use crate::cmd::kernel::KernelArgs;
use crate::collect::rasdaemon_build::RasdaemonBuild;
use crate::exit::{Code, Failure};
use crate::golden::{self, Mode};
use crate::guest::AccelChoice;
use crate::report::{Outcome, Progress, RunReport};
use crate::run::{self, GuestReuse, Options};
use crate::scenario::{self, Scenario};

pub const EXAMPLES: &str = "\
Examples:
  # The whole suite (scenarios/), compared with golden/; fetches a guest kernel if none is cached:
  rasdrill run
  # Some scenarios, with reports for CI:
  rasdrill run scenarios/amd-f15h-dram-ce-qemu.yaml --junit report.xml --json report.json
  # After reviewing the diffs: make the golden files say what this run saw:
  rasdrill run --accept
  # Every pinned kernel line (6.1 and 6.12), each scenario once per line; then accept per line:
  rasdrill run --all-lines
  rasdrill run --all-lines --accept
  # One pinned line, or a cached release:
  rasdrill run --kernel-release 6.12
  # Another kernel for the guests:
  rasdrill run --kernel ~/linux/vmlinux --modules ~/linux/mods/lib/modules/6.12.0

Scenarios are YAML files (docs/scenarios.md). All of them are checked before anything boots.
Guest scenarios that need the same guest share one boot. A mismatch prints a diff and writes
<golden>.snap.new beside the golden file (not in CI: --ci, or CI set and not false/0).
Local scenarios, on this machine or on a tree that stands in for one, are guarded as
`rasdrill inject` is: uncorrected and fatal errors need --allow-uncorrected or --allow-fatal.";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, or directories of *.yaml files (default: scenarios/)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Write the golden files that differ or are missing (and remove their .snap.new)
    #[arg(long, conflicts_with = "ci")]
    pub accept: bool,

    /// Behave as in CI: write nothing, not even .snap.new files (also when CI is set and not false/0)
    #[arg(long)]
    pub ci: bool,

    /// Write a JUnit XML report here
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write a JSON report here
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Where the golden files are
    #[arg(long, value_name = "DIR", default_value = golden::DEFAULT_DIR)]
    pub golden: PathBuf,

    /// How QEMU runs the guests: auto tries KVM (bounded) and falls back to TCG
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto, help_heading = "Guest")]
    pub accel: AccelChoice,

    /// Give every guest scenario a pristine guest, restored from a snapshot of its group's
    /// guest taken when it was ready
    #[arg(long, help_heading = "Guest", conflicts_with = "naive")]
    pub isolate: bool,

    /// The naive way, for comparison: a cold boot per scenario from the compressed bzImage,
    /// busybox in the initramfs, corrected errors left to the 1 s timer poll
    #[arg(long, help_heading = "Guest")]
    pub naive: bool,

    #[command(flatten)]
    pub kernel: KernelArgs,

    /// Run on every pinned kernel line, one after the other: each guest scenario once per line
    /// (a scenario naming its `machine.kernel_line` only on that one), local scenarios once
    #[arg(long, help_heading = "Guest kernel", conflicts_with_all = ["kernel", "release"])]
    pub all_lines: bool,

    /// The rasdaemon of scenarios that do not choose one: 0.6.8 (Debian 12), 0.8.3 (Debian 13,
    /// fetched with its own apt lists inside the cache), or the path of a rasdaemon you built
    #[arg(
        long,
        value_name = "VERSION|PATH",
        default_value = "0.6.8",
        help_heading = "Guest"
    )]
    pub rasdaemon: RasdaemonBuild,

    /// Local scenarios (this machine or a stand-in tree): allow uncorrected and deferred errors
    #[arg(long, help_heading = "Safety")]
    pub allow_uncorrected: bool,

    /// Local scenarios (this machine or a stand-in tree): allow fatal errors (they panic it);
    /// implies --allow-uncorrected
    #[arg(long, help_heading = "Safety")]
    pub allow_fatal: bool,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let lines: Vec<Option<&'static KernelLine>> = if args.all_lines {
        pinned::LINES.iter().map(Some).collect()
    } else {
        vec![None]
    };
    // Everything is loaded, and every kernel found or fetched, before the first guest boots.
    let mut passes = Vec::new();
    for line in &lines {
        let kernel = match line {
            Some(l) => KernelArgs {
                release: Some(l.release.to_string()),
                ..args.kernel.clone()
            },
            None => args.kernel.clone(),
        };
        passes.push(load(&args.paths, &kernel, args.naive)?);
    }
    let mut report = RunReport::default();
    for (index, (line, loaded)) in lines.iter().zip(passes).enumerate() {
        if report.interrupted.is_some() {
            break;
        }
        // Local scenarios boot nothing: they run once, in the first pass; a scenario on a line
        // of its own runs in that line's pass.
        let scenarios: Vec<Scenario> = loaded
            .scenarios
            .into_iter()
            .filter(|s| match (line, s.machine()) {
                (None, _) => true,
                (Some(_), None) => index == 0,
                (Some(l), Some(m)) => m.kernel_line.is_none_or(|own| own.name == l.name),
            })
            .collect();
        if let Some(l) = line {
            eprintln!(
                "rasdrill: kernel line {} ({} of {}): {} scenario{}",
                l.name,
                index + 1,
                lines.len(),
                scenarios.len(),
                if scenarios.len() == 1 { "" } else { "s" }
            );
        }
        let options = Options {
            golden_dir: args.golden.clone(),
            mode: Some(Mode::from_env(args.accept, args.ci)),
            accel: args.accel,
            allow: Allow {
                uncorrected: args.allow_uncorrected,
                fatal: args.allow_fatal,
            },
            kernel: loaded.kernel,
            line_kernels: loaded.line_kernels,
            agent: super::this_executable()?,
            rasdaemon: args.rasdaemon.clone(),
            guests: if args.naive {
                GuestReuse::Naive
            } else if args.isolate {
                GuestReuse::Isolated
            } else {
                GuestReuse::Shared
            },
        };
        report.append(run::run(&scenarios, &options, &mut Progress::stderr()));
    }
    // The reports are written even when nobody reads standard output any more.
    let printed = crate::exit::print(report.summary());
    if let Some(path) = &args.junit {
        report.write_junit(path).map_err(|e| {
            Failure::infrastructure(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    if let Some(path) = &args.json {
        report.write_json(path).map_err(|e| {
            Failure::infrastructure(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    printed?;
    verdict(&report)
}

/// Validated scenarios and the kernels their guests boot.
pub struct Loaded {
    pub scenarios: Vec<Scenario>,
    /// The kernel of guest scenarios that do not name one (`None` when none needs it).
    pub kernel: Option<Kernel>,
    /// The kernels of the pinned lines scenarios name (`machine.kernel_line`).
    pub line_kernels: Vec<Kernel>,
}

/// The scenarios under `paths` (default `scenarios/`), all validated (`naive`: for the naive
/// way too), the kernel of those that do not name one and those of the pinned lines they name,
/// found or fetched now.
pub fn load(paths: &[PathBuf], kernel: &KernelArgs, naive: bool) -> Result<Loaded, Failure> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(scenario::DEFAULT_DIR)]
    } else {
        paths.to_vec()
    };
    let scenarios = scenario::load(&paths).map_err(|invalid| {
        for problem in &invalid.problems {
            eprintln!("{problem}\n");
        }
        let n = invalid.problems.len();
        Failure::bad_input(format!(
            "{n} problem{} in the scenarios; nothing ran",
            if n == 1 { "" } else { "s" }
        ))
    })?;
    let merges = if naive {
        scenario::merges::naive(&scenarios)
    } else {
        Vec::new()
    };
    if !merges.is_empty() {
        for problem in &merges {
            eprintln!("{problem}\n");
        }
        let n = merges.len();
        return Err(Failure::bad_input(format!(
            "{n} problem{} in the scenarios the naive way (a corrected error waits in its bank \
             for the kernel's timer poll); nothing ran",
            if n == 1 { "" } else { "s" }
        )));
    }
    let default = if needs_default_kernel(&scenarios) {
        Some(default_kernel(kernel)?)
    } else {
        None
    };
    let mut line_kernels: Vec<Kernel> = Vec::new();
    for line in scenarios
        .iter()
        .filter_map(|s| s.machine().and_then(|m| m.kernel_line))
    {
        if !line_kernels.iter().any(|k| k.release == line.release) {
            line_kernels.push(default_kernel(&KernelArgs {
                kernel: None,
                modules: None,
                release: Some(line.release.to_string()),
            })?);
        }
    }
    let missing = run::plan::missing_modules(&scenarios, default.as_ref(), &line_kernels);
    if !missing.is_empty() {
        for problem in &missing {
            eprintln!("{problem}\n");
        }
        return Err(Failure::bad_input(format!(
            "{} module{} missing from the guest kernel; nothing ran",
            missing.len(),
            if missing.len() == 1 { " is" } else { "s are" }
        )));
    }
    Ok(Loaded {
        scenarios,
        kernel: default,
        line_kernels,
    })
}

/// Whether any guest scenario boots the default kernel.
fn needs_default_kernel(scenarios: &[Scenario]) -> bool {
    scenarios.iter().any(|s| {
        s.machine()
            .is_some_and(|m| m.kernel.is_none() && m.kernel_line.is_none())
    })
}

/// `--kernel/--modules`, else the cached kernel (the default pinned line unless
/// `--kernel-release` names another), else one fetched now (the main job fetches what it
/// needs). Says which kernel the guests will boot.
fn default_kernel(args: &KernelArgs) -> Result<Kernel, Failure> {
    let kernel = if args.kernel.is_some() {
        args.resolve()?
    } else {
        let cache = KernelCache::from_env().map_err(Failure::bad_input)?;
        match cache.find(args.release.as_deref()) {
            Ok(kernel) => kernel,
            Err(KernelError::NotCached { release, .. }) => {
                eprintln!(
                    "rasdrill: kernel {release} is not in {}: fetching it",
                    cache.kernels_dir().display()
                );
                cache
                    .fetch(Some(&release), &mut |event| eprintln!("rasdrill: {event}"))
                    .map_err(|e| {
                        Failure::infrastructure(format!("cannot fetch a guest kernel: {e}"))
                    })?
            }
            Err(e) => return Err(Failure::infrastructure(e)),
        }
    };
    let how = if args.kernel.is_some() {
        format!("from {}", kernel.vmlinux.display())
    } else {
        pinning(&kernel.release)
    };
    eprintln!("rasdrill: guest kernel {} ({how})", kernel.release);
    Ok(kernel)
}

/// `pinned line 6.1, the default`, or that a cached release is not a pinned one.
fn pinning(release: &str) -> String {
    let line = pinned::line_of(release).unwrap_or_default();
    match pinned::by_name(&line) {
        Some(p) if p.release == release && line == pinned::DEFAULT_LINE => {
            format!("pinned line {line}, the default")
        }
        Some(p) if p.release == release => format!("pinned line {line}"),
        _ => "cached, not a pinned release".to_string(),
    }
}

pub fn verdict(report: &RunReport) -> Result<(), Failure> {
    if let Some(signal) = report.interrupted {
        let ran = report.results.len();
        let name = rasdrill_qemu::interrupt::name(signal);
        return Err(Failure::interrupted(
            signal,
            match ran {
                0 => format!("interrupted by {name} before any scenario ran"),
                _ => format!(
                    "interrupted by {name}: {ran} scenario{} ran, the last one cut short",
                    if ran == 1 { "" } else { "s" }
                ),
            },
        ));
    }
    let code = report.exit_code();
    if code == Code::Success {
        return Ok(());
    }
    let failed = report.results.len() - report.count(Outcome::Passed);
    Err(Failure::new(
        code,
        format!(
            "{failed} of {} scenario{} did not pass",
            report.results.len(),
            if report.results.len() == 1 { "" } else { "s" }
        ),
    ))
}
