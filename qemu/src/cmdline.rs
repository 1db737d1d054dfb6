//! The QEMU command line, built by small pure functions (one per concern) so each piece can
//! be read and snapshot-tested on its own.
//!
//! A guest always gets:
//! - `ttyS0`: the boot console, captured to `<run>/console.log`;
//! - `ttyS1`: the agent channel, a unix socket `<run>/agent.sock` (QEMU listens, `wait=off`);
//! - QMP on the unix socket `<run>/qmp.sock` (QEMU listens, `wait=off`);
//! - no default devices, no user config, no display, and `-no-reboot`: with `panic=-1` on the
//!   kernel command line a guest panic (or any reboot) ends QEMU instead of looping.

use std::path::{Path, PathBuf};

/// The program run when neither the config nor `RASDRILL_QEMU` names another.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";
/// Firmware QEMU loads unless the config says otherwise (Debian: qemu-system-data).
pub const DEFAULT_FIRMWARE: &str = "qboot.rom";
/// Environment variable overriding the QEMU binary.
pub const QEMU_ENV: &str = "RASDRILL_QEMU";

/// Kernel arguments every guest gets, before the caller's own. Each was measured under TCG
/// (1 vCPU, 256 MiB, PVH vmlinux, busybox /init; see qemu/README.md) and kept only if it
/// helped. Tried and left out, no measurable gain: `quiet`, `mitigations=off`, `nokaslr`,
/// `lpj=`, `tsc=reliable`, `no_timer_check`, `i8042.noaux`/`nokbd`, `pci=off`, `noapic`,
/// `rcupdate.rcu_expedited=1`; `acpi=off` saves about 50 ms but loses the ACPI power-off.
pub const BASE_KERNEL_ARGS: &[&str] = &[
    // The boot console is the first serial port, captured to console.log.
    "console=ttyS0",
    // A panic reboots at once, and -no-reboot turns the reboot into QEMU exiting.
    "panic=-1",
    // The crypto self-tests (crypto_algapi_init) are half of the kernel's instructions up to
    // /init: 1.68 s -> 0.80 s of guest time under -icount, about 0.3 s of wall time.
    "cryptomgr.notests",
    // Skips making kernel text read-only and the W+X page-table walk that checks it
    // (CONFIG_DEBUG_WX): 0.13 s of guest time. A throw-away test guest needs neither.
    "rodata=off",
    // The local APIC timer is calibrated against the PIT for 0.07 s of guest time; without
    // it the HPET (or PIT) drives the tick, which makes no difference to these guests.
    "noapictimer",
];

/// MCA banks of every QEMU x86 CPU model: QEMU sets MCG_CAP[7:0] to 10 whatever `-cpu` is
/// (docs/kernel-interfaces.md, "Guest CPU models and decoders"), so a guest's banks are 0-9.
pub const GUEST_BANKS: u32 = 10;

/// How QEMU runs guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation; needs a working /dev/kvm with VMX or SVM.
    Kvm,
    /// QEMU's emulator: slower, works everywhere.
    Tcg,
}

/// Everything that varies between guests. Build one with [`VmConfig::new`], adjust the public
/// fields, then call [`VmConfig::argv`], which validates them in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// QEMU binary: a path, or a name looked up in `PATH`.
    pub qemu: PathBuf,
    pub accel: Accel,
    /// `-cpu` model with properties, e.g. `EPYC,-hypervisor,family=21,model=2`. It picks the
    /// guest kernel's MCE decoder, so scenarios pin it.
    pub cpu: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    /// Firmware for `-bios`, by name in QEMU's data directory or a path; `None` for QEMU's
    /// default (SeaBIOS). Default `qboot.rom`: a minimal firmware that jumps straight to the
    /// kernel, about 0.1 to 0.15 s faster than SeaBIOS per boot under TCG.
    pub firmware: Option<PathBuf>,
    /// Uncompressed `vmlinux` (booted through PVH) or a bzImage.
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// Extra kernel arguments, after [`BASE_KERNEL_ARGS`].
    pub kernel_args: Vec<String>,
    /// Directory for the console log and the sockets; must exist before QEMU starts.
    pub run_dir: PathBuf,
    /// A saved guest state to start from instead of booting (see [`crate::snapshot`]). The
    /// console log is then appended to, so it keeps the boot the state was saved from.
    pub incoming: Option<PathBuf>,
    /// The q35 machine with a PCIe root port and an endpoint behind it ([`PCIE_TOPOLOGY`]),
    /// targets for AER; `false` keeps the plain `pc` machine. It needs a firmware that sets
    /// SERR# in the devices' Command registers, as SeaBIOS does (`firmware: None`): QEMU 7.2
    /// forwards no AER message without it (pcie_aer_msg_alldev), Linux never sets it, and
    /// qboot does not either.
    pub pcie: bool,
}

/// One device of the PCIe topology: its qdev id (what QEMU's `pcie_aer_inject_error` names)
/// and the address the guest sees it at (what the kernel's aer_inject names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcieDevice {
    pub id: &'static str,
    /// `SSSS:BB:DD.F` in the guest.
    pub sbdf: &'static str,
    pub what: &'static str,
}

/// The root port, at slot 1 of q35's root bus (pinned with `addr`), and an e1000e in the slot
/// below it: the root port's secondary bus is the first the guest numbers, bus 1.
pub const PCIE_TOPOLOGY: [PcieDevice; 2] = [
    PcieDevice {
        id: "rp0",
        sbdf: "0000:00:01.0",
        what: "pcie-root-port (chassis 1, slot 0)",
    },
    PcieDevice {
        id: "nic0",
        sbdf: "0000:01:00.0",
        what: "e1000e endpoint behind rp0",
    },
];

/// Files inside a run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// Everything the guest writes to ttyS0.
    pub console_log: PathBuf,
    /// ttyS1: the agent channel (QEMU is the listening side).
    pub agent_socket: PathBuf,
    /// The QMP monitor.
    pub qmp_socket: PathBuf,
}

impl RunPaths {
    pub fn new(run_dir: &Path) -> Self {
        RunPaths {
            console_log: run_dir.join("console.log"),
            agent_socket: run_dir.join("agent.sock"),
            qmp_socket: run_dir.join("qmp.sock"),
        }
    }
}

/// A config that cannot become a working QEMU command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("vcpus is 0: a guest needs at least 1 vCPU")]
    NoVcpus,
    #[error("memory_mib is {0}: a Debian kernel with an initramfs needs at least 128 MiB")]
    TooLittleMemory(u32),
    #[error("cpu model is empty: give a QEMU -cpu value such as `qemu64,-hypervisor`")]
    EmptyCpu,
    #[error("{what} path {path:?} is not UTF-8, which QEMU options need")]
    NotUtf8 { what: &'static str, path: PathBuf },
    #[error("socket path {path:?} is {len} bytes; a unix socket path must be under 108: use a shorter run directory")]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error(
        "kernel argument {0:?} is empty or contains whitespace; give each argument separately"
    )]
    BadKernelArg(String),
    #[error("a PCIe guest cannot boot {0}: it leaves SERR# clear, so QEMU 7.2 drops every AER message; use SeaBIOS (no firmware option)")]
    PcieWithQboot(String),
}

impl VmConfig {
    /// A TCG guest with 1 vCPU and 256 MiB, CPU `qemu64,-hypervisor`, qboot firmware, QEMU
    /// from `RASDRILL_QEMU` or `qemu-system-x86_64`.
    pub fn new(kernel: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        VmConfig {
            qemu: std::env::var_os(QEMU_ENV)
                .map_or_else(|| PathBuf::from(DEFAULT_QEMU), PathBuf::from),
            accel: Accel::Tcg,
            cpu: "qemu64,-hypervisor".into(),
            vcpus: 1,
            memory_mib: 256,
            firmware: Some(PathBuf::from(DEFAULT_FIRMWARE)),
            kernel: kernel.into(),
            initrd: None,
            kernel_args: Vec::new(),
            run_dir: run_dir.into(),
            incoming: None,
            pcie: false,
        }
    }

    pub fn paths(&self) -> RunPaths {
        RunPaths::new(&self.run_dir)
    }

    /// The kernel command line: [`BASE_KERNEL_ARGS`] then `kernel_args`.
    pub fn kernel_cmdline(&self) -> String {
        let base = BASE_KERNEL_ARGS.iter().copied();
        base.chain(self.kernel_args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The arguments after the QEMU binary, after checking every field.
    pub fn argv(&self) -> Result<Vec<String>, ConfigError> {
        if self.vcpus == 0 {
            return Err(ConfigError::NoVcpus);
        }
        if self.memory_mib < 128 {
            return Err(ConfigError::TooLittleMemory(self.memory_mib));
        }
        if self.cpu.trim().is_empty() {
            return Err(ConfigError::EmptyCpu);
        }
        if let Some(bad) = self
            .kernel_args
            .iter()
            .find(|a| a.is_empty() || a.chars().any(char::is_whitespace))
        {
            return Err(ConfigError::BadKernelArg(bad.clone()));
        }
        let paths = self.paths();
        for socket in [&paths.agent_socket, &paths.qmp_socket] {
            let len = socket.as_os_str().len();
            if len >= 108 {
                return Err(ConfigError::SocketPathTooLong {
                    path: socket.clone(),
                    len,
                });
            }
        }
        let kernel = utf8("kernel", &self.kernel)?;
        let initrd = self
            .initrd
            .as_deref()
            .map(|p| utf8("initrd", p))
            .transpose()?;
        let firmware = self
            .firmware
            .as_deref()
            .map(|p| utf8("firmware", p))
            .transpose()?;
        if let (true, Some(f)) = (self.pcie, firmware) {
            if f.ends_with(DEFAULT_FIRMWARE) {
                return Err(ConfigError::PcieWithQboot(f.to_string()));
            }
        }
        let mut argv = fixed_args();
        argv.extend(machine_args(self.accel, self.pcie));
        if self.pcie {
            argv.extend(pcie_args());
        }
        argv.extend(firmware_args(firmware));
        argv.extend(cpu_args(&self.cpu, self.vcpus));
        argv.extend(memory_args(self.memory_mib));
        argv.extend(boot_args(kernel, initrd, &self.kernel_cmdline()));
        let incoming = self
            .incoming
            .as_deref()
            .map(|p| utf8("saved state", p))
            .transpose()?;
        argv.extend(console_args(
            utf8("console log", &paths.console_log)?,
            incoming.is_some(),
        ));
        argv.extend(agent_args(utf8("agent socket", &paths.agent_socket)?));
        argv.extend(qmp_args(utf8("QMP socket", &paths.qmp_socket)?));
        argv.extend(incoming_args(incoming));
        Ok(argv)
    }
}

fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, ConfigError> {
    path.to_str().ok_or_else(|| ConfigError::NotUtf8 {
        what,
        path: path.to_path_buf(),
    })
}

/// QEMU splits option values at commas; a literal comma is written twice.
fn escape(value: &str) -> String {
    value.replace(',', ",,")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Nothing QEMU would add on its own: no NIC, VGA, floppy, CD-ROM, config files or window.
fn fixed_args() -> Vec<String> {
    args(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
}

/// The `pc` machine (i440FX), or `q35` when the guest needs PCI Express (i440FX has none).
/// Measured under TCG: `q35` runs the same number of guest instructions to /init and gains
/// nothing otherwise; `microvm` cannot calibrate the TSC of a stock Debian kernel (no PIT
/// speaker port, no HPET), falls back to jiffies, and hangs unless ACPI is off, which in turn
/// loses the ACPI power-off. See qemu/README.md.
fn machine_args(accel: Accel, pcie: bool) -> Vec<String> {
    let accel = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    let machine = if pcie { "q35" } else { "pc" };
    args(&["-machine", machine, "-accel", accel])
}

/// [`PCIE_TOPOLOGY`]: the root port pinned to slot 1 of the root bus, the e1000e on the root
/// port's bus. The e1000e has no network backend: it is an AER target, not a NIC in use.
fn pcie_args() -> Vec<String> {
    let [rp, ep] = PCIE_TOPOLOGY;
    vec![
        "-device".into(),
        format!("pcie-root-port,id={},bus=pcie.0,addr=0x1,chassis=1", rp.id),
        "-device".into(),
        format!("e1000e,id={},bus={},addr=0x0", ep.id, rp.id),
    ]
}

fn firmware_args(firmware: Option<&str>) -> Vec<String> {
    firmware.map_or_else(Vec::new, |f| vec!["-bios".into(), f.into()])
}

fn cpu_args(cpu: &str, vcpus: u32) -> Vec<String> {
    vec!["-cpu".into(), cpu.into(), "-smp".into(), vcpus.to_string()]
}

fn memory_args(mib: u32) -> Vec<String> {
    vec!["-m".into(), format!("{mib}M")]
}

fn boot_args(kernel: &str, initrd: Option<&str>, cmdline: &str) -> Vec<String> {
    let mut argv = vec!["-kernel".into(), kernel.into()];
    if let Some(initrd) = initrd {
        argv.extend(["-initrd".into(), initrd.into()]);
    }
    argv.extend(["-append".into(), cmdline.into()]);
    argv
}

/// ttyS0 (the first `-serial`) goes to a file that outlives QEMU, for diagnostics: truncated
/// at start for a boot, appended to for a restored guest (whose log starts with its boot).
fn console_args(log: &str, append: bool) -> Vec<String> {
    let append = if append { ",append=on" } else { "" };
    vec![
        "-chardev".into(),
        format!("file,id=console,path={}{append}", escape(log)),
        "-serial".into(),
        "chardev:console".into(),
    ]
}

/// ttyS1 (the second `-serial`): a listening socket that does not wait for a client, so the
/// guest boots while the host connects.
fn agent_args(socket: &str) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=agent,path={},server=on,wait=off", escape(socket)),
        "-serial".into(),
        "chardev:agent".into(),
    ]
}

fn qmp_args(socket: &str) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!("socket,id=qmp,path={},server=on,wait=off", escape(socket)),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ]
}

/// Loads a saved state before the guest runs. QEMU 7.2 has no `file:` migration URI (8.2
/// added it); `exec:` hands the rest to `/bin/sh -c`, so the path is quoted for the shell.
fn incoming_args(state: Option<&str>) -> Vec<String> {
    state.map_or_else(Vec::new, |path| {
        vec![
            "-incoming".into(),
            format!("exec:cat {}", shell_quote(path)),
        ]
    })
}

/// One shell word: single quotes, with each `'` closed, escaped and reopened.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VmConfig {
        let mut config =
            VmConfig::new("/cache/kernels/6.1.0-56-amd64/vmlinux", "/tmp/rasdrill-run");
        config.qemu = PathBuf::from(DEFAULT_QEMU);
        config.initrd = Some("/tmp/rasdrill-run/initrd.cpio".into());
        config
    }

    /// One option and its value per line.
    fn lines(argv: &[String]) -> String {
        let mut out = String::new();
        for arg in argv {
            let sep = if arg.starts_with('-') && !out.is_empty() {
                "\n"
            } else {
                " "
            };
            out.push_str(if out.is_empty() { "" } else { sep });
            out.push_str(arg);
        }
        out
    }

    #[test]
    fn default_tcg_guest() {
        insta::assert_snapshot!(lines(&config().argv().unwrap()));
    }

    #[test]
    fn kvm_amd_family_15h_two_cpus_with_extra_kernel_args() {
        let mut config = config();
        config.accel = Accel::Kvm;
        config.firmware = None;
        config.cpu = "EPYC,-hypervisor,family=21,model=2".into();
        config.vcpus = 2;
        config.memory_mib = 512;
        config.kernel_args = vec!["rdinit=/init".into(), "rasdrill.agent=ttyS1".into()];
        insta::assert_snapshot!(lines(&config.argv().unwrap()));
    }

    #[test]
    fn pcie_guest_is_q35_with_a_root_port_and_an_endpoint() {
        let mut config = config();
        config.pcie = true;
        assert_eq!(
            config.argv().unwrap_err(),
            ConfigError::PcieWithQboot("qboot.rom".into())
        );
        config.firmware = None;
        insta::assert_snapshot!(lines(&config.argv().unwrap()));
    }

    #[test]
    fn commas_in_paths_are_escaped_for_qemu() {
        let mut config = config();
        config.run_dir = "/tmp/a,b".into();
        config.initrd = None;
        let argv = config.argv().unwrap();
        assert!(
            argv.contains(&"file,id=console,path=/tmp/a,,b/console.log".to_string()),
            "{argv:?}"
        );
        assert!(!argv.contains(&"-initrd".to_string()));
    }

    #[test]
    fn a_restored_guest_loads_its_state_and_appends_to_the_console() {
        let mut config = config();
        config.incoming = Some("/tmp/snap dir/it's.state".into());
        let argv = config.argv().unwrap();
        let tail: Vec<&str> = argv[argv.len() - 2..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            ["-incoming", r"exec:cat '/tmp/snap dir/it'\''s.state'"]
        );
        assert!(argv
            .contains(&"file,id=console,path=/tmp/rasdrill-run/console.log,append=on".to_string()));
    }

    #[test]
    fn invalid_fields_are_named() {
        let check = |edit: &dyn Fn(&mut VmConfig), expected: &str| {
            let mut config = config();
            edit(&mut config);
            assert_eq!(config.argv().unwrap_err().to_string(), expected);
        };
        check(
            &|c| c.vcpus = 0,
            "vcpus is 0: a guest needs at least 1 vCPU",
        );
        check(
            &|c| c.memory_mib = 64,
            "memory_mib is 64: a Debian kernel with an initramfs needs at least 128 MiB",
        );
        check(
            &|c| c.cpu = " ".into(),
            "cpu model is empty: give a QEMU -cpu value such as `qemu64,-hypervisor`",
        );
        check(
            &|c| c.kernel_args = vec!["a b".into()],
            "kernel argument \"a b\" is empty or contains whitespace; give each argument separately",
        );
        let long = format!("/tmp/{}", "d".repeat(100));
        let mut config = config();
        config.run_dir = long.into();
        assert!(matches!(
            config.argv(),
            Err(ConfigError::SocketPathTooLong { len: 116, .. })
        ));
    }
}
