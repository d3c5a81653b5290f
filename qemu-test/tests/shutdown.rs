//! Scenario shutdown: an ACPI power-down stops services in reverse dependency order (and `stop_after` ones after those they name), leaves STATE clean, and the node boots again.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cairn_lab::{BootMode, Deadline, Lab, NodeConfig};
use regex::Regex;

/// `requires` and `stop_after` of every service definition, from `### PATH` + file text
/// blocks.
type Order = BTreeMap<String, (Vec<String>, Vec<String>)>;

fn order_by_service(defs: &str) -> Result<Order> {
    let mut out = BTreeMap::new();
    for block in defs.split("### ").filter(|b| !b.trim().is_empty()) {
        let (path, text) = block.split_once('\n').unwrap_or((block, ""));
        let name = path
            .trim()
            .rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".toml"))
            .with_context(|| format!("odd service file name {path:?}"))?
            .to_string();
        let v: toml::Value = toml::from_str(text).with_context(|| format!("parsing {path}"))?;
        let list = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(|r| r.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        out.insert(name, (list("requires"), list("stop_after")));
    }
    Ok(out)
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn shutdown() -> Result<()> {
    let Some(lab) = Lab::for_test("shutdown") else {
        return Ok(());
    };
    let mut node = lab.start(NodeConfig::new("node1", BootMode::DirectKernel))?;
    common::check_node_up(&mut node, Deadline::secs(300))?;
    let d = Deadline::secs(60);
    let running: Vec<String> = node
        .services(d)?
        .into_iter()
        .filter(|s| s.pid.is_some())
        .map(|s| s.name)
        .collect();
    let defs = node.shell_check(
        "for f in /etc/cairn/services/*.toml; do echo \"### $f\"; cat \"$f\"; done",
        d,
    )?;
    let order_defs = order_by_service(&defs)?;

    let mark = node.serial()?.mark();
    let asked = Instant::now();
    node.qmp()?.system_powerdown(d)?;
    node.wait_exit(Deadline::secs(30))
        .context("QEMU must exit within 30 s of the ACPI power-down")?;
    eprintln!("power-down took {:.1} s", asked.elapsed().as_secs_f64());

    let lines: Vec<String> = node.serial()?.lines()[mark..]
        .iter()
        .map(|l| l.text.clone())
        .collect();
    let stopping = Regex::new(r"cairn-init: stopping (\S+)")?;
    let stopped = Regex::new(r"cairn-init: stopped (\S+)")?;
    let mut order: Vec<String> = Vec::new();
    // Console line index of each service's "stopping" and "stopped".
    let mut stopping_at: BTreeMap<String, usize> = BTreeMap::new();
    let mut stopped_at: BTreeMap<String, usize> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(c) = stopping.captures(l) {
            let name = c[1].trim_end_matches(['.', ':', ',']).to_string();
            stopping_at.entry(name.clone()).or_insert(i);
            order.push(name);
        }
        if let Some(c) = stopped.captures(l) {
            let name = c[1].trim_end_matches(['.', ':', ',']).to_string();
            stopped_at.entry(name).or_insert(i);
        }
    }
    eprintln!("stop order: {order:?}");
    let pos = |name: &str| order.iter().position(|n| n == name);
    for name in &running {
        ensure!(
            pos(name).is_some(),
            "no `cairn-init: stopping {name}` line; stop order {order:?}"
        );
    }
    for name in &running {
        let (requires, stop_after) = order_defs.get(name).cloned().unwrap_or_default();
        for dep in &requires {
            if let (Some(a), Some(b)) = (pos(name), pos(dep)) {
                ensure!(
                    a < b,
                    "{name} requires {dep} but was stopped after it: {order:?}"
                );
            }
        }
        // stop_after: stopping begins only once the named service has stopped.
        for first in stop_after.iter().filter(|f| running.contains(f)) {
            let (Some(done), Some(begin)) = (stopped_at.get(first), stopping_at.get(name)) else {
                anyhow::bail!("no `stopped {first}` / `stopping {name}` lines: {lines:?}");
            };
            ensure!(
                done < begin,
                "{name} has stop_after {first} but began stopping before {first} had stopped: {order:?}"
            );
        }
    }
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("cairn-init: reached shutdown")),
        "no `cairn-init: reached shutdown` on the console"
    );
    let sb = node.state_superblock()?;
    ensure!(sb.is_clean(), "STATE was not unmounted cleanly: {sb:?}");

    // And it comes up again from the same disk, with the same certificate.
    node.launch()?;
    common::check_node_up(&mut node, Deadline::secs(300))?;
    let recovered = node
        .serial()?
        .lines()
        .iter()
        .any(|l| l.text.contains("EXT4-fs") && l.text.contains("recover"));
    ensure!(!recovered, "the second boot recovered STATE's journal");

    // The first boot's log survived on STATE, down to cairn-init stopping cairnd at the
    // power-down (journald stops last, after everything that requires it).
    let d = Deadline::secs(60);
    let boots = node.shell_check("journalctl --list-boots --no-pager", d)?;
    let boot_lines = boots
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("IDX"))
        .count();
    ensure!(
        boot_lines >= 2,
        "the journal on STATE holds {boot_lines} boot(s), want the previous one too: {boots}"
    );
    let previous = node.shell_check(
        "journalctl --no-pager -b -1 -o cat | grep -E 'cairn-init|stopping|stopped' | tail -n 40",
        d,
    )?;
    ensure!(
        previous.contains("stopping cairnd"),
        "the previous boot's journal lacks the power-down (`stopping cairnd`): {previous}"
    );
    let flushed = node.shell_check("ls /var/log/journal/*/system.journal", d)?;
    eprintln!(
        "journal: {boot_lines} boots on STATE ({}); previous boot ends with {:?}",
        flushed.trim(),
        previous.lines().last().unwrap_or_default()
    );
    node.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_requirements() {
        let defs = "### /etc/cairn/services/cairnd.toml\nexec = \"/usr/sbin/cairnd\"\nrequires = [\"journald\", \"udev-trigger\"]\n### /etc/cairn/services/journald.toml\nexec = \"/x\"\n### /etc/cairn/services/libvirtd.toml\nexec = \"/x\"\nstop_after = [\"cairnd\"]\n";
        let r = order_by_service(defs).unwrap();
        assert_eq!(r["cairnd"].0, vec!["journald", "udev-trigger"]);
        assert!(r["journald"].0.is_empty() && r["journald"].1.is_empty());
        assert_eq!(r["libvirtd"].1, vec!["cairnd"]);
    }
}
