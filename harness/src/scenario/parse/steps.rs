//! `steps`: inject, wait, expect_panic and sleep_ms, in order.

use super::collectors::known_collectors;
use super::inject::inject;
use super::*;

const STEP_TAGS: &[&str] = &["inject", "wait", "expect_panic", "sleep_ms"];
const WAIT_KEYS: &[&str] = &["collector", "records", "line", "timeout_s"];
const EXPECT_PANIC_KEYS: &[&str] = &["timeout_s", "message"];

/// Waits are bounded: a scenario cannot hang a CI run for longer than this per step.
const MAX_TIMEOUT_S: u64 = 600;
const DEFAULT_TIMEOUT_S: u64 = 10;
const MAX_SLEEP_MS: u64 = 60_000;

pub(super) fn steps(node: &Node, ctx: &Ctx, p: &mut Problems) -> Option<Vec<Step>> {
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
