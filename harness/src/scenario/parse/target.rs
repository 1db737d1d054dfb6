//! `target` and `machine`: where the scenario runs, and the guest's CPU, size and kernel.

use super::*;
use crate::profile;
use rasdrill_inject::excerpt::excerpt;
use rasdrill_qemu::pinned::{self, KernelLine};

const MACHINE_KEYS: &[&str] = &[
    "profile",
    "cpu_model",
    "vcpus",
    "memory_mib",
    "kernel",
    "pcie",
    "kernel_line",
    "kernel_args",
];
const KERNEL_KEYS: &[&str] = &["path", "modules"];
const LOCAL_KEYS: &[&str] = &["root"];

pub(super) fn target(
    node: &Node,
    dir: &Path,
    p: &mut Problems,
) -> Option<(TargetKind, Option<PathBuf>)> {
    let (tag, _, settings) = tagged(node, "target", &["guest", "local"], p)?;
    let settings = settings.filter(|s| s.value != Value::Null);
    if tag == "guest" {
        if let Some(s) = settings {
            p.add(
                s.loc,
                "target.guest",
                "takes no settings: the guest is described under `machine`",
            );
            return None;
        }
        return Some((TargetKind::Guest, None));
    }
    let Some(s) = settings else {
        return Some((TargetKind::Local, None));
    };
    let mut f = Fields::new(s, "target.local", LOCAL_KEYS, p)?;
    let root = match f.take("root") {
        Some(n) => Some(existing_path(n, "target.local.root", dir, true, p)?),
        None => None,
    };
    f.finish(p);
    Some((TargetKind::Local, root))
}

pub(super) fn machine(node: &Node, dir: &Path, p: &mut Problems) -> Option<Machine> {
    let mut f = Fields::new(node, "machine", MACHINE_KEYS, p)?;
    let mut ok = true;
    let profile = match (f.take("profile"), f.has("cpu_model")) {
        (Some(n), true) => {
            p.add(
                n.loc,
                "machine",
                "give either `profile` or `cpu_model`, not both",
            );
            ok = false;
            None
        }
        (Some(n), false) => {
            let choices: Vec<(&str, &'static Profile)> =
                PROFILES.iter().map(|p| (p.name, p)).collect();
            let found = one_of(n, "machine.profile", &choices, p);
            ok &= found.is_some();
            found
        }
        (None, _) => None,
    };
    let cpu_model = match (profile, f.take("cpu_model")) {
        (Some(profile), _) => Some(profile.cpu_model.to_string()),
        (None, Some(n)) => cpu_model(n, p),
        (None, None) if ok => {
            p.add(
                f.loc(),
                "machine",
                format!(
                    "missing `profile` ({}) or `cpu_model` (QEMU's -cpu value)",
                    profile_names()
                ),
            );
            None
        }
        (None, None) => None,
    };
    let vcpus = match f.take("vcpus") {
        Some(n) => number_in(n, "machine.vcpus", 1, 64, p).map(|v| v as u32),
        None => Some(profile.map_or(2, |p| p.vcpus)),
    };
    let memory_mib = match f.take("memory_mib") {
        Some(n) => number_in(n, "machine.memory_mib", 128, 65536, p).map(|v| v as u32),
        None => Some(profile.map_or(256, |p| p.memory_mib)),
    };
    let kernel = match f.take("kernel") {
        Some(n) => kernel(n, dir, p).map(Some),
        None => Some(None),
    };
    let pcie = match f.take("pcie") {
        Some(n) => boolean(n, "machine.pcie", p),
        None => Some(false),
    };
    let kernel_line = match f.take("kernel_line") {
        Some(n) if kernel.as_ref().is_some_and(Option::is_some) => {
            p.add(
                n.loc,
                "machine.kernel_line",
                "give either `kernel` (your own build) or `kernel_line` (a pinned line), not both",
            );
            None
        }
        Some(n) => kernel_line(n, p).map(Some),
        None => Some(None),
    };
    let kernel_args = match f.take("kernel_args") {
        Some(n) => kernel_args(n, p),
        None => Some(Vec::new()),
    };
    f.finish(p);
    let cpu_model = cpu_model?;
    Some(Machine {
        pcie: pcie?,
        profile,
        vendor: profile::vendor_of(&cpu_model),
        cpu_model,
        vcpus: vcpus?,
        memory_mib: memory_mib?,
        kernel: kernel?,
        kernel_line: kernel_line?,
        kernel_args: kernel_args?,
    })
}

/// A pinned kernel line, written as a string: unquoted, `6.10` would be the number 6.1.
fn kernel_line(node: &Node, p: &mut Problems) -> Option<&'static KernelLine> {
    let path = "machine.kernel_line";
    let names = pinned::LINES
        .iter()
        .map(|l| format!("\"{}\"", l.name))
        .collect::<Vec<_>>()
        .join(", ");
    let Value::Str(name) = &node.value else {
        p.add(
            node.loc,
            path,
            format!(
                "expected a pinned kernel line in quotes ({names}), found {}",
                node.value.kind()
            ),
        );
        return None;
    };
    let found = pinned::by_name(name);
    if found.is_none() {
        p.add(
            node.loc,
            path,
            format!("`{}` is not a pinned kernel line ({names})", excerpt(name)),
        );
    }
    found
}

/// Words added to the guest kernel's command line, each one argument (`ras=cec_disable`).
fn kernel_args(node: &Node, p: &mut Problems) -> Option<Vec<String>> {
    let mut ok = true;
    let mut out = Vec::new();
    for (arg, n) in string_items(node, "machine.kernel_args", p)? {
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
            p.add(
                n.loc,
                "machine.kernel_args",
                format!(
                    "`{}` is not one kernel argument: write one word per item, without spaces or quotes",
                    excerpt(&arg)
                ),
            );
            ok = false;
        }
        out.push(arg);
    }
    ok.then_some(out)
}

fn cpu_model(node: &Node, p: &mut Problems) -> Option<String> {
    let s = string(node, "machine.cpu_model", p)?;
    if s.is_empty() || s.contains(char::is_whitespace) || s == "host" || s.starts_with("host,") {
        p.add(
            node.loc,
            "machine.cpu_model",
            format!(
                "`{s}` is not a pinned QEMU CPU model: give a named model without spaces, e.g. \
                 `EPYC,-hypervisor,family=21,model=2` (`host` would let the host pick the decoder)"
            ),
        );
        return None;
    }
    Some(s)
}

fn kernel(node: &Node, dir: &Path, p: &mut Problems) -> Option<KernelOverride> {
    let mut f = Fields::new(node, "machine.kernel", KERNEL_KEYS, p)?;
    let path = f
        .require("path", "a bzImage or vmlinux", p)
        .and_then(|n| existing_path(n, "machine.kernel.path", dir, false, p));
    let modules = match f.take("modules") {
        Some(n) => existing_path(n, "machine.kernel.modules", dir, true, p).map(Some),
        None => Some(None),
    };
    f.finish(p);
    Some(KernelOverride {
        path: path?,
        modules: modules?,
    })
}
