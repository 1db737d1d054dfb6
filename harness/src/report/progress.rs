//! Progress events, and the human progress lines they become on stderr.

use std::io::{self, Write};
use std::time::Duration;

use super::{seconds, ScenarioResult};
use crate::golden::Verdict;

/// What the runner tells the user as it goes. Owned data, so events can cross threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RunStarted {
        scenarios: usize,
    },
    ScenarioStarted {
        /// From 1.
        index: usize,
        total: usize,
        name: String,
        /// The CPU model, or `local`.
        machine: String,
    },
    Booted {
        elapsed: Duration,
    },
    StepStarted {
        /// Position in the scenario's `steps`, from 0.
        index: usize,
        /// The step as `scenario::Step` displays it.
        label: String,
    },
    StepFinished {
        index: usize,
        elapsed: Duration,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    GoldenChecked {
        collector: String,
        verdict: Verdict,
    },
    ScenarioFinished {
        result: ScenarioResult,
    },
    RunFinished {
        elapsed: Duration,
    },
    /// Anything else worth a line: a kernel download, a guest booting, a guest's warning.
    Note {
        text: String,
    },
    /// A collector's output, raw, in a run that compares none (`rasdrill inject --guest`
    /// shows it).
    Output {
        collector: String,
        lines: Vec<String>,
        /// The first line of each kernel crash report among them.
        crashes: Vec<String>,
    },
    /// The guest kernel panicked, expected or not; its QEMU has exited.
    GuestPanicked(PanicSeen),
}

/// A guest kernel panic, as a run reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicSeen {
    /// The `Kernel panic - not syncing: ...` text.
    pub message: String,
    /// The last console lines.
    pub console_tail: String,
    /// From QEMU's start to its exit.
    pub elapsed: Duration,
}

/// Where events go.
pub trait Sink {
    fn event(&mut self, event: &Event);
}

/// Keeps every event: for tests, and for runners that report after the fact.
impl Sink for Vec<Event> {
    fn event(&mut self, event: &Event) {
        self.push(event.clone());
    }
}

/// One line per event on a terminal (stderr), prefixed with `[i/n] scenario:`.
pub struct Progress<W: Write> {
    out: W,
    prefix: String,
}

impl Progress<io::Stderr> {
    pub fn stderr() -> Self {
        Progress::new(io::stderr())
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: W) -> Self {
        Progress {
            out,
            prefix: String::new(),
        }
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, text: &str) {
        // Progress is best effort: a closed stderr must not stop a run.
        let _ = writeln!(self.out, "{}{text}", self.prefix);
    }

    /// Text over several lines (a diff, console output), indented under the current line.
    /// Control characters (a guest's colour codes) are shown escaped, not sent to the terminal.
    fn block(&mut self, text: &str) {
        for line in text.lines() {
            let shown: String = line
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        c.escape_debug().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            let _ = writeln!(self.out, "    {shown}");
        }
    }
}

impl<W: Write> Sink for Progress<W> {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { scenarios } => {
                let s = if *scenarios == 1 { "" } else { "s" };
                self.line(&format!("running {scenarios} scenario{s}"));
            }
            Event::ScenarioStarted {
                index,
                total,
                name,
                machine,
            } => {
                self.prefix = format!("[{index}/{total}] {name}: ");
                self.line(&format!("started ({machine})"));
            }
            Event::Booted { elapsed } => self.line(&format!("booted in {}", seconds(*elapsed))),
            Event::StepStarted { label, .. } => self.line(label),
            Event::StepFinished {
                index,
                elapsed,
                error,
            } => match error {
                None => self.line(&format!("steps[{index}] done in {}", seconds(*elapsed))),
                Some(e) => self.line(&format!(
                    "steps[{index}] FAILED after {}: {e}",
                    seconds(*elapsed)
                )),
            },
            Event::GoldenChecked { collector, verdict } => {
                self.line(&format!("{collector} {}", verdict.summary()));
                let diff = match verdict {
                    Verdict::Mismatch { diff, .. } => Some(diff),
                    Verdict::Accepted { diff, .. } => diff.as_ref(),
                    _ => None,
                };
                if let Some(diff) = diff {
                    self.block(diff);
                }
            }
            Event::ScenarioFinished { result } => {
                let outcome = result.outcome();
                let word = outcome.as_str().to_uppercase();
                self.line(&format!("{word} in {}", seconds(result.duration)));
                if let Some(v) = &result.oracle {
                    self.line(&format!("oracle: {}", v.summary()));
                    if !v.passed() {
                        self.block(v.details().trim_end());
                    }
                }
                if let Some(f) = &result.failure {
                    self.block(&f.message);
                    if let Some(details) = &f.details {
                        self.block(details);
                    }
                }
                self.prefix.clear();
            }
            Event::RunFinished { elapsed } => {
                self.line(&format!("finished in {}", seconds(*elapsed)))
            }
            Event::Note { text } => self.line(text),
            // For the command that asked for them; the panic is also in the failure or the
            // golden output.
            Event::Output { .. } | Event::GuestPanicked(_) => {}
        }
    }
}
