//! `--help` documents examples and exit codes; usage errors exit 2.

use predicates::prelude::*;

use crate::support::{rasdrill, stdout_of};

/// Help text, wrapped at a fixed width (clap reads COLUMNS when stdout is not a terminal).
fn help(args: &[&str]) -> String {
    stdout_of(rasdrill().args(args).env("COLUMNS", "100"))
}

#[test]
fn top_level_help_lists_commands_examples_and_exit_codes() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn inject_help_has_examples_and_the_safety_rules() {
    insta::assert_snapshot!(help(&["inject", "--help"]));
}

#[test]
fn records_help() {
    insta::assert_snapshot!(help(&["records", "explain", "--help"]));
    insta::assert_snapshot!(help(&["records", "dump", "--help"]));
}

#[test]
fn usage_errors_exit_2() {
    rasdrill()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
    rasdrill()
        .args(["inject", "--flags", "hardware"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`hardware` is not an injection type: expected sw, hw, df or th",
        ));
    rasdrill().args(["records", "explain"]).assert().code(2);
    // A known finding's key is checked before anything is generated or booted.
    for (key, why) in [
        (
            "kmsg/edac/class",
            "--known kmsg/edac/class: `edac` is not a decoder",
        ),
        (
            "rasdaemon/rasdaemon/class",
            "`rasdaemon` is not a collector of this scenario (collectors: kmsg, trace)",
        ),
    ] {
        rasdrill()
            .args(["fuzz", "--seed", "1", "--list", "--known", key])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(why));
    }
    rasdrill()
        .args(["fuzz", "--seed", "1", "--count", "2", "--list"])
        .args(["--known", "kmsg/edac-mce-amd/class"])
        .assert()
        .success();
}
