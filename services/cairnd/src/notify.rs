//! sd_notify-style readiness: `READY=1` to `$NOTIFY_SOCKET` (cairn-init's notify socket).

use std::os::unix::net::UnixDatagram;

/// Send `msg` to the socket named by `NOTIFY_SOCKET`, if set. `@name` is an abstract socket.
/// Returns whether a message was sent.
pub fn notify(socket: Option<&str>, msg: &str) -> std::io::Result<bool> {
    let Some(path) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(msg.as_bytes(), &addr)?;
    } else {
        sock.send_to(msg.as_bytes(), path)?;
    }
    Ok(true)
}

/// Tell the supervisor cairnd is ready (listeners bound).
pub fn ready() {
    let var = std::env::var("NOTIFY_SOCKET").ok();
    match notify(var.as_deref(), "READY=1") {
        Ok(true) => tracing::debug!("sent READY=1 to NOTIFY_SOCKET"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot send READY=1 to NOTIFY_SOCKET"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_ready_to_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        assert!(notify(Some(p.to_str().unwrap()), "READY=1").unwrap());
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn unset_socket_sends_nothing() {
        assert!(!notify(None, "READY=1").unwrap());
        assert!(!notify(Some(""), "READY=1").unwrap());
    }

    #[test]
    fn missing_socket_is_an_error() {
        assert!(notify(Some("/nonexistent/notify"), "READY=1").is_err());
    }
}
