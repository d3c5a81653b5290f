//! Builds the EFI System Partition as a FAT32 file with mkfs.vfat and mtools (no mounts).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::ImageError;
use crate::loader::{self, Slot};
use crate::tools::{ToolCommand, Tools};

/// Inputs of the ESP.
#[derive(Debug, Clone)]
pub struct EspInputs {
    pub systemd_boot_efi: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Directories created on the ESP, parents first.
pub const DIRS: [&str; 8] = [
    "EFI",
    "EFI/BOOT",
    "EFI/systemd",
    "loader",
    "loader/entries",
    "cairn",
    "cairn/a",
    "cairn/b",
];

/// The files to copy: (source on the host, destination on the ESP).
pub fn file_plan(inputs: &EspInputs, config_dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = vec![
        (
            inputs.systemd_boot_efi.clone(),
            "EFI/BOOT/BOOTX64.EFI".to_string(),
        ),
        (
            inputs.systemd_boot_efi.clone(),
            "EFI/systemd/systemd-bootx64.efi".to_string(),
        ),
        (
            config_dir.join("loader.conf"),
            "loader/loader.conf".to_string(),
        ),
    ];
    for slot in Slot::ALL {
        let name = slot.entry_file_name();
        files.push((config_dir.join(&name), format!("loader/entries/{name}")));
        let reset = slot.net_reset_entry_file_name();
        files.push((config_dir.join(&reset), format!("loader/entries/{reset}")));
        files.push((inputs.kernel.clone(), slot.kernel_path()[1..].to_string()));
        files.push((inputs.initrd.clone(), slot.initrd_path()[1..].to_string()));
    }
    files
}

/// Writes loader.conf, the slot entries and their reset-network entries into `config_dir`.
pub fn write_config(config_dir: &Path) -> Result<(), ImageError> {
    let create = |path: &Path, text: String| {
        fs::write(path, text).map_err(|source| ImageError::WriteLoaderConfig {
            path: path.to_path_buf(),
            source,
        })
    };
    fs::create_dir_all(config_dir).map_err(|source| ImageError::CreateWorkDir {
        path: config_dir.to_path_buf(),
        source,
    })?;
    create(&config_dir.join("loader.conf"), loader::loader_conf())?;
    for slot in Slot::ALL {
        create(
            &config_dir.join(slot.entry_file_name()),
            loader::entry(slot),
        )?;
        create(
            &config_dir.join(slot.net_reset_entry_file_name()),
            loader::net_reset_entry(slot),
        )?;
    }
    Ok(())
}

/// Creates `esp_file` (FAT32, `size_bytes`) and fills it.
pub fn build_esp(
    tools: &mut dyn Tools,
    inputs: &EspInputs,
    esp_file: &Path,
    size_bytes: u64,
) -> Result<(), ImageError> {
    let config_dir = esp_file.with_extension("config");
    write_config(&config_dir)?;
    let files = file_plan(inputs, &config_dir);
    let mut total = 0;
    for (src, _) in &files {
        total += fs::metadata(src)
            .map_err(|source| ImageError::InputMissing {
                what: "ESP file",
                path: src.clone(),
                source,
            })?
            .len();
    }
    // FAT32 metadata of a few hundred MiB stays well under 4 MiB.
    let usable = size_bytes.saturating_sub(4 * 1024 * 1024);
    if total > usable {
        return Err(ImageError::ContentTooLarge {
            what: "ESP content",
            path: esp_file.to_path_buf(),
            size: total,
            capacity: usable,
        });
    }
    if esp_file.exists() {
        fs::remove_file(esp_file).map_err(|source| ImageError::RemoveOld {
            path: esp_file.to_path_buf(),
            source,
        })?;
    }
    tools.run(
        &ToolCommand::new("mkfs.vfat")
            .args(["-C", "-F", "32", "-n", "CAIRN-ESP"])
            .arg(esp_file)
            .arg((size_bytes / 1024).to_string()),
    )?;
    let image = esp_file.to_string_lossy().into_owned();
    let mut mmd = mtools("mmd").args(["-i", image.as_str()]);
    for dir in DIRS {
        mmd = mmd.arg(format!("::/{dir}"));
    }
    tools.run(&mmd)?;
    for (src, dest) in files {
        tools.run(
            &mtools("mcopy")
                .args(["-o", "-i", image.as_str()])
                .arg(src)
                .arg(format!("::/{dest}")),
        )?;
    }
    Ok(())
}

fn mtools(program: &str) -> ToolCommand {
    ToolCommand::new(program).env("MTOOLS_SKIP_CHECK", "1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::RecordingTools;

    fn inputs(dir: &Path) -> EspInputs {
        for name in ["boot.efi", "vmlinuz", "initrd"] {
            fs::write(dir.join(name), vec![1u8; 1000]).unwrap();
        }
        EspInputs {
            systemd_boot_efi: dir.join("boot.efi"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd"),
        }
    }

    #[test]
    fn builds_fat32_then_dirs_then_files() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let esp = dir.path().join("esp.img");
        let mut tools = RecordingTools::default();
        build_esp(&mut tools, &inputs, &esp, 64 * 1024 * 1024).unwrap();
        let lines = tools.lines();
        assert_eq!(
            lines[0],
            format!("mkfs.vfat -C -F 32 -n CAIRN-ESP {} 65536", esp.display())
        );
        assert!(lines[1].starts_with("mmd -i "));
        assert!(lines[1].contains("::/EFI/BOOT ::/EFI/systemd"));
        let copies: Vec<_> = lines[2..]
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(
            copies,
            [
                "::/EFI/BOOT/BOOTX64.EFI",
                "::/EFI/systemd/systemd-bootx64.efi",
                "::/loader/loader.conf",
                "::/loader/entries/cairn-a+3.conf",
                "::/loader/entries/cairn-a-net-reset.conf",
                "::/cairn/a/vmlinuz",
                "::/cairn/a/initrd",
                "::/loader/entries/cairn-b+3.conf",
                "::/loader/entries/cairn-b-net-reset.conf",
                "::/cairn/b/vmlinuz",
                "::/cairn/b/initrd",
            ]
        );
        let entry =
            fs::read_to_string(esp.with_extension("config").join("cairn-b+3.conf")).unwrap();
        assert!(entry.contains("version 1"));
        let reset = fs::read_to_string(esp.with_extension("config").join("cairn-b-net-reset.conf"))
            .unwrap();
        assert_eq!(reset, loader::net_reset_entry(Slot::B));
    }

    #[test]
    fn refuses_content_larger_than_the_esp() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let mut tools = RecordingTools::default();
        let err = build_esp(&mut tools, &inputs, &dir.path().join("esp.img"), 4096).unwrap_err();
        assert!(matches!(err, ImageError::ContentTooLarge { .. }), "{err}");
        assert!(tools.calls.is_empty());
    }

    #[test]
    fn missing_kernel_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = inputs(dir.path());
        inputs.kernel = dir.path().join("nope");
        let err = build_esp(
            &mut RecordingTools::default(),
            &inputs,
            &dir.path().join("esp.img"),
            64 << 20,
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
