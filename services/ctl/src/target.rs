//! The node named on the command line: `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6.

use anyhow::Context;
use std::net::{Ipv6Addr, SocketAddr};

/// The API's port unless told otherwise.
pub const DEFAULT_PORT: u16 = 443;

/// A node address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parse `HOST[:PORT]`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        anyhow::ensure!(!s.is_empty(), "the node address is empty");
        let bad_port = |p: &str| format!("{p:?} is not a port number (1-65535) in {s:?}");
        let port = |p: &str| -> anyhow::Result<u16> {
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| bad_port(p))
        };
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .with_context(|| format!("{s:?}: missing ']'"))?;
            host.parse::<Ipv6Addr>()
                .with_context(|| format!("{host:?} is not an IPv6 address"))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => port(p.strip_prefix(':').with_context(|| bad_port(p))?)?,
            };
            return Ok(Target {
                host: host.to_string(),
                port,
            });
        }
        if s.parse::<Ipv6Addr>().is_ok() {
            return Ok(Target {
                host: s.to_string(),
                port: DEFAULT_PORT,
            });
        }
        match s.rsplit_once(':') {
            Some((host, p)) if !host.is_empty() => Ok(Target {
                host: host.to_string(),
                port: port(p)?,
            }),
            Some(_) => anyhow::bail!("{s:?} has no host"),
            None => Ok(Target {
                host: s.to_string(),
                port: DEFAULT_PORT,
            }),
        }
    }

    /// The name tokens and pins are stored under: `host:port` (`[v6]:port`).
    pub fn key(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The addresses the name resolves to.
    pub async fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("cannot resolve {}", self.host))?
            .collect();
        anyhow::ensure!(!addrs.is_empty(), "{} has no address", self.host);
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> (String, u16) {
        let t = Target::parse(s).unwrap();
        (t.host, t.port)
    }

    #[test]
    fn forms() {
        assert_eq!(t("nas"), ("nas".into(), 443));
        assert_eq!(t("nas:8443"), ("nas".into(), 8443));
        assert_eq!(t("10.0.2.15"), ("10.0.2.15".into(), 443));
        assert_eq!(t("[fd00::1]:8443"), ("fd00::1".into(), 8443));
        assert_eq!(t("[fd00::1]"), ("fd00::1".into(), 443));
        assert_eq!(t("fd00::1"), ("fd00::1".into(), 443));
        assert_eq!(Target::parse("fd00::1").unwrap().key(), "[fd00::1]:443");
        assert_eq!(Target::parse("nas").unwrap().key(), "nas:443");
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "nas:0",
            "nas:http",
            ":443",
            "[fd00::1",
            "[nas]:1",
            "[fd00::1]x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn resolves_ip_literals() {
        let a = Target::parse("127.0.0.1:8443")
            .unwrap()
            .resolve()
            .await
            .unwrap();
        assert_eq!(a, vec!["127.0.0.1:8443".parse().unwrap()]);
    }
}
