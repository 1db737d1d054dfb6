//! The local target: this machine (lab hardware), or a directory tree that stands in for its
//! kernel files (`target: {local: {root: DIR}}`).
//!
//! Collectors talk to it with the same requests as to a guest's agent, answered in process by
//! the agent's own [`Agent::handle`]. Injections go through the one planner as `rasdrill
//! inject`'s do ([`Request::execute`]): every check first, the guard included (a stand-in tree
//! is guarded like the machine it stands for), then the lock, then the writes.
//!
//! A stand-in tree is copied to a temporary directory for each scenario, and the scenario works
//! on the copy: the committed tree never changes, and every run starts from the same files.
//!
//! A `trace` collector on the real root enables its tracepoints and reads the top-level
//! `trace_pipe`, which consumes what it reads: nothing else on the machine should read it then.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rasdrill_inject::guard::Allow;
use rasdrill_inject::request::ExecuteError;
use rasdrill_inject::{Payload, Place, Request as Injection};

use crate::agent::process::Children;
use crate::agent::protocol::{Ready, Reply, Request};
use crate::agent::server::{Agent, Environment};
use crate::agent::trace::{self, TraceBuffer};
use crate::target::{Target, TargetError};

/// The local target could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot copy the stand-in tree {from} to {to}: {source}")]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

pub struct LocalTarget {
    agent: Agent,
    root: PathBuf,
    /// The root is `/`, not a stand-in tree.
    real: bool,
    /// The copy of a stand-in tree, removed with the target.
    _copy: Option<tempfile::TempDir>,
}

impl LocalTarget {
    /// This machine (`root` `None` or `/`), or a fresh copy of the tree at `root`.
    /// `trace_events` are the tracepoints a trace collector wants (`group/event`): only then is
    /// `trace_pipe` read, and on the real root those tracepoints are enabled.
    pub fn new(root: Option<&Path>, trace_events: &[String]) -> Result<LocalTarget, LocalError> {
        let (root, copy) = match root {
            None => (PathBuf::from("/"), None),
            Some(r) if r == Path::new("/") => (PathBuf::from("/"), None),
            Some(tree) => {
                let copy = crate::stale::temp_dir("root").map_err(|source| LocalError::Copy {
                    from: tree.to_path_buf(),
                    to: std::env::temp_dir(),
                    source,
                })?;
                copy_tree(tree, copy.path())
                    .and_then(|()| rasdrill_inject::standin::apply_modes(copy.path()))
                    .map_err(|source| LocalError::Copy {
                        from: tree.to_path_buf(),
                        to: copy.path().to_path_buf(),
                        source,
                    })?;
                (copy.path().to_path_buf(), Some(copy))
            }
        };
        let real = copy.is_none();
        let env = Environment { root: root.clone() };
        let mut enabled = Vec::new();
        let trace: Result<Arc<TraceBuffer>, String> = if trace_events.is_empty() {
            Err("no trace collector in this scenario".to_string())
        } else {
            if real {
                enabled = trace::enable(&env.tracefs(), trace_events).0;
            }
            let pipe = env.tracefs().join("trace_pipe");
            if pipe.exists() {
                Ok(TraceBuffer::start(pipe))
            } else {
                Err(format!(
                    "{} does not exist (is tracefs mounted?)",
                    pipe.display()
                ))
            }
        };
        let ready = Ready {
            kernel_release: host_release(),
            cpus_online: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            uptime_ms: 0,
            setup_ms: 0,
            modules_loaded: Vec::new(),
            module_failures: Vec::new(),
            tracepoints_enabled: enabled,
            warnings: Vec::new(),
        };
        Ok(LocalTarget {
            agent: Agent::new(env, ready, trace, Children::default()),
            root,
            real,
            _copy: copy,
        })
    }

    /// Where the kernel files are: `/`, or the copy of the stand-in tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the machine itself (not a stand-in tree).
    pub fn is_real(&self) -> bool {
        self.real
    }

    /// Plans (method, records, the guard with what `allow` allows, the kernel files), takes
    /// the inject lock and writes. A stand-in tree is guarded like the machine it stands for.
    /// Returns the actions performed, then what they reported (how a madvise child ended).
    pub fn inject(&mut self, payload: &Payload, allow: Allow) -> Result<Vec<String>, ExecuteError> {
        let request = Injection {
            payload: payload.clone(),
            place: Place::Machine {
                root: self.root.clone(),
            },
        };
        let done = request.execute(allow)?;
        let actions = done.actions.iter().map(ToString::to_string);
        Ok(actions
            .chain(done.outcomes.iter().map(ToString::to_string))
            .collect())
    }
}

impl Target for LocalTarget {
    fn request(
        &mut self,
        what: &str,
        request: Request,
        _timeout: Duration,
    ) -> Result<Reply, TargetError> {
        // Injections are not served here: they go through `inject`, with the guard and the lock.
        if let Request::Inject { .. } = request {
            return Err(TargetError::Refused {
                what: what.to_string(),
                message: "a local target injects through LocalTarget::inject".into(),
            });
        }
        self.agent
            .handle(request)
            .map_err(|e| TargetError::Refused {
                what: what.to_string(),
                message: e.to_string(),
            })
    }
}

/// The running kernel's release (golden headers record it).
pub fn host_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Copies a tree: directories, regular files (with their permissions) and symbolic links
/// (as links).
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&source, &dest)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &dest)?;
        } else if kind.is_file() {
            fs::copy(&source, &dest)?;
        } else {
            return Err(io::Error::other(format!(
                "{} is neither a file, a directory nor a link",
                source.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasdrill_inject::edac::{EccAccess, EccInjection};
    use rasdrill_inject::request::EdacRequest;
    use rasdrill_inject::InjectError;
    use std::os::unix::fs::PermissionsExt;

    fn amd64_edac_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mc0 = dir.path().join("sys/devices/system/edac/mc/mc0");
        fs::create_dir_all(&mc0).unwrap();
        for f in ["inject_section", "inject_word", "inject_ecc_vector"] {
            fs::write(mc0.join(f), "0x0\n").unwrap();
        }
        for f in ["inject_write", "inject_read"] {
            fs::write(mc0.join(f), "").unwrap();
            fs::set_permissions(mc0.join(f), fs::Permissions::from_mode(0o200)).unwrap();
        }
        std::os::unix::fs::symlink("mc0", dir.path().join("sys/devices/system/edac/mc/mc"))
            .unwrap();
        dir
    }

    #[test]
    fn a_stand_in_tree_is_copied_and_the_original_never_changes() {
        let tree = amd64_edac_tree();
        let req = EccInjection::new(0, 1, 2, 0x10, EccAccess::Read).unwrap();
        let mut target = LocalTarget::new(Some(tree.path()), &[]).unwrap();
        assert!(!target.is_real());
        let writes = target
            .inject(&Payload::Edac(EdacRequest::Amd64(req)), Allow::default())
            .unwrap();
        assert_eq!(writes.len(), 4);
        let mc0 = |root: &Path| root.join("sys/devices/system/edac/mc/mc0");
        let copy = target.root().to_path_buf();
        assert_eq!(
            fs::read_to_string(mc0(&copy).join("inject_ecc_vector")).unwrap(),
            "0x10\n"
        );
        // inject_read is write-only: the kernel keeps nothing to read; the write is journaled.
        assert_eq!(
            fs::read_to_string(mc0(&copy).join("inject_read")).unwrap(),
            ""
        );
        assert_eq!(
            fs::read_to_string(copy.join(rasdrill_inject::standin::JOURNAL)).unwrap(),
            "sys/devices/system/edac/mc/mc0/inject_read 1\n"
        );
        let mode = fs::metadata(mc0(&copy).join("inject_write"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o200);
        assert!(
            fs::symlink_metadata(copy.join("sys/devices/system/edac/mc/mc"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(mc0(tree.path()).join("inject_ecc_vector")).unwrap(),
            "0x0\n"
        );
        drop(target);
        assert!(!copy.exists(), "the copy is removed with the target");
    }

    #[test]
    fn kmsg_last_is_a_cursor_to_what_comes_next() {
        let tree = amd64_edac_tree();
        fs::create_dir_all(tree.path().join("dev")).unwrap();
        let log = "6,1,100,-;Linux version 6.1.0-56-amd64\n4,2,5000,-;mce: CPU0: Thermal monitoring enabled\n";
        fs::write(tree.path().join("dev/kmsg"), log).unwrap();
        let mut target = LocalTarget::new(Some(tree.path()), &[]).unwrap();
        assert_eq!(target.kmsg_last().unwrap(), Some(2));
        assert!(target.kmsg(Some(2)).unwrap().is_empty());
        fs::write(target.root().join("dev/kmsg"), "").unwrap();
        assert_eq!(target.kmsg_last().unwrap(), None);
    }

    #[test]
    fn requests_are_answered_in_process_and_qemu_is_refused() {
        let tree = amd64_edac_tree();
        let mut target = LocalTarget::new(Some(tree.path()), &[]).unwrap();
        let text = target
            .read_file(Path::new("/sys/devices/system/edac/mc/mc0/inject_word"))
            .unwrap();
        assert_eq!(text, "0x0\n");
        let err = target
            .inject(
                &Payload::Qemu {
                    records: vec![],
                    broadcast: false,
                    overflow: false,
                },
                Allow::default(),
            )
            .unwrap_err();
        assert!(matches!(
            err,
            ExecuteError::Refused(InjectError::Misfit { .. })
        ));
        let err = target.trace(None).unwrap_err().to_string();
        assert!(err.contains("no trace collector"), "{err}");
    }
}
