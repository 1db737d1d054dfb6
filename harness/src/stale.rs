//! What a killed rasdrill leaves behind: files and directories named after the pid that made
//! them, removed by a later run once that process no longer exists.

use std::io;
use std::path::{Path, PathBuf};

/// Whether a process with this pid exists (signal 0 checks without sending anything).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// A fresh temporary directory `rasdrill-<pid>-<what>-<random>` in TMPDIR, removed when
/// dropped. Those of rasdrill processes that no longer exist (SIGKILL skips every cleanup) are
/// removed first.
pub fn temp_dir(what: &str) -> io::Result<tempfile::TempDir> {
    let parent = std::env::temp_dir();
    remove_dead_temp_dirs(&parent);
    tempfile::Builder::new()
        .prefix(&format!("rasdrill-{}-{what}-", std::process::id()))
        .tempdir_in(parent)
}

/// Removes the `rasdrill-<pid>-*` directories in `parent` whose process is gone; returns them.
pub fn remove_dead_temp_dirs(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("rasdrill-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let Some(pid) = pid {
            if is_dir && !alive(pid) && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_of_dead_rasdrill_processes_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let make = |name: &str| {
            let dir = parent.path().join(name);
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/initramfs.cpio"), "x").unwrap();
            dir
        };
        let gone = make(&format!("rasdrill-{dead}-guest-abc"));
        let live = make(&format!("rasdrill-{}-guest-abc", std::process::id()));
        let other = make("rasdrill-notapid");
        std::fs::write(parent.path().join(format!("rasdrill-{dead}-file")), "").unwrap();
        assert_eq!(remove_dead_temp_dirs(parent.path()), vec![gone.clone()]);
        assert!(!gone.exists() && live.exists() && other.exists());
        assert!(parent.path().join(format!("rasdrill-{dead}-file")).exists());
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
