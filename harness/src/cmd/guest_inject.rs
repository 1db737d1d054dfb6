//! `rasdrill inject --guest`: boot a throw-away guest, inject, show what its kernel decoded.

use std::time::Duration;

use rasdrill_inject::debugfs::{Debugfs, InjectionType};
use rasdrill_inject::preflight;
use rasdrill_inject::{hmp, status, Action, MceRecord};

use crate::cmd::inject::{records, InjectArgs, Via};
use crate::collect::kmsg::Kmsg;
use crate::collect::trace::Trace;
use crate::collect::{CollectError, Collected, Collector, POLL, QUIET};
use crate::exit::{Code, Failure};
use crate::guest::{Guest, GuestError, GuestSpec, REQUEST_TIMEOUT};
use crate::profile::Profile;
use crate::scenario::GUEST_BANKS;
use crate::target::TargetError;
use rasdrill_qemu::wait::settle;

pub fn run(args: &InjectArgs, profile: &'static Profile) -> Result<(), Failure> {
    if args.root != std::path::Path::new("/") {
        return Err(Failure::bad_input(
            "--root is for this machine's files; a --guest has its own",
        ));
    }
    let records = records(args)?;
    let actions = plan(args, profile, &records)?;
    if args.dry_run {
        for action in &actions {
            println!("{action}");
        }
        return Ok(());
    }
    let kernel = args.kernel.resolve()?;
    let spec = GuestSpec::for_profile(profile, kernel, args.accel, super::this_executable()?);
    let mut guest = Guest::boot(&spec, &mut |msg| eprintln!("rasdrill: {msg}"))
        .map_err(Failure::infrastructure)?;
    let outcome = inject_and_observe(&mut guest, args, &records);
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
                        args.timeout
                    ),
                ));
            }
            Ok(())
        }
        Err(GuestError::Panicked {
            message,
            console,
            elapsed,
            ..
        }) => {
            drop(guest);
            println!("== guest panic ==\n{message}\n== last console lines ==\n{console}");
            eprintln!(
                "rasdrill: the guest panicked {:.1} s after boot started; QEMU is gone",
                elapsed.as_secs_f64()
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
        Err(e) => Err(Failure::infrastructure(e)),
    }
}

/// Checks every record against the guest before anything boots, and says what will be done.
fn plan(
    args: &InjectArgs,
    profile: &Profile,
    records: &[MceRecord],
) -> Result<Vec<Action>, Failure> {
    for r in records {
        if r.cpu >= profile.vcpus {
            return Err(Failure::bad_input(format!(
                "--cpu {}: the {} guest has {} vCPUs (0-{})",
                r.cpu,
                profile.name,
                profile.vcpus,
                profile.vcpus - 1
            )));
        }
        if r.bank >= GUEST_BANKS {
            return Err(Failure::bad_input(format!(
                "--bank {}: QEMU gives every guest CPU {GUEST_BANKS} MCA banks (0-{})",
                r.bank,
                GUEST_BANKS - 1
            )));
        }
        if r.status & status::VAL == 0 {
            return Err(Failure::bad_input(format!(
                "--status {:#x}: VAL (bit 63) is clear, so no kernel would look at it; add VAL",
                r.status
            )));
        }
    }
    let mut actions = Vec::new();
    match args.via {
        Via::Qemu => {
            if args.flags != InjectionType::Sw {
                return Err(Failure::bad_input(
                    "--flags is for --via debugfs: QEMU's mce raises #MC for uncorrected errors and leaves corrected ones for the poller",
                ));
            }
            for r in records {
                actions.push(Action::Monitor { line: hmp::command(r)? });
            }
        }
        Via::Debugfs => {
            let debugfs = Debugfs::new(std::path::Path::new("/"), args.flags);
            actions.extend(preflight::describe_all(&debugfs, records)?);
        }
        Via::Edac => {
            return Err(Failure::bad_input(
                "--via edac needs an EDAC memory controller, and QEMU guests have none; use --via qemu or --via debugfs",
            ))
        }
    }
    Ok(actions)
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
    args: &InjectArgs,
    records: &[MceRecord],
) -> Result<Observed, GuestError> {
    let mut kmsg = Kmsg::new(None).map_err(guest_error)?;
    let mut trace = Trace::new(&["mce/mce_record".to_string()]);
    kmsg.start(guest).map_err(guest_error)?;
    trace.start(guest).map_err(guest_error)?;
    for r in records {
        match args.via {
            Via::Qemu => {
                let line = guest.inject_qemu(r)?;
                eprintln!("rasdrill: sent `{line}` to QEMU's monitor");
            }
            _ => {
                let flags = args.flags;
                let writes =
                    guest.call("injecting through mce-inject", REQUEST_TIMEOUT, |a, d| {
                        a.inject(r, flags, d)
                    })?;
                eprintln!(
                    "rasdrill: wrote {} mce-inject files in the guest",
                    writes.len()
                );
            }
        }
    }
    let expected = records.len();
    let poll = || -> Result<(Collected, Collected), CollectError> {
        Ok((kmsg.collect(guest)?, trace.collect(guest)?))
    };
    let timeout = Duration::from_secs_f64(args.timeout);
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
