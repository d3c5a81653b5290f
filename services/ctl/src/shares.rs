//! `cairnctl shares|snapshots|snapshot|restore|volumes|volume|scrub|capacity`: shares, snapshots, thin volumes and scrubs of a pool.

use crate::args::{Output, VerbArgs};
use crate::conn::api_error;
use crate::session::Session;
use crate::tasks;
use hyper::Method;
use serde_json::{json, Value};

/// The verbs this module handles (the rest of the command line is parsed by [`parse`]).
pub const VERBS: &[&str] = &[
    "shares",
    "snapshots",
    "snapshot",
    "restore",
    "volumes",
    "volume",
    "scrub",
    "capacity",
];

/// Usage lines for `--help`.
pub const USAGE: &str = "\
  shares [list] POOL                shares of a pool with their usage
  shares create POOL NAME --size SIZE   create a share (SIZE like 10G, 512M, bytes)
  shares resize POOL NAME --size SIZE   grow a share
  shares delete POOL NAME --confirm NAME  delete a share and its snapshots
  snapshots POOL SHARE              snapshots of a share (also: snapshot list POOL SHARE)
  snapshot create|delete POOL SHARE NAME
  snapshot schedule POOL SHARE [--hourly N] [--daily N] [--weekly N]  retention counts
  restore POOL SHARE SNAPSHOT NEW_SHARE   restore a snapshot as a new share (progress bar)
  volumes POOL                      thin volumes (VM disks)
  volume create POOL NAME --size SIZE | volume clone|snapshot POOL SOURCE NAME
  volume delete POOL NAME
  scrub POOL [--interval DAYS]      scrub now with a progress bar (md check + btrfs scrub),
                                    or set the days between scheduled scrubs
  capacity POOL                     thin pool and share usage";

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

/// Parse a size: bytes, or a number with K, M, G or T (binary units, optional `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 10G, 512M or a byte count)"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{s:?} must be a positive size"));
    }
    let bytes = n * mult as f64;
    if bytes > u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Parse `verb` and its arguments; also returns an `-o` given among them.
pub fn parse(verb: &str, rest: &[String]) -> Result<(Verb, Option<Output>), String> {
    let args = VerbArgs::parse(rest, false)?;
    let pos = &args.pos;
    let flag = |n: &str| args.flag(n);
    let known = |allowed: &[&str]| args.known(verb, allowed);
    let size = || -> Result<u64, String> {
        parse_size(&flag("size").ok_or(format!("{verb}: --size SIZE is required"))?)
            .map_err(|e| format!("--size: {e}"))
    };
    let want = |n: usize, shape: &str| args.want(n, verb, shape);
    let p = |i: usize| pos[i].clone();
    let sub = pos.first().map(String::as_str);
    let v = match (verb, sub) {
        ("shares", Some("create" | "resize")) => {
            want(3, &format!("{} POOL NAME --size SIZE", p(0)))?;
            known(&["size"])?;
            let (pool, name, size) = (p(1), p(2), size()?);
            if p(0) == "create" {
                Verb::CreateShare { pool, name, size }
            } else {
                Verb::ResizeShare { pool, name, size }
            }
        }
        ("shares", Some("delete")) => {
            want(3, "delete POOL NAME --confirm NAME")?;
            known(&["confirm"])?;
            Verb::DeleteShare {
                pool: p(1),
                name: p(2),
                confirm: flag("confirm").ok_or("shares delete: --confirm NAME is required")?,
            }
        }
        ("shares", Some("list")) if pos.len() == 2 => {
            known(&[])?;
            Verb::ListShares { pool: p(1) }
        }
        ("shares", _) => {
            want(1, "POOL")?;
            known(&[])?;
            Verb::ListShares { pool: p(0) }
        }
        ("snapshots", _) => {
            want(2, "POOL SHARE")?;
            known(&[])?;
            Verb::ListSnapshots {
                pool: p(0),
                share: p(1),
            }
        }
        ("snapshot", Some("create" | "delete")) => {
            want(4, &format!("{} POOL SHARE NAME", p(0)))?;
            known(&[])?;
            let (pool, share, name) = (p(1), p(2), p(3));
            if p(0) == "create" {
                Verb::CreateSnapshot { pool, share, name }
            } else {
                Verb::DeleteSnapshot { pool, share, name }
            }
        }
        ("snapshot", Some("schedule")) => {
            want(
                3,
                "schedule POOL SHARE [--hourly N] [--daily N] [--weekly N]",
            )?;
            known(&["hourly", "daily", "weekly"])?;
            let counts = args
                .flags
                .iter()
                .map(|(k, v)| {
                    v.parse::<u32>()
                        .map(|n| (k.clone(), n))
                        .map_err(|_| format!("--{k}: {v:?} is not a count"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Verb::Schedule {
                pool: p(1),
                share: p(2),
                counts,
            }
        }
        ("snapshot", Some("list")) => {
            want(3, "list POOL SHARE")?;
            known(&[])?;
            Verb::ListSnapshots {
                pool: p(1),
                share: p(2),
            }
        }
        ("snapshot", _) => {
            return Err("usage: cairnctl snapshot create|delete|list|schedule …".into())
        }
        ("restore", _) => {
            want(4, "POOL SHARE SNAPSHOT NEW_SHARE")?;
            known(&[])?;
            Verb::Restore {
                pool: p(0),
                share: p(1),
                snapshot: p(2),
                new_share: p(3),
            }
        }
        ("volumes", _) => {
            want(1, "POOL")?;
            known(&[])?;
            Verb::ListVolumes { pool: p(0) }
        }
        ("volume", Some("create")) => {
            want(3, "create POOL NAME --size SIZE")?;
            known(&["size"])?;
            Verb::CreateVolume {
                pool: p(1),
                name: p(2),
                size: size()?,
            }
        }
        ("volume", Some("clone" | "snapshot")) => {
            want(4, &format!("{} POOL SOURCE NAME", p(0)))?;
            known(&[])?;
            let (pool, source, name) = (p(1), p(2), p(3));
            if p(0) == "clone" {
                Verb::CloneVolume { pool, source, name }
            } else {
                Verb::SnapshotVolume { pool, source, name }
            }
        }
        ("volume", Some("delete")) => {
            want(3, "delete POOL NAME")?;
            known(&[])?;
            Verb::DeleteVolume {
                pool: p(1),
                name: p(2),
            }
        }
        ("volume", _) => return Err("usage: cairnctl volume create|clone|snapshot|delete …".into()),
        ("scrub", _) => {
            want(1, "POOL [--interval DAYS]")?;
            known(&["interval"])?;
            match flag("interval") {
                Some(d) => Verb::ScrubInterval {
                    pool: p(0),
                    days: d
                        .parse()
                        .map_err(|_| format!("--interval: {d:?} is not a number of days"))?,
                },
                None => Verb::Scrub { pool: p(0) },
            }
        }
        ("capacity", _) => {
            want(1, "POOL")?;
            known(&[])?;
            Verb::Capacity { pool: p(0) }
        }
        _ => return Err(format!("unknown command {verb:?}")),
    };
    Ok((v, args.output))
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

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("0").is_err());
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
