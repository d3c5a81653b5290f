//! The resource record in etcd: `/cairn/drbd/resources/<name>` and the index keys.

use super::names::Index;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Resource records: `/cairn/drbd/resources/<name>`.
pub const RESOURCES_PREFIX: &str = "/cairn/drbd/resources/";
/// Index keys: `/cairn/drbd/index/<i>` = the resource name holding index `i`.
pub const INDEX_PREFIX: &str = "/cairn/drbd/index/";

/// The record's key.
pub fn resource_key(name: &str) -> String {
    format!("{RESOURCES_PREFIX}{name}")
}

/// The index key.
pub fn index_key(i: Index) -> String {
    format!("{INDEX_PREFIX}{}", i.get())
}

/// One side of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Side {
    /// The node's name.
    pub node: String,
    /// Its address on the replication network.
    pub address: IpAddr,
    /// The backing device (the VM disk's thin LV), `/dev/<vg>/<lv>`.
    pub disk: String,
    /// The external metadata device (a small thin LV), `/dev/<vg>/<lv>_drbdmd`.
    pub meta_disk: String,
}

/// Who the fence-peer handler let write alone (with the peer outdated), and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoneWriter {
    pub node: String,
    /// The record's generation at the time.
    pub generation: u64,
    /// Seconds since the epoch.
    pub since: u64,
}

/// A replicated disk as etcd records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRecord {
    /// `cairn<i>`.
    pub name: String,
    /// The index (minor, port).
    pub index: u32,
    /// The VM and its disk name.
    pub vm: String,
    pub vm_disk: String,
    /// Size of the backing disk in bytes (both sides).
    pub size_bytes: u64,
    /// The shared secret (base64 of 32 random bytes).
    pub secret: String,
    /// Exactly two sides.
    pub sides: [Side; 2],
    /// The node whose data is current: the last one allowed to be Primary.
    pub primary: String,
    /// Raised by one on every change of `primary`.
    pub generation: u64,
    /// Whether the replica finished its initial sync at least once.
    #[serde(default)]
    pub initial_sync_done: bool,
    /// Set by the fence-peer handler when it outdated the peer.
    #[serde(default)]
    pub lone_writer: Option<LoneWriter>,
    /// Nodes the HA manager recorded as fenced (lease TTL + watchdog passed) since.
    #[serde(default)]
    pub fenced: Vec<String>,
    /// Replication is being turned off, keeping one copy: each side takes the resource
    /// down; the other side also removes its volumes, then deletes the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire: Option<Retire>,
    /// Sides the replica was moved away from: each of those nodes takes its resource down,
    /// removes its copy and then itself from this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former: Vec<Side>,
}

/// Replication turned off for a disk: whose copy stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retire {
    /// The node whose copy is kept (the VM's disk is its thin LV again).
    pub keep: String,
    /// Seconds since the epoch.
    pub since: u64,
}

impl ResourceRecord {
    /// The side on `node`.
    pub fn side(&self, node: &str) -> Option<&Side> {
        self.sides.iter().find(|s| s.node == node)
    }

    /// The other side than `node`'s.
    pub fn peer_of(&self, node: &str) -> Option<&Side> {
        self.side(node)?;
        self.sides.iter().find(|s| s.node != node)
    }

    /// The index, if the record's number is in range.
    pub fn index(&self) -> Option<Index> {
        Index::new(self.index)
    }
}

/// A new shared secret: base64 of 32 random bytes.
pub fn new_secret() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record between node1 (primary) and node2, index 3.
    pub(crate) fn sample() -> ResourceRecord {
        ResourceRecord {
            name: "cairn3".into(),
            index: 3,
            vm: "web".into(),
            vm_disk: "disk0".into(),
            size_bytes: 256 << 20,
            secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
            sides: [
                Side {
                    node: "node1".into(),
                    address: "10.0.9.1".parse().unwrap(),
                    disk: "/dev/pool1/vm-web-disk0".into(),
                    meta_disk: "/dev/pool1/vm-web-disk0_drbdmd".into(),
                },
                Side {
                    node: "node2".into(),
                    address: "10.0.9.2".parse().unwrap(),
                    disk: "/dev/pool2/vm-web-disk0".into(),
                    meta_disk: "/dev/pool2/vm-web-disk0_drbdmd".into(),
                },
            ],
            primary: "node1".into(),
            generation: 1,
            initial_sync_done: true,
            lone_writer: None,
            fenced: vec![],
            retire: None,
            former: vec![],
        }
    }

    #[test]
    fn sides_and_peers() {
        let r = sample();
        assert_eq!(r.side("node2").unwrap().address.to_string(), "10.0.9.2");
        assert_eq!(r.peer_of("node1").unwrap().node, "node2");
        assert_eq!(r.peer_of("node3"), None);
        assert_eq!(resource_key(&r.name), "/cairn/drbd/resources/cairn3");
        assert_eq!(index_key(r.index().unwrap()), "/cairn/drbd/index/3");
    }

    #[test]
    fn json_round_trips_and_old_records_read() {
        let r = sample();
        let back: ResourceRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let mut v = serde_json::to_value(&r).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("lone_writer");
        o.remove("fenced");
        o.remove("initial_sync_done");
        let old: ResourceRecord = serde_json::from_value(v).unwrap();
        assert!(!old.initial_sync_done && old.fenced.is_empty() && old.lone_writer.is_none());
    }

    #[test]
    fn secrets_are_32_random_bytes() {
        use base64::Engine;
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
    }
}
