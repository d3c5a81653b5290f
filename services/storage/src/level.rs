//! RAID levels of a pool: minimum disk counts, usable capacity and the md level they map to.

use serde::{Deserialize, Serialize};

/// How a pool spreads data over its disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// One disk, no redundancy: an md RAID1 with one member, so a second disk can later turn it
    /// into a mirror (`add`) without moving data.
    Single,
    Raid1,
    Raid5,
    Raid6,
    Raid10,
}

impl Level {
    /// Every level, in the order the UI offers them.
    pub const ALL: [Level; 5] = [
        Level::Single,
        Level::Raid1,
        Level::Raid5,
        Level::Raid6,
        Level::Raid10,
    ];

    /// The name used in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Single => "single",
            Level::Raid1 => "raid1",
            Level::Raid5 => "raid5",
            Level::Raid6 => "raid6",
            Level::Raid10 => "raid10",
        }
    }

    /// Parse the API name.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// mdadm's `--level` value.
    pub fn md_level(self) -> &'static str {
        match self {
            Level::Single | Level::Raid1 => "1",
            Level::Raid5 => "5",
            Level::Raid6 => "6",
            Level::Raid10 => "10",
        }
    }

    /// The fewest disks the level works with.
    pub fn min_disks(self) -> usize {
        match self {
            Level::Single => 1,
            Level::Raid1 | Level::Raid10 => 2,
            Level::Raid5 => 3,
            Level::Raid6 => 4,
        }
    }

    /// The most disks the level takes (`None`: no limit).
    pub fn max_disks(self) -> Option<usize> {
        match self {
            Level::Single => Some(1),
            _ => None,
        }
    }

    /// How many members may be lost without losing data (the guaranteed number; RAID10 may
    /// survive more if the losses hit different mirrors).
    pub fn redundancy(self) -> usize {
        match self {
            Level::Single => 0,
            Level::Raid1 | Level::Raid5 | Level::Raid10 => 1,
            Level::Raid6 => 2,
        }
    }

    /// Usable bytes of an array of `n` members whose smallest usable member size is `member`.
    pub fn usable_bytes(self, n: usize, member: u64) -> u64 {
        let n = n as u64;
        match self {
            Level::Single | Level::Raid1 => member,
            Level::Raid5 => member * n.saturating_sub(1),
            Level::Raid6 => member * n.saturating_sub(2),
            // md raid10 with the default near=2 layout keeps two copies of every chunk.
            Level::Raid10 => member * n / 2,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_per_level() {
        let g = 1 << 30;
        assert_eq!(Level::Single.usable_bytes(1, g), g);
        assert_eq!(Level::Raid1.usable_bytes(3, g), g);
        assert_eq!(Level::Raid5.usable_bytes(4, g), 3 * g);
        assert_eq!(Level::Raid6.usable_bytes(5, g), 3 * g);
        assert_eq!(Level::Raid10.usable_bytes(4, g), 2 * g);
        assert_eq!(Level::Raid10.usable_bytes(3, g), 3 * g / 2);
    }

    #[test]
    fn names_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.as_str())
            );
        }
        assert_eq!(Level::parse("raid0"), None);
    }

    #[test]
    fn minimums() {
        assert_eq!(Level::Raid5.min_disks(), 3);
        assert_eq!(Level::Raid6.min_disks(), 4);
        assert_eq!(Level::Single.max_disks(), Some(1));
    }
}
