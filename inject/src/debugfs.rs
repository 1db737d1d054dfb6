//! mce-inject's debugfs interface (arch/x86/kernel/cpu/mce/inject.c, module `mce-inject`).
//!
//! Writes `flags`, `cpu`, then `status addr misc synd ipid`, then `bank`, which triggers the
//! injection. Every field is written every time: after a trigger the kernel resets the fields,
//! but a run that failed before its trigger would otherwise leave stale values behind.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::action::Action;
use crate::injector::{InjectError, Injector};
use crate::record::{Broadcast, Context, Delivery, MceRecord};

/// The directory, relative to the root of the machine.
pub const DIR: &str = "sys/kernel/debug/mce-inject";

/// The files written, in the order the kernel needs: `bank` last, because it triggers.
pub const WRITE_ORDER: [&str; 8] = [
    "flags", "cpu", "status", "addr", "misc", "synd", "ipid", "bank",
];

/// What writing `bank` does: the value of the `flags` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectionType {
    /// Software: hand the record to the decoders only. No #MC, no severity grading.
    #[default]
    Sw,
    /// Hardware (AMD): write the bank MSRs on the target CPU and raise #MC.
    Hw,
    /// Deferred-error interrupt (AMD).
    Df,
    /// Threshold interrupt (AMD).
    Th,
}

impl InjectionType {
    pub const ALL: [InjectionType; 4] = [
        InjectionType::Sw,
        InjectionType::Hw,
        InjectionType::Df,
        InjectionType::Th,
    ];

    /// The word the kernel accepts in `flags`.
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionType::Sw => "sw",
            InjectionType::Hw => "hw",
            InjectionType::Df => "df",
            InjectionType::Th => "th",
        }
    }

    /// Everything but `sw` writes AMD machine-check MSRs.
    pub fn needs_amd(self) -> bool {
        self != InjectionType::Sw
    }
}

impl fmt::Display for InjectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InjectionType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{}` is not an injection type: expected sw, hw, df or th",
                    crate::excerpt::excerpt(s)
                )
            })
    }
}

/// The mce-inject debugfs injector for one machine (`root` is `/` on a real one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debugfs {
    dir: PathBuf,
    kind: InjectionType,
}

impl Debugfs {
    pub fn new(root: &Path, kind: InjectionType) -> Self {
        Self {
            dir: root.join(DIR),
            kind,
        }
    }

    fn write(&self, file: &str, value: String) -> Action {
        Action::Write {
            path: self.dir.join(file),
            value,
        }
    }
}

const NAME: &str = "mce-inject's debugfs interface";

/// The first field of `r` that this interface cannot carry, with the reason.
fn unsupported(r: &MceRecord, kind: InjectionType) -> Option<(&'static str, &'static str)> {
    let kernel = "the kernel fills it in itself";
    let legacy = "it is a mode of the legacy /dev/mcelog injector, which debugfs does not have";
    [
        (
            r.mcgstatus != 0,
            "MCGSTATUS",
            "the kernel sets MCG_STATUS itself (RIPV|EIPV|MCIP for hw, 0 for sw)",
        ),
        (
            r.mcgcap != 0,
            "MCGCAP",
            "MCG_CAP belongs to the CPU, not to the record",
        ),
        (r.tsc != 0, "TSC", kernel),
        (r.time != 0, "TIME", kernel),
        (r.cpuvendor != 0 || r.cpuid != 0, "PROCESSOR", kernel),
        (r.socketid != 0, "SOCKETID", kernel),
        (r.apicid != 0, "APICID", kernel),
        (
            r.ip != 0 || r.cs != 0,
            "RIP",
            "the kernel takes RIP from the interrupted context",
        ),
        (r.hold, "HOLD", legacy),
        (r.broadcast != Broadcast::None, "the broadcast mode", legacy),
        (r.delivery != Delivery::Auto, "POLL/EXCP", legacy),
        (r.context != Context::Random, "IN_IRQ/IN_PROC", legacy),
        (
            r.ipid != 0 && kind != InjectionType::Sw,
            "IPID",
            "the kernel keeps a written IPID only with flags sw; hw/df/th use the bank's own IPID register",
        ),
    ]
    .into_iter()
    .find(|(set, _, _)| *set)
    .map(|(_, field, why)| (field, why))
}

impl Injector for Debugfs {
    type Request = MceRecord;

    fn describe(&self, r: &MceRecord) -> Result<Vec<Action>, InjectError> {
        if let Some((field, why)) = unsupported(r, self.kind) {
            return Err(InjectError::Unsupported {
                injector: NAME,
                field,
                why,
            });
        }
        // Numbers are parsed with base 0: hex needs 0x.
        let hex = |v: u64| format!("{v:#x}");
        Ok(vec![
            self.write("flags", self.kind.as_str().to_string()),
            self.write("cpu", r.cpu.to_string()),
            self.write("status", hex(r.status)),
            self.write("addr", hex(r.addr)),
            self.write("misc", hex(r.misc)),
            self.write("synd", hex(r.synd)),
            self.write("ipid", hex(r.ipid)),
            self.write("bank", r.bank.to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(actions: &[Action]) -> String {
        actions.iter().map(|a| format!("{a}\n")).collect()
    }

    #[test]
    fn describes_every_field_with_bank_last() {
        let inj = Debugfs::new(Path::new("/"), InjectionType::Sw);
        let r = MceRecord {
            cpu: 2,
            bank: 4,
            status: 0x9c7d410092080813,
            addr: 0x12345000,
            misc: 0xd01a,
            synd: 0x5,
            ipid: 0xb000000000,
            ..Default::default()
        };
        insta::assert_snapshot!(lines(&inj.describe(&r).unwrap()), @r"
        write /sys/kernel/debug/mce-inject/flags sw
        write /sys/kernel/debug/mce-inject/cpu 2
        write /sys/kernel/debug/mce-inject/status 0x9c7d410092080813
        write /sys/kernel/debug/mce-inject/addr 0x12345000
        write /sys/kernel/debug/mce-inject/misc 0xd01a
        write /sys/kernel/debug/mce-inject/synd 0x5
        write /sys/kernel/debug/mce-inject/ipid 0xb000000000
        write /sys/kernel/debug/mce-inject/bank 4
        ");
    }

    #[test]
    fn zero_fields_are_written_too_and_the_root_prefixes_paths() {
        let inj = Debugfs::new(Path::new("/tmp/tree"), InjectionType::Sw);
        let actions = inj
            .describe(&MceRecord {
                status: 1 << 63,
                ..Default::default()
            })
            .unwrap();
        let files: Vec<_> = actions
            .iter()
            .map(|a| match a {
                Action::Write { path, .. } => path
                    .strip_prefix("/tmp/tree/sys/kernel/debug/mce-inject")
                    .unwrap()
                    .to_owned(),
                _ => panic!("{a}"),
            })
            .collect();
        assert_eq!(files, WRITE_ORDER.map(PathBuf::from));
        assert_eq!(
            actions[0].to_string(),
            "write /tmp/tree/sys/kernel/debug/mce-inject/flags sw"
        );
        assert_eq!(
            actions[3].to_string(),
            "write /tmp/tree/sys/kernel/debug/mce-inject/addr 0x0"
        );
    }

    #[test]
    fn refuses_an_ipid_the_kernel_would_drop() {
        let r = MceRecord {
            status: 1 << 63,
            ipid: 0xb000000000,
            ..Default::default()
        };
        for kind in [InjectionType::Hw, InjectionType::Df, InjectionType::Th] {
            let err = Debugfs::new(Path::new("/"), kind).describe(&r).unwrap_err();
            assert!(err.to_string().contains("IPID"), "{kind}: {err}");
            assert!(
                err.to_string().contains("only with flags sw"),
                "{kind}: {err}"
            );
        }
        assert!(Debugfs::new(Path::new("/"), InjectionType::Sw)
            .describe(&r)
            .is_ok());
    }

    #[test]
    fn refuses_fields_it_cannot_carry() {
        let inj = Debugfs::new(Path::new("/"), InjectionType::Sw);
        let cases: [(MceRecord, &str); 12] = [
            (
                MceRecord {
                    mcgstatus: 1,
                    ..Default::default()
                },
                "MCGSTATUS",
            ),
            (
                MceRecord {
                    mcgcap: 1,
                    ..Default::default()
                },
                "MCGCAP",
            ),
            (
                MceRecord {
                    tsc: 1,
                    ..Default::default()
                },
                "TSC",
            ),
            (
                MceRecord {
                    time: 1,
                    ..Default::default()
                },
                "TIME",
            ),
            (
                MceRecord {
                    cpuid: 1,
                    ..Default::default()
                },
                "PROCESSOR",
            ),
            (
                MceRecord {
                    socketid: 1,
                    ..Default::default()
                },
                "SOCKETID",
            ),
            (
                MceRecord {
                    apicid: 1,
                    ..Default::default()
                },
                "APICID",
            ),
            (
                MceRecord {
                    cs: 1,
                    ..Default::default()
                },
                "RIP",
            ),
            (
                MceRecord {
                    hold: true,
                    ..Default::default()
                },
                "HOLD",
            ),
            (
                MceRecord {
                    broadcast: Broadcast::Off,
                    ..Default::default()
                },
                "the broadcast mode",
            ),
            (
                MceRecord {
                    delivery: Delivery::Poll,
                    ..Default::default()
                },
                "POLL/EXCP",
            ),
            (
                MceRecord {
                    context: Context::Irq,
                    ..Default::default()
                },
                "IN_IRQ/IN_PROC",
            ),
        ];
        for (r, field) in cases {
            let e = inj.describe(&r).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "mce-inject's debugfs interface cannot set {field}: "
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn injection_types_round_trip() {
        for t in InjectionType::ALL {
            assert_eq!(t.as_str().parse::<InjectionType>(), Ok(t));
        }
        assert!("hardware"
            .parse::<InjectionType>()
            .unwrap_err()
            .contains("expected sw, hw, df or th"));
        assert!(!InjectionType::Sw.needs_amd());
        assert!(InjectionType::Th.needs_amd());
    }
}
