//! One injector at a time per machine: an exclusive, non-blocking flock on
//! `<root>/run/lock/rasdrill.lock`, which holds the holder's pid so a refusal can name it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file, relative to the root.
pub const LOCK_FILE: &str = "run/lock/rasdrill.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another rasdrill ({}) is injecting on this machine: it holds {path}; wait for it to finish", holder_text(*.pid))]
    Held { path: PathBuf, pid: Option<u32> },
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
            .open(&path)
            .map_err(io_err)?;
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
}
