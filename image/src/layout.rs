//! Pure disk layout planner: partition sizes in, a 1 MiB-aligned GPT partition table out.

use serde::Serialize;

use crate::error::ImageError;

/// One mebibyte in bytes.
pub const MIB: u64 = 1024 * 1024;
/// Sector size the image is written with.
pub const SECTOR: u64 = 512;

/// GPT partition type GUIDs (Discoverable Partitions Specification).
pub const TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const TYPE_ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
pub const TYPE_LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionRole {
    Esp,
    RootA,
    RootB,
    State,
}

impl PartitionRole {
    /// The PARTLABEL fixed by the boot contract.
    pub fn label(self) -> &'static str {
        match self {
            Self::Esp => "cairn-esp",
            Self::RootA => "cairn-root-a",
            Self::RootB => "cairn-root-b",
            Self::State => "cairn-state",
        }
    }

    /// The GPT type GUID.
    pub fn type_guid(self) -> &'static str {
        match self {
            Self::Esp => TYPE_ESP,
            Self::RootA | Self::RootB => TYPE_ROOT_X86_64,
            Self::State => TYPE_LINUX_FS,
        }
    }
}

/// Requested partition sizes in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutSpec {
    pub esp_mib: u64,
    pub root_mib: u64,
    pub state_mib: u64,
}

impl LayoutSpec {
    /// Sizes from the boot contract (docs/decisions/0001-boot-contract.md).
    pub const CONTRACT: LayoutSpec = LayoutSpec {
        esp_mib: 256,
        root_mib: 1024,
        state_mib: 1024,
    };
    /// Smallest ESP mkfs.vfat makes as FAT32 with 512-byte clusters.
    pub const MIN_ESP_MIB: u64 = 40;
    pub const MIN_ROOT_MIB: u64 = 1;
    pub const MIN_STATE_MIB: u64 = 16;
}

/// One planned partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub number: u32,
    pub role: PartitionRole,
    pub label: &'static str,
    pub type_guid: &'static str,
    pub offset_bytes: u64,
    pub size_bytes: u64,
}

impl Partition {
    /// First sector.
    pub fn start_sector(&self) -> u64 {
        self.offset_bytes / SECTOR
    }

    /// Length in sectors.
    pub fn sectors(&self) -> u64 {
        self.size_bytes / SECTOR
    }

    /// Offset in MiB (exact: partitions are MiB-aligned).
    pub fn offset_mib(&self) -> u64 {
        self.offset_bytes / MIB
    }
}

/// The planned disk: partitions in order and the total image size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub total_bytes: u64,
    pub partitions: Vec<Partition>,
}

impl Layout {
    /// Plans the disk: 1 MiB for the primary GPT, the partitions back to back on MiB
    /// boundaries, and 1 MiB at the end for the backup GPT.
    pub fn plan(spec: LayoutSpec) -> Result<Self, ImageError> {
        check("esp_mib", spec.esp_mib, LayoutSpec::MIN_ESP_MIB)?;
        check("root_mib", spec.root_mib, LayoutSpec::MIN_ROOT_MIB)?;
        check("state_mib", spec.state_mib, LayoutSpec::MIN_STATE_MIB)?;
        let sizes = [
            (PartitionRole::Esp, spec.esp_mib),
            (PartitionRole::RootA, spec.root_mib),
            (PartitionRole::RootB, spec.root_mib),
            (PartitionRole::State, spec.state_mib),
        ];
        let mut offset = MIB;
        let mut partitions = Vec::with_capacity(sizes.len());
        for (number, (role, mib)) in (1u32..).zip(sizes) {
            partitions.push(Partition {
                number,
                role,
                label: role.label(),
                type_guid: role.type_guid(),
                offset_bytes: offset,
                size_bytes: mib * MIB,
            });
            offset += mib * MIB;
        }
        Ok(Self {
            total_bytes: offset + MIB,
            partitions,
        })
    }

    /// The partition with this role (every role is planned exactly once).
    pub fn get(&self, role: PartitionRole) -> &Partition {
        self.partitions
            .iter()
            .find(|p| p.role == role)
            .expect("Layout::plan creates every role")
    }

    /// The sfdisk script creating this table.
    pub fn sfdisk_script(&self) -> String {
        let mut script = String::from("label: gpt\nunit: sectors\nfirst-lba: 2048\n");
        for p in &self.partitions {
            script.push_str(&format!(
                "start={}, size={}, type={}, name=\"{}\"\n",
                p.start_sector(),
                p.sectors(),
                p.type_guid,
                p.label
            ));
        }
        script
    }
}

fn check(field: &'static str, got_mib: u64, min_mib: u64) -> Result<(), ImageError> {
    if got_mib < min_mib {
        return Err(ImageError::PartitionTooSmall {
            field,
            min_mib,
            got_mib,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_layout_is_aligned_contiguous_and_labelled() {
        let layout = Layout::plan(LayoutSpec::CONTRACT).unwrap();
        let labels: Vec<_> = layout.partitions.iter().map(|p| p.label).collect();
        assert_eq!(
            labels,
            ["cairn-esp", "cairn-root-a", "cairn-root-b", "cairn-state"]
        );
        let offsets: Vec<_> = layout.partitions.iter().map(|p| p.offset_mib()).collect();
        assert_eq!(offsets, [1, 257, 1281, 2305]);
        assert_eq!(layout.total_bytes, (2305 + 1024 + 1) * MIB);
        for p in &layout.partitions {
            assert_eq!(p.offset_bytes % MIB, 0, "{} not aligned", p.label);
        }
        for pair in layout.partitions.windows(2) {
            assert_eq!(
                pair[0].offset_bytes + pair[0].size_bytes,
                pair[1].offset_bytes
            );
        }
    }

    #[test]
    fn types_follow_the_discoverable_partitions_spec() {
        let layout = Layout::plan(LayoutSpec::CONTRACT).unwrap();
        assert_eq!(layout.get(PartitionRole::Esp).type_guid, TYPE_ESP);
        assert_eq!(layout.get(PartitionRole::RootB).type_guid, TYPE_ROOT_X86_64);
        assert_eq!(layout.get(PartitionRole::State).type_guid, TYPE_LINUX_FS);
    }

    #[test]
    fn too_small_partitions_name_the_field() {
        let err = Layout::plan(LayoutSpec {
            esp_mib: 8,
            ..LayoutSpec::CONTRACT
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "layout: esp_mib must be at least 40 MiB, got 8 MiB"
        );
        let err = Layout::plan(LayoutSpec {
            root_mib: 0,
            ..LayoutSpec::CONTRACT
        })
        .unwrap_err();
        assert!(err.to_string().contains("root_mib"), "{err}");
    }

    #[test]
    fn sfdisk_script_uses_sectors_and_names() {
        let layout = Layout::plan(LayoutSpec {
            esp_mib: 64,
            root_mib: 10,
            state_mib: 20,
        })
        .unwrap();
        assert_eq!(
            layout.sfdisk_script(),
            "label: gpt\nunit: sectors\nfirst-lba: 2048\n\
             start=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"cairn-esp\"\n\
             start=133120, size=20480, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"cairn-root-a\"\n\
             start=153600, size=20480, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=\"cairn-root-b\"\n\
             start=174080, size=40960, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"cairn-state\"\n"
        );
    }
}
