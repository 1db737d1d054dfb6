//! Running QEMU so that it never outlives rasdrill.
//!
//! - QEMU runs in its own process group, so a terminal's Ctrl-C reaches rasdrill only, and
//!   one `kill(-pgid, SIGKILL)` takes QEMU and anything it started.
//! - [`QemuProcess`] kills the group and reaps it on drop, whatever path leads there.
//! - Every live group is in a process-wide registry; [`install_cleanup_handlers`] makes
//!   SIGINT, SIGTERM, SIGHUP and panics kill them all. After the first signal a cooperative
//!   program goes on to clean up ([`crate::interrupt`]), and no new QEMU starts.
//! - `PR_SET_PDEATHSIG(SIGKILL)` covers what no handler can: rasdrill itself being SIGKILLed.
//!   The kernel sends that signal when the *thread* that spawned QEMU exits, not the process,
//!   so spawn from a thread that lives as long as the guest (the main thread, typically).
//! - stdout and stderr are drained by threads into bounded buffers; the last
//!   [`TAIL_BYTES`] of stderr go into error messages.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::wait::{seconds, wait_until, Deadline};

/// How much of QEMU's stdout and stderr is kept (the most recent bytes).
pub const TAIL_BYTES: usize = 64 * 1024;

/// Why QEMU could not be started, or stopped when it should not have.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{program} not found: install qemu-system-x86 (apt-get install qemu-system-x86) or set RASDRILL_QEMU")]
    NotFound { program: String },
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("{program} exited after {} ({status}); its stderr ends with:\n{stderr}", seconds(*.elapsed))]
    Exited {
        program: String,
        status: ExitStatus,
        elapsed: Duration,
        stderr: String,
    },
    #[error("cannot wait for {program} (pid {pid}): {source}")]
    Wait {
        program: String,
        pid: u32,
        source: io::Error,
    },
    #[error("more than {SLOTS} QEMU processes at once: the cleanup registry is full")]
    TooMany,
    #[error("not starting {program}: rasdrill was asked to stop ({})", crate::interrupt::name(*.signal))]
    Interrupted { program: String, signal: i32 },
}

/// A running (or finished, not yet dropped) QEMU process and its process group.
pub struct QemuProcess {
    program: String,
    child: Child,
    started: Instant,
    slot: Option<usize>,
    status: Option<ExitStatus>,
    stdout: Arc<Tail>,
    stderr: Arc<Tail>,
}

impl std::fmt::Debug for QemuProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuProcess")
            .field("program", &self.program)
            .field("pid", &self.pid())
            .finish()
    }
}

impl QemuProcess {
    /// Starts `program args...` in a new process group, stdin from /dev/null. Spawn from a
    /// long-lived thread (see the module docs on PR_SET_PDEATHSIG).
    pub fn spawn(program: &Path, args: &[String]) -> Result<QemuProcess, ProcessError> {
        let name = program.display().to_string();
        let interrupted = |program: String| {
            crate::interrupt::requested()
                .map(|signal| ProcessError::Interrupted { program, signal })
        };
        if let Some(e) = interrupted(name.clone()) {
            return Err(e);
        }
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs between fork and exec and calls only prctl and getppid,
        // which are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // rasdrill may have died before the prctl: then nothing would ever kill us.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ProcessError::NotFound {
                program: name.clone(),
            },
            _ => ProcessError::Spawn {
                program: name.clone(),
                source,
            },
        })?;
        let stdout = Tail::drain(child.stdout.take().expect("piped stdout"), "qemu-stdout");
        let stderr = Tail::drain(child.stderr.take().expect("piped stderr"), "qemu-stderr");
        // process_group(0): the group id is the child's pid.
        let slot = register(child.id() as i32);
        let mut process = QemuProcess {
            program: name,
            child,
            started: Instant::now(),
            slot,
            status: None,
            stdout,
            stderr,
        };
        if process.slot.is_none() {
            let _ = process.kill();
            return Err(ProcessError::TooMany);
        }
        // A signal between the check above and the registration killed nothing of this one.
        if let Some(e) = interrupted(process.program.clone()) {
            let _ = process.kill();
            return Err(e);
        }
        Ok(process)
    }

    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The program as given to [`QemuProcess::spawn`].
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Time since the spawn.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        // Look without reaping first: once reaped, the group id may be reused, so it must
        // leave the registry before that.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(Pid::from_raw(self.pid() as i32)), flags) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(_) => self.reap().map(Some),
            Err(errno) => Err(self.wait_error(errno.into())),
        }
    }

    /// Waits up to `timeout` for the process to exit; `Ok(None)` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, ProcessError> {
        let deadline = Deadline::after(timeout);
        // try_wait gives Ok(None) while running: transposed, that is "not yet" for wait_until.
        wait_until(&deadline, Duration::from_millis(5), || {
            self.try_wait().transpose()
        })
        .transpose()
    }

    /// `Ok` while the process runs; once it has exited, [`ProcessError::Exited`] with its
    /// status and the end of its stderr. Use it to stop waiting for a guest that is gone.
    pub fn check_running(&mut self) -> Result<(), ProcessError> {
        match self.try_wait()? {
            None => Ok(()),
            Some(status) => Err(ProcessError::Exited {
                program: self.program.clone(),
                status,
                elapsed: self.elapsed(),
                stderr: self.stderr_tail().trim_end().to_owned(),
            }),
        }
    }

    /// Kills the whole process group with SIGKILL and reaps the process. Does nothing more
    /// if it has already been reaped.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcessError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // Not reaped yet, so the group id still belongs to this process.
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(-(self.pid() as libc::pid_t), libc::SIGKILL) };
        self.reap()
    }

    /// What QEMU wrote to stderr (the last [`TAIL_BYTES`]). Once QEMU has exited this waits
    /// briefly for the drain thread, so the text is complete.
    ///
    /// Leaves out the warnings TCG prints for every CPU feature of the model it cannot emulate
    /// (a dozen lines per vCPU for AMD models): they would bury the line that matters.
    pub fn stderr_tail(&self) -> String {
        if self.status.is_some() {
            self.stderr.wait_closed(Duration::from_secs(1));
        }
        let text = self.stderr.text();
        text.split_inclusive('\n')
            .filter(|l| !l.contains("TCG doesn't support requested feature"))
            .collect()
    }

    /// What QEMU wrote to stdout (the last [`TAIL_BYTES`]).
    pub fn stdout_tail(&self) -> String {
        if self.status.is_some() {
            self.stdout.wait_closed(Duration::from_secs(1));
        }
        self.stdout.text()
    }

    fn reap(&mut self) -> Result<ExitStatus, ProcessError> {
        if let Some(slot) = self.slot.take() {
            unregister(slot);
        }
        let status = self.child.wait().map_err(|e| self.wait_error(e))?;
        self.status = Some(status);
        Ok(status)
    }

    fn wait_error(&self, source: io::Error) -> ProcessError {
        ProcessError::Wait {
            program: self.program.clone(),
            pid: self.pid(),
            source,
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The last bytes of one output stream, filled by a drain thread.
struct Tail {
    state: Mutex<TailState>,
    closed: Condvar,
}

struct TailState {
    bytes: VecDeque<u8>,
    dropped: u64,
    closed: bool,
}

impl Tail {
    fn drain(mut pipe: impl Read + Send + 'static, name: &str) -> Arc<Tail> {
        let state = TailState {
            bytes: VecDeque::new(),
            dropped: 0,
            closed: false,
        };
        let tail = Arc::new(Tail {
            state: Mutex::new(state),
            closed: Condvar::new(),
        });
        let writer = Arc::clone(&tail);
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    writer.push(&buf[..n]);
                }
                writer.state.lock().expect("tail lock").closed = true;
                writer.closed.notify_all();
            });
        if spawned.is_err() {
            // Without a thread the pipe is dropped: QEMU gets EPIPE on output, nothing worse.
            tail.state.lock().expect("tail lock").closed = true;
        }
        tail
    }

    fn push(&self, data: &[u8]) {
        let mut state = self.state.lock().expect("tail lock");
        state.bytes.extend(data);
        let excess = state.bytes.len().saturating_sub(TAIL_BYTES);
        state.bytes.drain(..excess);
        state.dropped += excess as u64;
    }

    fn wait_closed(&self, timeout: Duration) {
        let state = self.state.lock().expect("tail lock");
        let _ = self
            .closed
            .wait_timeout_while(state, timeout, |s| !s.closed);
    }

    fn text(&self) -> String {
        let state = self.state.lock().expect("tail lock");
        let (a, b) = state.bytes.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        if state.dropped > 0 {
            format!("[{} earlier bytes dropped]\n{text}", state.dropped)
        } else {
            text
        }
    }
}

/// Process groups of live QEMU processes; 0 marks a free slot. Plain atomics, because the
/// signal handler reads them and may take no lock.
const SLOTS: usize = 64;
static LIVE_GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// Process groups of the other programs rasdrill runs here (a local collector's commands and
/// daemons): a cooperative program stops them itself after a first signal; a second one, or a
/// panic, kills them.
static HELPER_GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

fn register_in(slots: &[AtomicI32; SLOTS], pgid: i32) -> Option<usize> {
    slots.iter().position(|slot| {
        slot.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    })
}

fn register(pgid: i32) -> Option<usize> {
    register_in(&LIVE_GROUPS, pgid)
}

fn unregister(slot: usize) {
    LIVE_GROUPS[slot].store(0, Ordering::SeqCst);
}

/// A helper's process group in the cleanup registry, until dropped (drop it when the group's
/// leader is reaped: its id may then be reused).
#[derive(Debug)]
pub struct HelperGroup(Option<usize>);

impl HelperGroup {
    /// Registers `pgid`; a full registry registers nothing (the helper is stopped as usual,
    /// only not by a second signal).
    pub fn register(pgid: u32) -> HelperGroup {
        HelperGroup(register_in(&HELPER_GROUPS, pgid as i32))
    }
}

impl Drop for HelperGroup {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            HELPER_GROUPS[slot].store(0, Ordering::SeqCst);
        }
    }
}

/// Sends SIGKILL to every registered process group in `slots`; returns how many there were.
/// Async-signal-safe: atomics and kill(2) only.
fn kill_groups(slots: &[AtomicI32; SLOTS]) -> usize {
    let mut killed = 0;
    for slot in slots {
        let pgid = slot.load(Ordering::SeqCst);
        if pgid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            killed += 1;
        }
    }
    killed
}

/// Sends SIGKILL to every registered QEMU and helper process group; returns how many there
/// were. Async-signal-safe: atomics and kill(2) only.
pub fn kill_all_registered() -> usize {
    kill_groups(&LIVE_GROUPS) + kill_groups(&HELPER_GROUPS)
}

extern "C" fn on_signal(signal: libc::c_int) {
    // The guests are lost with the run either way: killing them now ends every wait on them.
    kill_groups(&LIVE_GROUPS);
    if crate::interrupt::record(signal) {
        // A cooperative program stops its helpers, cleans up and exits by itself.
        return;
    }
    kill_groups(&HELPER_GROUPS);
    // SAFETY: _exit is async-signal-safe; the usual shell convention 128 + signal number.
    unsafe { libc::_exit(128 + signal) };
}

/// For a program (not a library, not a test harness): on SIGINT, SIGTERM or SIGHUP, kill every
/// registered QEMU group; then exit with 130, 143 or 129, unless the program is cooperative
/// ([`crate::interrupt::cooperate`]) and this is the first signal. On a panic, kill them all
/// before the previous panic hook runs (the guests are lost with the run either way).
/// Idempotent.
pub fn install_cleanup_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            // A cooperative program carries on after the handler: restart what it interrupted.
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: the handler only touches atomics and calls kill(2) and _exit(2).
            unsafe { sigaction(signal, &action) }.expect("sigaction with a valid signal");
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            kill_all_registered();
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sh(script: &str) -> QemuProcess {
        QemuProcess::spawn(Path::new("sh"), &["-c".into(), script.into()]).unwrap()
    }

    fn alive(pid: u32) -> bool {
        // A zombie has exited; only a running or sleeping process counts.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        }
    }

    #[test]
    fn a_missing_binary_says_how_to_get_qemu() {
        let err = QemuProcess::spawn(Path::new("qemu-system-x86_64-nonexistent"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "qemu-system-x86_64-nonexistent not found: install qemu-system-x86 (apt-get install qemu-system-x86) or set RASDRILL_QEMU"
        );
    }

    #[test]
    fn an_early_exit_reports_status_and_stderr() {
        let mut process = sh("echo 'bad option -x' >&2; exit 3");
        let status = process
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("sh exits");
        assert_eq!(status.code(), Some(3));
        let err = process.check_running().unwrap_err().to_string();
        assert!(err.starts_with("sh exited after "), "{err}");
        assert!(
            err.ends_with("(exit status: 3); its stderr ends with:\nbad option -x"),
            "{err}"
        );
    }

    #[test]
    fn drop_kills_the_whole_group() {
        let mut process = sh("sleep 300 & echo $!; wait");
        let deadline = Deadline::after(Duration::from_secs(10));
        let grandchild: u32 = wait_until(&deadline, Duration::from_millis(5), || {
            process.stdout_tail().trim().parse().ok()
        })
        .expect("the shell prints the pid of its child");
        let pid = process.pid();
        assert!(alive(pid) && alive(grandchild));
        assert!(process.check_running().is_ok());
        drop(process);
        assert!(!alive(pid), "sh {pid} survived the drop");
        let deadline = Deadline::after(Duration::from_secs(5));
        assert!(
            wait_until(&deadline, Duration::from_millis(5), || (!alive(grandchild))
                .then_some(()))
            .is_some()
        );
    }

    #[test]
    fn stderr_keeps_only_the_tail() {
        let mut process = sh("head -c 100000 /dev/zero | tr '\\0' x >&2; echo END >&2");
        process
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("sh exits");
        let tail = process.stderr_tail();
        assert!(
            tail.starts_with(&format!(
                "[{} earlier bytes dropped]\n",
                100004 - TAIL_BYTES
            )),
            "{}",
            &tail[..60]
        );
        assert!(tail.ends_with("xxxEND\n"));
    }

    #[test]
    fn stderr_leaves_out_tcgs_feature_warnings() {
        let mut process = sh("echo 'qemu-system-x86_64: warning: TCG doesn'\\''t support requested feature: CPUID.07H:EBX.rdseed [bit 18]' >&2; echo 'qemu: real problem' >&2");
        process
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("sh exits");
        assert_eq!(process.stderr_tail(), "qemu: real problem\n");
    }

    #[test]
    fn the_spawning_thread_exiting_kills_the_child() {
        // PR_SET_PDEATHSIG fires when the spawning thread exits: demonstrate the caveat.
        let pid = std::thread::spawn(|| {
            let process = sh("sleep 300");
            let pid = process.pid();
            let slot = process.slot;
            std::mem::forget(process);
            unregister(slot.unwrap());
            pid
        })
        .join()
        .unwrap();
        let status = nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None).unwrap();
        assert_eq!(
            status,
            WaitStatus::Signaled(Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL, false)
        );
    }

    /// Runs this same test binary as a stand-in for rasdrill: it starts `sh`, whose own child
    /// `sleep` is in the same process group, installs the handlers, and is sent SIGTERM (or
    /// panics). PR_SET_PDEATHSIG would kill `sh` in any case, but not `sleep`: only the group
    /// kill by the handler or hook can.
    #[test]
    fn cleanup_handlers_kill_registered_groups() {
        if let Ok(mode) = std::env::var("RASDRILL_CLEANUP_CHILD") {
            install_cleanup_handlers();
            let process = sh("sleep 300 & echo $!; wait");
            let deadline = Deadline::after(Duration::from_secs(10));
            let grandchild: u32 = wait_until(&deadline, Duration::from_millis(5), || {
                process.stdout_tail().trim().parse().ok()
            })
            .expect("the shell prints the pid of its child");
            println!("child-pid {grandchild}");
            if mode == "panic" {
                // Panic only once the parent has seen the child alive, or the hook may kill it
                // before the parent looks.
                let mut go = String::new();
                std::io::stdin().read_line(&mut go).unwrap();
                std::mem::forget(process); // only the hook can kill the group now
                panic!("deliberate");
            }
            std::thread::sleep(Duration::from_secs(30)); // the parent signals long before
            std::process::exit(1);
        }
        for (mode, expected) in [("sigterm", 143), ("panic", 101)] {
            let mut helper = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "process::tests::cleanup_handlers_kill_registered_groups",
                    "--nocapture",
                ])
                .env("RASDRILL_CLEANUP_CHILD", mode)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut out = helper.stdout.take().unwrap();
            let mut text = String::new();
            let mut buf = [0u8; 256];
            while !text.contains('\n') || !text.contains("child-pid") {
                let n = out.read(&mut buf).unwrap();
                assert!(
                    n > 0,
                    "helper ended before printing its child's pid: {text}"
                );
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let line = text.lines().find(|l| l.starts_with("child-pid")).unwrap();
            let child: u32 = line[10..].trim().parse().unwrap();
            assert!(
                alive(child),
                "{mode}: child {child} died before the test began"
            );
            if mode == "sigterm" {
                unsafe { libc::kill(helper.id() as i32, libc::SIGTERM) };
            } else {
                helper.stdin.take().unwrap().write_all(b"go\n").unwrap();
            }
            let status = helper.wait().unwrap();
            // A test binary reports a panicking test as exit code 101.
            assert_eq!(status.code(), Some(expected), "{mode}");
            let deadline = Deadline::after(Duration::from_secs(5));
            let gone = wait_until(&deadline, Duration::from_millis(5), || {
                (!alive(child)).then_some(())
            });
            assert!(gone.is_some(), "{mode}: child {child} survived");
        }
    }
}
