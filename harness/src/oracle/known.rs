//! Known findings: a scenario lists the findings it documents, so CI stays green while they
//! stay documented. A finding not listed fails the scenario, and so does a listed one that no
//! longer appears (the decoder changed: the list must say so).

use serde::Serialize;

use super::{Decoder, Field, Finding};

/// One documented finding: its key (`collector/decoder/field`) and why it is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnownFinding {
    pub key: String,
    pub why: String,
}

/// A scenario's findings sorted against its list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Findings the scenario lists.
    pub known: Vec<Finding>,
    /// Findings it does not list.
    pub new: Vec<Finding>,
    /// Listed findings that did not appear.
    pub vanished: Vec<KnownFinding>,
    /// Records not decoded for a named reason (CEC, panic).
    pub excused: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.new.is_empty() && self.vanished.is_empty()
    }

    /// One line for the summary: `2 findings (1 known, 1 new), 1 vanished`.
    pub fn summary(&self) -> String {
        let total = self.known.len() + self.new.len();
        let mut s = format!(
            "{total} finding{} ({} known, {} new)",
            if total == 1 { "" } else { "s" },
            self.known.len(),
            self.new.len()
        );
        if !self.vanished.is_empty() {
            s.push_str(&format!(", {} known finding(s) gone", self.vanished.len()));
        }
        s
    }

    /// Every finding and vanished entry, for a person (terminal and JUnit).
    pub fn details(&self) -> String {
        let mut out = String::new();
        for f in &self.new {
            out.push_str(&format!("new finding {f}\n"));
        }
        for k in &self.vanished {
            out.push_str(&format!(
                "known finding {} did not appear ({}): remove it from known_findings\n",
                k.key, k.why
            ));
        }
        for f in &self.known {
            out.push_str(&format!("known finding {f}\n"));
        }
        out
    }
}

pub fn compare_known(
    findings: Vec<Finding>,
    known: &[KnownFinding],
    excused: Vec<String>,
) -> Verdict {
    let mut v = Verdict {
        excused,
        ..Verdict::default()
    };
    for f in findings {
        if known.iter().any(|k| k.key == f.key()) {
            v.known.push(f);
        } else {
            v.new.push(f);
        }
    }
    v.vanished = known
        .iter()
        .filter(|k| !v.known.iter().any(|f| f.key() == k.key))
        .cloned()
        .collect();
    v
}

/// Checks a known finding's key, `collector/decoder/field`, against the collectors it may name;
/// the message says what is wrong (a scenario's `known_findings`, `rasdrill fuzz --known`).
pub fn valid_key(key: &str, collectors: &[String]) -> Result<(), String> {
    let parts: Vec<&str> = key.split('/').collect();
    let [collector, decoder, field] = parts[..] else {
        return Err(format!(
            "`{key}` is not `collector/decoder/field` (e.g. `kmsg/edac-mce-amd/class`)"
        ));
    };
    if !collectors.iter().any(|c| c == collector) {
        return Err(format!(
            "`{collector}` is not a collector of this scenario (collectors: {})",
            collectors.join(", ")
        ));
    }
    if Decoder::parse(decoder).is_none() {
        return Err(format!(
            "`{decoder}` is not a decoder (kernel-raw, edac-mce-amd, trace, rasdaemon, rasdaemon-db)"
        ));
    }
    if Field::parse(field).is_none() {
        return Err(format!(
            "`{field}` is not a field (cpu, bank, status, flag, address, misc, synd, ipid, \
             severity, class, record, count)"
        ));
    }
    Ok(())
}
