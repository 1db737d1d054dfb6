//! `collectors`: kmsg, trace, rasdaemon and command collectors.

use super::*;
use crate::agent::trace::RAS_TRACEPOINTS;
use crate::collect::rasdaemon_build::RasdaemonBuild;

const TRACE_KEYS: &[&str] = &["events"];
const COMMAND_KEYS: &[&str] = &["name", "start", "collect", "stop", "needs"];
const KMSG_KEYS: &[&str] = &["match", "boot_log"];
const RASDAEMON_KEYS: &[&str] = &["version"];

pub(super) fn collectors(node: &Node, p: &mut Problems) -> Option<Vec<Collector>> {
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
pub(super) fn collector_names(node: &Node) -> Vec<String> {
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
pub(super) fn known_collectors(names: &[String]) -> String {
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
    match tag.as_str() {
        "kmsg" => {
            let (filter, boot_log) = match settings {
                None => (None, false),
                Some(s) => {
                    let mut f = Fields::new(s, &here, KMSG_KEYS, p)?;
                    let filter = f
                        .take("match")
                        .map(|n| pattern(n, &child(&here, "match"), p));
                    let boot_log = match f.take("boot_log") {
                        Some(n) => boolean(n, &child(&here, "boot_log"), p),
                        None => Some(false),
                    };
                    f.finish(p);
                    let filter = match filter {
                        Some(re) => Some(re?.as_str().to_string()),
                        None => None,
                    };
                    (filter, boot_log?)
                }
            };
            Some(Collector {
                name: tag,
                kind: CollectorKind::Kmsg { filter, boot_log },
            })
        }
        "rasdaemon" => {
            let build = match settings {
                None => None,
                Some(s) => {
                    let mut f = Fields::new(s, &here, RASDAEMON_KEYS, p)?;
                    let key = child(&here, "version");
                    let build = f
                        .require("version", "0.6.8 (Debian 12) or 0.8.3 (Debian 13)", p)
                        .and_then(|n| {
                            let text = string(n, &key, p)?;
                            match text.parse::<RasdaemonBuild>() {
                                Ok(RasdaemonBuild::Local(_)) => {
                                    p.add(
                                        n.loc,
                                        &key,
                                        "a rasdaemon you built is chosen for a whole run: \
                                         `rasdrill run --rasdaemon PATH`",
                                    );
                                    None
                                }
                                Ok(build) => Some(build),
                                Err(e) => {
                                    p.add(n.loc, &key, e);
                                    None
                                }
                            }
                        });
                    f.finish(p);
                    Some(build?)
                }
            };
            Some(Collector {
                name: tag,
                kind: CollectorKind::Rasdaemon { build },
            })
        }
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
        } else if !RAS_TRACEPOINTS.contains(&event.as_str()) {
            p.add(n.loc, path, unknown_event(event));
            ok = false;
        }
    }
    ok.then(|| events.into_iter().map(|(event, _)| event).collect())
}

/// A well-formed name that is not one of the RAS tracepoints the target enables: nothing would
/// ever be collected for it.
fn unknown_event(event: &str) -> String {
    let close: Vec<&str> = RAS_TRACEPOINTS
        .iter()
        .copied()
        .filter(|known| {
            let same_event = known.rsplit('/').next() == event.rsplit('/').next();
            same_event || edit_distance(known, event) <= 3
        })
        .collect();
    let hint = if close.is_empty() {
        format!("known: {}", list(&RAS_TRACEPOINTS))
    } else {
        format!("did you mean {}?", list(&close))
    };
    format!("`{event}` is not a RAS tracepoint of the kernel ({hint})")
}

/// Levenshtein distance: insertions, deletions and substitutions of one character each.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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
