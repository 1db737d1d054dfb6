//! What a guest's kernel said since a point in time: kernel log records and trace events,
//! read through the agent with cursors, so each poll returns only what is new.

use std::time::Duration;

use rasdrill_qemu::wait::settle;

use crate::agent::protocol::{KmsgRecord, TraceEvent};
use crate::guest::{Guest, GuestError, REQUEST_TIMEOUT};

/// Cursors into the guest's kernel log and trace buffer.
#[derive(Debug, Clone, Default)]
pub struct Observer {
    kmsg_after: Option<u64>,
    trace_after: Option<u64>,
}

/// New output since the previous poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub kmsg: Vec<KmsgRecord>,
    pub trace: Vec<TraceEvent>,
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.kmsg.is_empty() && self.trace.is_empty()
    }

    pub fn extend(&mut self, more: Observed) {
        self.kmsg.extend(more.kmsg);
        self.trace.extend(more.trace);
    }
}

impl Observer {
    /// Cursors at the current end of both: only what happens from now on will be seen.
    pub fn start(guest: &mut Guest) -> Result<Observer, GuestError> {
        let mut observer = Observer::default();
        observer.poll(guest)?;
        Ok(observer)
    }

    /// Everything new since the last poll (or since `start`).
    pub fn poll(&mut self, guest: &mut Guest) -> Result<Observed, GuestError> {
        let kmsg_after = self.kmsg_after;
        let kmsg = guest.call("reading the kernel log", REQUEST_TIMEOUT, |a, d| {
            a.kmsg(kmsg_after, d)
        })?;
        let trace_after = self.trace_after;
        let batch = guest.call("reading trace events", REQUEST_TIMEOUT, |a, d| {
            a.trace(trace_after, d)
        })?;
        if let Some(last) = kmsg.last() {
            self.kmsg_after = Some(last.seq);
        }
        if let Some(last) = batch.last_seq() {
            self.trace_after = Some(last);
        }
        Ok(Observed {
            kmsg,
            trace: batch.events,
        })
    }

    /// Polls until `done` holds for everything seen so far and then nothing new arrives for
    /// `quiet`, or until `timeout`. Returns what was seen and whether `done` was reached.
    pub fn wait(
        &mut self,
        guest: &mut Guest,
        timeout: Duration,
        quiet: Duration,
        done: impl Fn(&Observed) -> bool,
    ) -> Result<(Observed, bool), GuestError> {
        const POLL: Duration = Duration::from_millis(50);
        let mut seen = Observed::default();
        let poll = || {
            seen.extend(self.poll(guest)?);
            Ok(seen.clone())
        };
        settle(timeout, quiet, POLL, poll, done)
    }
}
