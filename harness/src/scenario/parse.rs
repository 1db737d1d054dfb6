//! The scenario schema, read from the located YAML tree in one pass that records every problem.
//!
//! Sections are read in dependency order (target and machine, setup, collectors, steps,
//! compare) so that checks across sections (`cpu < vcpus`, a `wait` naming a collector) are
//! made where the value is, with its line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rasdrill_inject::record::{Broadcast, Context, Delivery};
use rasdrill_inject::status::{self, NAMED_BITS};
use rasdrill_inject::{MceRecord, Vendor};
use regex::Regex;

use super::mce_file;
use super::problem::{Problem, Problems};
use super::read::{
    boolean, child, items, list, number, number_in, one_of, seconds, string, string_items, tagged,
    Fields,
};
use super::yaml::{self, Node, Value};
use super::*;
use crate::profile::{Profile, PROFILES};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "machine",
    "target",
    "setup",
    "collectors",
    "steps",
    "compare",
];
const MACHINE_KEYS: &[&str] = &["profile", "cpu_model", "vcpus", "memory_mib", "kernel"];
const KERNEL_KEYS: &[&str] = &["path", "modules"];
const LOCAL_KEYS: &[&str] = &["root"];
const SETUP_KEYS: &[&str] = &["modules", "poll_interval_s", "fake_panic"];
const TRACE_KEYS: &[&str] = &["events"];
const COMMAND_KEYS: &[&str] = &["name", "start", "collect", "stop", "needs"];
const KMSG_KEYS: &[&str] = &["match"];
const STEP_TAGS: &[&str] = &["inject", "wait", "expect_panic", "sleep_ms"];
const INJECT_KEYS: &[&str] = &[
    "via",
    "file",
    "cpu",
    "bank",
    "status",
    "addr",
    "misc",
    "synd",
    "ipid",
    "mcgstatus",
    "flags",
    "broadcast",
    "mc",
    "section",
    "word",
    "ecc_vector",
    "access",
    "fake_inject",
];
const STATUS_KEYS: &[&str] = &["bits", "mca_code", "model_code"];
const FAKE_INJECT_KEYS: &[&str] = &[
    "branch", "channel", "slot", "csrow", "memory", "ue", "count",
];
const WAIT_KEYS: &[&str] = &["collector", "records", "line", "timeout_s"];
const EXPECT_PANIC_KEYS: &[&str] = &["timeout_s", "message"];

/// Waits are bounded: a scenario cannot hang a CI run for longer than this per step.
pub(crate) const MAX_TIMEOUT_S: u64 = 600;
pub(crate) const DEFAULT_TIMEOUT_S: u64 = 10;
const MAX_SLEEP_MS: u64 = 60_000;
/// The kernel's `check_interval` is in whole seconds, at least 1; 300 is its default.
const MAX_POLL_INTERVAL_S: u64 = 300;

/// What other sections need to know while steps are read.
struct Ctx {
    dir: PathBuf,
    /// `None` when the target itself was invalid: checks that depend on it are skipped.
    target: Option<TargetKind>,
    machine: Option<Machine>,
    collectors: Vec<String>,
    fake_panic: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Guest,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Qemu,
    Debugfs,
    Edac,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Qemu => "qemu",
            Via::Debugfs => "debugfs",
            Via::Edac => "edac",
        }
    }

    /// The keys an inject step may have with this `via`.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Via::Qemu => &[
                "via",
                "file",
                "cpu",
                "bank",
                "status",
                "addr",
                "misc",
                "mcgstatus",
                "broadcast",
            ],
            Via::Debugfs => &[
                "via", "file", "cpu", "bank", "status", "addr", "misc", "synd", "ipid", "flags",
            ],
            Via::Edac => &[
                "via",
                "mc",
                "section",
                "word",
                "ecc_vector",
                "access",
                "fake_inject",
            ],
        }
    }

    /// Why `key` (valid with another `via`) does not apply to this one.
    fn why_not(self, key: &str) -> &'static str {
        match (self, key) {
            (Via::Qemu, "synd" | "ipid") => "QEMU models only CTL, STATUS, ADDR and MISC per bank",
            (Via::Qemu, "flags") => "flags are mce-inject's; use via: debugfs",
            (Via::Debugfs, "mcgstatus") => {
                "mce-inject's debugfs directory has no mcgstatus file; the kernel sets it"
            }
            (Via::Debugfs, "broadcast") => "only QEMU's mce command broadcasts (-b)",
            (Via::Edac, _) => "via: edac injects DRAM accesses, not MCE records",
            _ => "it belongs to via: edac",
        }
    }
}

pub(crate) fn scenario(file: &Path, text: &str) -> Result<Scenario, Vec<Problem>> {
    let mut p = Problems::new(file);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            p.add(e.loc, "", e.message);
            return Err(p.into_vec());
        }
    };
    let Some(mut top) = Fields::new(&root, "", TOP_KEYS, &mut p) else {
        return Err(p.into_vec());
    };
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();

    let name = top
        .require(
            "name",
            "the scenario's name; it names the golden files",
            &mut p,
        )
        .and_then(|n| identifier(n, "name", &mut p));
    let description = top
        .require(
            "description",
            "one line saying what the scenario rehearses",
            &mut p,
        )
        .and_then(|n| string(n, "description", &mut p));

    let (target_kind, root_dir) = match top.take("target") {
        Some(n) => target(n, &dir, &mut p).map_or((None, None), |(k, r)| (Some(k), r)),
        None => (Some(TargetKind::Guest), None),
    };
    let machine_node = top.take("machine");
    let machine = match (target_kind, machine_node) {
        (Some(TargetKind::Guest), Some(n)) => machine(n, &dir, &mut p),
        (Some(TargetKind::Guest), None) => {
            p.add(
                top.loc(),
                "",
                format!(
                    "missing `machine`: a guest scenario pins its machine, e.g. `machine: {{profile: \
                     amd-f15h}}` (profiles: {})",
                    profile_names()
                ),
            );
            None
        }
        (Some(TargetKind::Local), Some(n)) => {
            p.add(
                n.loc,
                "machine",
                "a local scenario runs on this machine: `machine` is only for target: guest",
            );
            None
        }
        (_, _) => None,
    };

    let setup = match top.take("setup") {
        Some(n) => setup(n, &mut p),
        None => Some(Setup::default()),
    };
    let top_collectors = top.take("collectors");
    let collectors = match top_collectors {
        Some(n) => collectors(n, &mut p),
        None => Some(Vec::new()),
    };

    let ctx = Ctx {
        dir,
        target: target_kind,
        machine: machine.clone(),
        collectors: match top_collectors {
            Some(n) => collector_names(n),
            None => Vec::new(),
        },
        fake_panic: setup.as_ref().is_some_and(|s| s.fake_panic),
    };

    let steps = match top.require("steps", "what the scenario does, in order", &mut p) {
        Some(n) => steps(n, &ctx, &mut p),
        None => None,
    };
    let compare = match top.take("compare") {
        Some(n) => compare(n, &ctx.collectors, &mut p),
        None => Some(ctx.collectors.clone()),
    };
    top.finish(&mut p);

    let target = match target_kind {
        Some(TargetKind::Guest) => machine.map(Target::Guest),
        Some(TargetKind::Local) => Some(Target::Local { root: root_dir }),
        None => None,
    };
    match (name, description, target, setup, collectors, steps, compare) {
        (
            Some(name),
            Some(description),
            Some(target),
            Some(setup),
            Some(collectors),
            Some(steps),
            Some(compare),
        ) if p.is_empty() => Ok(Scenario {
            file: file.to_path_buf(),
            name,
            description,
            target,
            setup,
            collectors,
            steps,
            compare,
        }),
        _ => Err(sorted(p.into_vec())),
    }
}

fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by(|a, b| (&a.file, a.loc).cmp(&(&b.file, b.loc)));
    problems
}

/// Scenario and collector names end up in file names (`golden/<scenario>__<collector>.snap`).
fn identifier(node: &Node, path: &str, p: &mut Problems) -> Option<String> {
    let s = string(node, path, p)?;
    let ok = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !s.contains("__");
    if !ok {
        p.add(
            node.loc,
            path,
            format!(
                "`{s}` is not a valid name: use at most 64 lowercase letters, digits, `-` and `_`, \
                 starting with a letter or digit, without `__` (it separates names in golden files)"
            ),
        );
        return None;
    }
    Some(s)
}

fn profile_names() -> String {
    PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A path written in a scenario is relative to the scenario's directory.
fn resolve(dir: &Path, written: &str) -> PathBuf {
    dir.join(written)
}

fn existing_path(
    node: &Node,
    path: &str,
    dir: &Path,
    want_dir: bool,
    p: &mut Problems,
) -> Option<PathBuf> {
    let written = string(node, path, p)?;
    let resolved = resolve(dir, &written);
    let ok = if want_dir {
        resolved.is_dir()
    } else {
        resolved.is_file()
    };
    if !ok {
        let kind = if want_dir { "directory" } else { "file" };
        p.add(
            node.loc,
            path,
            format!(
                "{} is not an existing {kind} (paths are relative to the scenario file)",
                resolved.display()
            ),
        );
        return None;
    }
    Some(resolved)
}

fn target(node: &Node, dir: &Path, p: &mut Problems) -> Option<(TargetKind, Option<PathBuf>)> {
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

fn machine(node: &Node, dir: &Path, p: &mut Problems) -> Option<Machine> {
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
    f.finish(p);
    let cpu_model = cpu_model?;
    Some(Machine {
        profile,
        vendor: vendor_of(&cpu_model),
        cpu_model,
        vcpus: vcpus?,
        memory_mib: memory_mib?,
        kernel: kernel?,
    })
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

/// The vendor of a QEMU CPU model, as far as its name tells. QEMU's generic `qemu64`/`kvm64`
/// models present AuthenticAMD.
fn vendor_of(cpu_model: &str) -> Vendor {
    let m = cpu_model.to_ascii_lowercase();
    if m.contains("vendor=genuineintel") {
        return Vendor::Intel;
    }
    if m.contains("vendor=authenticamd") {
        return Vendor::Amd;
    }
    let name = m.split(',').next().unwrap_or("");
    const AMD: &[&str] = &[
        "epyc", "opteron", "phenom", "athlon", "qemu64", "kvm64", "dhyana",
    ];
    const INTEL: &[&str] = &[
        "skylake",
        "cascadelake",
        "cooperlake",
        "icelake",
        "sapphirerapids",
        "broadwell",
        "haswell",
        "ivybridge",
        "sandybridge",
        "westmere",
        "nehalem",
        "penryn",
        "conroe",
        "core2duo",
        "coreduo",
        "snowridge",
        "denverton",
        "qemu32",
        "kvm32",
    ];
    if AMD.iter().any(|a| name.starts_with(a)) {
        Vendor::Amd
    } else if INTEL.iter().any(|i| name.starts_with(i)) {
        Vendor::Intel
    } else {
        Vendor::Unknown
    }
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

fn setup(node: &Node, p: &mut Problems) -> Option<Setup> {
    let mut f = Fields::new(node, "setup", SETUP_KEYS, p)?;
    let defaults = Setup::default();
    let modules = match f.take("modules") {
        Some(n) => module_names(n, p),
        None => Some(defaults.modules),
    };
    let poll_interval = match f.take("poll_interval_s") {
        Some(n) => number_in(n, "setup.poll_interval_s", 1, MAX_POLL_INTERVAL_S, p)
            .map(Duration::from_secs),
        None => Some(defaults.poll_interval),
    };
    let fake_panic = match f.take("fake_panic") {
        Some(n) => boolean(n, "setup.fake_panic", p),
        None => Some(false),
    };
    f.finish(p);
    Some(Setup {
        modules: modules?,
        poll_interval: poll_interval?,
        fake_panic: fake_panic?,
    })
}

fn module_names(node: &Node, p: &mut Problems) -> Option<Vec<String>> {
    let mut ok = true;
    let mut names = Vec::new();
    for (path, n) in items(node, "setup.modules", p)? {
        let Some(name) = string(n, &path, p) else {
            ok = false;
            continue;
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.add(
                n.loc,
                &path,
                format!("`{name}` is not a module name (letters, digits, `_` and `-`)"),
            );
            ok = false;
        }
        names.push(name);
    }
    ok.then_some(names)
}

fn collectors(node: &Node, p: &mut Problems) -> Option<Vec<Collector>> {
    let mut ok = true;
    let mut out: Vec<Collector> = Vec::new();
    for (path, n) in items(node, "collectors", p)? {
        let Some(c) = collector(n, &path, p) else {
            ok = false;
            continue;
        };
        if out.iter().any(|o| o.name == c.name) {
            p.add(
                n.loc,
                &path,
                format!(
                    "a second collector named `{}`: names must be unique",
                    c.name
                ),
            );
            ok = false;
        }
        out.push(c);
    }
    ok.then_some(out)
}

/// The names the collectors were given, read without judging them: steps and `compare` are
/// checked against these even when a collector's settings are wrong.
fn collector_names(node: &Node) -> Vec<String> {
    let Value::Seq(items) = &node.value else {
        return Vec::new();
    };
    let name =
        |item: &Node| match &item.value {
            Value::Str(s) => Some(s.clone()),
            Value::Map(entries) if entries.len() == 1 && entries[0].0.name == "command" => {
                match &entries[0].1.value {
                    Value::Map(settings) => settings
                        .iter()
                        .find(|(k, _)| k.name == "name")
                        .and_then(|(_, v)| match &v.value {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        }),
                    _ => None,
                }
            }
            Value::Map(entries) if entries.len() == 1 => Some(entries[0].0.name.clone()),
            _ => None,
        };
    items.iter().filter_map(name).collect()
}

/// `a`, `b` or "none are declared", for errors about collector names.
fn known_collectors(names: &[String]) -> String {
    if names.is_empty() {
        return "none are declared".to_string();
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    list(&names)
}

fn collector(node: &Node, path: &str, p: &mut Problems) -> Option<Collector> {
    let (tag, _, settings) = tagged(node, path, &["kmsg", "trace", "rasdaemon", "command"], p)?;
    let settings = settings.filter(|s| s.value != Value::Null);
    let here = child(path, &tag);
    let simple = |kind: CollectorKind, p: &mut Problems| {
        if let Some(s) = settings {
            p.add(s.loc, &here, "takes no settings");
            return None;
        }
        Some(Collector {
            name: tag.clone(),
            kind,
        })
    };
    match tag.as_str() {
        "kmsg" => {
            let filter = match settings {
                None => None,
                Some(s) => {
                    let mut f = Fields::new(s, &here, KMSG_KEYS, p)?;
                    let filter = f
                        .require(
                            "match",
                            "a regular expression choosing the lines to keep",
                            p,
                        )
                        .and_then(|n| pattern(n, &child(&here, "match"), p));
                    f.finish(p);
                    Some(filter?.as_str().to_string())
                }
            };
            Some(Collector {
                name: tag,
                kind: CollectorKind::Kmsg { filter },
            })
        }
        "rasdaemon" => simple(CollectorKind::Rasdaemon, p),
        "trace" => {
            let events = match settings {
                None => vec!["mce/mce_record".to_string()],
                Some(s) => {
                    let mut f = Fields::new(s, &here, TRACE_KEYS, p)?;
                    let events = f
                        .require(
                            "events",
                            "tracepoints as group/event, e.g. mce/mce_record",
                            p,
                        )
                        .and_then(|n| trace_events(n, &child(&here, "events"), p));
                    f.finish(p);
                    events?
                }
            };
            Some(Collector {
                name: tag,
                kind: CollectorKind::Trace { events },
            })
        }
        _ => {
            let Some(s) = settings else {
                p.add(
                    node.loc,
                    &here,
                    "needs settings: {name, collect: [argv...]}",
                );
                return None;
            };
            let mut f = Fields::new(s, &here, COMMAND_KEYS, p)?;
            let name = f
                .require("name", "names its output and golden file", p)
                .and_then(|n| identifier(n, &child(&here, "name"), p));
            let argv = |key: &str, f: &mut Fields, p: &mut Problems| match f.take(key) {
                Some(n) => command_argv(n, &child(&here, key), p).map(Some),
                None => Some(None),
            };
            let start = argv("start", &mut f, p);
            let collect =
                match f.require("collect", "the command that prints what was collected", p) {
                    Some(n) => command_argv(n, &child(&here, "collect"), p),
                    None => None,
                };
            let stop = argv("stop", &mut f, p);
            let needs = match f.take("needs") {
                Some(n) => program_names(n, &child(&here, "needs"), p),
                None => Some(Vec::new()),
            };
            f.finish(p);
            let name = name?;
            if ["kmsg", "trace", "rasdaemon"].contains(&name.as_str()) {
                p.add(
                    s.loc,
                    &child(&here, "name"),
                    format!("`{name}` is a built-in collector's name"),
                );
                return None;
            }
            Some(Collector {
                name,
                kind: CollectorKind::Command {
                    start: start?,
                    collect: collect?,
                    stop: stop?,
                    needs: needs?,
                },
            })
        }
    }
}

fn trace_events(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<String>> {
    let events = string_items(node, path, p)?;
    let mut ok = !events.is_empty();
    if events.is_empty() {
        p.add(node.loc, path, "names no tracepoint");
    }
    for (event, n) in &events {
        let valid = event.split_once('/').is_some_and(|(g, e)| {
            let word =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            word(g) && word(e)
        });
        if !valid {
            p.add(n.loc, path, format!("`{event}` is not a tracepoint: write group/event, e.g. mce/mce_record or ras/mc_event"));
            ok = false;
        }
    }
    ok.then(|| events.into_iter().map(|(event, _)| event).collect())
}

/// Host programs for a guest: a name looked up on the host's PATH, or a path. They are placed
/// in the guest's /usr/bin under their file name, so two may not share one.
fn program_names(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<String>> {
    let names = string_items(node, path, p)?;
    let mut ok = true;
    let mut seen: Vec<&str> = Vec::new();
    for (name, n) in &names {
        let file = name.rsplit('/').next().unwrap_or("");
        if file.is_empty() || file == "." || file == ".." {
            p.add(
                n.loc,
                path,
                format!("`{name}` is not a program name or path"),
            );
            ok = false;
        } else if seen.contains(&file) {
            p.add(
                n.loc,
                path,
                format!("two programs named `{file}`: each goes to /usr/bin/{file} in the guest"),
            );
            ok = false;
        }
        seen.push(file);
    }
    ok.then(|| names.into_iter().map(|(name, _)| name).collect())
}

fn command_argv(node: &Node, path: &str, p: &mut Problems) -> Option<Vec<String>> {
    let argv: Vec<String> = string_items(node, path, p)?
        .into_iter()
        .map(|(arg, _)| arg)
        .collect();
    if argv.is_empty() || argv[0].is_empty() {
        p.add(
            node.loc,
            path,
            "expected a command as a list: [program, arg, ...]",
        );
        return None;
    }
    Some(argv)
}

fn steps(node: &Node, ctx: &Ctx, p: &mut Problems) -> Option<Vec<Step>> {
    let items = items(node, "steps", p)?;
    if items.is_empty() {
        p.add(
            node.loc,
            "steps",
            "is empty: a scenario does at least one thing",
        );
        return None;
    }
    let last = items.len() - 1;
    let mut out = Vec::new();
    let mut ok = true;
    for (index, (path, n)) in items.into_iter().enumerate() {
        // Judged on the step's name, so that it is reported even when its settings are wrong.
        let is_panic =
            matches!(&n.value, Value::Map(e) if e.len() == 1 && e[0].0.name == "expect_panic");
        if is_panic && index != last {
            p.add(
                n.loc,
                &path,
                "expect_panic must be the last step: nothing runs after a panic",
            );
            ok = false;
        }
        let Some(kind) = step(n, &path, ctx, p) else {
            ok = false;
            continue;
        };
        out.push(Step {
            index,
            loc: n.loc,
            kind,
        });
    }
    ok.then_some(out)
}

fn step(node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> Option<StepKind> {
    let (tag, loc, settings) = tagged(node, path, STEP_TAGS, p)?;
    let here = child(path, &tag);
    let Some(settings) = settings else {
        p.add(
            loc,
            &here,
            "needs settings, e.g. `- wait: {collector: kmsg, records: 1}`",
        );
        return None;
    };
    match tag.as_str() {
        "inject" => inject(settings, &here, ctx, p).map(StepKind::Inject),
        "wait" => wait(settings, &here, ctx, p).map(StepKind::Wait),
        "expect_panic" => expect_panic(settings, &here, ctx, p).map(StepKind::ExpectPanic),
        _ => number_in(settings, &here, 1, MAX_SLEEP_MS, p)
            .map(|ms| StepKind::Sleep(Duration::from_millis(ms))),
    }
}

fn timeout(f: &mut Fields, p: &mut Problems) -> Option<Duration> {
    match f.take("timeout_s") {
        Some(n) => seconds(n, &f.child("timeout_s"), MAX_TIMEOUT_S, p),
        None => Some(Duration::from_secs(DEFAULT_TIMEOUT_S)),
    }
}

fn pattern(node: &Node, path: &str, p: &mut Problems) -> Option<Regex> {
    let text = string(node, path, p)?;
    match Regex::new(&text) {
        Ok(re) => Some(re),
        Err(e) => {
            let why = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            p.add(
                node.loc,
                path,
                format!("`{text}` is not a valid regular expression: {why}"),
            );
            None
        }
    }
}

fn wait(node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> Option<Wait> {
    let mut f = Fields::new(node, path, WAIT_KEYS, p)?;
    let collector = f
        .require("collector", "the collector to watch", p)
        .and_then(|n| {
            let name = string(n, &f.child("collector"), p)?;
            if !ctx.collectors.contains(&name) {
                let known = known_collectors(&ctx.collectors);
                p.add(
                    n.loc,
                    &f.child("collector"),
                    format!("`{name}` is not a collector of this scenario (collectors: {known})"),
                );
                return None;
            }
            Some(name)
        });
    let until = match (f.take("records"), f.take("line")) {
        (Some(n), None) => {
            number_in(n, &f.child("records"), 1, 10_000, p).map(|n| WaitFor::Records(n as u32))
        }
        (None, Some(n)) => pattern(n, &f.child("line"), p).map(WaitFor::Line),
        (Some(_), Some(n)) => {
            p.add(n.loc, path, "give either `records` or `line`, not both");
            None
        }
        (None, None) => {
            p.add(
                f.loc(),
                path,
                "missing what to wait for: `records: N` or `line: REGEX`",
            );
            None
        }
    };
    let timeout = timeout(&mut f, p);
    f.finish(p);
    Some(Wait {
        collector: collector?,
        until: until?,
        timeout: timeout?,
    })
}

fn expect_panic(node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> Option<ExpectPanic> {
    let mut f = Fields::new(node, path, EXPECT_PANIC_KEYS, p)?;
    let timeout = timeout(&mut f, p);
    let message = match f.take("message") {
        Some(n) => pattern(n, &f.child("message"), p).map(Some),
        None => Some(None),
    };
    f.finish(p);
    let mut ok = true;
    if ctx.target == Some(TargetKind::Local) {
        p.add(
            node.loc,
            path,
            "a panic is only expected of a guest: target: local would take this machine down",
        );
        ok = false;
    }
    if ctx.fake_panic {
        p.add(
            node.loc,
            path,
            "setup.fake_panic is true: the kernel logs a fatal machine check instead of panicking",
        );
        ok = false;
    }
    ok.then_some(())?;
    Some(ExpectPanic {
        timeout: timeout?,
        message: message?,
    })
}

fn inject(node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> Option<Inject> {
    let mut f = Fields::new(node, path, INJECT_KEYS, p)?;
    let via_choices = [
        ("qemu", Via::Qemu),
        ("debugfs", Via::Debugfs),
        ("edac", Via::Edac),
    ];
    let via = f
        .require("via", "qemu, debugfs or edac", p)
        .and_then(|n| one_of(n, &f.child("via"), &via_choices, p));
    let Some(via) = via else {
        // Without a valid `via`, the other keys cannot be judged: only unknown ones are reported.
        for key in INJECT_KEYS {
            f.take(key);
        }
        f.finish(p);
        return None;
    };
    let mut ok = via_fits_target(via, node, path, ctx, p);
    for key in INJECT_KEYS.iter().filter(|k| !via.keys().contains(k)) {
        if let Some(n) = f.take(key) {
            p.add(
                n.loc,
                &f.child(key),
                format!(
                    "does not apply to via: {} ({})",
                    via.name(),
                    via.why_not(key)
                ),
            );
            ok = false;
        }
    }
    let inject = match via {
        Via::Edac => edac(&mut f, p).map(Inject::Edac),
        Via::Qemu | Via::Debugfs => {
            let records = records(&mut f, via, ctx, p);
            let broadcast = match f.take("broadcast") {
                Some(n) => boolean(n, &f.child("broadcast"), p),
                None => Some(false),
            };
            let flags_choices = InjectionType::ALL.map(|t| (t.as_str(), t));
            let flags = match f.take("flags") {
                Some(n) => one_of(n, &f.child("flags"), &flags_choices, p).and_then(|flags| {
                    let vendor = ctx.machine.as_ref().map(|m| m.vendor);
                    if flags.needs_amd() && vendor == Some(Vendor::Intel) {
                        p.add(n.loc, &f.child("flags"), format!(
                            "`{}` is AMD only (mce-inject writes AMD bank MSRs); this machine is Intel: use sw",
                            flags.as_str()
                        ));
                        return None;
                    }
                    Some(flags)
                }),
                None => Some(InjectionType::Sw),
            };
            match (via, records, broadcast, flags) {
                (Via::Qemu, Some(records), Some(broadcast), _) => {
                    Some(Inject::Qemu { records, broadcast })
                }
                (_, Some(records), _, Some(flags)) => Some(Inject::Debugfs { records, flags }),
                _ => None,
            }
        }
    };
    f.finish(p);
    if ok {
        inject
    } else {
        None
    }
}

fn via_fits_target(via: Via, node: &Node, path: &str, ctx: &Ctx, p: &mut Problems) -> bool {
    let message = match (via, ctx.target) {
        (Via::Qemu, Some(TargetKind::Local)) => "via: qemu needs target: guest (it is QEMU's monitor command)",
        (Via::Edac, Some(TargetKind::Guest)) => {
            "via: edac needs EDAC memory controllers, which QEMU guests do not have: use target: local \
             (with `root:` for a tree that stands in for the hardware)"
        }
        _ => return true,
    };
    p.add(node.loc, path, message);
    false
}

/// The records of an inject step: written inline, or read from an mce-inject file.
fn records(f: &mut Fields, via: Via, ctx: &Ctx, p: &mut Problems) -> Option<Vec<MceRecord>> {
    const RECORD_KEYS: &[&str] = &[
        "cpu",
        "bank",
        "status",
        "addr",
        "misc",
        "synd",
        "ipid",
        "mcgstatus",
    ];
    if let Some(file_node) = f.take("file") {
        let inline: Vec<&str> = RECORD_KEYS.iter().copied().filter(|k| f.has(k)).collect();
        if !inline.is_empty() {
            p.add(
                file_node.loc,
                f.path(),
                format!(
                    "give either `file` or the record's fields, not both (found {})",
                    list(&inline)
                ),
            );
            for key in inline {
                f.take(key);
            }
            return None;
        }
        return file_records(file_node, &f.child("file"), via, ctx, p);
    }
    let record = inline_record(f, p)?;
    let problems = record_problems(&record, via, ctx);
    for (field, message) in &problems {
        // Point at the field when it was written, else at the step.
        let loc = f.value_loc(field).unwrap_or(f.loc());
        p.add(loc, &f.child(field), message.clone());
    }
    problems.is_empty().then_some(vec![record])
}

fn inline_record(f: &mut Fields, p: &mut Problems) -> Option<MceRecord> {
    let mut ok = true;
    let mut num = |key: &str, f: &mut Fields, p: &mut Problems| -> u64 {
        match f.take(key) {
            Some(n) => number(n, &f.child(key), p).unwrap_or_else(|| {
                ok = false;
                0
            }),
            None => 0,
        }
    };
    let cpu = num("cpu", f, p);
    let addr = num("addr", f, p);
    let misc = num("misc", f, p);
    let synd = num("synd", f, p);
    let ipid = num("ipid", f, p);
    let mcgstatus = num("mcgstatus", f, p);
    let bank = f
        .require("bank", "the MCA bank", p)
        .and_then(|n| number(n, &f.child("bank"), p));
    let status = f
        .require(
            "status",
            "MCi_STATUS: a number, or {bits: [VAL, EN, ...], mca_code, model_code}",
            p,
        )
        .and_then(|n| status_value(n, &f.child("status"), p));
    let record = MceRecord {
        cpu: u32::try_from(cpu).unwrap_or(u32::MAX),
        bank: u32::try_from(bank?).unwrap_or(u32::MAX),
        status: status?,
        addr,
        misc,
        synd,
        ipid,
        mcgstatus,
        ..MceRecord::default()
    };
    ok.then_some(record)
}

/// A status: a number, or named bits plus the MCA and model-specific error codes.
fn status_value(node: &Node, path: &str, p: &mut Problems) -> Option<u64> {
    if !matches!(node.value, Value::Map(_)) {
        return number(node, path, p);
    }
    let mut f = Fields::new(node, path, STATUS_KEYS, p)?;
    let mut ok = true;
    let mut value = 0;
    if let Some(n) = f.require("bits", "named bits, e.g. [VAL, EN, ADDRV]", p) {
        for (ipath, item) in items(n, &f.child("bits"), p).unwrap_or_default() {
            let Some(name) = string(item, &ipath, p) else {
                ok = false;
                continue;
            };
            match status::named_bit(&name) {
                Some(bit) => value |= bit.mask,
                None => {
                    let names: Vec<&str> = NAMED_BITS.iter().map(|b| b.name).collect();
                    p.add(
                        item.loc,
                        &ipath,
                        format!("`{name}` is not a status bit (bits: {})", names.join(" ")),
                    );
                    ok = false;
                }
            }
        }
    } else {
        ok = false;
    }
    let mut code = |key: &str, shift: u32, f: &mut Fields, p: &mut Problems| {
        if let Some(n) = f.take(key) {
            match number_in(n, &f.child(key), 0, 0xffff, p) {
                Some(c) => value |= c << shift,
                None => ok = false,
            }
        }
    };
    code("mca_code", 0, &mut f, p);
    code("model_code", status::MODEL_CODE_SHIFT, &mut f, p);
    f.finish(p);
    ok.then_some(value)
}

fn file_records(
    node: &Node,
    path: &str,
    via: Via,
    ctx: &Ctx,
    p: &mut Problems,
) -> Option<Vec<MceRecord>> {
    let written = string(node, path, p)?;
    let file = resolve(&ctx.dir, &written);
    if !file.is_file() {
        p.add(
            node.loc,
            path,
            format!(
                "{} is not an existing file (paths are relative to the scenario file)",
                file.display()
            ),
        );
        return None;
    }
    match mce_file::read_records(&file) {
        Ok(records) => {
            let mut ok = true;
            for (i, (loc, record)) in records.iter().enumerate() {
                let where_ = format!("{path} (record {} of {})", i + 1, records.len());
                for (field, message) in record_problems(record, via, ctx) {
                    p.add_in(&file, *loc, &where_, format!("{field}: {message}"));
                    ok = false;
                }
            }
            ok.then(|| records.into_iter().map(|(_, r)| r).collect())
        }
        Err(e) if e.loc.line > 0 => {
            p.add_in(&file, e.loc, path, e.message);
            None
        }
        Err(e) => {
            p.add(node.loc, path, format!("{}: {}", file.display(), e.message));
            None
        }
    }
}

/// What is wrong with one record on this machine and injector: (field, why) pairs.
fn record_problems(r: &MceRecord, via: Via, ctx: &Ctx) -> Vec<(&'static str, String)> {
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    let banks = ctx.machine.as_ref().map_or(MAX_BANKS, |_| GUEST_BANKS);
    if r.bank >= banks {
        let why = if ctx.machine.is_some() {
            format!("the guest has {GUEST_BANKS} banks: 0-{}", GUEST_BANKS - 1)
        } else {
            format!(
                "the kernel handles at most {MAX_BANKS} banks: 0-{}",
                MAX_BANKS - 1
            )
        };
        problems.push(("bank", format!("{} is out of range ({why})", r.bank)));
    }
    if let Some(m) = &ctx.machine {
        if r.cpu >= m.vcpus {
            problems.push((
                "cpu",
                format!(
                    "{} is out of range (the guest has {} vCPUs: 0-{})",
                    r.cpu,
                    m.vcpus,
                    m.vcpus - 1
                ),
            ));
        }
    }
    if r.status & status::VAL == 0 {
        problems.push((
            "status",
            format!(
                "{:#018x} has no VAL (bit 63): the kernel ignores a bank without it and QEMU rejects it",
                r.status
            ),
        ));
    }
    let unsupported: [(&'static str, bool); 10] = [
        ("synd", via == Via::Qemu && r.synd != 0),
        ("ipid", via == Via::Qemu && r.ipid != 0),
        ("mcgstatus", via == Via::Debugfs && r.mcgstatus != 0),
        ("mcgcap", r.mcgcap != 0),
        ("tsc", r.tsc != 0),
        ("time", r.time != 0),
        ("socketid", r.socketid != 0),
        ("apicid", r.apicid != 0),
        ("processor", r.cpuvendor != 0 || r.cpuid != 0),
        ("rip", r.ip != 0 || r.cs != 0),
    ];
    for (what, set) in unsupported {
        if set {
            let message = match via {
                Via::Qemu => format!("QEMU's mce command cannot set {what}"),
                _ => format!("mce-inject's debugfs files cannot set {what}"),
            };
            problems.push((what, message));
        }
    }
    if r.hold {
        problems.push((
            "hold",
            "HOLD is a /dev/mcelog mode; inject the records one by one instead".into(),
        ));
    }
    if matches!(r.broadcast, Broadcast::Irq | Broadcast::Nmi) {
        let hint = if via == Via::Qemu {
            "use `broadcast: true` on the step"
        } else {
            "only QEMU broadcasts"
        };
        problems.push((
            "broadcast",
            format!("IRQBROADCAST/NMIBROADCAST are /dev/mcelog modes: {hint}"),
        ));
    }
    if r.delivery != Delivery::Auto || r.context != Context::Random {
        let hint = if via == Via::Debugfs {
            "choose the delivery with `flags: sw|hw` on the step"
        } else {
            "QEMU raises #MC for an uncorrected error, else the poller finds it"
        };
        problems.push((
            "delivery",
            format!("POLL/EXCP/IN_IRQ/IN_PROC are /dev/mcelog modes: {hint}"),
        ));
    }
    problems
}

fn edac(f: &mut Fields, p: &mut Problems) -> Option<EdacRequest> {
    let mc = match f.take("mc") {
        Some(n) => number_in(n, &f.child("mc"), 0, 255, p),
        None => Some(0),
    };
    if let Some(n) = f.take("fake_inject") {
        let amd64: Vec<&str> = ["section", "word", "ecc_vector", "access"]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
        if !amd64.is_empty() {
            p.add(
                n.loc,
                f.path(),
                format!(
                    "give either `fake_inject` or amd64_edac's {}, not both",
                    list(&amd64)
                ),
            );
            for k in amd64 {
                f.take(k);
            }
            return None;
        }
        let fake = fake_inject(n, &f.child("fake_inject"), mc? as u32, p)?;
        return Some(EdacRequest::Fake(fake));
    }
    let section = f
        .require(
            "section",
            "amd64_edac inject_section, 0-3 (or use fake_inject)",
            p,
        )
        .and_then(|n| number_in(n, &f.child("section"), 0, 3, p));
    let word = f
        .require("word", "amd64_edac inject_word, 0-8", p)
        .and_then(|n| number_in(n, &f.child("word"), 0, 8, p));
    let ecc_vector = f
        .require("ecc_vector", "amd64_edac inject_ecc_vector, 16 bits", p)
        .and_then(|n| number_in(n, &f.child("ecc_vector"), 0, 0xffff, p));
    let access_choices = [("read", EccAccess::Read), ("write", EccAccess::Write)];
    let access = f
        .require(
            "access",
            "read or write: the DRAM access that triggers the error",
            p,
        )
        .and_then(|n| one_of(n, &f.child("access"), &access_choices, p));
    // The ranges were checked above, with locations; the constructor checks them again.
    match EccInjection::new(mc? as u32, section?, word?, ecc_vector?, access?) {
        Ok(ecc) => Some(EdacRequest::Amd64(ecc)),
        Err(e) => {
            p.add(f.loc(), f.path(), e.to_string());
            None
        }
    }
}

fn fake_inject(node: &Node, path: &str, mc: u32, p: &mut Problems) -> Option<FakeInjection> {
    let mut f = Fields::new(node, path, FAKE_INJECT_KEYS, p)?;
    let mut ok = true;
    let mut layers = Vec::new();
    for layer in Layer::ALL {
        if let Some(n) = f.take(layer.name()) {
            match number_in(n, &f.child(layer.name()), 0, 255, p) {
                Some(v) => layers.push((layer, v)),
                None => ok = false,
            }
        }
    }
    let ue = match f.take("ue") {
        Some(n) => boolean(n, &f.child("ue"), p),
        None => Some(false),
    };
    let count = match f.take("count") {
        Some(n) => number_in(n, &f.child("count"), 1, 0xffff, p),
        None => Some(1),
    };
    f.finish(p);
    ok.then_some(())?;
    match FakeInjection::new(mc, &layers, ue?, count?) {
        Ok(fake) => Some(fake),
        Err(e) => {
            p.add(node.loc, path, e.to_string());
            None
        }
    }
}

fn compare(node: &Node, collectors: &[String], p: &mut Problems) -> Option<Vec<String>> {
    let mut ok = true;
    let mut out: Vec<String> = Vec::new();
    for (path, n) in items(node, "compare", p)? {
        let Some(name) = string(n, &path, p) else {
            ok = false;
            continue;
        };
        if !collectors.contains(&name) {
            let known = known_collectors(collectors);
            p.add(
                n.loc,
                &path,
                format!("`{name}` is not a collector of this scenario (collectors: {known})"),
            );
            ok = false;
        } else if out.contains(&name) {
            p.add(n.loc, &path, format!("`{name}` is named twice"));
            ok = false;
        }
        out.push(name);
    }
    ok.then_some(out)
}
