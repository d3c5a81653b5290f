//! How pools, volume groups, logical volumes and mount points are named on the system.
//!
//! These names are a contract between the pool code, the share/volume code, the VM domain
//! and the lab tests; change them only together.

use std::path::{Path, PathBuf};

/// Where shares are mounted: `<root>/<pool>/<share>` (on STATE, which is writable).
pub const SHARES_ROOT: &str = "/var/lib/cairn/shares";

/// The md array of pool `pool`: `/dev/md/<pool>` (the array's name is `cairn-<pool>`).
pub fn md_path(pool: &str) -> PathBuf {
    PathBuf::from(format!("/dev/md/{pool}"))
}

/// The md array name recorded in its superblock (`mdadm --name`).
pub fn md_name(pool: &str) -> String {
    format!("cairn-{pool}")
}

/// The LVM volume group on pool `pool`'s array.
pub fn vg_name(pool: &str) -> String {
    format!("cairn-{pool}")
}

/// The thin pool LV inside the volume group.
pub const THIN_POOL_LV: &str = "thin";

/// The thin LV holding share `share`'s btrfs.
pub fn share_lv(share: &str) -> String {
    format!("share-{share}")
}

/// The thin LV of VM volume `volume`.
pub fn volume_lv(volume: &str) -> String {
    format!("vol-{volume}")
}

/// The device node of LV `lv` in pool `pool`.
pub fn lv_path(pool: &str, lv: &str) -> PathBuf {
    PathBuf::from(format!("/dev/{}/{lv}", vg_name(pool)))
}

/// Where share `share` of pool `pool` is mounted, under `root` (normally [`SHARES_ROOT`]).
pub fn share_mount(root: &Path, pool: &str, share: &str) -> PathBuf {
    root.join(pool).join(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        assert_eq!(md_path("tank"), PathBuf::from("/dev/md/tank"));
        assert_eq!(vg_name("tank"), "cairn-tank");
        assert_eq!(
            lv_path("tank", &volume_lv("web")),
            PathBuf::from("/dev/cairn-tank/vol-web")
        );
        assert_eq!(
            share_mount(Path::new(SHARES_ROOT), "tank", "docs"),
            PathBuf::from("/var/lib/cairn/shares/tank/docs")
        );
    }
}
