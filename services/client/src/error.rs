//! Why a request to a Cairn node failed.

use crate::tls::VersionsError;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS client configuration could not be built.
    #[error(transparent)]
    Versions(#[from] VersionsError),
    /// No TCP connection (refused, unreachable, or the source address cannot be bound).
    #[error("cannot connect to {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    /// The TLS handshake failed; the text is the fingerprint the server presented (`none`
    /// when it presented none), so a caller can tell a changed certificate from a network
    /// error.
    #[error("TLS handshake with {0} failed (certificate seen: {1})")]
    Handshake(SocketAddr, String, #[source] std::io::Error),
    /// The HTTP/1.1 connection could not be set up over TLS.
    #[error("HTTP handshake with {0} failed")]
    Http(SocketAddr, #[source] hyper::Error),
    /// The method, path or a header is not valid HTTP.
    #[error("cannot build request for {0}")]
    Request(String, #[source] hyper::http::Error),
    /// The request was not answered (connection closed, malformed answer).
    #[error("request to {0} failed")]
    Send(SocketAddr, #[source] hyper::Error),
    /// The answer's body broke off.
    #[error("reading the response body from {0} failed")]
    Body(SocketAddr, #[source] hyper::Error),
    /// The whole exchange took longer than its timeout.
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    /// A cluster member's answer was not what the call needs (not 200, not a CA PEM).
    #[error("{0} answered HTTP {1}: {2}")]
    Status(SocketAddr, u16, String),
    /// A cluster CA certificate (PEM) or a member certificate cannot be used.
    #[error("{0}")]
    Pem(String),
    /// The CA a member showed is not the one the join token names: nothing secret was sent.
    #[error("the cluster CA of {addr} ({got}) does not match the token's ({expected}); nothing was sent to it")]
    CaMismatch {
        /// The member asked.
        addr: SocketAddr,
        /// The fingerprint the token names.
        expected: String,
        /// The fingerprint of the CA the member served.
        got: String,
    },
    /// A blocking call could not start its runtime.
    #[error("cannot start a runtime for a blocking request")]
    Runtime(#[source] std::io::Error),
}
