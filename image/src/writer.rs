//! Writes the raw disk image: sparse file, GPT via sfdisk, ESP and squashfs placed with dd.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::ImageError;
use crate::esp::{self, EspInputs};
use crate::layout::{Layout, LayoutSpec, PartitionRole, MIB};
use crate::tools::{ToolCommand, Tools};

/// Everything the image is made of.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    pub spec: LayoutSpec,
    pub esp: EspInputs,
    pub squashfs: PathBuf,
    /// Scratch directory for the ESP file and loader config.
    pub work_dir: PathBuf,
    pub output: PathBuf,
}

/// Builds the image at `inputs.output` and returns its layout.
pub fn write_image(tools: &mut dyn Tools, inputs: &ImageInputs) -> Result<Layout, ImageError> {
    let layout = Layout::plan(inputs.spec)?;
    let root = layout.get(PartitionRole::RootA);
    let squashfs_size = fs::metadata(&inputs.squashfs)
        .map_err(|source| ImageError::InputMissing {
            what: "root squashfs",
            path: inputs.squashfs.clone(),
            source,
        })?
        .len();
    if squashfs_size > root.size_bytes {
        return Err(ImageError::ContentTooLarge {
            what: "root squashfs",
            path: inputs.squashfs.clone(),
            size: squashfs_size,
            capacity: root.size_bytes,
        });
    }
    fs::create_dir_all(&inputs.work_dir).map_err(|source| ImageError::CreateWorkDir {
        path: inputs.work_dir.clone(),
        source,
    })?;
    let esp_file = inputs.work_dir.join("esp.img");
    let esp_part = layout.get(PartitionRole::Esp);
    esp::build_esp(tools, &inputs.esp, &esp_file, esp_part.size_bytes)?;

    create_sparse(&inputs.output, layout.total_bytes)?;
    tools.run(
        &ToolCommand::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(&inputs.output)
            .stdin(layout.sfdisk_script()),
    )?;
    tools.run(&dd_file(&esp_file, &inputs.output, esp_part.offset_mib()))?;
    for role in [PartitionRole::RootA, PartitionRole::RootB] {
        let offset = layout.get(role).offset_mib();
        tools.run(&dd_file(&inputs.squashfs, &inputs.output, offset))?;
    }
    let state = layout.get(PartitionRole::State).offset_mib();
    tools.run(
        &ToolCommand::new("dd")
            .arg("if=/dev/zero")
            .arg(of(&inputs.output))
            .args(["bs=1M", "count=1", "conv=notrunc", "status=none"])
            .arg(format!("seek={state}")),
    )?;
    Ok(layout)
}

fn of(path: &Path) -> String {
    format!("of={}", path.display())
}

/// dd of a whole file into the image at `offset_mib`, keeping holes sparse.
fn dd_file(src: &Path, image: &Path, offset_mib: u64) -> ToolCommand {
    ToolCommand::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(of(image))
        .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
        .arg(format!("seek={offset_mib}"))
}

fn create_sparse(path: &Path, size: u64) -> Result<(), ImageError> {
    if path.exists() {
        fs::remove_file(path).map_err(|source| ImageError::RemoveOld {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let err = |source| ImageError::CreateImage {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err)?;
    debug_assert_eq!(size % MIB, 0);
    file.set_len(size).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::RecordingTools;

    fn inputs(dir: &Path, squashfs_len: usize) -> ImageInputs {
        for name in ["boot.efi", "vmlinuz", "initrd"] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        fs::write(dir.join("root.sqfs"), vec![0u8; squashfs_len]).unwrap();
        ImageInputs {
            spec: LayoutSpec {
                esp_mib: 64,
                root_mib: 2,
                state_mib: 16,
            },
            esp: EspInputs {
                systemd_boot_efi: dir.join("boot.efi"),
                kernel: dir.join("vmlinuz"),
                initrd: dir.join("initrd"),
            },
            squashfs: dir.join("root.sqfs"),
            work_dir: dir.join("work"),
            output: dir.join("disk.img"),
        }
    }

    #[test]
    fn places_every_piece_at_its_partition_offset() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path(), 4096);
        let mut tools = RecordingTools::default();
        let layout = write_image(&mut tools, &inputs).unwrap();
        assert_eq!(
            fs::metadata(&inputs.output).unwrap().len(),
            layout.total_bytes
        );
        let lines = tools.lines();
        let tail: Vec<_> = lines
            .iter()
            .skip_while(|l| !l.starts_with("sfdisk"))
            .collect();
        assert!(tail[0].ends_with("disk.img"));
        assert_eq!(
            tools
                .calls
                .iter()
                .find(|c| c.program == "sfdisk")
                .unwrap()
                .stdin,
            Some(layout.sfdisk_script().into_bytes())
        );
        assert!(
            tail[1].contains("esp.img") && tail[1].ends_with("seek=1"),
            "{}",
            tail[1]
        );
        assert!(
            tail[2].contains("root.sqfs") && tail[2].ends_with("seek=65"),
            "{}",
            tail[2]
        );
        assert!(
            tail[3].contains("root.sqfs") && tail[3].ends_with("seek=67"),
            "{}",
            tail[3]
        );
        assert!(
            tail[4].starts_with("dd if=/dev/zero") && tail[4].ends_with("seek=69"),
            "{}",
            tail[4]
        );
        assert!(tail[4].contains("count=1"));
        assert_eq!(tail.len(), 5);
    }

    #[test]
    fn refuses_a_squashfs_larger_than_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path(), 2 * 1024 * 1024 + 1);
        let mut tools = RecordingTools::default();
        let err = write_image(&mut tools, &inputs).unwrap_err();
        assert!(err.to_string().contains("root squashfs"), "{err}");
        assert!(tools.calls.is_empty());
        assert!(!inputs.output.exists());
    }

    #[test]
    fn a_failing_tool_stops_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path(), 10);
        let mut tools = RecordingTools::default();
        tools.reply("sfdisk", Err("bad script".into()));
        let err = write_image(&mut tools, &inputs).unwrap_err();
        assert!(err.to_string().contains("bad script"), "{err}");
        assert!(!tools.lines().iter().any(|l| l.starts_with("dd")));
    }
}
