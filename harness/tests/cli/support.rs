//! Shared helpers: directory trees that reproduce the kernel's files (docs/kernel-interfaces.md,
//! "mce-inject debugfs" and "EDAC"), FIFOs that show the order of writes, and a way to run
//! `rasdrill` on them.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use rasdrill_qemu::wait::{wait_until, Deadline};

/// Every wait in these tests ends by then.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const MCE_INJECT: &str = "sys/kernel/debug/mce-inject";
pub const EDAC_MC0: &str = "sys/devices/system/edac/mc/mc0";
pub const EDAC_DEBUGFS_MC0: &str = "sys/kernel/debug/edac/mc0";
pub const LOCK: &str = "run/lock/rasdrill.lock";
/// The order the kernel needs mce-inject's files written in: `bank` last, because it triggers
/// (docs/kernel-interfaces.md, "mce-inject debugfs").
pub const MCE_INJECT_ORDER: [&str; 8] = [
    "flags", "cpu", "status", "addr", "misc", "synd", "ipid", "bank",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    Amd,
    Intel,
}

/// A machine's kernel files under a temporary root: 4 online CPUs with 10 banks each,
/// mce-inject loaded with debugfs mounted, one amd64_edac memory controller with its
/// CONFIG_EDAC_DEBUG injection files, and the EDAC core's fake_inject files for it.
pub struct FakeMachine {
    dir: tempfile::TempDir,
}

impl FakeMachine {
    pub fn new(cpu: Cpu) -> FakeMachine {
        let m = FakeMachine {
            dir: tempfile::tempdir().unwrap(),
        };
        m.write("sys/devices/system/cpu/online", "0-3\n", 0o444);
        for c in 0..4 {
            let dir = format!("sys/devices/system/machinecheck/machinecheck{c}");
            for b in 0..10 {
                m.write(&format!("{dir}/bank{b}"), "ffffffffffffffff\n", 0o644);
            }
            m.write(&format!("{dir}/check_interval"), "300\n", 0o644);
        }
        m.write("proc/cpuinfo", &cpuinfo(cpu), 0o444);
        m.write(
            "proc/mounts",
            "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
             proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
             debugfs /sys/kernel/debug debugfs rw,nosuid,nodev,noexec,relatime 0 0\n",
            0o444,
        );
        m.write("sys/module/mce_inject/initstate", "live\n", 0o444);
        m.write("sys/module/mce_inject/refcnt", "0\n", 0o444);
        // mce-inject's files: numbers read back as %llx, flags as its word; mode 0600, README 0444.
        for f in ["status", "misc", "addr", "synd", "ipid", "bank", "cpu"] {
            m.write(&format!("{MCE_INJECT}/{f}"), "0\n", 0o600);
        }
        m.write(&format!("{MCE_INJECT}/flags"), "sw\n", 0o600);
        m.write(
            &format!("{MCE_INJECT}/README"),
            "Description of the files and their usages:\n(abridged for tests: see arch/x86/kernel/cpu/mce/inject.c)\n",
            0o444,
        );
        // amd64_edac with CONFIG_EDAC_DEBUG: DEVICE_ATTR_RW (0644) and DEVICE_ATTR_WO (0200).
        for f in ["inject_section", "inject_word", "inject_ecc_vector"] {
            m.write(&format!("{EDAC_MC0}/{f}"), "0x0\n", 0o644);
        }
        for f in ["inject_write", "inject_read"] {
            m.write(&format!("{EDAC_MC0}/{f}"), "", 0o200);
        }
        m.write(&format!("{EDAC_MC0}/ce_count"), "0\n", 0o444);
        m.write(&format!("{EDAC_MC0}/ue_count"), "0\n", 0o444);
        // The EDAC core's debugfs files for amd64_edac's two layers (chip select, channel).
        m.write(
            &format!("{EDAC_DEBUGFS_MC0}/fake_inject_csrow"),
            "0x00\n",
            0o644,
        );
        m.write(
            &format!("{EDAC_DEBUGFS_MC0}/fake_inject_channel"),
            "0x00\n",
            0o644,
        );
        m.write(&format!("{EDAC_DEBUGFS_MC0}/fake_inject_ue"), "N\n", 0o644);
        m.write(
            &format!("{EDAC_DEBUGFS_MC0}/fake_inject_count"),
            "0\n",
            0o644,
        );
        m.write(&format!("{EDAC_DEBUGFS_MC0}/fake_inject"), "", 0o200);
        fs::create_dir_all(m.path("run/lock")).unwrap();
        m
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str, mode: u32) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if p.exists() {
            fs::remove_file(&p).unwrap();
        }
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else {
            fs::remove_file(p).unwrap();
        }
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Replaces the files `names` of `dir` by FIFOs, so a test can read the writes in the
    /// order they come ([`read_in_order`]).
    pub fn fifos(&self, dir: &str, names: &[&str]) {
        for name in names {
            let p = self.path(&format!("{dir}/{name}"));
            fs::remove_file(&p).unwrap();
            mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
        }
    }

    /// Debugfs unmounted: its directory is empty and /proc/mounts has no line for it.
    pub fn unmount_debugfs(&self) {
        self.remove("sys/kernel/debug");
        fs::create_dir_all(self.path("sys/kernel/debug")).unwrap();
        let mounts: String = self
            .read("proc/mounts")
            .lines()
            .filter(|l| !l.contains("debugfs"))
            .map(|l| format!("{l}\n"))
            .collect();
        self.write("proc/mounts", &mounts, 0o444);
    }

    /// mce-inject unloaded: no module directory, no debugfs directory.
    pub fn unload_mce_inject(&self) {
        self.remove("sys/module/mce_inject");
        self.remove(MCE_INJECT);
    }

    /// Every file and directory with its mode and content: equal snapshots mean nothing changed.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root().to_owned()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let meta = fs::symlink_metadata(e.path()).unwrap();
                let rel = e.path().strip_prefix(self.root()).unwrap().to_owned();
                let mode = meta.permissions().mode();
                let what = if meta.is_dir() {
                    stack.push(e.path());
                    "dir".to_string()
                } else if meta.file_type().is_fifo() {
                    "fifo".to_string()
                } else {
                    fs::read_to_string(e.path()).unwrap()
                };
                out.insert(rel, format!("{mode:o} {what}"));
            }
        }
        out
    }

    /// `rasdrill inject --root <root> ARGS` (assert_cmd).
    pub fn inject(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = rasdrill();
        cmd.arg("inject").arg("--root").arg(self.root()).args(args);
        cmd
    }

    /// The same, spawned, for tests that talk to it through FIFOs; killed and reaped on drop.
    pub fn spawn_inject(&self, args: &[&str]) -> Running {
        let child = Command::new(assert_cmd::cargo::cargo_bin("rasdrill"))
            .arg("inject")
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running { child: Some(child) }
    }

    /// Replaces the root directory in text by `<root>`, for snapshots.
    pub fn redact(&self, text: &[u8]) -> String {
        String::from_utf8_lossy(text).replace(self.root().to_str().unwrap(), "<root>")
    }
}

fn cpuinfo(cpu: Cpu) -> String {
    let (vendor, family, model, name) = match cpu {
        Cpu::Amd => ("AuthenticAMD", 21, 2, "AMD Opteron 62xx class CPU"),
        Cpu::Intel => ("GenuineIntel", 6, 85, "Intel Xeon Processor (Skylake)"),
    };
    (0..4)
        .map(|n| {
            format!(
                "processor\t: {n}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n\
                 model name\t: {name}\nflags\t\t: fpu mce cx8 apic mca\n\n"
            )
        })
        .collect()
}

/// Output bytes as text, for assertions and their messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn rasdrill() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("rasdrill").unwrap()
}

/// Runs a command that must succeed; its standard output.
pub fn stdout_of(cmd: &mut assert_cmd::Command) -> String {
    text(&cmd.assert().success().get_output().stdout)
}

/// A spawned rasdrill; killed and reaped if the test ends before it does.
pub struct Running {
    child: Option<Child>,
}

pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    /// Any spawned process (stdout and stderr piped).
    pub fn new(child: Child) -> Running {
        Running { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the exit, with the deadline (past it, drop kills and reaps the process).
    pub fn finish(self) -> Finished {
        self.finish_within(DEADLINE)
    }

    /// Waits for the exit for at most `limit` (past it, drop kills and reaps the process).
    pub fn finish_within(mut self, limit: Duration) -> Finished {
        let child = self.child.as_mut().unwrap();
        let status = wait_until(&Deadline::after(limit), Duration::from_millis(5), || {
            child.try_wait().unwrap()
        })
        .unwrap_or_else(|| panic!("the process did not exit within {limit:?}"));
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        Finished {
            code: status.code(),
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads one write from the FIFO at `path`, as the kernel would see it: opens it for reading
/// (without blocking, so a writer that never comes cannot hang the test), waits for data, and
/// reads until the writer closes. Fails at the deadline, naming the file.
pub fn read_fifo(path: &Path) -> Result<Vec<u8>, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 256];
        match f.read(&mut buf) {
            // No writer: before the write (nothing read yet) or after it (done).
            Ok(0) if !got.is_empty() => return Ok(got),
            Ok(0) => {}
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        if start.elapsed() > DEADLINE {
            return Err(format!(
                "nothing complete was written to {} within {DEADLINE:?} (read so far: {:?}); \
                 was another file written first?",
                path.display(),
                String::from_utf8_lossy(&got)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reads the FIFOs `names` of `dir` in that order and returns (file name, text) as written.
pub fn read_in_order(m: &FakeMachine, dir: &str, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|name| {
            let bytes =
                read_fifo(&m.path(&format!("{dir}/{name}"))).unwrap_or_else(|e| panic!("{e}"));
            (name.to_string(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

/// Pairs for comparing with [`read_in_order`].
pub fn writes(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

/// Pids of live QEMU processes whose command line mentions `dir` (a rasdrill run's TMPDIR, where
/// each QEMU keeps its sockets and console): the proof that a run left none behind.
pub fn qemu_pids_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie =
            fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
        if cmdline.contains("qemu-system") && cmdline.contains(&needle) && !zombie {
            pids.push(pid);
        }
    }
    pids
}
