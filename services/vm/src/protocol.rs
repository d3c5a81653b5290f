//! The wire protocol between cairnd and the libvirt helper `cairn-virt`: newline-delimited JSON, one request per `Hypervisor` call, one response per request (same id), and event lines for `subscribe`.
//!
//! ```text
//! → {"id":7,"call":"start","name":"web"}
//! ← {"response":{"id":7,"outcome":{"ok":"done"}}}
//! → {"id":8,"call":"states"}
//! ← {"event":{"domain":{"name":"web","event":"started"}}}
//! ← {"response":{"id":8,"outcome":{"ok":{"states":{"web":"running"}}}}}
//! → {"id":9,"call":"undefine","name":"gone"}
//! ← {"response":{"id":9,"outcome":{"err":{"not_defined":"gone"}}}}
//! ```
//!
//! Responses may come in any order (the helper serves requests concurrently).

use crate::hv_types::{DomainSample, HvError, HvEvent, NodeCapacity, RunState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One call of the `Hypervisor` trait, with the caller's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub call: Call,
}

/// The `Hypervisor` method called and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    Capacity,
    Define {
        xml: String,
    },
    Undefine {
        name: String,
    },
    Start {
        name: String,
    },
    Shutdown {
        name: String,
    },
    Destroy {
        name: String,
    },
    Reboot {
        name: String,
    },
    Reset {
        name: String,
    },
    Sample {
        name: String,
        disk_paths: Vec<String>,
    },
    States,
    /// From now on the helper sends every domain event as an [`Line::Event`].
    Subscribe,
}

impl Call {
    /// The method's name, for logs and errors.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Capacity => "capacity",
            Call::Define { .. } => "define",
            Call::Undefine { .. } => "undefine",
            Call::Start { .. } => "start",
            Call::Shutdown { .. } => "shutdown",
            Call::Destroy { .. } => "destroy",
            Call::Reboot { .. } => "reboot",
            Call::Reset { .. } => "reset",
            Call::Sample { .. } => "sample",
            Call::States => "states",
            Call::Subscribe => "subscribe",
        }
    }
}

/// What a successful call returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The methods that return `()`.
    Done,
    Capacity(NodeCapacity),
    Sample(Option<DomainSample>),
    States(BTreeMap<String, RunState>),
}

/// A call's result on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(Reply),
    Err(HvError),
}

impl From<Result<Reply, HvError>> for Outcome {
    fn from(r: Result<Reply, HvError>) -> Outcome {
        match r {
            Ok(reply) => Outcome::Ok(reply),
            Err(e) => Outcome::Err(e),
        }
    }
}

impl From<Outcome> for Result<Reply, HvError> {
    fn from(o: Outcome) -> Result<Reply, HvError> {
        match o {
            Outcome::Ok(reply) => Ok(reply),
            Outcome::Err(e) => Err(e),
        }
    }
}

/// The answer to request `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub outcome: Outcome,
}

/// A line the helper writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Response(Response),
    /// A domain event of the subscription (unsolicited).
    Event(HvEvent),
}

/// `value` as one line of JSON, newline included.
pub fn encode<T: Serialize>(value: &T) -> String {
    // Our types have string keys and no non-finite floats: serializing cannot fail.
    let mut line = serde_json::to_string(value)
        .unwrap_or_else(|e| serde_json::json!({ "unencodable": e.to_string() }).to_string());
    line.push('\n');
    line
}

/// The id of a request line that does not parse as a [`Request`], when it has one (so the
/// caller still gets its answer).
pub fn id_of(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("id")?
        .as_u64()
}

/// A mismatch between what was asked and what came back.
pub fn unexpected(call: &'static str, reply: &Reply) -> HvError {
    HvError::Protocol(format!("{call} was answered with {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hv_types::{LibvirtError, Lifecycle};

    #[test]
    fn requests_and_lines_look_as_documented() {
        let r = Request {
            id: 7,
            call: Call::Start { name: "web".into() },
        };
        assert_eq!(
            encode(&r),
            "{\"id\":7,\"call\":\"start\",\"name\":\"web\"}\n"
        );
        let back: Request = serde_json::from_str(&encode(&r)).unwrap();
        assert_eq!(back, r);
        let states = Line::Response(Response {
            id: 8,
            outcome: Outcome::Ok(Reply::States(
                [("web".to_string(), RunState::Running)].into(),
            )),
        });
        assert_eq!(
            encode(&states),
            "{\"response\":{\"id\":8,\"outcome\":{\"ok\":{\"states\":{\"web\":\"running\"}}}}}\n"
        );
        let ev = Line::Event(HvEvent::Domain {
            name: "web".into(),
            event: Lifecycle::Started,
        });
        assert_eq!(
            encode(&ev),
            "{\"event\":{\"domain\":{\"name\":\"web\",\"event\":\"started\"}}}\n"
        );
        assert_eq!(
            encode(&Line::Event(HvEvent::Lost)),
            "{\"event\":\"lost\"}\n"
        );
        let other = Line::Event(HvEvent::Domain {
            name: "x".into(),
            event: Lifecycle::Other(42),
        });
        assert_eq!(
            serde_json::from_str::<Line>(&encode(&other)).unwrap(),
            other
        );
        let err = Line::Response(Response {
            id: 9,
            outcome: Outcome::Err(HvError::Call {
                op: "destroy".into(),
                name: "t2".into(),
                source: LibvirtError::new("domain is not running"),
            }),
        });
        assert_eq!(serde_json::from_str::<Line>(&encode(&err)).unwrap(), err);
    }

    #[test]
    fn the_id_of_a_bad_request_is_found_when_there_is_one() {
        assert_eq!(id_of(r#"{"id":3,"call":"fly"}"#), Some(3));
        assert_eq!(id_of("not json"), None);
        assert_eq!(id_of(r#"{"call":"states"}"#), None);
        assert!(serde_json::from_str::<Request>(r#"{"id":3,"call":"fly"}"#).is_err());
    }
}
