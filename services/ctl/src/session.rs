//! A signed-in connection to a node: its stored pin and API token.

use crate::config::{self, NodeEntry};
use crate::conn::{api_error, Conn, TIMEOUT};
use crate::target::Target;
use anyhow::Context;
use cairn_client::{self as client, ClientRequest, EventStream};
use hyper::Method;
use std::path::Path;

/// The node with its stored entry (pin, maybe a token).
pub struct Session {
    pub key: String,
    pub entry: NodeEntry,
    pub conn: Conn,
}

impl Session {
    /// Open the node stored under `target` (it must have been logged in to, for the pin).
    pub async fn open(target: Target, cfg_dir: &Path) -> anyhow::Result<Self> {
        let cfg = config::load(cfg_dir)?;
        let key = target.key();
        let entry = cfg.nodes.get(&key).cloned().with_context(|| {
            format!("no pinned certificate for {key}; run `cairnctl --node {key} login` first")
        })?;
        let pin = entry
            .fingerprint
            .parse()
            .context("the stored fingerprint is damaged; run `cairnctl forget`")?;
        let conn = Conn::new(target, pin).await?;
        Ok(Session { key, entry, conn })
    }

    /// A request carrying the API token.
    pub fn authed(&self, method: Method, path: &str) -> anyhow::Result<ClientRequest> {
        let token = self
            .entry
            .token
            .as_deref()
            .with_context(|| format!("not signed in to {}; run `cairnctl login`", self.key))?;
        Ok(ClientRequest::new(method, path).header("authorization", &format!("Bearer {token}")))
    }

    /// `GET path` with the token; the JSON answer, or the API's error as the message.
    pub async fn get_json(&self, path: &str, doing: &str) -> anyhow::Result<serde_json::Value> {
        let r = self.conn.send(self.authed(Method::GET, path)?).await?;
        if r.status != 200 {
            return Err(api_error(doing, &r));
        }
        Ok(r.json())
    }

    /// Open the event stream with the token.
    pub async fn events(&self) -> anyhow::Result<EventStream> {
        let mut last = None;
        for addr in self.conn.target.resolve().await? {
            let req = self.authed(Method::GET, "/api/v1/events")?;
            match client::stream(addr, req, self.conn.pin, TIMEOUT).await {
                Ok(s) if s.status == 200 => return Ok(s),
                Ok(s) => anyhow::bail!("cannot follow events: the node answered HTTP {}", s.status),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no address"), anyhow::Error::from))
    }
}
