//! Where the lab finds the workspace, the built image and the host tools it needs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// OVMF firmware code (read-only pflash).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF variable store template (copied per node).
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// The workspace root: `$CAIRN_ROOT`, else the parent of this crate.
pub fn workspace_root() -> PathBuf {
    match std::env::var_os("CAIRN_ROOT") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    }
}

/// The build outputs a node boots from.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub root: PathBuf,
    pub image: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub image_zst: PathBuf,
}

impl Artifacts {
    /// The artifacts under `root/build/out` (they may not exist).
    pub fn under(root: &Path) -> Artifacts {
        let out = root.join("build/out");
        Artifacts {
            root: root.to_path_buf(),
            image: out.join("cairn.img"),
            kernel: out.join("vmlinuz"),
            initrd: out.join("initrd"),
            image_zst: out.join("cairn.img.zst"),
        }
    }

    /// Why the lab cannot run here (missing image, QEMU, firmware, tools), if it cannot.
    pub fn missing(&self) -> Option<String> {
        for (path, what) in [
            (&self.image, "the disk image"),
            (&self.kernel, "the kernel"),
            (&self.initrd, "the initramfs"),
        ] {
            if !path.is_file() {
                return Some(format!(
                    "{what} {} is missing (build it with `cargo xtask image`)",
                    path.display()
                ));
            }
        }
        for fw in [OVMF_CODE, OVMF_VARS] {
            if !Path::new(fw).is_file() {
                return Some(format!("{fw} is missing (apt-get install ovmf)"));
            }
        }
        for (tool, pkg) in [
            (QEMU, "qemu-system-x86"),
            ("sfdisk", "fdisk"),
            ("mtype", "mtools"),
        ] {
            if !tool_exists(tool) {
                return Some(format!("{tool} is not installed (apt-get install {pkg})"));
            }
        }
        None
    }
}

fn tool_exists(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_missing_image() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::under(dir.path());
        let why = a.missing().unwrap();
        assert!(why.contains("cairn.img"), "{why}");
        assert!(why.contains("cargo xtask image"), "{why}");
    }

    #[test]
    fn root_is_the_workspace() {
        assert!(workspace_root().join("qemu-test/Cargo.toml").is_file());
    }
}
