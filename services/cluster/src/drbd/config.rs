//! The `<name>.res` file (in /var/lib/cairn/drbd, included by /etc/drbd.conf) for a resource record (DRBD 8.4 syntax, decision 0027).

use super::names::Index;
use super::record::{ResourceRecord, Side};
use crate::error::ClusterError;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The fence-peer handler drbdadm runs (cairnd's subcommand).
pub const FENCE_PEER_HANDLER: &str = "/usr/sbin/cairnd drbd-fence-peer";
/// Where the resource files go (on STATE: the root is read-only; /etc/drbd.conf includes them).
pub const DRBD_D: &str = "/var/lib/cairn/drbd";

/// Network timing, in DRBD's units (tenths of seconds for `timeout` and `ping-timeout`,
/// seconds for `ping-int` and `connect-int`). Provisional until measured (decision 0027).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetTiming {
    pub timeout_ds: u32,
    pub ping_int_s: u32,
    pub ping_timeout_ds: u32,
    pub connect_int_s: u32,
    pub ko_count: u32,
}

/// The resync controller (8.4's dynamic one), rates in KiB/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncRate {
    pub plan_ahead_ds: u32,
    pub fill_target_kib: u32,
    pub min_kib_s: u32,
    pub max_kib_s: u32,
    pub initial_kib_s: u32,
}

/// Everything of the file that is not in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub net: NetTiming,
    pub resync: ResyncRate,
}

/// Decision 0027's provisional values.
pub const SETTINGS: Settings = Settings {
    net: NetTiming {
        timeout_ds: 60,
        ping_int_s: 10,
        ping_timeout_ds: 20,
        connect_int_s: 10,
        ko_count: 6,
    },
    resync: ResyncRate {
        plan_ahead_ds: 20,
        fill_target_kib: 1024,
        min_kib_s: 4 * 1024,
        max_kib_s: 60 * 1024,
        initial_kib_s: 30 * 1024,
    },
};

/// The file's path for resource `name`.
pub fn res_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(DRBD_D).join(format!("{name}.res"))
}

fn invalid(field: &'static str, reason: String) -> ClusterError {
    ClusterError::Invalid { field, reason }
}

/// A word drbdadm reads as one token: no whitespace, quotes, braces, semicolons or `#`.
fn check_word(field: &'static str, v: &str) -> Result<(), ClusterError> {
    if v.is_empty() {
        return Err(invalid(field, "is empty".into()));
    }
    if let Some(c) = v
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "\"'{};#\\".contains(*c))
    {
        return Err(invalid(field, format!("{v:?} contains {c:?}")));
    }
    Ok(())
}

fn check_device(field: &'static str, v: &str) -> Result<(), ClusterError> {
    check_word(field, v)?;
    if !v.starts_with("/dev/") || v.contains("/../") || v.ends_with('/') {
        return Err(invalid(
            field,
            format!("{v:?} is not a device path under /dev/"),
        ));
    }
    Ok(())
}

fn check(rec: &ResourceRecord) -> Result<Index, ClusterError> {
    let i = rec.index().ok_or_else(|| {
        invalid(
            "index",
            format!(
                "{} is outside 0..{}",
                rec.index,
                super::names::MAX_RESOURCES
            ),
        )
    })?;
    if rec.name != i.name() {
        return Err(invalid(
            "name",
            format!(
                "{:?} does not match index {} ({})",
                rec.name,
                rec.index,
                i.name()
            ),
        ));
    }
    if rec.secret.len() < 16
        || !rec
            .secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
    {
        return Err(invalid(
            "secret",
            "must be base64 of at least 12 bytes".into(),
        ));
    }
    let [a, b] = &rec.sides;
    if a.node == b.node {
        return Err(invalid(
            "sides",
            format!("both sides are on node {:?}", a.node),
        ));
    }
    if a.address == b.address {
        return Err(invalid(
            "sides",
            format!("both sides have the address {}", a.address),
        ));
    }
    if a.address.is_ipv4() != b.address.is_ipv4() {
        return Err(invalid(
            "sides",
            "one side's replication address is IPv4, the other's IPv6".into(),
        ));
    }
    for s in &rec.sides {
        check_word("sides.node", &s.node)?;
        check_device("sides.disk", &s.disk)?;
        check_device("sides.meta_disk", &s.meta_disk)?;
        if s.disk == s.meta_disk {
            return Err(invalid(
                "sides.meta_disk",
                format!("{:?} is the data disk itself", s.meta_disk),
            ));
        }
        if s.address.is_unspecified() || s.address.is_multicast() {
            return Err(invalid(
                "sides.address",
                format!("{} cannot be a replication address", s.address),
            ));
        }
    }
    check_word("vm", &rec.vm)?;
    check_word("vm_disk", &rec.vm_disk)?;
    Ok(i)
}

fn address(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ipv4 {v4}:{port}"),
        IpAddr::V6(v6) => format!("ipv6 [{v6}]:{port}"),
    }
}

fn on_section(out: &mut String, i: Index, s: &Side) {
    let _ = writeln!(out, "  on {} {{", s.node);
    let _ = writeln!(out, "    device {} minor {};", i.device(), i.minor());
    let _ = writeln!(out, "    disk {};", s.disk);
    let _ = writeln!(out, "    meta-disk {};", s.meta_disk);
    let _ = writeln!(out, "    address {};", address(s.address, i.port()));
    let _ = writeln!(out, "  }}");
}

/// The resource file's text, or the first field that cannot go into one.
pub fn render(rec: &ResourceRecord, settings: &Settings) -> Result<String, ClusterError> {
    let i = check(rec)?;
    let n = &settings.net;
    let r = &settings.resync;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by cairnd from etcd's record {} (VM {}, disk {}); edits are overwritten.",
        super::record::resource_key(&rec.name),
        rec.vm,
        rec.vm_disk
    );
    let _ = writeln!(out, "resource {} {{", rec.name);
    let _ = writeln!(out, "  net {{");
    let _ = writeln!(out, "    protocol C;");
    let _ = writeln!(out, "    cram-hmac-alg sha256;");
    let _ = writeln!(out, "    shared-secret \"{}\";", rec.secret);
    let _ = writeln!(out, "    after-sb-0pri discard-zero-changes;");
    let _ = writeln!(out, "    after-sb-1pri consensus;");
    let _ = writeln!(out, "    after-sb-2pri disconnect;");
    let _ = writeln!(out, "    rr-conflict disconnect;");
    let _ = writeln!(out, "    timeout {};", n.timeout_ds);
    let _ = writeln!(out, "    ping-int {};", n.ping_int_s);
    let _ = writeln!(out, "    ping-timeout {};", n.ping_timeout_ds);
    let _ = writeln!(out, "    connect-int {};", n.connect_int_s);
    let _ = writeln!(out, "    ko-count {};", n.ko_count);
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  disk {{");
    let _ = writeln!(out, "    fencing resource-and-stonith;");
    let _ = writeln!(out, "    on-io-error detach;");
    let _ = writeln!(out, "    disk-flushes yes;");
    let _ = writeln!(out, "    md-flushes yes;");
    let _ = writeln!(out, "    c-plan-ahead {};", r.plan_ahead_ds);
    let _ = writeln!(out, "    c-fill-target {}k;", r.fill_target_kib);
    let _ = writeln!(out, "    c-min-rate {}k;", r.min_kib_s);
    let _ = writeln!(out, "    c-max-rate {}k;", r.max_kib_s);
    let _ = writeln!(out, "    resync-rate {}k;", r.initial_kib_s);
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  handlers {{");
    let _ = writeln!(out, "    fence-peer \"{FENCE_PEER_HANDLER}\";");
    let _ = writeln!(out, "  }}");
    for s in &rec.sides {
        on_section(&mut out, i, s);
    }
    let _ = writeln!(out, "}}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;
    use std::path::PathBuf;

    /// Compare with `testdata/drbd/<name>`; `CAIRN_UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, got: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/drbd")
            .join(name);
        if std::env::var_os("CAIRN_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (CAIRN_UPDATE_GOLDEN=1 writes it)", path.display())
        });
        assert_eq!(got, want, "{} differs", path.display());
    }

    #[test]
    fn ipv4_resource_matches_its_golden_file() {
        golden("cairn3.res", &render(&sample(), &SETTINGS).unwrap());
    }

    #[test]
    fn ipv6_resource_matches_its_golden_file() {
        let mut r = sample();
        r.name = "cairn12".into();
        r.index = 12;
        r.sides[0].address = "fd00:9::1".parse().unwrap();
        r.sides[1].address = "fd00:9::2".parse().unwrap();
        golden("cairn12-ipv6.res", &render(&r, &SETTINGS).unwrap());
    }

    #[test]
    fn bad_records_are_refused_naming_the_field() {
        type Edit = fn(&mut ResourceRecord);
        let cases: [(&str, Edit); 11] = [
            ("index", |r| r.index = 1000),
            ("name", |r| r.name = "cairn4".into()),
            ("secret", |r| r.secret = "short".into()),
            ("secret", |r| {
                r.secret = "a\"; } handlers { x \"aaaaaaaaaa".into()
            }),
            ("sides", |r| r.sides[1].node = "node1".into()),
            ("sides", |r| r.sides[1].address = r.sides[0].address),
            ("sides", |r| r.sides[1].address = "fd00::2".parse().unwrap()),
            ("sides.node", |r| r.sides[0].node = "node 1".into()),
            ("sides.disk", |r| r.sides[0].disk = "pool1/vm".into()),
            ("sides.meta_disk", |r| {
                r.sides[1].meta_disk = r.sides[1].disk.clone()
            }),
            ("sides.address", |r| {
                r.sides[0].address = "0.0.0.0".parse().unwrap()
            }),
        ];
        for (field, edit) in cases {
            let mut r = sample();
            edit(&mut r);
            match render(&r, &SETTINGS) {
                Err(ClusterError::Invalid { field: f, reason }) => {
                    assert_eq!(f, field, "{reason}")
                }
                other => panic!("{field}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_file_is_named_after_the_resource() {
        assert_eq!(
            res_path("cairn3"),
            PathBuf::from("/var/lib/cairn/drbd/cairn3.res")
        );
    }
}
