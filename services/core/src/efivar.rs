//! systemd-boot's EFI variables as seen through efivarfs (4-byte attributes, UTF-16LE text).

use std::path::{Path, PathBuf};

/// The vendor GUID systemd-boot uses for its Loader* variables.
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Set by systemd-boot when the booted entry has a boot counter: the entry's ESP path.
pub const LOADER_BOOT_COUNT_PATH: &str = "LoaderBootCountPath";
/// The id of the entry systemd-boot booted.
pub const LOADER_ENTRY_SELECTED: &str = "LoaderEntrySelected";
/// The efivarfs mount point.
pub const DEFAULT_EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";

/// Why an EFI variable could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum EfiVarError {
    #[error("cannot read EFI variable file {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("EFI variable {0} is {1} bytes, shorter than its 4-byte attribute header")]
    Short(PathBuf, usize),
    #[error("EFI variable {0} has an odd number of UTF-16 bytes ({1})")]
    OddLength(PathBuf, usize),
    #[error("EFI variable {0} is not valid UTF-16")]
    BadUtf16(PathBuf, #[source] std::string::FromUtf16Error),
}

/// The efivarfs file of a systemd-boot variable under `dir`.
pub fn loader_var_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-{LOADER_GUID}"))
}

/// Read a systemd-boot string variable; `Ok(None)` when the variable does not exist.
pub fn read_loader_string(dir: &Path, name: &str) -> Result<Option<String>, EfiVarError> {
    let path = loader_var_path(dir, name);
    match std::fs::read(&path) {
        Ok(bytes) => decode_string(&path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EfiVarError::Read(path, e)),
    }
}

/// Decode efivarfs content: skip the 4 attribute bytes, then UTF-16LE up to the first NUL.
pub fn decode_string(path: &Path, bytes: &[u8]) -> Result<String, EfiVarError> {
    let data = bytes
        .get(4..)
        .ok_or_else(|| EfiVarError::Short(path.to_path_buf(), bytes.len()))?;
    if data.len() % 2 != 0 {
        return Err(EfiVarError::OddLength(path.to_path_buf(), data.len()));
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16(&units).map_err(|e| EfiVarError::BadUtf16(path.to_path_buf(), e))
}

/// Encode a string the way efivarfs presents it (attributes NV|BS|RT, NUL-terminated);
/// used by tests and by tools that fake a firmware.
pub fn encode_string(text: &str) -> Vec<u8> {
    let mut out = 7u32.to_le_bytes().to_vec();
    for u in text.encode_utf16().chain(std::iter::once(0)) {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_through_file() {
        let dir = tempfile::tempdir().unwrap();
        let value = r"\loader\entries\cairn-b+2-1.conf";
        std::fs::write(
            loader_var_path(dir.path(), LOADER_BOOT_COUNT_PATH),
            encode_string(value),
        )
        .unwrap();
        assert_eq!(
            read_loader_string(dir.path(), LOADER_BOOT_COUNT_PATH).unwrap(),
            Some(value.to_string())
        );
        assert_eq!(
            read_loader_string(dir.path(), LOADER_ENTRY_SELECTED).unwrap(),
            None
        );
    }

    #[test]
    fn file_name_has_guid() {
        let p = loader_var_path(Path::new("/x"), LOADER_ENTRY_SELECTED);
        assert_eq!(
            p,
            Path::new("/x/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f")
        );
    }

    #[test]
    fn decodes_without_terminator() {
        let mut b = vec![6, 0, 0, 0];
        b.extend_from_slice(&[b'a', 0, b'b', 0]);
        assert_eq!(decode_string(Path::new("v"), &b).unwrap(), "ab");
    }

    #[test]
    fn rejects_bad_content() {
        let p = Path::new("v");
        assert!(matches!(
            decode_string(p, &[1, 2]),
            Err(EfiVarError::Short(_, 2))
        ));
        assert!(matches!(
            decode_string(p, &[7, 0, 0, 0, b'a']),
            Err(EfiVarError::OddLength(_, 1))
        ));
        // A lone high surrogate.
        assert!(matches!(
            decode_string(p, &[7, 0, 0, 0, 0x00, 0xd8, b'a', 0]),
            Err(EfiVarError::BadUtf16(..))
        ));
    }
}
