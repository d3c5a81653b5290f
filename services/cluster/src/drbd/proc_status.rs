//! The parser for DRBD 8.4's `/proc/drbd`: per minor the role, connection and disk states,
//! whether I/O is frozen, the out-of-sync KiB and the resync progress.

/// What cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcError {
    #[error("not DRBD 8.4's /proc/drbd: the first line is {0:?}, not \"version: 8.4…\"")]
    Version(String),
    #[error("/proc/drbd line {line}: {reason}: {text:?}")]
    Line {
        line: usize,
        text: String,
        reason: &'static str,
    },
}

/// Resync progress (SyncSource / SyncTarget / verify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sync {
    /// Tenths of a percent done (345 = 34.5 %).
    pub permille: u32,
    /// KiB still to sync, of the resync's total.
    pub left_kib: u64,
    pub total_kib: u64,
}

/// One configured minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub minor: u32,
    /// `cs:` Connected, WFConnection, StandAlone, SyncSource, SyncTarget, …
    pub connection: String,
    /// `ro:` this node's and the peer's role: Primary, Secondary, Unknown.
    pub role: String,
    pub peer_role: String,
    /// `ds:` UpToDate, Inconsistent, Outdated, DUnknown, Diskless, …
    pub disk: String,
    pub peer_disk: String,
    /// The wire protocol (None while StandAlone).
    pub protocol: Option<char>,
    /// I/O suspended (frozen by fencing or by `suspend-io`).
    pub io_frozen: bool,
    /// `oos:` KiB known out of sync.
    pub out_of_sync_kib: u64,
    pub sync: Option<Sync>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcDrbd {
    /// e.g. `8.4.11`.
    pub version: String,
    /// Configured minors (Unconfigured ones are left out), in file order.
    pub devices: Vec<Device>,
}

impl ProcDrbd {
    pub fn device(&self, minor: u32) -> Option<&Device> {
        self.devices.iter().find(|d| d.minor == minor)
    }
}

fn pair<'a>(tokens: &[&'a str], key: &str) -> Option<(&'a str, &'a str)> {
    tokens
        .iter()
        .find_map(|t| t.strip_prefix(key))
        .and_then(|v| v.split_once('/'))
}

fn sync_line(s: &str) -> Option<Sync> {
    let rest = s.split_once("ed:")?.1.trim_start();
    let (pct, rest) = rest.split_once('%')?;
    let (whole, tenth) = pct.trim().split_once('.')?;
    let permille = whole.parse::<u32>().ok()? * 10 + tenth.parse::<u32>().ok()?;
    let inner = rest.split_once('(')?.1;
    let (nums, unit_rest) = inner.split_once(')')?;
    let (left, total) = nums.split_once('/')?;
    let scale = match unit_rest.chars().next()? {
        'K' => 1,
        'M' => 1024,
        _ => return None,
    };
    Some(Sync {
        permille,
        left_kib: left.parse::<u64>().ok()? * scale,
        total_kib: total.parse::<u64>().ok()? * scale,
    })
}

/// Parse the file's text.
pub fn parse(text: &str) -> Result<ProcDrbd, ProcError> {
    let mut lines = text.lines().enumerate();
    let first = lines.next().map(|(_, l)| l).unwrap_or("");
    let version = first
        .strip_prefix("version: ")
        .and_then(|v| v.split_whitespace().next())
        .filter(|v| v.starts_with("8.4."))
        .ok_or_else(|| ProcError::Version(first.to_string()))?
        .to_string();
    let mut devices: Vec<Device> = Vec::new();
    let mut current: Option<usize> = None;
    for (n, raw) in lines {
        let err = |reason| ProcError::Line {
            line: n + 1,
            text: raw.to_string(),
            reason,
        };
        let l = raw.trim();
        if l.is_empty() || l.starts_with("srcversion:") || l.starts_with("GIT-hash:") {
            continue;
        }
        if let Some((num, rest)) = l.split_once(": cs:") {
            if let Ok(minor) = num.trim().parse::<u32>() {
                if rest.starts_with("Unconfigured") {
                    current = None;
                    continue;
                }
                let tokens: Vec<&str> = l.split_whitespace().collect();
                let connection = rest
                    .split_whitespace()
                    .next()
                    .ok_or_else(|| err("no connection state"))?;
                let (role, peer_role) = pair(&tokens, "ro:").ok_or_else(|| err("no ro:"))?;
                let (disk, peer_disk) = pair(&tokens, "ds:").ok_or_else(|| err("no ds:"))?;
                let after_ds = tokens
                    .iter()
                    .position(|t| t.starts_with("ds:"))
                    .map(|p| &tokens[p + 1..])
                    .unwrap_or(&[]);
                let (protocol, flags) = match after_ds {
                    [p, f, ..] if p.len() == 1 => (p.chars().next(), *f),
                    [f, ..] => (None, *f),
                    [] => return Err(err("no state flags")),
                };
                if flags.len() != 6 {
                    return Err(err("state flags are not 6 characters"));
                }
                devices.push(Device {
                    minor,
                    connection: connection.to_string(),
                    role: role.to_string(),
                    peer_role: peer_role.to_string(),
                    disk: disk.to_string(),
                    peer_disk: peer_disk.to_string(),
                    protocol,
                    io_frozen: flags.starts_with('s'),
                    out_of_sync_kib: 0,
                    sync: None,
                });
                current = Some(devices.len() - 1);
                continue;
            }
        }
        if l.starts_with("ns:") {
            let i = current.ok_or_else(|| err("counters without a device line"))?;
            let oos = l
                .split_whitespace()
                .find_map(|t| t.strip_prefix("oos:"))
                .ok_or_else(|| err("no oos:"))?;
            devices[i].out_of_sync_kib = oos.parse().map_err(|_| err("oos: is not a number"))?;
            continue;
        }
        if l.contains("sync'ed:") || l.contains("verified:") {
            let i = current.ok_or_else(|| err("progress without a device line"))?;
            devices[i].sync = Some(sync_line(l).ok_or_else(|| err("unreadable progress"))?);
            continue;
        }
        // finish:/speed: lines, resync and act_log statistics (proc_details): not used.
    }
    Ok(ProcDrbd { version, devices })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/drbd")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn connected_up_to_date_on_both() {
        let p = parse(&fixture("proc-connected.txt")).unwrap();
        assert_eq!(p.version, "8.4.11");
        assert_eq!(
            p.devices,
            vec![Device {
                minor: 0,
                connection: "Connected".into(),
                role: "Primary".into(),
                peer_role: "Secondary".into(),
                disk: "UpToDate".into(),
                peer_disk: "UpToDate".into(),
                protocol: Some('C'),
                io_frozen: false,
                out_of_sync_kib: 0,
                sync: None,
            }]
        );
    }

    #[test]
    fn syncing_in_kib_and_in_mib() {
        let p = parse(&fixture("proc-syncing.txt")).unwrap();
        let src = p.device(0).unwrap();
        assert_eq!(src.connection, "SyncSource");
        assert_eq!(src.peer_disk, "Inconsistent");
        assert_eq!(src.out_of_sync_kib, 172032);
        assert_eq!(
            src.sync,
            Some(Sync {
                permille: 345,
                left_kib: 172032,
                total_kib: 262144
            })
        );
        let tgt = p.device(3).unwrap();
        assert_eq!(
            (tgt.role.as_str(), tgt.disk.as_str()),
            ("Secondary", "Inconsistent")
        );
        assert_eq!(
            tgt.sync,
            Some(Sync {
                permille: 200,
                left_kib: 8192 * 1024,
                total_kib: 10240 * 1024
            })
        );
    }

    #[test]
    fn cut_link_frozen_primary_outdated_replica_and_holes() {
        let p = parse(&fixture("proc-cut.txt")).unwrap();
        assert_eq!(p.devices.len(), 3, "Unconfigured minor 2 is left out");
        let frozen = p.device(0).unwrap();
        assert!(frozen.io_frozen);
        assert_eq!(
            (frozen.connection.as_str(), frozen.peer_disk.as_str()),
            ("WFConnection", "DUnknown")
        );
        assert_eq!(frozen.out_of_sync_kib, 1024);
        let alone = p.device(1).unwrap();
        assert_eq!(alone.protocol, None);
        assert_eq!(
            (alone.connection.as_str(), alone.disk.as_str()),
            ("StandAlone", "Outdated")
        );
        assert!(!alone.io_frozen);
        let writing = p.device(5).unwrap();
        assert_eq!(writing.peer_disk, "Outdated");
        assert_eq!(writing.out_of_sync_kib, 13312);
        assert!(!writing.io_frozen);
        assert_eq!(p.device(2), None);
    }

    #[test]
    fn bad_input_is_refused_naming_the_line() {
        assert_eq!(parse("hello\n"), Err(ProcError::Version("hello".into())));
        assert!(matches!(
            parse("version: 9.2.1 (api:2)\n"),
            Err(ProcError::Version(_))
        ));
        let no_ds = "version: 8.4.11 (api:1/proto:86-101)\n 0: cs:Connected ro:Primary/Secondary C r-----\n";
        match parse(no_ds) {
            Err(ProcError::Line {
                line: 2, reason, ..
            }) => assert_eq!(reason, "no ds:"),
            other => panic!("{other:?}"),
        }
        let orphan = "version: 8.4.11 (api:1/proto:86-101)\n    ns:0 nr:0 oos:0\n";
        assert!(matches!(
            parse(orphan),
            Err(ProcError::Line { line: 2, .. })
        ));
        let bad_oos = "version: 8.4.11 (api:1/proto:86-101)\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n    ns:0 oos:x\n";
        assert!(matches!(
            parse(bad_oos),
            Err(ProcError::Line {
                reason: "oos: is not a number",
                ..
            })
        ));
    }

    #[test]
    fn an_empty_module_has_no_devices() {
        let p = parse("version: 8.4.11 (api:1/proto:86-101)\nsrcversion: X \n").unwrap();
        assert!(p.devices.is_empty());
    }
}
