//! The btrfs command lines shares use (mkfs, resize, subvolumes, scrub) and parsers for their output.

use cairn_core::command::Invocation;
use std::path::Path;

/// `mkfs.btrfs` on a fresh thin LV (no discard pass: a new thin LV holds no data), with
/// xxhash64 data checksums (decision 0011).
pub fn mkfs(device: &Path, label: &str) -> Invocation {
    Invocation::new(
        "mkfs.btrfs",
        [
            "-q".to_string(),
            "-f".to_string(),
            "--nodiscard".to_string(),
            "--csum".to_string(),
            "xxhash".to_string(),
            "-L".to_string(),
            label.to_string(),
            device.display().to_string(),
        ],
    )
}

/// Mount a share's filesystem; `discard=async` hands freed blocks back to the thin pool.
pub fn mount(device: &Path, mountpoint: &Path) -> Invocation {
    Invocation::new(
        "mount",
        [
            "-t".to_string(),
            "btrfs".to_string(),
            "-o".to_string(),
            "noatime,discard=async".to_string(),
            device.display().to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// Grow the filesystem to its (already extended) device.
pub fn resize_max(mountpoint: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "filesystem".to_string(),
            "resize".to_string(),
            "max".to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// Byte-exact usage of a mounted filesystem.
pub fn usage(mountpoint: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "filesystem".to_string(),
            "usage".to_string(),
            "-b".to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// Commit the filesystem's running transaction (`btrfs filesystem sync`), so that the next
/// [`usage`] counts every write that returned. btrfs updates the per-block-group `used`
/// figures that `btrfs filesystem usage` (and statfs) report only when a transaction commits
/// (every 30 s by default; an `fsync` goes to the log tree and does not commit), so without
/// it a share being filled reads up to 30 s of writes low. With nothing to commit it returns
/// at once and writes nothing.
pub fn sync(mountpoint: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "filesystem".to_string(),
            "sync".to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// Create an empty subvolume at `path`.
pub fn subvolume_create(path: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "subvolume".to_string(),
            "create".to_string(),
            path.display().to_string(),
        ],
    )
}

/// A read-only snapshot of the subvolume `source` at `dest`.
pub fn snapshot_readonly(source: &Path, dest: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "subvolume".to_string(),
            "snapshot".to_string(),
            "-r".to_string(),
            source.display().to_string(),
            dest.display().to_string(),
        ],
    )
}

/// Delete the subvolume at `path` (committing, so the space is accounted when it returns).
pub fn subvolume_delete(path: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "subvolume".to_string(),
            "delete".to_string(),
            "--commit-after".to_string(),
            path.display().to_string(),
        ],
    )
}

/// The snapshots below a mounted filesystem, with their creation times.
pub fn list_snapshots(mountpoint: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "subvolume".to_string(),
            "list".to_string(),
            "-s".to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// Start a scrub in the background (progress is read with [`scrub_status`]).
pub fn scrub_start(mountpoint: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "scrub".to_string(),
            "start".to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// The raw status of the last or running scrub.
pub fn scrub_status(mountpoint: &Path) -> Invocation {
    Invocation::new(
        "btrfs",
        [
            "scrub".to_string(),
            "status".to_string(),
            "-R".to_string(),
            mountpoint.display().to_string(),
        ],
    )
}

/// How full a mounted btrfs is, from `btrfs filesystem usage -b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FsUsage {
    /// Size of the device the filesystem sits on.
    pub size_bytes: u64,
    /// Bytes used (data and metadata, as allocated to files and trees).
    pub used_bytes: u64,
    /// Bytes still writable, as btrfs estimates them.
    pub free_bytes: u64,
}

impl FsUsage {
    /// Used percent of the space files can actually use: `used / (used + free)` with btrfs's
    /// own "Free (estimated)" (free space in data chunks plus unallocated space that can
    /// still become data chunks, per data copy), not of the device size. On a small share
    /// the device size is far off: a 256 MiB share gives 64 MiB to DUP metadata and 16 MiB to
    /// DUP system chunks that file data can never use, so against the device size it runs
    /// out of space at ~70 %. Against used + free it reads 100 % exactly when writes fail
    /// with ENOSPC (tested with real output below), so 95 % is always reached first.
    /// Allocated-but-unused metadata and the global reserve count in neither term. The
    /// figures are only current after a commit ([`sync`]). 0 for an empty device.
    pub fn percent(&self) -> f64 {
        if self.size_bytes == 0 {
            return 0.0;
        }
        let total = self.used_bytes + self.free_bytes;
        let base = if total == 0 { self.size_bytes } else { total };
        self.used_bytes as f64 * 100.0 / base as f64
    }
}

/// The number after `label:` on a line of `btrfs filesystem usage -b` (first field only).
fn field_after(text: &str, label: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(label)?;
        let rest = rest.trim_start().strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Parse `btrfs filesystem usage -b`; `None` names the missing line.
pub fn parse_usage(text: &str) -> Result<FsUsage, &'static str> {
    Ok(FsUsage {
        size_bytes: field_after(text, "Device size").ok_or("no `Device size` line")?,
        used_bytes: field_after(text, "Used").ok_or("no `Used` line")?,
        free_bytes: field_after(text, "Free (estimated)").ok_or("no `Free (estimated)` line")?,
    })
}

/// One snapshot line of `btrfs subvolume list -s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolEntry {
    /// Path relative to the filesystem's top level (e.g. `.snapshots/daily`).
    pub path: String,
    /// Creation time as printed (`YYYY-MM-DD HH:MM:SS`, the node's local time which is UTC).
    pub otime: String,
}

/// Parse `btrfs subvolume list -s`: `ID 257 gen 9 cgen 9 top level 256 otime 2026-11-23 03:00:01 path .snapshots/a`.
pub fn parse_snapshot_list(text: &str) -> Vec<SubvolEntry> {
    text.lines()
        .filter_map(|l| {
            let (head, path) = l.split_once(" path ")?;
            let (_, otime) = head.split_once(" otime ")?;
            Some(SubvolEntry {
                path: path.trim().to_string(),
                otime: otime.trim().to_string(),
            })
        })
        .collect()
}

/// What `btrfs scrub status -R` says about a scrub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStatus {
    /// Whether the scrub is still running.
    pub running: bool,
    /// Bytes verified so far (data and trees).
    pub bytes_scrubbed: u64,
    /// Errors found that could not be repaired.
    pub uncorrectable_errors: u64,
    /// Errors found and repaired from a good copy.
    pub corrected_errors: u64,
    /// All other error counters (read, checksum, verify, super) summed.
    pub other_errors: u64,
    /// Whether the scrub was cancelled or aborted.
    pub aborted: bool,
}

/// Parse `btrfs scrub status -R`.
pub fn parse_scrub_status(text: &str) -> Result<ScrubStatus, &'static str> {
    let mut st = ScrubStatus::default();
    let mut saw_status = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        if key == "Status" {
            saw_status = true;
            st.running = value == "running";
            st.aborted = value == "aborted" || value == "interrupted" || value == "cancelled";
            continue;
        }
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "data_bytes_scrubbed" | "tree_bytes_scrubbed" => st.bytes_scrubbed += n,
            "uncorrectable_errors" => st.uncorrectable_errors += n,
            "corrected_errors" => st.corrected_errors += n,
            "read_errors" | "csum_errors" | "verify_errors" | "super_errors" => {
                st.other_errors += n
            }
            _ => {}
        }
    }
    if !saw_status {
        return Err("no `Status` line");
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USAGE: &str = "Overall:
    Device size:\t\t  10737418240
    Device allocated:\t\t   1103101952
    Device unallocated:\t\t   9634316288
    Device missing:\t\t            0
    Device slack:\t\t            0
    Used:\t\t\t     1572864000
    Free (estimated):\t\t   9104539648\t(min: 4287381504)
    Free (statfs, df):\t\t   9103491072
    Data ratio:\t\t\t         1.00
    Metadata ratio:\t\t         2.00
    Global reserve:\t\t      5505024\t(used: 0)
    Multiple profiles:\t\t           no

Data,single: Size:1620000000, Used:1571127296 (96.98%)
   /dev/mapper/cairn--tank-share--docs\t 1620000000
";

    #[test]
    fn usage_is_parsed_from_the_overall_block() {
        let u = parse_usage(USAGE).unwrap();
        assert_eq!(u.size_bytes, 10_737_418_240);
        assert_eq!(u.used_bytes, 1_572_864_000);
        assert_eq!(u.free_bytes, 9_104_539_648);
        let p = u.percent();
        assert!((14.0..15.0).contains(&p), "{p}");
    }

    /// Real output of btrfs-progs 6.2 (Debian 12) on a 256 MiB filesystem made like a
    /// share's (`mkfs.btrfs --nodiscard --csum xxhash`), filled with 1 MiB `dd conv=fsync`
    /// writes: right after a write (stale: not yet committed), after `btrfs filesystem
    /// sync`, and after the write that failed with ENOSPC.
    const STALE: &str = include_str!("testdata/btrfs-usage-256m-stale.txt");
    const COMMITTED: &str = include_str!("testdata/btrfs-usage-256m-committed.txt");
    const ENOSPC: &str = include_str!("testdata/btrfs-usage-256m-enospc.txt");

    #[test]
    fn a_small_share_reaches_critical_before_enospc() {
        let full = parse_usage(ENOSPC).unwrap();
        assert_eq!(full.free_bytes, 0);
        assert!((full.percent() - 100.0).abs() < 1e-9, "{}", full.percent());
        // The device size would call it 69 % full at ENOSPC: never critical.
        let by_device = full.used_bytes as f64 * 100.0 / full.size_bytes as f64;
        assert!(by_device < 70.0, "{by_device}");
        // 4 MiB written after the stale reading: only the committed reading shows them, and
        // it is in the critical band with 3 MiB still writable.
        let stale = parse_usage(STALE).unwrap();
        let now = parse_usage(COMMITTED).unwrap();
        assert!(
            (stale.percent() - 96.02).abs() < 0.01,
            "{}",
            stale.percent()
        );
        assert_eq!(now.used_bytes - stale.used_bytes, 4_227_072);
        assert!((now.percent() - 98.30).abs() < 0.01, "{}", now.percent());
        assert_eq!(now.free_bytes, 3 << 20);
    }

    #[test]
    fn sync_commits_the_share() {
        assert_eq!(
            sync(Path::new("/var/lib/cairn/shares/tank/docs")).display(),
            "btrfs filesystem sync /var/lib/cairn/shares/tank/docs"
        );
    }

    #[test]
    fn usage_without_lines_is_an_error() {
        assert_eq!(parse_usage("Overall:\n"), Err("no `Device size` line"));
    }

    #[test]
    fn snapshot_list_gives_path_and_time() {
        let text = "ID 257 gen 12 cgen 12 top level 5 otime 2026-11-23 03:00:01 path .snapshots\n\
                    ID 258 gen 14 cgen 14 top level 257 otime 2026-11-23 03:10:00 path .snapshots/before upgrade\n";
        let v = parse_snapshot_list(text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].path, ".snapshots/before upgrade");
        assert_eq!(v[1].otime, "2026-11-23 03:10:00");
    }

    #[test]
    fn scrub_status_counts_bytes_and_errors() {
        let text = "UUID:             4a9f\nScrub started:    Mon Nov 23 03:00:00 2026\n\
                    Status:           finished\nDuration:         0:00:01\n\
                    \tdata_extents_scrubbed: 3\n\tdata_bytes_scrubbed: 12288\n\
                    \ttree_bytes_scrubbed: 278528\n\tread_errors: 0\n\tcsum_errors: 2\n\
                    \tverify_errors: 0\n\tuncorrectable_errors: 1\n\tcorrected_errors: 1\n";
        let s = parse_scrub_status(text).unwrap();
        assert!(!s.running && !s.aborted);
        assert_eq!(s.bytes_scrubbed, 290_816);
        assert_eq!(s.uncorrectable_errors, 1);
        assert_eq!(s.corrected_errors, 1);
        assert_eq!(s.other_errors, 2);
        let running = parse_scrub_status("Status: running\n").unwrap();
        assert!(running.running);
        assert!(parse_scrub_status("nothing").is_err());
    }

    #[test]
    fn command_lines_are_the_documented_ones() {
        let dev = Path::new("/dev/cairn-tank/share-docs");
        let mnt = Path::new("/var/lib/cairn/shares/tank/docs");
        assert_eq!(
            mkfs(dev, "docs").display(),
            "mkfs.btrfs -q -f --nodiscard --csum xxhash -L docs /dev/cairn-tank/share-docs"
        );
        assert_eq!(
            mount(dev, mnt).display(),
            "mount -t btrfs -o noatime,discard=async /dev/cairn-tank/share-docs /var/lib/cairn/shares/tank/docs"
        );
        assert_eq!(
            snapshot_readonly(mnt, &mnt.join(".snapshots/a")).display(),
            "btrfs subvolume snapshot -r /var/lib/cairn/shares/tank/docs /var/lib/cairn/shares/tank/docs/.snapshots/a"
        );
    }
}
