//! What the host tells the agent to set up, written into the initramfs as JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::trace::RAS_TRACEPOINTS;

/// Where the host puts the configuration inside the initramfs.
pub const CONFIG_PATH: &str = "/etc/rasdrill/agent.json";

/// The agent's setup, applied once at boot in this order: modules, poll interval,
/// setup steps, tracepoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The serial port the host listens on (the console is ttyS0).
    pub serial: PathBuf,
    /// Kernel modules (`.ko` paths inside the initramfs), loaded in this order.
    pub modules: Vec<PathBuf>,
    /// Written to every `machinecheck*/check_interval`; `None` leaves the kernel's 300 s.
    pub mce_check_interval_s: Option<u32>,
    /// Tracepoints (`<system>/<event>`) to enable where this kernel has them.
    pub tracepoints: Vec<String>,
    /// Extra writes and directories, e.g. `/sys/kernel/debug/mce/fake_panic` = 1.
    pub setup: Vec<SetupStep>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            serial: PathBuf::from("/dev/ttyS1"),
            modules: Vec::new(),
            mce_check_interval_s: Some(1),
            tracepoints: RAS_TRACEPOINTS.iter().map(|t| t.to_string()).collect(),
            setup: Vec::new(),
        }
    }
}

/// One setup action on a kernel file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SetupStep {
    Write {
        path: PathBuf,
        value: String,
    },
    /// `mkdir -p`; e.g. a tracefs instance (`/sys/kernel/tracing/instances/rasdaemon`).
    Mkdir {
        path: PathBuf,
    },
}

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the agent configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the agent configuration {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl AgentConfig {
    /// Reads the configuration; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentConfig::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The JSON the host writes into the initramfs.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the configuration is plain data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fills_defaults() {
        let config = AgentConfig {
            modules: vec![
                "/lib/modules/6.1.0-56-amd64/kernel/arch/x86/kernel/cpu/mce/mce-inject.ko".into(),
            ],
            setup: vec![
                SetupStep::Write {
                    path: "/sys/kernel/debug/mce/fake_panic".into(),
                    value: "1".into(),
                },
                SetupStep::Mkdir {
                    path: "/sys/kernel/tracing/instances/rasdaemon".into(),
                },
            ],
            ..AgentConfig::default()
        };
        let back: AgentConfig = serde_json::from_str(&config.to_json()).unwrap();
        assert_eq!(back, config);

        let partial: AgentConfig =
            serde_json::from_str(r#"{"mce_check_interval_s": null}"#).unwrap();
        assert_eq!(partial.serial, PathBuf::from("/dev/ttyS1"));
        assert_eq!(partial.mce_check_interval_s, None);
        assert_eq!(partial.tracepoints.len(), RAS_TRACEPOINTS.len());
    }

    #[test]
    fn load_names_the_file_and_the_unknown_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.json");
        assert_eq!(AgentConfig::load(&path).unwrap(), AgentConfig::default());
        std::fs::write(&path, r#"{"modles": []}"#).unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("agent.json") && err.contains("modles"),
            "{err}"
        );
    }
}
