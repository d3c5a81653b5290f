//! udev's device database entries (`/run/udev/data/b<major>:<minor>`): properties and symlinks.

use std::collections::BTreeMap;

/// What udev recorded about one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdevEntry {
    /// `E:KEY=VALUE` lines (ID_SERIAL, ID_WWN, ID_MODEL, ID_BUS, ID_FS_TYPE, …).
    pub props: BTreeMap<String, String>,
    /// `S:` lines: symlinks relative to /dev (`disk/by-id/wwn-…`).
    pub links: Vec<String>,
}

impl UdevEntry {
    /// Parse the text of a database file.
    pub fn parse(text: &str) -> UdevEntry {
        let mut e = UdevEntry::default();
        for line in text.lines() {
            if let Some(kv) = line.strip_prefix("E:") {
                if let Some((k, v)) = kv.split_once('=') {
                    e.props.insert(k.to_string(), v.to_string());
                }
            } else if let Some(link) = line.strip_prefix("S:") {
                e.links.push(link.to_string());
            }
        }
        e
    }

    /// A non-empty property.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The names of the `/dev/disk/by-id` links (without the directory).
    pub fn by_id_names(&self) -> Vec<&str> {
        self.links
            .iter()
            .filter_map(|l| l.strip_prefix("disk/by-id/"))
            .collect()
    }

    /// The preferred stable id among the by-id links: `wwn-…` first, then the bus-specific
    /// name (`nvme-<model>_<serial>`, `ata-…`, `scsi-…`, `virtio-…`, `usb-…`), never a
    /// partition link; `None` when udev made no by-id link (e.g. a virtio disk without serial).
    pub fn preferred_id(&self) -> Option<String> {
        let names: Vec<&str> = self
            .by_id_names()
            .into_iter()
            .filter(|n| !is_partition_link(n))
            .collect();
        let rank = |n: &str| -> u8 {
            const ORDER: [&str; 7] = [
                "wwn-",
                "nvme-eui.",
                "nvme-",
                "ata-",
                "scsi-",
                "virtio-",
                "usb-",
            ];
            // A named NVMe link (`nvme-QEMU_NVMe_Ctrl_SERIAL`) beats its EUI form: it carries
            // the serial the admin types; swap their ranks.
            let i = ORDER
                .iter()
                .position(|p| n.starts_with(p))
                .unwrap_or(ORDER.len());
            match i {
                1 => 2,
                2 => 1,
                // ORDER has a handful of entries.
                _ => u8::try_from(i).unwrap_or(u8::MAX),
            }
        };
        names
            .iter()
            .min_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)))
            .map(|s| s.to_string())
    }
}

/// Whether a by-id name is a partition's link (`…-part3`).
fn is_partition_link(name: &str) -> bool {
    name.rsplit_once("-part")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Decode udev's `\xNN` escapes (as in `ID_MODEL_ENC`), trimming padding.
pub fn decode_enc(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1] == b'x' {
            if let Ok(b) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SATA: &str = "S:disk/by-id/ata-QEMU_HARDDISK_CAIRN-AHCI1\n\
S:disk/by-path/pci-0000:00:1f.2-ata-1\n\
S:disk/by-id/wwn-0x5000c500a1b2c3d4\n\
S:disk/by-id/ata-QEMU_HARDDISK_CAIRN-AHCI1-part1\n\
W:1\n\
I:123456\n\
E:ID_ATA=1\n\
E:ID_BUS=ata\n\
E:ID_MODEL=QEMU_HARDDISK\n\
E:ID_MODEL_ENC=QEMU\\x20HARDDISK\\x20\\x20\\x20\n\
E:ID_SERIAL=QEMU_HARDDISK_CAIRN-AHCI1\n\
E:ID_SERIAL_SHORT=CAIRN-AHCI1\n\
E:ID_WWN=0x5000c500a1b2c3d4\n\
E:ID_FS_TYPE=\n\
G:systemd\n";

    #[test]
    fn parses_properties_and_links() {
        let e = UdevEntry::parse(SATA);
        assert_eq!(e.get("ID_BUS"), Some("ata"));
        assert_eq!(e.get("ID_SERIAL_SHORT"), Some("CAIRN-AHCI1"));
        assert_eq!(e.get("ID_FS_TYPE"), None, "empty values are absent");
        assert_eq!(e.by_id_names().len(), 3);
        assert_eq!(decode_enc(e.get("ID_MODEL_ENC").unwrap()), "QEMU HARDDISK");
    }

    #[test]
    fn wwn_is_preferred_and_partitions_never_chosen() {
        assert_eq!(
            UdevEntry::parse(SATA).preferred_id().as_deref(),
            Some("wwn-0x5000c500a1b2c3d4")
        );
        let nvme = UdevEntry::parse(
            "S:disk/by-id/nvme-eui.0011223344556677\nS:disk/by-id/nvme-QEMU_NVMe_Ctrl_CAIRN-NVME1\n",
        );
        assert_eq!(
            nvme.preferred_id().as_deref(),
            Some("nvme-QEMU_NVMe_Ctrl_CAIRN-NVME1")
        );
        let part_only = UdevEntry::parse("S:disk/by-id/virtio-X-part1\n");
        assert_eq!(part_only.preferred_id(), None);
        assert_eq!(
            UdevEntry::parse("S:disk/by-id/virtio-CAIRN-V1\n")
                .preferred_id()
                .as_deref(),
            Some("virtio-CAIRN-V1")
        );
    }
}
