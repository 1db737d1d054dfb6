//! One scenario on its target: collectors, steps, settling, golden comparisons.

use std::time::{Duration, Instant};

use rasdrill_inject::guard::Allow;
use rasdrill_inject::request::ExecuteError;
use rasdrill_inject::{Payload, Request};
use rasdrill_qemu::interrupt;
use rasdrill_qemu::wait::{settle, wait_until, Deadline};

use super::plan::{self, Prepared};
use super::Options;
use crate::collect::{CollectError, Collected, Collector, Context, POLL, QUIET};
use crate::golden::{self, Header};
use crate::guest::{Guest, GuestError};
use crate::local::{self, LocalTarget};
use crate::normalize::normalize;
use crate::oracle::{self, Verdict};
use crate::report::{self, Event, FailureKind, GoldenResult, PanicSeen, ScenarioResult, Sink};
use crate::scenario::{ExpectPanic, Scenario, StepKind, Wait, WaitFor};
use crate::target::{Target, TargetError};

/// The longest the output may keep growing after the last step.
const SETTLE_MAX: Duration = Duration::from_secs(5);
/// How far past its `timeout_s` a wait may end: the poll under way at the deadline finishes
/// (documented with `wait` in docs/scenarios.md).
pub const WAIT_MARGIN: Duration = Duration::from_secs(2);
/// How many lines a failed wait quotes.
const QUOTED_LINES: usize = 20;
/// How often a `wait` step polls its collector. A wait ends as soon as its condition holds:
/// what comes after (a decoder's further lines) is caught by the one settle before collection.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// Why a scenario did not finish, and whether its guest is still usable.
#[derive(Debug)]
struct Trouble {
    kind: FailureKind,
    message: String,
    details: Option<String>,
    guest_lost: bool,
    /// The guest panicked: what it said.
    panic: Option<PanicSeen>,
}

impl Trouble {
    fn new(kind: FailureKind, message: impl Into<String>) -> Trouble {
        Trouble {
            kind,
            message: message.into(),
            details: None,
            guest_lost: false,
            panic: None,
        }
    }

    /// A guest error: a panic is the scenario's failure, a dead or silent guest the
    /// machinery's; `refused` is what an agent's refusal means here.
    fn guest(e: GuestError, refused: FailureKind) -> Trouble {
        let (kind, lost) = match &e {
            GuestError::Panicked { .. } => (FailureKind::Failed, true),
            GuestError::Refused { .. } => (refused, false),
            GuestError::Monitor { .. } => (FailureKind::BadInput, false),
            _ => (FailureKind::Infrastructure, true),
        };
        let panic = match &e {
            GuestError::Panicked {
                message,
                diagnostics,
                ..
            } => Some(PanicSeen {
                message: message.clone(),
                console_tail: diagnostics.console_tail.clone(),
                elapsed: diagnostics.elapsed,
            }),
            _ => None,
        };
        Trouble {
            kind,
            message: e.to_string(),
            details: report::details(&e),
            guest_lost: lost,
            panic,
        }
    }

    fn target(e: TargetError, refused: FailureKind) -> Trouble {
        match e {
            TargetError::Guest(g) => Trouble::guest(g, refused),
            TargetError::Refused { .. } => Trouble::new(refused, e.to_string()),
            TargetError::Unexpected { .. } => {
                Trouble::new(FailureKind::Infrastructure, e.to_string())
            }
        }
    }

    fn collect(e: CollectError) -> Trouble {
        match e {
            CollectError::Target { collector, source } => {
                // The agent refusing a collector's request (a program that is not there, a
                // file it cannot read) is the scenario's problem; a lost guest is not.
                let mut t = Trouble::target(*source, FailureKind::Failed);
                t.message = format!("collector `{collector}`: {}", t.message);
                t
            }
            CollectError::Failed { .. } => Trouble::new(FailureKind::Failed, e.to_string()),
        }
    }

    fn at(mut self, step: &crate::scenario::Step) -> Trouble {
        self.message = format!("{}: {}", step, self.message);
        self
    }
}

/// Where the scenario runs.
enum Place<'a> {
    Guest(&'a mut Guest),
    Local(&'a mut LocalTarget),
}

impl Place<'_> {
    /// Ends a guest's requests by `end`; local requests end by their own timeouts.
    fn end_requests_by(&mut self, end: Option<Instant>) {
        if let Place::Guest(g) = self {
            g.end_requests_by(end);
        }
    }

    fn target(&mut self) -> &mut dyn Target {
        match self {
            Place::Guest(g) => &mut **g,
            Place::Local(l) => &mut **l,
        }
    }

    fn kernel_release(&self) -> String {
        match self {
            Place::Guest(g) => g.ready().kernel_release.clone(),
            Place::Local(t) if t.is_real() => local::host_release(),
            Place::Local(_) => "none (a stand-in tree)".to_string(),
        }
    }
}

/// Runs a scenario on a booted guest. The flag says whether the guest can be used again.
pub(super) fn on_guest(
    prepared: Prepared,
    guest: &mut Guest,
    options: &Options,
    sink: &mut dyn Sink,
    start: Instant,
) -> (ScenarioResult, bool) {
    let Prepared {
        scenario,
        collectors,
    } = prepared;
    let executed = execute(scenario, Place::Guest(guest), collectors, options, sink);
    if let Some(panic) = &executed.panic {
        sink.event(&Event::GuestPanicked(panic.clone()));
    }
    let reusable = !executed.lost && !scenario.spoils_guest();
    (finished(scenario, start, executed), reusable)
}

/// Runs a scenario on this machine, or on a fresh copy of its stand-in tree.
pub(super) fn on_local(
    scenario: &Scenario,
    options: &Options,
    sink: &mut dyn Sink,
    start: Instant,
) -> ScenarioResult {
    let crate::scenario::Target::Local { root } = &scenario.target else {
        unreachable!("on_local is called for local scenarios");
    };
    let trace_events: Vec<String> = scenario
        .collectors
        .iter()
        .flat_map(|c| match &c.kind {
            crate::scenario::CollectorKind::Trace { events } => events.clone(),
            _ => Vec::new(),
        })
        .collect();
    let mut target = match LocalTarget::new(root.as_deref(), &trace_events) {
        Ok(t) => t,
        Err(e) => {
            let t = Trouble::new(FailureKind::Infrastructure, e.to_string());
            return result(scenario, start, Some(t), Vec::new());
        }
    };
    let ctx = Context::for_local(scenario, target.root(), !target.is_real());
    let collectors = match plan::collectors(scenario, &ctx) {
        Ok(c) => c,
        Err(e) => {
            let t = Trouble::new(e.kind, e.message);
            return result(scenario, start, Some(t), Vec::new());
        }
    };
    let executed = execute(
        scenario,
        Place::Local(&mut target),
        collectors,
        options,
        sink,
    );
    finished(scenario, start, executed)
}

fn finished(s: &Scenario, start: Instant, e: Executed) -> ScenarioResult {
    ScenarioResult {
        oracle: e.oracle,
        ..result(s, start, e.failure, e.goldens)
    }
}

fn result(
    s: &Scenario,
    start: Instant,
    failure: Option<Trouble>,
    goldens: Vec<GoldenResult>,
) -> ScenarioResult {
    let failure = failure.map(|t| report::Failure {
        kind: t.kind,
        message: t.message,
        details: t.details,
    });
    super::result(s, start, failure, goldens)
}

/// What [`execute`] gives back.
struct Executed {
    failure: Option<Trouble>,
    goldens: Vec<GoldenResult>,
    oracle: Option<Verdict>,
    /// The guest cannot be used again.
    lost: bool,
    /// The guest panicked, expected or not.
    panic: Option<PanicSeen>,
}

impl Executed {
    fn failed(t: Trouble, goldens: Vec<GoldenResult>, lost: bool) -> Executed {
        Executed {
            panic: t.panic.clone(),
            failure: Some(t),
            goldens,
            oracle: None,
            lost,
        }
    }
}

/// Start, steps, settle or panic, collect, stop, compare: the goldens and the oracle.
fn execute(
    s: &Scenario,
    mut place: Place,
    mut collectors: Vec<Box<dyn Collector>>,
    options: &Options,
    sink: &mut dyn Sink,
) -> Executed {
    // The console since now is what the kernel printed for this scenario (read after a panic).
    let console_mark = match &place {
        Place::Guest(g) => g.console().len(),
        Place::Local(_) => 0,
    };
    for i in 0..collectors.len() {
        let mut note = |text: &str| {
            sink.event(&Event::Note {
                text: text.to_owned(),
            })
        };
        if let Err(e) = collectors[i].start(place.target(), &mut note) {
            let t = Trouble::collect(e);
            // The first failure is the one reported.
            let _ = stop_all(&mut collectors[..i], &mut place, t.guest_lost);
            let lost = t.guest_lost;
            return Executed::failed(t, Vec::new(), lost);
        }
    }

    let mut panic_console: Option<String> = None;
    let mut panic: Option<PanicSeen> = None;
    for (i, step) in s.steps.iter().enumerate() {
        // An injection that raises #MC may panic the guest before the request is answered (an
        // mce-inject `hw` write): when the next step expects the panic, that is success.
        let panic_next = matches!(
            s.steps.get(i + 1).map(|n| &n.kind),
            Some(StepKind::ExpectPanic(_))
        );
        sink.event(&Event::StepStarted {
            index: step.index,
            label: step.to_string(),
        });
        let began = Instant::now();
        let outcome = match &step.kind {
            StepKind::Inject(payload) => {
                inject_step(s, payload, &mut place, options.allow, panic_next, sink)
            }
            StepKind::Wait(w) => wait(w, &mut collectors, &mut place),
            StepKind::Sleep(d) => {
                // The scenario's own `sleep` step: a pause it asked for, not a poll (a signal
                // cuts it short).
                interrupt::sleep(*d);
                Ok(())
            }
            StepKind::ExpectPanic(p) => {
                expect_panic(p, &mut place, console_mark).map(|(console, seen)| {
                    panic_console = Some(console);
                    panic = Some(seen);
                })
            }
        };
        // The step under way when a signal came is the one interrupted: nothing runs after it.
        let outcome = outcome.and_then(|()| not_interrupted());
        sink.event(&Event::StepFinished {
            index: step.index,
            elapsed: began.elapsed(),
            error: outcome.as_ref().err().map(|t| t.message.clone()),
        });
        if let Err(t) = outcome {
            let t = t.at(step);
            let _ = stop_all(&mut collectors, &mut place, t.guest_lost);
            let lost = t.guest_lost;
            return Executed::failed(t, Vec::new(), lost);
        }
    }

    let panicked = panic_console.is_some();
    let (outputs, lost) = match panic_console {
        Some(console) => {
            let outputs = compared(s, &mut collectors, |c| c.collect_after_panic(&console));
            (outputs, true)
        }
        None => {
            // Quiet first, then stop (a collector may take its last output as it stops), then
            // the final output.
            let settled = settle_all(&mut collectors, &mut place);
            let stopped = stop_all(&mut collectors, &mut place, false);
            let outputs = settled
                .and(stopped)
                .and_then(|()| compared(s, &mut collectors, |c| c.collect(place.target())));
            match outputs {
                Ok(o) => (Ok(o), false),
                Err(t) => {
                    let lost = t.guest_lost;
                    (Err(t), lost)
                }
            }
        }
    };
    // Output cut short by a signal is compared with nothing, and accepted as nothing.
    let outputs = match outputs.and_then(|o| not_interrupted().map(|()| o)) {
        Ok(o) => o,
        Err(t) => return Executed::failed(t, Vec::new(), lost),
    };

    let kernel = place.kernel_release();
    let oracle = oracle::judge(s, &outputs, &kernel, panicked);
    let crashes: Vec<String> = outputs
        .iter()
        .flat_map(|(name, c)| c.crashes.iter().map(move |l| format!("{name}: {l}")))
        .collect();
    let mut goldens = Vec::new();
    for (name, collected) in outputs {
        let Some(mode) = options.mode else {
            sink.event(&Event::Output {
                collector: name,
                lines: collected.lines,
                crashes: collected.crashes,
            });
            continue;
        };
        let header = Header::new(s, &name, &kernel);
        // Trailing blanks go: editors strip them from golden files (the kernel leaves some).
        let lines: Vec<&str> = collected.lines.iter().map(|l| l.trim_end()).collect();
        let content = normalize(&lines.join("\n"));
        match golden::check(&options.golden_dir, &header, &content, mode) {
            Ok(verdict) => {
                sink.event(&Event::GoldenChecked {
                    collector: name.clone(),
                    verdict: verdict.clone(),
                });
                goldens.push(GoldenResult {
                    collector: name,
                    verdict,
                    output: content,
                    kernel: kernel.clone(),
                });
            }
            Err(e) => {
                let t = Trouble::new(FailureKind::Infrastructure, e.to_string());
                return Executed {
                    panic,
                    ..Executed::failed(t, goldens, lost)
                };
            }
        }
    }
    let crash_failure = match (s.expect_crash, crashes.is_empty()) {
        // The golden comparison above still shows the whole report; the verdict is a failure.
        (false, false) => Some(format!(
            "the kernel reported a crash during the scenario ({}); a scenario that provokes \
             one on purpose says `expect_crash: true`",
            crashes.join("; ")
        )),
        (true, true) => Some(
            "the scenario expects a kernel crash report (expect_crash), and the kernel printed none"
                .to_string(),
        ),
        _ => None,
    };
    if let Some(message) = crash_failure {
        let t = Trouble::new(FailureKind::Failed, message);
        return Executed {
            failure: Some(t),
            goldens,
            oracle,
            lost,
            panic,
        };
    }
    Executed {
        failure: None,
        goldens,
        oracle,
        lost,
        panic,
    }
}

/// `Err` once a signal has asked rasdrill to stop.
fn not_interrupted() -> Result<(), Trouble> {
    match interrupt::requested() {
        None => Ok(()),
        Some(signal) => Err(Trouble::new(
            FailureKind::Interrupted,
            format!("interrupted by {}", interrupt::name(signal)),
        )),
    }
}

/// The outputs of the compared collectors, in `compare` order.
fn compared(
    s: &Scenario,
    collectors: &mut [Box<dyn Collector>],
    mut get: impl FnMut(&mut Box<dyn Collector>) -> Result<Collected, CollectError>,
) -> Result<Vec<(String, Collected)>, Trouble> {
    let mut out = Vec::new();
    for name in &s.compare {
        let c = collectors
            .iter_mut()
            .find(|c| c.name() == name)
            .expect("validation checked that compare names collectors");
        out.push((name.clone(), get(c).map_err(Trouble::collect)?));
    }
    Ok(out)
}

/// Stops every collector; the first failure is returned. A lost guest has nothing to stop.
fn stop_all(
    collectors: &mut [Box<dyn Collector>],
    place: &mut Place,
    guest_lost: bool,
) -> Result<(), Trouble> {
    if guest_lost {
        return Ok(());
    }
    let mut first = Ok(());
    for c in collectors.iter_mut() {
        if let Err(e) = c.stop(place.target()) {
            if first.is_ok() {
                first = Err(Trouble::collect(e));
            }
        }
    }
    first
}

fn inject_step(
    s: &Scenario,
    payload: &Payload,
    place: &mut Place,
    allow: Allow,
    panic_next: bool,
    sink: &mut dyn Sink,
) -> Result<(), Trouble> {
    let mut note = |text: String| sink.event(&Event::Note { text });
    match place {
        Place::Guest(guest) => {
            let machine = s.machine().expect("a guest scenario has a machine");
            let request = Request {
                payload: payload.clone(),
                place: rasdrill_inject::Place::Guest(machine.facts()),
            };
            let actions = request
                .plan(allow)
                .map_err(|e| Trouble::new(FailureKind::BadInput, e.to_string()))?;
            match guest.inject(payload, &actions, &mut note) {
                // QEMU is gone: `expect_panic` reads the panic from the console.
                Err(GuestError::Panicked { .. }) if panic_next => {
                    note("the guest panicked while the error was injected".to_string());
                    Ok(())
                }
                other => other.map_err(|e| Trouble::guest(e, FailureKind::BadInput)),
            }
        }
        Place::Local(target) => {
            let writes = target.inject(payload, allow).map_err(|e| {
                let kind = match e {
                    ExecuteError::Refused(_) => FailureKind::BadInput,
                    ExecuteError::Lock(_) | ExecuteError::Perform(_) => FailureKind::Infrastructure,
                };
                Trouble::new(kind, e.to_string())
            })?;
            note(format!(
                "wrote {} files under {}",
                writes.len(),
                target.root().display()
            ));
            Ok(())
        }
    }
}

fn satisfied(until: &WaitFor, got: &Collected) -> bool {
    match until {
        WaitFor::Records(n) => got.records >= *n as usize,
        WaitFor::Line(re) => got.lines.iter().any(|l| re.is_match(l)),
    }
}

/// Polls one collector until the condition holds, or the deadline passes.
fn wait(w: &Wait, collectors: &mut [Box<dyn Collector>], place: &mut Place) -> Result<(), Trouble> {
    let collector = collectors
        .iter_mut()
        .find(|c| c.name() == w.collector)
        .expect("validation checked that wait names a collector");
    let deadline = Deadline::after(w.timeout);
    // A frozen guest does not answer the poll under way at the deadline: the poll ends too.
    place.end_requests_by(Some(Instant::now() + w.timeout + WAIT_MARGIN));
    let mut last = Collected::default();
    let ended = wait_until(&deadline, WAIT_POLL, || {
        if interrupt::requested().is_some() {
            // Ended here; the step is then reported as interrupted.
            return Some(Ok(()));
        }
        match collector.collect(place.target()) {
            Ok(got) => {
                let reached = satisfied(&w.until, &got);
                last = got;
                reached.then_some(Ok(()))
            }
            Err(e) => Some(Err(Trouble::collect(e))),
        }
    });
    place.end_requests_by(None);
    match ended {
        Some(result) => result,
        None => Err(timed_out(w, deadline.elapsed(), &last)),
    }
}

fn timed_out(w: &Wait, waited: Duration, seen: &Collected) -> Trouble {
    let wanted = match &w.until {
        WaitFor::Records(n) => format!("{n} record(s)"),
        WaitFor::Line(re) => format!("a line matching {:?}", re.as_str()),
    };
    let mut t = Trouble::new(
        FailureKind::Failed,
        format!(
            "`{}` did not see {wanted} within {:.1} s: {} record(s), {} line(s)",
            w.collector,
            waited.as_secs_f64(),
            seen.records,
            seen.lines.len()
        ),
    );
    if !seen.lines.is_empty() {
        let from = seen.lines.len().saturating_sub(QUOTED_LINES);
        t.details = Some(format!(
            "--- what `{}` saw (last {} lines) ---\n{}",
            w.collector,
            seen.lines.len() - from,
            seen.lines[from..].join("\n")
        ));
    }
    t
}

/// After the last step: polls every collector until nothing changes for a moment (or
/// [`SETTLE_MAX`]).
fn settle_all(collectors: &mut [Box<dyn Collector>], place: &mut Place) -> Result<(), Trouble> {
    let poll = || -> Result<Vec<Collected>, Trouble> {
        collectors
            .iter_mut()
            .map(|c| c.collect(place.target()).map_err(Trouble::collect))
            .collect()
    };
    settle(SETTLE_MAX, QUIET, POLL, poll, |_| true)?;
    Ok(())
}

/// Waits for the guest to panic; returns the console printed since the scenario started, and
/// the panic.
fn expect_panic(
    p: &ExpectPanic,
    place: &mut Place,
    console_mark: usize,
) -> Result<(String, PanicSeen), Trouble> {
    let Place::Guest(guest) = place else {
        return Err(Trouble::new(
            FailureKind::BadInput,
            "expect_panic needs a guest: this machine is not allowed to panic",
        ));
    };
    let panic = guest
        .wait_for_panic(p.timeout)
        .map_err(|e| Trouble::guest(e, FailureKind::Infrastructure))?;
    let Some(panic) = panic else {
        let mut t = Trouble::new(
            FailureKind::Failed,
            format!(
                "the guest did not panic within {:.1} s",
                p.timeout.as_secs_f64()
            ),
        );
        // It is still running, but after an injection meant to kill it: not for reuse.
        t.guest_lost = true;
        return Err(t);
    };
    let since = panic
        .console
        .get(console_mark..)
        .unwrap_or_default()
        .to_string();
    let seen = PanicSeen {
        console_tail: panic.console_tail(),
        message: panic.message,
        elapsed: panic.elapsed,
    };
    if let Some(re) = &p.message {
        if !re.is_match(&seen.message) {
            let mut t = Trouble::new(
                FailureKind::Failed,
                format!(
                    "the guest panicked with {:?}, which does not match {:?}",
                    seen.message,
                    re.as_str()
                ),
            );
            t.details = Some(since);
            t.guest_lost = true;
            t.panic = Some(seen);
            return Err(t);
        }
    }
    Ok((since, seen))
}
