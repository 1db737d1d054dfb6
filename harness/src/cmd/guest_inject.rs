//! `rasdrill inject --guest`: the flags become a one-scenario run, which the runner behind
//! `rasdrill run` (harness/src/run/) carries out: a throw-away guest, one inject step per
//! record, then a wait for the decoded records (or the panic). What it shows is this
//! command's: the kernel log and the trace, or the panic, instead of golden comparisons.

use std::time::Duration;

use rasdrill_inject::guard::Allow;
use rasdrill_inject::merge;
use rasdrill_inject::{Payload, Place, Request};

use crate::cmd::kernel::KernelArgs;
use crate::exit::{Code, Failure};
use crate::guest::AccelChoice;
use crate::profile::Profile;
use crate::report::{Event, PanicSeen, Sink};
use crate::run;
use crate::scenario::{ExpectPanic, Scenario, StepKind, Wait, WaitFor, KMSG, TRACE};

/// How `rasdrill inject --guest` runs, besides what it injects.
pub struct GuestInject<'a> {
    pub profile: &'static Profile,
    pub kernel: &'a KernelArgs,
    pub accel: AccelChoice,
    /// How long to wait for the decoded output (or the panic).
    pub timeout: Duration,
    pub expect_panic: bool,
    pub dry_run: bool,
}

pub fn run(request: &Request, args: &GuestInject) -> Result<(), Failure> {
    // Planned before anything boots: a refusal changes nothing. Guests are throw-away, so
    // the guard lets everything through (the runner plans each step again the same way).
    let actions = request.plan(Allow::default())?;
    if args.dry_run {
        for action in &actions {
            println!("{action}");
        }
        return Ok(());
    }
    let scenario = scenario(request, args);
    let options = super::flag_run_options(args.accel, args.kernel)?;
    let mut shown = Shown::default();
    let report = run::run(std::slice::from_ref(&scenario), &options, &mut shown);
    let result = report
        .results
        .first()
        .expect("the runner reports every scenario");
    if let Some(panic) = &shown.panic {
        // The runner has dropped the guest, and with it QEMU.
        println!(
            "== guest panic ==\n{}\n== last console lines ==\n{}",
            panic.message, panic.console_tail
        );
        eprintln!(
            "rasdrill: the guest panicked {:.1} s after boot started; QEMU is gone",
            panic.elapsed.as_secs_f64()
        );
        if !args.expect_panic {
            return Err(Failure::new(
                Code::Failed,
                format!("the guest panicked: {}", panic.message),
            ));
        }
    }
    if let Some(failure) = &result.failure {
        let message = match &failure.details {
            Some(details) => format!("{}\n{details}", failure.message),
            None => failure.message.clone(),
        };
        return Err(Failure::new(result.outcome().code(), message));
    }
    if shown.panic.is_none() {
        for (title, collector) in [("kernel log", KMSG), ("trace", TRACE)] {
            println!("== {title} ==");
            for line in shown.output(collector) {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// The run the flags describe: the profile's guest, its kernel log and trace (`mce_record`,
/// `aer_event` for AER, `memory_failure_event` for a poisoning) collected from before the first
/// injection, one inject step per record, then a wait for as many trace records as it raises
/// (or for the panic).
fn scenario(request: &Request, args: &GuestInject) -> Scenario {
    let mut kinds: Vec<StepKind> = match &request.payload {
        // An overflow is one step: its records go back to back (crate::guest).
        Payload::Qemu {
            records,
            broadcast,
            overflow: false,
        } => records
            .iter()
            .map(|r| Payload::Qemu {
                records: vec![r.clone()],
                broadcast: *broadcast,
                overflow: false,
            })
            .map(StepKind::Inject)
            .collect(),
        Payload::Debugfs { records, flags } => records
            .iter()
            .map(|r| Payload::Debugfs {
                records: vec![r.clone()],
                flags: *flags,
            })
            .map(StepKind::Inject)
            .collect(),
        other => vec![StepKind::Inject(other.clone())],
    };
    let compare = if args.expect_panic {
        kinds.push(StepKind::ExpectPanic(ExpectPanic {
            timeout: args.timeout,
            message: None,
        }));
        // After a panic only the kernel log can be read (from the console).
        vec![KMSG.to_string()]
    } else {
        // An AER injection is one aer_event (the kernel reports each status bit of one
        // injection in one event); a poisoning the one memory_failure_event of memory_failure()
        // (soft offline and unpoison raise none, and their write returns once it is done); MCE
        // records are one mce_record each, less those an overflow merges on purpose.
        let records = match &request.payload {
            Payload::Aer(_) => 1,
            Payload::Hwpoison(req) => u32::from(req.raises_memory_failure()),
            _ => logged(request),
        };
        if records > 0 {
            kinds.push(StepKind::Wait(Wait {
                collector: TRACE.into(),
                until: WaitFor::Records(records),
                timeout: args.timeout,
            }));
        }
        vec![KMSG.to_string(), TRACE.to_string()]
    };
    Scenario::from_flags(
        "(command line)",
        "inject --guest".into(),
        "rasdrill inject --guest".into(),
        args.profile,
        kinds,
        compare,
    )
}

/// How many records the guest logs: one per record, less those an overflow merges on purpose
/// (any other merge was refused when the request was planned).
fn logged(request: &Request) -> u32 {
    let Place::Guest(facts) = &request.place else {
        unreachable!("inject --guest plans for a guest");
    };
    merge::logged(&request.payload, facts.vcpus).len() as u32
}

/// What the run shows this command: progress notes as `rasdrill: ...` lines on stderr, the
/// collectors' output and the panic kept for the end.
#[derive(Default)]
struct Shown {
    outputs: Vec<(String, Vec<String>)>,
    panic: Option<PanicSeen>,
}

impl Shown {
    fn output(&self, collector: &str) -> &[String] {
        self.outputs
            .iter()
            .find(|(name, _)| name == collector)
            .map_or(&[], |(_, lines)| lines)
    }
}

impl Sink for Shown {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Note { text } => eprintln!("rasdrill: {text}"),
            Event::Output {
                collector, lines, ..
            } => self.outputs.push((collector.clone(), lines.clone())),
            Event::GuestPanicked(panic) => self.panic = Some(panic.clone()),
            _ => {}
        }
    }
}
