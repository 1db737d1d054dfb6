//! The shared libraries an executable needs, as the host's dynamic loader resolves them.
//!
//! `ldd` (glibc's, in libc-bin, on every Debian system) asks the loader itself, so search
//! paths, RUNPATH and transitive DT_NEEDED entries come out exactly as they will at run time;
//! an ELF reader of our own would have to re-implement that search.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::InitramfsError;

/// Absolute paths of the libraries and the loader `exe` needs; empty for a static executable.
/// `search` (directories of libraries the host does not have installed, e.g. from an unpacked
/// package) is searched before the host's own directories.
pub fn needed_libraries(exe: &Path, search: &[PathBuf]) -> Result<Vec<PathBuf>, InitramfsError> {
    let ldd_err = |reason: String| InitramfsError::Ldd {
        exe: exe.to_path_buf(),
        reason,
    };
    let mut command = Command::new("ldd");
    command.arg(exe);
    if !search.is_empty() {
        let joined = std::env::join_paths(search)
            .map_err(|e| ldd_err(format!("bad library directory: {e}")))?;
        command.env("LD_LIBRARY_PATH", joined);
    }
    let output = command
        .output()
        .map_err(|e| ldd_err(format!("cannot run ldd: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let all = format!("{stdout}{stderr}");
    if all.contains("not a dynamic executable") || all.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        return Err(ldd_err(format!(
            "ldd failed ({}): {}",
            output.status,
            all.trim()
        )));
    }
    parse_ldd(&stdout).map_err(|library| InitramfsError::MissingLibrary {
        exe: exe.to_path_buf(),
        library,
    })
}

/// Paths from ldd's lines; `Err(name)` for the first `name => not found`.
fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines() {
        // Drop the load address: "libc.so.6 => /lib/.../libc.so.6 (0x7f...)".
        let line = line.trim();
        let line = line.rsplit_once(" (0x").map_or(line, |(before, _)| before);
        let path = match line.split_once(" => ") {
            Some((name, "not found")) => return Err(name.to_owned()),
            Some((_, path)) => path,
            None => line,
        };
        // linux-vdso.so.1 is provided by the kernel and has no file.
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_glibc_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f85)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f85)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f85)\n";
        let paths = parse_ldd(text).unwrap();
        let expected = [
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ];
        assert_eq!(paths, expected.map(PathBuf::from));
    }

    #[test]
    fn a_library_not_found_is_named() {
        let text = "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\tlibsqlite3.so.0 => not found\n";
        assert_eq!(parse_ldd(text), Err("libsqlite3.so.0".to_owned()));
    }
}
