//! sd_notify sockets: one datagram socket per notify service at `/run/cairn/notify/NAME`.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Default directory of notify sockets.
pub const DEFAULT_DIR: &str = "/run/cairn/notify";

/// Whether a notify datagram says the service is ready (`READY=1` on a line of its own).
pub fn says_ready(msg: &[u8]) -> bool {
    msg.split(|b| *b == b'\n').any(|l| l == b"READY=1")
}

/// The notify sockets, by service name.
pub struct NotifySockets {
    dir: PathBuf,
    socks: BTreeMap<String, UnixDatagram>,
}

impl NotifySockets {
    pub fn new(dir: &Path) -> Self {
        NotifySockets {
            dir: dir.to_path_buf(),
            socks: BTreeMap::new(),
        }
    }

    /// Creates (or re-creates) the socket for `name` and returns its path for NOTIFY_SOCKET.
    pub fn prepare(&mut self, name: &str) -> io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(name);
        self.socks.remove(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let s = UnixDatagram::bind(&path)?;
        s.set_nonblocking(true)?;
        self.socks.insert(name.to_string(), s);
        Ok(path)
    }

    /// Sockets to poll, with their service names.
    pub fn fds(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.socks
            .iter()
            .map(|(n, s)| (n.clone(), s.as_fd()))
            .collect()
    }

    /// Reads every pending datagram of `name`'s socket; true if one said READY=1.
    pub fn drain(&mut self, name: &str) -> bool {
        let Some(s) = self.socks.get(name) else {
            return false;
        };
        let mut ready = false;
        let mut buf = [0u8; 4096];
        loop {
            match s.recv(&mut buf) {
                Ok(n) => ready |= says_ready(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_parsing() {
        assert!(says_ready(b"READY=1"));
        assert!(says_ready(b"STATUS=Processing requests...\nREADY=1\n"));
        assert!(!says_ready(b"READY=0\nSTATUS=READY=1"));
        assert!(!says_ready(b"WATCHDOG=1"));
    }

    #[test]
    fn datagrams_arrive_and_socket_is_recreated() {
        let d = tempfile::tempdir().unwrap();
        let mut n = NotifySockets::new(&d.path().join("notify"));
        let p = n.prepare("journald").unwrap();
        assert_eq!(p, d.path().join("notify/journald"));
        let c = UnixDatagram::unbound().unwrap();
        c.send_to(b"STATUS=starting", &p).unwrap();
        assert!(!n.drain("journald"));
        c.send_to(b"READY=1\nSTATUS=ok", &p).unwrap();
        assert!(n.drain("journald"));
        assert!(!n.drain("journald"));
        let p2 = n.prepare("journald").unwrap();
        c.send_to(b"READY=1", &p2).unwrap();
        assert!(n.drain("journald"));
        assert_eq!(n.fds().len(), 1);
    }
}
