//! Two rasdrill never inject at once: the second is refused and told who holds the lock.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use rasdrill_qemu::wait::{wait_until, Deadline};

use crate::support::{
    read_in_order, writes, Cpu, FakeMachine, DEADLINE, LOCK, MCE_INJECT, MCE_INJECT_ORDER,
};

const RECORD: [&str; 6] = [
    "--cpu",
    "0",
    "--bank",
    "4",
    "--status",
    "0x9c7d410092080813",
];

#[test]
fn a_held_lock_refuses_with_the_holders_pid_and_writes_nothing() {
    let m = FakeMachine::new(Cpu::Amd);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(m.path(LOCK))
        .unwrap();
    writeln!(file, "4242").unwrap();
    let _held = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let before = m.snapshot();
    let out = m.inject(&RECORD).assert().code(4).get_output().clone();
    assert_eq!(
        m.redact(&out.stderr),
        "error: another rasdrill (pid 4242) is injecting on this machine: it holds <root>/run/lock/rasdrill.lock; \
         wait for it to finish\n"
    );
    assert_eq!(m.snapshot(), before);
    // A dry run takes no lock, so it still answers.
    m.inject(&[&RECORD[..], &["--dry-run"]].concat())
        .assert()
        .success();
}

#[test]
fn a_second_rasdrill_is_refused_while_the_first_injects() {
    let m = FakeMachine::new(Cpu::Amd);
    m.fifos(MCE_INJECT, &MCE_INJECT_ORDER);
    // The first blocks opening `flags` (a FIFO nobody reads yet), holding the lock.
    let first = m.spawn_inject(&RECORD);
    let holder = || fs::read_to_string(m.path(LOCK)).unwrap_or_default();
    wait_until(&Deadline::after(DEADLINE), Duration::from_millis(5), || {
        (holder().trim() == first.pid().to_string()).then_some(())
    })
    .expect("the first rasdrill never took the lock");
    let second = m.inject(&RECORD).assert().code(4).get_output().clone();
    let stderr = m.redact(&second.stderr);
    assert!(
        stderr.contains(&format!(
            "another rasdrill (pid {}) is injecting",
            first.pid()
        )),
        "{stderr}"
    );

    // Let the first finish: its writes are complete and in order, none from the second.
    let got = read_in_order(&m, MCE_INJECT, &MCE_INJECT_ORDER);
    let done = first.finish();
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(got[0], writes(&[("flags", "sw\n")])[0]);
    assert_eq!(got[7], writes(&[("bank", "4\n")])[0]);
    // Released on exit: the next one gets it.
    m.inject(&[&RECORD[..], &["--dry-run"]].concat())
        .assert()
        .success();
}
