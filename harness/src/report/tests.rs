use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn result(name: &str, failure: Option<Failure>, goldens: Vec<GoldenResult>) -> ScenarioResult {
    ScenarioResult {
        name: name.into(),
        file: PathBuf::from(format!("scenarios/{name}.yaml")),
        description: format!("what {name} rehearses"),
        kernel_line: Some("6.1".into()),
        failure,
        goldens,
        oracle: None,
        duration: ms(6200),
        boot: ms(2400),
    }
}

fn matched(collector: &str) -> GoldenResult {
    GoldenResult {
        collector: collector.into(),
        verdict: Verdict::Matched,
        output: format!("what {collector} said"),
        kernel: "6.1.0-56-amd64".into(),
    }
}

const DIFF: &str = "first difference at golden/amd-ce__kmsg.snap:13\n\
                    --- golden/amd-ce__kmsg.snap\n+++ this run\n@@ -1 +1 @@\n\
                    -MC4 Error (node 0): <DRAM> & \"ECC\"\n+MC4 Error (node 1): <DRAM> & \"ECC\"\n";

fn sample() -> RunReport {
    RunReport {
        interrupted: None,
        results: vec![
            result("amd-ce", None, vec![matched("kmsg"), matched("trace")]),
            result(
                "amd-ce-changed",
                None,
                vec![
                    matched("trace"),
                    GoldenResult {
                        collector: "kmsg".into(),
                        verdict: Verdict::Mismatch {
                            golden: "golden/amd-ce__kmsg.snap".into(),
                            new: Some("golden/amd-ce__kmsg.snap.new".into()),
                            diff: DIFF.into(),
                        },
                        output: "MC4 Error (node 1): <DRAM> & \"ECC\"".into(),
                        kernel: "6.1.0-56-amd64".into(),
                    },
                ],
            ),
            result(
                "skx-panic",
                Some(Failure {
                    kind: FailureKind::Failed,
                    message: "steps[2] (line 14): expect a panic within 5 s: no panic after 5.00 s"
                        .into(),
                    details: Some("last console lines:\n[   3.1] \u{1b}[0mok".into()),
                }),
                vec![],
            ),
            result(
                "qemu-gone",
                Some(Failure {
                    kind: FailureKind::Infrastructure,
                    message: "QEMU exited with status 1 before the guest was ready (after 0.41 s)"
                        .into(),
                    details: None,
                }),
                vec![],
            ),
        ],
        duration: ms(25_000),
    }
}

#[test]
fn the_worst_outcome_decides_the_exit_code() {
    let mut report = sample();
    assert_eq!(report.exit_code(), Code::Infrastructure);
    report.results.pop();
    assert_eq!(report.exit_code(), Code::Failed);
    report.results.pop();
    assert_eq!(report.exit_code(), Code::GoldenMismatch);
    report.results.pop();
    assert_eq!(report.exit_code(), Code::Success);
    report.results.push(result(
        "refused",
        Some(Failure {
            kind: FailureKind::BadInput,
            message: "refused".into(),
            details: None,
        }),
        vec![],
    ));
    assert_eq!(report.exit_code(), Code::BadInput);
    let missing = GoldenResult {
        collector: "kmsg".into(),
        verdict: Verdict::Missing {
            golden: "g".into(),
            new: None,
        },
        output: String::new(),
        kernel: String::new(),
    };
    assert_eq!(
        result("x", None, vec![missing]).outcome(),
        Outcome::GoldenMismatch
    );
}

#[test]
fn summary_table() {
    insta::assert_snapshot!(sample().summary(), @r"
    scenario                    result            duration  boot
    amd-ce::kernel-6.1          passed              6.20 s   39%
    amd-ce-changed::kernel-6.1  golden-mismatch     6.20 s   39%
    skx-panic::kernel-6.1       failed              6.20 s   39%
    qemu-gone::kernel-6.1       infrastructure      6.20 s   39%
    4 scenarios in 25.00 s (booting 9.60 s): 1 passed, 1 failed, 1 golden-mismatch, 1 infrastructure
    ");
}

#[test]
fn a_result_is_named_with_its_kernel_line_and_a_local_one_without() {
    let mut r = result("amd-ce", None, Vec::new());
    assert_eq!(r.name_on_line(), "amd-ce::kernel-6.1");
    r.kernel_line = None;
    assert_eq!(r.name_on_line(), "amd-ce");
    let mut report = RunReport::default();
    report.append(sample());
    report.append(RunReport {
        results: vec![r],
        duration: ms(1000),
        interrupted: None,
    });
    assert_eq!(report.results.len(), 5);
    assert_eq!(report.duration, sample().duration + ms(1000));
}

#[test]
fn junit_xml() {
    insta::assert_snapshot!(sample().junit());
}

#[test]
fn json_report() {
    let json = serde_json::to_string_pretty(&sample().json()).unwrap();
    insta::assert_snapshot!(json);
}

#[test]
fn xml_escaping_keeps_the_file_well_formed() {
    assert_eq!(junit::escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    assert_eq!(junit::escape("tab\tline\nret\r"), "tab\tline\nret&#13;");
    assert_eq!(
        junit::escape("esc\u{1b}[0m nul\u{0}"),
        "esc\\u{1b}[0m nul\\u{0}"
    );
    assert_eq!(junit::escape("é ✓"), "é ✓");
}

#[test]
fn progress_lines() {
    let r = &sample().results;
    let events = vec![
        Event::RunStarted { scenarios: 2 },
        Event::ScenarioStarted {
            index: 1,
            total: 2,
            name: "amd-ce-changed".into(),
            machine: "EPYC,-hypervisor,family=21,model=2".into(),
        },
        Event::Booted { elapsed: ms(2410) },
        Event::StepStarted {
            index: 0,
            label: "steps[0] (line 15): inject via qemu: cpu 1 bank 4 status 0x9c7d410092080813"
                .into(),
        },
        Event::StepFinished {
            index: 0,
            elapsed: ms(3),
            error: None,
        },
        Event::GoldenChecked {
            collector: "kmsg".into(),
            verdict: r[1].goldens[1].verdict.clone(),
        },
        Event::ScenarioFinished {
            result: r[1].clone(),
        },
        Event::ScenarioStarted {
            index: 2,
            total: 2,
            name: "skx-panic".into(),
            machine: "Skylake-Server".into(),
        },
        Event::StepFinished {
            index: 2,
            elapsed: ms(5000),
            error: Some("no panic".into()),
        },
        Event::ScenarioFinished {
            result: r[2].clone(),
        },
        Event::RunFinished {
            elapsed: ms(12_400),
        },
    ];
    let mut progress = Progress::new(Vec::new());
    let mut kept: Vec<Event> = Vec::new();
    for e in &events {
        progress.event(e);
        kept.event(e);
    }
    assert_eq!(kept, events);
    insta::assert_snapshot!(String::from_utf8(progress.into_inner()).unwrap());
}

#[test]
fn reports_are_written_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let report = sample();
    report.write_junit(&dir.path().join("junit.xml")).unwrap();
    report.write_json(&dir.path().join("run.json")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("junit.xml")).unwrap(),
        report.junit()
    );
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(back, report.json());
    assert_eq!(back["exit_code"], 4);
    assert_eq!(back["scenarios"][1]["goldens"][1]["verdict"], "mismatch");
}

#[test]
fn oracle_findings_fail_the_scenario_and_are_reported() {
    use crate::oracle::{compare_known, Decoder, Field, Finding, Kind, KnownFinding};
    let finding = Finding {
        collector: "kmsg".into(),
        decoder: Decoder::EdacMceAmd,
        field: Field::Class,
        kind: Kind::WrongDecode,
        injected: "code 0x0090: memory controller error (MMM=1 CCCC=0)".into(),
        claimed: "generic cache hierarchy error (LL=0)".into(),
        evidence: "[Hardware Error]: cache level: L0".into(),
    };
    let mut r = result("amd-mc", None, vec![matched("kmsg")]);
    r.oracle = Some(compare_known(vec![finding.clone()], &[], Vec::new()));
    assert_eq!(r.outcome(), Outcome::Findings);
    let report = RunReport {
        results: vec![r.clone()],
        duration: ms(1000),
        interrupted: None,
    };
    assert_eq!(report.exit_code(), Code::Failed);
    let junit = report.junit();
    assert!(
        junit.contains("type=\"findings\" message=\"oracle: 1 finding (0 known, 1 new)\""),
        "{junit}"
    );
    assert!(
        junit.contains("new finding kmsg/edac-mce-amd/class (wrong decode)"),
        "{junit}"
    );
    let json = report.json();
    let oracle = &json["scenarios"][0]["oracle"];
    assert_eq!(oracle["new"][0]["field"], "class");
    assert_eq!(
        oracle["new"][0]["claimed"],
        "generic cache hierarchy error (LL=0)"
    );
    assert_eq!(json["counts"]["findings"], 1);

    // Listed as known: the scenario passes, the finding is still in the report.
    let known = KnownFinding {
        key: finding.key(),
        why: "edac_mce_amd reads an Intel memory-controller code as a cache level".into(),
    };
    r.oracle = Some(compare_known(
        vec![finding],
        std::slice::from_ref(&known),
        Vec::new(),
    ));
    assert_eq!(r.outcome(), Outcome::Passed);
    // Gone while listed: reported, and the scenario fails until the list is updated.
    r.oracle = Some(compare_known(Vec::new(), &[known], Vec::new()));
    assert_eq!(r.outcome(), Outcome::Findings);
    assert!(r
        .oracle
        .as_ref()
        .unwrap()
        .details()
        .contains("did not appear"));
}
