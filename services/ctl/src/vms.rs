//! `cairnctl vms …`: list, create, start, shut down, power off, reboot, clone, snapshot,
//! delete VMs, follow a VM's serial console, turn replication on for a VM's disks, show
//! their replication state, move their other copy to another node and turn it off again.

use crate::cli::vms::{CreateArgs, VmRef, VmsArgs, VmsCommand};
use crate::cli::Output;
use crate::conn::{api_error, TIMEOUT};
use crate::session::Session;
use crate::shares::human;
use anyhow::{bail, Context};
use cairn_client::{self as client, ClientRequest};
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;

/// A parsed `vms` command line.
#[derive(Debug, Clone, PartialEq)]
pub enum VmCmd {
    List,
    Show(String),
    Create(Value),
    Start(String),
    Off(String),
    Shutdown {
        name: String,
        timeout_s: Option<u64>,
    },
    Reboot {
        name: String,
        force: bool,
    },
    Clone {
        name: String,
        /// One new name, or several for a batch.
        new: Vec<String>,
        snapshot: Option<String>,
    },
    Snapshot {
        name: String,
        snap: String,
    },
    Restore {
        name: String,
        snap: String,
        new: String,
    },
    Autostart {
        name: String,
        on: bool,
    },
    Delete {
        name: String,
        delete_disks: bool,
    },
    Console(String),
    /// Turn replication on; `to`: the replica node (else the node chooses).
    Replicate {
        name: String,
        to: Option<String>,
    },
    /// The replicated disks' state.
    Replication(String),
    /// Turn replication off, keeping node `keep`'s copy.
    Unreplicate {
        name: String,
        keep: String,
    },
    /// Move the other copy of the replicated disks to node `to`.
    MoveReplica {
        name: String,
        to: String,
    },
}

/// The command a command line asks for.
pub fn command(args: VmsArgs) -> VmCmd {
    let Some(command) = args.command else {
        return VmCmd::List;
    };
    match command {
        VmsCommand::Show(VmRef { name }) => VmCmd::Show(name),
        VmsCommand::Create(create) => VmCmd::Create(spec(create)),
        VmsCommand::Start(VmRef { name }) => VmCmd::Start(name),
        VmsCommand::Off(VmRef { name }) => VmCmd::Off(name),
        VmsCommand::Console(VmRef { name }) => VmCmd::Console(name),
        VmsCommand::Replicate { name, to } => VmCmd::Replicate { name, to },
        VmsCommand::Replication(VmRef { name }) => VmCmd::Replication(name),
        VmsCommand::Unreplicate { name, keep } => VmCmd::Unreplicate { name, keep },
        VmsCommand::MoveReplica { name, to } => VmCmd::MoveReplica { name, to },
        VmsCommand::Shutdown { name, timeout } => VmCmd::Shutdown {
            name,
            timeout_s: timeout,
        },
        VmsCommand::Reboot { name, force } => VmCmd::Reboot { name, force },
        VmsCommand::Clone {
            name,
            new,
            snapshot,
        } => VmCmd::Clone {
            name,
            new,
            snapshot,
        },
        VmsCommand::Snapshot { name, snap } => VmCmd::Snapshot { name, snap },
        VmsCommand::Restore {
            name,
            snap,
            new_name,
        } => VmCmd::Restore {
            name,
            snap,
            new: new_name,
        },
        VmsCommand::Autostart { name, on } => VmCmd::Autostart { name, on },
        // clap refuses a delete without --yes.
        VmsCommand::Delete {
            name, delete_disks, ..
        } => VmCmd::Delete { name, delete_disks },
    }
}

/// The VM spec the API takes, from `vms create`'s flags: new disks first, then clones,
/// then ISOs.
fn spec(c: CreateArgs) -> Value {
    let mut disks = Vec::new();
    for d in c.disk {
        let mut v = json!({"source": "new", "pool": d.pool, "size_bytes": d.size_bytes});
        if let Some(bus) = d.bus {
            v["bus"] = json!(bus);
        }
        disks.push(v);
    }
    for d in c.clone_disk {
        let mut v = json!({"source": "clone", "vm": d.vm, "disk": d.disk});
        if let Some(s) = d.snapshot {
            v["snapshot"] = json!(s);
        }
        disks.push(v);
    }
    for i in c.iso {
        disks.push(
            json!({"source": "iso", "pool": i.pool, "share": i.share, "file": i.file, "bus": "sata"}),
        );
    }
    let nics: Vec<Value> = c
        .nic
        .into_iter()
        .map(|n| match n.mac {
            Some(m) => json!({"bridge": n.bridge, "mac": m}),
            None => json!({"bridge": n.bridge}),
        })
        .collect();
    let mut spec = json!({"name": c.name, "vcpus": c.vcpus, "memory_mib": c.memory,
        "disks": disks, "nics": nics, "autostart": c.autostart});
    if let Some(m) = c.machine {
        spec["machine"] = json!(m);
    }
    if let Some(cpu) = c.cpu {
        spec["cpu_model"] = json!(cpu);
    }
    if let Some(b) = c.boot {
        spec["boot"] = json!(b.split(',').collect::<Vec<_>>());
    }
    spec
}

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
    Ok(if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    })
}

/// Start a task-returning POST and follow the task with a progress bar.
async fn task(
    s: &Session,
    path: &str,
    body: &Value,
    doing: &str,
    output: Output,
) -> anyhow::Result<()> {
    task_by(s, Method::POST, path, body, doing, output).await
}

/// Start a task-returning call (`method`) and follow the task with a progress bar.
async fn task_by(
    s: &Session,
    method: Method,
    path: &str,
    body: &Value,
    doing: &str,
    output: Output,
) -> anyhow::Result<()> {
    let t = call(s, method, path, Some(body), doing).await?;
    let id = t["id"]
        .as_u64()
        .with_context(|| format!("{doing}: the answer has no task: {t}"))?;
    crate::tasks::show(s, &id.to_string(), true, output).await
}

/// A running VM's CPU use (`12.5%`), `-` without one (not running, or the first sample).
fn cpu_text(v: &Value) -> String {
    v["stats"]["cpu_percent"]
        .as_f64()
        .map_or_else(|| "-".into(), |p| format!("{p:.1}%"))
}

/// Memory a running VM uses on the node: its QEMU process's resident memory when libvirt
/// reports it, else the guest's current memory; `-` when it is not running.
fn mem_use_text(v: &Value) -> String {
    let s = &v["stats"];
    s["memory_rss_bytes"]
        .as_u64()
        .or_else(|| s["memory_bytes"].as_u64())
        .map_or_else(|| "-".into(), human)
}

/// Pool space of a VM's disk volumes, `-` when unknown.
fn allocated_text(v: &Value) -> String {
    v["disk_allocated_bytes"]
        .as_u64()
        .map_or_else(|| "-".into(), human)
}

/// One VM as a table line.
pub fn line(v: &Value) -> String {
    let disks = v["disks"].as_array().map_or(0, Vec::len);
    format!(
        "{:<24}  {:<13}  {:>5}  {:>9}  {:>6}  {:>10}  {:>5}  {:>10}  {}",
        v["name"].as_str().unwrap_or("?"),
        v["state"].as_str().unwrap_or("?"),
        v["vcpus"].as_u64().unwrap_or(0),
        format!("{} MiB", v["memory_mib"].as_u64().unwrap_or(0)),
        cpu_text(v),
        mem_use_text(v),
        disks,
        allocated_text(v),
        if v["autostart"] == true { "yes" } else { "no" }
    )
}

/// One VM for `vms show`: a summary of its live statistics, then the whole VM as JSON.
pub fn show_text(v: &Value) -> String {
    let s = &v["stats"];
    let live = if s.is_object() {
        let disks: Vec<String> = s["disks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                format!(
                    "disk {}: {} read, {} written",
                    d["index"].as_u64().unwrap_or(0),
                    human(d["read_bytes"].as_u64().unwrap_or(0)),
                    human(d["written_bytes"].as_u64().unwrap_or(0))
                )
            })
            .collect();
        format!(
            "live: CPU {} of {} vCPU(s), guest memory {}, QEMU resident {}{}{}\n",
            cpu_text(v),
            s["vcpus"].as_u64().unwrap_or(0),
            s["memory_bytes"].as_u64().map_or_else(|| "-".into(), human),
            s["memory_rss_bytes"]
                .as_u64()
                .map_or_else(|| "-".into(), human),
            if disks.is_empty() { "" } else { "; " },
            disks.join("; ")
        )
    } else {
        format!(
            "live: none ({})\n",
            v["state"].as_str().unwrap_or("not running")
        )
    };
    let replicated: String = v["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, d)| d["replication"].is_object())
        .map(|(i, d)| {
            let r = &d["replication"];
            format!(
                "disk{i}: replicated on {} ({}, {})\n",
                r["replica"].as_str().unwrap_or("?"),
                r["resource"].as_str().unwrap_or("?"),
                d["path"].as_str().unwrap_or("?")
            )
        })
        .collect();
    format!(
        "{live}pool space of its disks: {}\n{replicated}{}\n",
        allocated_text(v),
        serde_json::to_string_pretty(v).unwrap_or_default()
    )
}

/// The list as text: the VMs, then the node's resources.
pub fn list_text(v: &Value) -> String {
    let mut out = format!(
        "{:<24}  {:<13}  {:>5}  {:>9}  {:>6}  {:>10}  {:>5}  {:>10}  {}\n",
        "NAME", "STATE", "VCPUS", "MEMORY", "CPU", "MEM USE", "DISKS", "ALLOCATED", "AUTOSTART"
    );
    for vm in v["vms"].as_array().into_iter().flatten() {
        out.push_str(&line(vm));
        out.push('\n');
    }
    let r = &v["resources"];
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "node: {} ({}), vCPUs {} running / {} defined of {}, memory {} MiB running / {} MiB defined of {} MiB ({} MiB free)\n",
        r["accelerator"].as_str().unwrap_or("?"),
        if r["libvirt_connected"] == true { "libvirt up" } else { "libvirt not reachable" },
        n("vcpus_running"),
        n("vcpus_defined"),
        n("cpus"),
        n("memory_running_mib"),
        n("memory_defined_mib"),
        n("memory_mib"),
        n("memory_free_mib"),
    ));
    out
}

/// The body of `POST …/replication`: the replica node when one is named.
pub fn replicate_body(to: Option<&str>) -> Value {
    match to {
        Some(node) => json!({"replica": node}),
        None => json!({}),
    }
}

/// The body of `DELETE …/replication`: the node whose copy stays.
pub fn unreplicate_body(keep: &str) -> Value {
    json!({"keep": keep})
}

/// The body of `POST …/replication/move`: the node to hold the other copy.
pub fn move_replica_body(to: &str) -> Value {
    json!({"to": to})
}

/// DRBD connection states of a sync (or one about to start), in either direction.
fn syncing(connection: &str) -> bool {
    matches!(
        connection,
        "SyncSource"
            | "SyncTarget"
            | "PausedSyncS"
            | "PausedSyncT"
            | "StartingSyncS"
            | "StartingSyncT"
            | "WFBitMapS"
            | "WFBitMapT"
            | "WFSyncUUID"
    )
}

/// What a replicated disk's state means, in the web page's words: not up here, I/O frozen,
/// a sync running, both copies current, the other copy away (only this copy current, or not
/// even this one), or one copy behind.
pub fn replication_status(d: &Value) -> String {
    let text = |k: &str| d[k].as_str();
    if text("role").is_none() {
        return "not up on this node".into();
    }
    if d["io_frozen"] == true {
        return "I/O frozen: waiting for the cluster".into();
    }
    let connection = text("connection").unwrap_or("");
    if let Some(p) = d["sync_percent"].as_f64() {
        return format!("syncing {} %", p.floor());
    }
    if syncing(connection) {
        return "syncing".into();
    }
    if d["healthy"] == true {
        return "both copies up to date".into();
    }
    let here = text("disk_state").unwrap_or("unknown");
    if connection != "Connected" {
        return if here == "UpToDate" {
            "other copy not connected: only this copy is current".into()
        } else {
            "other copy not connected: this copy is not current either".into()
        };
    }
    match here {
        "Diskless" => "this copy has no disk".into(),
        "UpToDate" => format!(
            "the other copy is not up to date ({})",
            text("peer_disk_state").unwrap_or("unknown")
        ),
        other => format!("this copy is not up to date ({other})"),
    }
}

/// `vms replication NAME` as text: one line per replicated disk with its state on this node.
pub fn replication_text(v: &Value) -> String {
    let vm = v["vm"].as_str().unwrap_or("?");
    let disks = v["disks"].as_array().cloned().unwrap_or_default();
    if disks.is_empty() {
        return format!(
            "no disk of VM {vm} is replicated (turn replication on with: cairnctl vms replicate {vm})\n"
        );
    }
    let row = |c: [&str; 10]| {
        format!(
            "{:<6}  {:<9}  {:<12}  {:<9}  {:<12}  {:<12}  {:<12}  {:>6}  {:>11}  {}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
        )
    };
    let mut out = row([
        "DISK",
        "RESOURCE",
        "REPLICA",
        "ROLE",
        "CONNECTION",
        "THIS COPY",
        "OTHER COPY",
        "SYNC",
        "OUT OF SYNC",
        "STATUS",
    ]);
    for d in &disks {
        let s = |k: &str| d[k].as_str().unwrap_or("-");
        let sync = d["sync_percent"]
            .as_f64()
            .map_or_else(|| "-".into(), |p| format!("{p:.1}%"));
        let oos = human(d["out_of_sync_bytes"].as_u64().unwrap_or(0));
        out.push_str(&row([
            s("disk"),
            s("resource"),
            s("replica"),
            s("role"),
            s("connection"),
            s("disk_state"),
            s("peer_disk_state"),
            &sync,
            &oos,
            &replication_status(d),
        ]));
    }
    out
}

fn print(output: Output, v: &Value, text: impl FnOnce(&Value) -> String) {
    match output {
        Output::Json => println!("{v}"),
        Output::Text => print!("{}", text(v)),
    }
}

/// Run a `vms` command.
pub async fn run(s: &Session, cmd: VmCmd, output: Output) -> anyhow::Result<()> {
    let vm = |n: &str| format!("/api/v1/vms/{n}");
    match cmd {
        VmCmd::List => {
            let v = s.get_json("/api/v1/vms", "cannot list VMs").await?;
            print(output, &v, list_text);
        }
        VmCmd::Show(n) => {
            let v = s.get_json(&vm(&n), &format!("cannot get VM {n}")).await?;
            print(output, &v, show_text);
        }
        VmCmd::Create(spec) => {
            let n = spec["name"].as_str().unwrap_or_default().to_string();
            task(
                s,
                "/api/v1/vms",
                &spec,
                &format!("cannot create VM {n}"),
                output,
            )
            .await?;
        }
        VmCmd::Start(n) => {
            task(
                s,
                &format!("{}/start", vm(&n)),
                &json!({}),
                &format!("cannot start VM {n}"),
                output,
            )
            .await?;
        }
        VmCmd::Shutdown { name, timeout_s } => {
            let body = match timeout_s {
                Some(t) => json!({"timeout_s": t}),
                None => json!({}),
            };
            task(
                s,
                &format!("{}/shutdown", vm(&name)),
                &body,
                &format!("cannot shut down VM {name}"),
                output,
            )
            .await?;
        }
        VmCmd::Off(n) => {
            let v = call(
                s,
                Method::POST,
                &format!("{}/off", vm(&n)),
                Some(&json!({})),
                &format!("cannot power off VM {n}"),
            )
            .await?;
            print(output, &v, |v| format!("{}\n", line(v)));
        }
        VmCmd::Reboot { name, force } => {
            let v = call(
                s,
                Method::POST,
                &format!("{}/reboot", vm(&name)),
                Some(&json!({"force": force})),
                &format!("cannot reboot VM {name}"),
            )
            .await?;
            print(output, &v, |v| format!("{}\n", line(v)));
        }
        VmCmd::Clone {
            name,
            new,
            snapshot,
        } => {
            let mut body = match new.as_slice() {
                [one] => json!({"name": one}),
                many => {
                    json!({"clones": many.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()})
                }
            };
            if let Some(sn) = snapshot {
                body["snapshot"] = json!(sn);
            }
            task(
                s,
                &format!("{}/clone", vm(&name)),
                &body,
                &format!("cannot clone VM {name}"),
                output,
            )
            .await?;
        }
        VmCmd::Snapshot { name, snap } => {
            let v = call(
                s,
                Method::POST,
                &format!("{}/snapshots", vm(&name)),
                Some(&json!({"name": snap})),
                &format!("cannot snapshot VM {name}"),
            )
            .await?;
            print(output, &v, |_| {
                format!("snapshot {snap} of VM {name} taken\n")
            });
        }
        VmCmd::Restore { name, snap, new } => {
            task(
                s,
                &format!("{}/snapshots/{snap}/restore", vm(&name)),
                &json!({"name": new}),
                &format!("cannot restore snapshot {snap} of VM {name}"),
                output,
            )
            .await?;
        }
        VmCmd::Autostart { name, on } => {
            let v = call(
                s,
                Method::PUT,
                &format!("{}/autostart", vm(&name)),
                Some(&json!({"autostart": on})),
                &format!("cannot set autostart of VM {name}"),
            )
            .await?;
            print(output, &v, |v| format!("{}\n", line(v)));
        }
        VmCmd::Delete { name, delete_disks } => {
            call(
                s,
                Method::DELETE,
                &vm(&name),
                Some(&json!({"confirm_name": name, "delete_disks": delete_disks})),
                &format!("cannot delete VM {name}"),
            )
            .await?;
            if output == Output::Text {
                println!(
                    "VM {name} deleted{}",
                    if delete_disks {
                        " with its disks"
                    } else {
                        " (its disks are kept)"
                    }
                );
            }
        }
        VmCmd::Console(n) => console(s, &n, output).await?,
        VmCmd::Replicate { name, to } => {
            task(
                s,
                &format!("{}/replication", vm(&name)),
                &replicate_body(to.as_deref()),
                &format!("cannot turn replication on for VM {name}"),
                output,
            )
            .await?;
        }
        VmCmd::Replication(n) => {
            let v = s
                .get_json(
                    &format!("{}/replication", vm(&n)),
                    &format!("cannot get the replication of VM {n}"),
                )
                .await?;
            print(output, &v, replication_text);
        }
        VmCmd::Unreplicate { name, keep } => {
            task_by(
                s,
                Method::DELETE,
                &format!("{}/replication", vm(&name)),
                &unreplicate_body(&keep),
                &format!("cannot turn replication off for VM {name}"),
                output,
            )
            .await?;
        }
        VmCmd::MoveReplica { name, to } => {
            task(
                s,
                &format!("{}/replication/move", vm(&name)),
                &move_replica_body(&to),
                &format!("cannot move the replica of VM {name}"),
                output,
            )
            .await?;
        }
    }
    Ok(())
}

/// Follow a VM's console until the node ends the stream or the user interrupts.
async fn console(s: &Session, name: &str, output: Output) -> anyhow::Result<()> {
    let path = format!("/api/v1/vms/{name}/console/stream");
    let mut last = None;
    let mut stream = None;
    for addr in s.conn.target.resolve().await? {
        let req: ClientRequest = s.authed(Method::GET, &path)?;
        match client::stream(addr, req, s.conn.pin, TIMEOUT).await {
            Ok(st) if st.status == 200 => {
                stream = Some(st);
                break;
            }
            Ok(st) => bail!(
                "cannot follow the console of {name}: the node answered HTTP {}",
                st.status
            ),
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(st), _) => st,
        (None, Some(e)) => return Err(e.into()),
        (None, None) => bail!("no address for the node"),
    };
    let mut out = std::io::stdout();
    while let Some(ev) = stream.next().await? {
        if ev.event != "console" {
            continue;
        }
        match output {
            Output::Json => println!("{}", json!({"vm": name, "text": ev.data})),
            Output::Text => {
                let _ = out.write_all(ev.data.as_bytes());
                let _ = out.flush();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cli::{Cli, Command};

    /// `cairnctl vms WORDS…` through the command tree.
    fn p(s: &[&str]) -> anyhow::Result<VmCmd> {
        let argv = ["cairnctl", "vms"].into_iter().chain(s.iter().copied());
        match Cli::parse_from_args(argv)?.command {
            Command::Vms(a) => Ok(command(a)),
            other => anyhow::bail!("not a vms verb: {other:?}"),
        }
    }

    #[test]
    fn create_builds_the_spec() {
        let VmCmd::Create(spec) = p(&[
            "create",
            "web",
            "--vcpus",
            "2",
            "--memory=512",
            "--disk",
            "tank:10:ide",
            "--clone-disk",
            "base:0:s1",
            "--iso",
            "tank/isos/d.iso",
            "--nic",
            "br0",
            "--machine",
            "pc",
            "--autostart",
            "--boot",
            "cdrom,disk",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            spec,
            json!({"name": "web", "vcpus": 2, "memory_mib": 512, "autostart": true, "machine": "pc",
                "boot": ["cdrom", "disk"],
                "disks": [
                    {"source": "new", "pool": "tank", "size_bytes": 10737418240u64, "bus": "ide"},
                    {"source": "clone", "vm": "base", "disk": 0, "snapshot": "s1"},
                    {"source": "iso", "pool": "tank", "share": "isos", "file": "d.iso", "bus": "sata"}],
                "nics": [{"bridge": "br0"}]})
        );
    }

    #[test]
    fn verbs_and_their_errors() {
        assert_eq!(p(&[]).unwrap(), VmCmd::List);
        assert_eq!(
            p(&["shutdown", "a", "--timeout", "30"]).unwrap(),
            VmCmd::Shutdown {
                name: "a".into(),
                timeout_s: Some(30)
            }
        );
        assert_eq!(
            p(&["clone", "a", "b"]).unwrap(),
            VmCmd::Clone {
                name: "a".into(),
                new: vec!["b".into()],
                snapshot: None
            }
        );
        assert_eq!(
            p(&["clone", "a", "b", "c", "--snapshot", "s1"]).unwrap(),
            VmCmd::Clone {
                name: "a".into(),
                new: vec!["b".into(), "c".into()],
                snapshot: Some("s1".into())
            }
        );
        assert!(p(&["clone", "a"]).is_err());
        assert!(p(&["delete", "a"])
            .unwrap_err()
            .to_string()
            .contains("--yes"));
        assert_eq!(
            p(&["delete", "a", "--yes", "--delete-disks"]).unwrap(),
            VmCmd::Delete {
                name: "a".into(),
                delete_disks: true
            }
        );
        assert!(p(&["start"]).is_err());
        assert!(p(&["start", "a", "--force"])
            .unwrap_err()
            .to_string()
            .contains("--force"));
        assert!(p(&["create", "a", "--memory", "64"])
            .unwrap_err()
            .to_string()
            .contains("--vcpus"));
        assert!(p(&["explode", "a"]).is_err());
    }

    #[test]
    fn replicate_and_replication_verbs() {
        assert_eq!(
            p(&["replicate", "web"]).unwrap(),
            VmCmd::Replicate {
                name: "web".into(),
                to: None
            }
        );
        assert_eq!(
            p(&["replicate", "web", "--to", "node2"]).unwrap(),
            VmCmd::Replicate {
                name: "web".into(),
                to: Some("node2".into())
            }
        );
        assert_eq!(
            p(&["replication", "web"]).unwrap(),
            VmCmd::Replication("web".into())
        );
        let e = p(&["replicate", "web", "--to", ""])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--to"), "{e}");
        assert!(p(&["replicate"]).is_err());
        assert!(p(&["replication"]).is_err());
        assert!(p(&["replication", "web", "--to", "node2"]).is_err());
        // Automatic sends no replica.
        assert_eq!(replicate_body(None), json!({}));
        assert_eq!(replicate_body(Some("node2")), json!({"replica": "node2"}));
    }

    #[test]
    fn unreplicate_needs_the_node_to_keep() {
        assert_eq!(
            p(&["unreplicate", "web", "--keep", "node1"]).unwrap(),
            VmCmd::Unreplicate {
                name: "web".into(),
                keep: "node1".into()
            }
        );
        assert_eq!(
            p(&["unreplicate", "web", "--keep=node1"]).unwrap(),
            VmCmd::Unreplicate {
                name: "web".into(),
                keep: "node1".into()
            }
        );
        // --keep is required: clap names it.
        let e = p(&["unreplicate", "web"]).unwrap_err().to_string();
        assert!(e.contains("--keep <NODE>"), "{e}");
        let e = p(&["unreplicate", "web", "--keep"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--keep <NODE>"), "{e}");
        assert!(p(&["unreplicate", "--keep", "node1"]).is_err());
        assert!(p(&["unreplicate", "web", "--to", "node2"]).is_err());
        assert_eq!(unreplicate_body("node1"), json!({"keep": "node1"}));
    }

    #[test]
    fn unreplicate_refusals_name_keep() {
        // The node's 422 for another node's copy, as cairnctl prints it: the field first.
        let r = client::ClientResponse {
            status: hyper::StatusCode::UNPROCESSABLE_ENTITY,
            headers: hyper::HeaderMap::new(),
            body: json!({"code": "invalid", "field": "keep", "message":
                "keeping node2's copy means moving VM web to node2, which Cairn cannot do yet: keep this node's copy (node1)"})
                .to_string()
                .into(),
            peer: client::Fingerprint([0; 32]),
        };
        assert_eq!(
            api_error("cannot turn replication off for VM web", &r).to_string(),
            "cannot turn replication off for VM web: keep: keeping node2's copy means moving \
             VM web to node2, which Cairn cannot do yet: keep this node's copy (node1) (invalid)"
        );
    }

    #[test]
    fn move_replica_needs_the_new_node() {
        assert_eq!(
            p(&["move-replica", "web", "--to", "node3"]).unwrap(),
            VmCmd::MoveReplica {
                name: "web".into(),
                to: "node3".into()
            }
        );
        assert_eq!(
            p(&["move-replica", "web", "--to=node3"]).unwrap(),
            VmCmd::MoveReplica {
                name: "web".into(),
                to: "node3".into()
            }
        );
        // --to is required: clap names it.
        let e = p(&["move-replica", "web"]).unwrap_err().to_string();
        assert!(e.contains("--to <NODE>"), "{e}");
        let e = p(&["move-replica", "web", "--to"]).unwrap_err().to_string();
        assert!(e.contains("--to <NODE>"), "{e}");
        assert!(p(&["move-replica", "--to", "node3"]).is_err());
        assert!(p(&["move-replica", "web", "--keep", "node1"]).is_err());
        assert!(p(&["move-replica", "web", "node3"]).is_err());
        assert_eq!(move_replica_body("node3"), json!({"to": "node3"}));
    }

    #[test]
    fn move_replica_refusals_name_to() {
        // The node's 422 for a node holding a copy already, as cairnctl prints it: the field
        // first.
        let r = client::ClientResponse {
            status: hyper::StatusCode::UNPROCESSABLE_ENTITY,
            headers: hyper::HeaderMap::new(),
            body: json!({"code": "invalid", "field": "to", "message":
                "node2 holds a copy of disk0 already"})
            .to_string()
            .into(),
            peer: client::Fingerprint([0; 32]),
        };
        assert_eq!(
            api_error("cannot move the replica of VM web", &r).to_string(),
            "cannot move the replica of VM web: to: node2 holds a copy of disk0 already (invalid)"
        );
    }

    /// A replicated disk's state as the API gives it: healthy unless `extra` says.
    fn disk(name: &str, extra: Value) -> Value {
        let mut d = json!({"disk": name, "resource": "cairn0", "replica": "node2",
            "role": "Secondary", "peer_role": "Secondary", "connection": "Connected",
            "disk_state": "UpToDate", "peer_disk_state": "UpToDate", "sync_percent": null,
            "out_of_sync_bytes": 0, "io_frozen": false, "healthy": true});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    }

    #[test]
    fn replication_status_words() {
        let cases = [
            (json!({}), "both copies up to date"),
            (
                json!({"connection": "SyncSource", "peer_disk_state": "Inconsistent",
                    "sync_percent": 34.5, "healthy": false}),
                "syncing 34 %",
            ),
            (
                json!({"connection": "SyncTarget", "disk_state": "Inconsistent", "healthy": false}),
                "syncing",
            ),
            (
                json!({"connection": "WFConnection", "peer_disk_state": "DUnknown", "healthy": false}),
                "other copy not connected: only this copy is current",
            ),
            (
                json!({"connection": "StandAlone", "disk_state": "Outdated",
                    "peer_disk_state": "DUnknown", "healthy": false}),
                "other copy not connected: this copy is not current either",
            ),
            (
                json!({"role": "Primary", "connection": "WFConnection", "io_frozen": true,
                    "healthy": false}),
                "I/O frozen: waiting for the cluster",
            ),
            (
                json!({"role": null, "connection": null, "disk_state": null, "healthy": false}),
                "not up on this node",
            ),
            (
                json!({"peer_disk_state": "Outdated", "healthy": false}),
                "the other copy is not up to date (Outdated)",
            ),
            (
                json!({"disk_state": "Diskless", "healthy": false}),
                "this copy has no disk",
            ),
        ];
        for (extra, want) in cases {
            assert_eq!(
                replication_status(&disk("disk0", extra.clone())),
                want,
                "{extra}"
            );
        }
    }

    #[test]
    fn replication_text_is_a_table_or_says_none() {
        let t = replication_text(&json!({"vm": "web", "disks": []}));
        assert_eq!(
            t,
            "no disk of VM web is replicated (turn replication on with: cairnctl vms replicate web)\n"
        );
        let t = replication_text(&json!({"vm": "web", "disks": [
            disk("disk0", json!({})),
            disk("disk1", json!({"resource": "cairn1", "connection": "SyncSource",
                "peer_disk_state": "Inconsistent", "sync_percent": 34.5,
                "out_of_sync_bytes": 168u64 << 20, "healthy": false})),
            disk("disk2", json!({"resource": "cairn2", "role": null, "peer_role": null,
                "connection": null, "disk_state": null, "peer_disk_state": null, "healthy": false})),
        ]}));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[0].starts_with("DISK    RESOURCE   REPLICA") && lines[0].ends_with("STATUS"),
            "{t}"
        );
        let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cols(lines[1]),
            [
                "disk0",
                "cairn0",
                "node2",
                "Secondary",
                "Connected",
                "UpToDate",
                "UpToDate",
                "-",
                "0",
                "B",
                "both",
                "copies",
                "up",
                "to",
                "date"
            ],
            "{t}"
        );
        assert!(
            lines[2].contains("SyncSource")
                && lines[2].contains("34.5%")
                && lines[2].contains("168.0 MiB")
                && lines[2].ends_with("syncing 34 %"),
            "{t}"
        );
        assert_eq!(
            cols(lines[3])[..8],
            ["disk2", "cairn2", "node2", "-", "-", "-", "-", "-"],
            "{t}"
        );
        assert!(lines[3].ends_with("not up on this node"), "{t}");
    }

    #[test]
    fn show_names_the_replicated_disks() {
        let v = json!({"name": "web", "state": "shut_off", "stats": null, "disks": [
            {"kind": "disk", "path": "/dev/drbd3", "replication": {"resource": "cairn3", "replica": "node2"}},
            {"kind": "cdrom", "path": "/x.iso"}]});
        let s = show_text(&v);
        assert!(
            s.contains("\ndisk0: replicated on node2 (cairn3, /dev/drbd3)\n{"),
            "{s}"
        );
        assert!(!s.contains("disk1: replicated"), "{s}");
    }

    #[test]
    fn list_text_shows_vms_and_resources() {
        let t = list_text(&json!({
            "vms": [{"name": "web", "state": "running", "vcpus": 1, "memory_mib": 32, "disks": [{}], "autostart": true}],
            "resources": {"accelerator": "tcg", "libvirt_connected": true, "cpus": 2, "memory_mib": 2000,
                "vcpus_running": 1, "vcpus_defined": 1, "memory_running_mib": 32, "memory_defined_mib": 32, "memory_free_mib": 1712}
        }));
        assert!(
            t.contains("web") && t.contains("running") && t.contains("32 MiB"),
            "{t}"
        );
        assert!(
            t.contains("tcg (libvirt up)") && t.contains("1712 MiB free"),
            "{t}"
        );
    }

    #[test]
    fn list_and_show_give_the_live_stats() {
        let running = json!({"name": "web", "state": "running", "vcpus": 2, "memory_mib": 64,
            "disks": [{}], "autostart": false, "disk_allocated_bytes": 3u64 << 30,
            "stats": {"sampled_at_unix_ms": 1, "cpu_percent": 12.5, "vcpus": 2,
                "memory_bytes": 64u64 << 20, "memory_rss_bytes": 48u64 << 20,
                "disks": [{"index": 0, "read_bytes": 1u64 << 20, "written_bytes": 0}]}});
        let off = json!({"name": "db", "state": "shut_off", "vcpus": 1, "memory_mib": 32,
            "disks": [], "autostart": false, "disk_allocated_bytes": null, "stats": null});
        let t = list_text(&json!({"vms": [running, off], "resources": {}}));
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("CPU")
                && lines[0].contains("MEM USE")
                && lines[0].contains("ALLOCATED"),
            "{t}"
        );
        assert!(
            lines[1].contains("12.5%")
                && lines[1].contains("48.0 MiB")
                && lines[1].contains("3.0 GiB"),
            "{t}"
        );
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cols,
            ["db", "shut_off", "1", "32", "MiB", "-", "-", "0", "-", "no"],
            "{t}"
        );
        // The first sample has no CPU use yet; without RSS the guest's memory is shown.
        let mut first = running.clone();
        first["stats"]["cpu_percent"] = Value::Null;
        first["stats"]["memory_rss_bytes"] = Value::Null;
        let l = line(&first);
        assert!(l.contains(" - ") && l.contains("64.0 MiB"), "{l}");
        let s = show_text(&running);
        assert!(
            s.starts_with("live: CPU 12.5% of 2 vCPU(s), guest memory 64.0 MiB, QEMU resident 48.0 MiB; disk 0: 1.0 MiB read, 0 B written\npool space of its disks: 3.0 GiB\n{"),
            "{s}"
        );
        let s = show_text(&off);
        assert!(
            s.starts_with("live: none (shut_off)\npool space of its disks: -\n"),
            "{s}"
        );
    }
}
