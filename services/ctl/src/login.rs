//! `cairnctl login`: pin the certificate on first use, sign in, make and keep an API token.

use crate::cli::Output;
use crate::config::{self, NodeEntry};
use crate::conn::{api_error, changed_certificate, Conn, TIMEOUT};
use crate::target::Target;
use anyhow::Context;
use cairn_client::{self as client, ClientRequest, Fingerprint};
use hyper::Method;
use std::io::{BufRead, IsTerminal};
use std::path::Path;

/// Read the password: hidden from the terminal, else the first line of stdin.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).context("cannot read the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The pin for a node: the stored one, or the presented one on first use (checked against
/// `expected` when given).
async fn pin_for(
    target: &Target,
    stored: Option<&NodeEntry>,
    expected: Option<&str>,
) -> anyhow::Result<(Fingerprint, bool)> {
    let expected = expected
        .map(|e| e.parse::<Fingerprint>())
        .transpose()
        .context("--fingerprint is not a SHA-256 fingerprint")?;
    if let Some(entry) = stored {
        let pin: Fingerprint = entry
            .fingerprint
            .parse()
            .context("the stored fingerprint is damaged; run `cairnctl forget`")?;
        if let Some(e) = expected.filter(|e| *e != pin) {
            anyhow::bail!(changed_certificate(target, &pin, &e.to_string()));
        }
        return Ok((pin, false));
    }
    let addr = target.resolve().await?[0];
    let seen = client::fetch_fingerprint(addr, TIMEOUT)
        .await
        .with_context(|| format!("cannot reach {}", target.key()))?;
    if let Some(e) = expected.filter(|e| *e != seen) {
        anyhow::bail!(
            "{} presents {seen}, not the expected {e}; not signing in",
            target.key()
        );
    }
    Ok((seen, true))
}

/// What the token `login` makes may do and how long it lasts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenOptions {
    /// Read-only (GET and HEAD) instead of admin.
    pub read_only: bool,
    /// Days until it expires (the node's default, 90, when none).
    pub expires_days: Option<u32>,
}

impl TokenOptions {
    /// The `POST /api/v1/auth/tokens` body for a token called `name`.
    pub fn body(&self, name: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "name": name,
            "scope": if self.read_only { "read_only" } else { "admin" },
        });
        if let Some(days) = self.expires_days {
            body["expires_days"] = days.into();
        }
        body
    }
}

/// Sign in, make a token named after this machine, end the session, store token and pin.
pub async fn run(
    target: Target,
    cfg_dir: &Path,
    user: &str,
    fingerprint: Option<&str>,
    token: TokenOptions,
    output: Output,
) -> anyhow::Result<()> {
    let mut cfg = config::load(cfg_dir)?;
    let key = target.key();
    let (pin, first_use) = pin_for(&target, cfg.nodes.get(&key), fingerprint).await?;
    if first_use && output == Output::Text {
        eprintln!(
            "Pinning the certificate of {key}:\n  {pin}\nCompare it with the fingerprint on the node's console."
        );
    }
    let conn = Conn::new(target, pin).await?;
    let password = read_password(&format!("Password for {user}@{key}: "))?;
    let r = conn
        .send(
            ClientRequest::new(Method::POST, "/api/v1/auth/login")
                .json(&serde_json::json!({"username": user, "password": password})),
        )
        .await?;
    if r.status != 200 {
        return Err(api_error("login failed", &r));
    }
    let cookie = r
        .header_all("set-cookie")
        .iter()
        .find_map(|c| {
            c.split(';')
                .next()
                .filter(|c| c.starts_with("cairn_session="))
                .map(str::to_string)
        })
        .context("the node did not set a session cookie")?;
    let csrf = r.json()["csrf_token"]
        .as_str()
        .context("the node did not send a CSRF token")?
        .to_string();
    let session = |m: Method, path: &str| {
        ClientRequest::new(m, path)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
    };
    let r = conn
        .send(session(Method::POST, "/api/v1/auth/tokens").json(&token.body(&token_name())))
        .await?;
    if r.status != 201 {
        return Err(api_error("cannot make an API token", &r));
    }
    let v = r.json();
    let expires = v["expires"].as_u64();
    let scope = v["scope"].as_str().unwrap_or("admin").to_string();
    let token = v["token"]
        .as_str()
        .context("no token in the answer")?
        .to_string();
    let token_id = v["id"]
        .as_str()
        .context("no token id in the answer")?
        .to_string();
    // The session was only needed to make the token.
    let _ = conn
        .send(session(Method::POST, "/api/v1/auth/logout"))
        .await;

    cfg.nodes.insert(
        key.clone(),
        NodeEntry {
            fingerprint: pin.to_string(),
            user: Some(user.to_string()),
            token: Some(token),
            token_id: Some(token_id.clone()),
        },
    );
    cfg.current = Some(key.clone());
    config::save(cfg_dir, &cfg)?;
    match output {
        Output::Text => {
            let until = expires
                .map(|e| format!(", expires {}", cairn_core::civil::format_utc(e)))
                .unwrap_or_default();
            let ro = if scope == "read_only" {
                "read-only "
            } else {
                ""
            };
            println!("Logged in to {key} as {user} ({ro}API token {token_id}{until}).")
        }
        Output::Json => println!(
            "{}",
            serde_json::json!({"node": key, "user": user, "token_id": token_id,
                "fingerprint": pin.to_string(), "pinned_now": first_use,
                "scope": scope, "expires": expires})
        ),
    }
    Ok(())
}

/// `cairnctl@HOSTNAME`, so the node's token list shows where each token lives.
fn token_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if host.is_empty() {
        "cairnctl".to_string()
    } else {
        format!("cairnctl@{host}").chars().take(64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_options_make_the_request_body() {
        assert_eq!(
            TokenOptions::default().body("cli"),
            serde_json::json!({"name": "cli", "scope": "admin"})
        );
        let ro = TokenOptions {
            read_only: true,
            expires_days: Some(7),
        };
        assert_eq!(
            ro.body("cli"),
            serde_json::json!({"name": "cli", "scope": "read_only", "expires_days": 7})
        );
    }

    #[test]
    fn token_name_fits() {
        let n = token_name();
        assert!(n.starts_with("cairnctl") && n.chars().count() <= 64);
    }

    #[tokio::test]
    async fn stored_pin_conflicting_with_flag_is_refused() {
        let t = Target::parse("127.0.0.1:9").unwrap();
        let stored = NodeEntry {
            fingerprint: Fingerprint::of_der(b"a").to_string(),
            user: None,
            token: None,
            token_id: None,
        };
        let other = Fingerprint::of_der(b"b").to_string();
        let e = pin_for(&t, Some(&stored), Some(&other)).await.unwrap_err();
        assert!(e.to_string().contains("CHANGED"), "{e}");
        let (pin, first) = pin_for(&t, Some(&stored), None).await.unwrap();
        assert_eq!(
            (pin.to_string(), first),
            (stored.fingerprint.clone(), false)
        );
    }
}
