//! cairn-alert-delivery: alert changes sent out by mail (lettre SMTP) and webhook (an HTTP(S)
//! POST), with the channel settings on STATE and a test send run as a task. cairnd starts the
//! delivery loop; the API shows and changes the settings.

#![warn(missing_docs)]

pub mod channels;
pub mod delivery;
pub mod outbound;
pub mod send;
pub mod smtp;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod webhook;

pub use channels::{Channels, ChannelsError, EmailChannel, Kind, Trust, WebhookChannel};
pub use delivery::{send_test, spawn_delivery, NotConfigured};

/// Most mail recipients.
pub const MAX_RECIPIENTS: usize = 10;
