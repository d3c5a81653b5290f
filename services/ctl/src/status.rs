//! `cairnctl status`: the node's health and who the stored token signs in as.

use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use cairn_client::ClientRequest;
use hyper::Method;

/// Show health and identity.
pub async fn run(s: &Session, output: Output) -> anyhow::Result<()> {
    let r = s
        .conn
        .send(ClientRequest::new(Method::GET, "/api/v1/health"))
        .await?;
    if r.status != 200 {
        return Err(api_error("health check failed", &r));
    }
    let health = r.json();
    let me = match s.entry.token {
        Some(_) => Some(
            s.get_json("/api/v1/auth/me", "cannot tell who you are")
                .await?,
        ),
        None => None,
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"node": s.key, "fingerprint": s.entry.fingerprint, "health": health, "me": me})
        ),
        Output::Text => print!("{}", text(&s.key, &health, me.as_ref())),
    }
    Ok(())
}

/// Human-readable status.
pub fn text(key: &str, health: &serde_json::Value, me: Option<&serde_json::Value>) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    let boot = &health["boot"];
    let slot = boot["slot"].as_str().unwrap_or("none");
    let blessed = if boot["blessed"] == true {
        "good"
    } else {
        "not yet confirmed"
    };
    let failed = boot["failed_attempts"].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "node:      {key}\nhostname:  {}\nstatus:    {}\nversion:   {}\nuptime:    {}\nboot:      slot {slot}, {blessed}",
        s(&health["hostname"]),
        s(&health["status"]),
        s(&health["version"]),
        uptime(health["uptime_s"].as_u64().unwrap_or(0)),
    );
    if failed > 0 {
        out.push_str(&format!(", {failed} failed slot attempt(s)"));
    }
    out.push('\n');
    match me {
        Some(me) => out.push_str(&format!(
            "signed in: {} ({} {})\n",
            s(&me["user"]),
            s(&me["auth"]),
            me["token_id"].as_str().unwrap_or("")
        )),
        None => out.push_str("signed in: no (run `cairnctl login`)\n"),
    }
    out
}

/// `3d 4h 5m`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m}m {}s", secs % 60),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uptime_forms() {
        assert_eq!(uptime(42), "0m 42s");
        assert_eq!(uptime(3 * 3600 + 120), "3h 2m");
        assert_eq!(uptime(2 * 86400 + 3600 + 60), "2d 1h 1m");
    }

    #[test]
    fn text_form() {
        let h = json!({"status": "ok", "version": "0.1.0", "hostname": "vault", "uptime_s": 61,
            "boot": {"slot": "b", "blessed": true, "failed_attempts": [{}]}});
        let me = json!({"user": "admin", "auth": "token", "token_id": "abc"});
        let t = text("vault:443", &h, Some(&me));
        assert!(t.contains("hostname:  vault\n"));
        assert!(t.contains("boot:      slot b, good, 1 failed slot attempt(s)\n"));
        assert!(t.contains("signed in: admin (token abc)\n"));
        assert!(text("x", &h, None).contains("signed in: no"));
    }
}
