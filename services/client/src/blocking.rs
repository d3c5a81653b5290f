//! Blocking requests for sync callers (the lab, xtask): each call runs the async client on
//! a runtime of its own, so no caller needs tokio.

use crate::error::ClientError;
use crate::https::{send_trusting, ClientRequest, ClientResponse};
use crate::tls::Trust;
use std::net::SocketAddr;
use std::time::Duration;

/// [`crate::send_trusting`] from sync code: send `req` to `addr`, trusting per `trust`,
/// within `timeout`. Must not be called from inside a tokio runtime.
pub fn send(
    addr: SocketAddr,
    req: ClientRequest,
    trust: Trust,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    runtime.block_on(send_trusting(addr, req, trust, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::https::tests::TestServer;
    use hyper::Method;

    #[test]
    fn pins_and_records_without_a_runtime_of_the_callers() {
        let server = TestServer::start();
        let req = ClientRequest::new(Method::GET, "/api/v1/health");
        let r = send(
            server.addr,
            req.clone(),
            Trust::Pinned(server.pin),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(r.peer, server.pin);
        let r = send(
            server.addr,
            req.clone(),
            Trust::Record,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.peer, server.pin);
        let wrong = Trust::Pinned(crate::Fingerprint([7; 32]));
        let err = send(server.addr, req, wrong, Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(&err, ClientError::Handshake(_, seen, _) if *seen == server.pin.to_string()),
            "{err:?}"
        );
    }
}
