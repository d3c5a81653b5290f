//! Failed logins for `cargo xtask bench-api --login-flood` (issue 13: "cairnd's RSS before
//! and after a login flood"): `POST /api/v1/auth/login` with a wrong password over TLS, in
//! rounds of [`PARALLEL`], each from a loopback address of its own (127.0.NET.1, .2, …), so
//! no address reaches its own backoff and what limits them is the node's: the overall pace
//! and the bounded queue of password checks (503 `busy`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// Failed logins per flood.
pub const LOGINS: usize = 64;
/// Logins sent at once (one round); the next round starts when all of its answers are in.
pub const PARALLEL: usize = 8;
/// The retrying flood gives up on whatever is not checked by then.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(120);
/// The issue's test bound: RSS after the flood at most this much above before (KiB).
pub const RSS_BOUND_KIB: u64 = 50 * 1024;
/// The body of every login: the right user, a wrong password.
pub const WRONG_LOGIN: &str = r#"{"username":"admin","password":"wrong password here"}"#;
/// How long one exchange may take (a check waits behind at most 16 others).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The source address of login `i` (from 0) of a flood: 127.0.`net`.`i + 1`.
pub fn source(net: u8, i: usize) -> Ipv4Addr {
    let host = u8::try_from(i + 1)
        .ok()
        .filter(|&h| h < 255)
        .expect("at most 254 sources per net");
    Ipv4Addr::new(127, 0, net, host)
}

/// The whole HTTP/1.1 request of one failed login (the connection closes after it).
pub fn login_request() -> Vec<u8> {
    format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
content-length: {}\r\nconnection: close\r\n\r\n{WRONG_LOGIN}",
        WRONG_LOGIN.len()
    )
    .into_bytes()
}

/// An answer's status and `Retry-After` (whole seconds, as cairnd sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
}

/// Parse a response head once `buf` holds all of it: the answer, the head's length and the
/// body's `content-length`. `None` while the head is incomplete.
pub fn parse_head(buf: &[u8]) -> Option<(Answer, usize, Option<usize>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut retry_after = None;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("retry-after") {
            retry_after = value.parse().ok().map(Duration::from_secs);
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        }
    }
    Some((
        Answer {
            status,
            retry_after,
        },
        end,
        length,
    ))
}

/// Final answers of a flood by status, plus the 503/429 answers a retrying client waited out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// 401: the password was checked (argon2) and was wrong.
    pub checked: u32,
    /// 429: the address is held back.
    pub held_back: u32,
    /// 503 `busy`: the node's pace or its queue of checks was full.
    pub busy: u32,
    /// Any other status.
    pub other: u32,
    /// No answer (connect, TLS or read failure, timeout).
    pub failed: u32,
    /// Answers that were retried after their `Retry-After` (not in the counts above).
    pub retried: u32,
}

impl Counts {
    /// Count a final answer (`None`: no answer).
    pub fn add(&mut self, status: Option<u16>) {
        match status {
            Some(401) => self.checked += 1,
            Some(429) => self.held_back += 1,
            Some(503) => self.busy += 1,
            Some(_) => self.other += 1,
            None => self.failed += 1,
        }
    }

    /// Final answers counted (one per login).
    pub fn total(&self) -> u32 {
        self.checked + self.held_back + self.busy + self.other + self.failed
    }

    /// Add another client's counts.
    pub fn merge(&mut self, o: &Counts) {
        self.checked += o.checked;
        self.held_back += o.held_back;
        self.busy += o.busy;
        self.other += o.other;
        self.failed += o.failed;
        self.retried += o.retried;
    }
}

/// Whether an answer may be retried: 503 or 429 with a `Retry-After` that still fits
/// before `deadline` (given `now`); the wait if so.
pub fn retry_wait(a: &Answer, now: Instant, deadline: Instant) -> Option<Duration> {
    if !matches!(a.status, 429 | 503) {
        return None;
    }
    let wait = a.retry_after?;
    (now + wait < deadline).then_some(wait)
}

/// One failed login from `from`: connect (bound to `from`), TLS, the request, the answer.
fn login_once(target: SocketAddr, from: Ipv4Addr, cfg: &Arc<ClientConfig>) -> Result<Answer> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((from, 0)).into())
        .with_context(|| format!("binding to {from}"))?;
    sock.connect_timeout(&target.into(), Duration::from_secs(5))?;
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    tcp.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    let conn = ClientConnection::new(cfg.clone(), ServerName::IpAddress(target.ip().into()))?;
    let mut s = StreamOwned::new(conn, tcp);
    s.write_all(&login_request())?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((answer, head, length)) = parse_head(&buf) {
            if buf.len() >= head + length.unwrap_or(0) {
                return Ok(answer);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the answer"),
        }
    }
    match parse_head(&buf) {
        Some((answer, _, _)) => Ok(answer),
        None => bail!(
            "connection closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        ),
    }
}

/// One client: its login, retried after each `Retry-After` while `deadline` allows.
fn client(
    target: SocketAddr,
    from: Ipv4Addr,
    cfg: &Arc<ClientConfig>,
    deadline: Option<Instant>,
) -> (Counts, Option<String>) {
    let mut counts = Counts::default();
    loop {
        match login_once(target, from, cfg) {
            Ok(a) => {
                if let Some(wait) = deadline.and_then(|d| retry_wait(&a, Instant::now(), d)) {
                    counts.retried += 1;
                    std::thread::sleep(wait);
                    continue;
                }
                counts.add(Some(a.status));
                return (counts, None);
            }
            Err(e) => {
                counts.add(None);
                return (counts, Some(format!("{from}: {e:#}")));
            }
        }
    }
}

/// What one flood did.
#[derive(Debug)]
pub struct Flood {
    pub counts: Counts,
    pub wall: Duration,
    /// The first few transport errors, for the report.
    pub errors: Vec<String>,
}

/// [`LOGINS`] failed logins from 127.0.`net`.1 … in rounds of [`PARALLEL`]; with `retry`,
/// each client waits out every 503/429 `Retry-After` until [`RETRY_DEADLINE`] from the start.
pub fn flood(target: SocketAddr, net: u8, retry: bool) -> Result<Flood> {
    let cfg = crate::stall::client_config()?;
    let started = Instant::now();
    let deadline = retry.then(|| started + RETRY_DEADLINE);
    let mut counts = Counts::default();
    let mut errors = Vec::new();
    for round in 0..LOGINS.div_ceil(PARALLEL) {
        let clients: Vec<_> = (round * PARALLEL..LOGINS.min((round + 1) * PARALLEL))
            .map(|i| {
                let cfg = cfg.clone();
                let from = source(net, i);
                std::thread::spawn(move || client(target, from, &cfg, deadline))
            })
            .collect();
        for c in clients {
            let (n, err) = c
                .join()
                .map_err(|_| anyhow::anyhow!("a login client panicked"))?;
            counts.merge(&n);
            errors.extend(err.into_iter().take(3usize.saturating_sub(errors.len())));
        }
    }
    Ok(Flood {
        counts,
        wall: started.elapsed(),
        errors,
    })
}

/// A `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// [`status_kib`] of process `pid`.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// `after` within [`RSS_BOUND_KIB`] of `before`.
pub fn within_bound(before: u64, after: u64) -> bool {
    after.saturating_sub(before) <= RSS_BOUND_KIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_one_address_per_login() {
        assert_eq!(source(1, 0), Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(source(1, 63), Ipv4Addr::new(127, 0, 1, 64));
        assert_eq!(source(2, 7), Ipv4Addr::new(127, 0, 2, 8));
        let all: std::collections::HashSet<_> = (0..LOGINS).map(|i| source(1, i)).collect();
        assert_eq!(all.len(), LOGINS);
        assert!(all.iter().all(|a| a.is_loopback()));
    }

    #[test]
    fn the_request_is_one_whole_login() {
        let req = String::from_utf8(login_request()).unwrap();
        let (head, body) = req.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /api/v1/auth/login HTTP/1.1\r\n"));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["username"], "admin");
        assert_eq!(v["password"], "wrong password here");
    }

    #[test]
    fn heads_are_parsed_when_complete() {
        let busy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Retry-After: 2\r\ncontent-length: 10\r\n\r\n{\"error\":";
        let (a, head, len) = parse_head(busy).unwrap();
        assert_eq!(
            a,
            Answer {
                status: 503,
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(&busy[head..], b"{\"error\":");
        assert_eq!(len, Some(10));
        let (a, _, _) = parse_head(b"HTTP/1.1 401 Unauthorized\r\n\r\n").unwrap();
        assert_eq!((a.status, a.retry_after), (401, None));
        assert_eq!(parse_head(b"HTTP/1.1 401 Unauthorized\r\ncontent-"), None);
        assert_eq!(parse_head(b"garbage\r\n\r\n"), None);
    }

    #[test]
    fn answers_are_counted_by_status() {
        let mut c = Counts::default();
        for s in [Some(401), Some(503), Some(503), Some(429), Some(200), None] {
            c.add(s);
        }
        assert_eq!(
            (c.checked, c.busy, c.held_back, c.other, c.failed),
            (1, 2, 1, 1, 1)
        );
        assert_eq!(c.total(), 6);
        let mut sum = Counts {
            retried: 3,
            ..Counts::default()
        };
        sum.merge(&c);
        assert_eq!((sum.total(), sum.retried, sum.busy), (6, 3, 2));
    }

    #[test]
    fn only_busy_and_held_back_are_retried_before_the_deadline() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        let a = |status, secs: Option<u64>| Answer {
            status,
            retry_after: secs.map(Duration::from_secs),
        };
        assert_eq!(
            retry_wait(&a(503, Some(2)), now, deadline),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_wait(&a(429, Some(1)), now, deadline),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_wait(&a(503, Some(10)), now, deadline), None);
        assert_eq!(retry_wait(&a(503, None), now, deadline), None);
        assert_eq!(retry_wait(&a(401, Some(2)), now, deadline), None);
    }

    #[test]
    fn status_fields_and_the_bound() {
        let status = "Name:\tcairnd\nVmHWM:\t   61234 kB\nVmRSS:\t   23456 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(23456));
        assert_eq!(status_kib(status, "VmHWM:"), Some(61234));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        assert!(within_bound(20_000, 20_000 + RSS_BOUND_KIB));
        assert!(!within_bound(20_000, 20_001 + RSS_BOUND_KIB));
        assert!(within_bound(30_000, 20_000));
    }
}
