//! PID 1 in a throw-away guest: mount what the agent needs, apply the host's configuration,
//! serve requests on the serial port, then power off.
//!
//! Progress and fatal errors are printed to the console (ttyS0), which the host also keeps.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{SigSet, Signal};
use nix::time::{clock_gettime, ClockId};

use super::config::{AgentConfig, SetupStep, CONFIG_PATH};
use super::kmsg;
use super::process::Children;
use super::protocol::{ModuleFailure, Ready};
use super::server::{serve, Agent, Ending, Environment};
use super::{serial, trace, AgentError};

const KMSG: &str = "/dev/kmsg";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn say(message: &str) {
    eprintln!("rasdrill-agent: {message}");
}

/// Runs the agent as PID 1 and never returns: the guest powers off at the end.
pub fn run_as_init() -> ! {
    let started = Instant::now();
    match setup_and_serve(started) {
        Ok(Ending::Poweroff) => say("power-off requested by the host"),
        Ok(Ending::InputClosed) => say("the serial port closed; powering off"),
        Err(e) => say(&format!("fatal: {e}; powering off")),
    }
    power_off()
}

fn power_off() -> ! {
    nix::unistd::sync();
    let error = reboot(RebootMode::RB_POWER_OFF).unwrap_err();
    // PID 1 exiting panics the kernel; with panic=-1 and -no-reboot QEMU then exits too.
    say(&format!("power-off failed ({error}); exiting"));
    std::process::exit(1)
}

fn setup_and_serve(started: Instant) -> Result<Ending, AgentError> {
    // Blocked before any thread starts, so every thread inherits the mask and only the reaper
    // takes SIGCHLD (with sigwait). Children get an empty mask: std::process resets it.
    let sigchld = SigSet::from(Signal::SIGCHLD);
    sigchld.thread_block().map_err(|errno| AgentError::Io {
        what: "blocking SIGCHLD",
        source: errno.into(),
    })?;
    let mut warnings = mount_file_systems()?;
    console_stdio();
    if std::env::var_os("PATH").is_none() {
        // Still single-threaded: nothing else reads the environment yet.
        std::env::set_var("PATH", PATH);
    }
    let config = AgentConfig::load(Path::new(CONFIG_PATH))?;
    let env = Environment {
        root: PathBuf::from("/"),
    };

    let (modules_loaded, module_failures) = load_modules(&config.modules);
    if let Some(seconds) = config.mce_check_interval_s {
        warnings.extend(set_check_interval(
            &env.path("/sys/devices/system/machinecheck"),
            seconds,
        ));
    }
    for step in &config.setup {
        if let Err(e) = apply(step) {
            warnings.push(e);
        }
    }
    let (tracepoints_enabled, trace_warnings) = trace::enable(&env.tracefs(), &config.tracepoints);
    warnings.extend(trace_warnings);
    let trace_pipe = env.tracefs().join("trace_pipe");
    let trace = if trace_pipe.exists() {
        Ok(trace::TraceBuffer::start(trace_pipe))
    } else {
        Err(format!(
            "{} does not exist (is tracefs mounted?)",
            trace_pipe.display()
        ))
    };

    let port = serial::open_raw(&config.serial).map_err(|source| AgentError::Serial {
        path: config.serial.clone(),
        source,
    })?;
    let writer = port.try_clone().map_err(|source| AgentError::Serial {
        path: config.serial.clone(),
        source,
    })?;

    let children = Children::default();
    let reaper = children.clone();
    thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            // Reaps whenever a child of PID 1 ends (orphans are re-parented to us); a
            // SIGCHLD for one of our own is harmless: reap_orphans skips those.
            reaper.reap_orphans(Path::new("/proc"));
            if sigchld.wait().is_err() {
                say("warning: cannot wait for SIGCHLD; orphans are no longer reaped");
                return;
            }
        })
        .map_err(|source| AgentError::Io {
            what: "starting the reaper thread",
            source,
        })?;

    let mut ready = probe_ready(started, modules_loaded, tracepoints_enabled, warnings);
    ready.module_failures = module_failures;
    for warning in &ready.warnings {
        say(&format!("warning: {warning}"));
    }
    say(&format!(
        "ready after {} ms of setup, {} ms since boot; serving on {}",
        ready.setup_ms,
        ready.uptime_ms,
        config.serial.display()
    ));
    let mut agent = Agent::new(env, ready, trace, children);
    // After the module loads, which read the log on their own; from here the agent holds it.
    match kmsg::KmsgLog::open(Path::new(KMSG)).and_then(|log| log.follow().map(|()| log)) {
        Ok(log) => agent = agent.with_kmsg_log(log),
        Err(e) => say(&format!(
            "warning: cannot follow {KMSG} ({e}); reading it for each request"
        )),
    }
    serve(&mut agent, BufReader::new(port), writer).map_err(|source| AgentError::Serial {
        path: config.serial.clone(),
        source,
    })
}

/// Mounts the kernel file systems. proc, sysfs and devtmpfs are required; debugfs and
/// tracefs are reported as warnings when missing (the requests that need them fail clearly).
fn mount_file_systems() -> Result<Vec<String>, AgentError> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let required: [(&str, &str, MsFlags); 3] = [
        ("proc", "/proc", hardened),
        ("sysfs", "/sys", hardened),
        ("devtmpfs", "/dev", MsFlags::MS_NOSUID),
    ];
    for (fstype, target, flags) in required {
        mount_one(fstype, target, flags)?;
    }
    let mut warnings = Vec::new();
    for (fstype, target) in [
        ("debugfs", "/sys/kernel/debug"),
        ("tracefs", "/sys/kernel/tracing"),
    ] {
        if let Err(e) = mount_one(fstype, target, hardened) {
            warnings.push(e.to_string());
        }
    }
    Ok(warnings)
}

fn mount_one(fstype: &str, target: &str, flags: MsFlags) -> Result<(), AgentError> {
    let error = |source: io::Error| AgentError::Mount {
        fstype: fstype.to_string(),
        target: target.into(),
        source,
    };
    std::fs::create_dir_all(target).map_err(error)?;
    match mount(Some(fstype), target, Some(fstype), flags, None::<&str>) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => Ok(()), // EBUSY: already mounted.
        Err(errno) => Err(error(errno.into())),
    }
}

/// Points stdin, stdout and stderr at the console, whatever the kernel gave us.
fn console_stdio() {
    if let Ok(console) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(console.as_raw_fd(), fd);
        }
    }
}

/// Loads modules in order with finit_module(2). Returns the names loaded and each failure
/// with the kernel's reason: the host refuses a guest whose modules did not all load.
fn load_modules(paths: &[PathBuf]) -> (Vec<String>, Vec<ModuleFailure>) {
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    for path in paths {
        let name = module_name(path);
        let before = last_kmsg_seq();
        match load_module(path) {
            Ok(()) => loaded.push(name),
            Err(e) => failures.push(ModuleFailure {
                name,
                path: path.clone(),
                error: e.to_string(),
                kernel_said: kmsg_since(before),
            }),
        }
    }
    (loaded, failures)
}

/// The sequence number of the newest kernel log record, if the log can be read.
fn last_kmsg_seq() -> Option<u64> {
    kmsg::read_after(Path::new(KMSG), None)
        .ok()
        .and_then(|records| records.last().map(|r| r.seq))
}

/// What the kernel logged after `after` (all of its log when that is unknown, which is short
/// this early in boot), one line per record.
fn kmsg_since(after: Option<u64>) -> Vec<String> {
    kmsg::read_after(Path::new(KMSG), after)
        .map(|records| records.into_iter().map(|r| r.text).collect())
        .unwrap_or_default()
}

fn module_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    file.strip_suffix(".ko").unwrap_or(&file).to_string()
}

fn load_module(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    let params = c"";
    // SAFETY: finit_module reads the open file and a NUL-terminated parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EEXIST) => Ok(()), // Already loaded (or built in).
        _ => Err(error),
    }
}

/// Sets the MCE poll interval on every CPU's machinecheck device.
fn set_check_interval(machinecheck: &Path, seconds: u32) -> Vec<String> {
    let files: Vec<PathBuf> = std::fs::read_dir(machinecheck)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("check_interval"))
        .filter(|file| file.exists())
        .collect();
    if files.is_empty() {
        return vec![format!(
            "no {}/machinecheck*/check_interval: the MCE poll interval stays as it was",
            machinecheck.display()
        )];
    }
    files
        .iter()
        .filter_map(|file| {
            let result = std::fs::write(file, seconds.to_string());
            result
                .err()
                .map(|e| format!("cannot write {seconds} to {}: {e}", file.display()))
        })
        .collect()
}

fn apply(step: &SetupStep) -> Result<(), String> {
    match step {
        SetupStep::Write { path, value } => std::fs::write(path, value)
            .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display())),
        SetupStep::Mkdir { path } => std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create directory {}: {e}", path.display())),
    }
}

/// The facts `Ready` reports about this kernel and this setup.
pub(crate) fn probe_ready(
    started: Instant,
    modules_loaded: Vec<String>,
    tracepoints_enabled: Vec<String>,
    warnings: Vec<String>,
) -> Ready {
    let kernel_release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_default();
    // SAFETY: sysconf only reads a system value.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let uptime = clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default();
    Ready {
        kernel_release,
        cpus_online: u32::try_from(cpus).unwrap_or(0),
        uptime_ms: uptime.as_millis() as u64,
        setup_ms: started.elapsed().as_millis() as u64,
        modules_loaded,
        module_failures: Vec::new(),
        tracepoints_enabled,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_drop_the_directory_and_suffix() {
        assert_eq!(
            module_name(Path::new(
                "/lib/modules/6.1/kernel/arch/x86/kernel/cpu/mce/mce-inject.ko"
            )),
            "mce-inject"
        );
        assert_eq!(module_name(Path::new("edac_mce_amd.ko")), "edac_mce_amd");
    }

    #[test]
    fn a_module_that_does_not_load_is_a_failure_naming_it_and_why() {
        let (loaded, failures) = load_modules(&[PathBuf::from("/nonexistent/x.ko")]);
        assert!(loaded.is_empty());
        assert_eq!(failures.len(), 1);
        assert_eq!(
            (failures[0].name.as_str(), failures[0].path.as_path()),
            ("x", Path::new("/nonexistent/x.ko"))
        );
        assert!(
            failures[0].to_string().starts_with(
                "module x (/nonexistent/x.ko) did not load: No such file or directory"
            ),
            "{}",
            failures[0]
        );
    }

    #[test]
    fn check_interval_is_written_for_every_cpu() {
        let dir = tempfile::tempdir().unwrap();
        for cpu in 0..2 {
            let device = dir.path().join(format!("machinecheck{cpu}"));
            std::fs::create_dir_all(&device).unwrap();
            std::fs::write(device.join("check_interval"), "300").unwrap();
        }
        assert!(set_check_interval(dir.path(), 1).is_empty());
        for cpu in 0..2 {
            let file = dir.path().join(format!("machinecheck{cpu}/check_interval"));
            assert_eq!(std::fs::read_to_string(file).unwrap(), "1");
        }
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(set_check_interval(empty.path(), 1).len(), 1);
    }

    #[test]
    fn ready_reports_this_kernel() {
        let ready = probe_ready(Instant::now(), vec![], vec![], vec![]);
        assert!(!ready.kernel_release.is_empty());
        assert!(ready.cpus_online >= 1);
        assert!(ready.uptime_ms > 0);
    }
}
