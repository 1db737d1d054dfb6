//! One injector at a time per machine: an exclusive, non-blocking flock on
//! `<root>/run/lock/rasdrill.lock`, which holds the holder's pid so a refusal can name it.
//!
//! `/run/lock` is writable by every user, so the path is not trusted: it is opened without
//! following a symbolic link (nor blocking on a FIFO), and what was opened must be a regular
//! file with one link, owned by this user, before anything is written to it. A planted link
//! would otherwise have this process (often root) truncate the file it points to.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file, relative to the root.
pub const LOCK_FILE: &str = "run/lock/rasdrill.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another rasdrill ({}) is injecting on this machine: it holds {path}; wait for it to finish", holder_text(*.pid))]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("refusing the lock {path}: {reason}; remove it if you did not put it there")]
    Unsafe { path: PathBuf, reason: String },
    #[error("cannot take the lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".into(),
    }
}

/// Held until dropped; the kernel releases it if the process dies.
#[derive(Debug)]
pub struct InjectLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl InjectLock {
    /// Takes the lock without waiting, or says who holds it.
    pub fn acquire(root: &Path) -> Result<InjectLock, LockError> {
        let path = root.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        // No truncate on open: the file holds the current holder's pid until we own the lock.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)
            .map_err(|source| match source.raw_os_error() {
                Some(nix::libc::ELOOP) => LockError::Unsafe {
                    path: path.clone(),
                    reason: "it is a symbolic link".into(),
                },
                _ => io_err(source),
            })?;
        check_safe(&path, &file)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held { path, pid });
            }
            Err((_, errno)) => return Err(io_err(io::Error::from(errno))),
        };
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(InjectLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What was opened is a regular file of ours that no other name reaches.
fn check_safe(path: &Path, file: &File) -> Result<(), LockError> {
    let meta = file.metadata().map_err(|source| LockError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reason = if !meta.file_type().is_file() {
        Some("it is not a regular file".to_string())
    } else if meta.uid() != nix::unistd::geteuid().as_raw() {
        Some(format!(
            "it belongs to uid {}, not to this user",
            meta.uid()
        ))
    } else if meta.nlink() != 1 {
        Some(format!("it has {} hard links", meta.nlink()))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LockError::Unsafe {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_with_the_holders_pid() {
        let root = tempfile::tempdir().unwrap();
        let held = InjectLock::acquire(root.path()).unwrap();
        let text = fs::read_to_string(root.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        // flock locks belong to the open file description, so a second open in the same process conflicts.
        match InjectLock::acquire(root.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(held);
        InjectLock::acquire(root.path()).unwrap();
    }

    fn refusal(root: &Path) -> String {
        match InjectLock::acquire(root) {
            Err(e @ LockError::Unsafe { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_untouched() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        fs::create_dir_all(root.path().join("run/lock")).unwrap();
        let lock = root.path().join(LOCK_FILE);
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        assert!(refusal(root.path()).ends_with(
            "rasdrill.lock: it is a symbolic link; remove it if you did not put it there"
        ));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");

        // A dangling link would have been created through.
        fs::remove_file(&victim).unwrap();
        assert!(refusal(root.path()).contains("it is a symbolic link"));
        assert!(!victim.exists());
    }

    #[test]
    fn a_hard_link_a_fifo_and_a_directory_are_refused() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("run/lock")).unwrap();
        let lock = root.path().join(LOCK_FILE);
        let victim = root.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        fs::hard_link(&victim, &lock).unwrap();
        assert!(refusal(root.path()).contains("it has 2 hard links"));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");

        fs::remove_file(&lock).unwrap();
        nix::unistd::mkfifo(&lock, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        // Opening a FIFO nobody reads would block: the refusal proves it did not.
        assert!(refusal(root.path()).contains("it is not a regular file"));

        fs::remove_file(&lock).unwrap();
        fs::create_dir(&lock).unwrap();
        match InjectLock::acquire(root.path()) {
            Err(LockError::Io { .. }) | Err(LockError::Unsafe { .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_lock_file_of_another_user_is_refused() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("run/lock")).unwrap();
        let lock = root.path().join(LOCK_FILE);
        fs::write(&lock, "").unwrap();
        let me = nix::unistd::geteuid().as_raw();
        // Only root can give a file away; otherwise the check is the same code as above.
        if me == 0 {
            std::os::unix::fs::chown(&lock, Some(65534), None).unwrap();
            assert!(refusal(root.path()).contains("it belongs to uid 65534, not to this user"));
        } else {
            InjectLock::acquire(root.path()).unwrap();
        }
    }
}
