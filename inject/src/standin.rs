//! The kernel's file semantics in a stand-in tree (`--root DIR`, `target: {local: {root: DIR}}`).
//!
//! A kernel attribute is not a plain file: what a read shows is the driver's `show` format, not
//! the bytes written, and a file without `show` cannot be read at all. As root, plain file
//! permissions refuse nothing, and git keeps no modes, so the model is here, taken from the
//! kernel (drivers/edac/amd64_edac.c, drivers/edac/debugfs.c, fs/debugfs/file.c):
//!
//! | file                                  | mode | a read shows                  |
//! |---------------------------------------|------|-------------------------------|
//! | `edac/mc/mcN/inject_section`, `inject_word` (decimal in) | 0644 | `0x%x`     |
//! | `edac/mc/mcN/inject_ecc_vector` (hex in) | 0644 | `0x%x`                     |
//! | `edac/mc/mcN/inject_write`, `inject_read`, `reset_counters` | 0200 | nothing: EACCES |
//! | `debug/edac/mcN/fake_inject`          | 0200 | nothing: EINVAL               |
//! | `debug/edac/mcN/fake_inject_<layer>` (u8), `fake_inject_count` (u16) | 0644 | `%llu` |
//! | `debug/edac/mcN/fake_inject_ue` (bool) | 0644 | `Y` or `N`                    |
//!
//! Writing a stand-in file stores what the kernel would then show; a write-only file keeps
//! nothing (the kernel acts on the write and remembers nothing to read), and the write is
//! appended to [`JOURNAL`] at the tree's root instead, so that a scenario can show what the
//! kernel was asked to do. Only regular files are modelled: a FIFO in a tree receives the bytes
//! the kernel would. [`read`] refuses write-only files as the kernel does, and
//! [`apply_modes`] gives a copied tree the kernel's modes. Other files are plain files.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where a stand-in tree records the writes to its write-only files, one `path value` a line.
pub const JOURNAL: &str = "rasdrill-writes.log";

/// How the kernel treats one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantics {
    /// Written in `base`, shown as `0x%x` (amd64_edac's injection registers).
    Hex { base: u32 },
    /// A debugfs unsigned integer of `bits` bits, shown in decimal.
    Unsigned { bits: u32 },
    /// A debugfs bool, shown as `Y` or `N`.
    Bool,
    /// No `show`: a read fails with `error` (sysfs: EACCES; debugfs: EINVAL).
    WriteOnly { error: i32 },
}

impl Semantics {
    /// The file's mode in the kernel.
    pub fn mode(self) -> u32 {
        match self {
            Semantics::WriteOnly { .. } => 0o200,
            _ => 0o644,
        }
    }

    /// What a read shows after `written` was written (`None` for a write-only file), or the
    /// kernel's refusal of the value (EINVAL).
    pub fn shown(self, written: &str) -> io::Result<Option<String>> {
        let text = written.trim();
        let invalid = || io::Error::from_raw_os_error(EINVAL);
        let parse = |base: u32| {
            let digits = match base {
                16 => text
                    .strip_prefix("0x")
                    .or_else(|| text.strip_prefix("0X"))
                    .unwrap_or(text),
                _ => text,
            };
            u64::from_str_radix(digits, base).map_err(|_| invalid())
        };
        Ok(match self {
            Semantics::Hex { base } => Some(format!("0x{:x}\n", parse(base)?)),
            Semantics::Unsigned { bits } => {
                let v = parse(10)?;
                if bits < 64 && v >> bits != 0 {
                    return Err(invalid());
                }
                Some(format!("{v}\n"))
            }
            Semantics::Bool => match text {
                "1" | "y" | "Y" | "on" => Some("Y\n".to_string()),
                "0" | "n" | "N" | "off" => Some("N\n".to_string()),
                _ => return Err(invalid()),
            },
            Semantics::WriteOnly { .. } => None,
        })
    }
}

/// errno values, as Linux numbers them.
const EACCES: i32 = 13;
const EINVAL: i32 = 22;

/// The kernel's semantics of `rel` (a path relative to the tree's root), when it is one of the
/// files this module models.
pub fn semantics(rel: &Path) -> Option<Semantics> {
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    let [.., parent, mc, file] = parts[..] else {
        return None;
    };
    if !mc.starts_with("mc") || !mc[2..].chars().all(|c| c.is_ascii_digit()) || mc.len() == 2 {
        return None;
    }
    match (parent, file) {
        ("mc", "inject_section" | "inject_word") => Some(Semantics::Hex { base: 10 }),
        ("mc", "inject_ecc_vector") => Some(Semantics::Hex { base: 16 }),
        ("mc", "inject_write" | "inject_read" | "reset_counters") => {
            Some(Semantics::WriteOnly { error: EACCES })
        }
        ("edac", "fake_inject") => Some(Semantics::WriteOnly { error: EINVAL }),
        ("edac", "fake_inject_ue") => Some(Semantics::Bool),
        ("edac", "fake_inject_count") => Some(Semantics::Unsigned { bits: 16 }),
        ("edac", f) if f.starts_with("fake_inject_") => Some(Semantics::Unsigned { bits: 8 }),
        _ => None,
    }
}

/// Whether `path` in the tree at `root` is one of the files this module models.
pub fn models(root: &Path, path: &Path) -> bool {
    relative(root, path).and_then(semantics).is_some()
}

fn relative<'a>(root: &Path, path: &'a Path) -> Option<&'a Path> {
    path.strip_prefix(root).ok()
}

/// Writes `value` to `path` in the tree at `root` as the kernel would take it: what a read then
/// shows, or, for a write-only file, nothing but a line in the [`JOURNAL`].
pub fn write(root: &Path, path: &Path, value: &str) -> io::Result<()> {
    let Some(sem) = relative(root, path).and_then(semantics) else {
        return plain_write(path, format!("{value}\n").as_bytes());
    };
    // The file must exist, as a kernel attribute does. Anything but a regular file (a FIFO a
    // test reads the bytes from) takes the bytes the kernel would receive.
    if !fs::metadata(path)?.is_file() {
        return plain_write(path, format!("{value}\n").as_bytes());
    }
    match sem.shown(value)? {
        Some(shown) => plain_write(path, shown.as_bytes()),
        None => {
            let rel = relative(root, path).unwrap_or(path);
            let mut journal = OpenOptions::new()
                .create(true)
                .append(true)
                .open(root.join(JOURNAL))?;
            writeln!(journal, "{} {value}", rel.display())
        }
    }
}

fn plain_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(bytes)
}

/// Reads `path` in the tree at `root` as the kernel would answer: a write-only file is refused
/// (EACCES for sysfs, EINVAL for debugfs), even to root.
pub fn read(root: &Path, path: &Path) -> io::Result<String> {
    if let Some(Semantics::WriteOnly { error }) = relative(root, path).and_then(semantics) {
        return Err(io::Error::from_raw_os_error(error));
    }
    fs::read_to_string(path)
}

/// Gives the modelled files of a (copied) tree the kernel's modes: what `ls -l` shows and what
/// a non-root reader meets.
pub fn apply_modes(root: &Path) -> io::Result<()> {
    for file in files(root)? {
        if let Some(sem) = relative(root, &file).and_then(semantics) {
            fs::set_permissions(&file, fs::Permissions::from_mode(sem.mode()))?;
        }
    }
    Ok(())
}

fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            out.extend(files(&entry.path())?);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mc = dir.path().join("sys/devices/system/edac/mc/mc0");
        let dbg = dir.path().join("sys/kernel/debug/edac/mc0");
        for d in [&mc, &dbg] {
            fs::create_dir_all(d).unwrap();
        }
        for f in ["inject_section", "inject_word", "inject_ecc_vector"] {
            fs::write(mc.join(f), "0x0\n").unwrap();
        }
        for f in ["inject_write", "inject_read", "mc_name"] {
            fs::write(mc.join(f), "").unwrap();
        }
        for (f, v) in [
            ("fake_inject", ""),
            ("fake_inject_csrow", "0\n"),
            ("fake_inject_count", "0\n"),
            ("fake_inject_ue", "N\n"),
        ] {
            fs::write(dbg.join(f), v).unwrap();
        }
        dir
    }

    #[test]
    fn values_read_back_as_the_kernel_shows_them() {
        let t = tree();
        let root = t.path();
        let mc = root.join("sys/devices/system/edac/mc/mc0");
        let dbg = root.join("sys/kernel/debug/edac/mc0");
        let cases = [
            (mc.join("inject_section"), "3", "0x3\n"),
            (mc.join("inject_word"), "8", "0x8\n"),
            (mc.join("inject_ecc_vector"), "0x10", "0x10\n"),
            (mc.join("inject_ecc_vector"), "ff", "0xff\n"),
            (dbg.join("fake_inject_csrow"), "1", "1\n"),
            (dbg.join("fake_inject_count"), "300", "300\n"),
            (dbg.join("fake_inject_ue"), "0", "N\n"),
            (dbg.join("fake_inject_ue"), "1", "Y\n"),
            (mc.join("mc_name"), "F15h", "F15h\n"),
        ];
        for (path, written, shown) in cases {
            write(root, &path, written).unwrap();
            assert_eq!(read(root, &path).unwrap(), shown, "{}", path.display());
        }
        // Values the kernel refuses: EINVAL, nothing stored.
        let e = write(root, &dbg.join("fake_inject_csrow"), "256").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EINVAL));
        assert_eq!(read(root, &dbg.join("fake_inject_csrow")).unwrap(), "1\n");
    }

    #[test]
    fn write_only_files_keep_nothing_refuse_reads_and_journal_the_write() {
        let t = tree();
        let root = t.path();
        let write_file = root.join("sys/devices/system/edac/mc/mc0/inject_write");
        let fake = root.join("sys/kernel/debug/edac/mc0/fake_inject");
        write(root, &write_file, "1").unwrap();
        write(root, &fake, "1").unwrap();
        assert_eq!(fs::read_to_string(&write_file).unwrap(), "");
        let e = read(root, &write_file).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EACCES), "sysfs without show");
        let e = read(root, &fake).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EINVAL), "debugfs without read");
        assert_eq!(
            fs::read_to_string(root.join(JOURNAL)).unwrap(),
            "sys/devices/system/edac/mc/mc0/inject_write 1\nsys/kernel/debug/edac/mc0/fake_inject 1\n"
        );
        apply_modes(root).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&write_file), 0o200);
        assert_eq!(mode(&fake), 0o200);
        assert_eq!(
            mode(&root.join("sys/devices/system/edac/mc/mc0/inject_word")),
            0o644
        );
    }

    #[test]
    fn only_the_modelled_files_have_semantics() {
        assert_eq!(
            semantics(Path::new("sys/devices/system/edac/mc/mc/inject_word")),
            None
        );
        assert_eq!(
            semantics(Path::new("sys/kernel/debug/mce-inject/status")),
            None
        );
        assert_eq!(
            semantics(Path::new("sys/kernel/debug/edac/mc12/fake_inject_channel")),
            Some(Semantics::Unsigned { bits: 8 })
        );
    }
}
