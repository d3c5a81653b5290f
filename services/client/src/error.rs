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
    /// A blocking call could not start its runtime.
    #[error("cannot start a runtime for a blocking request")]
    Runtime(#[source] std::io::Error),
}
