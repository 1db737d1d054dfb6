//! The in-guest agent and its host-side client.
//!
//! The `rasdrill` executable becomes `/init` of a throw-away guest: [`run`] mounts what it
//! needs, applies [`AgentConfig`] (read from [`CONFIG_PATH`]), sends `Ready` on the second
//! serial port and answers [`protocol::Request`]s until the host asks it to power off.
//! The host drives it with [`AgentClient`].

pub mod client;
pub mod config;
mod init;
pub mod kmsg;
mod poison;
pub mod process;
pub mod protocol;
mod serial;
pub mod server;
pub mod trace;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::path::PathBuf;

pub use client::{AgentClient, ClientError};
pub use config::{AgentConfig, ConfigError, SetupStep, CONFIG_PATH};
pub use protocol::{Ready, RunSpec, SpawnSpec};
pub use rasdrill_inject::debugfs::InjectionType;

/// The agent could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent must run as PID 1 (the guest's /init); this process is pid {pid}")]
    NotInit { pid: u32 },
    #[error("cannot mount {fstype} on {target}: {source}")]
    Mount {
        fstype: String,
        target: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot talk on the serial port {path}: {source}")]
    Serial {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

/// Whether this process is the guest's init.
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Becomes the agent. As PID 1 this never returns: setup errors are printed on the console
/// and the guest powers off, as it does when the host asks. Any other process gets `NotInit`,
/// so running it by mistake on a host mounts nothing.
pub fn run() -> Result<Infallible, AgentError> {
    if !is_init() {
        return Err(AgentError::NotInit {
            pid: std::process::id(),
        });
    }
    init::run_as_init()
}
