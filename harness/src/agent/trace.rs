//! RAS tracepoints: enabling them in tracefs and collecting what `trace_pipe` prints.
//!
//! `trace_pipe` consumes what it returns, so one background thread reads it and keeps
//! every line in a buffer under its own sequence number; requests read that buffer with
//! a cursor, like `/dev/kmsg`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use serde::{Deserialize, Serialize};

/// The tracepoints of the kernel's RAS reporting (`<system>/<event>`): every event of the `mce`
/// and `ras` groups in the pinned kernels' tracefs (listed in a guest; docs/scenarios.md,
/// `trace`). A scenario may name only these: the target enables nothing else.
pub const RAS_TRACEPOINTS: [&str; 7] = [
    "mce/mce_record",
    "ras/mc_event",
    "ras/memory_failure_event",
    "ras/aer_event",
    "ras/extlog_mem_event",
    "ras/non_standard_event",
    "ras/arm_event",
];

/// Lines kept before the oldest are dropped (and counted).
const BUFFER_LINES: usize = 100_000;

/// One event line of `trace_pipe`, split into the common header and the event's own text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Our sequence number (from 1), the cursor for the next `Trace` request.
    pub seq: u64,
    /// The task's comm (`kworker/0:2`, `<idle>`, `<...>` when unknown).
    pub task: String,
    pub pid: u32,
    pub cpu: u32,
    /// The irq-info flags column (`d..1.`), empty when that option is off.
    pub flags: String,
    /// The trace clock, in nanoseconds.
    pub timestamp_ns: u64,
    /// The event's name, without its system (`mce_record`).
    pub event: String,
    /// Everything the event printed after `<event>: `, unchanged.
    pub fields: String,
}

/// A `trace_pipe` line that is not an event (e.g. `CPU:0 [LOST 3 EVENTS]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnparsedLine {
    pub seq: u64,
    pub line: String,
}

/// What a `Trace` request returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TraceBatch {
    pub events: Vec<TraceEvent>,
    pub unparsed: Vec<UnparsedLine>,
    /// Lines dropped since boot because nobody asked for them in time.
    pub dropped: u64,
}

impl TraceBatch {
    /// The cursor to pass as `after` next time.
    pub fn last_seq(&self) -> Option<u64> {
        let events = self.events.iter().map(|e| e.seq);
        events.chain(self.unparsed.iter().map(|u| u.seq)).max()
    }
}

/// Splits one `trace_pipe` line: `<task>-<pid> [<cpu>] <flags> <secs>.<frac>: <event>: <fields>`.
/// Returns `None` for lines of another shape. `seq` is left at 0.
pub fn parse_line(line: &str) -> Option<TraceEvent> {
    // The comm may itself hold spaces, dashes and brackets: take the first `[cpu]` whose
    // left side ends in `-<pid>`.
    for (open, _) in line.match_indices('[') {
        let Some(close) = line[open..].find(']').map(|c| open + c) else {
            break;
        };
        let Some(cpu) = digits(&line[open + 1..close]) else {
            continue;
        };
        let before = line[..open].trim_end();
        let Some((task, pid)) = before.rsplit_once('-') else {
            continue;
        };
        let Some(pid) = digits(pid) else { continue };
        let Some(rest) = parse_after_cpu(&line[close + 1..]) else {
            continue;
        };
        let (flags, timestamp_ns, event, fields) = rest;
        return Some(TraceEvent {
            seq: 0,
            task: task.trim_start().to_string(),
            pid: u32::try_from(pid).ok()?,
            cpu: u32::try_from(cpu).ok()?,
            flags: flags.to_string(),
            timestamp_ns,
            event: event.to_string(),
            fields: fields.to_string(),
        });
    }
    None
}

/// `<flags> <secs>.<frac>: <event>: <fields>`, the flags being optional.
fn parse_after_cpu(rest: &str) -> Option<(&str, u64, &str, &str)> {
    let rest = rest.trim_start();
    let (first, after_first) = rest.split_once(char::is_whitespace)?;
    let (flags, stamp, after_stamp) = match timestamp_ns(first) {
        Some(ns) => ("", ns, after_first),
        None => {
            let after_first = after_first.trim_start();
            let (stamp, after_stamp) = after_first.split_once(char::is_whitespace)?;
            (first, timestamp_ns(stamp)?, after_stamp)
        }
    };
    let after_stamp = after_stamp.trim_start();
    let (event, fields) = match after_stamp.split_once(": ") {
        Some((event, fields)) => (event, fields),
        None => (after_stamp.strip_suffix(':')?, ""),
    };
    if event.is_empty() || event.contains(char::is_whitespace) {
        return None;
    }
    Some((flags, stamp, event, fields))
}

/// `123.456789:` as nanoseconds.
fn timestamp_ns(token: &str) -> Option<u64> {
    let (secs, frac) = token.strip_suffix(':')?.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let scale = 10u64.pow(9 - frac.len() as u32);
    digits(secs)?
        .checked_mul(1_000_000_000)?
        .checked_add(digits(frac)? * scale)
}

fn digits(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Writes `1` to `events/<system>/<event>/enable` for each name that exists in this kernel.
/// Returns the names enabled and a warning for each one that failed for another reason.
pub fn enable(tracefs: &Path, names: &[String]) -> (Vec<String>, Vec<String>) {
    let mut enabled = Vec::new();
    let mut warnings = Vec::new();
    for name in names {
        let file = tracefs.join("events").join(name).join("enable");
        if !file.exists() {
            continue; // Not built into this kernel: Ready lists what is enabled.
        }
        match std::fs::write(&file, "1") {
            Ok(()) => enabled.push(name.clone()),
            Err(e) => warnings.push(format!(
                "cannot enable tracepoint {name} ({}): {e}",
                file.display()
            )),
        }
    }
    (enabled, warnings)
}

#[derive(Debug)]
enum Item {
    Event(TraceEvent),
    Unparsed(UnparsedLine),
}

impl Item {
    fn seq(&self) -> u64 {
        match self {
            Item::Event(e) => e.seq,
            Item::Unparsed(u) => u.seq,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Item>,
    /// Events read so far, by name, however many were dropped from `items`.
    counts: std::collections::HashMap<String, usize>,
    last_seq: u64,
    dropped: u64,
    /// Why the reader stopped, if it did.
    failure: Option<String>,
}

/// The lines read from `trace_pipe` so far, shared between the reader thread and requests.
#[derive(Debug, Default)]
pub struct TraceBuffer {
    state: Mutex<State>,
}

impl TraceBuffer {
    /// Starts a thread that reads `trace_pipe` into a new buffer until the file ends or fails.
    pub fn start(trace_pipe: PathBuf) -> Arc<TraceBuffer> {
        let buffer = Arc::new(TraceBuffer::default());
        let writer = Arc::clone(&buffer);
        thread::Builder::new()
            .name("trace_pipe".into())
            .spawn(move || {
                let failure = match writer.read_from(&trace_pipe) {
                    Ok(()) => format!("{} ended", trace_pipe.display()),
                    Err(e) => format!("cannot read {}: {e}", trace_pipe.display()),
                };
                writer.lock().failure = Some(failure);
            })
            .expect("spawning a thread only fails when the system is out of resources");
        buffer
    }

    fn read_from(&self, path: &Path) -> std::io::Result<()> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            self.push(text.trim_end_matches(['\n', '\r']));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the buffer half-written: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one line under the next sequence number.
    pub fn push(&self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let mut state = self.lock();
        state.last_seq += 1;
        let seq = state.last_seq;
        let item = match parse_line(line) {
            Some(event) => {
                *state.counts.entry(event.event.clone()).or_default() += 1;
                Item::Event(TraceEvent { seq, ..event })
            }
            None => Item::Unparsed(UnparsedLine {
                seq,
                line: line.to_string(),
            }),
        };
        state.items.push_back(item);
        if state.items.len() > BUFFER_LINES {
            state.items.pop_front();
            state.dropped += 1;
        }
    }

    /// How many `event` lines have been read since the reader started.
    pub fn count(&self, event: &str) -> usize {
        self.lock().counts.get(event).copied().unwrap_or(0)
    }

    /// Everything after the cursor, or why the reader stopped if nothing is left to read.
    pub fn after(&self, after: Option<u64>) -> Result<TraceBatch, String> {
        let state = self.lock();
        let after = after.unwrap_or(0);
        let mut batch = TraceBatch {
            dropped: state.dropped,
            ..TraceBatch::default()
        };
        for item in state.items.iter().filter(|i| i.seq() > after) {
            match item {
                Item::Event(e) => batch.events.push(e.clone()),
                Item::Unparsed(u) => batch.unparsed.push(u.clone()),
            }
        }
        match &state.failure {
            Some(failure) if batch.last_seq().is_none() => Err(failure.clone()),
            _ => Ok(batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use rasdrill_qemu::wait::{wait_until, Deadline};

    use super::*;

    /// The 6.1 format (checked against the string in Debian's 6.1.0-56 vmlinux).
    const MCE_61: &str = "  kworker/0:2-47      [000] d..1.   123.456789: mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, IPID: 0000000000000000, ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, TSC: 0, PROCESSOR: 2:600f12, TIME: 1732600000, SOCKET: 0, APIC: 0";

    #[test]
    fn parses_an_mce_record_line() {
        let event = parse_line(MCE_61).unwrap();
        assert_eq!(event.task, "kworker/0:2");
        assert_eq!(event.pid, 47);
        assert_eq!(event.cpu, 0);
        assert_eq!(event.flags, "d..1.");
        assert_eq!(event.timestamp_ns, 123_456_789_000);
        assert_eq!(event.event, "mce_record");
        assert!(event
            .fields
            .starts_with("CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, IPID:"));
        assert!(event
            .fields
            .ends_with("TIME: 1732600000, SOCKET: 0, APIC: 0"));
    }

    #[test]
    fn keeps_newer_kernels_fields_verbatim() {
        let line = "           <...>-1234    [001] .....  9.000001: mce_record: CPU: 1, MCGc/s: 0/0, MC4: 9c7d410092080813, IPID: 0000000000000000, ADDR/MISC/SYND: 0000000012345000/0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, TSC: 5c2d1e0a8, PPIN: 0, PROCESSOR: 2:600f12, TIME: 1732600000, SOCKET: 0, APIC: 1, MICROCODE: 1000065";
        let event = parse_line(line).unwrap();
        assert_eq!(
            (event.task.as_str(), event.pid, event.cpu),
            ("<...>", 1234, 1)
        );
        assert_eq!(event.timestamp_ns, 9_000_001_000);
        assert!(event.fields.ends_with("APIC: 1, MICROCODE: 1000065"));
    }

    #[test]
    fn parses_tasks_with_spaces_and_dashes_and_lines_without_flags() {
        let line = "  my task-x [7]-9 [002] 55.5: mc_event: 1 Corrected error: memory read on DIMM0 (mc:0)";
        let event = parse_line(line).unwrap();
        assert_eq!(event.task, "my task-x [7]");
        assert_eq!((event.pid, event.cpu), (9, 2));
        assert_eq!(event.flags, "");
        assert_eq!(event.timestamp_ns, 55_500_000_000);
        assert_eq!(event.event, "mc_event");
        assert_eq!(
            event.fields,
            "1 Corrected error: memory read on DIMM0 (mc:0)"
        );
    }

    #[test]
    fn rejects_lines_that_are_not_events() {
        assert_eq!(parse_line("CPU:0 [LOST 3 EVENTS]"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("  sh-1 [000] d..1. notatime: x: y"), None);
    }

    #[test]
    fn buffer_numbers_lines_and_reads_after_a_cursor() {
        let buffer = TraceBuffer::default();
        buffer.push(MCE_61);
        buffer.push("CPU:0 [LOST 3 EVENTS]");
        buffer.push("");
        buffer.push(MCE_61);
        let all = buffer.after(None).unwrap();
        assert_eq!(all.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            all.unparsed,
            [UnparsedLine {
                seq: 2,
                line: "CPU:0 [LOST 3 EVENTS]".into()
            }]
        );
        assert_eq!(all.last_seq(), Some(3));
        let later = buffer.after(Some(2)).unwrap();
        assert_eq!((later.events.len(), later.unparsed.len()), (1, 0));
        assert_eq!(buffer.after(Some(3)).unwrap().last_seq(), None);
    }

    #[test]
    fn buffer_reports_a_dead_reader_once_drained() {
        let buffer = TraceBuffer::start(PathBuf::from("/nonexistent/trace_pipe"));
        let deadline = Deadline::after(std::time::Duration::from_secs(5));
        let poll = std::time::Duration::from_millis(1);
        let err =
            wait_until(&deadline, poll, || buffer.after(None).err()).expect("the reader's failure");
        assert!(err.contains("/nonexistent/trace_pipe"), "{err}");
    }

    #[test]
    fn enable_writes_only_existing_tracepoints() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events/mce/mce_record");
        std::fs::create_dir_all(&events).unwrap();
        std::fs::write(events.join("enable"), "0").unwrap();
        let names: Vec<String> = RAS_TRACEPOINTS.iter().map(|s| s.to_string()).collect();
        let (enabled, warnings) = enable(dir.path(), &names);
        assert_eq!(enabled, ["mce/mce_record"]);
        assert!(warnings.is_empty());
        assert_eq!(std::fs::read_to_string(events.join("enable")).unwrap(), "1");
    }
}
