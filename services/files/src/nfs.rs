//! NFS exports generated from our spec (NFSv4.2, v3 on request, clients as addresses or
//! CIDRs, read-only, root squash on by default), written to the exports file and applied
//! with `exportfs -r`; a file exportfs refuses is replaced by the previous one again.

use crate::error::FilesError;
use cairn_core::command::{CommandRunner, Invocation};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One share's NFS settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NfsExport {
    /// The Cairn share (for messages).
    pub name: String,
    /// Where the share is mounted on the node (the path clients mount).
    pub path: PathBuf,
    /// Exported at all.
    pub enabled: bool,
    /// Addresses (`192.0.2.7`) or networks (`192.0.2.0/24`, `2001:db8::/64`) allowed in.
    pub clients: Vec<String>,
    /// Clients may not write.
    pub read_only: bool,
    /// Root on a client acts as `nobody` (on unless turned off).
    pub root_squash: bool,
    /// Also serve NFSv3 (node-wide: the kernel turns versions on for all exports).
    pub v3: bool,
}

impl Default for NfsExport {
    fn default() -> NfsExport {
        NfsExport {
            name: String::new(),
            path: PathBuf::new(),
            enabled: false,
            clients: Vec::new(),
            read_only: false,
            root_squash: true,
            v3: false,
        }
    }
}

/// An address or network, as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parse `a.b.c.d`, `a.b.c.d/n` or IPv6 alike; host bits must be zero.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network (like 192.0.2.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("the prefix length of {s:?} must be 0–{max}"))?,
        };
        let cidr = Cidr { addr, prefix };
        let network = cidr.network();
        if network != addr {
            return Err(format!(
                "{s:?} has host bits set; the network is {network}/{prefix}"
            ));
        }
        Ok(cidr)
    }

    fn bits(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        let host = u32::from(width - self.prefix);
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all.checked_shl(host).map_or(0, |m| m & all)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        let n = Cidr::bits(self.addr) & self.mask();
        match self.addr {
            // The value fits: it is masked to 32 bits.
            IpAddr::V4(_) => IpAddr::V4(u32::try_from(n).unwrap_or(0).into()),
            IpAddr::V6(_) => IpAddr::V6(n.into()),
        }
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let wider = if self.prefix <= other.prefix {
            self
        } else {
            other
        };
        Cidr::bits(self.addr) & wider.mask() == Cidr::bits(other.addr) & wider.mask()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Check one export; errors name the field (`clients[1]`, `path`).
pub fn check_export(e: &NfsExport) -> Result<Vec<Cidr>, FilesError> {
    let path = e.path.to_str().unwrap_or("");
    if !e.path.is_absolute()
        || path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
    {
        return Err(FilesError::invalid(
            "path",
            "an absolute path without spaces or quotes",
        ));
    }
    if e.enabled && e.clients.is_empty() {
        return Err(FilesError::invalid(
            "clients",
            "name at least one address or network allowed to mount the share",
        ));
    }
    let mut parsed: Vec<Cidr> = Vec::new();
    for (i, c) in e.clients.iter().enumerate() {
        let field = format!("clients[{i}]");
        let cidr = Cidr::parse(c.trim()).map_err(|m| FilesError::invalid(&field, m))?;
        if let Some((j, other)) = parsed.iter().enumerate().find(|(_, o)| o.overlaps(&cidr)) {
            return Err(FilesError::invalid(
                field,
                format!("{cidr} overlaps clients[{j}] ({other}); give each client once"),
            ));
        }
        parsed.push(cidr);
    }
    Ok(parsed)
}

/// The exports file for `exports` (disabled ones left out), checked first.
pub fn generate(exports: &[NfsExport]) -> Result<String, FilesError> {
    let mut out = String::from(
        "# Generated by cairnd from the file-services settings; edits are overwritten.\n",
    );
    let mut paths = std::collections::BTreeSet::new();
    for (i, e) in exports.iter().enumerate() {
        let clients = check_export(e).map_err(|err| match err {
            FilesError::Invalid { field, message } => {
                FilesError::invalid(format!("exports[{i}].{field}"), message)
            }
            other => other,
        })?;
        if !e.enabled {
            continue;
        }
        if !paths.insert(e.path.clone()) {
            return Err(FilesError::invalid(
                format!("exports[{i}].path"),
                format!("{} is exported twice", e.path.display()),
            ));
        }
        let opts = format!(
            "{},sync,no_subtree_check,{},sec=sys",
            if e.read_only { "ro" } else { "rw" },
            if e.root_squash {
                "root_squash"
            } else {
                "no_root_squash"
            },
        );
        out.push_str(&e.path.display().to_string());
        for c in clients {
            out.push_str(&format!(" {c}({opts})"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// Whether any enabled export asks for NFSv3 (the kernel's versions are node-wide).
pub fn wants_v3(exports: &[NfsExport]) -> bool {
    exports.iter().any(|e| e.enabled && e.v3)
}

/// `rpc.nfsd`'s version switches: 4.1 and 4.2 always, 3 on request, 2 and 4.0 never.
pub fn nfsd_versions(v3: bool) -> Vec<&'static str> {
    let mut v = vec!["-N", "4.0", "-V", "4.1", "-V", "4.2"];
    v.extend(if v3 { ["-V", "3"] } else { ["-N", "3"] });
    v
}

/// Re-export everything in the exports file.
pub fn exportfs() -> Invocation {
    Invocation::new("exportfs", ["-r"])
}

/// Put `text` in place as `file` and run `exportfs -r`; if exportfs refuses it, the previous
/// file goes back (and is re-exported) and the refusal is returned.
pub fn apply(runner: &dyn CommandRunner, file: &Path, text: &str) -> Result<(), FilesError> {
    let write = |text: &[u8]| {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FilesError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        cairn_core::write_atomic(file, text, 0o644).map_err(|e| FilesError::Write {
            path: file.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    let previous = std::fs::read(file).ok();
    write(text.as_bytes())?;
    let out = runner
        .run(&exportfs())
        .map_err(|e| FilesError::command("apply the NFS exports", e))?;
    if out.success() {
        return Ok(());
    }
    match &previous {
        Some(p) => write(p)?,
        None => {
            let _ = std::fs::remove_file(file);
        }
    }
    let _ = runner.run(&exportfs());
    Err(FilesError::Refused {
        checker: "exportfs",
        message: out.stderr_text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::command::{CommandOutput, RecordingRunner};

    fn docs() -> NfsExport {
        NfsExport {
            name: "docs".into(),
            path: "/var/lib/cairn/shares/tank/docs".into(),
            enabled: true,
            clients: vec!["192.0.2.0/24".into(), "198.51.100.7".into()],
            ..NfsExport::default()
        }
    }

    fn golden(name: &str, text: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/nfs")
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
    fn exports_match_the_golden_file() {
        let text = generate(&[
            docs(),
            NfsExport {
                name: "media".into(),
                path: "/var/lib/cairn/shares/tank/media".into(),
                enabled: true,
                clients: vec!["2001:db8::/64".into(), "10.0.0.0/8".into()],
                read_only: true,
                root_squash: false,
                v3: true,
            },
            NfsExport {
                name: "off".into(),
                path: "/var/lib/cairn/shares/tank/off".into(),
                ..NfsExport::default()
            },
        ])
        .unwrap();
        golden("exports", &text);
    }

    #[test]
    fn root_squash_is_on_unless_turned_off() {
        assert!(NfsExport::default().root_squash);
        let e: NfsExport = serde_json::from_str(r#"{"clients":["192.0.2.1"]}"#).unwrap();
        assert!(e.root_squash && !e.v3 && !e.read_only);
    }

    #[test]
    fn cidrs_parse_and_overlap() {
        let c = |s| Cidr::parse(s).unwrap();
        assert_eq!(c("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(c("192.0.2.9").to_string(), "192.0.2.9");
        assert_eq!(c("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(c("2001:db8::/32").to_string(), "2001:db8::/32");
        assert!(c("192.0.2.0/24").overlaps(&c("192.0.2.128/25")));
        assert!(c("192.0.2.77").overlaps(&c("192.0.0.0/16")));
        assert!(c("0.0.0.0/0").overlaps(&c("10.1.2.3")));
        assert!(!c("192.0.2.0/25").overlaps(&c("192.0.2.128/25")));
        assert!(!c("0.0.0.0/0").overlaps(&c("::/0")));
        assert!(c("2001:db8::/32").overlaps(&c("2001:db8:1::5")));
        for bad in [
            "192.0.2.1/24",
            "192.0.2.0/33",
            "host.example",
            "",
            "::1/129",
            "1.2.3.4/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("192.0.2.1/24")
            .unwrap_err()
            .contains("192.0.2.0/24"));
    }

    #[test]
    fn bad_exports_name_their_field() {
        let cases: Vec<(NfsExport, &str, &str)> = vec![
            (
                NfsExport {
                    clients: vec!["192.0.2.0/24".into(), "192.0.2.64/26".into()],
                    ..docs()
                },
                "exports[0].clients[1]",
                "overlaps clients[0] (192.0.2.0/24)",
            ),
            (
                NfsExport {
                    clients: vec!["nas.example".into()],
                    ..docs()
                },
                "exports[0].clients[0]",
                "not an IP",
            ),
            (
                NfsExport {
                    clients: vec![],
                    ..docs()
                },
                "exports[0].clients",
                "at least one",
            ),
            (
                NfsExport {
                    path: "/a b".into(),
                    ..docs()
                },
                "exports[0].path",
                "absolute",
            ),
        ];
        for (e, field, words) in cases {
            let err = generate(&[e]).unwrap_err();
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
        let err = generate(&[docs(), docs()]).unwrap_err();
        assert_eq!(err.field(), Some("exports[1].path"));
    }

    #[test]
    fn nfs_versions_are_4_1_and_4_2_plus_3_on_request() {
        assert_eq!(nfsd_versions(false).join(" "), "-N 4.0 -V 4.1 -V 4.2 -N 3");
        assert_eq!(nfsd_versions(true).join(" "), "-N 4.0 -V 4.1 -V 4.2 -V 3");
        assert!(!wants_v3(&[docs()]));
        assert!(wants_v3(&[NfsExport { v3: true, ..docs() }]));
        assert!(!wants_v3(&[NfsExport {
            v3: true,
            enabled: false,
            ..docs()
        }]));
    }

    #[test]
    fn a_refused_exports_file_is_replaced_by_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("exports");
        std::fs::write(&file, "old\n").unwrap();
        let runner = RecordingRunner::new();
        runner.expect(
            "exportfs",
            &["-r"],
            CommandOutput::failed(1, "exportfs: bad option"),
        );
        let e = apply(&runner, &file, "new\n").unwrap_err();
        assert!(e.to_string().contains("exportfs refused"), "{e}");
        assert!(e.to_string().contains("bad option"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
        assert_eq!(runner.command_lines(), ["exportfs -r", "exportfs -r"]);
        let runner = RecordingRunner::new();
        apply(&runner, &file, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        assert_eq!(runner.command_lines(), ["exportfs -r"]);
    }
}
