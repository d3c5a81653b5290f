//! Samba's `smb.conf` generated from our spec (SMB3 only, signing required, no guests unless
//! a share asks, Windows ACLs in xattrs, snapshots as Previous Versions, optional recycle bin
//! and Time Machine), checked with `testparm` before it replaces the old one and applied with
//! `smbcontrol smbd reload-config` (connected clients stay).

use crate::accounts::Accounts;
use crate::error::FilesError;
use crate::shadow::{GMT_FORMAT, SNAPDIR};
use cairn_core::command::{CommandRunner, Invocation};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The node-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SmbGlobal {
    /// The NetBIOS / server name clients see (the node name, at most 15 characters).
    pub server_name: String,
    /// The workgroup (`WORKGROUP` by default).
    pub workgroup: String,
    /// Announce the node on the LAN (WS-Discovery and mDNS).
    pub discovery: bool,
}

/// One share's SMB settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SmbShare {
    /// The name clients type (`\\node\name`): the Cairn share's name.
    pub name: String,
    /// Where the share is mounted on the node.
    pub path: PathBuf,
    /// Served over SMB at all.
    pub enabled: bool,
    /// Nobody may write.
    pub read_only: bool,
    /// Users (`alice`) and groups (`@team`) that may read.
    pub read: Vec<String>,
    /// Users and groups that may read and write.
    pub write: Vec<String>,
    /// Guests (no password) may read.
    pub guest: bool,
    /// Require SMB3 encryption for this share.
    pub encrypt: bool,
    /// Deleted files go to `.recycle/<user>/` instead of away.
    pub recycle: bool,
    /// Offer the share to macOS as a Time Machine target.
    pub time_machine: bool,
    /// Largest Time Machine backup, in bytes (None: the share's size).
    pub time_machine_max_bytes: Option<u64>,
}

/// Check the node-wide settings; errors name the field.
pub fn check_global(g: &SmbGlobal) -> Result<(), FilesError> {
    if g.server_name.is_empty() || g.server_name.len() > 15 {
        return Err(FilesError::invalid(
            "server_name",
            "1 to 15 characters (the NetBIOS name limit)",
        ));
    }
    if !g
        .server_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(FilesError::invalid(
            "server_name",
            "letters, digits and - only",
        ));
    }
    if g.workgroup.is_empty()
        || g.workgroup.len() > 15
        || !g
            .workgroup
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(FilesError::invalid(
            "workgroup",
            "1 to 15 letters, digits, - or _",
        ));
    }
    Ok(())
}

/// Check one share's settings against the users and groups; errors name the field.
pub fn check_share(s: &SmbShare, accounts: &Accounts) -> Result<(), FilesError> {
    if s.name.is_empty()
        || !s
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(FilesError::invalid("name", "a share name of a-z 0-9 - _"));
    }
    let path = s.path.to_str().unwrap_or("");
    if !s.path.is_absolute() || path.contains(['\n', '"', '%']) {
        return Err(FilesError::invalid(
            "path",
            "an absolute path without newlines, quotes or %",
        ));
    }
    for (field, list) in [("read", &s.read), ("write", &s.write)] {
        for (i, p) in list.iter().enumerate() {
            let field = format!("{field}[{i}]");
            match p.strip_prefix('@') {
                Some(g) if !accounts.groups.contains_key(g) => {
                    return Err(FilesError::invalid(
                        field,
                        format!("there is no group named {g:?}"),
                    ))
                }
                None if !accounts.users.contains_key(p) => {
                    return Err(FilesError::invalid(
                        field,
                        format!("there is no user named {p:?} (a group is written @name)"),
                    ))
                }
                _ => {}
            }
        }
    }
    if s.read_only && !s.write.is_empty() {
        return Err(FilesError::invalid(
            "write",
            "the share is read-only: nobody can be given write access",
        ));
    }
    if s.enabled && s.read.is_empty() && s.write.is_empty() && !s.guest {
        return Err(FilesError::invalid(
            "read",
            "name at least one user or group who may use the share, or allow guests",
        ));
    }
    if s.time_machine_max_bytes.is_some() && !s.time_machine {
        return Err(FilesError::invalid(
            "time_machine_max_bytes",
            "only for a Time Machine share",
        ));
    }
    Ok(())
}

/// The whole `smb.conf` for `shares` (disabled ones left out), checked first.
pub fn generate(
    g: &SmbGlobal,
    shares: &[SmbShare],
    accounts: &Accounts,
) -> Result<String, FilesError> {
    check_global(g)?;
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in shares.iter().enumerate() {
        check_share(s, accounts).map_err(|e| prefix(&format!("shares[{i}]."), e))?;
        if s.enabled && !names.insert(s.name.to_ascii_lowercase()) {
            return Err(FilesError::invalid(
                format!("shares[{i}].name"),
                format!(
                    "another share is already served as {} (SMB names ignore case)",
                    s.name
                ),
            ));
        }
    }
    let enabled: Vec<&SmbShare> = shares.iter().filter(|s| s.enabled).collect();
    let guests = enabled.iter().any(|s| s.guest);
    let mac = enabled.iter().any(|s| s.time_machine);
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "   {k} = {v}");
    };
    out.push_str("# Generated by cairnd from the file-services settings; edits are overwritten.\n");
    out.push_str("[global]\n");
    line(
        &mut out,
        "netbios name",
        &g.server_name.to_ascii_uppercase(),
    );
    line(&mut out, "workgroup", &g.workgroup.to_ascii_uppercase());
    line(&mut out, "server string", "Cairn %h");
    line(&mut out, "server role", "standalone server");
    line(&mut out, "passdb backend", "tdbsam");
    line(&mut out, "server min protocol", "SMB3");
    line(&mut out, "server signing", "mandatory");
    line(&mut out, "disable netbios", "yes");
    line(&mut out, "smb ports", "445");
    line(
        &mut out,
        "map to guest",
        if guests { "Bad User" } else { "Never" },
    );
    line(
        &mut out,
        "restrict anonymous",
        if guests { "0" } else { "2" },
    );
    line(&mut out, "load printers", "no");
    line(&mut out, "printcap name", "/dev/null");
    line(&mut out, "disable spoolss", "yes");
    line(&mut out, "multicast dns register", "no");
    line(&mut out, "map acl inherit", "yes");
    line(&mut out, "store dos attributes", "yes");
    if mac {
        // vfs_fruit must be on every share macOS opens, or the first one without it turns
        // the Apple extensions off for the whole connection.
        line(&mut out, "fruit:metadata", "stream");
        line(&mut out, "fruit:model", "MacSamba");
    }
    for s in enabled {
        let _ = writeln!(out, "\n[{}]", s.name);
        line(&mut out, "path", &s.path.display().to_string());
        // Read-only for everyone it admits (guests included); the write list alone may
        // write. Safer than `read only = no`, which lets every admitted user write.
        line(&mut out, "read only", "yes");
        line(&mut out, "browseable", "yes");
        if s.guest {
            line(&mut out, "guest ok", "yes");
        } else {
            let mut valid: Vec<&str> = s.read.iter().chain(&s.write).map(String::as_str).collect();
            valid.sort_unstable();
            valid.dedup();
            line(&mut out, "valid users", &valid.join(" "));
        }
        if !s.read_only && !s.write.is_empty() {
            line(&mut out, "write list", &s.write.join(" "));
        }
        let mut vfs = vec!["acl_xattr", "shadow_copy2"];
        if s.recycle {
            vfs.push("recycle");
        }
        if mac {
            vfs.extend(["fruit", "streams_xattr"]);
        }
        line(&mut out, "vfs objects", &vfs.join(" "));
        // The share is its filesystem's root; said outright, so `.snapshots` is found
        // there whatever Samba's mount-point guess would be.
        line(&mut out, "shadow:mountpoint", &s.path.display().to_string());
        line(&mut out, "shadow:snapdir", SNAPDIR);
        line(&mut out, "shadow:format", GMT_FORMAT);
        line(&mut out, "shadow:localtime", "no");
        line(&mut out, "shadow:sort", "desc");
        if s.recycle {
            line(&mut out, "recycle:repository", ".recycle/%U");
            line(&mut out, "recycle:keeptree", "yes");
            line(&mut out, "recycle:versions", "yes");
            line(&mut out, "recycle:touch", "yes");
        }
        if s.encrypt {
            line(&mut out, "server smb encrypt", "required");
        }
        if s.time_machine {
            line(&mut out, "fruit:time machine", "yes");
            if let Some(max) = s.time_machine_max_bytes {
                line(
                    &mut out,
                    "fruit:time machine max size",
                    &format!("{}M", max / (1024 * 1024)),
                );
            }
        }
    }
    Ok(out)
}

fn prefix(p: &str, e: FilesError) -> FilesError {
    match e {
        FilesError::Invalid { field, message } => FilesError::Invalid {
            field: format!("{p}{field}"),
            message,
        },
        other => other,
    }
}

/// `testparm` on a candidate file.
pub fn testparm(path: &Path) -> Invocation {
    Invocation::new(
        "testparm",
        ["-s", "--suppress-prompt", &path.display().to_string()],
    )
}

/// Ask the running smbd to reread its configuration (clients stay connected).
pub fn reload() -> Invocation {
    Invocation::new("smbcontrol", ["smbd", "reload-config"])
}

/// Write `text` as the new `conf` only if `testparm` accepts it (a refused one is left as
/// `<conf>.refused` for a look), then ask smbd to reload it when `smbd_running`.
pub fn apply(
    runner: &dyn CommandRunner,
    conf: &Path,
    text: &str,
    smbd_running: bool,
) -> Result<(), FilesError> {
    let candidate = conf.with_extension("conf.new");
    let write = |path: &Path, text: &str| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FilesError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        cairn_core::write_atomic(path, text.as_bytes(), 0o644).map_err(|e| FilesError::Write {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    write(&candidate, text)?;
    let out = runner
        .run(&testparm(&candidate))
        .map_err(|e| FilesError::command("check the new smb.conf", e))?;
    let stderr = out.stderr_text();
    let complaint = stderr.lines().find(|l| {
        l.contains("Unknown parameter")
            || l.contains("Error")
            || l.contains("ERROR")
            || l.contains("not boolean")
    });
    if !out.success() || complaint.is_some() {
        let _ = std::fs::rename(&candidate, conf.with_extension("conf.refused"));
        return Err(FilesError::Refused {
            checker: "testparm",
            message: complaint.unwrap_or(stderr.as_str()).to_string(),
        });
    }
    std::fs::rename(&candidate, conf).map_err(|source| FilesError::Write {
        path: conf.display().to_string(),
        source,
    })?;
    if smbd_running {
        cairn_core::command::run_ok(runner, &reload())
            .map_err(|e| FilesError::command("reload smbd's configuration", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::NewUser;
    use cairn_core::command::{CommandOutput, RecordingRunner, SystemRunner};

    fn accounts() -> Accounts {
        let mut a = Accounts::default();
        a.create_group("team", &[]).unwrap();
        for n in ["alice", "bob", "carol"] {
            a.create_user(&NewUser {
                name: n.into(),
                password: "correct horse battery".into(),
                ..NewUser::default()
            })
            .unwrap();
        }
        a
    }

    fn global() -> SmbGlobal {
        SmbGlobal {
            server_name: "node1".into(),
            workgroup: "WORKGROUP".into(),
            discovery: true,
        }
    }

    fn docs() -> SmbShare {
        SmbShare {
            name: "docs".into(),
            path: "/var/lib/cairn/shares/tank/docs".into(),
            enabled: true,
            read: vec!["carol".into()],
            write: vec!["alice".into(), "@team".into()],
            ..SmbShare::default()
        }
    }

    fn all_options() -> Vec<SmbShare> {
        vec![
            docs(),
            SmbShare {
                name: "archive".into(),
                path: "/var/lib/cairn/shares/tank/archive".into(),
                enabled: true,
                read_only: true,
                read: vec!["alice".into(), "bob".into()],
                encrypt: true,
                recycle: true,
                ..SmbShare::default()
            },
            SmbShare {
                name: "public".into(),
                path: "/var/lib/cairn/shares/tank/public".into(),
                enabled: true,
                guest: true,
                write: vec!["alice".into()],
                ..SmbShare::default()
            },
            SmbShare {
                name: "tm".into(),
                path: "/var/lib/cairn/shares/tank/tm".into(),
                enabled: true,
                write: vec!["alice".into()],
                time_machine: true,
                time_machine_max_bytes: Some(500 << 30),
                ..SmbShare::default()
            },
            SmbShare {
                name: "off".into(),
                path: "/var/lib/cairn/shares/tank/off".into(),
                ..SmbShare::default()
            },
        ]
    }

    fn golden(name: &str, text: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/smb")
            .join(name);
        if std::env::var_os("CAIRN_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} ({e}); CAIRN_BLESS=1 writes it", path.display()));
        assert_eq!(
            text,
            want,
            "{} differs; CAIRN_BLESS=1 rewrites it",
            path.display()
        );
    }

    #[test]
    fn one_share_matches_the_golden_file() {
        golden(
            "basic.conf",
            &generate(&global(), &[docs()], &accounts()).unwrap(),
        );
    }

    #[test]
    fn every_option_matches_the_golden_file() {
        golden(
            "all-options.conf",
            &generate(&global(), &all_options(), &accounts()).unwrap(),
        );
    }

    /// The golden files pass Samba's own checker when it is installed (Debian's
    /// samba-common-bin; `./dev` installs it).
    #[test]
    fn testparm_accepts_the_golden_files_when_installed() {
        if SystemRunner
            .run(&Invocation::new("testparm", ["-V"]))
            .is_err()
        {
            eprintln!("testparm is not installed: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for text in [
            generate(&global(), &[docs()], &accounts()).unwrap(),
            generate(&global(), &all_options(), &accounts()).unwrap(),
        ] {
            let conf = dir.path().join("smb.conf");
            apply(&SystemRunner, &conf, &text, false).unwrap();
            assert_eq!(std::fs::read_to_string(&conf).unwrap(), text);
        }
        let conf = dir.path().join("smb.conf");
        let e = apply(
            &SystemRunner,
            &conf,
            "[global]\n   bogus parameter = 1\n",
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus parameter"), "{e}");
        let e = apply(
            &SystemRunner,
            &conf,
            "[x]\n   path = /tmp\n   read only = maybe\n",
            false,
        )
        .unwrap_err();
        assert!(matches!(e, FilesError::Refused { .. }), "{e}");
        // The accepted file is still in place.
        assert!(std::fs::read_to_string(&conf)
            .unwrap()
            .contains("time machine"));
    }

    #[test]
    fn a_refused_config_is_never_applied_nor_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("smb.conf");
        std::fs::write(&conf, "old").unwrap();
        let runner = RecordingRunner::new();
        runner.expect(
            "testparm",
            &[],
            CommandOutput::failed(1, "Error loading services."),
        );
        let e = apply(&runner, &conf, "new", true).unwrap_err();
        assert!(e.to_string().contains("testparm refused"), "{e}");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "old");
        assert_eq!(runner.command_lines().len(), 1);
        // Accepted: replaced, then reloaded.
        let runner = RecordingRunner::new();
        apply(&runner, &conf, "new", true).unwrap();
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "new");
        assert_eq!(runner.command_lines()[1], "smbcontrol smbd reload-config");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let a = accounts();
        let cases: Vec<(SmbShare, &str)> = vec![
            (
                SmbShare {
                    write: vec!["@nosuch".into()],
                    ..docs()
                },
                "shares[0].write[0]",
            ),
            (
                SmbShare {
                    read: vec!["carol".into(), "zed".into()],
                    ..docs()
                },
                "shares[0].read[1]",
            ),
            (
                SmbShare {
                    read_only: true,
                    ..docs()
                },
                "shares[0].write",
            ),
            (
                SmbShare {
                    read: vec![],
                    write: vec![],
                    ..docs()
                },
                "shares[0].read",
            ),
            (
                SmbShare {
                    path: "relative".into(),
                    ..docs()
                },
                "shares[0].path",
            ),
            (
                SmbShare {
                    time_machine_max_bytes: Some(1),
                    ..docs()
                },
                "shares[0].time_machine_max_bytes",
            ),
        ];
        for (s, field) in cases {
            let e = generate(&global(), &[s], &a).unwrap_err();
            assert_eq!(e.field(), Some(field), "{e}");
        }
        let e = generate(
            &global(),
            &[
                docs(),
                SmbShare {
                    name: "DOCS".into(),
                    ..docs()
                },
            ],
            &a,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("shares[1].name"));
        let e = generate(
            &SmbGlobal {
                server_name: "a-very-long-node-name".into(),
                ..global()
            },
            &[],
            &a,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("server_name"));
        // A share nobody may use is fine while it is off.
        generate(
            &global(),
            &[SmbShare {
                enabled: false,
                read: vec![],
                write: vec![],
                ..docs()
            }],
            &a,
        )
        .unwrap();
    }

    #[test]
    fn no_guests_unless_a_share_asks() {
        let a = accounts();
        let text = generate(&global(), &[docs()], &a).unwrap();
        assert!(text.contains("map to guest = Never") && text.contains("restrict anonymous = 2"));
        assert!(!text.contains("guest ok"));
        let text = generate(&global(), &all_options(), &a).unwrap();
        assert!(text.contains("map to guest = Bad User"));
    }
}
