//! Commands the host asks for: `Run` (to completion, with a deadline) and `Spawn`/`Kill`
//! (background daemons whose output goes to files), plus PID 1's duty of reaping orphans.
//!
//! Each command gets its own process group, so a timeout or a kill reaches its children too.
//! Our own children are waited for through `std::process::Child`; orphans re-parented to
//! PID 1 are reaped by [`Children::reap_orphans`], which skips the pids we wait for ourselves.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use rasdrill_qemu::interrupt;
use rasdrill_qemu::process::HelperGroup;
use rasdrill_qemu::wait::{wait_until, Deadline};

use super::protocol::{ExitInfo, RunOutput, RunSpec, SpawnSpec, Spawned};

/// How long a killed command may take to die before we give up on it.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How often a running command looks for a signal asking rasdrill to stop.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// A command could not be run or signalled.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("the command line is empty: argv needs at least the program")]
    EmptyArgv,
    #[error("cannot start {program}: {source}")]
    Start { program: String, source: io::Error },
    #[error("cannot wait for {program} (pid {pid}): {source}")]
    Wait {
        program: String,
        pid: u32,
        source: io::Error,
    },
    #[error("{program} (pid {pid}) did not die within {grace:?} of SIGKILL")]
    Unkillable {
        program: String,
        pid: u32,
        grace: Duration,
    },
    #[error("spawn name {0:?} is not valid: use letters, digits, '-' and '_'")]
    BadName(String),
    #[error("a process named {name:?} is still running (pid {pid})")]
    NameInUse { name: String, pid: u32 },
    #[error("no spawned process is named {0:?}")]
    UnknownName(String),
    #[error(
        "signal {0} is not a valid signal number: use a standard signal, 1 to 31 (15 is SIGTERM)"
    )]
    BadSignal(i32),
    #[error("cannot create {path}: {source}")]
    OutputFile { path: PathBuf, source: io::Error },
}

/// The pids we wait for ourselves, so the orphan reaper leaves them alone; each one's process
/// group is in the cleanup registry (a second Ctrl-C kills them) while it is ours.
#[derive(Debug, Clone, Default)]
pub struct Children {
    ours: Arc<Mutex<HashMap<u32, HelperGroup>>>,
}

impl Children {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, HelperGroup>> {
        self.ours.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `command` in its own process group and records its pid before the reaper can look.
    fn spawn(&self, command: &mut Command) -> io::Result<Child> {
        let mut ours = self.lock();
        let child = command.process_group(0).spawn()?;
        ours.insert(child.id(), HelperGroup::register(child.id()));
        Ok(child)
    }

    fn forget(&self, pid: u32) {
        self.lock().remove(&pid);
    }

    /// Runs `f` with the orphan reaper held off, for code that forks and waits for a child of
    /// its own without telling us its pid (the inject crate's madvise child): otherwise the
    /// reaper can take that child's exit first, and the caller's waitpid fails with ECHILD.
    pub fn holding_off_the_reaper<T>(&self, f: impl FnOnce() -> T) -> T {
        let _held = self.lock();
        f()
    }

    /// Reaps every zombie child that is not ours (PID 1 only: orphans of daemons and of
    /// commands that left children behind). Returns how many were reaped.
    pub fn reap_orphans(&self, proc_dir: &Path) -> usize {
        let ours = self.lock();
        let me = std::process::id();
        let mut reaped = 0;
        let Ok(entries) = std::fs::read_dir(proc_dir) else {
            return 0;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if ours.contains_key(&pid) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if zombie_child_of(&stat, me) {
                let flags = Some(WaitPidFlag::WNOHANG);
                if waitpid(Pid::from_raw(pid as i32), flags).is_ok() {
                    reaped += 1;
                }
            }
        }
        reaped
    }
}

/// Whether a `/proc/<pid>/stat` line describes a zombie whose parent is `parent`.
fn zombie_child_of(stat: &str, parent: u32) -> bool {
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses: split at the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
    state == Some("Z") && ppid == Some(parent)
}

fn command(
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Result<Command, ProcessError> {
    let (program, args) = argv.split_first().ok_or(ProcessError::EmptyArgv)?;
    let mut command = Command::new(program);
    command.args(args).envs(env);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    Ok(command)
}

fn exit_info(status: ExitStatus) -> ExitInfo {
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}

/// The most of a command's stdout or stderr kept; the rest is read and dropped, so the command
/// never blocks on a full pipe. Above any collector's output limit (`collect::limit`), so a
/// command printing more is still seen to.
pub const CAPTURE_LIMIT: usize = 64 << 20;

/// Output read by a thread, kept where the caller can take it even if the pipe never closes
/// (a grandchild that kept it open).
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let sink = Arc::clone(&bytes);
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                let room = CAPTURE_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            let _ = tx.send(());
        });
        Capture { bytes, done }
    }

    /// Waits for the pipe to close until `deadline`, then returns what was read.
    fn finish(self, deadline: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Runs a command to completion; on timeout kills its process group and returns what it printed.
/// A signal asking rasdrill to stop ([`rasdrill_qemu::interrupt`]) ends it as a timeout would,
/// unless the command began after the signal (cleanup: it runs to its own deadline).
pub fn run(children: &Children, spec: &RunSpec) -> Result<RunOutput, ProcessError> {
    let started = Instant::now();
    let interruptible = interrupt::requested().is_none();
    let deadline = started + Duration::from_millis(spec.timeout_ms);
    let program = spec.argv.first().cloned().unwrap_or_default();
    let mut command = command(&spec.argv, &spec.env, spec.cwd.as_deref())?;
    command
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = children
        .spawn(&mut command)
        .map_err(|source| ProcessError::Start {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let stdout = Capture::start(child.stdout.take().expect("stdout is piped"));
    let stderr = Capture::start(child.stderr.take().expect("stderr is piped"));
    if let (Some(input), Some(mut pipe)) = (spec.stdin.clone(), child.stdin.take()) {
        // A thread, so a command that does not read its input cannot block us.
        thread::spawn(move || pipe.write_all(input.as_bytes()));
    }
    let (tx, exited) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });

    // Ends by the deadline, or sooner when a signal asks rasdrill to stop (`None`: kill it).
    let exited_by_deadline = || loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let stop = interruptible && interrupt::requested().is_some();
        if remaining.is_zero() || stop {
            return None;
        }
        let slice = if interruptible {
            remaining.min(INTERRUPT_POLL)
        } else {
            remaining
        };
        match exited.recv_timeout(slice) {
            Ok(status) => return Some(status),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    };
    let (status, timed_out) = match exited_by_deadline() {
        Some(status) => (status, false),
        None => {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            match exited.recv_timeout(KILL_GRACE) {
                Ok(status) => (status, true),
                Err(_) => {
                    return Err(ProcessError::Unkillable {
                        program,
                        pid,
                        grace: KILL_GRACE,
                    });
                }
            }
        }
    };
    children.forget(pid);
    let status = status.map_err(|source| ProcessError::Wait {
        program,
        pid,
        source,
    })?;
    // After a timeout the group is dead; give the readers a moment to drain the pipes.
    let output_deadline = deadline.max(Instant::now() + Duration::from_millis(100));
    Ok(RunOutput {
        exit: exit_info(status),
        stdout: stdout.finish(output_deadline),
        stderr: stderr.finish(output_deadline),
        timed_out,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

struct Daemon {
    program: String,
    child: Child,
}

/// The background processes started by `Spawn`, by name.
pub struct Daemons {
    children: Children,
    log_dir: PathBuf,
    running: HashMap<String, Daemon>,
}

impl Daemons {
    /// `log_dir` receives `<name>.stdout` and `<name>.stderr`.
    pub fn new(children: Children, log_dir: PathBuf) -> Daemons {
        Daemons {
            children,
            log_dir,
            running: HashMap::new(),
        }
    }

    pub fn spawn(&mut self, spec: &SpawnSpec) -> Result<Spawned, ProcessError> {
        let name_ok = !spec.name.is_empty()
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(ProcessError::BadName(spec.name.clone()));
        }
        if let Some(daemon) = self.running.get_mut(&spec.name) {
            if matches!(daemon.child.try_wait(), Ok(None)) {
                return Err(ProcessError::NameInUse {
                    name: spec.name.clone(),
                    pid: daemon.child.id(),
                });
            }
            let pid = daemon.child.id();
            self.running.remove(&spec.name);
            self.children.forget(pid);
        }
        let stdout = self.log_dir.join(format!("{}.stdout", spec.name));
        let stderr = self.log_dir.join(format!("{}.stderr", spec.name));
        let create = |path: &Path| {
            std::fs::create_dir_all(&self.log_dir)
                .and_then(|()| File::create(path))
                .map_err(|source| ProcessError::OutputFile {
                    path: path.to_path_buf(),
                    source,
                })
        };
        let mut command = command(&spec.argv, &spec.env, spec.cwd.as_deref())?;
        command
            .stdin(Stdio::null())
            .stdout(create(&stdout)?)
            .stderr(create(&stderr)?);
        let program = spec.argv[0].clone();
        let child = self
            .children
            .spawn(&mut command)
            .map_err(|source| ProcessError::Start {
                program: program.clone(),
                source,
            })?;
        let pid = child.id();
        self.running
            .insert(spec.name.clone(), Daemon { program, child });
        Ok(Spawned {
            pid,
            stdout,
            stderr,
        })
    }

    /// Sends `signal` to the daemon's process group, waits up to `grace`, then SIGKILLs it.
    pub fn kill(
        &mut self,
        name: &str,
        signal: i32,
        grace: Duration,
    ) -> Result<ExitInfo, ProcessError> {
        let signal = Signal::try_from(signal).map_err(|_| ProcessError::BadSignal(signal))?;
        let mut daemon = self
            .running
            .remove(name)
            .ok_or_else(|| ProcessError::UnknownName(name.to_string()))?;
        let pid = daemon.child.id();
        let stopped = stop(&mut daemon.child, signal, grace);
        self.children.forget(pid);
        match stopped {
            Ok(Some(status)) => Ok(exit_info(status)),
            Ok(None) => Err(ProcessError::Unkillable {
                program: daemon.program,
                pid,
                grace: KILL_GRACE,
            }),
            Err(source) => Err(ProcessError::Wait {
                program: daemon.program,
                pid,
                source,
            }),
        }
    }
}

/// Daemons still running when their owner goes (a scenario that failed or was interrupted
/// before its collectors stopped them) are stopped as `Kill` would: SIGTERM, then SIGKILL.
impl Drop for Daemons {
    fn drop(&mut self) {
        for (_, mut daemon) in self.running.drain() {
            let _ = stop(&mut daemon.child, Signal::SIGTERM, DROP_GRACE);
            self.children.forget(daemon.child.id());
        }
    }
}

/// How long a daemon stopped on drop has between SIGTERM and SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(2);

/// Sends `signal` to the child's process group and waits up to `grace`, then SIGKILLs the
/// group and waits [`KILL_GRACE`] more; `None` if it still lives. A child that had already
/// ended is only reaped.
fn stop(child: &mut Child, signal: Signal, grace: Duration) -> io::Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, signal);
    if let Some(status) = wait_for_exit(child, grace)? {
        return Ok(Some(status));
    }
    let _ = killpg(group, Signal::SIGKILL);
    wait_for_exit(child, KILL_GRACE)
}

/// Polls a child until it exits or `patience` runs out (a daemon has no waiter thread).
fn wait_for_exit(child: &mut Child, patience: Duration) -> io::Result<Option<ExitStatus>> {
    // try_wait gives Ok(None) while running: transposed, that is "not yet" for wait_until.
    wait_until(&Deadline::after(patience), Duration::from_millis(5), || {
        child.try_wait().transpose()
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> RunSpec {
        RunSpec::new(["/bin/sh", "-c", script], timeout_ms)
    }

    fn wait_for_contents(path: &Path, expected: &str) {
        let deadline = Deadline::after(Duration::from_secs(10));
        wait_until(&deadline, Duration::from_millis(5), || {
            (std::fs::read_to_string(path).unwrap() == expected).then_some(())
        })
        .expect("the daemon's output");
    }

    #[test]
    fn run_returns_status_output_and_feeds_stdin() {
        let children = Children::default();
        let mut spec = sh(
            "read x; echo \"got $x in $PWD as $V\"; echo oops >&2; exit 3",
            10_000,
        );
        spec.stdin = Some("hello\n".into());
        spec.env.insert("V".into(), "v1".into());
        spec.cwd = Some("/tmp".into());
        let out = run(&children, &spec).unwrap();
        assert_eq!(
            out.exit,
            ExitInfo {
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(out.stdout, "got hello in /tmp as v1\n");
        assert_eq!(out.stderr, "oops\n");
        assert!(!out.timed_out);
        assert!(children.lock().is_empty());
    }

    #[test]
    fn run_kills_the_whole_group_on_timeout() {
        let children = Children::default();
        let started = Instant::now();
        // The grandchild keeps stdout open: the timeout must still end the request.
        let out = run(&children, &sh("echo before; sleep 30 & sleep 30", 300)).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit.signal, Some(libc::SIGKILL));
        assert_eq!(out.stdout, "before\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn run_reports_a_missing_program() {
        let err = run(
            &Children::default(),
            &RunSpec::new(["/nonexistent/prog"], 1000),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot start /nonexistent/prog"),
            "{err}"
        );
        assert!(matches!(
            run(&Children::default(), &RunSpec::new(Vec::<String>::new(), 1)),
            Err(ProcessError::EmptyArgv)
        ));
    }

    #[test]
    fn daemons_write_to_files_and_stop_on_signal() {
        let dir = tempfile::tempdir().unwrap();
        let mut daemons = Daemons::new(Children::default(), dir.path().join("logs"));
        let spec = SpawnSpec {
            name: "d1".into(),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo started; exec sleep 30".into(),
            ],
            env: BTreeMap::new(),
            cwd: None,
        };
        let spawned = daemons.spawn(&spec).unwrap();
        assert!(matches!(
            daemons.spawn(&spec),
            Err(ProcessError::NameInUse { .. })
        ));
        wait_for_contents(&spawned.stdout, "started\n");
        let exit = daemons
            .kill("d1", libc::SIGTERM, Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            exit,
            ExitInfo {
                code: None,
                signal: Some(libc::SIGTERM)
            }
        );
        assert!(matches!(
            daemons.kill("d1", 15, Duration::ZERO),
            Err(ProcessError::UnknownName(_))
        ));
    }

    #[test]
    fn daemons_that_ignore_the_signal_get_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let mut daemons = Daemons::new(Children::default(), dir.path().to_path_buf());
        let spec = SpawnSpec {
            name: "stubborn".into(),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "trap '' TERM; echo armed; while :; do sleep 1; done".into(),
            ],
            env: BTreeMap::new(),
            cwd: None,
        };
        let spawned = daemons.spawn(&spec).unwrap();
        // The trap must be in place before the signal is sent.
        wait_for_contents(&spawned.stdout, "armed\n");
        let exit = daemons
            .kill("stubborn", libc::SIGTERM, Duration::from_millis(200))
            .unwrap();
        assert_eq!(exit.signal, Some(libc::SIGKILL));
    }

    #[test]
    fn kill_rejects_signals_outside_the_standard_ones() {
        let mut daemons = Daemons::new(Children::default(), PathBuf::from("/nonexistent"));
        for signal in [0, 32] {
            let err = daemons.kill("any", signal, Duration::ZERO).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!(
                    "signal {signal} is not a valid signal number: use a standard signal, 1 to 31"
                )),
                "{err}"
            );
        }
        for signal in [1, 31] {
            assert!(matches!(
                daemons.kill("any", signal, Duration::ZERO),
                Err(ProcessError::UnknownName(_))
            ));
        }
    }

    #[test]
    fn spawn_rejects_bad_names() {
        let mut daemons = Daemons::new(Children::default(), PathBuf::from("/nonexistent"));
        let spec = SpawnSpec {
            name: "../x".into(),
            argv: vec!["true".into()],
            env: BTreeMap::new(),
            cwd: None,
        };
        assert!(matches!(
            daemons.spawn(&spec),
            Err(ProcessError::BadName(_))
        ));
    }

    #[test]
    fn recognises_zombie_children_in_proc_stat() {
        assert!(zombie_child_of("123 (sh) Z 1 123 123 0 -1", 1));
        assert!(zombie_child_of("123 (a) b) (c) Z 1 0", 1));
        assert!(!zombie_child_of("123 (sh) S 1 123", 1));
        assert!(!zombie_child_of("123 (sh) Z 2 123", 1));
        assert!(!zombie_child_of("garbage", 1));
    }

    /// The hwpoison madvise child's race: the reaper must not take a child whose pid it was not
    /// told about while its parent waits for it under `holding_off_the_reaper`.
    #[test]
    fn a_child_waited_for_while_the_reaper_is_held_off_is_not_reaped_by_it() {
        let children = Children::default();
        let status = children.holding_off_the_reaper(|| {
            let mut child = Command::new("/bin/true").spawn().unwrap();
            let pid = child.id();
            // A zombie now: exactly what the reaper looks for.
            let zombie = Deadline::after(Duration::from_secs(10));
            wait_until(&zombie, Duration::from_millis(5), || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                zombie_child_of(&stat, std::process::id()).then_some(())
            })
            .expect("the child exits");
            let reaper = children.clone();
            let reaping = std::thread::spawn(move || reaper.reap_orphans(Path::new("/proc")));
            std::thread::sleep(Duration::from_millis(50));
            // ECHILD here if the reaper took it first.
            let status = child.wait();
            (status, reaping)
        });
        let (status, reaping) = status;
        assert!(status.as_ref().is_ok_and(|s| s.success()), "{status:?}");
        assert_eq!(reaping.join().unwrap(), 0, "nothing left for the reaper");
    }
}
