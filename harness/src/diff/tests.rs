use std::path::Path;

use super::*;

/// A scenario: its name, its failure if any, and (collector, output) pairs.
type Scenario<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);

/// A JSON report as `rasdrill run --json` writes it, cut to what a diff reads.
fn report(scenarios: &[Scenario], kernel: &str) -> String {
    let scenarios: Vec<serde_json::Value> = scenarios
        .iter()
        .map(|(name, failure, goldens)| {
            serde_json::json!({
                "name": name,
                "result": if failure.is_some() { "failed" } else { "passed" },
                "failure": failure.map(|m| serde_json::json!({"message": m, "details": null})),
                "goldens": goldens.iter().map(|(c, out)| serde_json::json!({
                    "collector": c, "verdict": "matched", "golden": null, "new": null,
                    "diff": null, "kernel": kernel, "output": out,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({"result": "passed", "scenarios": scenarios}).to_string()
}

fn side(label: &str, text: &str) -> Side {
    Side::parse(Path::new(label), text).unwrap()
}

const CE: &str = "[<TIME>] [Hardware Error]: Corrected error, no action required.\n\
                  [<TIME>] [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.";
const TRACE_61: &str = "mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, \
                        ADDR/MISC/SYND: 0000000012345000/0/0";
const TRACE_612: &str = "mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, \
                         ADDR: 0000000012345000, MISC: 0, SYND: 0";

fn pair() -> (Side, Side) {
    let base = report(
        &[
            ("dram-ce", None, &[("kmsg", CE), ("trace", TRACE_61)]),
            ("same", None, &[("kmsg", "one\ntwo")]),
            ("cec", None, &[("kmsg", CE)]),
            ("gone", None, &[("kmsg", "x")]),
            ("broken", Some("no panic after 5.00 s"), &[]),
        ],
        "6.1.0-57-amd64",
    );
    let new = report(
        &[
            ("dram-ce", None, &[("kmsg", CE), ("trace", TRACE_612)]),
            ("same", None, &[("kmsg", "one\ntwo")]),
            (
                "cec",
                Some("steps[1]: wait for kmsg: no match after 5.00 s"),
                &[],
            ),
            ("broken", Some("no panic after 5.00 s"), &[]),
            ("added", None, &[("trace", "y")]),
        ],
        "6.12.57+deb12-amd64",
    );
    (side("base.json", &base), side("new.json", &new))
}

#[test]
fn each_scenario_is_matched_by_name_and_classified() {
    let (base, new) = pair();
    let c = compare(&base, &new);
    let got: Vec<(&str, String)> = c
        .scenarios
        .iter()
        .map(|s| (s.name.as_str(), s.what()))
        .collect();
    assert_eq!(
        got,
        [
            ("dram-ce", "trace".to_string()),
            ("same", "same".into()),
            ("cec", "failed on new".into()),
            ("gone", "only in base".into()),
            ("broken", "failed on both sides".into()),
            ("added", "only in new".into()),
        ]
    );
    assert_eq!(
        c.summary(),
        "4 of 6 scenarios changed: dram-ce (trace), cec (failed on new), gone (only in base), \
         added (only in new); not compared, failed on both sides: broken"
    );
    assert_eq!(c.exit_code(), Code::GoldenMismatch);
}

#[test]
fn the_text_shows_the_moved_lines_with_their_kernels() {
    let (base, new) = pair();
    let text = compare(&base, &new).text();
    let first = text.split("\n\n").next().unwrap();
    insta::assert_snapshot!(first, @r"
    == dram-ce: trace
    --- base.json: trace (6.1.0-57-amd64)
    +++ new.json: trace (6.12.57+deb12-amd64)
    @@ -1 +1 @@
    -mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, ADDR/MISC/SYND: 0000000012345000/0/0
    +mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, ADDR: 0000000012345000, MISC: 0, SYND: 0
    ");
    assert!(
        text.contains("failed on new: steps[1]: wait for kmsg: no match after 5.00 s\n"),
        "{text}"
    );
    assert!(text.ends_with(&format!("{}\n", compare(&base, &new).summary())));
}

#[test]
fn identical_runs_exit_0_and_say_so() {
    let (base, _) = pair();
    let mut only_good = base.clone();
    only_good.scenarios.retain(|s| s.failure.is_none());
    let c = compare(&only_good, &only_good);
    assert_eq!(c.summary(), "0 of 4 scenarios changed");
    assert_eq!(c.exit_code(), Code::Success);
    assert_eq!(c.text(), "0 of 4 scenarios changed\n");
    // Nothing moved but one scenario could not be compared: a failure, not a success.
    assert_eq!(compare(&base, &base).exit_code(), Code::Failed);
}

#[test]
fn a_report_without_outputs_or_not_a_report_is_refused_by_name() {
    let old = r#"{"scenarios":[{"name":"a","failure":null,"goldens":[{"collector":"kmsg"}]}]}"#;
    let err = Side::parse(Path::new("old.json"), old).unwrap_err();
    assert_eq!(
        err.to_string(),
        "old.json: scenario a, collector kmsg has no `output` (the report was written by an \
         older rasdrill: run the scenarios again)"
    );
    let err = Side::parse(Path::new("x.json"), "[1, 2]").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("x.json is not a rasdrill JSON report: "),
        "{err}"
    );
}

#[test]
fn the_html_page_pairs_changed_lines_and_escapes_everything() {
    let (base, new) = pair();
    let mut c = compare(&base, &new);
    c.base = "<base> & \"co\"".into();
    let page = html(&c);
    assert!(page.starts_with("<!DOCTYPE html>\n"));
    assert!(page.contains("&lt;base&gt; &amp; &quot;co&quot;"), "{page}");
    assert!(!page.contains("<base>"));
    // Changed scenarios get a section each; unchanged ones are listed only.
    for name in ["dram-ce", "cec", "gone", "added"] {
        assert!(
            page.contains(&format!("data-scenario=\"{name}\"")),
            "{name}: {page}"
        );
    }
    assert!(!page.contains("data-scenario=\"same\""));
    assert!(page.contains("<li>same</li>"));
    // The changed trace line: base on the left, new on the right, in one row.
    let row = page.lines().find(|l| l.contains("ADDR/MISC/SYND")).unwrap();
    assert!(
        row.starts_with("<tr><td class=\"n\">1</td><td class=\"del\">"),
        "{row}"
    );
    assert!(row.contains("<td class=\"ins\">mce_record: CPU: 0, MCGc/s: 100010a/0, MC4: 9c7d410092080813, ADDR: 0000000012345000"), "{row}");
}

/// A report's scenario `name` given the oracle verdict `oracle` (as report/json.rs writes it).
fn with_oracle(report: &str, name: &str, oracle: serde_json::Value) -> String {
    let mut v: serde_json::Value = serde_json::from_str(report).unwrap();
    for s in v["scenarios"].as_array_mut().unwrap() {
        if s["name"] == name {
            s["oracle"] = oracle.clone();
        }
    }
    v.to_string()
}

fn finding(claimed: &str) -> serde_json::Value {
    serde_json::json!({
        "collector": "kmsg", "decoder": "edac-mce-amd", "field": "class",
        "kind": "missing-decode", "injected": "code 0x0080: memory controller error",
        "claimed": claimed, "evidence": "[Hardware Error]: cache level: RESV, tx: INSN",
    })
}

/// The oracle's findings stand beside the outputs: in the page for every scenario that has
/// them, and in the text when a finding is on one side only (the change made or cured it).
#[test]
fn oracle_findings_are_shown_beside_the_outputs() {
    let plain = report(&[("mc", None, &[("kmsg", CE)])], "6.1.0-57-amd64");
    let known = with_oracle(
        &plain,
        "mc",
        serde_json::json!({"known": [finding("no class named (LL=0 TT=0)")], "new": [],
                           "vanished": [], "excused": []}),
    );
    let cured = with_oracle(
        &plain,
        "mc",
        serde_json::json!({"known": [], "new": [],
                           "vanished": [{"key": "kmsg/edac-mce-amd/class", "why": "x"}],
                           "excused": []}),
    );
    let c = compare(&side("base.json", &known), &side("new.json", &cured));
    let s = &c.scenarios[0];
    assert_eq!(s.what(), "same", "findings do not make outputs move");
    assert_eq!(s.findings.len(), 2);
    assert_eq!(
        (s.findings[0].base, s.findings[0].new),
        (Some("known"), None)
    );
    assert_eq!(
        (s.findings[1].base, s.findings[1].new),
        (None, Some("vanished"))
    );
    let text = c.text();
    assert!(
        text.contains(
            "mc: oracle finding only in base: kmsg/edac-mce-amd/class: injected code 0x0080: \
             memory controller error, claimed no class named (LL=0 TT=0)\n"
        ),
        "{text}"
    );
    let page = html(&c);
    assert!(
        page.contains("<h2 id=\"findings\">Oracle findings</h2>"),
        "{page}"
    );
    let row = page
        .lines()
        .find(|l| l.contains("claimed no class named"))
        .unwrap();
    assert_eq!(
        row,
        "<tr class=\"moved\"><td>mc</td><td>kmsg/edac-mce-amd/class: injected code 0x0080: \
         memory controller error, claimed no class named (LL=0 TT=0)</td><td>known</td><td>-</td></tr>"
    );
    // Reports with no oracle verdict (nothing injected) say so.
    let none = html(&compare(&side("a.json", &plain), &side("b.json", &plain)));
    assert!(none.contains("<p>none on either side</p>"), "{none}");
}
