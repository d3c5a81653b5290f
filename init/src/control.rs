//! The control socket: one JSON request per line, one JSON reply line, then close.

use crate::supervisor::ServiceStatus;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/cairn/init.sock";
/// A client must send its request line within this time.
pub const REQUEST_DEADLINE_MS: u64 = 5_000;
const MAX_REQUEST: usize = 4096;

/// A request (`{"cmd":"status"}`, `{"cmd":"start","name":"cairnd"}`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Status,
    Start { name: String },
    Stop { name: String },
    Restart { name: String },
}

/// A reply: `{"ok":true,"services":[…],"orphans_reaped":N}` for status,
/// `{"ok":true}` for accepted commands, `{"ok":false,"error":"…"}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans_reaped: Option<u64>,
}

impl Response {
    pub fn ok() -> Self {
        Response {
            ok: true,
            error: None,
            services: None,
            orphans_reaped: None,
        }
    }
    pub fn error(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            services: None,
            orphans_reaped: None,
        }
    }
}

/// A control socket failure.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{}: cannot create the socket's directory", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot bind", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot connect (is cairn-init running?)", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: request failed", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: reply is not valid JSON", path.display())]
    BadReply {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Parses one request line; the error text names what is wrong.
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    deadline_ms: u64,
}

/// The listening side, driven by the main poll loop (never blocks it).
pub struct ControlServer {
    listener: UnixListener,
    conns: Vec<Conn>,
}

impl ControlServer {
    /// Binds the socket (replacing a stale one), mode 0600.
    pub fn bind(path: &Path) -> Result<Self, ControlError> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ControlError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let _ = std::fs::remove_file(path);
        let bind_err = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
        Ok(ControlServer {
            listener,
            conns: Vec::new(),
        })
    }

    /// File descriptors to poll for reading.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v = vec![self.listener.as_fd()];
        v.extend(self.conns.iter().map(|c| c.stream.as_fd()));
        v
    }

    /// The earliest client deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.conns.iter().map(|c| c.deadline_ms).min()
    }

    /// Accepts new clients, reads what arrived, answers complete requests with `handle`,
    /// and drops clients past their deadline. Never blocks on a client.
    pub fn service(
        &mut self,
        now_ms: u64,
        handle: &mut dyn FnMut(Result<Request, String>) -> Response,
    ) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn {
                            stream,
                            buf: Vec::new(),
                            deadline_ms: now_ms + REQUEST_DEADLINE_MS,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let mut keep = Vec::new();
        for mut c in std::mem::take(&mut self.conns) {
            let mut chunk = [0u8; 1024];
            let mut closed = false;
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
                if c.buf.len() > MAX_REQUEST {
                    break;
                }
            }
            let line_end = c.buf.iter().position(|b| *b == b'\n');
            let request = if let Some(end) = line_end {
                Some(parse_request(&String::from_utf8_lossy(&c.buf[..end])))
            } else if c.buf.len() > MAX_REQUEST {
                Some(Err(format!("bad request: longer than {MAX_REQUEST} bytes")))
            } else if closed && !c.buf.is_empty() {
                Some(parse_request(&String::from_utf8_lossy(&c.buf)))
            } else {
                None
            };
            match request {
                Some(req) => {
                    let reply = handle(req);
                    let mut text = serde_json::to_string(&reply)
                        .unwrap_or_else(|_| "{\"ok\":false}".to_string());
                    text.push('\n');
                    // Replies are small; a bounded blocking write cannot stall the loop long.
                    let _ = c.stream.set_nonblocking(false);
                    let _ = c.stream.set_write_timeout(Some(Duration::from_millis(500)));
                    let _ = c.stream.write_all(text.as_bytes());
                }
                None if closed || now_ms >= c.deadline_ms => {}
                None => keep.push(c),
            }
        }
        self.conns = keep;
    }
}

/// Sends one request and reads the reply (client side), with a deadline.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io_err)?;
    s.set_write_timeout(Some(timeout)).map_err(io_err)?;
    let mut line = serde_json::to_string(req).map_err(|source| ControlError::BadReply {
        path: path.to_path_buf(),
        source,
    })?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io_err)?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(io_err)?;
    serde_json::from_str(out.trim()).map_err(|source| ControlError::BadReply {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_shapes() {
        assert_eq!(parse_request("{\"cmd\":\"status\"}\n"), Ok(Request::Status));
        assert_eq!(
            parse_request("{\"cmd\":\"restart\",\"name\":\"cairnd\"}"),
            Ok(Request::Restart {
                name: "cairnd".into()
            })
        );
        assert!(parse_request("{\"cmd\":\"explode\"}")
            .unwrap_err()
            .contains("explode"));
        assert!(parse_request("{\"cmd\":\"start\"}")
            .unwrap_err()
            .contains("name"));
        assert_eq!(
            serde_json::to_string(&Request::Stop { name: "x".into() }).unwrap(),
            "{\"cmd\":\"stop\",\"name\":\"x\"}"
        );
        assert_eq!(
            serde_json::to_string(&Response::ok()).unwrap(),
            "{\"ok\":true}"
        );
    }

    #[test]
    fn server_answers_over_a_real_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/init.sock");
        let mut server = ControlServer::bind(&path).unwrap();
        let p2 = path.clone();
        let client = std::thread::spawn(move || {
            request(
                &p2,
                &Request::Start { name: "a".into() },
                Duration::from_secs(5),
            )
        });
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !client.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "client did not finish"
            );
            server.service(0, &mut |r| {
                seen.push(r.clone());
                Response::error("nope")
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        let reply = client.join().unwrap().unwrap();
        assert_eq!(reply, Response::error("nope"));
        assert_eq!(seen, vec![Ok(Request::Start { name: "a".into() })]);
    }

    #[test]
    fn silent_client_is_dropped_at_deadline() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("init.sock");
        let mut server = ControlServer::bind(&path).unwrap();
        let _c = UnixStream::connect(&path).unwrap();
        server.service(0, &mut |_| Response::ok());
        assert_eq!(server.conns.len(), 1);
        assert_eq!(server.next_deadline(), Some(REQUEST_DEADLINE_MS));
        server.service(REQUEST_DEADLINE_MS, &mut |_| Response::ok());
        assert_eq!(server.conns.len(), 0);
    }

    #[test]
    fn connect_error_names_path() {
        let e = request(
            Path::new("/nonexistent/init.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/init.sock"));
    }
}
