//! `cairnctl vms …`: list, create, start, shut down, power off, reboot, clone, snapshot,
//! delete VMs, and follow a VM's serial console.

use crate::args::Output;
use crate::conn::{api_error, TIMEOUT};
use crate::session::Session;
use crate::shares::human;
use anyhow::{bail, Context};
use cairn_client::{self as client, ClientRequest};
use hyper::Method;
use serde_json::{json, Value};
use std::io::Write;

/// Usage of the `vms` command.
pub const USAGE: &str = "\
cairnctl vms                              list VMs with state and the node's resources
cairnctl vms show NAME
cairnctl vms create NAME --vcpus N --memory MIB [--disk POOL:SIZE_GIB[:BUS]]…
         [--clone-disk VM:DISK[:SNAPSHOT]]… [--iso POOL/SHARE/FILE]… [--nic BRIDGE[=MAC]]…
         [--machine pc|q35] [--cpu MODEL] [--boot disk,cdrom,network] [--autostart]
cairnctl vms start|off NAME
cairnctl vms shutdown NAME [--timeout SECONDS]    ACPI, then power off after the timeout
cairnctl vms reboot NAME [--force]
cairnctl vms clone NAME NEW_NAME… [--snapshot SNAP]   several names: one batch, all or nothing
cairnctl vms snapshot NAME SNAP
cairnctl vms restore NAME SNAP NEW_NAME
cairnctl vms autostart NAME on|off
cairnctl vms delete NAME --yes [--delete-disks]
cairnctl vms console NAME                 follow the serial console (Ctrl-C ends)";

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

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {v:?} is not a number"))
}

/// Parse the words after `vms`.
pub fn parse(args: &[String]) -> anyhow::Result<VmCmd> {
    let mut pos: Vec<&str> = Vec::new();
    let mut flags: Vec<(&str, Option<&str>)> = Vec::new();
    let mut it = args.iter().map(String::as_str).peekable();
    const VALUED: &[&str] = &[
        "--vcpus",
        "--memory",
        "--disk",
        "--clone-disk",
        "--iso",
        "--nic",
        "--machine",
        "--cpu",
        "--boot",
        "--timeout",
        "--snapshot",
    ];
    while let Some(a) = it.next() {
        if let Some((f, v)) = a.split_once('=').filter(|(f, _)| f.starts_with("--")) {
            flags.push((f, Some(v)));
        } else if VALUED.contains(&a) {
            let v = it.next().with_context(|| format!("{a} needs a value"))?;
            flags.push((a, Some(v)));
        } else if a.starts_with("--") {
            flags.push((a, None));
        } else {
            pos.push(a);
        }
    }
    let flag = |name: &str| flags.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
    let has = |name: &str| flag(name).is_some();
    let all = |name: &str| -> Vec<&str> {
        flags
            .iter()
            .filter(|(f, _)| *f == name)
            .filter_map(|(_, v)| *v)
            .collect()
    };
    let known: &[&str] = match pos.first().copied() {
        Some("create") => &[
            "--vcpus",
            "--memory",
            "--disk",
            "--clone-disk",
            "--iso",
            "--nic",
            "--machine",
            "--cpu",
            "--boot",
            "--autostart",
        ],
        Some("shutdown") => &["--timeout"],
        Some("reboot") => &["--force"],
        Some("clone") => &["--snapshot"],
        Some("delete") => &["--yes", "--delete-disks"],
        _ => &[],
    };
    if let Some((f, _)) = flags.iter().find(|(f, _)| !known.contains(f)) {
        bail!("unknown flag {f} here\n{USAGE}");
    }
    let need = |i: usize, what: &str| -> anyhow::Result<String> {
        pos.get(i)
            .map(|s| s.to_string())
            .with_context(|| format!("missing {what}\n{USAGE}"))
    };
    let cmd = match pos.first().copied() {
        None => VmCmd::List,
        Some("show") => VmCmd::Show(need(1, "NAME")?),
        Some("start") => VmCmd::Start(need(1, "NAME")?),
        Some("off") => VmCmd::Off(need(1, "NAME")?),
        Some("console") => VmCmd::Console(need(1, "NAME")?),
        Some("shutdown") => VmCmd::Shutdown {
            name: need(1, "NAME")?,
            timeout_s: flag("--timeout")
                .flatten()
                .map(|v| num("--timeout", v))
                .transpose()?,
        },
        Some("reboot") => VmCmd::Reboot {
            name: need(1, "NAME")?,
            force: has("--force"),
        },
        Some("clone") => VmCmd::Clone {
            name: need(1, "NAME")?,
            new: {
                need(2, "NEW_NAME")?;
                pos[2..].iter().map(|s| s.to_string()).collect()
            },
            snapshot: flag("--snapshot").flatten().map(str::to_string),
        },
        Some("snapshot") => VmCmd::Snapshot {
            name: need(1, "NAME")?,
            snap: need(2, "SNAP")?,
        },
        Some("restore") => VmCmd::Restore {
            name: need(1, "NAME")?,
            snap: need(2, "SNAP")?,
            new: need(3, "NEW_NAME")?,
        },
        Some("autostart") => VmCmd::Autostart {
            name: need(1, "NAME")?,
            on: match need(2, "on|off")?.as_str() {
                "on" => true,
                "off" => false,
                o => bail!("autostart: {o:?} is not on or off"),
            },
        },
        Some("delete") => {
            if !has("--yes") {
                bail!("deleting a VM needs --yes (add --delete-disks to delete its disks too)");
            }
            VmCmd::Delete {
                name: need(1, "NAME")?,
                delete_disks: has("--delete-disks"),
            }
        }
        Some("create") => {
            let name = need(1, "NAME")?;
            let vcpus: u32 = num(
                "--vcpus",
                flag("--vcpus").flatten().context("--vcpus is required")?,
            )?;
            let memory: u64 = num(
                "--memory",
                flag("--memory").flatten().context("--memory is required")?,
            )?;
            let mut disks = Vec::new();
            for d in all("--disk") {
                let p: Vec<&str> = d.split(':').collect();
                let (pool, size) = match p.as_slice() {
                    [pool, size] | [pool, size, _] => (*pool, num::<f64>("--disk", size)?),
                    _ => bail!("--disk {d:?}: expected POOL:SIZE_GIB[:BUS]"),
                };
                let mut v = json!({"source": "new", "pool": pool,
                    "size_bytes": ((size * 1073741824.0) as u64) / 512 * 512});
                if let Some(bus) = p.get(2) {
                    v["bus"] = json!(bus);
                }
                disks.push(v);
            }
            for d in all("--clone-disk") {
                let p: Vec<&str> = d.split(':').collect();
                let mut v = match p.as_slice() {
                    [vm, disk] | [vm, disk, _] => {
                        json!({"source": "clone", "vm": vm, "disk": num::<usize>("--clone-disk", disk)?})
                    }
                    _ => bail!("--clone-disk {d:?}: expected VM:DISK[:SNAPSHOT]"),
                };
                if let Some(s) = p.get(2) {
                    v["snapshot"] = json!(s);
                }
                disks.push(v);
            }
            for i in all("--iso") {
                let p: Vec<&str> = i.splitn(3, '/').collect();
                let [pool, share, file] = p.as_slice() else {
                    bail!("--iso {i:?}: expected POOL/SHARE/FILE");
                };
                disks.push(json!({"source": "iso", "pool": pool, "share": share, "file": file, "bus": "sata"}));
            }
            let nics: Vec<Value> = all("--nic")
                .into_iter()
                .map(|n| match n.split_once('=') {
                    Some((b, m)) => json!({"bridge": b, "mac": m}),
                    None => json!({"bridge": n}),
                })
                .collect();
            let mut spec = json!({"name": name, "vcpus": vcpus, "memory_mib": memory,
                "disks": disks, "nics": nics, "autostart": has("--autostart")});
            if let Some(Some(m)) = flag("--machine") {
                spec["machine"] = json!(m);
            }
            if let Some(Some(c)) = flag("--cpu") {
                spec["cpu_model"] = json!(c);
            }
            if let Some(Some(b)) = flag("--boot") {
                spec["boot"] = json!(b.split(',').collect::<Vec<_>>());
            }
            VmCmd::Create(spec)
        }
        Some(other) => bail!("unknown vms command {other:?}\n{USAGE}"),
    };
    Ok(cmd)
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

    fn p(s: &[&str]) -> anyhow::Result<VmCmd> {
        parse(&s.iter().map(|a| a.to_string()).collect::<Vec<_>>())
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
