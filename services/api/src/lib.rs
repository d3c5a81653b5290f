//! cairn-api: the HTTPS API server (routing, resources, TLS, the web UI).

pub mod alerts;
pub mod auth;
pub mod channels;
pub mod clock;
pub mod conn;
pub mod domains;
pub mod error;
pub mod events;
pub mod health;
pub mod network;
pub mod openapi;
pub mod outbound;
pub mod password;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
pub mod secret;
pub mod server;
pub mod sessions;
pub mod setup;
pub mod shares;
pub mod smart;
pub mod smtp;
pub mod state;
pub mod storage;
pub mod store;
pub mod system;
pub mod tasks;
#[cfg(test)]
mod test_server;
pub mod time;
pub mod timezones;
pub mod tls;
pub mod tokens;
pub mod ui;
pub mod users;
pub mod validate;
pub mod vms;
pub mod webhook;

pub use cairn_client::Fingerprint;
pub use error::ApiError;
pub use server::Server;
pub use state::{ApiState, NodeInfo};

/// The API version reported by `GET /api/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
