//! Golden files: what each collector of each scenario said, normalised, reviewed and committed.
//!
//! One file per scenario and collector, `golden/<scenario>__<collector>.snap`, shared by the
//! kernel lines whose output is the same, and beside it, for a line whose output differs, that
//! line's own `golden/<scenario>__<collector>__kernel-<line>.snap` (see [`Place`]). insta's `.snap`
//! format: a YAML header between `---` lines, then the content. The header says where the
//! content came from:
//!
//! ```text
//! ---
//! source: scenarios/amd-f15h-dram-ce.yaml
//! description: "A corrected DRAM ECC error on bank 4"
//! expression: kmsg
//! info:
//!   scenario: amd-f15h-dram-ce
//!   collector: kmsg
//!   kernel: 6.1.0-56-amd64
//!   kernel_lines: ["6.1"]
//!   machine: "EPYC,-hypervisor,family=21,model=2"
//! ---
//! [<TIME>] mce: [Hardware Error]: Machine check events logged
//! ```
//!
//! Rules (decided here, documented in docs/scenarios.md):
//! - Only the content is compared, after insta's own normalisation (trailing whitespace at the
//!   end trimmed, CRLF read as LF). The header is not: a new kernel release or a changed
//!   description alone never fails a run, and a matching run does not rewrite the file.
//! - A mismatch fails, prints a unified diff, and writes `<name>.snap.new` beside the golden
//!   file, which `rasdrill run --accept` or `cargo insta review` turns into the golden file.
//! - A missing golden file fails too; outside CI the would-be file is written as `.snap.new`.
//! - In CI (`CI` set and not `false`/`0`), nothing is ever written: the diff is in the report.
//! - Accept mode writes the golden file when the content differs or the file is missing, and
//!   removes a pending `.snap.new`; it reports what it changed.
//! - `kernel_lines` lists the pinned kernel lines (`6.1`, `6.12`) the content is known to be
//!   right for: a changed content is valid for this run's line only; accepting a run on another
//!   line whose content matches adds that line.
//! - A run on a line compares with that line's own file when there is one, else with the shared
//!   file. Accepting a run never rewrites what another line relies on: when the shared file is
//!   valid for another line too and this line's output differs, the output goes to this line's
//!   own file (and the shared file stops listing this line). So `rasdrill run --all-lines
//!   --accept` keeps one shared file where the lines agree and a file per line where they do not.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How long the line diff of a mismatch may search for the smallest diff before settling for a
/// coarser one.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);
/// How many lines of a diff are shown in progress output and reports.
const DIFF_LINES: usize = 400;

/// Where golden files live, relative to the workspace root.
pub const DEFAULT_DIR: &str = "golden";

/// What a golden file records about where its content came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The scenario file, as given on the command line.
    pub source: String,
    pub description: String,
    pub scenario: String,
    pub collector: String,
    /// The guest kernel's release (`uname -r`).
    pub kernel: String,
    /// The kernel lines (`6.1`) the content is valid for.
    pub kernel_lines: Vec<String>,
    /// The guest's CPU model, or what stood in for the machine on a local target.
    pub machine: String,
}

impl Header {
    /// The header for `collector`'s output of `scenario`, on a guest running kernel `kernel`.
    pub fn new(scenario: &crate::scenario::Scenario, collector: &str, kernel: &str) -> Self {
        Header {
            source: scenario.file.display().to_string(),
            description: scenario.description.clone(),
            scenario: scenario.name.clone(),
            collector: collector.to_string(),
            kernel: kernel.to_string(),
            kernel_lines: rasdrill_qemu::pinned::line_of(kernel).into_iter().collect(),
            machine: scenario.machine_label(),
        }
    }
}

/// Whether a run may write golden files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compare; on a difference write `.snap.new` unless `ci`.
    Check { ci: bool },
    /// Make the golden files say what this run saw.
    Accept,
}

impl Mode {
    /// Check mode, with `ci` from the environment (or forced by `--ci`); accept when asked.
    pub fn from_env(accept: bool, force_ci: bool) -> Mode {
        if accept {
            Mode::Accept
        } else {
            Mode::Check {
                ci: force_ci || is_ci(),
            }
        }
    }
}

/// CI systems set `CI` (GitHub, GitLab, Buildkite, ...); `CI=false` or `CI=0` say otherwise.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The result of comparing one collector's output with its golden file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Matched,
    /// The content differs; `new` is the `.snap.new` written (none in CI).
    Mismatch {
        golden: PathBuf,
        new: Option<PathBuf>,
        diff: String,
    },
    /// There is no golden file; `new` is the `.snap.new` written (none in CI).
    Missing {
        golden: PathBuf,
        new: Option<PathBuf>,
    },
    /// The file at the golden path is not a golden file; `new` is the `.snap.new` written (none
    /// in CI). `--accept` replaces it.
    Corrupt {
        golden: PathBuf,
        reason: String,
        new: Option<PathBuf>,
    },
    /// Accept mode wrote the golden file; `diff` is what changed (none for a new file).
    Accepted {
        golden: PathBuf,
        diff: Option<String>,
    },
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Matched | Verdict::Accepted { .. })
    }

    /// One line for progress output and reports.
    pub fn summary(&self) -> String {
        match self {
            Verdict::Matched => "matches its golden file".into(),
            Verdict::Mismatch { golden, new, .. } => match new {
                Some(new) => format!(
                    "differs from {} (new output in {})",
                    golden.display(),
                    new.display()
                ),
                None => format!("differs from {}", golden.display()),
            },
            Verdict::Missing { golden, new } => match new {
                Some(new) => format!(
                    "has no golden file {} (output written to {})",
                    golden.display(),
                    new.display()
                ),
                None => format!("has no golden file {}", golden.display()),
            },
            Verdict::Corrupt {
                golden,
                reason,
                new,
            } => {
                let written = match new {
                    Some(new) => format!("output written to {}; ", new.display()),
                    None => String::new(),
                };
                format!(
                    "cannot use {}: it is not a golden file: {reason} ({written}`rasdrill run --accept` replaces it)",
                    golden.display()
                )
            }
            Verdict::Accepted { golden, diff: None } => format!("created {}", golden.display()),
            Verdict::Accepted {
                golden,
                diff: Some(_),
            } => format!("updated {}", golden.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} is not a golden file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// `golden/<scenario>__<collector>.snap`: the file the kernel lines share.
pub fn path(dir: &Path, scenario: &str, collector: &str) -> PathBuf {
    dir.join(format!("{scenario}__{collector}.snap"))
}

/// `golden/<scenario>__<collector>__kernel-<line>.snap`: one line's own file, for output that
/// differs on that line. (Scenario names cannot hold `__`, so neither name is read as the other.)
pub fn line_path(dir: &Path, scenario: &str, collector: &str, line: &str) -> PathBuf {
    dir.join(format!("{scenario}__{collector}__kernel-{line}.snap"))
}

/// Which golden file a run on one kernel line compares with, and which its accepted output goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file compared with: the line's own when it exists, else the shared one.
    pub compared: PathBuf,
    /// Where a differing output is written (`--accept`, or as `.snap.new` for review).
    pub written: PathBuf,
    /// The shared file, when a differing output goes to the line's own file instead and the
    /// shared file lists this line: it stops listing it.
    pub unlist: Option<PathBuf>,
}

impl Place {
    /// The place of `header`'s scenario and collector under `dir`, for the run's line (the
    /// header's first kernel line; none on a local target or an unpinned kernel).
    pub fn of(dir: &Path, header: &Header) -> Place {
        let shared = path(dir, &header.scenario, &header.collector);
        let Some(line) = header.kernel_lines.first() else {
            return Place::alone(shared);
        };
        let own = line_path(dir, &header.scenario, &header.collector, line);
        if own.exists() {
            return Place::alone(own);
        }
        // The lines the shared file is valid for decide: another line's output stays untouched.
        let lines = read(&shared)
            .ok()
            .and_then(|g| g.header)
            .map(|h| h.kernel_lines)
            .unwrap_or_default();
        if lines.iter().any(|l| l != line) {
            Place {
                written: own,
                unlist: lines.contains(line).then(|| shared.clone()),
                compared: shared,
            }
        } else {
            Place::alone(shared)
        }
    }

    fn alone(file: PathBuf) -> Place {
        Place {
            compared: file.clone(),
            written: file,
            unlist: None,
        }
    }
}

/// The pending file beside a golden file: `x.snap` -> `x.snap.new` (as insta names it).
pub fn new_path(golden: &Path) -> PathBuf {
    let mut name = golden.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// Compares `actual` (already normalised) with the golden file of `header`'s scenario and
/// collector under `dir`, writing files as `mode` allows.
pub fn check(
    dir: &Path,
    header: &Header,
    actual: &str,
    mode: Mode,
) -> Result<Verdict, GoldenError> {
    let place = Place::of(dir, header);
    let golden = place.compared.clone();
    let new = new_path(&place.written);
    let actual = contents(actual);
    let recorded = match std::fs::read_to_string(&golden) {
        Ok(text) => match parse(&golden, &text) {
            Ok(old) => Recorded::Golden(old),
            Err(GoldenError::Corrupt { reason, .. }) => Recorded::Corrupt(reason),
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Recorded::Absent,
        // Not UTF-8 is a damaged golden file like any other: `--accept` must be able to fix it.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Recorded::Corrupt("it is not UTF-8 text".into())
        }
        Err(source) => {
            return Err(GoldenError::Io {
                action: "read",
                path: golden,
                source,
            })
        }
    };
    let writes = !matches!(mode, Mode::Check { ci: true });
    match (recorded, mode) {
        (Recorded::Golden(old), _) if old.content == actual => {
            if writes {
                remove_if_present(&new)?;
            }
            if let (Some(merged), Mode::Accept) = (with_this_line(&old, header), mode) {
                write(&golden, &render(&merged, &actual))?;
            }
            Ok(Verdict::Matched)
        }
        (Recorded::Golden(old), Mode::Accept) => {
            write(&place.written, &render(header, &actual))?;
            remove_if_present(&new)?;
            if let Some(shared) = &place.unlist {
                without_line(shared, &old, header)?;
            }
            let diff = diff(&golden, &old, header, &actual);
            Ok(Verdict::Accepted {
                golden: place.written,
                diff: Some(diff),
            })
        }
        (Recorded::Absent, Mode::Accept) => {
            write(&golden, &render(header, &actual))?;
            remove_if_present(&new)?;
            Ok(Verdict::Accepted { golden, diff: None })
        }
        (Recorded::Corrupt(reason), Mode::Accept) => {
            write(&golden, &render(header, &actual))?;
            remove_if_present(&new)?;
            let diff = format!("replaced a file that was not a golden file: {reason}\n");
            Ok(Verdict::Accepted {
                golden,
                diff: Some(diff),
            })
        }
        (Recorded::Golden(old), Mode::Check { ci }) => {
            let diff = diff(&golden, &old, header, &actual);
            let new = write_pending(new, ci, header, &actual)?;
            Ok(Verdict::Mismatch { golden, new, diff })
        }
        (Recorded::Absent, Mode::Check { ci }) => {
            let new = write_pending(new, ci, header, &actual)?;
            Ok(Verdict::Missing { golden, new })
        }
        (Recorded::Corrupt(reason), Mode::Check { ci }) => {
            let new = write_pending(new, ci, header, &actual)?;
            Ok(Verdict::Corrupt {
                golden,
                reason,
                new,
            })
        }
    }
}

/// What is at a golden file's path.
enum Recorded {
    Absent,
    /// Something that is not a golden file (cut short by a crash, edited by hand).
    Corrupt(String),
    Golden(Golden),
}

/// Rewrites the header of the shared file `old` (at `shared`) without this run's line, whose
/// output now has a file of its own.
fn without_line(shared: &Path, old: &Golden, header: &Header) -> Result<(), GoldenError> {
    let Some(recorded) = &old.header else {
        return Ok(());
    };
    let mut kept = recorded.clone();
    kept.kernel_lines
        .retain(|l| !header.kernel_lines.contains(l));
    write(shared, &render(&kept, &old.content))
}

/// Writes the `.snap.new` for review and returns its path; in CI writes nothing.
fn write_pending(
    new: PathBuf,
    ci: bool,
    header: &Header,
    actual: &str,
) -> Result<Option<PathBuf>, GoldenError> {
    if ci {
        return Ok(None);
    }
    write(&new, &render(header, actual))?;
    Ok(Some(new))
}

/// A golden file as read: its header and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Golden {
    /// `None` for an insta snapshot without rasdrill's `info` (still comparable).
    pub header: Option<Header>,
    /// How many lines the header takes, both `---` included: the content starts after them.
    pub header_lines: usize,
    pub content: String,
}

/// Reads a golden file (or any insta `.snap` file).
pub fn read(path: &Path) -> Result<Golden, GoldenError> {
    let text = std::fs::read_to_string(path).map_err(|source| GoldenError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// The text of a golden file.
pub fn render(header: &Header, content: &str) -> String {
    // JSON strings are valid YAML double-quoted scalars: every value is quoted the same way.
    let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut out = String::from("---\n");
    let _ = writeln!(out, "source: {}", q(&header.source));
    let _ = writeln!(out, "description: {}", q(&header.description));
    let _ = writeln!(out, "expression: {}", q(&header.collector));
    out.push_str("info:\n");
    let _ = writeln!(out, "  scenario: {}", q(&header.scenario));
    let _ = writeln!(out, "  collector: {}", q(&header.collector));
    let _ = writeln!(out, "  kernel: {}", q(&header.kernel));
    let lines: Vec<String> = header.kernel_lines.iter().map(|l| q(l)).collect();
    let _ = writeln!(out, "  kernel_lines: [{}]", lines.join(", "));
    let _ = writeln!(out, "  machine: {}", q(&header.machine));
    out.push_str("---\n");
    out.push_str(&contents(content));
    out.push('\n');
    out
}

/// Content as insta compares it: line endings as LF, trailing whitespace at the end removed.
/// Every CR before a line's end goes, not just one: reading a rendered file back then gives
/// the same content (the fuzzer found `\r\r\n` losing one CR per round trip).
fn contents(text: &str) -> String {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| line.trim_end_matches('\r'))
        .collect();
    lines.join("\n").trim_end().to_string()
}

/// Reads the text of a golden file; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Golden, GoldenError> {
    let corrupt = |reason: &str| GoldenError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut lines = text.split('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(corrupt("it does not start with a `---` header line"));
    }
    let mut yaml = String::new();
    let mut header_lines = 1;
    let mut closed = false;
    for line in lines.by_ref() {
        header_lines += 1;
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        yaml.push_str(line);
        yaml.push('\n');
    }
    if !closed {
        return Err(corrupt("its header has no closing `---` line"));
    }
    let content = contents(&lines.collect::<Vec<_>>().join("\n"));
    let header = if yaml.trim().is_empty() {
        None
    } else {
        let raw: RawHeader = serde_saphyr::from_str(&yaml).map_err(|e| {
            corrupt(&format!(
                "its header is not valid YAML: {}",
                e.without_snippet()
            ))
        })?;
        raw.into_header()
    };
    Ok(Golden {
        header,
        header_lines,
        content,
    })
}

/// insta's header keys; `info` holds rasdrill's own.
#[derive(Deserialize)]
struct RawHeader {
    source: Option<String>,
    description: Option<String>,
    info: Option<RawInfo>,
}

#[derive(Deserialize)]
struct RawInfo {
    scenario: Option<String>,
    collector: Option<String>,
    kernel: Option<String>,
    kernel_lines: Option<Vec<String>>,
    machine: Option<String>,
}

impl RawHeader {
    fn into_header(self) -> Option<Header> {
        let info = self.info?;
        Some(Header {
            source: self.source.unwrap_or_default(),
            description: self.description.unwrap_or_default(),
            scenario: info.scenario?,
            collector: info.collector?,
            kernel: info.kernel.unwrap_or_default(),
            kernel_lines: info.kernel_lines.unwrap_or_default(),
            machine: info.machine.unwrap_or_default(),
        })
    }
}

/// A unified diff of the content, golden first, with the first changed line's place in the
/// golden file; the header says when the kernel or machine changed too.
fn diff(golden_path: &Path, old: &Golden, header: &Header, actual: &str) -> String {
    let old_text = format!("{}\n", old.content);
    let new_text = format!("{actual}\n");
    // Myers' diff costs the product of length and differences: a deadline makes it fall back to
    // a coarser (still correct) diff, so a huge mismatch reports in bounded time.
    let text_diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .deadline(std::time::Instant::now() + DIFF_DEADLINE)
        .diff_lines(&old_text, &new_text);
    let mut out = String::new();
    let first = text_diff
        .ops()
        .iter()
        .find(|op| op.tag() != similar::DiffTag::Equal)
        .map(|op| op.old_range().start);
    if let Some(first) = first {
        let line = old.header_lines + first + 1;
        let _ = writeln!(out, "first difference at {}:{line}", golden_path.display());
    }
    if let Some(recorded) = &old.header {
        for (what, was, now) in [
            ("kernel", &recorded.kernel, &header.kernel),
            ("machine", &recorded.machine, &header.machine),
        ] {
            if was != now {
                let _ = writeln!(out, "note: recorded with {what} {was}, this run used {now}");
            }
        }
        if with_this_line(old, header).is_some() {
            let _ = writeln!(
                out,
                "note: valid for kernel lines [{}]; this run used line {}",
                recorded.kernel_lines.join(", "),
                header.kernel_lines.join(", ")
            );
        }
    }
    let unified = text_diff
        .unified_diff()
        .context_radius(3)
        .header(&golden_path.display().to_string(), "this run")
        .to_string();
    let mut lines = unified.lines();
    for line in lines.by_ref().take(DIFF_LINES) {
        out.push_str(line);
        out.push('\n');
    }
    let more = lines.count();
    if more > 0 {
        let _ = writeln!(out, "... {more} more diff lines not shown");
    }
    out
}

/// The header to keep when content recorded on other kernel lines matched on this one: the old
/// lines plus this run's. `None` when nothing is new.
fn with_this_line(old: &Golden, header: &Header) -> Option<Header> {
    let recorded = old.header.as_ref()?;
    let missing: Vec<&String> = header
        .kernel_lines
        .iter()
        .filter(|l| !recorded.kernel_lines.contains(l))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut merged = header.clone();
    merged.kernel_lines = recorded.kernel_lines.clone();
    merged.kernel_lines.extend(missing.into_iter().cloned());
    merged.kernel_lines.sort();
    Some(merged)
}

/// Writes `text` to `path` so that the file is, at every moment, either what it was or `text`
/// whole: a temporary file in the same directory, flushed to disk, renamed over `path`, and the
/// directory flushed. A kill or a full disk leaves the old file (and at most a temporary file,
/// which the next write there removes).
fn write(path: &Path, text: &str) -> Result<(), GoldenError> {
    let io = |source| GoldenError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().expect("a golden path names a file");
    remove_stale_temporaries(dir, name);
    let tmp = temporary_path(dir, name, std::process::id());
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself lasts only once the directory is on disk.
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// `.<name>.<pid>.tmp`: hidden, and naming the writer so a later run can tell it is stale.
fn temporary_path(dir: &Path, name: &std::ffi::OsStr, pid: u32) -> PathBuf {
    let mut file = std::ffi::OsString::from(".");
    file.push(name);
    file.push(format!(".{pid}.tmp"));
    dir.join(file)
}

/// Removes the temporary files of `name` whose writer no longer runs (it was killed mid-write),
/// and this process's own (a pid reused).
fn remove_stale_temporaries(dir: &Path, name: &std::ffi::OsStr) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid == std::process::id() || !crate::stale::alive(pid) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), GoldenError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GoldenError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            source: "scenarios/amd-f15h-dram-ce.yaml".into(),
            description: "A corrected DRAM ECC error: \"bank 4\"".into(),
            scenario: "amd-f15h-dram-ce".into(),
            collector: "kmsg".into(),
            kernel: "6.1.0-56-amd64".into(),
            kernel_lines: vec!["6.1".into()],
            machine: "EPYC,-hypervisor,family=21,model=2".into(),
        }
    }

    const OUTPUT: &str = "[<TIME>] mce: [Hardware Error]: Machine check events logged\n\
                          [<TIME>] [Hardware Error]: Error Addr: 0x0000000012345000\n\
                          [<TIME>] [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.\n";

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `header()` as a run on kernel line `line` makes it.
    fn on_line(line: &str) -> Header {
        Header {
            kernel: format!("{line}.0-1-amd64"),
            kernel_lines: vec![line.into()],
            ..header()
        }
    }

    fn lines_of(path: &Path) -> Vec<String> {
        read(path).unwrap().header.unwrap().kernel_lines
    }

    #[test]
    fn accepting_each_line_shares_one_file_where_the_lines_agree() {
        let dir = tempfile::tempdir().unwrap();
        for line in ["6.1", "6.12"] {
            let v = check(dir.path(), &on_line(line), OUTPUT, Mode::Accept).unwrap();
            assert!(v.passed(), "{v:?}");
        }
        let shared = path(dir.path(), "amd-f15h-dram-ce", "kmsg");
        assert_eq!(files(dir.path()), ["amd-f15h-dram-ce__kmsg.snap"]);
        assert_eq!(lines_of(&shared), ["6.1", "6.12"]);
        for line in ["6.1", "6.12"] {
            let v = check(dir.path(), &on_line(line), OUTPUT, Mode::Check { ci: true }).unwrap();
            assert_eq!(v, Verdict::Matched);
        }
    }

    #[test]
    fn accepting_a_line_that_differs_never_clobbers_the_other_line_s_file() {
        let dir = tempfile::tempdir().unwrap();
        let shared = path(dir.path(), "amd-f15h-dram-ce", "kmsg");
        let own = line_path(dir.path(), "amd-f15h-dram-ce", "kmsg", "6.12");
        check(dir.path(), &on_line("6.1"), OUTPUT, Mode::Accept).unwrap();
        let v = check(dir.path(), &on_line("6.12"), "absorbed\n", Mode::Accept).unwrap();
        assert!(
            matches!(&v, Verdict::Accepted { golden, diff: Some(_) } if *golden == own),
            "{v:?}"
        );
        assert_eq!(
            files(dir.path()),
            [
                "amd-f15h-dram-ce__kmsg.snap",
                "amd-f15h-dram-ce__kmsg__kernel-6.12.snap"
            ]
        );
        assert_eq!(read(&shared).unwrap().content, OUTPUT.trim_end());
        assert_eq!(lines_of(&shared), ["6.1"]);
        assert_eq!(lines_of(&own), ["6.12"]);
        // Each line compares with its own file from now on.
        let ci = Mode::Check { ci: true };
        assert_eq!(
            check(dir.path(), &on_line("6.1"), OUTPUT, ci).unwrap(),
            Verdict::Matched
        );
        assert_eq!(
            check(dir.path(), &on_line("6.12"), "absorbed", ci).unwrap(),
            Verdict::Matched
        );
        let v = check(dir.path(), &on_line("6.12"), OUTPUT, ci).unwrap();
        assert!(
            matches!(&v, Verdict::Mismatch { golden, .. } if *golden == own),
            "{v:?}"
        );
        // 6.1 changing again rewrites the shared file, which only 6.1 still uses.
        check(dir.path(), &on_line("6.1"), "decoded anew\n", Mode::Accept).unwrap();
        assert_eq!(read(&shared).unwrap().content, "decoded anew");
        assert_eq!(read(&own).unwrap().content, "absorbed");
    }

    #[test]
    fn a_line_leaving_a_file_shared_by_both_gets_its_own_and_the_shared_stops_listing_it() {
        let dir = tempfile::tempdir().unwrap();
        let shared = path(dir.path(), "amd-f15h-dram-ce", "kmsg");
        check(dir.path(), &on_line("6.1"), OUTPUT, Mode::Accept).unwrap();
        check(dir.path(), &on_line("6.12"), OUTPUT, Mode::Accept).unwrap();
        assert_eq!(lines_of(&shared), ["6.1", "6.12"]);
        // Outside CI a mismatch leaves its pending file where accepting would write.
        let v = check(
            dir.path(),
            &on_line("6.12"),
            "moved\n",
            Mode::Check { ci: false },
        )
        .unwrap();
        let own = line_path(dir.path(), "amd-f15h-dram-ce", "kmsg", "6.12");
        assert!(
            matches!(&v, Verdict::Mismatch { golden, new: Some(new), .. } if *golden == shared && *new == new_path(&own)),
            "{v:?}"
        );
        check(dir.path(), &on_line("6.12"), "moved\n", Mode::Accept).unwrap();
        assert_eq!(lines_of(&shared), ["6.1"]);
        assert_eq!(read(&shared).unwrap().content, OUTPUT.trim_end());
        assert_eq!(read(&own).unwrap().content, "moved");
        assert!(!new_path(&own).exists());
    }

    #[test]
    fn a_target_without_a_kernel_line_uses_the_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let local = Header {
            kernel_lines: Vec::new(),
            ..header()
        };
        check(dir.path(), &local, OUTPUT, Mode::Accept).unwrap();
        assert_eq!(files(dir.path()), ["amd-f15h-dram-ce__kmsg.snap"]);
        let p = Place::of(dir.path(), &local);
        assert_eq!(p.compared, path(dir.path(), "amd-f15h-dram-ce", "kmsg"));
        assert_eq!(p.written, p.compared);
        assert_eq!(p.unlist, None);
    }

    #[test]
    fn a_header_comes_from_the_scenario() {
        let yaml =
            "name: amd-f15h-dram-ce\ndescription: 'A corrected DRAM ECC error: \"bank 4\"'\n\
                    machine: {profile: amd-f15h}\nsteps: [{sleep_ms: 1}]\n";
        let s =
            crate::scenario::from_str(Path::new("scenarios/amd-f15h-dram-ce.yaml"), yaml).unwrap();
        assert_eq!(Header::new(&s, "kmsg", "6.1.0-56-amd64"), header());
    }

    #[test]
    fn the_file_format_is_insta_s() {
        insta::assert_snapshot!(render(&header(), OUTPUT), @r#"
        ---
        source: "scenarios/amd-f15h-dram-ce.yaml"
        description: "A corrected DRAM ECC error: \"bank 4\""
        expression: "kmsg"
        info:
          scenario: "amd-f15h-dram-ce"
          collector: "kmsg"
          kernel: "6.1.0-56-amd64"
          kernel_lines: ["6.1"]
          machine: "EPYC,-hypervisor,family=21,model=2"
        ---
        [<TIME>] mce: [Hardware Error]: Machine check events logged
        [<TIME>] [Hardware Error]: Error Addr: 0x0000000012345000
        [<TIME>] [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.
        "#);
    }

    #[test]
    fn a_written_file_reads_back_and_so_does_one_insta_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.snap");
        std::fs::write(&p, render(&header(), OUTPUT)).unwrap();
        let golden = read(&p).unwrap();
        assert_eq!(golden.header, Some(header()));
        assert_eq!(golden.header_lines, 11);
        assert_eq!(golden.content, OUTPUT.trim_end());

        // A snapshot insta itself wrote for this crate's tests: its header has no `info`.
        let insta_file = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "src/scenario/snapshots/rasdrill__scenario__tests__the_target_decides_which_injectors_and_steps_make_sense.snap",
        );
        let theirs = read(&insta_file).unwrap();
        assert_eq!(theirs.header, None);
        assert!(
            theirs
                .content
                .starts_with("scenarios/local.yaml:5:10: machine:"),
            "{}",
            theirs.content
        );
    }

    #[test]
    fn a_missing_golden_file_fails_and_leaves_a_pending_file_outside_ci() {
        let dir = tempfile::tempdir().unwrap();
        let v = check(dir.path(), &header(), OUTPUT, Mode::Check { ci: false }).unwrap();
        let golden = dir.path().join("amd-f15h-dram-ce__kmsg.snap");
        let new = dir.path().join("amd-f15h-dram-ce__kmsg.snap.new");
        assert_eq!(
            v,
            Verdict::Missing {
                golden: golden.clone(),
                new: Some(new.clone())
            }
        );
        assert!(!v.passed());
        assert_eq!(read(&new).unwrap().content, OUTPUT.trim_end());
        assert_eq!(files(dir.path()), ["amd-f15h-dram-ce__kmsg.snap.new"]);
    }

    #[test]
    fn ci_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let v = check(dir.path(), &header(), OUTPUT, Mode::Check { ci: true }).unwrap();
        assert!(matches!(v, Verdict::Missing { new: None, .. }), "{v:?}");
        assert!(files(dir.path()).is_empty());

        std::fs::write(
            path(dir.path(), "amd-f15h-dram-ce", "kmsg"),
            render(&header(), "other\n"),
        )
        .unwrap();
        let v = check(dir.path(), &header(), OUTPUT, Mode::Check { ci: true }).unwrap();
        assert!(matches!(v, Verdict::Mismatch { new: None, .. }), "{v:?}");
        assert_eq!(files(dir.path()), ["amd-f15h-dram-ce__kmsg.snap"]);
    }

    #[test]
    fn accept_creates_then_a_check_matches_and_ignores_the_header() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), &header(), OUTPUT, Mode::Check { ci: false }).unwrap();
        let v = check(dir.path(), &header(), OUTPUT, Mode::Accept).unwrap();
        assert!(matches!(&v, Verdict::Accepted { diff: None, .. }), "{v:?}");
        assert_eq!(
            files(dir.path()),
            ["amd-f15h-dram-ce__kmsg.snap"],
            "the pending file is gone"
        );
        let written =
            std::fs::read_to_string(path(dir.path(), "amd-f15h-dram-ce", "kmsg")).unwrap();

        // Another kernel release, trailing blank lines and CRLF: still a match, nothing rewritten.
        let mut newer = header();
        newer.kernel = "6.1.0-57-amd64".into();
        let crlf = format!("{}\r\n\r\n", OUTPUT.replace('\n', "\r\n"));
        let v = check(dir.path(), &newer, &crlf, Mode::Check { ci: false }).unwrap();
        assert_eq!(v, Verdict::Matched);
        assert_eq!(
            std::fs::read_to_string(path(dir.path(), "amd-f15h-dram-ce", "kmsg")).unwrap(),
            written
        );
    }

    #[test]
    fn accepting_a_match_on_another_kernel_line_adds_the_line_and_a_change_splits_them() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), &header(), OUTPUT, Mode::Accept).unwrap();
        let golden = path(dir.path(), "amd-f15h-dram-ce", "kmsg");
        let mut other_line = header();
        other_line.kernel = "6.12.115+deb12-amd64".into();
        other_line.kernel_lines = vec!["6.12".into()];
        // A check names the lines the file is valid for, and writes nothing there.
        let v = check(dir.path(), &other_line, "changed", Mode::Check { ci: true }).unwrap();
        let Verdict::Mismatch { diff, .. } = v else {
            panic!("{v:?}")
        };
        assert!(
            diff.contains("note: valid for kernel lines [6.1]; this run used line 6.12"),
            "{diff}"
        );
        let v = check(dir.path(), &other_line, OUTPUT, Mode::Accept).unwrap();
        assert_eq!(v, Verdict::Matched);
        assert_eq!(
            read(&golden).unwrap().header.unwrap().kernel_lines,
            ["6.1", "6.12"]
        );
        // A change on one line no longer holds for the other: the changed line gets its own file.
        check(dir.path(), &header(), "changed", Mode::Accept).unwrap();
        assert_eq!(
            read(&golden).unwrap().header.unwrap().kernel_lines,
            ["6.12"]
        );
        let own = line_path(dir.path(), "amd-f15h-dram-ce", "kmsg", "6.1");
        assert_eq!(read(&own).unwrap().content, "changed");
    }

    #[test]
    fn a_mismatch_shows_a_diff_that_points_at_the_changed_line() {
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), &header(), OUTPUT, Mode::Accept).unwrap();
        let changed = OUTPUT.replace("node 0", "node 1");
        let mut newer = header();
        newer.kernel = "6.1.0-57-amd64".into();
        let v = check(dir.path(), &newer, &changed, Mode::Check { ci: false }).unwrap();
        let Verdict::Mismatch { golden, new, diff } = &v else {
            panic!("{v:?}")
        };
        let shown = diff.replace(&dir.path().display().to_string(), "golden");
        insta::assert_snapshot!(shown, @r"
        first difference at golden/amd-f15h-dram-ce__kmsg.snap:14
        note: recorded with kernel 6.1.0-56-amd64, this run used 6.1.0-57-amd64
        --- golden/amd-f15h-dram-ce__kmsg.snap
        +++ this run
        @@ -1,3 +1,3 @@
         [<TIME>] mce: [Hardware Error]: Machine check events logged
         [<TIME>] [Hardware Error]: Error Addr: 0x0000000012345000
        -[<TIME>] [Hardware Error]: MC4 Error (node 0): DRAM ECC error detected on the NB.
        +[<TIME>] [Hardware Error]: MC4 Error (node 1): DRAM ECC error detected on the NB.
        ");
        // Line 14 of the golden file is the changed line.
        let text = std::fs::read_to_string(golden).unwrap();
        assert!(text.lines().nth(13).unwrap().contains("node 0"));
        assert_eq!(
            read(new.as_ref().unwrap()).unwrap().content,
            changed.trim_end()
        );
        assert_eq!(
            read(golden).unwrap().content,
            OUTPUT.trim_end(),
            "the golden file is untouched"
        );

        // Accepting writes the new content and clears the pending file.
        let v = check(dir.path(), &newer, &changed, Mode::Accept).unwrap();
        assert!(
            matches!(&v, Verdict::Accepted { diff: Some(_), .. }),
            "{v:?}"
        );
        assert_eq!(
            read(golden).unwrap().header.unwrap().kernel,
            "6.1.0-57-amd64"
        );
        assert!(!new.as_ref().unwrap().exists());
    }

    #[test]
    fn a_file_that_is_not_a_snapshot_is_reported_and_accept_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "amd-f15h-dram-ce", "kmsg");
        // What a kill used to leave: a golden file cut mid-line, and one that is empty.
        let whole = render(&header(), OUTPUT);
        for broken in ["just text\n", "", &whole[..40]] {
            std::fs::write(&p, broken).unwrap();
            let v = check(dir.path(), &header(), OUTPUT, Mode::Check { ci: true }).unwrap();
            let Verdict::Corrupt { reason, new, .. } = &v else {
                panic!("{v:?}")
            };
            assert!(!v.passed());
            assert_eq!(new, &None);
            assert!(
                v.summary().contains("it is not a golden file")
                    && v.summary().contains("--accept` replaces it"),
                "{}",
                v.summary()
            );
            assert!(reason.contains("header"), "{reason}");
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                broken,
                "CI wrote nothing"
            );

            let v = check(dir.path(), &header(), OUTPUT, Mode::Accept).unwrap();
            assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
            assert_eq!(read(&p).unwrap().content, OUTPUT.trim_end());
        }
        std::fs::write(&p, [0xff, 0xfe, b'\n']).unwrap();
        let v = check(dir.path(), &header(), OUTPUT, Mode::Check { ci: false }).unwrap();
        assert!(
            matches!(&v, Verdict::Corrupt { reason, new: Some(_), .. } if reason == "it is not UTF-8 text"),
            "{v:?}"
        );
        // `read` (for tools) still refuses such a file outright.
        std::fs::write(&p, "---\nsource: x\n").unwrap();
        let err = read(&p).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("its header has no closing `---` line"),
            "{err}"
        );
    }

    #[test]
    fn writing_leaves_no_temporary_file_and_removes_a_dead_writer_s() {
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::new("amd-f15h-dram-ce__kmsg.snap");
        // A writer that was killed mid-write: its pid no longer exists.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let dead = temporary_path(dir.path(), name, child.id());
        std::fs::write(&dead, "half a golden fi").unwrap();
        // Another file's temporary file, and one of a live writer, stay.
        let other = temporary_path(dir.path(), std::ffi::OsStr::new("x.snap"), child.id());
        std::fs::write(&other, "").unwrap();
        let live = temporary_path(dir.path(), name, 1);
        std::fs::write(&live, "").unwrap();

        check(dir.path(), &header(), OUTPUT, Mode::Accept).unwrap();
        let mut expected = vec![
            name.to_string_lossy().into_owned(),
            other.file_name().unwrap().to_string_lossy().into_owned(),
            live.file_name().unwrap().to_string_lossy().into_owned(),
        ];
        expected.sort();
        assert_eq!(files(dir.path()), expected);
    }

    #[test]
    fn a_huge_mismatch_reports_a_bounded_diff() {
        // 8 MB of output against a 100 KB golden file, every line different: Myers' diff alone
        // would search for many seconds; the deadline and the line cap keep the report small.
        let dir = tempfile::tempdir().unwrap();
        let old: String = (0..2_000).map(|i| format!("old line {i:040}\n")).collect();
        check(dir.path(), &header(), &old, Mode::Accept).unwrap();
        let actual: String = (0..170_000)
            .map(|i| format!("new line {i:040}\n"))
            .collect();
        assert!(actual.len() > 8_000_000);
        let v = check(dir.path(), &header(), &actual, Mode::Check { ci: true }).unwrap();
        let Verdict::Mismatch { diff, .. } = &v else {
            panic!("{v:?}")
        };
        let lines: Vec<&str> = diff.lines().collect();
        assert!(
            lines[0].ends_with("amd-f15h-dram-ce__kmsg.snap:12"),
            "{}",
            lines[0]
        );
        assert!(lines.len() <= DIFF_LINES + 2, "{}", lines.len());
        assert!(
            lines.last().unwrap().ends_with("more diff lines not shown"),
            "{}",
            lines.last().unwrap()
        );
    }
}
