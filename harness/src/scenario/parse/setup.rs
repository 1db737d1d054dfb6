//! `setup`: modules, the machine-check poll interval, fake_panic.

use super::*;

const SETUP_KEYS: &[&str] = &["modules", "poll_interval_s", "fake_panic"];

/// The kernel's `check_interval` is in whole seconds, at least 1; 300 is its default.
const MAX_POLL_INTERVAL_S: u64 = 300;

pub(super) fn setup(node: &Node, p: &mut Problems) -> Option<Setup> {
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
