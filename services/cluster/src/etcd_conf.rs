//! etcd 3.4's configuration file (`etcd --config-file`) for one member, validated.

use std::fmt::Write;
use std::net::IpAddr;
use std::path::PathBuf;

/// Heartbeat interval when the caller has no measurement (etcd's default).
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Election timeout when the caller has no measurement (etcd's default).
pub const DEFAULT_ELECTION_MS: u64 = 1000;
/// Raft snapshot after this many applied entries.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 10_000;
/// Backend quota (2 GiB, etcd's default).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd refuses an election timeout above this.
pub const MAX_ELECTION_MS: u64 = 50_000;
/// Largest backend quota etcd supports well (8 GiB).
pub const MAX_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// A configuration etcd would refuse or that would not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd configuration: {field}: {reason}")]
pub struct ConfError {
    pub field: &'static str,
    pub reason: String,
}

/// Whether the member starts a new cluster or joins an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    New,
    Existing,
}

/// The member's certificate, key and the cluster CA, as files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub trusted_ca_file: PathBuf,
}

/// One etcd member's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMemberConf {
    /// The member name (the node name).
    pub name: String,
    pub data_dir: PathBuf,
    /// The node's cluster address: peer and client listeners; the client listener also
    /// listens on 127.0.0.1.
    pub address: IpAddr,
    /// 2379 in production ([`crate::types::ETCD_CLIENT_PORT`]); tests use others.
    pub client_port: u16,
    /// 2380 in production ([`crate::types::ETCD_PEER_PORT`]).
    pub peer_port: u16,
    /// `name=https://ip:port` for every member, this one included.
    pub initial_cluster: Vec<String>,
    pub state: InitialState,
    /// Distinguishes clusters on one network (the cluster id).
    pub cluster_token: String,
    pub tls: EtcdTlsFiles,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub snapshot_count: u64,
    /// Backend quota in bytes.
    pub quota_bytes: u64,
    /// Compact the history older than this many hours (0: never).
    pub auto_compaction_hours: u32,
    /// Listen on the wildcard address (`[::]`, IPv4 too) rather than the cluster address and
    /// the loopback: the appliance starts etcd before its cluster address may exist.
    pub listen_any: bool,
    /// The revocation list (PEM) etcd checks client and peer certificates against on every
    /// handshake (see [`crate::crl`]); it must exist before etcd starts.
    pub crl_file: Option<PathBuf>,
}

impl EtcdMemberConf {
    /// A member with the production ports, default timings and a one-member initial cluster
    /// of itself (`state` new); adjust the fields before [`EtcdMemberConf::to_yaml`].
    pub fn new(
        name: &str,
        data_dir: PathBuf,
        address: IpAddr,
        cluster_token: &str,
        tls: EtcdTlsFiles,
    ) -> EtcdMemberConf {
        let peer_port = crate::types::ETCD_PEER_PORT;
        EtcdMemberConf {
            name: name.to_string(),
            data_dir,
            address,
            client_port: crate::types::ETCD_CLIENT_PORT,
            peer_port,
            initial_cluster: vec![format!("{name}={}", peer_url(address, peer_port))],
            state: InitialState::New,
            cluster_token: cluster_token.to_string(),
            tls,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_ms: DEFAULT_ELECTION_MS,
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            auto_compaction_hours: 1,
            listen_any: false,
            crl_file: None,
        }
    }

    /// This member's peer URL (`https://address:peer_port`).
    pub fn peer_url(&self) -> String {
        peer_url(self.address, self.peer_port)
    }

    /// This member's client URL on its cluster address.
    pub fn client_url(&self) -> String {
        client_url(self.address, self.client_port)
    }

    /// Check what etcd would refuse, or what could not work.
    pub fn validate(&self) -> Result<(), ConfError> {
        let err = |field: &'static str, reason: String| Err(ConfError { field, reason });
        if !crate::ca::valid_node_name(&self.name) {
            return err(
                "name",
                format!("{:?}: 1-63 of a-z 0-9 -, starting with a letter", self.name),
            );
        }
        let mut paths = vec![
            ("data_dir", &self.data_dir),
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
            ("tls.trusted_ca_file", &self.tls.trusted_ca_file),
        ];
        if let Some(crl) = &self.crl_file {
            paths.push(("crl_file", crl));
        }
        for (field, p) in paths {
            if !p.is_absolute() {
                return err(field, format!("{} is not an absolute path", p.display()));
            }
            if p.to_str().is_none_or(|s| s.contains(['\n', '"'])) {
                return err(field, format!("{} cannot go into the file", p.display()));
            }
        }
        if self.address.is_unspecified() || self.address.is_multicast() {
            return err("address", format!("{} is not a node address", self.address));
        }
        if self.client_port == 0 || self.peer_port == 0 || self.client_port == self.peer_port {
            return err(
                "ports",
                format!(
                    "client {} and peer {} must be distinct and non-zero",
                    self.client_port, self.peer_port
                ),
            );
        }
        if self.heartbeat_ms < 10 {
            return err(
                "heartbeat_ms",
                format!("{} ms is below 10 ms", self.heartbeat_ms),
            );
        }
        if self.election_ms < 5 * self.heartbeat_ms {
            return err(
                "election_ms",
                format!(
                    "{} ms is less than 5 × the heartbeat ({} ms)",
                    self.election_ms, self.heartbeat_ms
                ),
            );
        }
        if self.election_ms > MAX_ELECTION_MS {
            return err(
                "election_ms",
                format!(
                    "{} ms is above etcd's {MAX_ELECTION_MS} ms",
                    self.election_ms
                ),
            );
        }
        if self.snapshot_count == 0 {
            return err("snapshot_count", "must be positive".to_string());
        }
        if self.quota_bytes == 0 || self.quota_bytes > MAX_QUOTA_BYTES {
            return err(
                "quota_bytes",
                format!("{} is not within 1 B to 8 GiB", self.quota_bytes),
            );
        }
        if self.cluster_token.is_empty()
            || !self
                .cluster_token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return err(
                "cluster_token",
                format!("{:?}: letters, digits, - and _ only", self.cluster_token),
            );
        }
        let mut names = Vec::new();
        let mut own = false;
        for entry in &self.initial_cluster {
            let (name, url) = parse_initial_member(entry).map_err(|reason| ConfError {
                field: "initial_cluster",
                reason,
            })?;
            if names.contains(&name) {
                return err("initial_cluster", format!("{name} is listed twice"));
            }
            if name == self.name {
                if url != self.peer_url() {
                    return err(
                        "initial_cluster",
                        format!(
                            "this member {name} is listed at {url}, but its peer URL is {}",
                            self.peer_url()
                        ),
                    );
                }
                own = true;
            }
            names.push(name);
        }
        if !own {
            return err(
                "initial_cluster",
                format!("this member {} is not listed", self.name),
            );
        }
        Ok(())
    }

    /// The YAML text for `etcd --config-file` (validated first).
    pub fn to_yaml(&self) -> Result<String, ConfError> {
        self.validate()?;
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let p = |p: &PathBuf| q(&p.to_string_lossy());
        let mut client_urls = vec![self.client_url()];
        if !self.address.is_loopback() {
            client_urls.push(client_url(
                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                self.client_port,
            ));
        }
        let mut y = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(y, "{k}: {v}");
        };
        line("name", q(&self.name));
        line("data-dir", p(&self.data_dir));
        let any = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        if self.listen_any {
            line("listen-peer-urls", q(&peer_url(any, self.peer_port)));
            line("listen-client-urls", q(&client_url(any, self.client_port)));
        } else {
            line("listen-peer-urls", q(&self.peer_url()));
            line("listen-client-urls", q(&client_urls.join(",")));
        }
        line("initial-advertise-peer-urls", q(&self.peer_url()));
        line("advertise-client-urls", q(&self.client_url()));
        line("initial-cluster", q(&self.initial_cluster.join(",")));
        line(
            "initial-cluster-state",
            q(match self.state {
                InitialState::New => "new",
                InitialState::Existing => "existing",
            }),
        );
        line("initial-cluster-token", q(&self.cluster_token));
        line("heartbeat-interval", self.heartbeat_ms.to_string());
        line("election-timeout", self.election_ms.to_string());
        // A member cut off (or just slow) asks before it campaigns, so when it returns it
        // does not depose a healthy leader with its higher term (raft's PreVote).
        line("pre-vote", "true".to_string());
        line("snapshot-count", self.snapshot_count.to_string());
        line("quota-backend-bytes", self.quota_bytes.to_string());
        if self.auto_compaction_hours > 0 {
            line("auto-compaction-mode", q("periodic"));
            line(
                "auto-compaction-retention",
                q(&format!("{}h", self.auto_compaction_hours)),
            );
        }
        if self.listen_any {
            // Plain-HTTP metrics on the loopback only (histograms of WAL fsync and peer round
            // trips: the lab reads them, decision 0026); the client port needs a certificate.
            line("listen-metrics-urls", q("http://127.0.0.1:2381"));
        }
        line("enable-v2", "false".to_string());
        line("strict-reconfig-check", "true".to_string());
        line("logger", q("zap"));
        line("log-outputs", format!("[{}]", q("stderr")));
        for (section, auth_key) in [
            ("client-transport-security", "client-cert-auth"),
            ("peer-transport-security", "peer-client-cert-auth"),
        ] {
            let _ = writeln!(y, "{section}:");
            let _ = writeln!(y, "  cert-file: {}", p(&self.tls.cert_file));
            let _ = writeln!(y, "  key-file: {}", p(&self.tls.key_file));
            let _ = writeln!(y, "  trusted-ca-file: {}", p(&self.tls.trusted_ca_file));
            let _ = writeln!(y, "  {auth_key}: true");
            let _ = writeln!(y, "  auto-tls: false");
        }
        if let Some(crl) = &self.crl_file {
            // etcd 3.4's config file has no key for the CRL in the sections above (and flags
            // are ignored with --config-file); its embed.Config fields take it by Go name.
            for section in ["ClientTLSInfo", "PeerTLSInfo"] {
                let _ = writeln!(y, "{section}:");
                let _ = writeln!(y, "  CRLFile: {}", p(crl));
            }
        }
        Ok(y)
    }
}

/// `https://ip:port`, IPv6 in brackets.
pub fn peer_url(ip: IpAddr, port: u16) -> String {
    format!("https://{}", std::net::SocketAddr::new(ip, port))
}

/// `https://ip:port`, IPv6 in brackets.
pub fn client_url(ip: IpAddr, port: u16) -> String {
    peer_url(ip, port)
}

/// Split an `initial-cluster` entry `name=https://ip:port`.
pub fn parse_initial_member(entry: &str) -> Result<(String, String), String> {
    let (name, url) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} is not name=https://ip:port"))?;
    if !crate::ca::valid_node_name(name) {
        return Err(format!("{entry:?}: bad member name {name:?}"));
    }
    let addr = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{entry:?}: the peer URL must be https://"))?;
    addr.parse::<std::net::SocketAddr>()
        .map_err(|_| format!("{entry:?}: {addr:?} is not ip:port"))?;
    Ok((name.to_string(), url.to_string()))
}

/// The shortest lease TTL etcd grants with this election timeout: ceil(1.5 × election), in
/// seconds (a shorter TTL is raised silently).
pub fn min_lease_ttl_s(election_ms: u64) -> u64 {
    (election_ms * 3).div_ceil(2000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf() -> EtcdMemberConf {
        EtcdMemberConf::new(
            "node1",
            "/var/lib/cairn/etcd".into(),
            "10.0.0.1".parse().unwrap(),
            "c-1234",
            EtcdTlsFiles {
                cert_file: "/var/lib/cairn/cluster/node.pem".into(),
                key_file: "/var/lib/cairn/cluster/node.key".into(),
                trusted_ca_file: "/var/lib/cairn/cluster/ca.pem".into(),
            },
        )
    }

    #[test]
    fn the_revocation_list_is_named_for_clients_and_peers_when_given() {
        let mut c = conf();
        assert!(!c.to_yaml().unwrap().contains("CRLFile"));
        c.crl_file = Some("/var/lib/cairn/cluster/crl.pem".into());
        let y = c.to_yaml().unwrap();
        assert!(
            y.contains("ClientTLSInfo:\n  CRLFile: \"/var/lib/cairn/cluster/crl.pem\"\n"),
            "{y}"
        );
        assert!(
            y.contains("PeerTLSInfo:\n  CRLFile: \"/var/lib/cairn/cluster/crl.pem\"\n"),
            "{y}"
        );
        c.crl_file = Some("crl.pem".into());
        assert_eq!(c.validate().unwrap_err().field, "crl_file");
    }

    #[test]
    fn yaml_has_every_key() {
        let y = conf().to_yaml().unwrap();
        for want in [
            "name: \"node1\"\n",
            "data-dir: \"/var/lib/cairn/etcd\"\n",
            "listen-peer-urls: \"https://10.0.0.1:2380\"\n",
            "listen-client-urls: \"https://10.0.0.1:2379,https://127.0.0.1:2379\"\n",
            "initial-advertise-peer-urls: \"https://10.0.0.1:2380\"\n",
            "advertise-client-urls: \"https://10.0.0.1:2379\"\n",
            "initial-cluster: \"node1=https://10.0.0.1:2380\"\n",
            "initial-cluster-state: \"new\"\n",
            "initial-cluster-token: \"c-1234\"\n",
            "heartbeat-interval: 100\n",
            "election-timeout: 1000\n",
            "pre-vote: true\n",
            "logger: \"zap\"\n",
            "log-outputs: [\"stderr\"]\n",
            "client-transport-security:\n  cert-file: \"/var/lib/cairn/cluster/node.pem\"\n  key-file: \"/var/lib/cairn/cluster/node.key\"\n  trusted-ca-file: \"/var/lib/cairn/cluster/ca.pem\"\n  client-cert-auth: true\n",
            "peer-transport-security:\n  cert-file: \"/var/lib/cairn/cluster/node.pem\"\n  key-file: \"/var/lib/cairn/cluster/node.key\"\n  trusted-ca-file: \"/var/lib/cairn/cluster/ca.pem\"\n  peer-client-cert-auth: true\n",
        ] {
            assert!(y.contains(want), "missing {want:?} in\n{y}");
        }
    }

    #[test]
    fn ipv6_and_existing() {
        let mut c = conf();
        c.address = "fd00::1".parse().unwrap();
        c.state = InitialState::Existing;
        c.initial_cluster = vec![
            "node0=https://[fd00::9]:2380".into(),
            "node1=https://[fd00::1]:2380".into(),
        ];
        let y = c.to_yaml().unwrap();
        assert!(
            y.contains("listen-peer-urls: \"https://[fd00::1]:2380\""),
            "{y}"
        );
        assert!(y.contains("initial-cluster-state: \"existing\""), "{y}");
        assert!(y.contains("node0=https://[fd00::9]:2380,node1=https://[fd00::1]:2380"));
    }

    #[test]
    fn loopback_address_listens_once() {
        let mut c = conf();
        c.address = "127.0.0.1".parse().unwrap();
        c.client_port = 12379;
        c.peer_port = 12380;
        c.initial_cluster = vec!["node1=https://127.0.0.1:12380".into()];
        let y = c.to_yaml().unwrap();
        assert!(
            y.contains("listen-client-urls: \"https://127.0.0.1:12379\"\n"),
            "{y}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        type Change = Box<dyn Fn(&mut EtcdMemberConf)>;
        let cases: Vec<(&str, Change)> = vec![
            ("election_ms", Box::new(|c| c.election_ms = 499)),
            ("election_ms", Box::new(|c| c.election_ms = 60_000)),
            ("heartbeat_ms", Box::new(|c| c.heartbeat_ms = 5)),
            ("name", Box::new(|c| c.name = "Node 1".into())),
            ("data_dir", Box::new(|c| c.data_dir = "etcd".into())),
            ("tls.key_file", Box::new(|c| c.tls.key_file = "k".into())),
            ("snapshot_count", Box::new(|c| c.snapshot_count = 0)),
            ("quota_bytes", Box::new(|c| c.quota_bytes = 9 << 30)),
            ("ports", Box::new(|c| c.peer_port = c.client_port)),
            (
                "cluster_token",
                Box::new(|c| c.cluster_token = "a b".into()),
            ),
            ("initial_cluster", Box::new(|c| c.initial_cluster = vec![])),
            (
                "initial_cluster",
                Box::new(|c| c.initial_cluster = vec!["node1=http://10.0.0.1:2380".into()]),
            ),
            (
                "initial_cluster",
                Box::new(|c| c.initial_cluster = vec!["node1=https://10.0.0.2:2380".into()]),
            ),
            (
                "initial_cluster",
                Box::new(|c| c.initial_cluster.push("node1=https://10.0.0.1:2380".into())),
            ),
        ];
        for (field, change) in cases {
            let mut c = conf();
            change(&mut c);
            let e = c.to_yaml().unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let mut c = conf();
        c.election_ms = 500;
        c.validate().unwrap();
    }

    #[test]
    fn min_lease_ttl() {
        assert_eq!(min_lease_ttl_s(1000), 2);
        assert_eq!(min_lease_ttl_s(2000), 3);
        assert_eq!(min_lease_ttl_s(3000), 5);
        assert_eq!(min_lease_ttl_s(5000), 8);
        assert_eq!(min_lease_ttl_s(600), 1);
    }
}
