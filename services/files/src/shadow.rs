//! Windows "Previous Versions" for the shares' snapshots: Samba's `shadow_copy2` lists the
//! share's `.snapshots` directory and takes entries named by [`GMT_FORMAT`]. Our snapshots
//! keep their own names (manual ones are free text, decision 0007), so next to each one we
//! keep a symlink `@GMT-YYYY.MM.DD-HH.MM.SS` → `<name>` from its btrfs creation time (UTC).
//! [`sync`] makes the links match the snapshots; it runs after every snapshot change.

use crate::error::FilesError;
use std::collections::BTreeMap;
use std::path::Path;

/// The snapshot directory inside a share (storage's `SNAPSHOT_DIR`), relative to its root.
pub const SNAPDIR: &str = ".snapshots";
/// The names `shadow_copy2` reads (`shadow:format`), in UTC.
pub const GMT_FORMAT: &str = "@GMT-%Y.%m.%d-%H.%M.%S";
/// The prefix of every link we own.
pub const PREFIX: &str = "@GMT-";

/// The `@GMT-` name of a creation time in Unix seconds (UTC).
pub fn gmt_name(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let (y, m, d) = cairn_core::civil::date_from_days(days);
    let s = unix % 86_400;
    format!(
        "{PREFIX}{y:04}.{m:02}.{d:02}-{:02}.{:02}.{:02}",
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

/// The links wanted for `snapshots` (name, creation time in Unix seconds): `@GMT-` name →
/// snapshot name. Two taken in the same second: the later (by name) gets the next free second.
pub fn plan(snapshots: &[(String, u64)]) -> BTreeMap<String, String> {
    let mut sorted: Vec<&(String, u64)> = snapshots.iter().collect();
    sorted.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut links = BTreeMap::new();
    for (name, created) in sorted {
        let mut t = *created;
        while links.contains_key(&gmt_name(t)) {
            t += 1;
        }
        links.insert(gmt_name(t), name.clone());
    }
    links
}

/// What [`sync`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Make the `@GMT-` links in `snapdir` match its snapshot directories, reading each one's
/// creation time with `created` (the btrfs `otime`: statx's birth time).
pub fn sync_with(
    snapdir: &Path,
    created: impl Fn(&Path) -> std::io::Result<u64>,
) -> Result<SyncReport, FilesError> {
    let io = |path: &Path, source| FilesError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut snapshots = Vec::new();
    let mut links = BTreeMap::new();
    for entry in std::fs::read_dir(snapdir).map_err(|e| io(snapdir, e))? {
        let entry = entry.map_err(|e| io(snapdir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        if name.starts_with(PREFIX) && kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
            links.insert(name, target.to_string_lossy().into_owned());
        } else if kind.is_dir() && !name.starts_with('.') && !name.starts_with(PREFIX) {
            snapshots.push((name, created(&path).map_err(|e| io(&path, e))?));
        }
    }
    let want = plan(&snapshots);
    let mut report = SyncReport::default();
    for (link, target) in &links {
        if want.get(link) != Some(target) {
            let path = snapdir.join(link);
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            report.removed.push(link.clone());
        }
    }
    for (link, target) in &want {
        if links.get(link) != Some(target) {
            // Made aside and renamed over: a reader never sees a half-made link.
            let tmp = snapdir.join(format!(".{link}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(target, &tmp).map_err(|e| io(&tmp, e))?;
            let path = snapdir.join(link);
            std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
            report.added.push(link.clone());
        }
    }
    Ok(report)
}

/// [`sync_with`] reading the birth time the kernel reports (on btrfs: the subvolume's otime).
pub fn sync(snapdir: &Path) -> Result<SyncReport, FilesError> {
    sync_with(snapdir, |p| {
        let born = std::fs::metadata(p)?.created()?;
        born.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_utc_time_in_samba_s_default_format() {
        // 2026-12-07 16:45:09 UTC
        assert_eq!(gmt_name(1_796_661_909), "@GMT-2026.12.07-16.45.09");
        assert_eq!(gmt_name(0), "@GMT-1970.01.01-00.00.00");
    }

    #[test]
    fn snapshots_of_the_same_second_get_distinct_names() {
        let p = plan(&[
            ("b".into(), 100),
            ("a".into(), 100),
            ("c".into(), 101),
            ("manual".into(), 50),
        ]);
        let v: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            v,
            [
                ("@GMT-1970.01.01-00.00.50", "manual"),
                ("@GMT-1970.01.01-00.01.40", "a"),
                ("@GMT-1970.01.01-00.01.41", "b"),
                ("@GMT-1970.01.01-00.01.42", "c"),
            ]
        );
    }

    #[test]
    fn sync_adds_links_for_new_snapshots_and_drops_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in ["before-upgrade", "auto-hourly-20261207t1600z"] {
            std::fs::create_dir(d.join(n)).unwrap();
        }
        let times = |p: &Path| -> std::io::Result<u64> {
            Ok(match p.file_name().unwrap().to_str().unwrap() {
                "before-upgrade" => 1_796_600_000,
                "auto-hourly-20261207t1600z" => 1_796_659_200,
                _ => 1_796_700_000,
            })
        };
        let r = sync_with(d, times).unwrap();
        assert_eq!(
            r.added,
            ["@GMT-2026.12.06-23.33.20", "@GMT-2026.12.07-16.00.00"]
        );
        assert_eq!(
            std::fs::read_link(d.join("@GMT-2026.12.06-23.33.20")).unwrap(),
            Path::new("before-upgrade")
        );
        // The link reads through to the snapshot's files.
        std::fs::write(d.join("before-upgrade/f"), "x").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("@GMT-2026.12.06-23.33.20/f")).unwrap(),
            "x"
        );
        // Nothing to do the second time.
        assert_eq!(sync_with(d, times).unwrap(), SyncReport::default());
        // A deleted snapshot loses its link; a new one gains one.
        std::fs::remove_dir_all(d.join("before-upgrade")).unwrap();
        std::fs::create_dir(d.join("v2")).unwrap();
        let r = sync_with(d, times).unwrap();
        assert_eq!(r.removed, ["@GMT-2026.12.06-23.33.20"]);
        assert_eq!(r.added, ["@GMT-2026.12.08-03.20.00"]);
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "@GMT-2026.12.07-16.00.00",
                "@GMT-2026.12.08-03.20.00",
                "auto-hourly-20261207t1600z",
                "v2"
            ]
        );
    }

    #[test]
    fn sync_reads_real_birth_times_where_the_filesystem_has_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("v1")).unwrap();
        match std::fs::metadata(dir.path().join("v1")).and_then(|m| m.created()) {
            Ok(_) => {
                let r = sync(dir.path()).unwrap();
                assert_eq!(r.added.len(), 1);
                assert!(r.added[0].starts_with(PREFIX));
            }
            Err(e) => eprintln!("no birth time here ({e}): skipped"),
        }
    }
}
