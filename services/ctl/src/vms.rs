//! `cairnctl vms …`: list, create, start, shut down, power off, reboot, clone, snapshot,
//! delete VMs, and follow a VM's serial console.

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

/// Start a task-returning call and follow the task with a progress bar.
async fn task(
    s: &Session,
    path: &str,
    body: &Value,
    doing: &str,
    output: Output,
) -> anyhow::Result<()> {
    let t = call(s, Method::POST, path, Some(body), doing).await?;
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
    format!(
        "{live}pool space of its disks: {}\n{}\n",
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
