//! build/out/image-info.json: artifact sizes, partition layout, initramfs modules, phase timings.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use cairn_image::Layout;
use serde::Serialize;

use crate::initramfs::InitramfsReport;

/// Size of one output file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileSize {
    pub bytes: u64,
    /// Bytes actually allocated on disk (smaller for the sparse image).
    pub allocated_bytes: u64,
    pub mib: String,
}

impl FileSize {
    /// Reads the sizes of `path`.
    pub fn of(path: &Path) -> Result<Self> {
        let meta = fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
        Ok(Self {
            bytes: meta.len(),
            allocated_bytes: meta.blocks() * 512,
            mib: format!("{:.1}", meta.len() as f64 / (1024.0 * 1024.0)),
        })
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub kernel_version: String,
    pub files: BTreeMap<String, FileSize>,
    pub compressed_image: String,
    pub compressed_image_mib: String,
    pub layout: Layout,
    pub initramfs: InitramfsReport,
    pub phases_s: Vec<(String, f64)>,
}

impl ImageInfo {
    /// Writes the report as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_files_report_apparent_and_allocated_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let file = fs::File::create(&path).unwrap();
        file.set_len(64 * 1024 * 1024).unwrap();
        let size = FileSize::of(&path).unwrap();
        assert_eq!(size.bytes, 64 * 1024 * 1024);
        assert!(size.allocated_bytes < 1024 * 1024);
        assert_eq!(size.mib, "64.0");
    }
}
