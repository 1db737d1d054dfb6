//! `rasdrill diff`: two real runs of stand-in scenarios, compared in the terminal and as an HTML
//! page that a real headless browser (Debian's chromium) loads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{rasdrill, text, Running};

/// The shipped stand-in tree, and two scenarios on it: `edac` (the same on both sides) and
/// `decode`, whose command collector prints what a decoder would, `line` differing per side.
fn suite(dir: &Path, line: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenarios = dir.join("scenarios");
    fs::create_dir_all(&scenarios).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(repo.join("scenarios/trees"))
        .arg(&scenarios)
        .status()
        .unwrap();
    assert!(copied.success());
    let edac = fs::read_to_string(repo.join("scenarios/local-amd64-edac.yaml")).unwrap();
    fs::write(
        scenarios.join("edac.yaml"),
        edac.replace("name: local-amd64-edac", "name: edac"),
    )
    .unwrap();
    fs::write(
        scenarios.join("decode.yaml"),
        format!(
            "name: decode\ndescription: what a decoder said\n\
             target: {{local: {{root: trees/amd64-edac}}}}\n\
             collectors:\n  - command:\n      name: said\n      \
             collect: [printf, '%s\\n', 'Corrected error, no action required.', '{line}']\n\
             steps:\n  - sleep_ms: 1\n"
        ),
    )
    .unwrap();
    scenarios
}

/// `rasdrill run --accept` of a suite into its own golden directory; the JSON report's path.
fn run(dir: &Path, line: &str) -> PathBuf {
    let scenarios = suite(dir, line);
    let json = dir.join("report.json");
    rasdrill()
        .arg("run")
        .arg(&scenarios)
        .arg("--golden")
        .arg(dir.join("golden"))
        .arg("--accept")
        .arg("--json")
        .arg(&json)
        .env_remove("CI")
        .assert()
        .success();
    json
}

#[test]
fn two_runs_diff_in_the_terminal_and_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let base = run(
        &tmp.path().join("base"),
        "MC4 Error (node 0): DRAM ECC error <detected> on the NB.",
    );
    let new = run(
        &tmp.path().join("new"),
        "MC4 Error (node 1): DRAM ECC error <detected> on the NB.",
    );

    // The same run twice: nothing moved.
    let same = rasdrill()
        .arg("diff")
        .arg(&base)
        .arg(&base)
        .assert()
        .success();
    assert_eq!(
        text(&same.get_output().stdout),
        "0 of 2 scenarios changed\n"
    );

    let html = tmp.path().join("diff.html");
    let out = rasdrill()
        .arg("diff")
        .arg(&base)
        .arg(&new)
        .arg("--html")
        .arg(&html)
        .assert()
        .code(3);
    let stdout = text(&out.get_output().stdout);
    let stderr = text(&out.get_output().stderr);
    assert!(
        stdout.contains(
            "-MC4 Error (node 0): DRAM ECC error <detected> on the NB.\n\
                         +MC4 Error (node 1): DRAM ECC error <detected> on the NB.\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("1 of 2 scenarios changed: decode (said)\n"),
        "{stdout}"
    );
    assert_eq!(stderr, "error: 1 of 2 scenarios changed: decode (said)\n");

    // A real browser parses the page: the changed scenario has its section and its two sides.
    let dom = dump_dom(&html, tmp.path());
    assert!(
        dom.contains(
            "<section class=\"scenario changed\" id=\"s-decode\" data-scenario=\"decode\">"
        ),
        "{dom}"
    );
    assert!(!dom.contains("data-scenario=\"edac\""), "{dom}");
    assert!(dom.contains("<li>edac</li>"), "{dom}");
    assert!(
        dom.contains(
            "<td class=\"del\">MC4 Error (node 0): DRAM ECC error &lt;detected&gt; on the NB.</td>"
        ),
        "{dom}"
    );
    assert!(
        dom.contains(
            "<td class=\"ins\">MC4 Error (node 1): DRAM ECC error &lt;detected&gt; on the NB.</td>"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("<p id=\"summary\">1 of 2 scenarios changed: decode (said)</p>"),
        "{dom}"
    );
}

#[test]
fn a_file_that_is_not_a_report_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    fs::write(&bad, "{}").unwrap();
    let out = rasdrill().arg("diff").arg(&bad).arg(&bad).assert().code(2);
    let stderr = text(&out.get_output().stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {} is not a rasdrill JSON report: missing field `scenarios`",
            bad.display()
        )),
        "{stderr}"
    );
}

/// The DOM Debian's chromium builds from a local file (installed by ci/install; headless, no
/// network, a fresh profile).
fn dump_dom(page: &Path, scratch: &Path) -> String {
    let profile = scratch.join("chromium-profile");
    let child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium (ci/install installs it): {e}"));
    let done = Running::new(child).finish_within(Duration::from_secs(90));
    assert_eq!(done.code, Some(0), "chromium failed: {}", done.stderr);
    done.stdout
}
