//! Build-time check of the shipped service definitions against the boot contract's schema and the staged root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

const TOP_KEYS: &[&str] = &[
    "description",
    "exec",
    "args",
    "env",
    "working_dir",
    "requires",
    "stop_after",
    "stop_timeout_s",
    "limit_nofile",
    "start_after",
    "stdio",
    "condition_kernel_cmdline",
    "condition_path_exists",
    "condition_path_absent",
    "readiness",
    "restart",
];
const READINESS_KEYS: &[&str] = &["kind", "path", "port", "timeout_s"];
const RESTART_KEYS: &[&str] = &[
    "policy",
    "backoff_initial_ms",
    "backoff_max_ms",
    "start_limit_burst",
    "start_limit_interval_s",
];

fn check_keys(file: &str, table: &toml::Table, section: &str, allowed: &[&str]) -> Result<()> {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            bail!("{file}: unknown key `{section}{key}`");
        }
    }
    Ok(())
}

/// The services that cannot be put in a stop order (in or behind a cycle), as cairn-init's
/// `config::stop_cycle` finds them at boot (where they would be marked failed).
fn stop_cycle(
    names: &BTreeSet<String>,
    before: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut left: BTreeSet<&String> = names.iter().collect();
    loop {
        let free: Vec<&String> = left
            .iter()
            .filter(|n| {
                before
                    .get(n.as_str())
                    .is_none_or(|b| b.iter().all(|x| !left.contains(x)))
            })
            .copied()
            .collect();
        if free.is_empty() {
            break;
        }
        for n in free {
            left.remove(n);
        }
    }
    left.into_iter().cloned().collect()
}

/// The string entries of the array `key` (absent: none).
fn names_in(file: &str, table: &toml::Table, key: &str) -> Result<Vec<String>> {
    let Some(value) = table.get(key) else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .with_context(|| format!("{file}: `{key}` must be an array of service names"))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .with_context(|| format!("{file}: `{key}` entries must be strings"))
        })
        .collect()
}

/// Checks every `*.toml` in `root`/etc/cairn/services: known keys, an absolute `exec` that
/// exists in `root`, `requires` and `stop_after` naming shipped services, and a stop order
/// without cycles (cairn-init's own check). Returns the service names.
pub fn check(root: &Path) -> Result<BTreeSet<String>> {
    let dir = root.join("etc/cairn/services");
    let mut parsed = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("service file name is not UTF-8")?
            .to_string();
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let file = format!("{name}.toml");
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{file}: not valid TOML"))?;
        check_keys(&file, &table, "", TOP_KEYS)?;
        for (section, keys) in [("readiness", READINESS_KEYS), ("restart", RESTART_KEYS)] {
            if let Some(value) = table.get(section) {
                let sub = value
                    .as_table()
                    .with_context(|| format!("{file}: `{section}` must be a table"))?;
                check_keys(&file, sub, &format!("{section}."), keys)?;
            }
        }
        let exec = table
            .get("exec")
            .and_then(|v| v.as_str())
            .with_context(|| format!("{file}: `exec` is required and must be a string"))?;
        if !exec.starts_with('/') {
            bail!("{file}: `exec` must be an absolute path, got `{exec}`");
        }
        if crate::fscopy::resolve_in_root(root, exec).is_err() {
            bail!("{file}: `exec` {exec} does not exist in the root");
        }
        parsed.push((file, name, table));
    }
    let names: BTreeSet<String> = parsed.iter().map(|(_, n, _)| n.clone()).collect();
    // before[x]: the services that stop before x (its dependents, its `stop_after`).
    let mut before: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, name, table) in &parsed {
        for key in ["requires", "stop_after"] {
            for n in names_in(file, table, key)? {
                if !names.contains(&n) {
                    bail!("{file}: `{key}` names `{n}`, which is not a shipped service");
                }
                let (first, then) = if key == "requires" {
                    (name.clone(), n)
                } else {
                    (n, name.clone())
                };
                before.entry(then).or_default().insert(first);
            }
        }
    }
    let cycle = stop_cycle(&names, &before);
    if !cycle.is_empty() {
        bail!(
            "services {} form a cycle in the stop order (`requires` and `stop_after`)",
            cycle.join(", ")
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("etc/cairn/services");
        fs::create_dir_all(&svc).unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        fs::write(dir.path().join("bin/sh"), b"").unwrap();
        for (name, text) in files {
            fs::write(svc.join(name), text).unwrap();
        }
        dir
    }

    /// The build's key check accepts every shipped definition (cairn-init's parser, below,
    /// is the other half: a key one knows and the other not fails the image build).
    #[test]
    fn shipped_definitions_pass_the_build_key_check() {
        let dir = crate::paths::Paths::from_manifest_dir()
            .overlay()
            .join("etc/cairn/services");
        let mut checked = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            let table: toml::Table = fs::read_to_string(&path).unwrap().parse().unwrap();
            check_keys(&file, &table, "", TOP_KEYS).unwrap();
            for (section, keys) in [("readiness", READINESS_KEYS), ("restart", RESTART_KEYS)] {
                if let Some(sub) = table.get(section).and_then(|v| v.as_table()) {
                    check_keys(&file, sub, &format!("{section}."), keys).unwrap();
                }
            }
            checked += 1;
        }
        assert!(
            checked >= 7,
            "only {checked} service files in {}",
            dir.display()
        );
    }

    #[test]
    fn shipped_definitions_parse_with_cairn_inits_parser() {
        let dir = crate::paths::Paths::from_manifest_dir()
            .overlay()
            .join("etc/cairn/services");
        let (services, errors) = cairn_init::config::load_dir(&dir);
        assert!(errors.is_empty(), "{errors:?}");
        let by_name = |n: &str| services.iter().find(|s| s.name == n).unwrap();
        let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
        // The boot spine must be there; domains add their own services beside it.
        for want in [
            "cairnd",
            "dhcpcd",
            "journal-flush",
            "journald",
            "lab-shell",
            "udev-trigger",
            "udev-trigger-net",
            "udevd",
        ] {
            assert!(names.contains(&want), "{want} is not shipped: {names:?}");
        }
        assert_eq!(by_name("cairnd").requires, ["journald"]);
        assert_eq!(by_name("udevd").requires, ["journald"]);
        // The NICs are replayed and named first (the management address sooner), then the rest.
        assert_eq!(by_name("udev-trigger-net").requires, ["udevd"]);
        assert_eq!(by_name("udev-trigger").requires, ["udev-trigger-net"]);
        // The journal moves to STATE once journald runs, so it survives a reboot.
        assert_eq!(by_name("journal-flush").requires, ["journald"]);
        assert_eq!(by_name("journal-flush").args, ["--flush"]);
        // cairnd shuts the VMs down through libvirtd when the node stops (decision 0012).
        assert_eq!(by_name("libvirtd").stop_after, ["cairnd"]);
        assert_eq!(by_name("virtlogd").stop_after, ["cairnd"]);
        assert!(
            by_name("cairnd").stop_timeout_s > 60,
            "room for the VMs' ACPI timeout"
        );
        assert!(cairn_init::config::stop_cycle(&services).is_empty());
        let lab = by_name("lab-shell");
        assert_eq!(lab.condition_kernel_cmdline.as_deref(), Some("cairn.lab=1"));
        assert!(lab.args.join(" ").contains("stty raw -echo"));
        assert!(!lab.condition_met("cairn.slot=a console=ttyS0"));
        assert!(lab.condition_met("cairn.slot=a cairn.lab=1"));
    }

    #[test]
    fn accepts_valid_definitions() {
        let root = root_with(&[
            (
                "a.toml",
                "exec = \"/bin/sh\"\n[readiness]\nkind = \"tcp\"\nport = 443\n",
            ),
            (
                "b.toml",
                "exec = \"/bin/sh\"\nrequires = [\"a\"]\n[restart]\npolicy = \"always\"\n",
            ),
            ("c.toml", "exec = \"/bin/sh\"\nstop_after = [\"b\"]\n"),
        ]);
        let names: Vec<_> = check(root.path()).unwrap().into_iter().collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn names_file_and_field_of_each_problem() {
        let cases = [
            (
                "exec = \"/bin/sh\"\nexce = 1\n",
                "a.toml: unknown key `exce`",
            ),
            (
                "exec = \"/bin/sh\"\n[readiness]\nknd = 1\n",
                "a.toml: unknown key `readiness.knd`",
            ),
            (
                "exec = \"bin/sh\"\n",
                "a.toml: `exec` must be an absolute path",
            ),
            (
                "exec = \"/bin/nope\"\n",
                "a.toml: `exec` /bin/nope does not exist",
            ),
            ("args = []\n", "a.toml: `exec` is required"),
            (
                "exec = \"/bin/sh\"\nrequires = [\"zz\"]\n",
                "a.toml: `requires` names `zz`",
            ),
            (
                "exec = \"/bin/sh\"\nstop_after = [\"zz\"]\n",
                "a.toml: `stop_after` names `zz`",
            ),
            (
                "exec = \"/bin/sh\"\nstop_after = \"zz\"\n",
                "a.toml: `stop_after` must be an array",
            ),
        ];
        for (text, want) in cases {
            let root = root_with(&[("a.toml", text)]);
            let err = format!("{:#}", check(root.path()).unwrap_err());
            assert!(err.starts_with(want), "{err} vs {want}");
        }
    }

    #[test]
    fn rejects_a_stop_order_cycle() {
        let root = root_with(&[
            // a before b (requires), b before c and c before a (stop_after).
            (
                "a.toml",
                "exec = \"/bin/sh\"\nrequires = [\"b\"]\nstop_after = [\"c\"]\n",
            ),
            ("b.toml", "exec = \"/bin/sh\"\n"),
            ("c.toml", "exec = \"/bin/sh\"\nstop_after = [\"b\"]\n"),
            ("d.toml", "exec = \"/bin/sh\"\n"),
        ]);
        let err = format!("{:#}", check(root.path()).unwrap_err());
        assert_eq!(
            err,
            "services a, b, c form a cycle in the stop order (`requires` and `stop_after`)"
        );
    }
}
