//! The `trace` collector: RAS tracepoint events since the scenario started, one line each as
//! `<event>: <fields>` (`mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, ...`).
//!
//! The task, PID, CPU and flags columns of `trace_pipe` are left out: they say which task the
//! poll happened to interrupt, not what was decoded. The target enables the RAS tracepoints
//! (`agent::trace::RAS_TRACEPOINTS`) and buffers them; a scenario names those it wants as
//! `group/event`. A record is one event.

use super::{CollectError, Collected, Collector};
use crate::agent::protocol::TraceEvent;
use crate::target::Target;

/// A trace event as `trace_pipe` prints its event part.
pub fn line(e: &TraceEvent) -> String {
    format!("{}: {}", e.event, e.fields)
}

pub struct Trace {
    /// Event names without their group (`trace_pipe` prints `mce_record`, not `mce/mce_record`).
    events: Vec<String>,
    after: Option<u64>,
    seen: Vec<TraceEvent>,
}

impl Trace {
    /// `events` as a scenario writes them, `group/event`.
    pub fn new(events: &[String]) -> Trace {
        Trace {
            events: events
                .iter()
                .map(|e| e.rsplit('/').next().unwrap_or(e).to_string())
                .collect(),
            after: None,
            seen: Vec::new(),
        }
    }

    fn wanted(&self, e: &TraceEvent) -> bool {
        self.events.contains(&e.event)
    }
}

impl Collector for Trace {
    fn name(&self) -> &str {
        "trace"
    }

    fn start(
        &mut self,
        target: &mut dyn Target,
        _progress: &mut dyn FnMut(&str),
    ) -> Result<(), CollectError> {
        let batch = target
            .trace(None)
            .map_err(|e| CollectError::target("trace", e))?;
        self.after = batch.last_seq();
        self.seen.clear();
        Ok(())
    }

    fn collect(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError> {
        let batch = target
            .trace(self.after)
            .map_err(|e| CollectError::target("trace", e))?;
        if let Some(last) = batch.last_seq() {
            self.after = Some(last);
        }
        let wanted: Vec<TraceEvent> = batch
            .events
            .into_iter()
            .filter(|e| self.wanted(e))
            .collect();
        self.seen.extend(wanted);
        Ok(Collected {
            lines: self.seen.iter().map(line).collect(),
            records: self.seen.len(),
            ..Default::default()
        })
    }

    fn stop(&mut self, _target: &mut dyn Target) -> Result<(), CollectError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_named_events_without_their_group() {
        let t = Trace::new(&["mce/mce_record".to_string()]);
        let event = |name: &str| TraceEvent {
            seq: 1,
            task: "kworker/0:2".into(),
            pid: 47,
            cpu: 0,
            flags: "d..1.".into(),
            timestamp_ns: 1,
            event: name.into(),
            fields: "CPU: 0, MC4: 9c7d410092080813".into(),
        };
        assert!(t.wanted(&event("mce_record")));
        assert!(!t.wanted(&event("mc_event")));
        assert_eq!(
            line(&event("mce_record")),
            "mce_record: CPU: 0, MC4: 9c7d410092080813"
        );
    }
}
