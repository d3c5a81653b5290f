//! Packs the staged root as a zstd squashfs.

use std::path::Path;

use anyhow::Result;

use crate::runner::{Runner, ToolCommand};

/// zstd level. Measured on the 371 MB staged root, 2 cores: level 6 takes 5.5 s for 92 MB,
/// 15 (the default) 43 s for 90 MB, 19 118 s for 82 MB. 6 keeps CI fast for 2 % more size.
pub const ZSTD_LEVEL: u32 = 6;

/// The mksquashfs command for `root` → `output`.
pub fn command(root: &Path, output: &Path) -> ToolCommand {
    ToolCommand::new("mksquashfs")
        .arg(root)
        .arg(output)
        .args(["-noappend", "-comp", "zstd", "-Xcompression-level"])
        .arg(ZSTD_LEVEL.to_string())
        .args(["-b", "1M", "-no-progress", "-quiet"])
}

/// Builds the squashfs.
pub fn build(runner: &mut dyn Runner, root: &Path, output: &Path) -> Result<()> {
    runner.run(&command(root, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_zstd_and_never_appends() {
        let line = command(Path::new("/s"), Path::new("/o.sqfs")).display();
        assert!(
            line.starts_with("mksquashfs /s /o.sqfs -noappend -comp zstd -Xcompression-level 6"),
            "{line}"
        );
    }
}
