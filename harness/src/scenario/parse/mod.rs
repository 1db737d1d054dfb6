//! The scenario schema, read from the located YAML tree in one pass that records every problem.
//!
//! Sections are read in dependency order (target and machine, setup, collectors, steps,
//! compare) so that checks across sections (`cpu < vcpus`, a `wait` naming a collector) are
//! made where the value is, with its line and column.

mod collectors;
mod compare;
mod inject;
mod known;
mod setup;
mod steps;
mod target;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rasdrill_inject::status::{self, NAMED_BITS};
use rasdrill_inject::{MceRecord, Place};

use super::mce_file;
use super::problem::{Problem, Problems};
use super::read::{
    boolean, child, items, list, number, number_in, one_of, pattern, seconds, string, string_items,
    tagged, Fields,
};
use super::yaml::{self, Node, Value};
use super::*;
use crate::profile::{Profile, PROFILES};

use collectors::{collector_names, collectors};
use compare::compare;
use known::known_findings;
use setup::setup;
use steps::steps;
use target::{machine, target};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "machine",
    "target",
    "setup",
    "collectors",
    "steps",
    "compare",
    "known_findings",
    "expect_crash",
    "output_limit_kib",
];

/// What other sections need to know while steps are read.
struct Ctx {
    dir: PathBuf,
    /// `None` when the target itself was invalid: checks that depend on it are skipped.
    target: Option<TargetKind>,
    /// Where injections go, for the planner; `None` when the target or machine was invalid.
    place: Option<Place>,
    collectors: Vec<String>,
    fake_panic: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Guest,
    Local,
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
        place: match target_kind {
            Some(TargetKind::Guest) => machine.as_ref().map(|m| Place::Guest(m.facts())),
            Some(TargetKind::Local) => Some(Place::Machine {
                root: root_dir.clone().unwrap_or_else(|| PathBuf::from("/")),
            }),
            None => None,
        },
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
    // Across steps, as rasdrill's runner delivers them; `--naive` checks again (cmd::run).
    if let (Some(steps), Some(Place::Guest(facts))) = (&steps, &ctx.place) {
        for problem in super::merges::find(file, steps, facts.vcpus, true) {
            p.add(problem.loc, &problem.field, problem.message);
        }
    }
    let compare = match top.take("compare") {
        Some(n) => compare(n, &ctx.collectors, &mut p),
        None => Some(ctx.collectors.clone()),
    };
    let known_findings = match top.take("known_findings") {
        Some(n) => known_findings(n, &ctx.collectors, &mut p),
        None => Some(Vec::new()),
    };
    let expect_crash = match top.take("expect_crash") {
        Some(n) => boolean(n, "expect_crash", &mut p),
        None => Some(false),
    };
    let output_limit = match top.take("output_limit_kib") {
        Some(n) => number_in(n, "output_limit_kib", 1, MAX_OUTPUT_LIMIT_KIB, &mut p)
            .map(|kib| kib as usize * 1024),
        None => Some(DEFAULT_OUTPUT_LIMIT),
    };
    top.finish(&mut p);

    let target = match target_kind {
        Some(TargetKind::Guest) => machine.map(Target::Guest),
        Some(TargetKind::Local) => Some(Target::Local { root: root_dir }),
        None => None,
    };
    match (
        name,
        description,
        target,
        setup,
        collectors,
        steps,
        compare,
        known_findings,
        expect_crash,
        output_limit,
    ) {
        (
            Some(name),
            Some(description),
            Some(target),
            Some(setup),
            Some(collectors),
            Some(steps),
            Some(compare),
            Some(known_findings),
            Some(expect_crash),
            Some(output_limit),
        ) if p.is_empty() => Ok(Scenario {
            file: file.to_path_buf(),
            name,
            description,
            target,
            setup,
            collectors,
            steps,
            compare,
            known_findings,
            expect_crash,
            output_limit,
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
