//! Checks of the admin's cluster requests: names and the node's own addresses.

use crate::error::ClusterError;
use std::net::IpAddr;

/// A cluster or node name: 1–63 of `a-z 0-9 -`, starting with a letter, not ending with `-`.
pub fn node_name(field: &'static str, name: &str) -> Result<(), ClusterError> {
    let bad = |reason: &str| {
        Err(ClusterError::Invalid {
            field,
            reason: reason.to_string(),
        })
    };
    if name.is_empty() || name.len() > 63 {
        return bad("must be 1 to 63 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter");
    }
    if name.ends_with('-') {
        return bad("must not end with '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("may contain only a-z, 0-9 and '-'");
    }
    Ok(())
}

/// The cluster address must be one of this node's own, and usable between nodes.
pub fn cluster_address(
    field: &'static str,
    addr: IpAddr,
    own: &[IpAddr],
) -> Result<(), ClusterError> {
    if addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() {
        return Err(ClusterError::Invalid {
            field,
            reason: format!("{addr} cannot carry cluster traffic between nodes"),
        });
    }
    if !own.contains(&addr) {
        let mut list: Vec<String> = own
            .iter()
            .filter(|a| !a.is_loopback())
            .map(ToString::to_string)
            .collect();
        if list.is_empty() {
            list.push("none".into());
        }
        return Err(ClusterError::Invalid {
            field,
            reason: format!(
                "{addr} is not an address of this node (it has {})",
                list.join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(node_name("name", "lab-1").is_ok());
        for bad in ["", "1lab", "Lab", "lab-", "la_b", &"a".repeat(64)] {
            let err = node_name("name", bad).unwrap_err().to_string();
            assert!(err.starts_with("name: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn addresses() {
        let own: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.77.0.11".parse().unwrap()];
        assert!(cluster_address("address", "10.77.0.11".parse().unwrap(), &own).is_ok());
        let err = cluster_address("address", "10.77.0.12".parse().unwrap(), &own)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "address: 10.77.0.12 is not an address of this node (it has 10.77.0.11)"
        );
        assert!(cluster_address("address", "127.0.0.1".parse().unwrap(), &own).is_err());
    }
}
