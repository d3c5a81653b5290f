//! cairn-client: the HTTPS client of a Cairn node's API. It trusts a node by the SHA-256
//! fingerprint of its certificate (shown on the console) rather than a certificate
//! authority, and carries the answer shapes clients read. Used by `cairnctl`, the lab,
//! xtask's benchmarks and the API's own tests; it pulls in no server code.
#![warn(missing_docs)]

pub mod blocking;
pub mod cluster;
pub mod error;
pub mod error_body;
pub mod fingerprint;
pub mod https;
pub mod sse;
pub mod tls;

pub use cluster::send_with;
pub use error::ClientError;
pub use error_body::ErrorBody;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use https::{
    fetch_fingerprint, get, request, send, send_from, send_trusting, stream, ClientRequest,
    ClientResponse,
};
pub use sse::{parse_sse_block, EventStream, SseEvent};
pub use tls::{pinned_connector, provider, PinnedTls, Trust, VersionsError};
