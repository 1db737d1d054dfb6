//! Reading typed values out of located YAML nodes, recording a problem instead of stopping.
//!
//! Every reader returns `None` after recording why; callers carry on, so one pass reports all
//! problems of a file.

use std::time::Duration;

use rasdrill_inject::excerpt::excerpt;
use regex::Regex;

use super::problem::Problems;
use super::yaml::{Key, Loc, Node, Value};

/// The keys of one YAML mapping, taken one by one; keys nobody took are reported as unknown.
pub(crate) struct Fields<'n> {
    path: String,
    loc: Loc,
    valid: &'static [&'static str],
    entries: Vec<(&'n Key, &'n Node, bool)>,
}

impl<'n> Fields<'n> {
    /// `valid` lists the keys this mapping may have (they are named in the unknown-key error).
    pub fn new(
        node: &'n Node,
        path: &str,
        valid: &'static [&'static str],
        problems: &mut Problems,
    ) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(Fields {
                path: path.to_string(),
                loc: node.loc,
                valid,
                entries: entries.iter().map(|(k, v)| (k, v, false)).collect(),
            }),
            other => {
                problems.add(
                    node.loc,
                    path,
                    format!(
                        "expected a mapping with keys {}, found {}",
                        list(valid),
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn loc(&self) -> Loc {
        self.loc
    }

    /// The path of one of this mapping's keys, e.g. `steps[1].inject` + `bank`.
    pub fn child(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// Where the value of `key` was written, if it was.
    pub fn value_loc(&self, key: &str) -> Option<Loc> {
        self.entries
            .iter()
            .find(|(k, _, _)| k.name == key)
            .map(|(_, v, _)| v.loc)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| k.name == key)
    }

    /// Takes an optional key; a key is taken once (later calls return `None`).
    pub fn take(&mut self, key: &str) -> Option<&'n Node> {
        debug_assert!(
            self.valid.contains(&key),
            "`{key}` is not in the valid list"
        );
        let entry = self
            .entries
            .iter_mut()
            .find(|(k, _, taken)| k.name == key && !taken)?;
        entry.2 = true;
        Some(entry.1)
    }

    /// Takes a key that must be there; `what` says what it is for, in the error.
    pub fn require(&mut self, key: &str, what: &str, problems: &mut Problems) -> Option<&'n Node> {
        let node = self.take(key);
        if node.is_none() {
            problems.add(self.loc, &self.path, format!("missing `{key}` ({what})"));
        }
        node
    }

    /// Reports every key nobody took.
    pub fn finish(self, problems: &mut Problems) {
        for (key, _, taken) in &self.entries {
            if !taken {
                problems.add(
                    key.loc,
                    &child(&self.path, &key.name),
                    format!("unknown key (valid here: {})", list(self.valid)),
                );
            }
        }
    }
}

pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `a, b, c` with backquotes, for error messages.
pub(crate) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A whole number: a YAML integer, decimal or `0x` hex (also `0o` octal, `0b` binary).
pub(crate) fn number(node: &Node, path: &str, problems: &mut Problems) -> Option<u64> {
    let message = match &node.value {
        Value::Int(n) => return Some(*n),
        Value::NegInt(n) => format!("{n} is negative: expected a whole number of 0 or more"),
        // YAML reads an integer too large for 64 bits as a float: say what is wrong with it.
        Value::Float(x) if x.fract() == 0.0 && x.abs() >= TWO_TO_64 => too_large(),
        Value::Float(x) => format!("{x} is not a whole number"),
        Value::Str(s) if is_leading_zero_decimal(s) => format!(
            "`{s}` is ambiguous: a leading zero means octal in mce-inject files and C, decimal \
             in YAML; write {} (decimal) or 0o{} (octal)",
            s.trim_start_matches('0'),
            s.trim_start_matches('0')
        ),
        // A hex number too large for 64 bits reaches us as text, quoted or not.
        Value::Str(s) if looks_numeric(s) && !fits_u64(s) => too_large(),
        Value::Str(s) if looks_numeric(s) => format!(
            "expected a number, found the string \"{}\": write numbers without quotes",
            excerpt(s)
        ),
        other => format!(
            "expected a number (decimal or 0x hex), found {}",
            other.kind()
        ),
    };
    problems.add(node.loc, path, message);
    None
}

/// 2^64 as a float: the first whole number that does not fit in a u64.
const TWO_TO_64: f64 = 18_446_744_073_709_551_616.0;

fn too_large() -> String {
    format!(
        "the number does not fit in 64 bits (at most {:#x})",
        u64::MAX
    )
}

/// Whether a [`looks_numeric`] text is a value a u64 can hold.
fn fits_u64(s: &str) -> bool {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).is_ok(),
        None => t.parse::<u64>().is_ok(),
    }
}

fn is_leading_zero_decimal(s: &str) -> bool {
    s.len() > 1 && s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .map(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
    digits.unwrap_or_else(|| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
}

/// A whole number within `min..=max`; `unit` names what is counted, for the error.
pub(crate) fn number_in(
    node: &Node,
    path: &str,
    min: u64,
    max: u64,
    problems: &mut Problems,
) -> Option<u64> {
    let n = number(node, path, problems)?;
    if n < min || n > max {
        problems.add(
            node.loc,
            path,
            format!("{n} is out of range ({min} to {max})"),
        );
        return None;
    }
    Some(n)
}

/// A duration in seconds, whole or fractional, more than 0 and at most `max_s`.
pub(crate) fn seconds(
    node: &Node,
    path: &str,
    max_s: u64,
    problems: &mut Problems,
) -> Option<Duration> {
    let s = match &node.value {
        Value::Int(n) => *n as f64,
        Value::Float(x) => *x,
        other => {
            problems.add(
                node.loc,
                path,
                format!("expected a number of seconds, found {}", other.kind()),
            );
            return None;
        }
    };
    if !(s > 0.0 && s <= max_s as f64) {
        problems.add(
            node.loc,
            path,
            format!("{s} s is out of range (more than 0, at most {max_s})"),
        );
        return None;
    }
    Some(Duration::from_secs_f64(s))
}

pub(crate) fn string(node: &Node, path: &str, problems: &mut Problems) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        other => {
            problems.add(
                node.loc,
                path,
                format!("expected a string, found {}", other.kind()),
            );
            None
        }
    }
}

/// A regular expression: reported where it is when it does not compile.
pub(crate) fn pattern(node: &Node, path: &str, p: &mut Problems) -> Option<Regex> {
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

pub(crate) fn boolean(node: &Node, path: &str, problems: &mut Problems) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        other => {
            problems.add(
                node.loc,
                path,
                format!("expected true or false, found {}", other.kind()),
            );
            None
        }
    }
}

/// The items of a list, each with its path (`path[i]`).
pub(crate) fn items<'n>(
    node: &'n Node,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<(String, &'n Node)>> {
    match &node.value {
        Value::Seq(items) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| (index(path, i), n))
                .collect(),
        ),
        other => {
            problems.add(
                node.loc,
                path,
                format!("expected a list, found {}", other.kind()),
            );
            None
        }
    }
}

/// A list of strings, each with its node (to locate what a caller finds wrong with it);
/// `None`, with every item that is not a string reported, unless all are strings.
pub(crate) fn string_items<'n>(
    node: &'n Node,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<(String, &'n Node)>> {
    let mut all = true;
    let mut out = Vec::new();
    for (item_path, n) in items(node, path, problems)? {
        match string(n, &item_path, problems) {
            Some(s) => out.push((s, n)),
            None => all = false,
        }
    }
    all.then_some(out)
}

/// One word out of a fixed set.
pub(crate) fn one_of<T: Copy>(
    node: &Node,
    path: &str,
    choices: &[(&str, T)],
    problems: &mut Problems,
) -> Option<T> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    match &node.value {
        Value::Str(s) => match choices.iter().find(|(n, _)| n == s) {
            Some((_, v)) => Some(*v),
            None => {
                problems.add(
                    node.loc,
                    path,
                    format!("`{}` is not one of {}", excerpt(s), list(&names)),
                );
                None
            }
        },
        other => {
            problems.add(
                node.loc,
                path,
                format!("expected one of {}, found {}", list(&names), other.kind()),
            );
            None
        }
    }
}

/// A tagged item: a bare word (`kmsg`) or a mapping with one key (`trace: {events: [...]}`).
/// Returns the tag, where it was written, and its settings (absent for a bare word).
pub(crate) fn tagged<'n>(
    node: &'n Node,
    path: &str,
    tags: &[&str],
    problems: &mut Problems,
) -> Option<(String, Loc, Option<&'n Node>)> {
    let (tag, loc, settings) = match &node.value {
        Value::Str(s) => (s.clone(), node.loc, None),
        Value::Map(entries) if entries.len() == 1 => {
            let (key, value) = &entries[0];
            (key.name.clone(), key.loc, Some(value))
        }
        Value::Map(entries) => {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
            problems.add(
                node.loc,
                path,
                format!(
                    "expected exactly one of {}, found {} keys: {}",
                    list(tags),
                    keys.len(),
                    list(&keys)
                ),
            );
            return None;
        }
        other => {
            problems.add(
                node.loc,
                path,
                format!("expected one of {}, found {}", list(tags), other.kind()),
            );
            return None;
        }
    };
    if !tags.contains(&tag.as_str()) {
        problems.add(
            loc,
            path,
            format!("`{}` is not one of {}", excerpt(&tag), list(tags)),
        );
        return None;
    }
    Some((tag, loc, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::yaml::parse;
    use std::path::Path;

    fn first_value(text: &str) -> Node {
        match parse(text).unwrap().value {
            Value::Map(mut e) => e.remove(0).1,
            _ => unreachable!(),
        }
    }

    fn messages(p: Problems) -> Vec<String> {
        p.into_vec().into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn numbers_accept_yaml_integers_and_explain_everything_else() {
        let mut p = Problems::new(Path::new("s.yaml"));
        assert_eq!(number(&first_value("x: 0x1f\n"), "x", &mut p), Some(0x1f));
        assert_eq!(number(&first_value("x: 31\n"), "x", &mut p), Some(31));
        assert_eq!(number(&first_value("x: 0o17\n"), "x", &mut p), Some(0o17));
        assert_eq!(number(&first_value("x: 0b101\n"), "x", &mut p), Some(5));
        assert!(p.is_empty());
        assert_eq!(number(&first_value("x: 017\n"), "x", &mut p), None);
        assert_eq!(number(&first_value("x: \"0x10\"\n"), "x", &mut p), None);
        assert_eq!(number(&first_value("x: -3\n"), "x", &mut p), None);
        assert_eq!(number(&first_value("x: [1]\n"), "x", &mut p), None);
        assert_eq!(
            messages(p),
            [
                "s.yaml:1:4: x: `017` is ambiguous: a leading zero means octal in mce-inject files \
                 and C, decimal in YAML; write 17 (decimal) or 0o17 (octal)",
                "s.yaml:1:4: x: expected a number, found the string \"0x10\": write numbers without quotes",
                "s.yaml:1:4: x: -3 is negative: expected a whole number of 0 or more",
                "s.yaml:1:4: x: expected a number (decimal or 0x hex), found a list",
            ]
        );
    }

    #[test]
    fn numbers_too_large_for_64_bits_say_so() {
        let mut p = Problems::new(Path::new("s.yaml"));
        for text in [
            "x: 0x10000000000000000\n",
            "x: 18446744073709551616\n",
            "x: \"0x10000000000000000\"\n",
        ] {
            assert_eq!(number(&first_value(text), "x", &mut p), None, "{text}");
        }
        assert_eq!(
            messages(p),
            vec![
                "s.yaml:1:4: x: the number does not fit in 64 bits (at most 0xffffffffffffffff)";
                3
            ]
        );
    }

    #[test]
    fn unknown_and_missing_keys_are_all_reported() {
        let root = parse("a: 1\nbogus: 2\nworse: 3\n").unwrap();
        let mut p = Problems::new(Path::new("s.yaml"));
        let mut fields = Fields::new(&root, "top", &["a", "b"], &mut p).unwrap();
        assert!(fields.take("a").is_some());
        assert!(fields.require("b", "the b", &mut p).is_none());
        fields.finish(&mut p);
        assert_eq!(
            messages(p),
            [
                "s.yaml:1:1: top: missing `b` (the b)",
                "s.yaml:2:1: top.bogus: unknown key (valid here: `a`, `b`)",
                "s.yaml:3:1: top.worse: unknown key (valid here: `a`, `b`)",
            ]
        );
    }

    #[test]
    fn a_tagged_item_is_a_word_or_a_single_key_mapping() {
        let mut p = Problems::new(Path::new("s.yaml"));
        let word = first_value("x: kmsg\n");
        assert_eq!(
            tagged(&word, "x", &["kmsg"], &mut p).map(|t| t.0),
            Some("kmsg".into())
        );
        let map = first_value("x: {trace: {events: []}}\n");
        let (tag, _, settings) = tagged(&map, "x", &["trace"], &mut p).unwrap();
        assert_eq!(tag, "trace");
        assert!(settings.is_some());
        assert!(p.is_empty());
        assert!(tagged(&first_value("x: {a: 1, b: 2}\n"), "x", &["a", "b"], &mut p).is_none());
        assert_eq!(
            messages(p),
            ["s.yaml:1:4: x: expected exactly one of `a`, `b`, found 2 keys: `a`, `b`"]
        );
    }
}
