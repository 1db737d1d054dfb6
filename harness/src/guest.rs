//! A throw-away QEMU guest with rasdrill's agent as its `/init`.
//!
//! Booting: build the initramfs (this executable as `/init`, its libraries, the modules the
//! guest needs, the agent's configuration, any collector files), start QEMU in its own process
//! group, connect to QMP and to the agent's serial line, and wait for the agent's `Ready`.
//! Readiness comes from the agent, never from the console; the console is only read to explain
//! a failure (a panic, a hang).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rasdrill_inject::hwpoison::PoisonRequest;
use rasdrill_inject::merge::BankLedger;
use rasdrill_inject::request::AerRequest;
use rasdrill_inject::{aer, hmp};
use rasdrill_inject::{Action, MceRecord, Payload};
use rasdrill_qemu::cmdline::{Accel, VmConfig};
use rasdrill_qemu::initramfs::{Initramfs, InitramfsError};
use rasdrill_qemu::kernel::Kernel;
use rasdrill_qemu::modules::{ModuleError, ModuleIndex};
use rasdrill_qemu::qmp::QmpError;
use rasdrill_qemu::snapshot::{SavedState, SnapshotError};
use rasdrill_qemu::vm::{last_lines, Diagnosed, Diagnostics, Vm, VmError, CONSOLE_TAIL_LINES};

use crate::agent::client::{AgentClient, ClientError};
use crate::agent::config::{AgentConfig, SetupStep, CONFIG_PATH};
use crate::agent::protocol::{ModuleFailure, Ready};
use crate::profile::Profile;

/// Modules every guest loads: the injector the agent drives.
pub const BASE_MODULES: &[&str] = &["mce_inject"];

/// How long a TCG guest may take from QEMU's start to the agent's `Ready`. Measured: 2-5 s on
/// a 2-core machine; the margin covers a loaded CI machine.
pub const TCG_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Under KVM the same boot takes well under a second; a broken KVM (this project's CI has
/// one) must not cost a minute before the fallback to TCG.
pub const KVM_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// The default deadline of one agent request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the guest's CPU is run, as the user asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when the host CPU has VMX/SVM and the guest comes up in time, otherwise TCG.
    Auto,
    Kvm,
    Tcg,
}

/// A file the guest needs that is not part of the agent (collector programs and libraries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraFile {
    /// A host executable, placed with the shared libraries it needs.
    Executable { guest: PathBuf, host: PathBuf },
    /// A host file or directory tree, copied as it is.
    Tree { guest: PathBuf, host: PathBuf },
    /// An executable from unpacked packages (`dpkg-deb -x` trees) the host need not have
    /// installed: its libraries are looked for under `library_roots` first and placed at
    /// their path inside the root.
    PackagedExecutable {
        guest: PathBuf,
        host: PathBuf,
        library_roots: Vec<PathBuf>,
    },
}

/// Everything that decides what a guest is. Two scenarios with equal specs can share a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestSpec {
    pub cpu_model: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub kernel: Kernel,
    /// The scenario's own kernel arguments, after rasdrill's.
    pub kernel_args: Vec<String>,
    /// Module names, beyond [`BASE_MODULES`] (dependencies are added).
    pub modules: Vec<String>,
    pub accel: AccelChoice,
    pub extra_files: Vec<ExtraFile>,
    pub setup: Vec<SetupStep>,
    /// MCE poll interval, seconds: corrected errors injected by QEMU show up at the next poll.
    pub poll_interval_s: u32,
    /// The executable that becomes the guest's `/init` (normally this rasdrill).
    pub agent: PathBuf,
    /// The naive way, the reference `rasdrill bench` measures against: the compressed bzImage,
    /// busybox in the initramfs, and corrected errors from QEMU left to the timer poll.
    pub naive: bool,
    /// q35 with the PCIe topology of [`rasdrill_qemu::cmdline::PCIE_TOPOLOGY`] (AER targets).
    pub pcie: bool,
}

impl GuestSpec {
    /// The guest a machine profile describes: its CPU model, size and decoder modules, the
    /// default 1 s MCE poll, nothing extra.
    pub fn for_profile(
        profile: &Profile,
        kernel: Kernel,
        accel: AccelChoice,
        agent: PathBuf,
    ) -> GuestSpec {
        GuestSpec {
            cpu_model: profile.cpu_model.to_string(),
            vcpus: profile.vcpus,
            memory_mib: profile.memory_mib,
            kernel,
            kernel_args: Vec::new(),
            modules: profile
                .decoder_modules
                .iter()
                .map(|m| m.to_string())
                .collect(),
            accel,
            extra_files: Vec::new(),
            setup: Vec::new(),
            poll_interval_s: 1,
            agent,
            naive: false,
            pcie: false,
        }
    }
}

/// The guest could not be booted or stopped working. A running guest's failure carries what
/// QEMU and the console showed as [`Diagnostics`] (see [`Diagnosed`]), not in its message.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("cannot prepare the guest's files in {dir}: {source}")]
    RunDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use the agent's socket {path}: {source}")]
    AgentSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the guest's initramfs: {0}")]
    Initramfs(#[from] InitramfsError),
    #[error("cannot resolve the guest's kernel modules: {0}")]
    Modules(#[from] ModuleError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("QMP: {0}")]
    Qmp(#[from] QmpError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("--accel kvm: {0}")]
    KvmUnavailable(String),
    /// A module the guest needs did not load: the kernel and its modules do not fit together.
    #[error("the guest kernel {release} refused a module: {failure}")]
    ModuleLoad {
        release: String,
        failure: ModuleFailure,
    },
    /// The guest kernel panicked (or QEMU exited) while we waited for something.
    #[error("the guest kernel panicked {when}, {:.1?} after QEMU started: {message}", diagnostics.elapsed)]
    Panicked {
        when: String,
        message: String,
        diagnostics: Box<Diagnostics>,
    },
    #[error("QEMU exited {when} ({status}), {:.1?} after it started", diagnostics.elapsed)]
    Exited {
        when: String,
        status: String,
        diagnostics: Box<Diagnostics>,
    },
    /// The agent did not answer in time and QEMU is still running: a hung guest.
    #[error("the guest did not answer {when}: {source}")]
    Unresponsive {
        when: String,
        source: Box<ClientError>,
        diagnostics: Box<Diagnostics>,
    },
    #[error("QEMU refused `{line}`: {message}")]
    Monitor { line: String, message: String },
    /// The agent answered, with an error (a refused injection, a missing file...).
    #[error("the guest's agent refused {what}: {message}")]
    Refused { what: String, message: String },
}

impl Diagnosed for GuestError {
    fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            GuestError::Panicked { diagnostics, .. }
            | GuestError::Exited { diagnostics, .. }
            | GuestError::Unresponsive { diagnostics, .. } => Some(diagnostics),
            GuestError::Vm(e) => e.diagnostics(),
            GuestError::Snapshot(e) => e.diagnostics(),
            _ => None,
        }
    }
}

/// A running guest. Dropping it kills QEMU's process group and reaps it.
pub struct Guest {
    vm: Vm,
    agent: AgentClient,
    ready: Ready,
    boot_time: Duration,
    /// While set, no request waits past it, whatever its own timeout (see [`Guest::end_requests_by`]).
    requests_end_by: Option<Instant>,
    poll: PollKick,
    /// The run directory (sockets, console, initramfs); removed with the guest.
    _run_dir: tempfile::TempDir,
}

/// A ready guest saved by [`Guest::save`]; [`Guest::restore`] starts fresh copies of it.
/// Dropping it removes the saved files.
pub struct GuestSnapshot {
    saved: SavedState,
    ready: Ready,
    poll: PollKick,
    _dir: tempfile::TempDir,
}

/// Kernel arguments of every rasdrill guest, after qemu's base ones.
const GUEST_KERNEL_ARGS: &[&str] = &[
    // On AMD families below 0x11 the kernel turns bootlog off, and the poll a changed
    // check_interval starts (see PollKick) would then clear banks without logging them.
    "mce=bootlog",
    // The log ring: Debian's is 128 KiB (CONFIG_LOG_BUF_SHIFT=17), and one corrected error
    // decoded by edac_mce_amd is five records of about 415 bytes in all (text, an 8-byte
    // header each, 8-byte alignment), so it holds about 300 errors. The agent drains the log
    // as it is written (agent::kmsg::KmsgLog); 1 MiB (about 2500 errors, 32768 records) is
    // the slack for a guest whose agent is kept off the CPU meanwhile, for about 4.5 MiB of
    // the guest's 256 (the text, and 32768 descriptors of 112 bytes).
    "log_buf_len=1M",
];

/// Corrected errors from QEMU raise no interrupt: the kernel finds them at its next poll,
/// up to `check_interval` seconds later. A write of a *different* value to `check_interval`
/// makes it poll every bank on every CPU at once (`mce_restart()`; writing the value it has
/// does nothing), so each kick alternates between the interval asked for and one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PollKick {
    enabled: bool,
    base_s: u32,
    current_s: u32,
}

impl PollKick {
    /// The file whose writes set the one global interval; CPU 0 is always there.
    const FILE: &'static str = "/sys/devices/system/machinecheck/machinecheck0/check_interval";

    fn new(spec: &GuestSpec) -> PollKick {
        PollKick {
            enabled: !spec.naive,
            base_s: spec.poll_interval_s,
            current_s: spec.poll_interval_s,
        }
    }

    /// An interval that puts the timer poll off for an hour at least, and differs from both
    /// values a kick writes (so the kick after it polls).
    fn hold_s(&self) -> u32 {
        (self.base_s + 2).max(3600)
    }

    fn next_s(&self) -> u32 {
        if self.current_s == self.base_s {
            self.base_s + 1
        } else {
            self.base_s
        }
    }
}

impl Guest {
    /// Boots a guest and waits for its agent. `progress` hears what happens, in words.
    pub fn boot(spec: &GuestSpec, progress: &mut dyn FnMut(&str)) -> Result<Guest, GuestError> {
        let accels = choose_accels(spec.accel)?;
        let mut last_error = None;
        for (i, (accel, why)) in accels.iter().enumerate() {
            if let Some(why) = why {
                progress(why);
            }
            match Self::boot_with(spec, *accel, progress) {
                Ok(guest) => return Ok(guest),
                Err(e) if *accel == Accel::Kvm && i + 1 < accels.len() => {
                    progress(&format!(
                        "KVM did not bring the guest up ({}); falling back to TCG",
                        first_line(&e.to_string())
                    ));
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one accelerator was tried"))
    }

    fn boot_with(
        spec: &GuestSpec,
        accel: Accel,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Guest, GuestError> {
        let run_dir = run_dir()?;
        let initrd = run_dir.path().join("initramfs.cpio");
        build_initramfs(spec, &initrd)?;

        let mut config = VmConfig::new(boot_image(spec), run_dir.path());
        config.kernel_args = GUEST_KERNEL_ARGS
            .iter()
            .map(|a| a.to_string())
            .chain(spec.kernel_args.iter().cloned())
            .collect();
        config.accel = accel;
        config.cpu = spec.cpu_model.clone();
        config.vcpus = spec.vcpus;
        config.memory_mib = spec.memory_mib;
        config.initrd = Some(initrd);
        config.pcie = spec.pcie;
        if spec.pcie {
            // QEMU 7.2 forwards a device's AER message only while SERR# is set in its Command
            // register (pcie_aer_msg_alldev). Linux never sets it; SeaBIOS sets it on every
            // device it initialises, qboot on none: with qboot no AER error reaches the guest.
            config.firmware = None;
        }
        let agent_socket = config.paths().agent_socket;

        progress(&format!(
            "booting {} ({} vCPU, {} MiB, {}{}, kernel {})",
            spec.cpu_model,
            spec.vcpus,
            spec.memory_mib,
            accel_name(accel),
            if spec.pcie { ", q35 with PCIe" } else { "" },
            spec.kernel.release
        ));
        let started = Instant::now();
        let timeout = ready_timeout(accel);
        let deadline = started + timeout;
        let mut vm = Vm::launch(config, timeout)?;
        // Connect to the agent line at once: bytes the guest sends while nobody listens are lost.
        let agent_stream = vm.connect_agent(deadline.saturating_duration_since(Instant::now()))?;
        let mut agent =
            AgentClient::connect(agent_stream).map_err(|source| GuestError::AgentSocket {
                path: agent_socket,
                source,
            })?;
        let ready = match agent.wait_ready(deadline) {
            Ok(ready) => ready,
            Err(source) => return Err(diagnose(&mut vm, "while booting", source)),
        };
        let boot_time = started.elapsed();
        progress(&format!(
            "guest ready in {:.2} s (kernel {}, {} CPUs)",
            boot_time.as_secs_f64(),
            ready.kernel_release,
            ready.cpus_online
        ));
        for warning in &ready.warnings {
            progress(&format!("guest warning: {warning}"));
        }
        if let Some(failure) = ready.module_failures.first() {
            return Err(GuestError::ModuleLoad {
                release: ready.kernel_release.clone(),
                failure: failure.clone(),
            });
        }
        Ok(Guest {
            vm,
            agent,
            ready,
            boot_time,
            requests_end_by: None,
            poll: PollKick::new(spec),
            _run_dir: run_dir,
        })
    }

    /// Saves this guest's whole state (memory, devices, the agent waiting for its next
    /// request, the boot's console log) and lets it run on. Call it while no request is in
    /// flight, e.g. straight after boot.
    pub fn save(&mut self) -> Result<GuestSnapshot, GuestError> {
        let dir = crate::stale::temp_dir("snapshot").map_err(|source| GuestError::RunDir {
            dir: std::env::temp_dir(),
            source,
        })?;
        let saved = self.vm.save(dir.path(), REQUEST_TIMEOUT)?;
        Ok(GuestSnapshot {
            saved,
            ready: self.ready.clone(),
            poll: self.poll,
            _dir: dir,
        })
    }

    /// A fresh guest from `snapshot`, ready when its agent answers a status request. To the
    /// scenario it is the guest the snapshot was taken from, at that moment: same kernel log
    /// (and console log), same clock (QEMU's virtual clock stood still while it was saved).
    pub fn restore(
        snapshot: &GuestSnapshot,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Guest, GuestError> {
        let run_dir = run_dir()?;
        let started = Instant::now();
        let accel = snapshot.saved.config.accel;
        let deadline = started + ready_timeout(accel);
        let mut vm = Vm::restore(&snapshot.saved, run_dir.path(), ready_timeout(accel))?;
        let agent_socket = vm.paths().agent_socket;
        let agent_stream = vm.connect_agent(deadline.saturating_duration_since(Instant::now()))?;
        let mut agent =
            AgentClient::connect(agent_stream).map_err(|source| GuestError::AgentSocket {
                path: agent_socket,
                source,
            })?;
        if let Err(source) = agent.status(deadline) {
            return Err(diagnose(&mut vm, "after a restore", source));
        }
        let boot_time = started.elapsed();
        progress(&format!(
            "guest restored from its snapshot in {:.2} s",
            boot_time.as_secs_f64()
        ));
        Ok(Guest {
            vm,
            agent,
            ready: snapshot.ready.clone(),
            boot_time,
            requests_end_by: None,
            poll: snapshot.poll,
            _run_dir: run_dir,
        })
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// From QEMU's start to the agent's `Ready` (for a restored guest: to its first answer).
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// Delivers a planned injection ([`rasdrill_inject::Request::plan`]): QEMU's monitor
    /// lines through QMP, mce-inject records and poisonings through the agent (which checks the
    /// guest's own files first). `note` hears each delivery, in words.
    pub fn inject(
        &mut self,
        payload: &Payload,
        actions: &[Action],
        note: &mut dyn FnMut(String),
    ) -> Result<(), GuestError> {
        if let Payload::Debugfs { records, flags } = payload {
            for r in records {
                let writes =
                    self.call("injecting through mce-inject", REQUEST_TIMEOUT, |a, d| {
                        a.inject(r, *flags, d)
                    })?;
                note(format!(
                    "wrote {} mce-inject files in the guest",
                    writes.len()
                ));
            }
            return Ok(());
        }
        if let Payload::Aer(request) = payload {
            return self.inject_aer(request, note);
        }
        if let Payload::Hwpoison(request) = payload {
            return self.poison(request, note);
        }
        let Payload::Qemu {
            records,
            broadcast,
            overflow,
        } = payload
        else {
            return Err(GuestError::Refused {
                what: format!("injecting via {}", payload.via()),
                message: "this rasdrill delivers only MCE records to guests".into(),
            });
        };
        // The planner describes one monitor line per record, in order. An overflow injection
        // sends them back to back and forces the poll once, after the last (inject's merge):
        // meanwhile the timer poll is put off, so that it cannot come between two of them.
        if *overflow && self.poll.enabled {
            self.set_interval(self.poll.hold_s(), "putting off the poll for an overflow")?;
        }
        for (record, action) in records.iter().zip(actions) {
            let Action::Monitor { line } = action else {
                unreachable!("the planner writes files in a guest only through mce-inject");
            };
            self.monitor(line)?;
            note(format!("sent `{line}` to QEMU's monitor"));
            if !overflow {
                self.kick_if_polled(record, *broadcast)?;
            }
        }
        if *overflow {
            let label = |i: usize| format!("record {}", i + 1);
            let merges = BankLedger::new(self.ready.cpus_online, self.poll.enabled)
                .deliver(payload, label)
                .unwrap_or_default();
            for m in &merges {
                note(format!(
                    "overflow on purpose: {} landed on {} in CPU {} bank {} before the guest \
                     consumed it; QEMU set OVER, and the guest logs one record for the two",
                    m.record, m.onto, m.cpu, m.bank
                ));
            }
            if self.poll.enabled {
                self.kick_poll()?;
            }
        }
        Ok(())
    }

    /// A PCIe AER error: QEMU's `pcie_aer_inject_error` through QMP, or the kernel's
    /// aer_inject through the agent (its module is loaded at boot when a step needs it).
    fn inject_aer(
        &mut self,
        request: &AerRequest,
        note: &mut dyn FnMut(String),
    ) -> Result<(), GuestError> {
        match request {
            AerRequest::Qemu(aer) => {
                let line = aer.command();
                let reply = self.vm.qmp().human_monitor_command(&line)?;
                aer::check_reply(&reply).map_err(|e| GuestError::Monitor {
                    line: line.clone(),
                    message: e.to_string(),
                })?;
                note(format!("sent `{line}` to QEMU's monitor"));
            }
            AerRequest::Kernel(aer) => {
                let writes =
                    self.call("injecting through aer_inject", REQUEST_TIMEOUT, |a, d| {
                        a.aer_inject(aer, d)
                    })?;
                for w in writes {
                    note(format!("in the guest: {w}"));
                }
            }
        }
        Ok(())
    }

    /// A poisoning through the agent, which finds the page when the request leaves it open,
    /// checks the guest's files and performs it (agent/poison.rs).
    fn poison(
        &mut self,
        request: &PoisonRequest,
        note: &mut dyn FnMut(String),
    ) -> Result<(), GuestError> {
        let done = self.call("poisoning memory", REQUEST_TIMEOUT, |a, d| {
            a.poison(request, d)
        })?;
        let page = match done.pfn {
            Some(pfn) => format!(" (pfn {pfn:#x}, found by the agent)"),
            None => String::new(),
        };
        note(format!("{request}{page}: {}", done.writes.join("; ")));
        for outcome in done.outcomes {
            note(outcome);
        }
        Ok(())
    }

    /// One record through QEMU's `mce` command, outside a scenario (the bench's way in).
    pub fn inject_qemu(&mut self, record: &MceRecord) -> Result<(), GuestError> {
        let line = hmp::command(record).map_err(|e| GuestError::Monitor {
            line: format!("mce (cpu {} bank {})", record.cpu, record.bank),
            message: e.to_string(),
        })?;
        self.monitor(&line)?;
        self.kick_if_polled(record, false)
    }

    /// An uncorrected error (or a broadcast, which is one on the other CPUs) is raised as #MC
    /// at once; only a corrected one waits for a poll, which the kick brings forward.
    fn kick_if_polled(&mut self, record: &MceRecord, broadcast: bool) -> Result<(), GuestError> {
        let raised = broadcast || hmp::raises_mc(record);
        if self.poll.enabled && !raised {
            self.kick_poll()?;
        }
        Ok(())
    }

    /// Sends one HMP line. HMP reports a refused command only as text in its reply: that text
    /// comes back as [`GuestError::Monitor`].
    fn monitor(&mut self, line: &str) -> Result<(), GuestError> {
        let reply = self.vm.qmp().human_monitor_command(line)?;
        hmp::check_reply(&reply).map_err(|e| GuestError::Monitor {
            line: line.to_string(),
            message: e.to_string(),
        })
    }

    /// Makes the kernel poll every bank now (see [`PollKick`]). The write returns once every
    /// CPU has polled; the decoders run from a work queue a moment later.
    fn kick_poll(&mut self) -> Result<(), GuestError> {
        self.set_interval(
            self.poll.next_s(),
            "changing check_interval to poll the banks",
        )
    }

    /// Writes `check_interval`: a value it does not hold polls every bank now, and restarts
    /// the timer poll with the new interval.
    fn set_interval(&mut self, seconds: u32, what: &str) -> Result<(), GuestError> {
        self.call(what, REQUEST_TIMEOUT, |a, d| {
            a.write_file(PollKick::FILE, &seconds.to_string(), d)
        })?;
        self.poll.current_s = seconds;
        Ok(())
    }

    /// Runs one agent request, turning a dead or silent guest into a diagnosed error.
    pub fn call<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        f: impl FnOnce(&mut AgentClient, Instant) -> Result<T, ClientError>,
    ) -> Result<T, GuestError> {
        let mut deadline = Instant::now() + timeout;
        if let Some(end) = self.requests_end_by {
            deadline = deadline.min(end);
        }
        match f(&mut self.agent, deadline) {
            Ok(v) => Ok(v),
            Err(ClientError::Agent { message, .. }) => Err(GuestError::Refused {
                what: what.to_string(),
                message,
            }),
            Err(e) => Err(diagnose(&mut self.vm, what, e)),
        }
    }

    /// Makes every request end by `end` (`None`: by its own timeout only). A wait sets this to
    /// its own deadline, so a frozen guest cannot stretch it by a request's timeout.
    pub fn end_requests_by(&mut self, end: Option<Instant>) {
        self.requests_end_by = end;
    }

    /// Waits up to `timeout` for the guest to die; returns the panic it reported, if any.
    /// Used after an injection that is expected to panic the guest.
    pub fn wait_for_panic(&mut self, timeout: Duration) -> Result<Option<Panic>, GuestError> {
        if self.vm.wait_exit(timeout).is_err() {
            return Ok(None);
        }
        let console = read_console(&self.vm);
        Ok(Some(Panic {
            message: panic_message(&console)
                .unwrap_or_else(|| "QEMU exited without a panic message".into()),
            console,
            elapsed: self.vm.process().elapsed(),
        }))
    }

    /// The console since boot.
    pub fn console(&self) -> String {
        read_console(&self.vm)
    }

    /// Asks the agent to power off, then makes sure QEMU is gone.
    pub fn shutdown(mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        if self.agent.poweroff(deadline).is_ok()
            && self.vm.wait_exit(Duration::from_secs(5)).is_ok()
        {
            return;
        }
        let _ = self.vm.kill();
    }
}

/// A guest panic, as the console recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// The `Kernel panic - not syncing: ...` text.
    pub message: String,
    pub console: String,
    /// From QEMU's start to its exit.
    pub elapsed: Duration,
}

impl Panic {
    /// The end of the console, as much as an error quotes.
    pub fn console_tail(&self) -> String {
        last_lines(&self.console, CONSOLE_TAIL_LINES)
    }
}

/// Environment variable overriding the boot deadline, in seconds (a slow machine, a test).
pub const BOOT_TIMEOUT_ENV: &str = "RASDRILL_BOOT_TIMEOUT";

fn ready_timeout(accel: Accel) -> Duration {
    let from_env = std::env::var(BOOT_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    from_env.unwrap_or(match accel {
        Accel::Kvm => KVM_READY_TIMEOUT,
        Accel::Tcg => TCG_READY_TIMEOUT,
    })
}

/// Which accelerators to try, in order, with a sentence for the user when the choice was not
/// the obvious one.
fn choose_accels(choice: AccelChoice) -> Result<Vec<(Accel, Option<String>)>, GuestError> {
    match choice {
        AccelChoice::Tcg => Ok(vec![(Accel::Tcg, None)]),
        AccelChoice::Kvm => match kvm_unusable_reason() {
            None => Ok(vec![(Accel::Kvm, None)]),
            Some(why) => Err(GuestError::KvmUnavailable(why)),
        },
        AccelChoice::Auto => match kvm_unusable_reason() {
            None => Ok(vec![(Accel::Kvm, None), (Accel::Tcg, None)]),
            Some(why) => Ok(vec![(Accel::Tcg, Some(format!("using TCG: {why}")))]),
        },
    }
}

/// Why KVM cannot run a stock kernel here, or `None` when it is worth a try. A host without
/// VMX/SVM can still have a /dev/kvm (a paravirtual one) that never boots a Debian kernel.
fn kvm_unusable_reason() -> Option<String> {
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Some("/dev/kvm is missing or not accessible".into());
    }
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !has_virt {
        return Some("the host CPU has no VMX/SVM, so /dev/kvm cannot run a stock kernel".into());
    }
    None
}

fn accel_name(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "KVM",
        Accel::Tcg => "TCG",
    }
}

/// The kernel QEMU boots: the cached uncompressed vmlinux (PVH, no decompressor), or for the
/// naive way the compressed bzImage the Debian package ships beside it.
fn boot_image(spec: &GuestSpec) -> PathBuf {
    let bzimage = spec.kernel.vmlinux.with_file_name("vmlinuz");
    if spec.naive && bzimage.is_file() {
        bzimage
    } else {
        spec.kernel.vmlinux.clone()
    }
}

/// Where the naive way's initramfs takes busybox from (Debian's busybox-static).
const BUSYBOX: &str = "/bin/busybox";

/// The initramfs: the agent as `/init`, its configuration, modules, and extra files.
fn build_initramfs(spec: &GuestSpec, out: &Path) -> Result<(), GuestError> {
    let mut image = Initramfs::with_base_layout();
    image.init(&spec.agent)?;
    if spec.naive {
        // What existing tools boot: a shell and its applets beside the test program.
        image.executable(Path::new(BUSYBOX), Path::new(BUSYBOX))?;
    }
    let index = ModuleIndex::load(&spec.kernel.modules_dir)?;
    // load_order lists each module once, however often it is named.
    let names: Vec<&str> = BASE_MODULES
        .iter()
        .copied()
        .chain(spec.modules.iter().map(String::as_str))
        .collect();
    let modules = image.modules(&index, &names)?;
    for extra in &spec.extra_files {
        match extra {
            ExtraFile::Executable { guest, host } => {
                image.executable(guest, host)?;
            }
            ExtraFile::Tree { guest, host } => {
                image.host_tree(guest, host)?;
            }
            ExtraFile::PackagedExecutable {
                guest,
                host,
                library_roots,
            } => {
                image.executable_with_roots(guest, host, library_roots)?;
            }
        }
    }
    let config = AgentConfig {
        modules: modules.into_iter().map(|m| m.path).collect(),
        mce_check_interval_s: Some(spec.poll_interval_s),
        setup: spec.setup.clone(),
        ..AgentConfig::default()
    };
    image.file(CONFIG_PATH, config.to_json(), 0o644)?;
    image.write_file(out)?;
    Ok(())
}

/// An agent request failed: was it a panic, QEMU dying, or a hang?
fn diagnose(vm: &mut Vm, when: &str, source: ClientError) -> GuestError {
    // A guest that panics makes QEMU exit a moment after the serial line closes.
    if let Ok(status) = vm.wait_exit(Duration::from_millis(500)) {
        return died(vm, when, status.to_string());
    }
    GuestError::Unresponsive {
        when: when.to_string(),
        source: Box::new(source),
        diagnostics: vm.diagnostics(),
    }
}

fn died(vm: &mut Vm, when: &str, status: String) -> GuestError {
    let diagnostics = vm.diagnostics();
    match panic_message(&read_console(vm)) {
        Some(message) => GuestError::Panicked {
            when: when.to_string(),
            message,
            diagnostics,
        },
        None => GuestError::Exited {
            when: when.to_string(),
            status,
            diagnostics,
        },
    }
}

fn read_console(vm: &Vm) -> String {
    fs::read(vm.paths().console_log)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default()
}

/// The kernel's panic line, without its printk prefix.
pub fn panic_message(console: &str) -> Option<String> {
    console.lines().find_map(|l| {
        l.find("Kernel panic - not syncing:")
            .map(|i| l[i..].trim().to_string())
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A guest's own temporary directory (initramfs, sockets, console log), removed with it.
fn run_dir() -> Result<tempfile::TempDir, GuestError> {
    crate::stale::temp_dir("guest").map_err(|source| GuestError::RunDir {
        dir: std::env::temp_dir(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_found_without_its_prefix() {
        let console =
            "[    2.1] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 4: b200000000070005\n\
                       [    2.2] Kernel panic - not syncing: Fatal local machine check\n";
        assert_eq!(
            panic_message(console).as_deref(),
            Some("Kernel panic - not syncing: Fatal local machine check")
        );
        assert_eq!(panic_message("[ 1.0] all fine\n"), None);
    }

    #[test]
    fn tcg_is_never_refused() {
        assert_eq!(
            choose_accels(AccelChoice::Tcg).unwrap(),
            vec![(Accel::Tcg, None)]
        );
    }

    #[test]
    fn auto_always_ends_with_tcg() {
        let accels = choose_accels(AccelChoice::Auto).unwrap();
        assert_eq!(accels.last().unwrap().0, Accel::Tcg);
    }
}
