//! Stalled connections for `cargo xtask bench-api --stalled`: connections from 127.0.0.2
//! that complete TLS and then stall in the middle of a request body, the attack of issue 13.
//! A keeper thread opens a new one whenever the server closes one (its body deadline), so
//! the count stays at its target while a measurement runs.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_client::{PinnedTls, Trust};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// The stalled connections' source address (wrk uses 127.0.0.1, a client of its own).
pub const SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// What each stalled connection sends: a request head promising 100 bytes of body, and 7.
pub const STALLED_REQUEST: &[u8] = b"POST /api/v1/auth/login HTTP/1.1\r\nhost: bench\r\n\
content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user\"";

/// TLS client settings trusting any certificate, a benchmark against our own cairnd on
/// loopback (also used by `--login-flood`).
pub fn client_config() -> Result<Arc<ClientConfig>> {
    Ok(PinnedTls::new(Trust::Record, &[])?.config)
}

type Stalled = StreamOwned<ClientConnection, TcpStream>;

/// One connection from [`SOURCE`] to `target`: TLS, then [`STALLED_REQUEST`].
fn open(target: SocketAddr, cfg: &Arc<ClientConfig>) -> Result<Stalled> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((SOURCE, 0)).into())?;
    sock.connect_timeout(&target.into(), Duration::from_secs(5))?;
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let conn = ClientConnection::new(cfg.clone(), ServerName::IpAddress(target.ip().into()))?;
    let mut s = StreamOwned::new(conn, tcp);
    s.write_all(STALLED_REQUEST)?;
    s.flush()?;
    Ok(s)
}

/// Whether the server has closed a stalled connection. What it sent (session tickets, the
/// 408 before closing) is read raw and dropped: the connection is never used again.
fn closed(s: &mut Stalled) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    if s.sock.set_nonblocking(true).is_err() {
        return true;
    }
    let gone = loop {
        match s.sock.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    let _ = s.sock.set_nonblocking(false);
    gone
}

/// `count` stalled connections kept open against `target` until dropped.
pub struct Holder {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    min_open: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Holder {
    /// Open all `count` (failing if fewer than that open), then keep them open.
    pub fn start(target: SocketAddr, count: usize) -> Result<Holder> {
        let cfg = client_config()?;
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            conns.push(open(target, &cfg).with_context(|| {
                format!("opening stalled connection {i} from {SOURCE} (of {count})")
            })?);
        }
        let open_n = Arc::new(AtomicUsize::new(conns.len()));
        let min_open = Arc::new(AtomicUsize::new(conns.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (open_n, min_open, stop) = (open_n.clone(), min_open.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    conns.retain_mut(|c| !closed(c));
                    open_n.store(conns.len(), Ordering::Relaxed);
                    min_open.fetch_min(conns.len(), Ordering::Relaxed);
                    while conns.len() < count && !stop.load(Ordering::Relaxed) {
                        match open(target, &cfg) {
                            Ok(c) => conns.push(c),
                            Err(_) => break,
                        }
                    }
                    open_n.store(conns.len(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Ok(Holder {
            stop,
            open: open_n,
            min_open,
            thread: Some(thread),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Start counting the fewest open from now.
    pub fn reset_min(&self) {
        self.min_open.store(self.open(), Ordering::Relaxed);
    }

    /// The fewest open since [`Holder::reset_min`] (between the keeper's rounds).
    pub fn min_open(&self) -> usize {
        self.min_open.load(Ordering::Relaxed)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stalled_request_promises_more_than_it_sends() {
        let text = std::str::from_utf8(STALLED_REQUEST).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("content-length: 100"));
        assert!(body.len() < 100);
    }
}
