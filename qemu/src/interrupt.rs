//! Ctrl-C and SIGTERM as data: the signal handler records the signal, and the program notices it
//! where it can stop cleanly.
//!
//! A command that cleans up after itself ([`cooperate`]: `rasdrill run`, `inject --guest`,
//! `bench`) keeps running after the first SIGINT, SIGTERM or SIGHUP: its QEMU groups are killed
//! at once (the guests are lost with the run, and every wait on them ends), [`settle`] and
//! [`sleep`] end early, nothing new starts ([`requested`]), and the program exits through its
//! usual paths, removing its temporary files, with 128 + the signal. A second signal ends the
//! process at once. Any other command ends at the first signal, as before.
//!
//! [`settle`]: crate::wait::settle

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use crate::wait::{wait_until, Deadline};

/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Whether this command stops cleanly after a first signal.
static COOPERATIVE: AtomicBool = AtomicBool::new(false);

/// This process cleans up after a first signal: the handler only records it (and kills QEMU).
pub fn cooperate() {
    COOPERATIVE.store(true, Ordering::SeqCst);
}

/// The signal that asked this process to stop, if one did.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// `SIGINT`, `SIGTERM`, `SIGHUP`, or the number.
pub fn name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// Sleeps for `duration`, or less if a signal asks the process to stop.
pub fn sleep(duration: Duration) {
    wait_until(
        &Deadline::after(duration),
        Duration::from_millis(20),
        requested,
    );
}

/// Records `signal`; true if the process should go on (a first signal, in a cooperative
/// process). Async-signal-safe: atomics only.
pub(crate) fn record(signal: i32) -> bool {
    let first = SIGNAL
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    first && COOPERATIVE.load(Ordering::SeqCst)
}
