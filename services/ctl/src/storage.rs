//! `cairnctl disks|pools`: the disk inventory, wipe by serial, and pool create and add (capacity shown first), show, replace, destroy.

use crate::cli::storage::{DisksArgs, DisksCommand, PoolsArgs, PoolsCommand, StorageCommand};
use crate::cli::Output;
use crate::conn::api_error;
use crate::session::Session;
use crate::shares::human;
use crate::tasks;
use hyper::Method;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};

/// One parsed verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Disks,
    ShowDisk {
        disk: String,
    },
    Wipe {
        disk: String,
        serial: String,
    },
    Pools,
    ShowPool {
        name: String,
    },
    Create {
        name: String,
        level: String,
        disks: Vec<String>,
        yes: bool,
    },
    Replace {
        name: String,
        old: String,
        new: String,
    },
    Add {
        name: String,
        disk: String,
        yes: bool,
    },
    Destroy {
        name: String,
        confirm: String,
    },
}

/// The verb a command line asks for.
pub fn verb(command: StorageCommand) -> Verb {
    match command {
        StorageCommand::Disks(DisksArgs { command: None }) => Verb::Disks,
        StorageCommand::Disks(DisksArgs {
            command: Some(DisksCommand::Show { disk }),
        }) => Verb::ShowDisk { disk },
        StorageCommand::Disks(DisksArgs {
            command: Some(DisksCommand::Wipe { disk, serial }),
        }) => Verb::Wipe { disk, serial },
        StorageCommand::Pools(PoolsArgs { command: None }) => Verb::Pools,
        StorageCommand::Pools(PoolsArgs {
            command: Some(pool),
        }) => match pool {
            PoolsCommand::Show { name } => Verb::ShowPool { name },
            PoolsCommand::Create {
                name,
                level,
                disks,
                yes,
            } => Verb::Create {
                name,
                level,
                disks,
                yes,
            },
            PoolsCommand::Replace { name, old, new } => Verb::Replace { name, old, new },
            PoolsCommand::Add { name, disk, yes } => Verb::Add { name, disk, yes },
            PoolsCommand::Destroy { name, confirm } => Verb::Destroy { name, confirm },
        },
    }
}

async fn call(
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
    doing: &str,
) -> anyhow::Result<Value> {
    let mut req = s.authed(method, path)?;
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = s.conn.send(req).await?;
    if !r.status.is_success() {
        return Err(api_error(doing, &r));
    }
    Ok(if r.status == hyper::StatusCode::NO_CONTENT {
        Value::Null
    } else {
        r.json()
    })
}

/// Start a task and follow it with a progress bar.
async fn task(
    s: &Session,
    method: Method,
    path: &str,
    body: Value,
    doing: &str,
    output: Output,
) -> anyhow::Result<()> {
    let t = call(s, method, path, Some(body), doing).await?;
    let id = t["id"]
        .as_u64()
        .map(|i| i.to_string())
        .ok_or_else(|| anyhow::anyhow!("{doing}: the node answered without a task id: {t}"))?;
    tasks::show(s, &id, true, output).await
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// The disk table.
pub fn disks_text(v: &Value) -> String {
    let mut out = format!(
        "{:<40} {:<8} {:<22} {:<18} {:>10}  {:<8} {}\n",
        "ID", "DEV", "MODEL", "SERIAL", "SIZE", "BUS", "USAGE / SMART"
    );
    for d in v["disks"].as_array().into_iter().flatten() {
        let mut usage = str_of(&d["usage"]).to_string();
        if let Some(p) = d["pool"].as_str() {
            usage = format!("pool {p}");
        }
        if let Some(v) = d["smart"]["verdict"].as_str() {
            usage.push_str(&format!(" / {v}"));
            if let Some(t) = d["smart"]["temperature_c"].as_i64() {
                usage.push_str(&format!(" {t}°C"));
            }
        }
        out.push_str(&format!(
            "{:<40} {:<8} {:<22} {:<18} {:>10}  {:<8} {}\n",
            str_of(&d["id"]),
            str_of(&d["name"]),
            str_of(&d["model"]),
            str_of(&d["serial"]),
            human(d["size_bytes"].as_u64().unwrap_or(0)),
            str_of(&d["bus"]),
            usage
        ));
    }
    out
}

/// One disk in detail.
pub fn disk_text(d: &Value) -> String {
    let mut out = disks_text(&json!({"disks": [d]}));
    let list = |k: &str| -> String {
        let items: Vec<String> = d[k]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect();
        if items.is_empty() {
            "-".into()
        } else {
            items.join(", ")
        }
    };
    out.push_str(&format!(
        "by-id: {}\nwwn: {}\nrotational: {}\nsignatures: {}\nholders: {}\nmounts: {}\n",
        str_of(&d["by_id"]),
        str_of(&d["wwn"]),
        d["rotational"],
        list("signatures"),
        list("holders"),
        list("mounts")
    ));
    for p in d["partitions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  partition {} {} {} {}\n",
            str_of(&p["name"]),
            human(p["size_bytes"].as_u64().unwrap_or(0)),
            str_of(&p["label"]),
            str_of(&p["fs_type"])
        ));
    }
    out
}

fn pool_line(p: &Value) -> String {
    let sync = match (p["sync"]["action"].as_str(), p["sync"]["percent"].as_u64()) {
        (Some(a), Some(pct)) => format!("{a} {pct}%"),
        (Some(a), None) => a.to_string(),
        _ => String::new(),
    };
    format!(
        "{:<16} {:<7} {:<11} {:>10}  {:>2} disks  {} {}\n",
        str_of(&p["name"]),
        str_of(&p["level"]),
        str_of(&p["state"]),
        human(p["size_bytes"].as_u64().unwrap_or(0)),
        p["members"].as_array().map(Vec::len).unwrap_or(0),
        sync,
        str_of(&p["reason"]).trim_start_matches('-')
    )
}

/// The pool table.
pub fn pools_text(v: &Value) -> String {
    let mut out = format!(
        "{:<16} {:<7} {:<11} {:>10}  {:<8}  {}\n",
        "NAME", "LEVEL", "STATE", "SIZE", "MEMBERS", "SYNC / REASON"
    );
    for p in v["pools"].as_array().into_iter().flatten() {
        out.push_str(&pool_line(p));
    }
    out
}

/// One pool with its members.
pub fn pool_text(p: &Value) -> String {
    let mut out = pool_line(p);
    out.push_str(&format!(
        "device {}  md {}  volume group {}  uuid {}\n",
        str_of(&p["device"]),
        str_of(&p["md"]),
        str_of(&p["volume_group"]),
        str_of(&p["md_uuid"])
    ));
    for m in p["members"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<40} {:<10} {}\n",
            str_of(&m["disk"]),
            str_of(&m["dev"]),
            str_of(&m["state"])
        ));
    }
    out
}

/// What a create will build.
pub fn plan_text(p: &Value) -> String {
    let mut out = format!(
        "pool {} ({}) over {} disks: {} raw, {} usable, survives {} disk failure(s)\n",
        str_of(&p["name"]),
        str_of(&p["level"]),
        p["disks"].as_array().map(Vec::len).unwrap_or(0),
        human(p["raw_bytes"].as_u64().unwrap_or(0)),
        human(p["usable_bytes"].as_u64().unwrap_or(0)),
        p["redundancy"]
    );
    for n in p["notes"].as_array().into_iter().flatten() {
        out.push_str(&format!("note: {}\n", str_of(n)));
    }
    out
}

/// What adding a disk will give.
pub fn add_plan_text(p: &Value) -> String {
    let level = if p["level_before"] == p["level"] {
        str_of(&p["level"]).to_string()
    } else {
        format!("{} -> {}", str_of(&p["level_before"]), str_of(&p["level"]))
    };
    format!(
        "pool {} ({level}) with {} on {} disks: {} usable now, {} after\n",
        str_of(&p["pool"]),
        str_of(&p["disk"]),
        p["members"],
        human(p["usable_bytes_before"].as_u64().unwrap_or(0)),
        human(p["usable_bytes"].as_u64().unwrap_or(0)),
    )
}

fn print(output: Output, v: &Value, text: impl FnOnce(&Value) -> String) {
    match output {
        Output::Json => println!("{v}"),
        Output::Text => print!("{}", text(v)),
    }
}

/// Ask on the terminal; without one, `--yes` is required.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not a terminal: add --yes to confirm");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Run one verb against the node.
pub async fn run(s: &Session, verb: Verb, output: Output) -> anyhow::Result<()> {
    match verb {
        Verb::Disks => print(
            output,
            &s.get_json("/api/v1/disks", "cannot list disks").await?,
            disks_text,
        ),
        Verb::ShowDisk { disk } => print(
            output,
            &s.get_json(&format!("/api/v1/disks/{disk}"), "cannot get the disk")
                .await?,
            disk_text,
        ),
        Verb::Wipe { disk, serial } => {
            task(
                s,
                Method::POST,
                &format!("/api/v1/disks/{disk}/wipe"),
                json!({"confirm_serial": serial}),
                &format!("cannot wipe {disk}"),
                output,
            )
            .await?
        }
        Verb::Pools => print(
            output,
            &s.get_json("/api/v1/pools", "cannot list pools").await?,
            pools_text,
        ),
        Verb::ShowPool { name } => print(
            output,
            &s.get_json(&format!("/api/v1/pools/{name}"), "cannot get the pool")
                .await?,
            pool_text,
        ),
        Verb::Create {
            name,
            level,
            disks,
            yes,
        } => {
            let body = json!({"name": name, "level": level, "disks": disks});
            let plan = call(
                s,
                Method::POST,
                "/api/v1/pools/plan",
                Some(body.clone()),
                "the pool cannot be created",
            )
            .await?;
            if output == Output::Text {
                print!("{}", plan_text(&plan));
            } else {
                eprintln!("{plan}");
            }
            if !yes
                && !confirm(&format!(
                    "Create pool {name}? Everything on these disks is lost."
                ))?
            {
                anyhow::bail!("not confirmed; nothing was changed");
            }
            task(
                s,
                Method::POST,
                "/api/v1/pools",
                body,
                &format!("cannot create pool {name}"),
                output,
            )
            .await?;
        }
        Verb::Replace { name, old, new } => {
            task(
                s,
                Method::POST,
                &format!("/api/v1/pools/{name}/replace"),
                json!({"old": old, "new": new}),
                &format!("cannot replace {old}"),
                output,
            )
            .await?
        }
        Verb::Add { name, disk, yes } => {
            let plan = call(
                s,
                Method::POST,
                &format!("/api/v1/pools/{name}/add/plan"),
                Some(json!({"disk": disk})),
                &format!("cannot add {disk}"),
            )
            .await?;
            if output == Output::Text {
                print!("{}", add_plan_text(&plan));
            } else {
                eprintln!("{plan}");
            }
            if !yes
                && !confirm(&format!(
                    "Add {disk} to pool {name}? Everything on the disk is lost."
                ))?
            {
                anyhow::bail!("not confirmed; nothing was changed");
            }
            task(
                s,
                Method::POST,
                &format!("/api/v1/pools/{name}/add"),
                json!({"disk": disk}),
                &format!("cannot add {disk}"),
                output,
            )
            .await?
        }
        Verb::Destroy { name, confirm } => {
            task(
                s,
                Method::DELETE,
                &format!("/api/v1/pools/{name}"),
                json!({"confirm_name": confirm}),
                &format!("cannot destroy pool {name}"),
                output,
            )
            .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Cli, Command};

    /// `cairnctl VERB REST…` through the command tree: the verb and any `-o`.
    fn p(verb: &str, rest: &[&str]) -> Result<(Verb, Option<Output>), String> {
        let argv = ["cairnctl", verb].into_iter().chain(rest.iter().copied());
        let cli = Cli::parse_from_args(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Storage(c) => Ok((super::verb(c), cli.output)),
            other => Err(format!("not a disks or pools verb: {other:?}")),
        }
    }

    #[test]
    fn parses_the_verbs() {
        assert_eq!(p("disks", &[]).unwrap().0, Verb::Disks);
        assert_eq!(
            p("disks", &["wipe", "sdb", "--serial", "S1"]).unwrap().0,
            Verb::Wipe {
                disk: "sdb".into(),
                serial: "S1".into()
            }
        );
        assert!(p("disks", &["wipe", "sdb"])
            .unwrap_err()
            .contains("--serial"));
        assert_eq!(
            p(
                "pools",
                &["create", "tank", "--level", "raid5", "a", "b", "c", "--yes", "-o", "json"]
            )
            .unwrap(),
            (
                Verb::Create {
                    name: "tank".into(),
                    level: "raid5".into(),
                    disks: vec!["a".into(), "b".into(), "c".into()],
                    yes: true
                },
                Some(Output::Json)
            )
        );
        assert!(p("pools", &["create", "tank", "a", "b"])
            .unwrap_err()
            .contains("--level"));
        assert_eq!(
            p("pools", &["replace", "tank", "old", "new"]).unwrap().0,
            Verb::Replace {
                name: "tank".into(),
                old: "old".into(),
                new: "new".into()
            }
        );
        assert_eq!(
            p("pools", &["destroy", "tank", "--confirm=tank"])
                .unwrap()
                .0,
            Verb::Destroy {
                name: "tank".into(),
                confirm: "tank".into()
            }
        );
        assert!(p("pools", &["destroy", "tank"]).is_err());
        assert!(p("pools", &["show"]).is_err());
        assert!(p("pools", &["--yes"]).is_err());
        assert!(p("pools", &["add", "tank", "d", "--force", "x"])
            .unwrap_err()
            .contains("--force"));
        assert_eq!(
            p("pools", &["add", "tank", "d", "--yes"]).unwrap().0,
            Verb::Add {
                name: "tank".into(),
                disk: "d".into(),
                yes: true
            }
        );
        assert!(p("pools", &["replace", "tank", "a", "b", "--yes"]).is_err());
    }

    #[test]
    fn tables() {
        let d = json!({"disks": [{"id": "virtio-A", "name": "vdb", "model": null, "serial": "A", "size_bytes": 201326592u64, "bus": "virtio", "usage": "pool", "pool": "tank", "smart": {"verdict": "healthy", "temperature_c": 31}}]});
        let t = disks_text(&d);
        assert!(
            t.contains("virtio-A")
                && t.contains("192.0 MiB")
                && t.contains("pool tank / healthy 31°C"),
            "{t}"
        );
        let p = json!({"pools": [{"name": "tank", "level": "raid5", "state": "rebuilding", "size_bytes": 1u64 << 30, "members": [1, 2, 3], "sync": {"action": "recover", "percent": 40}, "reason": "rebuilding"}]});
        let t = pools_text(&p);
        assert!(
            t.contains("tank") && t.contains("recover 40%") && t.contains("3 disks"),
            "{t}"
        );
        let plan = json!({"name": "tank", "level": "raid5", "disks": ["a", "b", "c"], "raw_bytes": 3u64 << 30, "usable_bytes": 2u64 << 30, "redundancy": 1, "notes": ["x"]});
        assert_eq!(plan_text(&plan), "pool tank (raid5) over 3 disks: 3.0 GiB raw, 2.0 GiB usable, survives 1 disk failure(s)\nnote: x\n");
        let add = json!({"pool": "tank", "disk": "virtio-E", "level_before": "single", "level": "raid1", "members": 2, "usable_bytes_before": 1u64 << 30, "usable_bytes": 1u64 << 30});
        assert_eq!(
            add_plan_text(&add),
            "pool tank (single -> raid1) with virtio-E on 2 disks: 1.0 GiB usable now, 1.0 GiB after\n"
        );
    }
}
