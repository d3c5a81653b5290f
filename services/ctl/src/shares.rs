//! `cairnctl shares|snapshots|snapshot|restore|volumes|volume|scrub|capacity`: shares, snapshots, thin volumes and scrubs of a pool.

use crate::cli::shares::{
    PoolRef, ShareCommand, ShareRef, ShareSize, SharesArgs, SharesCommand, SnapshotCommand,
    SnapshotRef, VolumeCommand, VolumeCopy,
};
use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use crate::tasks;
use hyper::Method;
use serde_json::{json, Value};

/// One parsed verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    ListShares {
        pool: String,
    },
    CreateShare {
        pool: String,
        name: String,
        size: u64,
    },
    ResizeShare {
        pool: String,
        name: String,
        size: u64,
    },
    DeleteShare {
        pool: String,
        name: String,
        confirm: String,
    },
    ListSnapshots {
        pool: String,
        share: String,
    },
    CreateSnapshot {
        pool: String,
        share: String,
        name: String,
    },
    DeleteSnapshot {
        pool: String,
        share: String,
        name: String,
    },
    Schedule {
        pool: String,
        share: String,
        counts: Vec<(String, u32)>,
    },
    Restore {
        pool: String,
        share: String,
        snapshot: String,
        new_share: String,
    },
    ListVolumes {
        pool: String,
    },
    CreateVolume {
        pool: String,
        name: String,
        size: u64,
    },
    CloneVolume {
        pool: String,
        source: String,
        name: String,
    },
    SnapshotVolume {
        pool: String,
        source: String,
        name: String,
    },
    DeleteVolume {
        pool: String,
        name: String,
    },
    Scrub {
        pool: String,
    },
    ScrubInterval {
        pool: String,
        days: u32,
    },
    Capacity {
        pool: String,
    },
}

/// The verb a command line asks for.
pub fn verb(command: SharesCommand) -> Verb {
    match command {
        SharesCommand::Shares(SharesArgs {
            command: None,
            pool,
        }) => Verb::ListShares {
            // clap requires POOL when no share verb is given.
            pool: pool.unwrap_or_default(),
        },
        SharesCommand::Shares(SharesArgs {
            command: Some(share),
            ..
        }) => match share {
            ShareCommand::List(PoolRef { pool }) => Verb::ListShares { pool },
            ShareCommand::Create(ShareSize { pool, name, size }) => {
                Verb::CreateShare { pool, name, size }
            }
            ShareCommand::Resize(ShareSize { pool, name, size }) => {
                Verb::ResizeShare { pool, name, size }
            }
            ShareCommand::Delete {
                pool,
                name,
                confirm,
            } => Verb::DeleteShare {
                pool,
                name,
                confirm,
            },
        },
        SharesCommand::Snapshots(ShareRef { pool, share })
        | SharesCommand::Snapshot(SnapshotCommand::List(ShareRef { pool, share })) => {
            Verb::ListSnapshots { pool, share }
        }
        SharesCommand::Snapshot(SnapshotCommand::Create(SnapshotRef { pool, share, name })) => {
            Verb::CreateSnapshot { pool, share, name }
        }
        SharesCommand::Snapshot(SnapshotCommand::Delete(SnapshotRef { pool, share, name })) => {
            Verb::DeleteSnapshot { pool, share, name }
        }
        SharesCommand::Snapshot(SnapshotCommand::Schedule {
            pool,
            share,
            hourly,
            daily,
            weekly,
        }) => Verb::Schedule {
            pool,
            share,
            counts: [("hourly", hourly), ("daily", daily), ("weekly", weekly)]
                .into_iter()
                .filter_map(|(k, n)| n.map(|n| (k.to_string(), n)))
                .collect(),
        },
        SharesCommand::Restore {
            pool,
            share,
            snapshot,
            new_share,
        } => Verb::Restore {
            pool,
            share,
            snapshot,
            new_share,
        },
        SharesCommand::Volumes(PoolRef { pool }) => Verb::ListVolumes { pool },
        SharesCommand::Volume(VolumeCommand::Create { pool, name, size }) => {
            Verb::CreateVolume { pool, name, size }
        }
        SharesCommand::Volume(VolumeCommand::Clone(VolumeCopy { pool, source, name })) => {
            Verb::CloneVolume { pool, source, name }
        }
        SharesCommand::Volume(VolumeCommand::Snapshot(VolumeCopy { pool, source, name })) => {
            Verb::SnapshotVolume { pool, source, name }
        }
        SharesCommand::Volume(VolumeCommand::Delete { pool, name }) => {
            Verb::DeleteVolume { pool, name }
        }
        SharesCommand::Scrub {
            pool,
            interval: None,
        } => Verb::Scrub { pool },
        SharesCommand::Scrub {
            pool,
            interval: Some(days),
        } => Verb::ScrubInterval { pool, days },
        SharesCommand::Capacity(PoolRef { pool }) => Verb::Capacity { pool },
    }
}

/// A size for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Text table of shares.
pub fn shares_text(v: &Value) -> String {
    let mut out = String::new();
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        out.push_str("no shares\n");
    }
    for s in list {
        let used = s["usage"]["used_bytes"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "{:<20}  {:>10}  {:>10} used  {:>5.1}%  {}  {}\n",
            s["name"].as_str().unwrap_or("?"),
            human(s["size_bytes"].as_u64().unwrap_or(0)),
            human(used),
            s["used_percent"].as_f64().unwrap_or(0.0),
            if s["mounted"] == true {
                "mounted"
            } else {
                "NOT MOUNTED"
            },
            s["mountpoint"].as_str().unwrap_or("")
        ));
    }
    out
}

/// Text table of snapshots.
pub fn snapshots_text(v: &Value) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no snapshots\n".into();
    }
    list.iter()
        .map(|s| {
            format!(
                "{:<36}  {}  {}\n",
                s["name"].as_str().unwrap_or("?"),
                s["created"].as_str().unwrap_or("?"),
                if s["scheduled"] == true {
                    "scheduled"
                } else {
                    "manual"
                }
            )
        })
        .collect()
}

/// Text table of volumes.
pub fn volumes_text(v: &Value) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no volumes\n".into();
    }
    list.iter()
        .map(|x| {
            format!(
                "{:<20}  {:>10}  {:>10} mapped  {:<8}  {}{}\n",
                x["name"].as_str().unwrap_or("?"),
                human(x["size_bytes"].as_u64().unwrap_or(0)),
                human(x["used_bytes"].as_u64().unwrap_or(0)),
                if x["active"] == true {
                    "active"
                } else {
                    "inactive"
                },
                x["path"].as_str().unwrap_or(""),
                x["origin"]
                    .as_str()
                    .map(|o| format!("  (from {o})"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

async fn call(
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
    doing: &str,
) -> anyhow::Result<(u16, Value)> {
    let mut req = s.authed(method, path)?;
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = s.conn.send(req).await?;
    let status = r.status.as_u16();
    if !(200..300).contains(&status) {
        return Err(api_error(doing, &r));
    }
    let v = if status == 204 { Value::Null } else { r.json() };
    Ok((status, v))
}

fn print(output: Output, v: &Value, text: impl FnOnce(&Value) -> String) {
    match output {
        Output::Json => println!("{v}"),
        Output::Text => print!("{}", text(v)),
    }
}

/// Run one verb against the node.
pub async fn run(s: &Session, verb: Verb, output: Output) -> anyhow::Result<()> {
    let pools = "/api/v1/pools";
    match verb {
        Verb::ListShares { pool } => {
            let v = s
                .get_json(&format!("{pools}/{pool}/shares"), "cannot list shares")
                .await?;
            print(output, &v, shares_text);
        }
        Verb::CreateShare { pool, name, size } => {
            let (_, v) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/shares"),
                Some(json!({"name": name, "size_bytes": size})),
                &format!("cannot create share {name}"),
            )
            .await?;
            print(output, &json!([v]), shares_text);
        }
        Verb::ResizeShare { pool, name, size } => {
            let (_, v) = call(
                s,
                Method::PATCH,
                &format!("{pools}/{pool}/shares/{name}"),
                Some(json!({"size_bytes": size})),
                &format!("cannot resize share {name}"),
            )
            .await?;
            print(output, &json!([v]), shares_text);
        }
        Verb::DeleteShare {
            pool,
            name,
            confirm,
        } => {
            call(
                s,
                Method::DELETE,
                &format!("{pools}/{pool}/shares/{name}"),
                Some(json!({"confirm": confirm})),
                &format!("cannot delete share {name}"),
            )
            .await?;
            print(output, &json!({"deleted": name}), |_| {
                format!("deleted share {name}\n")
            });
        }
        Verb::ListSnapshots { pool, share } => {
            let v = s
                .get_json(
                    &format!("{pools}/{pool}/shares/{share}/snapshots"),
                    "cannot list snapshots",
                )
                .await?;
            print(output, &v, snapshots_text);
        }
        Verb::CreateSnapshot { pool, share, name } => {
            let (_, v) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/shares/{share}/snapshots"),
                Some(json!({"name": name})),
                &format!("cannot snapshot share {share}"),
            )
            .await?;
            print(output, &json!([v]), snapshots_text);
        }
        Verb::DeleteSnapshot { pool, share, name } => {
            call(
                s,
                Method::DELETE,
                &format!("{pools}/{pool}/shares/{share}/snapshots/{name}"),
                None,
                &format!("cannot delete snapshot {name}"),
            )
            .await?;
            print(output, &json!({"deleted": name}), |_| {
                format!("deleted snapshot {share}@{name}\n")
            });
        }
        Verb::Schedule {
            pool,
            share,
            counts,
        } => {
            let path = format!("{pools}/{pool}/shares/{share}/snapshot-schedule");
            let mut cur = s.get_json(&path, "cannot read the schedule").await?;
            for (k, n) in counts {
                cur[k] = json!(n);
            }
            let (_, v) = call(s, Method::PUT, &path, Some(cur), "cannot set the schedule").await?;
            print(output, &v, |v| {
                format!(
                    "keep {} hourly, {} daily, {} weekly snapshot(s) of {share}\n",
                    v["hourly"], v["daily"], v["weekly"]
                )
            });
        }
        Verb::Restore {
            pool,
            share,
            snapshot,
            new_share,
        } => {
            let (_, t) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/shares/{share}/snapshots/{snapshot}/restore"),
                Some(json!({"new_share": new_share})),
                &format!("cannot restore {share}@{snapshot}"),
            )
            .await?;
            let id = t["id"].as_u64().unwrap_or(0).to_string();
            tasks::show(s, &id, true, output).await?;
        }
        Verb::ListVolumes { pool } => {
            let v = s
                .get_json(&format!("{pools}/{pool}/volumes"), "cannot list volumes")
                .await?;
            print(output, &v, volumes_text);
        }
        Verb::CreateVolume { pool, name, size } => {
            let (_, v) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/volumes"),
                Some(json!({"name": name, "size_bytes": size})),
                &format!("cannot create volume {name}"),
            )
            .await?;
            print(output, &json!([v]), volumes_text);
        }
        Verb::CloneVolume { pool, source, name } => {
            let (_, v) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/volumes/{source}/clone"),
                Some(json!({"name": name})),
                &format!("cannot clone volume {source}"),
            )
            .await?;
            print(output, &json!([v]), volumes_text);
        }
        Verb::SnapshotVolume { pool, source, name } => {
            let (_, v) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/volumes/{source}/snapshot"),
                Some(json!({"name": name})),
                &format!("cannot snapshot volume {source}"),
            )
            .await?;
            print(output, &json!([v]), volumes_text);
        }
        Verb::DeleteVolume { pool, name } => {
            call(
                s,
                Method::DELETE,
                &format!("{pools}/{pool}/volumes/{name}"),
                None,
                &format!("cannot delete volume {name}"),
            )
            .await?;
            print(output, &json!({"deleted": name}), |_| {
                format!("deleted volume {name}\n")
            });
        }
        Verb::Scrub { pool } => {
            let (_, t) = call(
                s,
                Method::POST,
                &format!("{pools}/{pool}/scrub"),
                None,
                &format!("cannot scrub pool {pool}"),
            )
            .await?;
            let id = t["id"].as_u64().unwrap_or(0).to_string();
            tasks::show(s, &id, true, output).await?;
        }
        Verb::ScrubInterval { pool, days } => {
            let (_, v) = call(
                s,
                Method::PUT,
                &format!("{pools}/{pool}/scrub-schedule"),
                Some(json!({"interval_days": days})),
                "cannot set the scrub schedule",
            )
            .await?;
            print(output, &v, |_| {
                if days == 0 {
                    format!("scheduled scrubs of {pool} are off\n")
                } else {
                    format!("pool {pool} is scrubbed every {days} day(s)\n")
                }
            });
        }
        Verb::Capacity { pool } => {
            let v = s
                .get_json(&format!("{pools}/{pool}/capacity"), "cannot read capacity")
                .await?;
            print(output, &v, |v| {
                let mut out = format!(
                    "thin pool {}: data {:.1}%, metadata {:.1}%, {} provisioned\n",
                    human(v["size_bytes"].as_u64().unwrap_or(0)),
                    v["data_percent"].as_f64().unwrap_or(0.0),
                    v["metadata_percent"].as_f64().unwrap_or(0.0),
                    human(v["provisioned_bytes"].as_u64().unwrap_or(0)),
                );
                for sh in v["shares"].as_array().cloned().unwrap_or_default() {
                    out.push_str(&format!(
                        "  share {:<20} {:>5.1}%\n",
                        sh["share"].as_str().unwrap_or("?"),
                        sh["used_percent"].as_f64().unwrap_or(0.0)
                    ));
                }
                out
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Cli, Command};

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// `cairnctl VERB REST…` through the command tree: the verb and any `-o`.
    fn parse(verb: &str, rest: &[String]) -> Result<(Verb, Option<Output>), String> {
        let argv = ["cairnctl", verb]
            .into_iter()
            .map(String::from)
            .chain(rest.iter().cloned());
        let cli = Cli::parse_from_args(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Shares(c) => Ok((super::verb(c), cli.output)),
            other => Err(format!("not a shares verb: {other:?}")),
        }
    }

    #[test]
    fn verbs_parse_with_flags_and_output() {
        assert_eq!(
            parse(
                "shares",
                &args(&["create", "tank", "docs", "--size", "10G"])
            ),
            Ok((
                Verb::CreateShare {
                    pool: "tank".into(),
                    name: "docs".into(),
                    size: 10 << 30
                },
                None
            ))
        );
        assert_eq!(
            parse("shares", &args(&["tank", "-o", "json"])),
            Ok((
                Verb::ListShares {
                    pool: "tank".into()
                },
                Some(Output::Json)
            ))
        );
        assert_eq!(
            parse(
                "snapshot",
                &args(&["schedule", "tank", "docs", "--hourly=24"])
            ),
            Ok((
                Verb::Schedule {
                    pool: "tank".into(),
                    share: "docs".into(),
                    counts: vec![("hourly".into(), 24)]
                },
                None
            ))
        );
        assert_eq!(
            parse("scrub", &args(&["tank", "--interval", "7"])),
            Ok((
                Verb::ScrubInterval {
                    pool: "tank".into(),
                    days: 7
                },
                None
            ))
        );
        assert_eq!(
            parse("shares", &args(&["list", "tank"])),
            Ok((
                Verb::ListShares {
                    pool: "tank".into()
                },
                None
            ))
        );
        assert_eq!(
            parse("snapshot", &args(&["list", "tank", "docs"])),
            Ok((
                Verb::ListSnapshots {
                    pool: "tank".into(),
                    share: "docs".into()
                },
                None
            ))
        );
        assert!(matches!(
            parse("volume", &args(&["clone", "tank", "base", "c1"])),
            Ok((Verb::CloneVolume { .. }, None))
        ));
    }

    #[test]
    fn mistakes_are_explained() {
        let e = parse("shares", &args(&["create", "tank", "docs"])).unwrap_err();
        assert!(e.contains("--size"), "{e}");
        let e = parse("shares", &args(&["delete", "tank", "docs"])).unwrap_err();
        assert!(e.contains("--confirm"), "{e}");
        let e = parse("shares", &args(&["tank", "--bogus", "1"])).unwrap_err();
        assert!(e.contains("unknown flag --bogus"), "{e}");
        let e = parse("restore", &args(&["tank", "docs"])).unwrap_err();
        assert!(e.contains("POOL SHARE SNAPSHOT NEW_SHARE"), "{e}");
    }

    #[test]
    fn tables_show_usage_and_origin() {
        let v = serde_json::json!([{"name": "docs", "size_bytes": 1073741824u64, "usage": {"used_bytes": 536870912u64},
            "used_percent": 50.0, "mounted": true, "mountpoint": "/var/lib/cairn/shares/tank/docs"}]);
        let t = shares_text(&v);
        assert!(
            t.contains("1.0 GiB") && t.contains("512.0 MiB used") && t.contains("50.0%"),
            "{t}"
        );
        let v = serde_json::json!([{"name": "c1", "size_bytes": 67108864u64, "used_bytes": 0, "active": true,
            "path": "/dev/cairn-tank/vol-c1", "origin": "base"}]);
        assert!(volumes_text(&v).contains("(from base)"));
        assert_eq!(snapshots_text(&serde_json::json!([])), "no snapshots\n");
    }
}
