//! IP prefixes in CIDR notation (`192.0.2.10/24`, `2001:db8::1/64`): parsing and containment.

use cairn_core::shown::quoted;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address with its prefix length, as configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Cidr {
        Cidr { addr, prefix }
    }

    fn max_prefix(addr: &IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// Whether `ip` lies in this prefix's subnet.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = mask32(self.prefix);
                u32::from(a) & mask == u32::from(*b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = mask128(self.prefix);
                u128::from(a) & mask == u128::from(*b) & mask
            }
            _ => false,
        }
    }

    /// The network address (host bits cleared), e.g. `192.0.2.0/24`.
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(self.prefix)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(self.prefix)).into()),
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            format!(
                "{} has no prefix length (write it as ADDRESS/PREFIX)",
                quoted(s)
            )
        })?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{} is not an IP address", quoted(a)))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{} is not a prefix length", quoted(p)))?;
        if prefix > Cidr::max_prefix(&addr) {
            return Err(format!(
                "prefix length {prefix} is longer than {}",
                Cidr::max_prefix(&addr)
            ));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let c: Cidr = "192.0.2.10/24".parse().unwrap();
        assert!(c.contains(&"192.0.2.1".parse().unwrap()));
        assert!(!c.contains(&"192.0.3.1".parse().unwrap()));
        assert!(!c.contains(&"2001:db8::1".parse().unwrap()));
        assert_eq!(c.network().to_string(), "192.0.2.0/24");
        let v6: Cidr = "2001:db8::5/64".parse().unwrap();
        assert!(v6.contains(&"2001:db8::1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!("192.0.2.1"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("no prefix length"));
        assert!("192.0.2.1/33"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("longer than 32"));
        assert!("x/3"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("not an IP address"));
    }
}
