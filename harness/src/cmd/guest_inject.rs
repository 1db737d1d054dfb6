//! `rasdrill inject --guest`: boot a throw-away guest, inject, show what its kernel decoded.

use std::time::Duration;

use rasdrill_inject::guard::Allow;
use rasdrill_inject::{Action, Request};

use crate::cmd::kernel::KernelArgs;
use crate::collect::kmsg::Kmsg;
use crate::collect::trace::Trace;
use crate::collect::{CollectError, Collected, Collector, POLL, QUIET};
use crate::exit::{Code, Failure};
use crate::guest::{AccelChoice, Guest, GuestError, GuestSpec};
use crate::profile::Profile;
use crate::target::TargetError;
use rasdrill_qemu::wait::settle;

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
    // Planned before anything boots: a refusal changes nothing.
    let actions = request.plan(Allow::default())?;
    if args.dry_run {
        for action in &actions {
            println!("{action}");
        }
        return Ok(());
    }
    let profile = args.profile;
    let records = request.payload.records();
    let kernel = args.kernel.resolve()?;
    let spec = GuestSpec::for_profile(profile, kernel, args.accel, super::this_executable()?);
    let mut guest =
        Guest::boot(&spec, &mut |msg| eprintln!("rasdrill: {msg}")).map_err(Failure::from)?;
    let outcome = inject_and_observe(&mut guest, request, &actions, args.timeout);
    match outcome {
        Ok(observed) => {
            guest.shutdown();
            print_observed(&observed);
            let expected = records.len();
            let got = observed.trace.records;
            if args.expect_panic {
                return Err(Failure::new(
                    Code::Failed,
                    "the guest did not panic (--expect-panic)",
                ));
            }
            if got < expected {
                return Err(Failure::new(
                    Code::Failed,
                    format!(
                        "the guest's kernel logged {got} of {expected} machine-check records within {} s \
                         (corrected errors from QEMU show up at the next poll, every second)",
                        args.timeout.as_secs_f64()
                    ),
                ));
            }
            Ok(())
        }
        Err(GuestError::Panicked {
            message,
            diagnostics,
            ..
        }) => {
            drop(guest);
            println!(
                "== guest panic ==\n{message}\n== last console lines ==\n{}",
                diagnostics.console_tail
            );
            eprintln!(
                "rasdrill: the guest panicked {:.1} s after boot started; QEMU is gone",
                diagnostics.elapsed.as_secs_f64()
            );
            if args.expect_panic {
                Ok(())
            } else {
                Err(Failure::new(
                    Code::Failed,
                    format!("the guest panicked: {message}"),
                ))
            }
        }
        Err(e) => Err(Failure::from(e)),
    }
}

/// What the guest's decoders said after the injection.
struct Observed {
    kmsg: Collected,
    trace: Collected,
}

/// Starts the kmsg and trace collectors (cursors at "now"), injects, then waits until the trace
/// holds one `mce_record` per record and the output has stopped changing, or the timeout.
fn inject_and_observe(
    guest: &mut Guest,
    request: &Request,
    actions: &[Action],
    timeout: Duration,
) -> Result<Observed, GuestError> {
    let mut kmsg = Kmsg::new(None).map_err(guest_error)?;
    let mut trace = Trace::new(&["mce/mce_record".to_string()]);
    kmsg.start(guest).map_err(guest_error)?;
    trace.start(guest).map_err(guest_error)?;
    guest.inject(&request.payload, actions, &mut |note| {
        eprintln!("rasdrill: {note}")
    })?;
    let records = request.payload.records();
    let expected = records.len();
    let poll = || -> Result<(Collected, Collected), CollectError> {
        Ok((kmsg.collect(guest)?, trace.collect(guest)?))
    };
    let ((kmsg, trace), _) = settle(timeout, QUIET, POLL, poll, |(_, trace)| {
        trace.records >= expected
    })
    .map_err(guest_error)?;
    Ok(Observed { kmsg, trace })
}

/// The guest's own failure under a collector's (a panic, a dead or silent guest), so that the
/// caller can report a panic as one.
fn guest_error(e: CollectError) -> GuestError {
    match e {
        CollectError::Target { source, .. } => match *source {
            TargetError::Guest(g) => g,
            other => GuestError::Refused {
                what: "reading the guest's output".into(),
                message: other.to_string(),
            },
        },
        other => GuestError::Refused {
            what: "reading the guest's output".into(),
            message: other.to_string(),
        },
    }
}

fn print_observed(observed: &Observed) {
    println!("== kernel log ==");
    for line in &observed.kmsg.lines {
        println!("{line}");
    }
    println!("== trace ==");
    for line in &observed.trace.lines {
        println!("{line}");
    }
}
