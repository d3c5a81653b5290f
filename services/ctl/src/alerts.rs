//! `cairnctl alerts`: what is wrong on the node now, and recent alert changes.

use crate::cli::Output;
use crate::session::Session;

/// List active alerts (most severe first) and the latest changes.
pub async fn list(s: &Session, output: Output) -> anyhow::Result<()> {
    let v = s.get_json("/api/v1/alerts", "cannot list alerts").await?;
    match output {
        Output::Json => println!("{v}"),
        Output::Text => print!("{}", text(&v)),
    }
    Ok(())
}

/// Text form: active alerts, then up to ten recent changes.
pub fn text(v: &serde_json::Value) -> String {
    let s = |x: &serde_json::Value| x.as_str().unwrap_or("?").to_string();
    let mut out = String::new();
    let active = v["active"].as_array().cloned().unwrap_or_default();
    if active.is_empty() {
        out.push_str("no active alerts\n");
    }
    for a in &active {
        out.push_str(&format!(
            "{:<8}  {:<24}  {}\n",
            s(&a["level"]).to_uppercase(),
            s(&a["key"]),
            s(&a["message"])
        ));
    }
    let recent = v["recent"].as_array().cloned().unwrap_or_default();
    if !recent.is_empty() {
        out.push_str("\nrecent changes:\n");
    }
    for r in recent.iter().take(10) {
        out.push_str(&format!(
            "  {:<7}  {:<8}  {:<24}  {}\n",
            s(&r["state"]),
            s(&r["level"]),
            s(&r["key"]),
            s(&r["message"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_form() {
        let v = json!({
            "active": [{"key": "pool/tank", "level": "critical", "message": "degraded"}],
            "recent": [{"key": "pool/tank", "level": "critical", "state": "raised", "message": "degraded"}]
        });
        let t = text(&v);
        assert!(t.starts_with("CRITICAL  pool/tank"), "{t}");
        assert!(
            t.contains("recent changes:\n  raised   critical  pool/tank"),
            "{t}"
        );
        assert_eq!(
            text(&json!({"active": [], "recent": []})),
            "no active alerts\n"
        );
    }
}
