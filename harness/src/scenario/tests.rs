//! Scenario loading and validation, with example scenarios as fixtures.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rasdrill_inject::status::{ADDRV, EN, MISCV, UC, VAL};

use super::*;

/// The family 15h DRAM ECC example (docs/kernel-interfaces.md, "Kernel log (dmesg)"), through
/// QEMU.
const AMD_DRAM_CE: &str = r#"
name: amd-f15h-dram-ce
description: A corrected DRAM ECC error on bank 4, decoded by edac_mce_amd
machine:
  profile: amd-f15h
setup:
  modules: [mce-inject]
  poll_interval_s: 1
collectors:
  - kmsg
  - trace: {events: [mce/mce_record]}
  - rasdaemon
steps:
  - inject:
      via: qemu
      cpu: 1
      bank: 4
      status: 0x9c7d410092080813
      addr: 0x12345000
  - wait: {collector: kmsg, line: "DRAM ECC error", timeout_s: 5}
  - wait: {collector: trace, records: 1}
compare: [kmsg, trace]
"#;

/// An Intel machine, records from an mce-inject file, a command collector and a panic.
const SKX_FILE_PANIC: &str = r#"
name: skx-uc-panic
description: Two records from a file through debugfs, then a fatal error through QEMU
machine: {cpu_model: Skylake-Server, vcpus: 4, memory_mib: 512}
collectors:
  - kmsg
  - command: {name: mce-counts, collect: [cat, /proc/interrupts], stop: ["true"]}
steps:
  - inject: {via: debugfs, file: two.mce, flags: sw}
  - sleep_ms: 100
  - inject:
      via: qemu
      bank: 1
      status: {bits: [VAL, UC, EN, PCC], mca_code: 0x0150}
      mcgstatus: 0x5
  - expect_panic: {timeout_s: 5, message: "Fatal (local )?machine check"}
"#;

const TWO_RECORDS: &str =
    "CPU 3 BANK 2\nSTATUS CORRECTED 0x0010\nADDR 0x1000\n\nCPU 0 BANK 0 STATUS VAL EN\n";

/// A local target: an EDAC fake injection against a tree standing in for the hardware.
const LOCAL_EDAC: &str = r#"
name: local-edac-fake
description: The EDAC core's fake injection on a tree that stands in for mc0
target: {local: {root: tree}}
collectors: [{trace: {events: [ras/mc_event]}}]
steps:
  - inject: {via: edac, mc: 0, fake_inject: {csrow: 1, channel: 0, ue: true, count: 2}}
  - wait: {collector: trace, records: 2, timeout_s: 0.5}
"#;

/// Writes `files` into a fresh directory; returns it (kept alive by the guard).
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        if name.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::write(&path, text).unwrap();
        }
    }
    dir
}

/// Problems as text, with the temporary directory replaced so that expectations are stable.
fn rendered(invalid: &Invalid, dir: &Path) -> String {
    invalid
        .to_string()
        .replace(&format!("{}/", dir.display()), "")
}

fn invalid(name: &str, text: &str) -> String {
    from_str(Path::new(name), text).unwrap_err().to_string()
}

#[test]
fn the_amd_example_loads_with_its_defaults_filled_in() {
    let s = from_str(Path::new("scenarios/amd.yaml"), AMD_DRAM_CE).unwrap();
    assert_eq!(s.name, "amd-f15h-dram-ce");
    let m = s.machine().unwrap();
    assert_eq!(m.cpu_model, "EPYC,-hypervisor,family=21,model=2");
    assert_eq!((m.vcpus, m.memory_mib, m.vendor), (2, 256, Vendor::Amd));
    assert_eq!(s.setup.modules, ["mce-inject"]);
    assert_eq!(s.setup.poll_interval, Duration::from_secs(1));
    let names: Vec<&str> = s.collectors.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["kmsg", "trace", "rasdaemon"]);
    assert_eq!(s.compare, ["kmsg", "trace"]);

    let StepKind::Inject(Payload::Qemu {
        records,
        broadcast,
        overflow,
    }) = &s.steps[0].kind
    else {
        panic!("step 0 is a QEMU injection: {:?}", s.steps[0]);
    };
    assert!(!broadcast);
    assert!(!overflow);
    let expected = MceRecord {
        cpu: 1,
        bank: 4,
        status: 0x9c7d_4100_9208_0813,
        addr: 0x1234_5000,
        ..MceRecord::default()
    };
    assert_eq!(records, &[expected]);
    assert_eq!(
        s.steps[1].loc,
        Loc {
            line: 20,
            column: 5
        }
    );
    assert_eq!(
        s.steps[1].to_string(),
        "steps[1] (line 20): wait for kmsg: a line matching \"DRAM ECC error\" within 5 s"
    );
    assert_eq!(
        s.steps[2].to_string(),
        "steps[2] (line 21): wait for trace: 1 record within 10 s"
    );
    assert!(!s.expects_panic());
}

#[test]
fn records_come_from_mce_inject_files_relative_to_the_scenario() {
    let dir = dir_with(&[("s/skx.yaml", SKX_FILE_PANIC), ("s/two.mce", TWO_RECORDS)]);
    let s = load_file(&dir.path().join("s/skx.yaml")).unwrap();
    assert_eq!(s.machine().unwrap().vendor, Vendor::Intel);
    let StepKind::Inject(Payload::Debugfs { records, flags }) = &s.steps[0].kind else {
        panic!("step 0 is a debugfs injection");
    };
    assert_eq!(*flags, InjectionType::Sw);
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].cpu, records[0].bank), (3, 2));
    assert_eq!(records[0].status, VAL | EN | ADDRV | 0x10);
    assert_eq!(records[1].status, VAL | EN);

    let StepKind::Inject(Payload::Qemu { records, .. }) = &s.steps[2].kind else {
        panic!("step 2 is a QEMU injection");
    };
    assert_eq!(records[0].status, VAL | UC | EN | (1 << 57) | 0x150);
    assert_eq!(records[0].mcgstatus, 5);
    assert!(s.expects_panic());
    let CollectorKind::Command {
        start,
        collect,
        stop,
        ..
    } = &s.collectors[1].kind
    else {
        panic!("the second collector is a command");
    };
    assert_eq!(
        (start, collect, stop),
        (
            &None,
            &vec!["cat".to_string(), "/proc/interrupts".into()],
            &Some(vec!["true".into()])
        )
    );
    assert_eq!(
        s.compare,
        ["kmsg", "mce-counts"],
        "compare defaults to every collector"
    );
    assert_eq!(s.records().count(), 3);
}

#[test]
fn a_local_scenario_takes_a_root_tree_and_edac_requests() {
    let dir = dir_with(&[("local.yaml", LOCAL_EDAC), ("tree/", "")]);
    let s = load_file(&dir.path().join("local.yaml")).unwrap();
    let Target::Local { root } = &s.target else {
        panic!("local target")
    };
    assert_eq!(root.as_deref(), Some(dir.path().join("tree").as_path()));
    let StepKind::Inject(Payload::Edac(request)) = &s.steps[0].kind else {
        panic!("edac step")
    };
    let expected =
        FakeInjection::new(0, &[(Layer::Channel, 0), (Layer::Csrow, 1)], true, 2).unwrap();
    assert_eq!(request, &EdacRequest::Fake(expected));
    let StepKind::Wait(wait) = &s.steps[1].kind else {
        panic!("wait step")
    };
    assert_eq!(wait.timeout, Duration::from_millis(500));
}

#[test]
fn every_problem_of_a_file_is_reported_with_line_column_and_field() {
    let text = r#"
name: Bad_Name
machine: {profile: amd-f15h, vcpus: 2}
colectors: [kmsg]
collectors: [kmsg, {trace: {events: [mce_record]}}]
steps:
  - inject: {via: qemu, cpu: 2, bank: 40, status: 0x1c00000000000000, synd: 1}
  - expect_panic: {timeout_s: 900}
  - wait: {collector: rasdaemon, records: 0}
  - inject: {via: debugfs, bank: 017, status: {bits: [VAL, BOGUS]}, mcgstatus: 1}
  - sleep_ms: "200"
compare: [kmsg, mcelog]
"#;
    insta::assert_snapshot!(invalid("scenarios/bad.yaml", text));
}

#[test]
fn the_target_decides_which_injectors_and_steps_make_sense() {
    let text = r#"
name: local-misuse
description: QEMU and a panic on the local machine, a machine where none belongs
target: local
machine: {profile: intel-skx}
steps:
  - inject: {via: qemu, bank: 4, status: 0x9c00000000000000}
  - inject: {via: edac, section: 4, word: 0, ecc_vector: 0x10000, access: fetch}
  - expect_panic: {}
"#;
    insta::assert_snapshot!(invalid("scenarios/local.yaml", text));
}

#[test]
fn missing_sections_and_wrong_shapes_are_explained() {
    assert_eq!(
        invalid("s.yaml", ""),
        "s.yaml:1:1: expected a mapping with keys `name`, `description`, `machine`, `target`, \
         `setup`, `collectors`, `steps`, `compare`, `known_findings`, `expect_crash`, `output_limit_kib`, found nothing \
         (null)"
    );
    assert_eq!(
        invalid("s.yaml", "name: x\ndescription: d\nsteps: []\n"),
        "s.yaml:1:1: missing `machine`: a guest scenario pins its machine, e.g. `machine: \
         {profile: amd-f15h}` (profiles: amd-f15h, amd-k8, intel-skx)\n\
         s.yaml:3:8: steps: is empty: a scenario does at least one thing"
    );
    assert_eq!(
        invalid(
            "s.yaml",
            "name: x\ndescription: d\nmachine: {profile: amd-k8}\nsteps:\n  - wait\n"
        ),
        "s.yaml:5:5: steps[0].wait: needs settings, e.g. `- wait: {collector: kmsg, records: 1}`"
    );
    assert_eq!(
        invalid("s.yaml", "name: x\ndescription: d\nname: y\n"),
        "s.yaml:3:1: duplicate mapping key: name, set DuplicateKeyPolicy in Options if acceptable"
    );
}

#[test]
fn status_bits_and_codes_build_the_status() {
    let text = r#"
name: bits
description: status from named bits
machine: {profile: amd-f15h}
steps:
  - inject:
      via: debugfs
      bank: 4
      status: {bits: [VAL, EN, MISCV, ADDRV, CECC], mca_code: 0x0813, model_code: 0x9208}
      flags: hw
"#;
    let s = from_str(Path::new("s.yaml"), text).unwrap();
    let r = s.records().next().unwrap();
    assert_eq!(r.status, VAL | EN | MISCV | ADDRV | (1 << 46) | 0x9208_0813);
    let StepKind::Inject(Payload::Debugfs { flags, .. }) = &s.steps[0].kind else {
        panic!()
    };
    assert_eq!(*flags, InjectionType::Hw);

    let intel = text.replace("amd-f15h", "intel-skx");
    assert_eq!(
        invalid("s.yaml", &intel),
        "s.yaml:10:14: steps[0].inject.flags: flags hw needs an AMD CPU (the kernel writes AMD's \
         bank MSRs), but this one is GenuineIntel; use flags sw, which only decodes"
    );
}

#[test]
fn problems_inside_an_mce_file_point_into_that_file() {
    let scenario = SKX_FILE_PANIC.replace("vcpus: 4", "vcpus: 2");
    let dir = dir_with(&[("skx.yaml", &scenario), ("two.mce", TWO_RECORDS)]);
    let err = load_file(&dir.path().join("skx.yaml")).unwrap_err();
    assert_eq!(
        rendered(&err, dir.path()),
        "two.mce:1:1: steps[0].inject.file (record 1 of 2): cpu 3 is out of range: the guest has \
         2 vCPUs (0-1)"
    );

    let dir = dir_with(&[
        ("skx.yaml", SKX_FILE_PANIC),
        ("two.mce", "CPU 0 BANK 1\nSTATUS 9c00\n"),
    ]);
    let err = load_file(&dir.path().join("skx.yaml")).unwrap_err();
    let text = rendered(&err, dir.path());
    assert!(
        text.starts_with("two.mce:2:8: steps[0].inject.file: "),
        "{text}"
    );
    assert!(
        text.contains("0x9c00"),
        "the parser's hint survives: {text}"
    );

    let dir = dir_with(&[("skx.yaml", SKX_FILE_PANIC)]);
    let err = load_file(&dir.path().join("skx.yaml")).unwrap_err();
    assert_eq!(
        rendered(&err, dir.path()),
        "skx.yaml:9:34: steps[0].inject.file: two.mce is not an existing file (paths are relative \
         to the scenario file)"
    );
}

#[test]
fn a_directory_loads_its_yaml_files_sorted_and_names_are_unique() {
    let dir = dir_with(&[
        ("b.yaml", AMD_DRAM_CE),
        ("a.yaml", &AMD_DRAM_CE.replace("amd-f15h-dram-ce", "first")),
        ("notes.txt", "not a scenario"),
    ]);
    let all = load(&[dir.path().to_path_buf()]).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "amd-f15h-dram-ce"]);

    let copy = dir.path().join("c.yaml");
    fs::copy(dir.path().join("b.yaml"), &copy).unwrap();
    let err = load(&[dir.path().to_path_buf()]).unwrap_err();
    assert_eq!(
        rendered(&err, dir.path()),
        "c.yaml: name: `amd-f15h-dram-ce` is also the name of b.yaml: golden files are named after \
         scenarios, so names must be unique"
    );
}

#[test]
fn problems_from_several_files_and_missing_paths_come_together() {
    let dir = dir_with(&[("x.yaml", "name: [\n"), ("empty/", "")]);
    let paths: Vec<PathBuf> = ["x.yaml", "empty", "nowhere"]
        .iter()
        .map(|p| dir.path().join(p))
        .collect();
    let err = load(&paths).unwrap_err();
    let text = rendered(&err, dir.path());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "empty: no scenarios here (expected *.yaml files)");
    assert!(lines[1].starts_with("nowhere: cannot read: "), "{text}");
    assert_eq!(lines[2], "x.yaml:1:7: unclosed bracket '['");
}

#[test]
fn the_documented_collectors_are_valid() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md"))
            .unwrap();
    let section = doc.split("## `collectors`").nth(1).unwrap();
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    // The list shows each form once; the same name twice is an error, so one scenario each.
    let items: Vec<String> = yaml
        .split("\n  - ")
        .skip(1)
        .map(|item| format!("  - {item}"))
        .collect();
    assert_eq!(items.len(), 7, "{yaml}");
    for item in items {
        let text = format!(
            "name: c\ndescription: d\nmachine: {{profile: amd-f15h}}\ncollectors:\n{}\nsteps:\n  - sleep_ms: 1\n",
            item.trim_end()
        );
        let s = from_str(Path::new("c.yaml"), &text).unwrap_or_else(|e| panic!("{item}: {e}"));
        assert_eq!(s.collectors.len(), 1);
        if let CollectorKind::Command { needs, .. } = &s.collectors[0].kind {
            assert_eq!(needs, &["my-daemon".to_string()]);
        }
        if let CollectorKind::Kmsg {
            filter: Some(f), ..
        } = &s.collectors[0].kind
        {
            assert_eq!(f, "EDAC|Memory failure");
        }
    }
}

#[test]
fn the_documented_examples_are_valid() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md"))
            .unwrap();
    let complete = doc.split("## A complete example").nth(1).unwrap();
    let yaml = complete
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert_eq!(
        yaml.trim(),
        AMD_DRAM_CE.trim(),
        "the document shows the tested example"
    );

    // The mce-inject file of the `file:` example, through the scenario that names it.
    let mce = doc
        .split("# dram-ce.mce\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let scenario = "name: f\ndescription: d\nmachine: {profile: amd-f15h}\nsteps:\n  \
                    - inject: {via: debugfs, file: dram-ce.mce, flags: sw}\n";
    let dir = dir_with(&[("f.yaml", scenario), ("dram-ce.mce", mce)]);
    let s = load_file(&dir.path().join("f.yaml")).unwrap();
    let r = s.records().next().unwrap();
    assert_eq!(
        (r.bank, r.status, r.addr),
        (4, VAL | EN | ADDRV | 0x0813, 0x1234_5000)
    );
}

#[test]
fn known_findings_name_a_collector_decoder_and_field() {
    let head = "name: k\ndescription: d\nmachine: {profile: amd-f15h}\ncollectors: [kmsg]\n\
                steps:\n  - inject: {via: qemu, bank: 4, status: 0x9c00000000000000}\n";
    let good = format!(
        "{head}known_findings:\n  - {{finding: kmsg/edac-mce-amd/class, why: an Intel code}}\n"
    );
    let s = from_str(Path::new("k.yaml"), &good).unwrap();
    assert_eq!(s.known_findings[0].key, "kmsg/edac-mce-amd/class");
    assert_eq!(s.known_findings[0].why, "an Intel code");
    let bad = format!(
        "{head}known_findings:\n  - {{finding: trace/edac-mce-amd/class, why: x}}\n  \
         - {{finding: kmsg/mcelog/class, why: x}}\n  - {{finding: kmsg/trace/colour, why: x}}\n  \
         - {{finding: kmsg/trace}}\n"
    );
    assert_eq!(
        invalid("k.yaml", &bad),
        "k.yaml:8:15: known_findings[0].finding: `trace` is not a collector of this scenario (collectors: kmsg)\n\
         k.yaml:9:15: known_findings[1].finding: `mcelog` is not a decoder (kernel-raw, edac-mce-amd, trace, rasdaemon, rasdaemon-db)\n\
         k.yaml:10:15: known_findings[2].finding: `colour` is not a field (cpu, bank, status, flag, address, misc, synd, ipid, severity, class, record, count)\n\
         k.yaml:11:5: known_findings[3]: missing `why` (one line saying why the finding is there)"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latin1.yaml");
    fs::write(&file, b"name: x\ndescription: caf\xe9 au lait\n").unwrap();
    let err = load_file(&file).unwrap_err();
    let text = err.problems[0].to_string();
    assert!(
        text.ends_with("latin1.yaml:2:17: byte 0xe9 is not UTF-8: a scenario is UTF-8 text"),
        "{text}"
    );
}

#[test]
fn einj_hwpoison_and_aer_steps_build_their_requests() {
    let text = r#"
name: local-sources
description: Each new source once, on a tree that stands in for a lab machine
target: {local: {root: tree}}
steps:
  - inject: {via: einj, einj_type: 0x8, addr: 0x12345000}
  - inject: {via: hwpoison, pfn: 0x12345, unpoison: true}
  - inject: {via: aer, sbdf: "00:1c.0", aer_error: [RCVR, BAD_TLP], tlp_header: [1, 2, 3, 4]}
"#;
    let dir = dir_with(&[("local.yaml", text), ("tree/", "")]);
    let s = load_file(&dir.path().join("local.yaml")).unwrap();
    let payloads: Vec<&Payload> = s
        .steps
        .iter()
        .map(|step| match &step.kind {
            StepKind::Inject(p) => p,
            _ => panic!("inject steps only"),
        })
        .collect();
    let Payload::Einj(einj) = payloads[0] else {
        panic!("einj")
    };
    assert_eq!(
        einj.memory(),
        Some((0x1234_5000, rasdrill_inject::einj::PAGE_MASK))
    );
    assert_eq!(
        payloads[1],
        &Payload::Hwpoison(rasdrill_inject::hwpoison::PoisonRequest::Unpoison { pfn: 0x12345 })
    );
    let Payload::Aer(rasdrill_inject::request::AerRequest::Kernel(aer)) = payloads[2] else {
        panic!("the kernel's aer_inject")
    };
    assert_eq!(aer.device().to_string(), "0000:00:1c.0");
    assert_eq!(aer.bytes()[8..12], 0x41u32.to_le_bytes());
}

#[test]
fn bad_einj_hwpoison_and_aer_steps_are_explained() {
    let text = r#"
name: bad-sources
description: What each new source refuses, found before anything runs
target: local
steps:
  - inject: {via: einj, einj_type: 0x18, addr: 0x1000}
  - inject: {via: einj, einj_type: 0x8, pfn: 1}
  - inject: {via: hwpoison, madvise: hwpoison, offline: soft}
  - inject: {via: hwpoison, madvise: sideways}
  - inject: {via: aer, qdev: rp0, aer_error: RCVR}
  - inject: {via: aer, sbdf: "00:20.0", aer_error: RCVR}
  - inject: {via: aer, sbdf: "00:1c.0", aer_error: RCVR, tlp_header: [1, 2]}
"#;
    insta::assert_snapshot!(invalid("scenarios/bad-sources.yaml", text));
}

#[test]
fn a_guest_takes_no_einj() {
    let text = r#"
name: guest-einj
description: EINJ in a guest, which has no EINJ table
machine: {profile: intel-skx}
steps:
  - inject: {via: einj, einj_type: 0x8, addr: 0x12345000}
"#;
    let e = invalid("scenarios/guest-einj.yaml", text);
    assert!(
        e.contains(
            "via einj cannot inject into a QEMU guest: QEMU's x86 machines have no ACPI EINJ table"
        ),
        "{e}"
    );
}

#[test]
fn aer_needs_a_guest_with_pcie_and_pcie_is_a_flag() {
    let text = r#"
name: guest-aer
description: AER on a machine without PCIe, and a pcie key that is no flag
machine: {profile: amd-f15h}
steps:
  - inject: {via: aer, qdev: rp0, aer_error: DLP}
  - inject: {via: aer, sbdf: "0000:00:01.0", aer_error: RCVR}
"#;
    let e = invalid("scenarios/guest-aer.yaml", text);
    assert!(
        e.contains(
            "via aer cannot inject into a QEMU guest without PCIe: its machine has no PCIe root \
             port (QEMU's default machine is i440fx): give the scenario `machine: {pcie: true}`"
        ),
        "{e}"
    );
    assert_eq!(e.matches("without PCIe").count(), 2, "{e}");
    let with_pcie = text.replace("amd-f15h}", "amd-f15h, pcie: true}");
    let s = from_str(Path::new("scenarios/guest-aer.yaml"), &with_pcie).unwrap();
    assert!(s.machine().unwrap().pcie);
    let e = invalid(
        "scenarios/guest-aer.yaml",
        &text.replace("amd-f15h}", "amd-f15h, pcie: yes please}"),
    );
    assert!(e.contains("machine.pcie"), "{e}");
}

#[test]
fn a_misspelled_tracepoint_is_refused_with_the_close_matches() {
    let text = r#"
name: typo
description: events the kernel does not have
machine: {profile: amd-f15h}
collectors:
  - trace: {events: [mce/mce_recrod, mc/mc_event, ras/aer_event, sched/sched_switch]}
steps:
  - sleep_ms: 1
"#;
    assert_eq!(
        invalid("scenarios/typo.yaml", text),
        "scenarios/typo.yaml:6:22: collectors[0].trace.events: `mce/mce_recrod` is not a RAS \
         tracepoint of the kernel (did you mean `mce/mce_record`?)\n\
         scenarios/typo.yaml:6:38: collectors[0].trace.events: `mc/mc_event` is not a RAS \
         tracepoint of the kernel (did you mean `ras/mc_event`?)\n\
         scenarios/typo.yaml:6:66: collectors[0].trace.events: `sched/sched_switch` is not a RAS \
         tracepoint of the kernel (known: `mce/mce_record`, `ras/mc_event`, \
         `ras/memory_failure_event`, `ras/aer_event`, `ras/extlog_mem_event`, \
         `ras/non_standard_event`, `ras/arm_event`)"
    );
}

#[test]
fn a_machine_names_a_pinned_kernel_line_and_extra_kernel_arguments() {
    let text = r#"
name: cec-off
description: the CEC off on 6.12
machine: {profile: amd-f15h, kernel_line: "6.12", kernel_args: [ras=cec_disable]}
steps:
  - sleep_ms: 1
"#;
    let s = from_str(Path::new("scenarios/cec-off.yaml"), text).unwrap();
    let m = s.machine().unwrap();
    assert_eq!(m.kernel_line.map(|l| l.name), Some("6.12"));
    assert_eq!(m.kernel_args, ["ras=cec_disable"]);

    let text = r#"
name: bad
description: lines and arguments that are not
machine: {profile: amd-f15h, kernel_line: 6.12, kernel_args: ["ras=cec_disable quiet"]}
steps:
  - sleep_ms: 1
"#;
    assert_eq!(
        invalid("scenarios/bad.yaml", text),
        "scenarios/bad.yaml:4:43: machine.kernel_line: expected a pinned kernel line in quotes \
         (\"6.1\", \"6.12\"), found a fractional number\n\
         scenarios/bad.yaml:4:63: machine.kernel_args: `ras=cec_disable quiet` is not one kernel \
         argument: write one word per item, without spaces or quotes"
    );
    let text = "name: old\ndescription: d\nmachine: {profile: amd-f15h, kernel_line: \"5.10\"}\n\
                steps: [{sleep_ms: 1}]\n";
    assert_eq!(
        invalid("scenarios/old.yaml", text),
        "scenarios/old.yaml:3:43: machine.kernel_line: `5.10` is not a pinned kernel line \
         (\"6.1\", \"6.12\")"
    );
}

/// Two QEMU steps into CPU 0 bank 4: an uncorrected error (which a `fake_panic` guest survives),
/// then `second`, with `between` steps in between.
fn two_into_one_bank(between: &str, second: &str) -> String {
    format!(
        "name: two\ndescription: d\nmachine: {{profile: amd-f15h}}\nsetup: {{fake_panic: true}}\n\
         collectors: [trace]\nsteps:\n  \
         - inject: {{via: qemu, bank: 4, status: 0xbc00000000000813}}\n{between}  \
         - inject: {{via: qemu, bank: 4, status: 0x9c7d410092080813{second}}}\n"
    )
}

#[test]
fn a_record_landing_on_an_unconsumed_one_is_refused_unless_it_overflows_on_purpose() {
    assert_eq!(
        invalid("s/two.yaml", &two_into_one_bank("  - sleep_ms: 10\n", "")),
        "s/two.yaml:9:5: steps[2].inject: the record of steps[0] (line 7) may still be in CPU 0 \
         bank 4 (it raised #MC, and nothing confirms that the guest has handled it): QEMU would \
         merge the record of steps[2] (line 9) into it, one record with OVER set; put them in \
         separate steps with a `wait` step between (e.g. `wait: {collector: trace, records: 1}`, \
         for what the guest logged), or say `overflow: true` on this step to overflow the bank \
         on purpose"
    );
    let waited = "  - wait: {collector: trace, records: 1}\n";
    from_str(Path::new("w.yaml"), &two_into_one_bank(waited, "")).unwrap();
    let s = from_str(
        Path::new("o.yaml"),
        &two_into_one_bank("", ", overflow: true"),
    )
    .unwrap();
    let StepKind::Inject(Payload::Qemu { overflow, .. }) = &s.steps[1].kind else {
        panic!("step 1 is a QEMU injection");
    };
    assert!(overflow);
    // A corrected error in rasdrill's guests is polled at once: no wait needed after one.
    let two_ce = AMD_DRAM_CE.replace(
        "  - wait: {collector: kmsg",
        "  - inject: {via: qemu, cpu: 1, bank: 4, status: 0x9c7d410092080813}\n  \
         - wait: {collector: kmsg",
    );
    let s = from_str(Path::new("ce.yaml"), &two_ce).unwrap();
    assert_eq!(merges::find(&s.file, &s.steps, 2, true), vec![]);
    // The naive way leaves it to the timer poll: refused there.
    let naive = merges::naive(std::slice::from_ref(&s));
    assert_eq!(naive.len(), 1);
    assert_eq!(naive[0].field, "steps[1].inject");
    assert!(
        naive[0].message.starts_with(
            "the record of steps[0] (line 14) may still be in CPU 1 bank 4 (a corrected error \
             stays in its bank until the kernel polls"
        ),
        "{}",
        naive[0].message
    );
    assert!(invalid(
        "d.yaml",
        &AMD_DRAM_CE.replace("addr: 0x12345000", "addr: 0x12345000\n      overflow: yes")
    )
    .contains("steps[0].inject.overflow: "));
}

#[test]
fn overflow_is_for_qemu_only() {
    let text = AMD_DRAM_CE.replace("via: qemu", "via: debugfs\n      overflow: true");
    let e = invalid("d.yaml", &text);
    assert!(
        e.contains("steps[0].inject.overflow: does not apply to via: debugfs (mce-inject hands"),
        "{e}"
    );
}

#[test]
fn records_of_one_file_landing_on_each_other_point_at_the_record() {
    let dir = dir_with(&[
        (
            "s/ue.yaml",
            "name: ue\ndescription: d\nmachine: {profile: amd-f15h}\nsteps:\n  \
             - inject: {via: qemu, file: two.mce}\n",
        ),
        (
            "s/two.mce",
            "CPU 0 BANK 4\nSTATUS UNCORRECTED 0x0813\n\nCPU 0 BANK 4\nSTATUS CORRECTED 0x0813\n",
        ),
    ]);
    let e = rendered(
        &load_file(&dir.path().join("s/ue.yaml")).unwrap_err(),
        dir.path(),
    );
    assert!(
        e.starts_with(
            "s/two.mce:4:1: steps[0].inject.file (record 2 of 2): record 1 may still \
             be in CPU 0 bank 4 (it raised #MC"
        ),
        "{e}"
    );
}
