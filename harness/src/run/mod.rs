//! The runner behind `rasdrill run`: scenarios in, a [`RunReport`] out.
//!
//! Guest scenarios are grouped by guest spec ([`plan`]); each group boots one guest and runs
//! its scenarios in file order. A scenario that panics the guest (expected or not), loses it,
//! or leaves state behind in it ([`crate::scenario::Scenario::spoils_guest`]: PCIe AER) makes
//! the next scenario of the group start from a pristine one. Local scenarios get a fresh
//! [`LocalTarget`] each. Every scenario builds fresh collectors, started before its first step.
//!
//! One scenario, on its target ([`scenario::run`]): start the collectors, run the steps, let the
//! output settle, collect, stop the collectors, normalise, compare with the golden files.
//!
//! A first SIGINT or SIGTERM ([`rasdrill_qemu::interrupt`]) ends the run cleanly: the scenario
//! under way stops after its current step (its guest is already killed), stops its collectors
//! and compares nothing; it is reported as interrupted, no other scenario starts, and the
//! report holds what ran.

#[cfg(test)]
mod load_tests;
pub mod plan;
mod scenario;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rasdrill_inject::guard::Allow;
use rasdrill_qemu::interrupt;
use rasdrill_qemu::kernel::Kernel;

use crate::collect::rasdaemon_build::RasdaemonBuild;
use crate::golden::Mode;
use crate::guest::{AccelChoice, Guest, GuestError, GuestSnapshot, GuestSpec};
use crate::report::{self, Event, FailureKind, GoldenResult, RunReport, ScenarioResult, Sink};
use crate::scenario::Scenario;

pub use plan::{GuestDefaults, Unit};

/// How a run compares and where its guests come from.
#[derive(Debug, Clone)]
pub struct Options {
    pub golden_dir: PathBuf,
    /// How outputs are compared with golden files; `None`: not compared, each compared
    /// collector's output is sent as an [`Event::Output`] instead (`rasdrill inject --guest`).
    pub mode: Option<Mode>,
    pub accel: AccelChoice,
    /// What the guard lets local scenarios inject, on this machine or a stand-in tree (guests
    /// are throw-away: not guarded).
    pub allow: Allow,
    /// The kernel of guest scenarios that do not name one.
    pub kernel: Option<Kernel>,
    /// The kernels of the pinned lines that scenarios name (`machine.kernel_line`).
    pub line_kernels: Vec<Kernel>,
    /// The executable that becomes the guests' `/init` (normally this one).
    pub agent: PathBuf,
    /// The rasdaemon of scenarios that do not choose one.
    pub rasdaemon: RasdaemonBuild,
    pub guests: GuestReuse,
}

/// Where each guest scenario's guest comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestReuse {
    /// Scenarios that need the same guest share one. A group of several saves its guest once
    /// ready, and a scenario after a panic gets a pristine copy restored from that snapshot.
    #[default]
    Shared,
    /// Every scenario after a group's first gets a pristine guest restored from the snapshot.
    Isolated,
    /// The naive way, the reference of `rasdrill bench suite`: every scenario cold-boots its
    /// own guest from the compressed bzImage, with busybox, waiting for the timer poll.
    Naive,
}

/// Runs validated scenarios and reports every result; stops early only when a signal asks it to.
pub fn run(scenarios: &[Scenario], options: &Options, sink: &mut dyn Sink) -> RunReport {
    let started = Instant::now();
    sink.event(&Event::RunStarted {
        scenarios: scenarios.len(),
    });
    let defaults = GuestDefaults {
        kernel: options.kernel.as_ref(),
        line_kernels: &options.line_kernels,
        accel: options.accel,
        agent: options.agent.clone(),
        rasdaemon: options.rasdaemon.clone(),
        naive: options.guests == GuestReuse::Naive,
    };
    let units = plan::plan(scenarios, &defaults, &mut |text| {
        sink.event(&Event::Note {
            text: text.to_string(),
        })
    });
    let total = units.iter().map(Unit::scenarios).sum();
    let mut counter = Counter { next: 1, total };
    let mut results = Vec::new();
    'units: for unit in units {
        if interrupt::requested().is_some() {
            break;
        }
        match unit {
            Unit::Guest { spec, scenarios } => {
                let line = rasdrill_qemu::pinned::line_of(&spec.kernel.release);
                let mut guest: Option<Guest> = None;
                let mut snapshot: Option<GuestSnapshot> = None;
                let save = scenarios.len() > 1 && options.guests != GuestReuse::Naive;
                for prepared in scenarios {
                    if interrupt::requested().is_some() {
                        break 'units;
                    }
                    let start = counter.start(prepared.scenario, sink);
                    let mut boot = Duration::ZERO;
                    if guest.is_none() {
                        let booted = Instant::now();
                        let result = pristine_guest(&spec, &mut snapshot, save, sink);
                        boot = booted.elapsed();
                        match result {
                            Ok(g) => {
                                sink.event(&Event::Booted { elapsed: boot });
                                guest = Some(g);
                            }
                            Err(e) => {
                                let failure = report::Failure {
                                    kind: FailureKind::Infrastructure,
                                    message: format!("the guest did not boot: {e}"),
                                    details: report::details(&e),
                                };
                                let mut result = failed(prepared.scenario, start, boot, failure);
                                result.kernel_line = line.clone();
                                finish(sink, &mut results, result);
                                continue;
                            }
                        }
                    }
                    let g = guest.as_mut().expect("booted above");
                    let (mut result, keep) = scenario::on_guest(prepared, g, options, sink, start);
                    result.boot = boot;
                    result.kernel_line = line.clone();
                    if !keep || options.guests != GuestReuse::Shared {
                        // Dropping a guest kills QEMU and reaps it.
                        guest = None;
                    }
                    finish(sink, &mut results, result);
                }
                if let Some(g) = guest {
                    g.shutdown();
                }
            }
            Unit::Local(s) => {
                let start = counter.start(s, sink);
                let result = scenario::on_local(s, options, sink, start);
                finish(sink, &mut results, result);
            }
            Unit::Broken(s, why) => {
                let start = counter.start(s, sink);
                let failure = report::Failure {
                    kind: why.kind,
                    message: why.message,
                    details: None,
                };
                let mut result = failed(s, start, Duration::ZERO, failure);
                result.kernel_line = line_of_scenario(s, options);
                finish(sink, &mut results, result);
            }
        }
    }
    let duration = started.elapsed();
    sink.event(&Event::RunFinished { elapsed: duration });
    RunReport {
        results,
        duration,
        interrupted: interrupt::requested(),
    }
}

/// A guest as it was when ready: restored from the group's snapshot when there is one,
/// otherwise booted (and saved first when `save`).
fn pristine_guest(
    spec: &GuestSpec,
    snapshot: &mut Option<GuestSnapshot>,
    save: bool,
    sink: &mut dyn Sink,
) -> Result<Guest, GuestError> {
    let mut note = |text: &str| {
        sink.event(&Event::Note {
            text: text.to_string(),
        })
    };
    if let Some(saved) = snapshot {
        return Guest::restore(saved, &mut note);
    }
    let mut guest = Guest::boot(spec, &mut note)?;
    if save {
        *snapshot = Some(guest.save()?);
    }
    Ok(guest)
}

/// The kernel line a guest scenario boots: its own, or the run's (`None` on a local target).
fn line_of_scenario(s: &Scenario, options: &Options) -> Option<String> {
    let machine = s.machine()?;
    match (machine.kernel_line, &options.kernel) {
        (Some(line), _) => Some(line.name.to_string()),
        (None, Some(kernel)) if machine.kernel.is_none() => {
            rasdrill_qemu::pinned::line_of(&kernel.release)
        }
        _ => None,
    }
}

/// Numbers scenarios in the order they run.
struct Counter {
    next: usize,
    total: usize,
}

impl Counter {
    fn start(&mut self, s: &Scenario, sink: &mut dyn Sink) -> Instant {
        sink.event(&Event::ScenarioStarted {
            index: self.next,
            total: self.total,
            name: s.name.clone(),
            machine: s.machine_label(),
        });
        self.next += 1;
        Instant::now()
    }
}

fn finish(sink: &mut dyn Sink, results: &mut Vec<ScenarioResult>, mut result: ScenarioResult) {
    if let Some(signal) = interrupt::requested() {
        // Whatever went wrong after the signal (a killed guest, a cut wait) is its consequence.
        result.failure = Some(interrupted(signal, result.failure.take()));
    }
    sink.event(&Event::ScenarioFinished {
        result: result.clone(),
    });
    results.push(result);
}

/// The failure of the scenario a signal stopped; what failed meanwhile goes into the details.
fn interrupted(signal: i32, failure: Option<report::Failure>) -> report::Failure {
    match failure {
        Some(f) if f.kind == FailureKind::Interrupted => f,
        other => report::Failure {
            kind: FailureKind::Interrupted,
            message: format!("interrupted by {}", interrupt::name(signal)),
            details: other.map(|f| match f.details {
                Some(d) => format!("{}\n{d}", f.message),
                None => f.message,
            }),
        },
    }
}

fn failed(
    s: &Scenario,
    start: Instant,
    boot: Duration,
    failure: report::Failure,
) -> ScenarioResult {
    ScenarioResult {
        boot,
        ..result(s, start, Some(failure), Vec::new())
    }
}

/// A scenario's result now, without boot time (the caller adds it).
fn result(
    s: &Scenario,
    start: Instant,
    failure: Option<report::Failure>,
    goldens: Vec<GoldenResult>,
) -> ScenarioResult {
    ScenarioResult {
        name: s.name.clone(),
        file: s.file.clone(),
        description: s.description.clone(),
        kernel_line: None,
        failure,
        goldens,
        oracle: None,
        duration: start.elapsed(),
        boot: Duration::ZERO,
    }
}
