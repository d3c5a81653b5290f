//! `cairnctl network`: show the config and link status, apply a spec in try mode with a
//! countdown, confirm or roll back.

use crate::cli::network::{NetworkArgs, NetworkCommand};
use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A parsed `network` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkCmd {
    Show,
    Status,
    Apply {
        file: PathBuf,
        confirm: bool,
        timeout_s: Option<u64>,
    },
    Confirm,
    Rollback,
}

/// The command a command line asks for.
pub fn command(args: NetworkArgs) -> NetworkCmd {
    match args.command {
        None => NetworkCmd::Show,
        Some(NetworkCommand::Status) => NetworkCmd::Status,
        Some(NetworkCommand::Confirm) => NetworkCmd::Confirm,
        Some(NetworkCommand::Rollback) => NetworkCmd::Rollback,
        Some(NetworkCommand::Apply {
            file,
            confirm,
            timeout,
        }) => NetworkCmd::Apply {
            // The command tree refuses an apply without a FILE.
            file: file.unwrap_or_default(),
            confirm,
            timeout_s: timeout,
        },
    }
}

/// One line per link.
pub fn status_text(v: &Value) -> String {
    let s = |x: &Value| x.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "{:<14} {:<9} {:<5} {:<8} {:<6} {:<10} {}\n",
        "LINK", "KIND", "UP", "CARRIER", "MTU", "SPEED", "ADDRESSES / DETAIL"
    );
    for l in v["links"].as_array().into_iter().flatten() {
        let speed = l["speed_mbps"]
            .as_u64()
            .map(|m| format!("{m}M/{}", s(&l["duplex"])))
            .unwrap_or_else(|| "-".into());
        let mut detail: Vec<String> = l["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(String::from))
            .collect();
        if let Some(m) = l["master"].as_str() {
            detail.push(format!("in {m}"));
        }
        if let Some(b) = l["bond"].as_object() {
            let members: Vec<String> = b["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    format!(
                        "{}:{}{}",
                        s(&m["name"]),
                        s(&m["mii_status"]),
                        if m["active"] == true { "*" } else { "" }
                    )
                })
                .collect();
            detail.push(format!(
                "{} active {} [{}]",
                s(&b["mode"]),
                s(&b["active"]),
                members.join(" ")
            ));
        }
        if let Some(ports) = l["bridge_ports"].as_array().filter(|p| !p.is_empty()) {
            let p: Vec<String> = ports.iter().map(&s).collect();
            detail.push(format!("ports {}", p.join(" ")));
        }
        if let Some(id) = l["vlan_id"].as_u64() {
            detail.push(format!("vlan {id} on {}", s(&l["vlan_parent"])));
        }
        out.push_str(&format!(
            "{:<14} {:<9} {:<5} {:<8} {:<6} {:<10} {}\n",
            s(&l["name"]),
            s(&l["kind"]),
            if l["up"] == true { "up" } else { "down" },
            if l["carrier"] == true { "yes" } else { "no" },
            l["mtu"].as_u64().unwrap_or(0),
            speed,
            detail.join(", ")
        ));
    }
    out.push_str(&format!(
        "netlink operations applied since start: {}\n",
        v["applied_ops_total"]
    ));
    out
}

/// The config view as text.
pub fn show_text(v: &Value) -> String {
    let mut out = String::new();
    out.push_str(if v["configured"] == true {
        "confirmed config (the node boots with it):\n"
    } else {
        "not configured yet: factory default (DHCP on every link):\n"
    });
    out.push_str(&serde_json::to_string_pretty(&v["spec"]).unwrap_or_default());
    out.push('\n');
    if v["pending"].is_object() {
        out.push_str(&format!(
            "PENDING change: rolled back in {} s unless confirmed (cairnctl network confirm)\n",
            v["pending"]["remaining_s"]
        ));
    }
    if let Some(r) = v["last_rollback"]["reason"].as_str() {
        out.push_str(&format!("last automatic rollback: {r}\n"));
    }
    out
}

async fn post(s: &Session, path: &str, body: &Value, doing: &str) -> anyhow::Result<Value> {
    let method = if path == "/api/v1/network" {
        Method::PUT
    } else {
        Method::POST
    };
    let r = s.conn.send(s.authed(method, path)?.json(body)).await?;
    if r.status.as_u16() != 200 {
        return Err(api_error(doing, &r));
    }
    Ok(r.json())
}

/// Run a `network` command.
pub async fn run(s: &Session, cmd: NetworkCmd, output: Output) -> anyhow::Result<()> {
    match cmd {
        NetworkCmd::Show => {
            let v = s
                .get_json("/api/v1/network", "cannot get the network config")
                .await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => print!("{}", show_text(&v)),
            }
        }
        NetworkCmd::Status => {
            let v = s
                .get_json("/api/v1/network/status", "cannot get the network status")
                .await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => print!("{}", status_text(&v)),
            }
        }
        NetworkCmd::Apply {
            file,
            confirm,
            timeout_s,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let spec: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let mut body = json!({ "spec": spec });
            if let Some(t) = timeout_s {
                body["timeout_s"] = json!(t);
            }
            let p = post(
                s,
                "/api/v1/network",
                &body,
                "the node refused the network spec",
            )
            .await?;
            if output == Output::Json && !confirm {
                println!("{p}");
                return Ok(());
            }
            if output == Output::Text {
                let ops = p["apply"]["ops"].as_array().cloned().unwrap_or_default();
                println!(
                    "applied {} netlink operations in {} ms (try mode):",
                    ops.len(),
                    p["apply"]["total_ms"]
                );
                for o in &ops {
                    println!("  {}", o.as_str().unwrap_or("?"));
                }
            }
            if confirm {
                // Reaching the node again over a new connection is the proof it still answers.
                let c = post(
                    s,
                    "/api/v1/network/confirm",
                    &json!({}),
                    "cannot confirm the change",
                )
                .await?;
                match output {
                    Output::Json => println!("{c}"),
                    Output::Text => println!("confirmed: the node boots with this config"),
                }
                return Ok(());
            }
            countdown(s, p["remaining_s"].as_u64().unwrap_or(0)).await?;
        }
        NetworkCmd::Confirm => {
            let c = post(
                s,
                "/api/v1/network/confirm",
                &json!({}),
                "cannot confirm the change",
            )
            .await?;
            match output {
                Output::Json => println!("{c}"),
                Output::Text => println!("confirmed: the node boots with this config"),
            }
        }
        NetworkCmd::Rollback => {
            let r = post(
                s,
                "/api/v1/network/rollback",
                &json!({}),
                "cannot roll back",
            )
            .await?;
            match output {
                Output::Json => println!("{r}"),
                Output::Text => println!(
                    "rolled back ({} netlink operations)",
                    r["ops"].as_array().map_or(0, Vec::len)
                ),
            }
        }
    }
    Ok(())
}

/// Show the seconds left until the rollback, until the change is confirmed (elsewhere),
/// rolled back, or the node stops answering.
async fn countdown(s: &Session, remaining: u64) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(remaining + 15);
    println!("confirm with `cairnctl network confirm` (Ctrl-C leaves the countdown; the rollback still happens)");
    loop {
        let v = match s
            .get_json("/api/v1/network", "cannot follow the pending change")
            .await
        {
            Ok(v) => v,
            Err(e) => {
                println!();
                println!("the node does not answer ({e:#}); the change rolls back by itself");
                return Ok(());
            }
        };
        if v["pending"].is_null() {
            println!();
            match v["last_rollback"]["reason"].as_str() {
                Some(r) => println!("rolled back: {r}"),
                None => println!("no change pending any more (confirmed or rolled back)"),
            }
            return Ok(());
        }
        print!(
            "\rrollback in {:>4} s ",
            v["pending"]["remaining_s"].as_u64().unwrap_or(0)
        );
        let _ = std::io::stdout().flush();
        anyhow::ensure!(
            Instant::now() < end,
            "the change is still pending past its deadline"
        );
        // one countdown tick; the loop is bounded by the rollback deadline above
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Cli, Command};

    /// `cairnctl network WORDS…` through the command tree.
    fn p(s: &[&str]) -> anyhow::Result<NetworkCmd> {
        let argv = ["cairnctl", "network"].into_iter().chain(s.iter().copied());
        match Cli::parse_from_args(argv)?.command {
            Command::Network(a) => Ok(command(a)),
            other => anyhow::bail!("not a network verb: {other:?}"),
        }
    }

    #[test]
    fn parses_the_verbs() {
        assert_eq!(p(&[]).unwrap(), NetworkCmd::Show);
        assert_eq!(p(&["status"]).unwrap(), NetworkCmd::Status);
        assert_eq!(
            p(&["apply", "n.json", "--confirm", "--timeout", "30"]).unwrap(),
            NetworkCmd::Apply {
                file: "n.json".into(),
                confirm: true,
                timeout_s: Some(30)
            }
        );
        assert!(p(&["apply"])
            .unwrap_err()
            .to_string()
            .contains("needs a FILE"));
        assert!(p(&["apply", "x", "--timeout", "soon"]).is_err());
        assert!(p(&["frob"]).is_err());
        assert!(p(&["confirm", "now"]).is_err());
    }

    #[test]
    fn status_text_shows_bonds_and_bridges() {
        let v = json!({"applied_ops_total": 7, "links": [
            {"name": "bond0", "kind": "bond", "up": true, "carrier": true, "mtu": 1500,
             "addresses": ["10.10.0.2/24"], "bridge_ports": [],
             "bond": {"mode": "active-backup", "active": "ens4",
                      "members": [{"name": "ens4", "mii_status": "up", "active": true},
                                  {"name": "ens5", "mii_status": "down", "active": false}]}},
            {"name": "br0", "kind": "bridge", "up": true, "carrier": false, "mtu": 1500,
             "addresses": [], "bridge_ports": ["bond0.20"]}
        ]});
        let t = status_text(&v);
        assert!(
            t.contains("active-backup active ens4 [ens4:up* ens5:down]"),
            "{t}"
        );
        assert!(t.contains("ports bond0.20"), "{t}");
        assert!(t.contains("applied since start: 7"), "{t}");
    }
}
