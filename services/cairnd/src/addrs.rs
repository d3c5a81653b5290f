//! The node's usable IP addresses (getifaddrs, without loopback and link-local).

use std::net::IpAddr;

/// Source of interface addresses, so the filtering and waiting logic is testable.
pub trait AddressSource: Send + Sync {
    /// Every address of every interface.
    fn addresses(&self) -> std::io::Result<Vec<IpAddr>>;
}

/// The real system, through getifaddrs(3) (netlink inside glibc; no NSS).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAddresses;

impl AddressSource for SystemAddresses {
    fn addresses(&self) -> std::io::Result<Vec<IpAddr>> {
        let mut out = Vec::new();
        for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
            let Some(addr) = ifa.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                out.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                out.push(IpAddr::V6(v6.ip()));
            }
        }
        Ok(out)
    }
}

/// The usable addresses of interface `name` (IPv4 first).
pub fn of_interface(name: &str) -> Vec<IpAddr> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ifa in all.filter(|i| i.interface_name == name) {
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            out.push(IpAddr::V6(v6.ip()));
        }
    }
    usable(out)
}

/// Whether a user could reach the node at this address from another machine.
pub fn is_usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || link_local)
        }
    }
}

/// Usable addresses, IPv4 first, without duplicates.
pub fn usable(mut all: Vec<IpAddr>) -> Vec<IpAddr> {
    all.retain(is_usable);
    all.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_orders() {
        let all: Vec<IpAddr> = [
            "127.0.0.1",
            "::1",
            "fe80::1",
            "169.254.3.4",
            "fec0::5",
            "10.0.2.15",
            "192.168.1.2",
            "10.0.2.15",
            "2001:db8::7",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let got: Vec<String> = usable(all).iter().map(|i| i.to_string()).collect();
        assert_eq!(
            got,
            vec!["10.0.2.15", "192.168.1.2", "2001:db8::7", "fec0::5"]
        );
    }

    #[test]
    fn febf_is_link_local_but_fec0_is_not() {
        assert!(!is_usable(&"febf::1".parse().unwrap()));
        assert!(is_usable(&"fec0::1".parse().unwrap()));
        assert!(!is_usable(&"0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn system_lists_loopback() {
        // Every Linux host (and network namespace) has lo with 127.0.0.1 once it is up;
        // at least the call must succeed.
        let all = SystemAddresses.addresses().unwrap();
        assert!(all.iter().all(|a| a.is_ipv4() || a.is_ipv6()));
    }
}
