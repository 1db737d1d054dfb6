//! The `command` collector: any program a user names, run where the errors go (in the guest,
//! or on this machine for a local target).
//!
//! - `start` (optional) is spawned in the background before the first step, under the
//!   collector's name: a daemon that gathers (its output goes to files the target names);
//! - `collect` runs to completion whenever output is wanted; its standard output, line by
//!   line, is the collector's output; a record is one non-empty line;
//! - `stop` (optional) runs at the end, after a last `collect` (whose output is the final one:
//!   a client may need its daemon); then the `start` process, if still running, is sent
//!   SIGTERM and, after a grace period, SIGKILL.
//!
//! `collect` and `stop` find the files that receive the `start` process's output in
//! `RASDRILL_START_STDOUT` and `RASDRILL_START_STDERR`.
//!
//! A failing `collect` or `stop` (a non-zero exit, a timeout) fails the scenario with the
//! program's standard error. `needs` lists host programs the guest gets in `/usr/bin` (an
//! executable brings the shared libraries it links); a name is looked up on the host's PATH,
//! a path is relative to the scenario's directory. On a local target the programs run here, with
//! `RASDRILL_ROOT` set to the target's root and, for a stand-in tree, that tree as working
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{CollectError, Collected, Collector, GuestNeeds};
use crate::agent::protocol::{RunOutput, RunSpec, SpawnSpec};
use crate::guest::ExtraFile;
use crate::target::Target;

/// How long `collect` and `stop` may run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the `start` process has to exit after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Where `needs` programs go in the guest (on the agent's PATH).
pub const GUEST_BIN: &str = "/usr/bin";

/// A command collector as a scenario declares it.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub name: String,
    pub start: Option<Vec<String>>,
    pub collect: Vec<String>,
    pub stop: Option<Vec<String>>,
    pub needs: Vec<String>,
}

pub struct Command {
    spec: CommandSpec,
    /// The scenario file's directory: `needs` paths are relative to it.
    base: PathBuf,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    started: bool,
    /// The last collection, taken by `stop`.
    final_collection: Option<Collected>,
    /// Why `collect` timed out, once it has: it is not run again (by `stop`, say), so a hung
    /// command costs its limit once.
    hung: Option<String>,
}

impl Command {
    /// `env` and `cwd` apply to all three commands.
    pub fn new(
        spec: CommandSpec,
        base: &Path,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    ) -> Command {
        Command {
            spec,
            base: base.to_path_buf(),
            env,
            cwd,
            started: false,
            final_collection: None,
            hung: None,
        }
    }

    fn run_spec(&self, argv: &[String]) -> RunSpec {
        RunSpec {
            argv: argv.to_vec(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stdin: None,
            timeout_ms: RUN_TIMEOUT.as_millis() as u64,
        }
    }

    /// Runs one of the commands; anything but exit code 0 is the collector's failure.
    fn run(
        &mut self,
        target: &mut dyn Target,
        role: &str,
        argv: &[String],
    ) -> Result<RunOutput, CollectError> {
        let name = &self.spec.name;
        let out = target
            .run(&self.run_spec(argv))
            .map_err(|e| CollectError::target(name, e))?;
        if out.timed_out {
            let message = format!(
                "`{role}` {argv:?} did not finish within {} s and was killed{}",
                RUN_TIMEOUT.as_secs(),
                stderr_note(&out.stderr)
            );
            if role == "collect" {
                self.hung = Some(message.clone());
            }
            return Err(CollectError::failed(name, message));
        }
        if !out.exit.success() {
            let how = match (out.exit.code, out.exit.signal) {
                (Some(code), _) => format!("exited with code {code}"),
                (_, Some(signal)) => format!("was killed by signal {signal}"),
                _ => "ended abnormally".to_string(),
            };
            return Err(CollectError::failed(
                name,
                format!("`{role}` {argv:?} {how}{}", stderr_note(&out.stderr)),
            ));
        }
        Ok(out)
    }

    /// Where a `needs` entry is on this machine.
    fn host_program(&self, need: &str) -> Result<PathBuf, CollectError> {
        if need.contains('/') {
            let path = self.base.join(need);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(CollectError::failed(
                    &self.spec.name,
                    format!("needs: {} is not a file", path.display()),
                ))
            };
        }
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path_var)
            .map(|dir| dir.join(need))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                CollectError::failed(
                    &self.spec.name,
                    format!(
                        "needs: `{need}` is not on this machine's PATH (install it, or give its path)"
                    ),
                )
            })
    }
}

fn stderr_note(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; its standard error:\n{stderr}")
    }
}

impl Collector for Command {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn guest_needs(&mut self, _progress: &mut dyn FnMut(&str)) -> Result<GuestNeeds, CollectError> {
        let mut needs = GuestNeeds::default();
        for need in &self.spec.needs {
            let host = self.host_program(need)?;
            let file = host.file_name().expect("a file has a name");
            needs.files.push(ExtraFile::Executable {
                guest: Path::new(GUEST_BIN).join(file),
                host,
            });
        }
        Ok(needs)
    }

    fn start(
        &mut self,
        target: &mut dyn Target,
        _progress: &mut dyn FnMut(&str),
    ) -> Result<(), CollectError> {
        let Some(argv) = &self.spec.start else {
            return Ok(());
        };
        let spec = SpawnSpec {
            name: self.spec.name.clone(),
            argv: argv.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
        };
        let spawned = target
            .spawn(&spec)
            .map_err(|e| CollectError::target(&self.spec.name, e))?;
        self.env.insert(
            "RASDRILL_START_STDOUT".into(),
            spawned.stdout.display().to_string(),
        );
        self.env.insert(
            "RASDRILL_START_STDERR".into(),
            spawned.stderr.display().to_string(),
        );
        self.started = true;
        Ok(())
    }

    fn collect(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError> {
        if let Some(done) = &self.final_collection {
            return Ok(done.clone());
        }
        if let Some(why) = &self.hung {
            return Err(CollectError::failed(&self.spec.name, why.clone()));
        }
        let out = self.run(target, "collect", &self.spec.collect.clone())?;
        let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        let records = lines.iter().filter(|l| !l.trim().is_empty()).count();
        Ok(Collected {
            lines,
            records,
            ..Default::default()
        })
    }

    fn stop(&mut self, target: &mut dyn Target) -> Result<(), CollectError> {
        let last = self.collect(target);
        let stopped = match self.spec.stop.clone() {
            Some(argv) => self.run(target, "stop", &argv).map(|_| ()),
            None => Ok(()),
        };
        if self.started {
            self.started = false;
            target
                .kill(&self.spec.name, libc::SIGTERM, STOP_GRACE)
                .map_err(|e| CollectError::target(&self.spec.name, e))?;
        }
        self.final_collection = Some(last?);
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(needs: &[&str]) -> CommandSpec {
        CommandSpec {
            name: "c".into(),
            start: None,
            collect: vec!["true".into()],
            stop: None,
            needs: needs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn needs_become_guest_executables_in_usr_bin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tool"), "").unwrap();
        let mut c = Command::new(spec(&["sh", "./tool"]), dir.path(), BTreeMap::new(), None);
        let needs = c.guest_needs(&mut |_| {}).unwrap();
        let guests: Vec<_> = needs
            .files
            .iter()
            .map(|f| match f {
                ExtraFile::Executable { guest, .. } => guest.display().to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(guests, ["/usr/bin/sh", "/usr/bin/tool"]);
    }

    /// Answers every `run` as a command that hit its timeout, counting the requests.
    #[derive(Default)]
    struct Hangs {
        runs: usize,
    }

    impl Target for Hangs {
        fn request(
            &mut self,
            _: &str,
            request: crate::agent::protocol::Request,
            _: Duration,
        ) -> Result<crate::agent::protocol::Reply, crate::target::TargetError> {
            assert!(matches!(request, crate::agent::protocol::Request::Run(_)));
            self.runs += 1;
            Ok(crate::agent::protocol::Reply::Run(RunOutput {
                exit: crate::agent::protocol::ExitInfo {
                    code: None,
                    signal: Some(9),
                },
                stdout: String::new(),
                stderr: String::new(),
                timed_out: true,
                elapsed_ms: RUN_TIMEOUT.as_millis() as u64,
            }))
        }
    }

    #[test]
    fn a_hung_collect_costs_its_limit_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new(spec(&[]), dir.path(), BTreeMap::new(), None);
        let mut target = Hangs::default();
        let err = c.collect(&mut target).unwrap_err().to_string();
        assert!(
            err.contains("did not finish within 30 s and was killed"),
            "{err}"
        );
        // The runner stops every collector after a failed step, and stop collects one last
        // time: that must not wait for the hung command again.
        let stopped = c.stop(&mut target).unwrap_err().to_string();
        assert_eq!(stopped, err);
        assert_eq!(c.collect(&mut target).unwrap_err().to_string(), err);
        assert_eq!(target.runs, 1, "the hung command ran once");
    }

    #[test]
    fn a_missing_program_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new(
            spec(&["no-such-program-rasdrill"]),
            dir.path(),
            BTreeMap::new(),
            None,
        );
        let err = c.guest_needs(&mut |_| {}).unwrap_err().to_string();
        assert!(
            err.contains("`no-such-program-rasdrill` is not on this machine's PATH"),
            "{err}"
        );
    }
}
