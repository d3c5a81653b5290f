//! A small QMP client: capabilities negotiation, commands with ids, and events.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::deadline::Deadline;
use crate::error::LabError;
use crate::serial::connect_unix;

/// An asynchronous QMP event (`SHUTDOWN`, `POWERDOWN`, `RESET`, `STOP`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
}

/// One message from QEMU.
#[derive(Debug, Clone, PartialEq)]
pub enum QmpMessage {
    Greeting,
    Return {
        id: Option<Value>,
        value: Value,
    },
    Error {
        id: Option<Value>,
        class: String,
        desc: String,
    },
    Event(QmpEvent),
}

/// Classifies one JSON line from QEMU.
pub fn parse_message(line: &str) -> Result<QmpMessage, serde_json::Error> {
    let v: Value = serde_json::from_str(line)?;
    let id = v.get("id").cloned();
    Ok(if v.get("QMP").is_some() {
        QmpMessage::Greeting
    } else if let Some(value) = v.get("return") {
        QmpMessage::Return {
            id,
            value: value.clone(),
        }
    } else if let Some(err) = v.get("error") {
        QmpMessage::Error {
            id,
            class: err["class"].as_str().unwrap_or("").to_string(),
            desc: err["desc"].as_str().unwrap_or("").to_string(),
        }
    } else {
        QmpMessage::Event(QmpEvent {
            name: v["event"].as_str().unwrap_or("").to_string(),
            data: v.get("data").cloned().unwrap_or(Value::Null),
        })
    })
}

/// A QMP connection in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    events: VecDeque<QmpEvent>,
    socket: PathBuf,
    /// Bytes of a line not yet complete when a read timed out.
    pending: String,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(socket: &Path, deadline: Deadline) -> Result<Qmp, LabError> {
        let stream = connect_unix(socket, deadline, "the QMP socket")?;
        let writer = stream.try_clone().map_err(|source| LabError::QmpIo {
            socket: socket.to_path_buf(),
            source,
        })?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            events: VecDeque::new(),
            socket: socket.to_path_buf(),
            pending: String::new(),
        };
        match qmp.read_message(deadline)? {
            QmpMessage::Greeting => {}
            other => {
                return Err(LabError::QmpProtocol {
                    detail: format!("expected the QMP greeting, got {other:?}"),
                })
            }
        }
        qmp.execute("qmp_capabilities", None, deadline)?;
        Ok(qmp)
    }

    fn read_message(&mut self, deadline: Deadline) -> Result<QmpMessage, LabError> {
        loop {
            if deadline.expired() {
                return Err(LabError::QmpTimeout {
                    what: "a QMP message".into(),
                    waited: deadline.total(),
                });
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(deadline.remaining_at_least(Duration::from_millis(1))))
                .map_err(|source| LabError::QmpIo {
                    socket: self.socket.clone(),
                    source,
                })?;
            // A partial line stays in `pending` across a timeout, so no message is torn.
            match self.reader.read_line(&mut self.pending) {
                Ok(0) => return Err(LabError::QmpClosed),
                Ok(_) if self.pending.ends_with('\n') => {
                    let line = std::mem::take(&mut self.pending);
                    return parse_message(line.trim()).map_err(|source| LabError::QmpJson {
                        line: line.trim().to_string(),
                        source,
                    });
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(LabError::QmpIo {
                        socket: self.socket.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// The next event, waiting at most `wait`; `None` when none came in that time.
    pub fn next_event(&mut self, wait: Duration) -> Result<Option<QmpEvent>, LabError> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(Some(ev));
        }
        let deadline = Deadline::after(wait);
        loop {
            match self.read_message(deadline) {
                Ok(QmpMessage::Event(ev)) => return Ok(Some(ev)),
                Ok(_) => {}
                Err(LabError::QmpTimeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `command` with `arguments`; returns its `return` value.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        deadline: Deadline,
    ) -> Result<Value, LabError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|source| LabError::QmpIo {
                socket: self.socket.clone(),
                source,
            })?;
        loop {
            let m = self.read_message(deadline).map_err(|e| match e {
                LabError::QmpTimeout { waited, .. } => LabError::QmpTimeout {
                    what: format!("the reply to {command}"),
                    waited,
                },
                other => other,
            })?;
            match m {
                QmpMessage::Return {
                    id: Some(rid),
                    value,
                } if rid == json!(id) => return Ok(value),
                QmpMessage::Error {
                    id: Some(rid),
                    class,
                    desc,
                } if rid == json!(id) => {
                    return Err(LabError::QmpCommand {
                        command: command.to_string(),
                        class,
                        desc,
                    })
                }
                QmpMessage::Event(ev) => self.events.push_back(ev),
                _ => {}
            }
        }
    }

    /// Waits for event `name` (also one that arrived earlier and was not yet taken).
    pub fn wait_event(&mut self, name: &str, deadline: Deadline) -> Result<QmpEvent, LabError> {
        loop {
            if let Some(pos) = self.events.iter().position(|e| e.name == name) {
                let ev = self.events.remove(pos);
                if let Some(ev) = ev {
                    return Ok(ev);
                }
            }
            match self.read_message(deadline) {
                Ok(QmpMessage::Event(ev)) => self.events.push_back(ev),
                Ok(_) => {}
                Err(LabError::QmpTimeout { waited, .. }) => {
                    return Err(LabError::QmpTimeout {
                        what: format!("QMP event {name}"),
                        waited,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Events received so far and not yet taken.
    pub fn take_events(&mut self) -> Vec<QmpEvent> {
        self.events.drain(..).collect()
    }

    /// ACPI power button.
    pub fn system_powerdown(&mut self, deadline: Deadline) -> Result<(), LabError> {
        self.execute("system_powerdown", None, deadline).map(drop)
    }

    /// Hard reset (power cycle without losing the process).
    pub fn system_reset(&mut self, deadline: Deadline) -> Result<(), LabError> {
        self.execute("system_reset", None, deadline).map(drop)
    }

    /// Power loss: QEMU exits at once. The connection closing before the reply counts as done.
    pub fn quit(&mut self, deadline: Deadline) -> Result<(), LabError> {
        match self.execute("quit", None, deadline) {
            Ok(_) | Err(LabError::QmpClosed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Freezes the guest (a hung node).
    pub fn stop(&mut self, deadline: Deadline) -> Result<(), LabError> {
        self.execute("stop", None, deadline).map(drop)
    }

    /// Resumes a stopped guest.
    pub fn cont(&mut self, deadline: Deadline) -> Result<(), LabError> {
        self.execute("cont", None, deadline).map(drop)
    }

    /// Plugs (`up`) or pulls the cable of NIC device `name`.
    pub fn set_link(&mut self, name: &str, up: bool, deadline: Deadline) -> Result<(), LabError> {
        self.execute(
            "set_link",
            Some(json!({ "name": name, "up": up })),
            deadline,
        )
        .map(drop)
    }

    /// Unplugs device `id` (a pulled disk).
    pub fn device_del(&mut self, id: &str, deadline: Deadline) -> Result<(), LabError> {
        self.execute("device_del", Some(json!({ "id": id })), deadline)
            .map(drop)
    }

    /// Hot-plugs a device (`{"driver": …, "id": …, …}`).
    pub fn device_add(&mut self, args: Value, deadline: Deadline) -> Result<(), LabError> {
        self.execute("device_add", Some(args), deadline).map(drop)
    }

    /// Adds a block node (e.g. a raw file for a hot-plugged disk).
    pub fn blockdev_add(&mut self, args: Value, deadline: Deadline) -> Result<(), LabError> {
        self.execute("blockdev-add", Some(args), deadline).map(drop)
    }

    /// `query-status`: the run state (`running`, `paused`, `shutdown`, …).
    pub fn status(&mut self, deadline: Deadline) -> Result<String, LabError> {
        let v = self.execute("query-status", None, deadline)?;
        Ok(v["status"].as_str().unwrap_or("").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn classifies_messages() {
        assert_eq!(
            parse_message(r#"{"QMP": {"version": {}, "capabilities": []}}"#).unwrap(),
            QmpMessage::Greeting
        );
        assert_eq!(
            parse_message(r#"{"return": {}, "id": 3}"#).unwrap(),
            QmpMessage::Return {
                id: Some(json!(3)),
                value: json!({})
            }
        );
        assert_eq!(
            parse_message(r#"{"id": 4, "error": {"class": "GenericError", "desc": "no"}}"#)
                .unwrap(),
            QmpMessage::Error {
                id: Some(json!(4)),
                class: "GenericError".into(),
                desc: "no".into()
            }
        );
        assert_eq!(
            parse_message(r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true}}"#).unwrap(),
            QmpMessage::Event(QmpEvent {
                name: "SHUTDOWN".into(),
                data: json!({"guest": true})
            })
        );
        assert!(parse_message("nope").is_err());
    }

    /// A scripted QEMU: answers each command by id, with an event before the second reply.
    #[test]
    fn negotiates_and_matches_replies_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            let mut r = BufReader::new(conn);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            let mut seen = Vec::new();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 {
                let v: Value = serde_json::from_str(&line).unwrap();
                line.clear();
                let cmd = v["execute"].as_str().unwrap().to_string();
                seen.push(cmd.clone());
                let id = v["id"].clone();
                match cmd.as_str() {
                    "system_powerdown" => {
                        w.write_all(b"{\"event\": \"POWERDOWN\", \"timestamp\": {}}\r\n").unwrap();
                        w.write_all(format!("{{\"return\": {{}}, \"id\": {id}}}\r\n").as_bytes()).unwrap();
                    }
                    "device_del" => w
                        .write_all(
                            format!("{{\"id\": {id}, \"error\": {{\"class\": \"DeviceNotFound\", \"desc\": \"Device 'x' not found\"}}}}\r\n")
                                .as_bytes(),
                        )
                        .unwrap(),
                    "quit" => break,
                    _ => w.write_all(format!("{{\"return\": {{}}, \"id\": {id}}}\r\n").as_bytes()).unwrap(),
                }
            }
            seen
        });
        let mut qmp = Qmp::connect(&sock, Deadline::secs(5)).unwrap();
        qmp.system_powerdown(Deadline::secs(5)).unwrap();
        let ev = qmp.wait_event("POWERDOWN", Deadline::secs(5)).unwrap();
        assert_eq!(ev.name, "POWERDOWN");
        let err = qmp.device_del("x", Deadline::secs(5)).unwrap_err();
        assert!(err.to_string().contains("DeviceNotFound"), "{err}");
        let err = qmp
            .wait_event("SHUTDOWN", Deadline::after(Duration::from_millis(100)))
            .unwrap_err();
        assert!(err.to_string().contains("SHUTDOWN"), "{err}");
        qmp.quit(Deadline::secs(5)).unwrap();
        assert_eq!(
            server.join().unwrap(),
            vec!["qmp_capabilities", "system_powerdown", "device_del", "quit"]
        );
    }
}
