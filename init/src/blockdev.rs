//! Block devices for stage 1: partitions by PARTNAME from sysfs uevent files, blank check.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// Bytes checked for the "blank" rule (contract: first MiB all zero).
pub const BLANK_CHECK_BYTES: usize = 1024 * 1024;
const EXT_MAGIC_OFFSET: usize = 1080;

/// Reads `DEVNAME=` and `PARTNAME=` from one uevent text.
pub fn parse_uevent(text: &str) -> (Option<String>, Option<String>) {
    let mut dev = None;
    let mut part = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("DEVNAME=") {
            dev = Some(v.to_string());
        } else if let Some(v) = l.strip_prefix("PARTNAME=") {
            part = Some(v.to_string());
        }
    }
    (dev, part)
}

/// PARTNAME → DEVNAME for every partition under a /sys/class/block directory.
pub fn partitions(sys_class_block: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(sys_class_block) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(t) = std::fs::read_to_string(e.path().join("uevent")) else {
            continue;
        };
        if let (Some(dev), Some(part)) = parse_uevent(&t) {
            out.entry(part).or_insert(dev);
        }
    }
    out
}

/// Whether a device's first MiB is all zero and carries no ext magic (then it may be
/// formatted). Anything else is data and is never formatted over.
pub fn is_blank(dev: &Path) -> io::Result<bool> {
    let mut f = std::fs::File::open(dev)?;
    let mut buf = vec![0u8; BLANK_CHECK_BYTES];
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let data = &buf[..got];
    let ext_magic = data.len() > EXT_MAGIC_OFFSET + 1
        && data[EXT_MAGIC_OFFSET] == 0x53
        && data[EXT_MAGIC_OFFSET + 1] == 0xEF;
    Ok(got > 0 && !ext_magic && data.iter().all(|b| *b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_partitions_by_name() {
        let d = tempfile::tempdir().unwrap();
        for (dir, text) in [
            ("vda", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"),
            ("vda2", "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=cairn-root-a\n"),
            ("vda4", "DEVNAME=vda4\nDEVTYPE=partition\nPARTNAME=cairn-state\n"),
        ] {
            std::fs::create_dir(d.path().join(dir)).unwrap();
            std::fs::write(d.path().join(dir).join("uevent"), text).unwrap();
        }
        let p = partitions(d.path());
        assert_eq!(p.get("cairn-root-a").map(String::as_str), Some("vda2"));
        assert_eq!(p.get("cairn-state").map(String::as_str), Some("vda4"));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn blank_rules() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("state.img");
        std::fs::write(&f, vec![0u8; 2 * 1024 * 1024]).unwrap();
        assert!(is_blank(&f).unwrap());
        let mut data = vec![0u8; 2 * 1024 * 1024];
        data[1080] = 0x53;
        data[1081] = 0xEF;
        std::fs::write(&f, &data).unwrap();
        assert!(!is_blank(&f).unwrap());
        let mut data = vec![0u8; 2 * 1024 * 1024];
        data[1024 * 1024 - 1] = 1;
        std::fs::write(&f, &data).unwrap();
        assert!(!is_blank(&f).unwrap());
        let mut data = vec![0u8; 2 * 1024 * 1024];
        data[1024 * 1024 + 5] = 1;
        std::fs::write(&f, &data).unwrap();
        assert!(is_blank(&f).unwrap(), "only the first MiB counts");
        std::fs::write(&f, b"").unwrap();
        assert!(!is_blank(&f).unwrap());
    }

    #[test]
    fn real_ext4_is_not_blank() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("ext4.img");
        std::fs::write(&f, vec![0u8; 8 * 1024 * 1024]).unwrap();
        let mke2fs = ["/sbin/mke2fs", "/usr/sbin/mke2fs"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(mke2fs) = mke2fs else {
            println!("SKIP real_ext4_is_not_blank: mke2fs not installed");
            return;
        };
        let st = std::process::Command::new(mke2fs)
            .args(["-t", "ext4", "-F", "-q", "-L", "cairn-state"])
            .arg(&f)
            .status()
            .unwrap();
        assert!(st.success());
        assert!(!is_blank(&f).unwrap());
    }
}
