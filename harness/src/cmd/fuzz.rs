//! `rasdrill fuzz`: seeded random corrected errors injected into one guest through QEMU, each
//! judged by the oracle and the kernel's crash check; every failing record is shrunk to a
//! minimal one and written out as a reproducer scenario.
//!
//! Each record is its own in-memory scenario (as `rasdrill inject --guest` builds one), so the
//! runner gives each its own collectors and verdict while all share one guest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rasdrill_inject::{MceRecord, Payload};

use crate::cmd::kernel::KernelArgs;
use crate::exit::{self, Failure};
use crate::guest::AccelChoice;
use crate::profile::Profile;
use crate::randrec::{self, Line};
use crate::report::{Event, FailureKind, Outcome, ScenarioResult, Sink};
use crate::run::{self, Options};
use crate::scenario::{Scenario, StepKind, Wait, WaitFor, KMSG, MCE_RECORD, TRACE};

pub const EXAMPLES: &str = "\
Examples:
  # Twenty random corrected errors into an amd-f15h guest; reproducers in fuzz-findings/:
  rasdrill fuzz --seed 1 --count 20
  # The records seed 1 gives, without booting anything:
  rasdrill fuzz --seed 1 --count 20 --list
  # An Intel guest on the 6.12 kernel line:
  rasdrill fuzz --seed 7 --count 50 --profile intel-skx --kernel-release 6.12
  # Only what is not documented yet (edac_mce_amd names no class for memory-controller codes):
  rasdrill fuzz --seed 1 --count 20 --known kmsg/edac-mce-amd/class

What is generated: corrected errors only (VAL EN, UC and PCC clear), with an architectural
error code of a memory-controller, cache, TLB or bus class, a small model code, and at random
OVER, MISCV and ADDRV. They go in through QEMU's mce command. Uncorrected errors panic the guest
and are not generated (yet).

The last line is `fuzz: <N> records, <F> findings, <O> oopses (seed <S>)`. Exit code 0 when
there are no findings, no oopses and every record was decoded; 1 otherwise.";

/// At most this many records in one run: each costs a poll interval or more in the guest.
const MAX_COUNT: usize = 10_000;

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// The seed: the same seed gives the same records and the same report
    #[arg(long, value_parser = super::number)]
    pub seed: u64,
    /// How many records to generate
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// The guest's machine profile
    #[arg(long, value_parser = super::profile, default_value = "amd-f15h")]
    pub profile: &'static Profile,
    /// Print the generated records, one a line, and boot nothing
    #[arg(long)]
    pub list: bool,
    /// A finding already documented (`collector/decoder/field`, e.g.
    /// `kmsg/edac-mce-amd/class`): reported as known, not counted, not shrunk; repeatable
    #[arg(long = "known", value_name = "KEY")]
    pub known: Vec<String>,
    /// Where reproducer scenarios go, one per failing record
    #[arg(long, value_name = "DIR", default_value = "fuzz-findings")]
    pub out: PathBuf,
    /// Seconds to wait for each record's decoded output
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub timeout: f64,
    /// How QEMU runs the guest: auto tries KVM (bounded) and falls back to TCG
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

/// What went wrong with one record, the key a shrunk record must keep reproducing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Signature {
    /// A finding's key, `collector/decoder/field`.
    Finding(String),
    /// The kernel reported a crash.
    Oops,
}

/// One record's verdict.
#[derive(Debug, Default)]
struct Judged {
    /// New findings' keys, sorted, with each finding as the oracle reports it.
    findings: BTreeMap<String, Vec<String>>,
    /// The keys of the findings `--known` lists, sorted.
    known: Vec<String>,
    /// The first line of each crash report.
    oopses: Vec<String>,
    /// The run failed for another reason (the record was not decoded in time, the guest).
    failure: Option<(FailureKind, String)>,
}

impl Judged {
    fn signatures(&self) -> Vec<Signature> {
        let mut s: Vec<Signature> = self
            .findings
            .keys()
            .cloned()
            .map(Signature::Finding)
            .collect();
        if !self.oopses.is_empty() {
            s.push(Signature::Oops);
        }
        s
    }

    fn shows(&self, sig: &Signature) -> bool {
        match sig {
            Signature::Finding(key) => self.findings.contains_key(key),
            Signature::Oops => !self.oopses.is_empty(),
        }
    }
}

pub fn run(args: FuzzArgs) -> Result<(), Failure> {
    if args.count > MAX_COUNT {
        return Err(Failure::bad_input(format!(
            "--count {}: at most {MAX_COUNT} records in one run",
            args.count
        )));
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(Failure::bad_input(format!(
            "--timeout {}: a number of seconds above 0",
            args.timeout
        )));
    }
    let collectors = [KMSG.to_string(), TRACE.to_string()];
    for key in &args.known {
        crate::oracle::known::valid_key(key, &collectors)
            .map_err(|e| Failure::bad_input(format!("--known {key}: {e}")))?;
    }
    let records = randrec::generate(args.seed, args.count, args.profile.vcpus);
    if args.list {
        let mut text = String::new();
        for (i, r) in records.iter().enumerate() {
            let _ = writeln!(text, "record {i}: {}", Line(r));
        }
        return exit::print(text);
    }
    let fuzz = Fuzz {
        options: super::flag_run_options(args.accel, &args.kernel)?,
        args: &args,
    };

    let judged = fuzz.judge(&records)?;
    let mut findings = 0;
    let mut oopses = 0;
    let mut failed = false;
    let mut failing = Vec::new();
    for (i, (record, j)) in records.iter().zip(&judged).enumerate() {
        let mut line = format!("record {i}: {}: ", Line(record));
        findings += j.findings.len();
        oopses += j.oopses.len();
        if let Some((_, why)) = &j.failure {
            failed = true;
            let _ = write!(line, "failed: {why}");
        } else if j.findings.is_empty() && j.oopses.is_empty() {
            line.push_str("ok");
            if !j.known.is_empty() {
                let _ = write!(line, " (known: {})", j.known.join(", "));
            }
        } else {
            let keys: Vec<String> = j.signatures().iter().map(describe).collect();
            line.push_str(&keys.join(", "));
            failing.push((i, j.signatures()[0].clone()));
        }
        println!("{line}");
        for f in j.findings.values().flatten() {
            println!("  {}", f.replace('\n', "\n  "));
        }
        for o in &j.oopses {
            println!("  oops: {o}");
        }
    }

    if !failing.is_empty() {
        let start: Vec<MceRecord> = failing.iter().map(|(i, _)| records[*i].clone()).collect();
        let sigs: Vec<Signature> = failing.iter().map(|(_, s)| s.clone()).collect();
        let shrunk = fuzz.shrink(start, &sigs)?;
        fs::create_dir_all(&args.out).map_err(|e| {
            Failure::infrastructure(format!("cannot create {}: {e}", args.out.display()))
        })?;
        for ((i, sig), record) in failing.iter().zip(&shrunk) {
            let path = args
                .out
                .join(format!("fuzz-seed-{}-record-{i}.yaml", args.seed));
            let text = reproducer(args.seed, *i, args.profile, record, sig, args.timeout);
            fs::write(&path, text).map_err(|e| {
                Failure::infrastructure(format!("cannot write {}: {e}", path.display()))
            })?;
            println!(
                "record {i} shrunk to {} ({}): {}",
                Line(record),
                describe(sig),
                path.display()
            );
        }
    }

    println!(
        "fuzz: {} records, {findings} findings, {oopses} oopses (seed {})",
        records.len(),
        args.seed
    );
    if judged
        .iter()
        .any(|j| matches!(j.failure, Some((FailureKind::Infrastructure, _))))
    {
        return Err(Failure::infrastructure(
            "the guest failed during the fuzz run",
        ));
    }
    if findings > 0 || oopses > 0 || failed {
        // The code a run with findings exits with (harness/src/exit.rs).
        return Err(Failure::new(
            Outcome::Findings.code(),
            format!(
                "{findings} findings, {oopses} oopses; reproducers in {}",
                args.out.display()
            ),
        ));
    }
    Ok(())
}

fn describe(sig: &Signature) -> String {
    match sig {
        Signature::Finding(key) => format!("finding {key}"),
        Signature::Oops => "oops".into(),
    }
}

struct Fuzz<'a> {
    options: Options,
    args: &'a FuzzArgs,
}

impl Fuzz<'_> {
    /// Injects each record into one guest of the profile, one scenario each, and judges it.
    fn judge(&self, records: &[MceRecord]) -> Result<Vec<Judged>, Failure> {
        let scenarios: Vec<Scenario> = records
            .iter()
            .enumerate()
            .map(|(i, r)| scenario(i, r, self.args.profile, self.timeout()))
            .collect();
        let mut seen = Seen::default();
        let report = run::run(&scenarios, &self.options, &mut seen);
        let mut by_name: BTreeMap<String, (ScenarioResult, Vec<String>)> = seen.finished;
        scenarios
            .iter()
            .map(|s| {
                let Some((result, oopses)) = by_name.remove(&s.name) else {
                    // The runner reports every scenario; a missing one is its failure.
                    return Err(Failure::infrastructure(format!(
                        "the runner did not report {} (of {})",
                        s.name,
                        report.results.len()
                    )));
                };
                Ok(verdict(result, oopses, &self.args.known))
            })
            .collect()
    }

    /// Shrinks each record while it still shows its signature: every round injects all the
    /// records' one-step-simpler variants into one guest and keeps, per record, the first that
    /// reproduces. Each round drops a part, so there are at most as many rounds as parts.
    fn shrink(
        &self,
        mut current: Vec<MceRecord>,
        sigs: &[Signature],
    ) -> Result<Vec<MceRecord>, Failure> {
        let mut done = vec![false; current.len()];
        loop {
            let mut owners = Vec::new();
            let mut candidates = Vec::new();
            for (k, r) in current.iter().enumerate() {
                if done[k] {
                    continue;
                }
                for c in randrec::simpler(r) {
                    owners.push(k);
                    candidates.push(c);
                }
            }
            if candidates.is_empty() {
                return Ok(current);
            }
            let judged = self.judge(&candidates)?;
            let mut moved = vec![false; current.len()];
            for ((k, c), j) in owners.iter().zip(candidates).zip(&judged) {
                if !moved[*k] && j.failure.is_none() && j.shows(&sigs[*k]) {
                    current[*k] = c;
                    moved[*k] = true;
                }
            }
            for (k, m) in moved.iter().enumerate() {
                done[k] = done[k] || !m;
            }
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.args.timeout)
    }
}

/// A record's verdict from its scenario's result and the crash lines its outputs held.
fn verdict(result: ScenarioResult, oopses: Vec<String>, known: &[String]) -> Judged {
    let (known, new): (Vec<_>, Vec<_>) = result
        .oracle
        .iter()
        .flat_map(|v| &v.new)
        .partition(|f| known.contains(&f.key()));
    let mut known: Vec<String> = known.iter().map(|f| f.key()).collect();
    known.sort();
    known.dedup();
    let findings = new
        .into_iter()
        .fold(BTreeMap::<String, Vec<String>>::new(), |mut m, f| {
            // Evidence lines normalised (printk times): the same seed gives the same report.
            m.entry(f.key())
                .or_default()
                .push(crate::normalize::normalize(&f.to_string()));
            m
        });
    // A crash fails the scenario; it is counted as an oops, not as a second failure.
    let failure = result
        .failure
        .filter(|_| oopses.is_empty())
        .map(|f| (f.kind, f.message));
    Judged {
        findings,
        known,
        oopses,
        failure,
    }
}

/// One record as a scenario: kmsg and the `mce_record` trace collected from before the
/// injection, the record through QEMU, then a wait for its trace record.
fn scenario(
    index: usize,
    record: &MceRecord,
    profile: &'static Profile,
    timeout: Duration,
) -> Scenario {
    let steps = [
        StepKind::Inject(Payload::Qemu {
            records: vec![record.clone()],
            broadcast: false,
            overflow: false,
        }),
        StepKind::Wait(Wait {
            collector: TRACE.into(),
            until: WaitFor::Records(1),
            timeout,
        }),
    ];
    Scenario::from_flags(
        "(fuzz)",
        format!("fuzz-{index}"),
        format!("rasdrill fuzz record {index}"),
        profile,
        steps.into(),
        vec![KMSG.into(), TRACE.into()],
    )
}

/// The reproducer scenario of a shrunk record, for `rasdrill run`.
fn reproducer(
    seed: u64,
    index: usize,
    profile: &Profile,
    r: &MceRecord,
    sig: &Signature,
    timeout: f64,
) -> String {
    let mut inject = format!(
        "{{via: qemu, cpu: {}, bank: {}, status: {:#018x}",
        r.cpu, r.bank, r.status
    );
    if r.addr != 0 {
        let _ = write!(inject, ", addr: {:#x}", r.addr);
    }
    if r.misc != 0 {
        let _ = write!(inject, ", misc: {:#x}", r.misc);
    }
    inject.push('}');
    format!(
        "# Found by `rasdrill fuzz --seed {seed}` (record {index}), shrunk to a minimal record.\n\
         # It shows: {}. Run it with `rasdrill run <this file>` (and the fuzz run's --kernel-release).\n\
         name: fuzz-seed-{seed}-record-{index}\n\
         description: A corrected error from rasdrill fuzz (seed {seed}, record {index}) that shows {}\n\
         machine: {{profile: {}}}\n\
         collectors:\n  - {KMSG}\n  - trace: {{events: [{MCE_RECORD}]}}\n\
         steps:\n  - inject: {inject}\n  - wait: {{collector: {TRACE}, records: 1, timeout_s: {timeout}}}\n\
         compare: [{KMSG}, {TRACE}]\n",
        describe(sig),
        describe(sig),
        profile.name,
    )
}

/// What the run shows this command: notes on stderr, per scenario its result and the first
/// line of each crash report its outputs held.
#[derive(Default)]
struct Seen {
    oopses: Vec<String>,
    finished: BTreeMap<String, (ScenarioResult, Vec<String>)>,
}

impl Sink for Seen {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Note { text } => eprintln!("rasdrill: {text}"),
            Event::Output { crashes, .. } => self.oopses.extend(crashes.iter().cloned()),
            Event::ScenarioFinished { result } => {
                let oopses = std::mem::take(&mut self.oopses);
                self.finished
                    .insert(result.name.clone(), (result.clone(), oopses));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_reproducer_is_a_scenario_rasdrill_run_loads() {
        let profile: &'static Profile = "amd-f15h".parse().unwrap();
        let r = &randrec::generate(1, 1, 2)[0];
        let record = MceRecord {
            addr: 0x1000,
            misc: 0x5,
            ..r.clone()
        };
        let sig = Signature::Finding("kmsg/edac-mce-amd/class".into());
        let text = reproducer(1, 3, profile, &record, &sig, 10.0);
        let s = crate::scenario::from_str(Path::new("r.yaml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(s.name, "fuzz-seed-1-record-3");
        let injected = crate::oracle::scenario::injected(&s);
        assert_eq!(injected.len(), 1);
        assert_eq!(injected[0].record.status, record.status);
        assert_eq!(
            (injected[0].record.cpu, injected[0].record.bank),
            (record.cpu, record.bank)
        );
        assert_eq!(
            (injected[0].record.addr, injected[0].record.misc),
            (0x1000, 0x5)
        );
        assert_eq!(s.compare, vec!["kmsg".to_string(), "trace".to_string()]);
    }
}
