//! A small QMP client: one JSON object per line over a unix socket.
//!
//! QEMU greets with `{"QMP": ...}`; the client must send `qmp_capabilities` before any other
//! command. Replies carry the `id` of their command; events (`{"event": ...}`) arrive
//! whenever they happen, in between, and are kept here until asked for. Every read has a
//! deadline and every error says how long it waited.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::wait::{connect_until, seconds, Deadline};

/// How long a command may take to answer unless changed with [`Qmp::set_timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// An asynchronous QMP event, e.g. `SHUTDOWN`, `RESET`, `STOP`, `GUEST_PANICKED`,
/// `MEMORY_FAILURE`.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    /// The event's `data` object (`Value::Null` when it has none).
    pub data: Value,
    /// QEMU's host timestamp, in microseconds since the epoch.
    pub timestamp_us: Option<u64>,
}

/// A failed QMP exchange. `command` is `greeting` or `qmp_capabilities` during the handshake.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to the QMP socket {path} within {}: {source}", seconds(*.elapsed))]
    Connect {
        path: PathBuf,
        elapsed: Duration,
        source: io::Error,
    },
    #[error("QMP `{command}`: no reply within {}", seconds(*.elapsed))]
    Timeout { command: String, elapsed: Duration },
    #[error("QMP `{command}`: QEMU closed the connection after {}", seconds(*.elapsed))]
    Closed { command: String, elapsed: Duration },
    #[error("QMP `{command}`: {source} after {}", seconds(*.elapsed))]
    Io {
        command: String,
        elapsed: Duration,
        source: io::Error,
    },
    #[error("QMP `{command}`: unexpected message after {}: {message}", seconds(*.elapsed))]
    Protocol {
        command: String,
        elapsed: Duration,
        message: String,
    },
    #[error("QMP `{command}` failed after {}: {class}: {desc}", seconds(*.elapsed))]
    Command {
        command: String,
        elapsed: Duration,
        class: String,
        desc: String,
    },
}

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct Qmp {
    stream: UnixStream,
    /// Bytes read but not yet split into lines.
    pending: Vec<u8>,
    events: VecDeque<QmpEvent>,
    greeting: Value,
    next_id: u64,
    timeout: Duration,
}

impl Qmp {
    /// Connects to `path`, retrying while the socket does not exist yet or refuses, then
    /// completes the handshake; all within `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let deadline = Deadline::after(timeout);
        match connect_until(path, &deadline) {
            Ok(stream) => Qmp::handshake(stream, deadline.remaining()),
            Err(source) => Err(QmpError::Connect {
                path: path.to_path_buf(),
                elapsed: deadline.elapsed(),
                source,
            }),
        }
    }

    /// Reads the greeting from a connected stream and negotiates capabilities.
    pub fn handshake(stream: UnixStream, timeout: Duration) -> Result<Qmp, QmpError> {
        let mut qmp = Qmp {
            stream,
            pending: Vec::new(),
            events: VecDeque::new(),
            greeting: Value::Null,
            next_id: 1,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        };
        let deadline = Deadline::after(timeout);
        let greeting = qmp.read_message("greeting", &deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(protocol("greeting", &deadline, &greeting));
        }
        qmp.greeting = greeting;
        qmp.execute_within("qmp_capabilities", None, &deadline)?;
        Ok(qmp)
    }

    /// The greeting, e.g. `{"QMP": {"version": {"qemu": {"major": 7, ...}}, ...}}`.
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// How long later commands may take to answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Runs a command and returns its `return` value. Events that arrive meanwhile are kept
    /// for [`Qmp::take_events`] and [`Qmp::wait_event`].
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let deadline = Deadline::after(self.timeout);
        self.execute_within(command, arguments, &deadline)
    }

    /// Runs one HMP (human monitor) command line, e.g. `info version` or
    /// `mce 0 4 0x9c00... 0 0x1234 0`, and returns its text output. HMP reports many errors
    /// only as text in a successful reply: the caller must read it.
    pub fn human_monitor_command(&mut self, line: &str) -> Result<String, QmpError> {
        let deadline = Deadline::after(self.timeout);
        let reply = self.execute_within(
            "human-monitor-command",
            Some(json!({ "command-line": line })),
            &deadline,
        )?;
        match reply {
            Value::String(text) => Ok(text),
            other => Err(protocol("human-monitor-command", &deadline, &other)),
        }
    }

    /// Removes and returns the buffered events, after reading any that are already waiting
    /// on the socket (without blocking).
    pub fn take_events(&mut self) -> Result<Vec<QmpEvent>, QmpError> {
        self.read_available()?;
        Ok(self.events.drain(..).collect())
    }

    /// Waits up to `timeout` for the event `name`, which is removed from the buffer and
    /// returned; other events stay buffered. An event that came earlier counts.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<QmpEvent, QmpError> {
        let deadline = Deadline::after(timeout);
        let what = format!("wait for event {name}");
        loop {
            if let Some(at) = self.events.iter().position(|e| e.name == name) {
                return Ok(self.events.remove(at).expect("position is in range"));
            }
            let message = self.read_message(&what, &deadline)?;
            // Anything else is a late reply to a command that timed out: nobody wants it now.
            self.keep_if_event(&message);
        }
    }

    fn execute_within(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        deadline: &Deadline,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        let io_error = |source| QmpError::Io {
            command: command.to_owned(),
            elapsed: deadline.elapsed(),
            source,
        };
        self.stream
            .set_write_timeout(Some(deadline.remaining().max(Duration::from_millis(1))))
            .map_err(io_error)?;
        self.stream.write_all(line.as_bytes()).map_err(io_error)?;
        loop {
            let message = self.read_message(command, deadline)?;
            if self.keep_if_event(&message) || message.get("id") != Some(&json!(id)) {
                continue; // an event, or the late reply to an earlier command that timed out
            }
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let text = |key: &str| {
                    error
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    elapsed: deadline.elapsed(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(protocol(command, deadline, &message));
        }
    }

    /// Buffers `message` if it is an event.
    fn keep_if_event(&mut self, message: &Value) -> bool {
        let Some(name) = message.get("event").and_then(Value::as_str) else {
            return false;
        };
        let timestamp_us = message.get("timestamp").and_then(|t| {
            Some(t.get("seconds")?.as_u64()? * 1_000_000 + t.get("microseconds")?.as_u64()?)
        });
        let data = message.get("data").cloned().unwrap_or(Value::Null);
        self.events.push_back(QmpEvent {
            name: name.to_owned(),
            data,
            timestamp_us,
        });
        true
    }

    /// The next complete JSON line, reading as needed until `deadline`.
    fn read_message(&mut self, command: &str, deadline: &Deadline) -> Result<Value, QmpError> {
        loop {
            if let Some(message) = self.next_buffered(command, deadline)? {
                return Ok(message);
            }
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(QmpError::Timeout {
                    command: command.to_owned(),
                    elapsed: deadline.elapsed(),
                });
            }
            let io_error = |source| QmpError::Io {
                command: command.to_owned(),
                elapsed: deadline.elapsed(),
                source,
            };
            // A zero timeout means "block forever" to the socket: never pass one.
            self.stream
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
                .map_err(io_error)?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(QmpError::Closed {
                        command: command.to_owned(),
                        elapsed: deadline.elapsed(),
                    })
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    /// Reads whatever the socket holds right now into the event buffer.
    fn read_available(&mut self) -> Result<(), QmpError> {
        let deadline = Deadline::after(Duration::ZERO);
        let io_error = |source| QmpError::Io {
            command: "read events".into(),
            elapsed: Duration::ZERO,
            source,
        };
        self.stream.set_nonblocking(true).map_err(io_error)?;
        let mut chunk = [0u8; 4096];
        let result = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break Ok(()), // closed: the buffered events are still worth returning
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(io_error(e)),
            }
        };
        self.stream.set_nonblocking(false).map_err(io_error)?;
        result?;
        while let Some(message) = self.next_buffered("read events", &deadline)? {
            self.keep_if_event(&message);
        }
        Ok(())
    }

    /// Splits one line off the pending bytes and parses it.
    fn next_buffered(
        &mut self,
        command: &str,
        deadline: &Deadline,
    ) -> Result<Option<Value>, QmpError> {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(line.trim())
                .map(Some)
                .map_err(|e| QmpError::Protocol {
                    command: command.to_owned(),
                    elapsed: deadline.elapsed(),
                    message: format!("{e}: {}", line.trim()),
                });
        }
        Ok(None)
    }
}

fn protocol(command: &str, deadline: &Deadline, message: &Value) -> QmpError {
    QmpError::Protocol {
        command: command.to_owned(),
        elapsed: deadline.elapsed(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A socket that accepts and then says nothing: the client must give up on time.
    #[test]
    fn a_silent_peer_times_out_with_the_elapsed_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let err = Qmp::connect(&path, Duration::from_millis(200)).unwrap_err();
        drop(listener);
        let QmpError::Timeout { command, elapsed } = &err else {
            panic!("{err}")
        };
        assert_eq!(command, "greeting");
        assert!(
            *elapsed >= Duration::from_millis(200) && *elapsed < Duration::from_secs(3),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("QMP `greeting`: no reply within 0.2"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_socket_is_a_connect_error_after_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        let err = Qmp::connect(&path, Duration::from_millis(100)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot connect to the QMP socket {} within 0.1",
                path.display()
            )),
            "{message}"
        );
        assert!(
            message.ends_with("No such file or directory (os error 2)"),
            "{message}"
        );
    }
}
