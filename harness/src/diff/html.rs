//! The comparison as one self-contained HTML page (no scripts, no external files) for reviewers:
//! the summary, a link per changed scenario, and each changed collector side by side.

use std::fmt::Write as _;

use similar::{DiffTag, TextDiff};

use super::{CollectorPair, Comparison, FindingPair, ScenarioDiff, Status};
use crate::report::escape as esc;

const STYLE: &str = "\
body{font-family:sans-serif;margin:1.5em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ccc}
table.sxs{border-collapse:collapse;width:100%;table-layout:fixed;font-family:monospace;font-size:13px}
table.sxs td,table.sxs th{padding:1px 6px;vertical-align:top;white-space:pre-wrap;word-break:break-all}
table.sxs th{background:#eee;text-align:left}
td.n{width:3em;color:#888;text-align:right}
td.del{background:#fdd}
td.ins{background:#dfd}
td.gap{background:#f4f4f4}
p.failure{background:#fee;padding:.5em}
table.findings{border-collapse:collapse;font-size:13px}
table.findings td,table.findings th{padding:2px 8px;border:1px solid #ddd;text-align:left}
tr.moved{background:#ffd}
";

/// The page.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let title = format!("rasdrill diff: {} vs {}", c.base, c.new);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        out,
        "<p>base: <code>{}</code><br>new: <code>{}</code></p>",
        esc(&c.base),
        esc(&c.new)
    );
    let _ = writeln!(out, "<p id=\"summary\">{}</p>", esc(&c.summary()));
    let moved: Vec<&ScenarioDiff> = c.moved().collect();
    if !moved.is_empty() {
        out.push_str("<ul id=\"changed\">\n");
        for s in &moved {
            let _ = writeln!(
                out,
                "<li><a href=\"#{}\">{}</a> ({})</li>",
                anchor(&s.name),
                esc(&s.name),
                esc(&s.what())
            );
        }
        out.push_str("</ul>\n");
    }
    for s in &moved {
        scenario(&mut out, c, s);
    }
    findings(&mut out, c);
    let same: Vec<&str> = c
        .scenarios
        .iter()
        .filter(|s| !s.moved())
        .map(|s| s.name.as_str())
        .collect();
    if !same.is_empty() {
        out.push_str("<h2>Not changed</h2>\n<ul id=\"unchanged\">\n");
        for name in same {
            let _ = writeln!(out, "<li>{}</li>", esc(name));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn scenario(out: &mut String, c: &Comparison, s: &ScenarioDiff) {
    let _ = writeln!(
        out,
        "<section class=\"scenario changed\" id=\"{}\" data-scenario=\"{}\">\n<h2>{}</h2>",
        anchor(&s.name),
        esc(&s.name),
        esc(&s.name)
    );
    if let Status::FailedOn(which, message) = &s.status {
        let _ = writeln!(
            out,
            "<p class=\"failure\">failed on {}: {}</p>",
            which.as_str(),
            esc(message)
        );
    }
    if let Status::OnlyIn(which) = &s.status {
        let _ = writeln!(out, "<p>only in {}</p>", which.as_str());
    }
    for pair in s.changed_collectors() {
        collector(out, c, pair);
    }
    out.push_str("</section>\n");
}

/// The oracle's findings beside the outputs: each scenario's, with how each side's verdict
/// sorted it; a finding on one side only is marked.
fn findings(out: &mut String, c: &Comparison) {
    let with: Vec<&ScenarioDiff> = c
        .scenarios
        .iter()
        .filter(|s| !s.findings.is_empty())
        .collect();
    if with.is_empty() {
        out.push_str("<h2 id=\"findings\">Oracle findings</h2>\n<p>none on either side</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<h2 id=\"findings\">Oracle findings</h2>\n<table class=\"findings\">\n<thead><tr>\
         <th>scenario</th><th>finding</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>",
        esc(&c.base),
        esc(&c.new)
    );
    for s in with {
        for f in &s.findings {
            finding(out, &s.name, f);
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

fn finding(out: &mut String, scenario: &str, f: &FindingPair) {
    let side = |how: Option<&'static str>| how.unwrap_or("-");
    let _ = writeln!(
        out,
        "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        if f.moved() { " class=\"moved\"" } else { "" },
        esc(scenario),
        esc(&f.finding),
        side(f.base),
        side(f.new)
    );
}

/// One collector: base on the left, new on the right, changed lines paired.
fn collector(out: &mut String, c: &Comparison, pair: &CollectorPair) {
    let text = |o: &Option<super::CollectorOutput>| {
        o.as_ref()
            .map(|o| format!("{}\n", o.output))
            .unwrap_or_default()
    };
    let head = |label: &str, o: &Option<super::CollectorOutput>| match o {
        Some(o) if !o.kernel.is_empty() => format!("{label} (kernel {})", o.kernel),
        Some(_) => label.to_string(),
        None => format!("{label}: no {} output", pair.name),
    };
    let _ = writeln!(
        out,
        "<h3 data-collector=\"{}\">{}</h3>\n<table class=\"sxs\">\n<thead><tr>\
         <th colspan=\"2\">{}</th><th colspan=\"2\">{}</th></tr></thead>\n<tbody>",
        esc(&pair.name),
        esc(&pair.name),
        esc(&head(&c.base, &pair.base)),
        esc(&head(&c.new, &pair.new))
    );
    let (old, new) = (text(&pair.base), text(&pair.new));
    let diff = TextDiff::from_lines(&old, &new);
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    for op in diff.ops() {
        let (o, n) = (op.old_range(), op.new_range());
        let rows = o.len().max(n.len());
        let (left, right) = match op.tag() {
            DiffTag::Equal => ("", ""),
            _ => ("del", "ins"),
        };
        for i in 0..rows {
            out.push_str("<tr>");
            cell(
                out,
                o.start + i,
                o.contains(&(o.start + i)),
                &old_lines,
                left,
            );
            cell(
                out,
                n.start + i,
                n.contains(&(n.start + i)),
                &new_lines,
                right,
            );
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody>\n</table>");
    out.push('\n');
}

/// A line number and a line, or an empty pair where this side has no line.
fn cell(out: &mut String, index: usize, present: bool, lines: &[&str], class: &str) {
    if present {
        let _ = write!(
            out,
            "<td class=\"n\">{}</td><td class=\"{class}\">{}</td>",
            index + 1,
            esc(lines.get(index).copied().unwrap_or(""))
        );
    } else {
        out.push_str("<td class=\"n\"></td><td class=\"gap\"></td>");
    }
}

/// An id from a scenario name (names are file stems: keep letters, digits, `-`, `_`, `.`).
fn anchor(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("s-{safe}")
}
