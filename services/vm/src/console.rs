//! The serial console: a file per VM written by QEMU through virtlogd, read and followed here.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How much of an existing console a reader gets at first.
pub const TAIL_BYTES: u64 = 64 * 1024;

/// The console file of VM `name` in `dir`.
pub fn console_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.console.log"))
}

/// A position in a console file that survives rotation (virtlogd renames the file and
/// starts a new one at its size limit; a new file is read from its start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    ino: u64,
    offset: u64,
}

/// Read what was written after `cursor` (at most `max` bytes), or the last [`TAIL_BYTES`] when
/// `cursor` is `None`. A missing file reads as empty.
pub fn read_from(
    path: &Path,
    cursor: Option<Cursor>,
    max: u64,
) -> std::io::Result<(Vec<u8>, Cursor)> {
    use std::os::unix::fs::MetadataExt;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), cursor.unwrap_or_default()))
        }
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    let len = meta.len();
    let start = match cursor {
        None => len.saturating_sub(TAIL_BYTES),
        Some(c) if c.ino == meta.ino() && c.offset <= len => c.offset,
        // Rotated or truncated: the new file from its start.
        Some(_) => 0,
    };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    let next = Cursor {
        ino: meta.ino(),
        offset: start + buf.len() as u64,
    };
    Ok((buf, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = console_path(dir.path(), "vm");
        let (b, c) = read_from(&p, None, 1 << 20).unwrap();
        assert!(b.is_empty());
        std::fs::write(&p, b"HEARTBEAT 1\n").unwrap();
        let (b, c) = read_from(&p, Some(c), 1 << 20).unwrap();
        assert_eq!(b, b"HEARTBEAT 1\n");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"HEARTBEAT 2\n")
            .unwrap();
        let (b, c) = read_from(&p, Some(c), 1 << 20).unwrap();
        assert_eq!(b, b"HEARTBEAT 2\n");
        // Rotation: a new file under the same name.
        std::fs::rename(&p, dir.path().join("old")).unwrap();
        std::fs::write(&p, b"HEARTBEAT 3\n").unwrap();
        let (b, _) = read_from(&p, Some(c), 1 << 20).unwrap();
        assert_eq!(b, b"HEARTBEAT 3\n");
    }

    #[test]
    fn a_new_reader_gets_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = console_path(dir.path(), "vm");
        let big = vec![b'x'; usize::try_from(TAIL_BYTES + 10).unwrap()];
        std::fs::write(&p, &big).unwrap();
        let (b, c) = read_from(&p, None, 1 << 20).unwrap();
        assert_eq!(u64::try_from(b.len()).unwrap(), TAIL_BYTES);
        assert_eq!(c.offset, TAIL_BYTES + 10);
    }
}
