//! Who is connected now: `smbstatus --json` (Samba ≥ 4.16) read into one row per share
//! connection, with the user, the client, the dialect, signing and encryption.

use crate::error::FilesError;
use cairn_core::command::Invocation;
use std::collections::BTreeMap;

/// `smbstatus --json`.
pub fn smbstatus() -> Invocation {
    Invocation::new("smbstatus", ["--json"])
}

/// One client connected to one share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Connection {
    pub share: String,
    pub user: String,
    pub uid: Option<u32>,
    /// The client's address.
    pub client: String,
    /// `SMB3_11`, …
    pub dialect: String,
    /// `full`, `partial`, `none`.
    pub signing: String,
    pub encryption: String,
    /// RFC 3339.
    pub connected_at: String,
}

#[derive(serde::Deserialize)]
struct Status {
    #[serde(default)]
    sessions: BTreeMap<String, Session>,
    #[serde(default)]
    tcons: BTreeMap<String, Tcon>,
}

#[derive(serde::Deserialize)]
struct Session {
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    remote_machine: String,
    #[serde(default)]
    session_dialect: String,
}

#[derive(serde::Deserialize)]
struct Tcon {
    service: String,
    session_id: String,
    #[serde(default)]
    machine: String,
    #[serde(default)]
    connected_at: String,
    #[serde(default)]
    encryption: Degree,
    #[serde(default)]
    signing: Degree,
}

#[derive(serde::Deserialize, Default)]
struct Degree {
    #[serde(default)]
    degree: String,
}

/// The share connections in `smbstatus --json`'s output, by share then user.
pub fn parse(json: &str) -> Result<Vec<Connection>, FilesError> {
    let status: Status = serde_json::from_str(json).map_err(|e| FilesError::Refused {
        checker: "smbstatus",
        message: format!("unexpected output: {e}"),
    })?;
    let mut out: Vec<Connection> = status
        .tcons
        .into_values()
        .map(|t| {
            let s = status.sessions.get(&t.session_id);
            Connection {
                share: t.service,
                user: s.map(|s| s.username.clone()).unwrap_or_default(),
                uid: s.and_then(|s| s.uid),
                client: s
                    .map(|s| s.remote_machine.clone())
                    .filter(|m| !m.is_empty())
                    .unwrap_or(t.machine),
                dialect: s.map(|s| s.session_dialect.clone()).unwrap_or_default(),
                signing: t.signing.degree,
                encryption: t.encryption.degree,
                connected_at: t.connected_at,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.share, &a.user, &a.client).cmp(&(&b.share, &b.user, &b.client)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata")
                .join(name),
        )
        .unwrap()
    }

    /// Recorded from Debian 12's Samba 4.17 serving a generated config, one smbclient in.
    #[test]
    fn a_recorded_smbstatus_gives_one_row_per_share_connection() {
        assert_eq!(
            parse(&testdata("smbstatus-one.json")).unwrap(),
            [Connection {
                share: "docs".into(),
                user: "cftalice".into(),
                uid: Some(20000),
                client: "127.0.0.1".into(),
                dialect: "SMB3_11".into(),
                signing: "full".into(),
                encryption: "none".into(),
                connected_at: "2026-12-07T16:51:56.948183+00:00".into(),
            }]
        );
        assert!(parse(&testdata("smbstatus-none.json")).unwrap().is_empty());
        assert!(parse("not json").is_err());
        assert_eq!(smbstatus().display(), "smbstatus --json");
    }
}
