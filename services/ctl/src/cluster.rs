//! `cairnctl cluster`: status, create, a join token, join, leave, remove a node, recover; the
//! changes run as tasks followed with a progress bar.

use crate::cli::cluster::{ClusterArgs, ClusterCommand};
use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};
use std::net::IpAddr;

/// A parsed `cluster` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterCmd {
    Status,
    Create {
        name: String,
        address: IpAddr,
    },
    Token {
        ttl_s: Option<u64>,
    },
    Join {
        token: String,
        address: IpAddr,
        witness: bool,
    },
    Leave,
    Remove {
        node: String,
    },
    Recover {
        snapshot: Option<String>,
    },
}

/// The command a command line asks for.
pub fn command(args: ClusterArgs) -> ClusterCmd {
    match args.command {
        None | Some(ClusterCommand::Status) => ClusterCmd::Status,
        Some(ClusterCommand::Create { name, address }) => ClusterCmd::Create { name, address },
        Some(ClusterCommand::Token { ttl }) => ClusterCmd::Token { ttl_s: ttl },
        Some(ClusterCommand::Join {
            token,
            address,
            witness,
        }) => ClusterCmd::Join {
            token,
            address,
            witness,
        },
        Some(ClusterCommand::Leave) => ClusterCmd::Leave,
        Some(ClusterCommand::Remove { node }) => ClusterCmd::Remove { node },
        Some(ClusterCommand::Recover { snapshot }) => ClusterCmd::Recover { snapshot },
    }
}

/// The cluster status as text: standalone, or the cluster, quorum, failover and one line
/// per node.
pub fn status_text(v: &Value) -> String {
    let s = |x: &Value| x.as_str().unwrap_or("-").to_string();
    let this = s(&v["this_node"]);
    match v["mode"].as_str() {
        Some("standalone") => {
            return format!(
                "{this} is standalone (not in a cluster).\n\
                 Create one: cairnctl cluster create --name NAME --address IP\n\
                 Or join one: cairnctl cluster join TOKEN --address IP\n"
            )
        }
        Some("joining") => return format!("{this} is joining a cluster (see cairnctl tasks).\n"),
        _ => {}
    }
    let mut out = format!(
        "cluster {} (CA {})\n",
        s(&v["cluster"]["name"]),
        s(&v["cluster"]["ca_fingerprint"])
    );
    let q = &v["quorum"];
    if q.is_object() {
        let n = |x: &Value| x.as_array().map_or(0, Vec::len);
        out.push_str(&format!(
            "quorum: {} ({} of {} voters reachable)\n",
            if q["has_quorum"] == true { "yes" } else { "NO" },
            n(&q["reachable"]),
            n(&q["voters"])
        ));
    }
    let f = &v["failover"];
    if f.is_object() {
        if f["automatic"] == true {
            out.push_str("failover: automatic\n");
        } else {
            out.push_str(&format!(
                "failover: No automatic failover: {}\n",
                f["reason"].as_str().unwrap_or("no reason given")
            ));
        }
    }
    out.push_str(&format!(
        "{:<20} {:<40} {:<8} {:<12} {:<12} {}\n",
        "NODE", "ADDRESS", "ROLE", "LIVENESS", "LAST SEEN", "ETCD"
    ));
    for n in v["nodes"].as_array().into_iter().flatten() {
        let mut name = s(&n["name"]);
        if name == this {
            name.push_str(" (this)");
        }
        let seen = n["last_seen_s_ago"]
            .as_u64()
            .map_or_else(|| "-".to_string(), |a| format!("{a} s ago"));
        let etcd = match n["etcd_member"].as_object() {
            None => "-".to_string(),
            Some(m) if m.get("learner") == Some(&Value::Bool(true)) => "learner".to_string(),
            Some(_) => "member".to_string(),
        };
        out.push_str(&format!(
            "{:<20} {:<40} {:<8} {:<12} {:<12} {}\n",
            name,
            s(&n["address"]),
            s(&n["role"]),
            s(&n["liveness"]),
            seen,
            etcd
        ));
    }
    if let Some(bridges) = v["bridges"].as_array().filter(|b| !b.is_empty()) {
        out.push_str("bridges:\n");
        for b in bridges {
            let names = |x: &Value| {
                x.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let missing = names(&b["missing_on"]);
            out.push_str(&format!(
                "  {:<16} on {}{}\n",
                s(&b["bridge"]),
                names(&b["nodes"]),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(" (missing on {missing})")
                }
            ));
        }
    }
    if let Some(snaps) = v["snapshots"].as_array().filter(|b| !b.is_empty()) {
        out.push_str("etcd snapshots on this node (newest first):\n");
        for sn in snaps {
            out.push_str(&format!(
                "  {}  {}  {} bytes  revision {}\n",
                s(&sn["file"]),
                sn["taken_at"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), cairn_core::civil::format_utc),
                sn["size"].as_u64().unwrap_or(0),
                sn["revision"].as_i64().unwrap_or(0)
            ));
        }
    }
    out
}

/// A new join token as text (it is shown once).
pub fn token_text(v: &Value) -> String {
    let expires = v["expires_at"]
        .as_u64()
        .map_or_else(|| "-".to_string(), cairn_core::civil::format_utc);
    format!(
        "{}\n\nThe join token is shown only once; it expires {expires} and can be used once.\n\
         On the new node: cairnctl cluster join TOKEN --address IP\n",
        v["token"].as_str().unwrap_or("")
    )
}

/// Send one call; the JSON answer of a 2xx, or the API's error as the message.
async fn call(
    s: &Session,
    method: Method,
    path: &str,
    body: Option<&Value>,
    doing: &str,
) -> anyhow::Result<Value> {
    let mut req = s.authed(method, path)?;
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = s.conn.send(req).await?;
    if !(200..300).contains(&r.status.as_u16()) {
        return Err(api_error(doing, &r));
    }
    Ok(r.json())
}

/// Start a task-returning call and follow the task with a progress bar.
async fn task(
    s: &Session,
    method: Method,
    path: &str,
    body: Option<&Value>,
    doing: &str,
    output: Output,
) -> anyhow::Result<()> {
    let t = call(s, method, path, body, doing).await?;
    let id = t["id"]
        .as_u64()
        .with_context(|| format!("{doing}: the answer has no task: {t}"))?;
    crate::tasks::show(s, &id.to_string(), true, output).await
}

/// The first line of stdin, trimmed (a token piped in rather than typed on the command line).
fn first_line_of_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the join token from stdin")?;
    let token = line.trim().to_string();
    anyhow::ensure!(!token.is_empty(), "no join token on stdin");
    Ok(token)
}

/// Run a `cluster` command.
pub async fn run(s: &Session, cmd: ClusterCmd, output: Output) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Status => {
            let v = s
                .get_json("/api/v1/cluster", "cannot get the cluster status")
                .await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => print!("{}", status_text(&v)),
            }
            Ok(())
        }
        ClusterCmd::Create { name, address } => {
            let body = json!({ "name": name, "address": address });
            let doing = "cannot create the cluster";
            task(
                s,
                Method::POST,
                "/api/v1/cluster",
                Some(&body),
                doing,
                output,
            )
            .await
        }
        ClusterCmd::Token { ttl_s } => {
            let body = match ttl_s {
                Some(t) => json!({ "ttl_s": t }),
                None => json!({}),
            };
            let v = call(
                s,
                Method::POST,
                "/api/v1/cluster/tokens",
                Some(&body),
                "cannot make a join token",
            )
            .await?;
            match output {
                Output::Json => println!("{v}"),
                Output::Text => print!("{}", token_text(&v)),
            }
            Ok(())
        }
        ClusterCmd::Join {
            token,
            address,
            witness,
        } => {
            let token = if token == "-" {
                first_line_of_stdin()?
            } else {
                token
            };
            let body = json!({ "token": token, "address": address, "witness": witness });
            let doing = "cannot join the cluster";
            let path = "/api/v1/cluster/join";
            task(s, Method::POST, path, Some(&body), doing, output).await
        }
        ClusterCmd::Leave => {
            let doing = "cannot leave the cluster";
            let path = "/api/v1/cluster/leave";
            task(s, Method::POST, path, None, doing, output).await
        }
        ClusterCmd::Remove { node } => {
            let doing = format!("cannot remove node {node}");
            let path = format!("/api/v1/cluster/nodes/{node}");
            task(s, Method::DELETE, &path, None, &doing, output).await
        }
        ClusterCmd::Recover { snapshot } => {
            let body = match snapshot {
                Some(f) => json!({ "snapshot": f }),
                None => json!({}),
            };
            let doing = "cannot recover the cluster";
            let path = "/api/v1/cluster/recover";
            task(s, Method::POST, path, Some(&body), doing, output).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};

    /// `cairnctl cluster WORDS…` through the command tree.
    fn p(s: &[&str]) -> anyhow::Result<ClusterCmd> {
        let argv = ["cairnctl", "cluster"].into_iter().chain(s.iter().copied());
        match Cli::parse_from_args(argv)?.command {
            Command::Cluster(a) => Ok(command(a)),
            other => anyhow::bail!("not a cluster verb: {other:?}"),
        }
    }

    #[test]
    fn parses_the_verbs() {
        assert_eq!(p(&[]).unwrap(), ClusterCmd::Status);
        assert_eq!(p(&["status"]).unwrap(), ClusterCmd::Status);
        assert_eq!(
            p(&["create", "--name", "prod", "--address", "10.0.0.11"]).unwrap(),
            ClusterCmd::Create {
                name: "prod".into(),
                address: "10.0.0.11".parse().unwrap()
            }
        );
        assert!(p(&["create", "--name", "prod"]).is_err(), "address needed");
        assert!(p(&["create", "--name", "prod", "--address", "nas"]).is_err());
        assert_eq!(p(&["token"]).unwrap(), ClusterCmd::Token { ttl_s: None });
        assert_eq!(
            p(&["token", "--ttl", "1h"]).unwrap(),
            ClusterCmd::Token { ttl_s: Some(3600) }
        );
        assert_eq!(
            p(&["token", "--ttl=90"]).unwrap(),
            ClusterCmd::Token { ttl_s: Some(90) }
        );
        assert!(p(&["token", "--ttl", "soon"]).is_err());
        assert_eq!(
            p(&[
                "join",
                "cairn-join:abc",
                "--address",
                "fd00::2",
                "--witness"
            ])
            .unwrap(),
            ClusterCmd::Join {
                token: "cairn-join:abc".into(),
                address: "fd00::2".parse().unwrap(),
                witness: true
            }
        );
        assert!(
            p(&["join", "--address", "10.0.0.2"]).is_err(),
            "token needed"
        );
        assert_eq!(p(&["leave"]).unwrap(), ClusterCmd::Leave);
        assert_eq!(
            p(&["remove", "nas-02"]).unwrap(),
            ClusterCmd::Remove {
                node: "nas-02".into()
            }
        );
        assert!(p(&["remove"]).is_err());
        assert_eq!(
            p(&["recover"]).unwrap(),
            ClusterCmd::Recover { snapshot: None }
        );
        assert_eq!(
            p(&["recover", "--snapshot", "etcd-000000000001-r5.db"]).unwrap(),
            ClusterCmd::Recover {
                snapshot: Some("etcd-000000000001-r5.db".into())
            }
        );
        assert!(p(&["frob"]).is_err());
    }

    #[test]
    fn ttl_units() {
        use crate::cli::cluster::ttl_s;
        assert_eq!(ttl_s("30m"), Ok(1800));
        assert_eq!(ttl_s("2H"), Ok(7200));
        assert_eq!(ttl_s("45s"), Ok(45));
        assert!(ttl_s("1d").unwrap_err().contains("unknown unit"));
        assert!(ttl_s("").is_err());
    }

    #[test]
    fn status_text_of_a_member_and_a_standalone_node() {
        let v = json!({
            "mode": "member", "this_node": "nas-01",
            "cluster": {"name": "prod", "id": "x", "ca_fingerprint": "sha256:ab", "created_at": 1},
            "quorum": {"has_quorum": true, "reachable": ["nas-01", "nas-02"], "voters": ["nas-01", "nas-02", "w"]},
            "failover": {"automatic": false, "reason": "2 nodes and no witness"},
            "nodes": [
                {"name": "nas-01", "address": "10.0.0.11", "role": "voter", "liveness": "online",
                 "last_seen_s_ago": 0, "etcd_member": {"id": "a1", "learner": false}, "bridges": []},
                {"name": "nas-02", "address": "10.0.0.12", "role": "client", "liveness": "offline",
                 "last_seen_s_ago": 93, "etcd_member": null, "bridges": []}
            ]
        });
        let t = status_text(&v);
        assert!(t.starts_with("cluster prod (CA sha256:ab)\n"), "{t}");
        assert!(t.contains("quorum: yes (2 of 3 voters reachable)"), "{t}");
        assert!(
            t.contains("failover: No automatic failover: 2 nodes and no witness"),
            "{t}"
        );
        assert!(t.contains("nas-01 (this)"), "{t}");
        assert!(t.contains("93 s ago"), "{t}");
        assert!(t.lines().nth(5).unwrap().ends_with('-'), "{t}");
        let t = status_text(&json!({"mode": "standalone", "this_node": "nas-01", "nodes": []}));
        assert!(t.starts_with("nas-01 is standalone"), "{t}");
    }

    #[test]
    fn token_text_shows_it_once_with_its_expiry() {
        let t = token_text(&json!({"token": "cairn-join:xyz", "expires_at": 1_765_000_000}));
        assert!(t.starts_with("cairn-join:xyz\n"), "{t}");
        assert!(t.contains("expires 2025-12-06"), "{t}");
    }
}
