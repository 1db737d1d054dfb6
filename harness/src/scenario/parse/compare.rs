//! `compare`: which collectors' output is compared with golden files.

use super::collectors::known_collectors;
use super::*;

pub(super) fn compare(node: &Node, collectors: &[String], p: &mut Problems) -> Option<Vec<String>> {
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
