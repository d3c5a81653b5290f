//! cairn-api: the HTTPS API server (routing, resources, TLS) and a pinned HTTPS client.

pub mod client;
pub mod error;
pub mod fingerprint;
pub mod health;
pub mod response;
pub mod router;
pub mod server;
pub mod state;
pub mod tls;

pub use fingerprint::Fingerprint;
pub use server::Server;
pub use state::{ApiState, NodeInfo};

/// The API version reported by `GET /api/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
