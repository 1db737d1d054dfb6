//! Collectors: what gathers the decoders' output during a scenario (the kernel log, trace
//! events, rasdaemon, any command). One module per collector, all behind [`Collector`].
//!
//! The runner's life cycle for each scenario, on a guest or on this machine:
//! 1. `guest_needs` (guest scenarios, once, before the boot): files, modules and setup steps the
//!    guest must have (see `run::plan` for how guests are shared).
//! 2. `start` before the first step: take a cursor, start a daemon. Each scenario builds fresh
//!    collectors, so what one scenario left behind is never seen by the next.
//! 3. `collect` as often as the runner likes (`wait` steps poll it): everything seen since
//!    `start`, raw (the runner normalises before comparing).
//! 4. `stop` at the end, also after a failed step. A collector whose output needs its daemon
//!    (or that a daemon completes on exit) collects one last time in `stop`.
//! 5. `collect` after `stop`: the final output, which the runner compares.
//!
//! After a guest panic the guest cannot be asked anything: `collect_after_panic` gets the
//! console text since `start` instead.

pub mod command;
pub mod kmsg;
pub mod limit;
pub mod rasdaemon;
pub mod rasdaemon_build;
pub mod rasdaemon_events;
pub mod trace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::config::SetupStep;
use crate::guest::ExtraFile;
use crate::scenario::{self, CollectorKind};
use crate::target::{Target, TargetError};

/// How often collectors are polled while waiting.
pub const POLL: Duration = Duration::from_millis(100);
/// Once what a wait asks for has been seen, output must stop growing for this long: a decoder
/// prints several lines, from a work queue, after the trace event.
pub const QUIET: Duration = Duration::from_millis(400);

/// What a collector gathered since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// The output, one line per element, as the collector prints it (not normalised).
    pub lines: Vec<String>,
    /// How many error records it has seen: what `wait: {records: N}` counts. Each collector
    /// documents what one record is.
    pub records: usize,
    /// The first line of each kernel crash report (oops, BUG, WARNING, call trace) seen: a
    /// scenario with any fails, whatever its golden files say.
    pub crashes: Vec<String>,
}

/// What a guest must contain for a collector to work. Part of the guest's identity: scenarios
/// whose collectors need different things get different guests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestNeeds {
    /// Programs and trees copied into the initramfs (an executable brings its libraries).
    pub files: Vec<ExtraFile>,
    /// Kernel modules to load at boot (dependencies are added).
    pub modules: Vec<String>,
    /// Writes and directories the agent applies at boot, before any scenario runs.
    pub setup: Vec<SetupStep>,
}

impl GuestNeeds {
    /// Adds `other`'s needs, skipping what is already there.
    pub fn merge(&mut self, other: GuestNeeds) {
        push_new(&mut self.files, other.files);
        push_new(&mut self.modules, other.modules);
        push_new(&mut self.setup, other.setup);
    }
}

/// Appends the items `list` does not hold yet, in order: lists of needs stay small, and their
/// order is what the guest applies.
pub(crate) fn push_new<T: PartialEq>(list: &mut Vec<T>, items: impl IntoIterator<Item = T>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// A collector could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The target failed under it (the guest died, a request timed out): an infrastructure
    /// failure, not the scenario's.
    #[error("collector `{collector}`: {source}")]
    Target {
        collector: String,
        #[source]
        source: Box<TargetError>,
    },
    /// The collector itself failed (its command exited with an error, its output is unusable,
    /// what it needs cannot be found): the scenario fails.
    #[error("collector `{collector}`: {message}")]
    Failed { collector: String, message: String },
}

impl CollectError {
    pub fn target(collector: &str, source: TargetError) -> CollectError {
        CollectError::Target {
            collector: collector.to_string(),
            source: Box::new(source),
        }
    }

    pub fn failed(collector: &str, message: impl Into<String>) -> CollectError {
        CollectError::Failed {
            collector: collector.to_string(),
            message: message.into(),
        }
    }
}

/// One collector of one scenario.
pub trait Collector {
    /// The name scenarios use for it (`kmsg`, `trace`, `rasdaemon`, a command's name).
    fn name(&self) -> &str;

    /// What the guest must contain. Called once per scenario before any guest boots; it may
    /// fetch what it needs (say so through `progress`).
    fn guest_needs(&mut self, progress: &mut dyn FnMut(&str)) -> Result<GuestNeeds, CollectError> {
        let _ = progress;
        Ok(GuestNeeds::default())
    }

    /// Starts collecting: from now on, what the decoders say is this scenario's.
    /// Says through `progress` when it will take longer than usual.
    fn start(
        &mut self,
        target: &mut dyn Target,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), CollectError>;

    /// Everything seen since `start`, raw.
    fn collect(&mut self, target: &mut dyn Target) -> Result<Collected, CollectError>;

    /// Stops what `start` started. Called once, also when a step failed.
    fn stop(&mut self, target: &mut dyn Target) -> Result<(), CollectError>;

    /// The output after the guest panicked, from the console text printed since `start`.
    /// Only the kernel log can be recovered that way.
    fn collect_after_panic(&mut self, console: &str) -> Result<Collected, CollectError> {
        let _ = console;
        Err(CollectError::failed(
            self.name(),
            "cannot collect after the guest panicked (only kmsg can: compare kmsg alone in a \
             scenario that expects a panic)",
        ))
    }
}

/// What a collector may need to know about where its scenario runs.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The scenario file's directory (relative paths in a scenario are relative to it).
    pub base: PathBuf,
    /// Environment for the programs a collector runs.
    pub env: BTreeMap<String, String>,
    /// Their working directory (`None`: the target's default).
    pub cwd: Option<PathBuf>,
    /// The rasdaemon of scenarios that do not choose one.
    pub rasdaemon: rasdaemon_build::RasdaemonBuild,
}

impl Context {
    /// Guest collectors run their programs with the agent's environment.
    pub fn for_guest(scenario: &scenario::Scenario) -> Context {
        Context {
            base: scenario_dir(scenario),
            ..Context::default()
        }
    }

    /// On this machine: `RASDRILL_ROOT` names the root, and a stand-in tree is the working
    /// directory of the collectors' programs.
    pub fn for_local(scenario: &scenario::Scenario, root: &Path, stand_in: bool) -> Context {
        let mut ctx = Context {
            base: scenario_dir(scenario),
            ..Context::default()
        };
        ctx.env
            .insert("RASDRILL_ROOT".into(), root.display().to_string());
        if stand_in {
            ctx.cwd = Some(root.to_path_buf());
        }
        ctx
    }
}

fn scenario_dir(scenario: &scenario::Scenario) -> PathBuf {
    scenario
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A fresh collector for one scenario, as the scenario declares it, its output capped at
/// `limit` bytes (the scenario's `output_limit_kib`).
pub fn build(
    c: &scenario::Collector,
    ctx: &Context,
    limit: usize,
) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(limit::Limited::new(build_kind(c, ctx)?, limit)))
}

fn build_kind(c: &scenario::Collector, ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(match &c.kind {
        CollectorKind::Kmsg { filter, boot_log } => {
            Box::new(kmsg::Kmsg::new(filter.as_deref(), *boot_log)?)
        }
        CollectorKind::Trace { events } => Box::new(trace::Trace::new(events)),
        CollectorKind::Command {
            start,
            collect,
            stop,
            needs,
        } => Box::new(command::Command::new(
            command::CommandSpec {
                name: c.name.clone(),
                start: start.clone(),
                collect: collect.clone(),
                stop: stop.clone(),
                needs: needs.clone(),
            },
            &ctx.base,
            ctx.env.clone(),
            ctx.cwd.clone(),
        )),
        CollectorKind::Rasdaemon { build } => Box::new(rasdaemon::Rasdaemon::from_env(
            build.clone().unwrap_or_else(|| ctx.rasdaemon.clone()),
        )?),
    })
}
