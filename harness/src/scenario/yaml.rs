//! A scenario file as a tree of YAML nodes that remember where they were written.
//!
//! serde-saphyr parses the text (syntax, anchors, duplicate keys, resource limits) and its
//! `Spanned<T>` gives every node its line and column. The schema is then read from this tree by
//! hand (see `parse.rs`) rather than by `#[derive(Deserialize)]`, because serde stops at the
//! first error and a scenario author should see every problem of a file at once.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A position in a file, 1-based. Line 0 means "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Loc {
    pub line: u64,
    pub column: u64,
}

impl Loc {
    fn of(location: &serde_saphyr::Location) -> Self {
        Loc {
            line: location.line(),
            column: location.column(),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(u64),
    NegInt(i64),
    Float(f64),
    /// Quoted scalars, and plain ones that are neither numbers nor booleans (`0123` included:
    /// a leading zero is ambiguous, see `parse.rs`).
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub loc: Loc,
    pub name: String,
}

impl Value {
    /// What this kind of value is called in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::NegInt(_) => "a number",
            Value::Float(_) => "a fractional number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A file that is not YAML at all: where, and serde-saphyr's words for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
}

/// Parses one YAML document into a tree of located nodes.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let options = serde_saphyr::options! {
        // `yes`/`on` stay strings: only true/false are booleans.
        strict_booleans: true,
        // `0123` stays a string so it can be rejected as ambiguous (octal or decimal?).
        leading_zero_numbers_as_strings: true,
        reject_unsupported_tags: true,
        // We print our own one-line errors.
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        use serde_saphyr::MessageFormatter;
        let inner = e.without_snippet();
        let loc = e.location().map(|l| Loc::of(&l)).unwrap_or_default();
        let text = match inner {
            serde_saphyr::Error::Budget { breach, .. } => budget_message(breach),
            other => serde_saphyr::DefaultMessageFormatter
                .format_message(other)
                .into_owned(),
        };
        // Control characters would break the one-line error: show them escaped.
        let message = text
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        SyntaxError { loc, message }
    })
}

/// A resource limit the file broke, in words (serde-saphyr prints Rust debug text).
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let what = match breach {
        B::Nodes { nodes } => format!("more than {} values, lists and mappings", nodes - 1),
        B::Events { events } => format!("more than {} YAML events", events - 1),
        B::Depth { depth } => format!("lists and mappings nested more than {} deep", depth - 1),
        B::Aliases { aliases } => format!("more than {} aliases (*name)", aliases - 1),
        B::Anchors { anchors } => format!("more than {} anchors (&name)", anchors - 1),
        B::ScalarBytes { total_scalar_bytes } => {
            format!("{total_scalar_bytes} bytes of values or more")
        }
        B::Documents { documents } => format!("{documents} YAML documents or more"),
        B::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors (an alias bomb?)")
        }
        _ => "more than a scenario may hold".to_string(),
    };
    format!("the file is too large or too complex to read: {what}")
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            loc: Loc::of(&spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<String>::deserialize(deserializer)?;
        Ok(Key {
            loc: Loc::of(&spanned.referenced),
            name: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(if v >= 0 {
            Value::Int(v as u64)
        } else {
            Value::NegInt(v)
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_entries(node: &Node) -> &[(Key, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    #[test]
    fn every_node_knows_its_line_and_column() {
        let root = parse("name: x\nsteps:\n  - wait: {records: 2}\n").unwrap();
        let entries = map_entries(&root);
        assert_eq!(entries[0].0.name, "name");
        assert_eq!(entries[0].1.loc, Loc { line: 1, column: 7 });
        let Value::Seq(steps) = &entries[1].1.value else {
            panic!("steps is a list")
        };
        let wait = &map_entries(&steps[0])[0];
        assert_eq!(
            (wait.0.name.as_str(), wait.0.loc),
            ("wait", Loc { line: 3, column: 5 })
        );
        let records = &map_entries(&wait.1)[0];
        assert_eq!(records.1.value, Value::Int(2));
        assert_eq!(
            records.1.loc,
            Loc {
                line: 3,
                column: 21
            }
        );
    }

    #[test]
    fn numbers_keep_their_full_64_bits_and_ambiguous_ones_stay_text() {
        let root = parse("a: 0x9c7d410092080813\nb: 0123\nc: -1\nd: yes\ne: \"0x10\"\n").unwrap();
        let values: Vec<&Value> = map_entries(&root).iter().map(|(_, v)| &v.value).collect();
        assert_eq!(
            values,
            [
                &Value::Int(0x9c7d_4100_9208_0813),
                &Value::Str("0123".into()),
                &Value::NegInt(-1),
                &Value::Str("yes".into()),
                &Value::Str("0x10".into()),
            ]
        );
    }

    #[test]
    fn syntax_errors_carry_a_location_and_no_snippet() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.loc, Loc { line: 2, column: 1 });
        assert!(
            err.message.starts_with("duplicate mapping key: a"),
            "{}",
            err.message
        );
        assert!(!err.message.contains('\n'));

        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.loc.line, 2);
    }

    #[test]
    fn a_broken_limit_is_said_in_words_not_rust_debug_text() {
        let text = format!("a: [{}]\n", vec!["1"; 300_000].join(","));
        let err = parse(&text).unwrap_err();
        assert!(
            err.message
                .starts_with("the file is too large or too complex to read: more than "),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with(" values, lists and mappings"),
            "{}",
            err.message
        );
        assert!(!err.message.contains('{'), "{}", err.message);
    }
}
