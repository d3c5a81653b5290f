//! The ext4 superblock's clean/dirty state, read straight from a partition inside an image file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::LabError;

/// Byte offset of the superblock inside the filesystem.
const SUPERBLOCK_OFFSET: u64 = 1024;
const MAGIC: u16 = 0xEF53;
/// `s_state` bit: cleanly unmounted.
const STATE_VALID_FS: u16 = 0x0001;
/// `s_state` bit: errors detected.
const STATE_ERROR_FS: u16 = 0x0002;
/// `s_feature_incompat` bit: the journal needs recovery (mounted, not cleanly unmounted).
const INCOMPAT_RECOVER: u32 = 0x0004;

/// What the superblock says about how the filesystem was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuperblockState {
    /// `s_state` (0x3A).
    pub state: u16,
    /// `s_feature_incompat` (0x60).
    pub feature_incompat: u32,
}

impl SuperblockState {
    /// Cleanly unmounted: valid, no errors, no journal recovery pending.
    pub fn is_clean(&self) -> bool {
        self.state & STATE_VALID_FS != 0
            && self.state & STATE_ERROR_FS == 0
            && self.feature_incompat & INCOMPAT_RECOVER == 0
    }

    /// Journal recovery pending (the filesystem was not unmounted).
    pub fn needs_recovery(&self) -> bool {
        self.feature_incompat & INCOMPAT_RECOVER != 0
    }
}

/// Parses a 1024-byte superblock.
pub fn parse(sb: &[u8]) -> Option<SuperblockState> {
    if sb.len() < 0x64 {
        return None;
    }
    let magic = u16::from_le_bytes([sb[0x38], sb[0x39]]);
    if magic != MAGIC {
        return None;
    }
    Some(SuperblockState {
        state: u16::from_le_bytes([sb[0x3A], sb[0x3B]]),
        feature_incompat: u32::from_le_bytes([sb[0x60], sb[0x61], sb[0x62], sb[0x63]]),
    })
}

/// Reads the superblock of the ext4 filesystem at byte `offset` of `image`.
pub fn read_state(image: &Path, offset: u64) -> Result<SuperblockState, LabError> {
    let file = File::open(image).map_err(|source| LabError::Io {
        what: "open image to read the ext4 superblock",
        path: image.to_path_buf(),
        source,
    })?;
    let mut sb = [0u8; 1024];
    file.read_exact_at(&mut sb, offset + SUPERBLOCK_OFFSET)
        .map_err(|source| LabError::Io {
            what: "read the ext4 superblock",
            path: image.to_path_buf(),
            source,
        })?;
    parse(&sb).ok_or_else(|| LabError::NotExt4 {
        image: image.to_path_buf(),
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(state: u16, incompat: u32) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        b[0x3A..0x3C].copy_from_slice(&state.to_le_bytes());
        b[0x60..0x64].copy_from_slice(&incompat.to_le_bytes());
        b
    }

    #[test]
    fn clean_and_dirty() {
        assert!(parse(&sb(1, 0x2c2)).unwrap().is_clean());
        let dirty = parse(&sb(1, 0x2c2 | INCOMPAT_RECOVER)).unwrap();
        assert!(!dirty.is_clean());
        assert!(dirty.needs_recovery());
        assert!(!parse(&sb(0, 0)).unwrap().is_clean());
        assert!(!parse(&sb(3, 0)).unwrap().is_clean());
    }

    #[test]
    fn rejects_non_ext4() {
        assert!(parse(&[0u8; 1024]).is_none());
        assert!(parse(&[0u8; 10]).is_none());
    }

    #[test]
    fn reads_a_fresh_mke2fs_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        let f = File::create(&img).unwrap();
        f.set_len(2 << 20).unwrap();
        // an ext4 filesystem at offset 1 MiB of a 2 MiB file, as a partition would be
        let fs = dir.path().join("part.img");
        File::create(&fs).unwrap().set_len(1 << 20).unwrap();
        let made = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4"])
            .arg(&fs)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !made {
            eprintln!("SKIP reads_a_fresh_mke2fs_filesystem: mke2fs not available");
            return;
        }
        let data = std::fs::read(&fs).unwrap();
        f.write_all_at(&data, 1 << 20).unwrap();
        let st = read_state(&img, 1 << 20).unwrap();
        assert!(st.is_clean(), "{st:?}");
        assert!(matches!(read_state(&img, 0), Err(LabError::NotExt4 { .. })));
    }
}
