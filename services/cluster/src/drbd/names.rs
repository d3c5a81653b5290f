//! Resource numbering: one cluster-wide index gives the name, the minor and the port.

/// The first TCP port (index 0); DRBD's customary port.
pub const PORT_BASE: u16 = 7789;
/// How many resources a cluster can have (ports 7789–8788, minors 0–999).
pub const MAX_RESOURCES: u32 = 1000;

/// A resource's number and what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Index(u32);

impl Index {
    /// The index `i`, refused outside `0..MAX_RESOURCES`.
    pub fn new(i: u32) -> Option<Index> {
        (i < MAX_RESOURCES).then_some(Index(i))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The resource name, `cairn<i>`.
    pub fn name(self) -> String {
        format!("cairn{}", self.0)
    }

    /// The device minor (`/dev/drbd<i>`).
    pub fn minor(self) -> u32 {
        self.0
    }

    /// The device path.
    pub fn device(self) -> String {
        format!("/dev/drbd{}", self.0)
    }

    /// The TCP port both sides listen on.
    pub fn port(self) -> u16 {
        // MAX_RESOURCES keeps this within u16 (7789 + 999).
        PORT_BASE + u16::try_from(self.0).unwrap_or(0)
    }

    /// The index a resource name stands for (`cairn<i>`), if it is one of ours.
    pub fn from_name(name: &str) -> Option<Index> {
        let digits = name.strip_prefix("cairn")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        Index::new(digits.parse().ok()?)
    }
}

/// The lowest index not in `taken` (None when all MAX_RESOURCES are taken).
pub fn lowest_free(taken: &[Index]) -> Option<Index> {
    let mut sorted: Vec<u32> = taken.iter().map(|i| i.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut want = 0u32;
    for t in sorted {
        if t == want {
            want += 1;
        } else if t > want {
            break;
        }
    }
    Index::new(want)
}

/// Size in bytes of the external metadata LV for a disk of `disk_bytes`, rounded up to
/// `extent_bytes`: 32 KiB of bitmap per GiB (one bit per 4 KiB) plus 1 MiB for the
/// superblock and activity log (8.4 needs 36 KiB; the rest is headroom).
pub fn metadata_bytes(disk_bytes: u64, extent_bytes: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let gib = disk_bytes.div_ceil(GIB);
    let raw = gib * 32 * 1024 + (1 << 20);
    let extent = extent_bytes.max(1);
    raw.div_ceil(extent) * extent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(v: &[u32]) -> Vec<Index> {
        v.iter().map(|&i| Index::new(i).unwrap()).collect()
    }

    #[test]
    fn name_minor_port_follow_from_the_index() {
        let i = Index::new(7).unwrap();
        assert_eq!(i.name(), "cairn7");
        assert_eq!(i.minor(), 7);
        assert_eq!(i.device(), "/dev/drbd7");
        assert_eq!(i.port(), 7796);
        let last = Index::new(MAX_RESOURCES - 1).unwrap();
        assert_eq!(last.port(), 8788);
        assert_eq!(Index::new(MAX_RESOURCES), None);
    }

    #[test]
    fn names_parse_back_and_strangers_are_refused() {
        assert_eq!(Index::from_name("cairn0"), Index::new(0));
        assert_eq!(Index::from_name("cairn999"), Index::new(999));
        for bad in [
            "cairn",
            "cairn1000",
            "cairn07",
            "cairn-1",
            "r0",
            "cairn1a",
            "",
        ] {
            assert_eq!(Index::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn lowest_free_fills_holes_first() {
        assert_eq!(lowest_free(&[]), Index::new(0));
        assert_eq!(lowest_free(&idx(&[0, 1, 2])), Index::new(3));
        assert_eq!(lowest_free(&idx(&[1, 2])), Index::new(0));
        assert_eq!(lowest_free(&idx(&[0, 2, 3])), Index::new(1));
        assert_eq!(lowest_free(&idx(&[3, 0, 0, 1])), Index::new(2));
        let all: Vec<u32> = (0..MAX_RESOURCES).collect();
        assert_eq!(lowest_free(&idx(&all)), None);
    }

    #[test]
    fn metadata_is_small_and_extent_aligned() {
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        assert_eq!(metadata_bytes(256 * MIB, 4 * MIB), 4 * MIB);
        assert_eq!(metadata_bytes(96 * GIB, 4 * MIB), 4 * MIB);
        assert_eq!(metadata_bytes(97 * GIB, 4 * MIB), 8 * MIB);
        // 1 TiB: 32 MiB of bitmap + 1 MiB → 36 MiB.
        assert_eq!(metadata_bytes(1024 * GIB, 4 * MIB), 36 * MIB);
        assert_eq!(metadata_bytes(0, 0), MIB);
    }
}
