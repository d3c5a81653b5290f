//! Scenario shutdown: an ACPI power-down stops services in reverse dependency order, leaves STATE clean, and the node boots again.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use cairn_lab::{BootMode, Deadline, Lab, NodeConfig};
use regex::Regex;

/// `requires` of every service definition, from `### PATH` + file text blocks.
fn requires_by_service(defs: &str) -> Result<BTreeMap<String, Vec<String>>> {
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
        let reqs = v
            .get("requires")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(name, reqs);
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
    let requires = requires_by_service(&defs)?;

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
    let mut order: Vec<String> = Vec::new();
    for l in &lines {
        if let Some(c) = stopping.captures(l) {
            order.push(c[1].trim_end_matches(['.', ':', ',']).to_string());
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
        for dep in requires.get(name).into_iter().flatten() {
            if let (Some(a), Some(b)) = (pos(name), pos(dep)) {
                ensure!(
                    a < b,
                    "{name} requires {dep} but was stopped after it: {order:?}"
                );
            }
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
    node.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_requirements() {
        let defs = "### /etc/cairn/services/cairnd.toml\nexec = \"/usr/sbin/cairnd\"\nrequires = [\"journald\", \"udev-trigger\"]\n### /etc/cairn/services/journald.toml\nexec = \"/x\"\n";
        let r = requires_by_service(defs).unwrap();
        assert_eq!(r["cairnd"], vec!["journald", "udev-trigger"]);
        assert!(r["journald"].is_empty());
    }
}
