//! The pure pool planner: a name, a level and chosen disks → checks, command lines and usable capacity.

use crate::error::StorageError;
use crate::inventory::Disk;
use crate::level::Level;
use crate::names;
use crate::records::Records;
use cairn_core::command::Invocation;
use serde::Serialize;

/// Share of the volume group given to the thin pool; the rest stays free for thin-pool
/// metadata growth and LVM's metadata spare.
pub const THIN_POOL_PERCENT: u8 = 90;

/// The thin pool's smallest chunk (LVM's "performance" policy): every chunk is one mapping
/// in the pool's metadata and one split of a large I/O, so sequential share and volume I/O
/// pays the thin layer once per 512 KiB instead of once per 64 KiB (LVM's default on pools
/// under ~128 GiB). See docs/decisions/0010-thin-pool-chunk-size.md.
pub const THIN_CHUNK_MIN_KIB: u64 = 512;

/// Chunks a thin pool may have before its chunk size doubles: 2^21 chunks keep the pool's
/// mappings in about 128 MiB of metadata (64 bytes each), LVM's own target.
pub const THIN_MAX_CHUNKS: u64 = 1 << 21;

/// The largest chunk dm-thin takes (1 GiB).
pub const THIN_CHUNK_MAX_KIB: u64 = 1 << 20;

/// The chunk size (KiB) of a thin pool of `pool_bytes`: [`THIN_CHUNK_MIN_KIB`], doubled while
/// the pool would have more than [`THIN_MAX_CHUNKS`] chunks.
pub fn thin_chunk_kib(pool_bytes: u64) -> u64 {
    let mut kib = THIN_CHUNK_MIN_KIB;
    while kib < THIN_CHUNK_MAX_KIB && pool_bytes / (kib << 10) > THIN_MAX_CHUNKS {
        kib *= 2;
    }
    kib
}

/// The smallest disk a pool takes.
pub const MIN_DISK_BYTES: u64 = 32 << 20;

/// One disk chosen for a pool, with what `wipefs` found on it just now.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub disk: Disk,
    /// Signatures found by `wipefs --no-act` on the disk (empty = blank).
    pub signatures: Vec<String>,
}

/// A validated pool creation: what will run and what the admin gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatePlan {
    pub name: String,
    pub level: Level,
    /// Member disk ids, in order.
    pub disks: Vec<String>,
    /// Sum of the members' sizes.
    pub raw_bytes: u64,
    /// What the level leaves usable, before md, LVM and thin-pool metadata.
    pub usable_bytes: u64,
    /// Disks that may fail without data loss.
    pub redundancy: usize,
    /// Notes for the admin (mixed sizes waste space, …).
    pub notes: Vec<String>,
    /// The command lines, in order (shown in dry runs).
    #[serde(skip)]
    pub commands: Vec<Invocation>,
    /// The same, as text.
    pub command_lines: Vec<String>,
}

/// Whether `name` is a valid pool name: 1–32 of `a-z 0-9 -`, starting with a letter.
pub fn validate_name(name: &str) -> Result<(), StorageError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > 32 {
        return Err(StorageError::invalid("name", "must be 1 to 32 characters"));
    }
    if !ok_chars || !name.as_bytes()[0].is_ascii_lowercase() || name.ends_with('-') {
        return Err(StorageError::invalid(
            "name",
            "must be lowercase letters, digits and '-', start with a letter and not end with '-'",
        ));
    }
    if name == "plan" {
        return Err(StorageError::invalid(
            "name",
            "\"plan\" is reserved (POST /api/v1/pools/plan)",
        ));
    }
    Ok(())
}

/// Why `disk` may not join a pool (or be wiped): boot disk, pool member, mounted, in use.
pub fn refuse_in_use(disk: &Disk, records: &Records) -> Option<String> {
    if disk.boot {
        return Some("is the boot disk".into());
    }
    if let Some(p) = records.pool_of(&disk.id) {
        return Some(format!("is a member of pool {}", p.name));
    }
    if !disk.mounts.is_empty() {
        return Some(format!("is mounted at {}", disk.mounts.join(", ")));
    }
    if !disk.holders.is_empty() {
        return Some(format!("is in use by {}", disk.holders.join(", ")));
    }
    None
}

/// Check that `cand` can join a pool; the error names `field` (`disks[2]`).
pub fn check_candidate(
    field: &str,
    cand: &Candidate,
    records: &Records,
) -> Result<(), StorageError> {
    let d = &cand.disk;
    if let Some(why) = refuse_in_use(d, records) {
        return Err(StorageError::invalid(field, format!("disk {} {why}", d.id)));
    }
    let mut sigs: Vec<String> = cand.signatures.clone();
    if sigs.is_empty() {
        sigs.extend(d.signatures.iter().cloned());
    }
    if !d.partitions.is_empty() {
        sigs.push(format!("{} partitions", d.partitions.len()));
    }
    if !sigs.is_empty() {
        return Err(StorageError::invalid(
            field,
            format!(
                "disk {} holds data ({}); wipe it first, confirming with its serial",
                d.id,
                sigs.join(", ")
            ),
        ));
    }
    if d.size_bytes < MIN_DISK_BYTES {
        return Err(StorageError::invalid(
            field,
            format!("disk {} is smaller than {} MiB", d.id, MIN_DISK_BYTES >> 20),
        ));
    }
    Ok(())
}

/// Plan pool `name` of `level` over `cands` (already resolved from the request's `disks`).
pub fn plan_create(
    name: &str,
    level: Level,
    cands: &[Candidate],
    records: &Records,
) -> Result<CreatePlan, StorageError> {
    validate_name(name)?;
    name_free(name, records)?;
    let n = cands.len();
    if n < level.min_disks() {
        return Err(StorageError::invalid(
            "disks",
            format!(
                "{level} needs at least {} disks, {n} given",
                level.min_disks()
            ),
        ));
    }
    if let Some(max) = level.max_disks().filter(|m| n > *m) {
        return Err(StorageError::invalid(
            "disks",
            format!("{level} takes at most {max} disk, {n} given"),
        ));
    }
    if level == Level::Raid10 && !n.is_multiple_of(2) {
        return Err(StorageError::invalid(
            "disks",
            "raid10 needs an even number of disks",
        ));
    }
    for (i, c) in cands.iter().enumerate() {
        let field = format!("disks[{i}]");
        if cands[..i].iter().any(|o| o.disk.id == c.disk.id) {
            return Err(StorageError::invalid(
                field,
                format!("disk {} is listed twice", c.disk.id),
            ));
        }
        check_candidate(&field, c, records)?;
    }
    let smallest = cands.iter().map(|c| c.disk.size_bytes).min().unwrap_or(0);
    let largest = cands.iter().map(|c| c.disk.size_bytes).max().unwrap_or(0);
    let mut notes = Vec::new();
    if largest > smallest + smallest / 20 {
        notes.push(format!(
            "disks differ in size: every member is used up to the smallest ({} MiB), {} MiB stay unused",
            smallest >> 20,
            (cands.iter().map(|c| c.disk.size_bytes - smallest).sum::<u64>()) >> 20
        ));
    }
    if level == Level::Single {
        notes.push("single has no redundancy: losing the disk loses the pool; add a disk later to make it a mirror".into());
    }
    let commands = create_commands(name, level, cands);
    Ok(CreatePlan {
        name: name.to_string(),
        level,
        disks: cands.iter().map(|c| c.disk.id.clone()).collect(),
        raw_bytes: cands.iter().map(|c| c.disk.size_bytes).sum(),
        usable_bytes: level.usable_bytes(n, smallest),
        redundancy: level.redundancy(),
        notes,
        command_lines: commands.iter().map(Invocation::display).collect(),
        commands,
    })
}

/// Whether no pool is named `name` yet.
fn name_free(name: &str, records: &Records) -> Result<(), StorageError> {
    if records.get(name).is_some() {
        return Err(StorageError::invalid(
            "name",
            format!("pool {name} already exists"),
        ));
    }
    Ok(())
}

/// Whether `plan`'s name and disks are still free in `records` (re-checked when the plan runs,
/// after other requests may have created a pool).
pub fn still_free(plan: &CreatePlan, records: &Records) -> Result<(), StorageError> {
    name_free(&plan.name, records)?;
    for (i, id) in plan.disks.iter().enumerate() {
        if let Some(p) = records.pool_of(id) {
            return Err(StorageError::invalid(
                format!("disks[{i}]"),
                format!("disk {id} is a member of pool {}", p.name),
            ));
        }
    }
    Ok(())
}

/// The device path a command gets for `disk`: its by-id link when it has one (stable while
/// the command runs), else its kernel node.
pub fn disk_path(disk: &Disk) -> String {
    disk.by_id
        .as_ref()
        .unwrap_or(&disk.dev)
        .display()
        .to_string()
}

/// The commands that build the pool: md array with an internal write-intent bitmap, the PV,
/// the VG `cairn-<name>` and the thin pool `thin`.
pub fn create_commands(name: &str, level: Level, cands: &[Candidate]) -> Vec<Invocation> {
    let md = names::md_path(name).display().to_string();
    let mut args = vec![
        "--create".to_string(),
        md.clone(),
        "--run".into(),
        "--metadata=1.2".into(),
        format!("--level={}", level.md_level()),
        format!("--raid-devices={}", cands.len()),
        "--bitmap=internal".into(),
        format!("--name={}", names::md_name(name)),
    ];
    if level == Level::Single {
        // mdadm asks for --force to make a one-disk mirror.
        args.push("--force".into());
    }
    args.extend(cands.iter().map(|c| disk_path(&c.disk)));
    let vg = names::vg_name(name);
    let member = cands.iter().map(|c| c.disk.size_bytes).min().unwrap_or(0);
    let pool_bytes = level.usable_bytes(cands.len(), member) / 100 * u64::from(THIN_POOL_PERCENT);
    vec![
        Invocation::new("mdadm", args),
        Invocation::new("pvcreate", ["--yes".to_string(), md.clone()]),
        Invocation::new("vgcreate", [vg.clone(), md]),
        thin_pool_create(&vg, pool_bytes),
    ]
}

/// `lvcreate` of the thin pool over [`THIN_POOL_PERCENT`] of the volume group (about
/// `pool_bytes`), with the chunk size of [`thin_chunk_kib`]. Zeroing of new chunks stays on
/// (LVM's default): a new volume never shows what a deleted one held.
pub fn thin_pool_create(vg: &str, pool_bytes: u64) -> Invocation {
    Invocation::new(
        "lvcreate",
        [
            "--yes".to_string(),
            "--type".into(),
            "thin-pool".into(),
            "--extents".into(),
            format!("{THIN_POOL_PERCENT}%VG"),
            "--chunksize".into(),
            format!("{}k", thin_chunk_kib(pool_bytes)),
            "--name".into(),
            names::THIN_POOL_LV.into(),
            vg.to_string(),
        ],
    )
}

/// Disks for tests of this crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::inventory::Disk;
    use cairn_core::disk::DiskBus;
    use std::path::PathBuf;

    /// A blank virtio disk `id` of `mib` MiB with a by-id link and serial `S-<id>`.
    pub(crate) fn disk(id: &str, mib: u64) -> Disk {
        Disk {
            id: id.into(),
            name: id.into(),
            dev: PathBuf::from(format!("/dev/{id}")),
            by_id: Some(PathBuf::from(format!("/dev/disk/by-id/{id}"))),
            wwn: None,
            serial: Some(format!("S-{id}")),
            model: None,
            size_bytes: mib << 20,
            bus: DiskBus::Virtio,
            rotational: true,
            removable: false,
            partitions: vec![],
            signatures: vec![],
            holders: vec![],
            mounts: vec![],
            boot: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::disk;
    use super::*;

    fn blank(ids: &[&str]) -> Vec<Candidate> {
        ids.iter()
            .map(|id| Candidate {
                disk: disk(id, 256),
                signatures: vec![],
            })
            .collect()
    }

    #[test]
    fn raid5_plan_has_commands_and_capacity() {
        let p = plan_create(
            "tank",
            Level::Raid5,
            &blank(&["a", "b", "c", "d"]),
            &Records::default(),
        )
        .unwrap();
        assert_eq!(p.usable_bytes, 3 * (256 << 20));
        assert_eq!(p.raw_bytes, 4 * (256 << 20));
        assert_eq!(p.redundancy, 1);
        assert_eq!(
            p.command_lines,
            [
                "mdadm --create /dev/md/tank --run --metadata=1.2 --level=5 --raid-devices=4 --bitmap=internal --name=cairn-tank /dev/disk/by-id/a /dev/disk/by-id/b /dev/disk/by-id/c /dev/disk/by-id/d",
                "pvcreate --yes /dev/md/tank",
                "vgcreate cairn-tank /dev/md/tank",
                "lvcreate --yes --type thin-pool --extents 90%VG --chunksize 512k --name thin cairn-tank",
            ]
        );
    }

    #[test]
    fn thin_chunks_are_512k_and_grow_with_the_pool() {
        assert_eq!(thin_chunk_kib(0), 512);
        assert_eq!(thin_chunk_kib(3 << 30), 512);
        // 1 TiB is exactly 2^21 chunks of 512 KiB: still 512 KiB.
        assert_eq!(thin_chunk_kib(1 << 40), 512);
        assert_eq!(thin_chunk_kib((1 << 40) + (1 << 20)), 1024);
        // 20 TiB: 16 MiB chunks keep the mappings at ~1.3 million.
        assert_eq!(thin_chunk_kib(20 << 40), 16384);
        assert_eq!(thin_chunk_kib(u64::MAX), THIN_CHUNK_MAX_KIB);
    }

    #[test]
    fn single_is_a_forced_one_disk_mirror() {
        let p = plan_create("one", Level::Single, &blank(&["a"]), &Records::default()).unwrap();
        assert!(p.command_lines[0].contains("--level=1 --raid-devices=1"));
        assert!(p.command_lines[0].contains("--force"));
        let e = plan_create(
            "one",
            Level::Single,
            &blank(&["a", "b"]),
            &Records::default(),
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("disks"));
    }

    #[test]
    fn minimum_disk_counts_name_the_field() {
        for (level, n) in [
            (Level::Raid1, 1),
            (Level::Raid5, 2),
            (Level::Raid6, 3),
            (Level::Raid10, 1),
        ] {
            let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let e = plan_create("p", level, &blank(&refs), &Records::default()).unwrap_err();
            assert_eq!(e.field(), Some("disks"), "{level}");
            assert!(
                e.to_string()
                    .contains(&format!("at least {}", level.min_disks())),
                "{e}"
            );
        }
        let e = plan_create(
            "p",
            Level::Raid10,
            &blank(&["a", "b", "c"]),
            &Records::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("even"));
    }

    #[test]
    fn refused_disks_name_their_index_and_reason() {
        let mut c = blank(&["a", "b", "c"]);
        c[2].signatures = vec!["ext4".into()];
        let e = plan_create("p", Level::Raid5, &c, &Records::default()).unwrap_err();
        assert_eq!(e.field(), Some("disks[2]"));
        assert!(e.to_string().contains("ext4") && e.to_string().contains("wipe"));

        let mut c = blank(&["a", "b", "c"]);
        c[1].disk.boot = true;
        let e = plan_create("p", Level::Raid5, &c, &Records::default()).unwrap_err();
        assert_eq!(e.field(), Some("disks[1]"));
        assert!(e.to_string().contains("boot disk"));

        let mut c = blank(&["a", "b", "c"]);
        c[0].disk.mounts = vec!["/mnt".into()];
        assert_eq!(
            plan_create("p", Level::Raid5, &c, &Records::default())
                .unwrap_err()
                .field(),
            Some("disks[0]")
        );

        let c = blank(&["a", "b", "a"]);
        let e = plan_create("p", Level::Raid5, &c, &Records::default()).unwrap_err();
        assert_eq!(e.field(), Some("disks[2]"));
        assert!(e.to_string().contains("twice"));

        let records = Records {
            pools: vec![crate::records::PoolRecord {
                name: "old".into(),
                level: Level::Raid1,
                md_uuid: "u".into(),
                members: vec!["b".into()],
                created: 0,
            }],
        };
        let e = plan_create("p", Level::Raid5, &blank(&["a", "b", "c"]), &records).unwrap_err();
        assert_eq!(e.field(), Some("disks[1]"));
        assert!(e.to_string().contains("member of pool old"));
        let e = plan_create("old", Level::Raid5, &blank(&["x", "y", "z"]), &records).unwrap_err();
        assert_eq!(e.field(), Some("name"));
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "",
            "plan",
            "Tank",
            "1tank",
            "tank-",
            "ta nk",
            &"a".repeat(33),
        ] {
            assert_eq!(
                validate_name(bad).unwrap_err().field(),
                Some("name"),
                "{bad:?}"
            );
        }
        validate_name("tank-2").unwrap();
    }

    #[test]
    fn mixed_sizes_are_noted() {
        let mut c = blank(&["a", "b"]);
        c[1].disk.size_bytes = 512 << 20;
        let p = plan_create("m", Level::Raid1, &c, &Records::default()).unwrap();
        assert_eq!(p.usable_bytes, 256 << 20);
        assert!(p.notes[0].contains("differ in size"));
    }

    #[test]
    fn a_carried_plan_is_refused_once_its_name_or_disks_are_taken() {
        let p = plan_create(
            "tank",
            Level::Raid1,
            &blank(&["a", "b"]),
            &Records::default(),
        )
        .unwrap();
        still_free(&p, &Records::default()).unwrap();
        let taken = |name: &str, members: &[&str]| Records {
            pools: vec![crate::records::PoolRecord {
                name: name.into(),
                level: Level::Raid1,
                md_uuid: "u".into(),
                members: members.iter().map(|m| m.to_string()).collect(),
                created: 0,
            }],
        };
        let e = still_free(&p, &taken("tank", &["x"])).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e = still_free(&p, &taken("other", &["b"])).unwrap_err();
        assert_eq!(e.field(), Some("disks[1]"));
    }
}
