//! `known_findings`: the oracle findings a scenario documents (see `oracle::known`).

use super::*;
use crate::oracle::known::valid_key;
use crate::oracle::KnownFinding;

const KEYS: &[&str] = &["finding", "why"];

pub(super) fn known_findings(
    node: &Node,
    collectors: &[String],
    p: &mut Problems,
) -> Option<Vec<KnownFinding>> {
    let mut ok = true;
    let mut out: Vec<KnownFinding> = Vec::new();
    for (path, n) in items(node, "known_findings", p)? {
        let Some(mut f) = Fields::new(n, &path, KEYS, p) else {
            ok = false;
            continue;
        };
        let key = f
            .require(
                "finding",
                "`collector/decoder/field`, as the report names it",
                p,
            )
            .and_then(|k| Some((k, string(k, &f.child("finding"), p)?)));
        let why = f
            .require("why", "one line saying why the finding is there", p)
            .and_then(|w| string(w, &f.child("why"), p));
        let path_of_key = f.child("finding");
        f.finish(p);
        let (Some((node, key)), Some(why)) = (key, why) else {
            ok = false;
            continue;
        };
        if let Err(message) = valid_key(&key, collectors) {
            p.add(node.loc, &path_of_key, message);
            ok = false;
        } else if out.iter().any(|k| k.key == key) {
            p.add(node.loc, &path_of_key, format!("`{key}` is listed twice"));
            ok = false;
        }
        out.push(KnownFinding { key, why });
    }
    ok.then_some(out)
}
