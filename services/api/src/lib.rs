//! cairn-api: the HTTPS API server (routing, resources, TLS, the web UI).

pub mod account;
pub mod alerts;
pub mod auth;
pub mod channels;
pub mod clock;
pub mod conn;
pub mod dispatch;
pub mod domains;
pub mod error;
pub mod events;
pub mod exchange;
pub mod executor;
pub mod health;
pub mod identity;
pub mod network;
pub mod network_error;
pub mod openapi;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
pub mod routes;
pub mod secret;
pub mod server;
pub mod setup;
pub mod setup_network;
pub mod shares;
pub mod smart;
pub mod state;
pub mod storage;
pub mod system;
pub mod tasks;
#[cfg(test)]
mod test_server;
pub mod time;
pub mod timezones;
pub mod tls;
pub mod tokens;
pub mod ui;
pub mod validate;
pub mod vms;

pub use cairn_client::Fingerprint;
pub use error::ApiError;
pub use health::VERSION;
pub use server::Server;
pub use state::{ApiState, NodeInfo};
