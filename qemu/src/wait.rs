//! Deadlines: every wait in this crate has one, and its error reports the time spent.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A point in time by which something must have happened, remembering when waiting began.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    end: Instant,
}

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        let start = Instant::now();
        Deadline {
            start,
            end: start + timeout,
        }
    }

    /// Time left; zero once expired.
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Time since the deadline was set.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The whole allowance.
    pub fn timeout(&self) -> Duration {
        self.end - self.start
    }
}

/// Calls `check` every `interval` until it returns `Some`, or `None` once `deadline` passes.
/// `check` is always called at least once, and once more at the deadline.
pub fn wait_until<T>(
    deadline: &Deadline,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return None;
        }
        std::thread::sleep(interval.min(remaining));
    }
}

/// Connects to the unix socket at `path`, retrying while it does not exist yet or refuses
/// (QEMU creates its sockets a moment after it starts), until `deadline`. The error is the
/// last attempt's, or `TimedOut` if none was made.
pub fn connect_until(path: &Path, deadline: &Deadline) -> io::Result<UnixStream> {
    let mut last = None;
    let stream = wait_until(deadline, Duration::from_millis(5), || {
        UnixStream::connect(path).map_err(|e| last = Some(e)).ok()
    });
    stream.ok_or_else(|| last.unwrap_or_else(|| io::ErrorKind::TimedOut.into()))
}

/// Polls until `done` holds for what `poll` returns and the value has then stayed unchanged for
/// `quiet`, or until `timeout` passes. Returns the last value and whether `done` was reached.
/// For output that arrives in bursts (a decoder printing several lines from a work queue after
/// the event it decodes): it is complete once it stops changing. A signal that asks the program
/// to stop ([`crate::interrupt`]) ends it at once, as the deadline would.
pub fn settle<T: PartialEq, E>(
    timeout: Duration,
    quiet: Duration,
    interval: Duration,
    mut poll: impl FnMut() -> Result<T, E>,
    done: impl Fn(&T) -> bool,
) -> Result<(T, bool), E> {
    let deadline = Deadline::after(timeout);
    let mut reached_at: Option<Instant> = None;
    let mut last: Option<T> = None;
    loop {
        let got = poll()?;
        let now = Instant::now();
        let changed = last.as_ref() != Some(&got);
        if done(&got) {
            match reached_at {
                Some(at) if !changed && now.duration_since(at) >= quiet => return Ok((got, true)),
                Some(_) if !changed => {}
                _ => reached_at = Some(now),
            }
        }
        if deadline.expired() || crate::interrupt::requested().is_some() {
            return Ok((got, reached_at.is_some()));
        }
        last = Some(got);
        std::thread::sleep(interval.min(deadline.remaining()));
    }
}

/// "1.234s": how elapsed times appear in error messages.
pub fn seconds(duration: Duration) -> String {
    format!("{:.3}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_waits_for_quiet_after_done() {
        // 1, 2, 3, 3, 3...: done at 2, but it still changes; settled once 3 has held for `quiet`.
        let mut n = 0;
        let (value, done) = settle(
            Duration::from_secs(5),
            Duration::from_millis(30),
            Duration::from_millis(5),
            || -> Result<u32, ()> {
                n += 1;
                Ok(n.min(3))
            },
            |v| *v >= 2,
        )
        .unwrap();
        assert_eq!((value, done), (3, true));
        assert!(n > 4, "it kept polling until quiet: {n} polls");
    }

    #[test]
    fn settle_reports_not_done_at_the_deadline() {
        let (value, done) = settle(
            Duration::from_millis(50),
            Duration::from_millis(10),
            Duration::from_millis(5),
            || -> Result<u32, ()> { Ok(1) },
            |v| *v >= 2,
        )
        .unwrap();
        assert_eq!((value, done), (1, false));
    }

    #[test]
    fn settle_stops_at_the_first_error() {
        let result = settle(
            Duration::from_secs(5),
            Duration::from_millis(10),
            Duration::from_millis(5),
            || -> Result<u32, &str> { Err("gone") },
            |_| true,
        );
        assert_eq!(result, Err("gone"));
    }

    #[test]
    fn wait_until_returns_the_first_success() {
        let deadline = Deadline::after(Duration::from_secs(5));
        let mut calls = 0;
        let got = wait_until(&deadline, Duration::from_millis(1), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn wait_until_gives_up_at_the_deadline() {
        let deadline = Deadline::after(Duration::from_millis(50));
        assert_eq!(
            wait_until(&deadline, Duration::from_millis(5), || None::<()>),
            None
        );
        assert!(deadline.elapsed() >= Duration::from_millis(50));
        assert!(deadline.elapsed() < Duration::from_secs(2));
        assert!(deadline.expired());
        assert_eq!(seconds(Duration::from_millis(1234)), "1.234s");
    }
}
