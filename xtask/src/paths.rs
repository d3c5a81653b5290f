//! Where the pipeline reads its inputs and writes its caches and outputs.

use std::path::{Path, PathBuf};

/// All paths of one checkout.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    /// The repository root (the parent of xtask/).
    pub fn from_manifest_dir() -> Self {
        let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
        Self {
            root: xtask.parent().unwrap_or(xtask).to_path_buf(),
        }
    }

    pub fn rootfs_src(&self) -> PathBuf {
        self.root.join("rootfs")
    }
    pub fn overlay(&self) -> PathBuf {
        self.root.join("rootfs/overlay")
    }
    pub fn build(&self) -> PathBuf {
        self.root.join("build")
    }
    /// Cached mmdebstrap output.
    pub fn base(&self) -> PathBuf {
        self.build().join("rootfs-base")
    }
    /// Hash of the inputs the cached base was built from.
    pub fn base_stamp(&self) -> PathBuf {
        self.build().join("rootfs-base.stamp")
    }
    /// Staging copy of the root filesystem.
    pub fn stage(&self) -> PathBuf {
        self.build().join("stage/rootfs")
    }
    /// Staging directory of the initramfs.
    pub fn initramfs_stage(&self) -> PathBuf {
        self.build().join("stage/initramfs")
    }
    /// Scratch space of the image writer.
    pub fn image_work(&self) -> PathBuf {
        self.build().join("stage/image")
    }
    pub fn out(&self) -> PathBuf {
        self.build().join("out")
    }
    /// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the root) or `target/`.
    pub fn target(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_workspace_with_the_rootfs_sources() {
        let paths = Paths::from_manifest_dir();
        assert!(paths.root.join("Cargo.toml").is_file());
        assert!(paths.rootfs_src().join("build-base.sh").is_file());
        assert!(paths.stage().starts_with(paths.build()));
    }
}
