//! EINJ against the stand-in tree scenarios/trees/einj-acpi5: what is validated before any
//! write, and the order and values of the writes as the kernel's files receive them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::stat::Mode;
use rasdrill_inject::einj::{EinjRequest, ErrorType, Sbdf, DIR};
use rasdrill_inject::{perform, preflight};

const TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/trees/einj-acpi5");

/// Files the kernel creates, with their contents before any injection.
const PRISTINE: [(&str, &str); 7] = [
    ("error_type", "0x0\n"),
    ("flags", "0x00000000\n"),
    ("param1", "0x0000000000000000\n"),
    ("param2", "0x0000000000000000\n"),
    ("param3", "0x0000000000000000\n"),
    ("param4", "0x0000000000000000\n"),
    ("notrigger", "0x00000000\n"),
];

fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A copy of the tree with the kernel's modes on the files whose mode matters.
fn machine() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(Path::new(TREE), dir.path());
    let einj = dir.path().join(DIR);
    let mode = |file: &str, m| {
        fs::set_permissions(einj.join(file), fs::Permissions::from_mode(m)).unwrap()
    };
    mode("error_inject", 0o200);
    mode("available_error_type", 0o400);
    dir
}

fn contents(root: &Path) -> Vec<(String, String)> {
    PRISTINE
        .iter()
        .map(|(f, _)| {
            let text = fs::read_to_string(root.join(DIR).join(f)).unwrap();
            (f.to_string(), text)
        })
        .collect()
}

fn memory_ce() -> EinjRequest {
    let t = ErrorType::new(0x8).unwrap();
    EinjRequest::new(t, Some(0x1234_5000), None, None, None, false).unwrap()
}

#[test]
fn the_tree_holds_what_the_kernel_shows() {
    let m = machine();
    for (file, text) in PRISTINE {
        assert_eq!(
            fs::read_to_string(m.path().join(DIR).join(file)).unwrap(),
            text
        );
    }
    let available = fs::read_to_string(m.path().join(DIR).join("available_error_type")).unwrap();
    let types = rasdrill_inject::einj::parse_available(&available).unwrap();
    assert_eq!(types.len(), 5);
}

#[test]
fn every_value_is_written_and_error_inject_comes_last() {
    let m = machine();
    let root = m.path().to_owned();
    // error_inject becomes a FIFO: its writer blocks in open(2) until the reader comes, so the
    // other files can be looked at exactly when the injection is about to be triggered.
    let trigger = root.join(DIR).join("error_inject");
    fs::remove_file(&trigger).unwrap();
    nix::unistd::mkfifo(&trigger, Mode::from_bits_truncate(0o200)).unwrap();
    let plan = preflight::einj_plan(&root, &memory_ce()).unwrap();

    let (tx, rx) = mpsc::channel();
    let reader_root = root.clone();
    std::thread::spawn(move || {
        let mut fifo = fs::File::open(&trigger).unwrap();
        let before = contents(&reader_root);
        let mut written = String::new();
        std::io::Read::read_to_string(&mut fifo, &mut written).unwrap();
        tx.send((before, written)).unwrap();
    });
    perform(&plan).unwrap();
    let (before, written) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("error_inject was never written");
    assert_eq!(written, "1\n");
    let expected = [
        ("error_type", "0x8\n"),
        ("flags", "0x2\n"),
        ("param1", "0x12345000\n"),
        ("param2", "0xfffffffffffff000\n"),
        ("param3", "0x0\n"),
        ("param4", "0x0\n"),
        ("notrigger", "0\n"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        before, expected,
        "values in place when error_inject was opened"
    );
}

#[test]
fn bad_requests_are_refused_with_nothing_written() {
    let m = machine();
    let root = m.path();
    let refuse = |req: &EinjRequest| preflight::einj_plan(root, req).unwrap_err().to_string();
    let t = |v| ErrorType::new(v).unwrap();

    let e = refuse(&EinjRequest::new(t(0x4), None, None, Some(0), None, false).unwrap());
    assert!(
        e.starts_with("EINJ error type 0x4 (Processor Uncorrectable fatal): this firmware does not offer it; available_error_type lists 0x2 (Processor Uncorrectable non-fatal), 0x8 (Memory Correctable)"),
        "{e}"
    );
    // Page 0 is Reserved in proc/iomem.
    let e = refuse(&EinjRequest::new(t(0x8), Some(0x800), None, None, None, false).unwrap());
    assert!(
        e.starts_with("EINJ address 0x0: it is not in memory:")
            && e.ends_with(
                "lists System RAM at 0x1000-0x9fbff, 0x100000-0x7ffdffff, 0x100000000-0x27fffffff"
            ),
        "{e}"
    );
    let e = refuse(&EinjRequest::new(t(0x8), Some(0xfee0_0000), None, None, None, false).unwrap());
    assert!(e.contains("0xfee00000: it is not in memory"), "{e}");
    let e = refuse(&EinjRequest::new(t(0x8000_0001), None, None, Some(1), None, false).unwrap());
    assert!(e.contains("no vendor extension"), "{e}");

    // Without debugfs' einj directory.
    let bare = tempfile::tempdir().unwrap();
    let e = preflight::einj_plan(bare.path(), &memory_ce())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ACPI EINJ's debugfs directory is missing"),
        "{e}"
    );

    assert_eq!(
        contents(root),
        PRISTINE
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_pcie_error_names_its_device_in_param4() {
    let m = machine();
    let t = ErrorType::new(0x40).unwrap();
    let sbdf = Sbdf::parse("0000:3a:00.1").unwrap();
    let req = EinjRequest::new(t, None, None, None, Some(sbdf), true).unwrap();
    let plan = preflight::einj_plan(m.path(), &req).unwrap();
    // A regular file stands in for error_inject here: root may write a 0200 file.
    perform(&plan).unwrap();
    let got = contents(m.path());
    assert_eq!(got[0].1, "0x40\n");
    assert_eq!(got[1].1, "0x4\n");
    assert_eq!(got[5].1, "0x3a0100\n");
    assert_eq!(got[6].1, "1\n");
}
