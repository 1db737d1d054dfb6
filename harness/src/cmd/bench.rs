//! `rasdrill bench`: the numbers behind the README's performance table, each measured side by
//! side with a naive reference in the same run, so the ratio holds on any machine.
//!
//! Every subcommand prints its runs on stderr, then the median, minimum and maximum of each
//! side, and as its last line `<name>: rasdrill <median> s, naive <median> s, ratio <r>x`
//! (ratio = naive median / rasdrill median). Tests never time anything; this command does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rasdrill_inject::debugfs::InjectionType;
use rasdrill_inject::MceRecord;
use rasdrill_qemu::wait::{wait_until, Deadline};

use crate::agent::protocol::{Reply, Request};
use crate::cmd::kernel::KernelArgs;
use crate::exit::Failure;
use crate::golden::{self, Mode};
use crate::guest::{AccelChoice, Guest, GuestSpec};
use crate::profile::{Profile, DEFAULT_PROFILE};
use crate::report::Progress;
use crate::run::{self, GuestReuse, Options};
use crate::target::Target;

pub const EXAMPLES: &str = "\
Examples:
  # Cold start to agent ready against the naive boot (bzImage, busybox), 5 runs each:
  rasdrill bench boot
  # A pristine guest from a snapshot against a cold boot of the same guest:
  rasdrill bench restore --runs 9
  # A corrected error from QEMU to its decoded line, against the 1 s timer poll:
  rasdrill bench ce-latency --profile amd-k8
  # 1000 corrected errors through mce-inject, against one per round trip:
  rasdrill bench burst
  # The suite against `rasdrill run --naive`, once each, with rasdrill's peak RSS:
  rasdrill bench suite

The last line of each is `<name>: rasdrill <median> s, naive <median> s, ratio <r>x`.";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Cold start to agent ready, against the naive boot (compressed bzImage, busybox)
    Boot(GuestArgs),
    /// A pristine ready guest restored from a snapshot, against a cold boot of the same guest
    Restore(GuestArgs),
    /// A corrected error from QEMU's `mce` to its decoded kernel line, against the timer poll
    CeLatency(GuestArgs),
    /// A burst of corrected errors through mce-inject `sw`, paced by what the kernel has
    /// consumed, against one error per agent round trip
    Burst(BurstArgs),
    /// The scenario suite, against `rasdrill run --naive`; also rasdrill's own peak RSS
    Suite(SuiteArgs),
}

#[derive(Debug, Args)]
pub struct GuestArgs {
    /// Runs of each side (the median is reported)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// The machine profile to boot
    #[arg(long, default_value = DEFAULT_PROFILE, value_parser = super::profile)]
    pub profile: &'static Profile,
    /// vCPUs instead of the profile's (bringing up each extra vCPU costs about a second under TCG)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub vcpus: Option<u32>,
    #[arg(long, value_enum, default_value_t = AccelChoice::Tcg)]
    pub accel: AccelChoice,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

#[derive(Debug, Args)]
pub struct BurstArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Corrected errors per burst
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub errors: u32,
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Scenario files or directories (default: scenarios/)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Runs of each side
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Where the golden files are (compared as in CI: nothing is written)
    #[arg(long, value_name = "DIR", default_value = golden::DEFAULT_DIR)]
    pub golden: PathBuf,
    #[arg(long, value_enum, default_value_t = AccelChoice::Tcg)]
    pub accel: AccelChoice,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

pub fn run(cmd: BenchCommand) -> Result<(), Failure> {
    match cmd {
        BenchCommand::Boot(args) => boot(&args),
        BenchCommand::Restore(args) => restore(&args),
        BenchCommand::CeLatency(args) => ce_latency(&args),
        BenchCommand::Burst(args) => burst(&args),
        BenchCommand::Suite(args) => suite(&args),
    }
}

/// The guest the arguments describe, the rasdrill way or the naive way.
fn spec(args: &GuestArgs, naive: bool) -> Result<GuestSpec, Failure> {
    let mut spec = GuestSpec::for_profile(
        args.profile,
        args.kernel.resolve()?,
        args.accel,
        super::this_executable()?,
    );
    if let Some(vcpus) = args.vcpus {
        spec.vcpus = vcpus;
    }
    spec.naive = naive;
    Ok(spec)
}

fn boot_guest(spec: &GuestSpec) -> Result<Guest, Failure> {
    Guest::boot(spec, &mut |_| {}).map_err(Failure::from)
}

/// Cold start to agent ready: initramfs, QEMU, kernel, agent setup.
fn boot(args: &GuestArgs) -> Result<(), Failure> {
    let measure = |naive: bool| {
        let spec = spec(args, naive)?;
        let side = side_name(naive);
        repeat(args.runs, side, |_| {
            let guest = boot_guest(&spec)?;
            let t = guest.boot_time();
            guest.shutdown();
            Ok(t)
        })
    };
    let ours = measure(false)?;
    let naive = measure(true)?;
    finish(
        "boot",
        &guest_label(args, "boot to agent ready"),
        ours,
        naive,
    )
}

/// A restored guest, ready when its agent answers, against a cold boot of the same guest.
fn restore(args: &GuestArgs) -> Result<(), Failure> {
    let spec = spec(args, false)?;
    let mut saved_guest = boot_guest(&spec)?;
    let started = Instant::now();
    let snapshot = saved_guest.save().map_err(Failure::from)?;
    eprintln!(
        "rasdrill: saved the ready guest in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    saved_guest.shutdown();
    let ours = repeat(args.runs, "restore", |_| {
        let guest = Guest::restore(&snapshot, &mut |_| {}).map_err(Failure::from)?;
        let t = guest.boot_time();
        guest.shutdown();
        Ok(t)
    })?;
    let naive = repeat(args.runs, "cold boot", |_| {
        let guest = boot_guest(&spec)?;
        let t = guest.boot_time();
        guest.shutdown();
        Ok(t)
    })?;
    finish(
        "restore",
        &guest_label(args, "pristine guest to agent answer"),
        ours,
        naive,
    )
}

/// A corrected DRAM ECC error on bank 4: edac_mce_amd decodes it on AMD profiles, the raw
/// `mce:` lines carry it on Intel ones; both print its status in hex.
fn dram_ce() -> MceRecord {
    MceRecord {
        bank: 4,
        status: 0x9c7d_4100_9208_0813,
        addr: 0x1234_5000,
        ..MceRecord::default()
    }
}

/// From QEMU's `mce` command to the kernel line that shows the record's status.
fn ce_latency(args: &GuestArgs) -> Result<(), Failure> {
    let record = dram_ce();
    let status = format!("{:x}", record.status);
    let measure = |naive: bool| {
        let mut guest = boot_guest(&spec(args, naive)?)?;
        let result = repeat(args.runs, side_name(naive), |_| {
            let mut after = guest.kmsg_last().map_err(Failure::from)?;
            let started = Instant::now();
            guest.inject_qemu(&record).map_err(Failure::from)?;
            let deadline = Deadline::after(Duration::from_secs(10));
            let logged = wait_until(&deadline, Duration::from_millis(2), || {
                let records = match guest.kmsg(after) {
                    Ok(records) => records,
                    Err(e) => return Some(Err(Failure::from(e))),
                };
                if records.iter().any(|r| r.text.contains(&status)) {
                    return Some(Ok(started.elapsed()));
                }
                after = records.last().map(|r| r.seq).or(after);
                None
            });
            logged.unwrap_or_else(|| {
                Err(Failure::infrastructure(format!(
                    "the kernel did not log status {status} within 10 s of the `mce` command"
                )))
            })
        });
        guest.shutdown();
        result
    };
    let ours = measure(false)?;
    let naive = measure(true)?;
    finish(
        "ce-latency",
        &guest_label(args, "QEMU `mce` to the decoded line"),
        ours,
        naive,
    )
}

/// `errors` corrected errors through mce-inject `sw`, until the trace and the kernel log have
/// every one of them.
fn burst(args: &BurstArgs) -> Result<(), Failure> {
    let record = dram_ce();
    let status = format!("{:x}", record.status);
    let n = args.errors as usize;
    let mut guest = boot_guest(&spec(&args.guest, false)?)?;
    let mut measure = |naive: bool| {
        repeat(args.guest.runs, side_name(naive), |_| {
            let mut counted = Counted {
                kmsg_cursor: guest.kmsg_last().map_err(Failure::from)?,
                trace_cursor: last_trace_seq(&mut guest)?,
                kmsg_seen: 0,
                trace_seen: 0,
            };
            let started = Instant::now();
            if naive {
                for i in 0..n {
                    let one = Request::Inject {
                        record: record.clone(),
                        flags: InjectionType::Sw,
                    };
                    guest
                        .request("injecting through mce-inject", one, BURST_TIMEOUT)
                        .map_err(Failure::from)?;
                    wait_counted(&mut guest, &status, &mut counted, i + 1)?;
                }
            } else {
                let burst = Request::Burst {
                    record: record.clone(),
                    flags: InjectionType::Sw,
                    count: args.errors,
                };
                match guest.request("injecting a burst", burst, BURST_TIMEOUT) {
                    Ok(Reply::Burst { .. }) => {}
                    Ok(other) => {
                        return Err(Failure::infrastructure(format!(
                            "the agent answered a burst with {other:?}"
                        )))
                    }
                    Err(e) => return Err(Failure::from(e)),
                }
                wait_counted(&mut guest, &status, &mut counted, n)?;
            }
            Ok(started.elapsed())
        })
    };
    let ours = measure(false)?;
    let naive = measure(true)?;
    guest.shutdown();
    finish(
        "burst",
        &guest_label(
            &args.guest,
            &format!("{n} corrected errors through mce-inject sw, counted by kmsg and trace"),
        ),
        ours,
        naive,
    )
}

/// How long one agent request of a burst may take.
const BURST_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the counts may stand still before a burst is declared lost.
const STALL: Duration = Duration::from_secs(10);

fn last_trace_seq(guest: &mut Guest) -> Result<Option<u64>, Failure> {
    let batch = guest.trace(None).map_err(Failure::from)?;
    Ok(batch.last_seq())
}

/// What a burst's run has counted so far, and from where the next poll reads (each side reads
/// every record once, however many polls it takes).
struct Counted {
    kmsg_cursor: Option<u64>,
    trace_cursor: Option<u64>,
    kmsg_seen: usize,
    trace_seen: usize,
}

/// Waits until the kernel log shows `want` records with `status` and the trace as many
/// `mce_record` events, both counted since the run's cursors.
fn wait_counted(
    guest: &mut Guest,
    status: &str,
    counted: &mut Counted,
    want: usize,
) -> Result<(), Failure> {
    // One poll: `Some(true)` when everything is counted, `Some(false)` on progress.
    let mut poll = || -> Result<Option<bool>, Failure> {
        let records = guest.kmsg(counted.kmsg_cursor).map_err(Failure::from)?;
        counted.kmsg_seen += records.iter().filter(|r| r.text.contains(status)).count();
        counted.kmsg_cursor = records.last().map(|r| r.seq).or(counted.kmsg_cursor);
        let batch = guest.trace(counted.trace_cursor).map_err(Failure::from)?;
        counted.trace_seen += batch
            .events
            .iter()
            .filter(|e| e.event == "mce_record")
            .count();
        counted.trace_cursor = batch.last_seq().or(counted.trace_cursor);
        if counted.kmsg_seen >= want && counted.trace_seen >= want {
            return Ok(Some(true));
        }
        Ok((!records.is_empty() || !batch.events.is_empty()).then_some(false))
    };
    // Each stretch without progress has its own deadline.
    loop {
        let stretch = Deadline::after(STALL);
        match wait_until(&stretch, Duration::from_millis(5), || poll().transpose()) {
            Some(Ok(true)) => return Ok(()),
            Some(Ok(false)) => continue,
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Err(Failure::infrastructure(format!(
        "nothing new for {} s: the kernel log shows {} and the trace {} of {want} errors (a \
         full record pool drops records: see the guest's console)",
        STALL.as_secs(),
        counted.kmsg_seen,
        counted.trace_seen,
    )))
}

/// The suite in this process (so its peak RSS is rasdrill's alone: QEMU is a child), then the
/// same scenarios the naive way. Both must pass.
fn suite(args: &SuiteArgs) -> Result<(), Failure> {
    // Both ways run them: checked for the naive way, the stricter.
    let super::run::Loaded {
        scenarios,
        kernel,
        line_kernels,
    } = super::run::load(&args.paths, &args.kernel, true)?;
    let options = |guests| -> Result<Options, Failure> {
        Ok(Options {
            golden_dir: args.golden.clone(),
            mode: Some(Mode::Check { ci: true }),
            accel: args.accel,
            allow: Default::default(),
            kernel: kernel.clone(),
            line_kernels: line_kernels.clone(),
            agent: super::this_executable()?,
            rasdaemon: Default::default(),
            guests,
        })
    };
    let measure = |guests| {
        let options = options(guests)?;
        let side = side_name(guests == GuestReuse::Naive);
        repeat(args.runs, side, |_| {
            let report = run::run(&scenarios, &options, &mut Progress::stderr());
            super::run::verdict(&report)?;
            Ok(report.duration)
        })
    };
    let ours = measure(GuestReuse::Shared)?;
    let peak = peak_rss_kib();
    let naive = measure(GuestReuse::Naive)?;
    match peak {
        Some(kib) => crate::exit::print(format_args!(
            "rasdrill's own peak RSS during the suite (QEMU excluded): {:.1} MiB\n",
            kib as f64 / 1024.0
        ))?,
        None => crate::exit::print(
            "rasdrill's own peak RSS: unknown (no VmHWM in /proc/self/status)\n",
        )?,
    }
    let label = format!("the suite, {} scenarios", scenarios.len());
    finish("suite", &label, ours, naive)
}

/// This process's peak resident set (`VmHWM`), in KiB. Children (QEMU) are not counted.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn side_name(naive: bool) -> &'static str {
    if naive {
        "naive"
    } else {
        "rasdrill"
    }
}

fn guest_label(args: &GuestArgs, what: &str) -> String {
    format!(
        "{what}, {} ({} vCPU, {})",
        args.profile.name,
        args.vcpus.unwrap_or(args.profile.vcpus),
        format!("{:?}", args.accel).to_lowercase()
    )
}

/// Runs `once` `runs` times, saying each result on stderr.
fn repeat(
    runs: u32,
    side: &str,
    mut once: impl FnMut(u32) -> Result<Duration, Failure>,
) -> Result<Vec<Duration>, Failure> {
    (1..=runs)
        .map(|i| {
            let t = once(i)?;
            eprintln!("rasdrill: {side} {i}/{runs}: {:.3} s", t.as_secs_f64());
            Ok(t)
        })
        .collect()
}

/// Prints both sides' statistics and the last line.
fn finish(
    name: &str,
    label: &str,
    mut ours: Vec<Duration>,
    mut naive: Vec<Duration>,
) -> Result<(), Failure> {
    let ours = Stats::of(&mut ours);
    let naive = Stats::of(&mut naive);
    crate::exit::print(format_args!(
        "{label}\n  rasdrill: {ours}\n  naive:    {naive}\n{}\n",
        last_line(name, &ours, &naive)
    ))
}

/// Minimum, median (lower median for an even count) and maximum of some runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    runs: usize,
    min: Duration,
    median: Duration,
    max: Duration,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Stats {
        samples.sort();
        Stats {
            runs: samples.len(),
            min: samples[0],
            median: samples[(samples.len() - 1) / 2],
            max: samples[samples.len() - 1],
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:.3} s (min {:.3} s, max {:.3} s) over {} run{}",
            self.median.as_secs_f64(),
            self.min.as_secs_f64(),
            self.max.as_secs_f64(),
            self.runs,
            if self.runs == 1 { "" } else { "s" }
        )
    }
}

fn last_line(name: &str, ours: &Stats, naive: &Stats) -> String {
    let ratio = naive.median.as_secs_f64() / ours.median.as_secs_f64().max(1e-9);
    format!(
        "{name}: rasdrill {:.3} s, naive {:.3} s, ratio {ratio:.1}x",
        ours.median.as_secs_f64(),
        naive.median.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        let odd = Stats::of(&mut [ms(30), ms(10), ms(20)]);
        assert_eq!((odd.min, odd.median, odd.max), (ms(10), ms(20), ms(30)));
        let even = Stats::of(&mut [ms(40), ms(10), ms(30), ms(20)]);
        assert_eq!((even.min, even.median, even.max), (ms(10), ms(20), ms(40)));
    }

    #[test]
    fn the_last_line_gives_both_medians_and_their_ratio() {
        let ms = Duration::from_millis;
        let ours = Stats::of(&mut [ms(250), ms(240), ms(300)]);
        let naive = Stats::of(&mut [ms(2100), ms(2000), ms(2600)]);
        assert_eq!(
            last_line("restore", &ours, &naive),
            "restore: rasdrill 0.250 s, naive 2.100 s, ratio 8.4x"
        );
        assert_eq!(
            ours.to_string(),
            "median 0.250 s (min 0.240 s, max 0.300 s) over 3 runs"
        );
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
    }
}
