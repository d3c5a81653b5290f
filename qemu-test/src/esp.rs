//! The ESP (FAT) inside a disk image, read and changed with mtools at the partition's byte offset.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::LabError;
use crate::gpt;

/// PARTLABEL of the ESP (decision 0001).
pub const ESP_LABEL: &str = "cairn-esp";
/// Directory of the loader entries on the ESP.
pub const ENTRIES_DIR: &str = "loader/entries";

/// An ESP at a byte offset inside an image file.
#[derive(Debug, Clone)]
pub struct Esp {
    image: PathBuf,
    offset: u64,
}

impl Esp {
    /// The ESP of `image`, found by its PARTLABEL.
    pub fn open(image: &Path) -> Result<Esp, LabError> {
        let part = gpt::find(image, ESP_LABEL)?;
        Ok(Esp {
            image: image.to_path_buf(),
            offset: part.offset,
        })
    }

    fn target(&self) -> String {
        format!("{}@@{}", self.image.display(), self.offset)
    }

    fn mtool(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, LabError> {
        let mut cmd = Command::new(program);
        cmd.env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(self.target())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            program: program.into(),
            source,
        })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data).map_err(|source| LabError::ToolIo {
                program: program.into(),
                source,
            })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| LabError::ToolIo {
                program: program.into(),
                source,
            })?;
        if !out.status.success() {
            return Err(LabError::ToolFailed {
                program: format!("{program} {}", args.join(" ")),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// File names (not paths) in directory `dir` of the ESP.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, LabError> {
        let out = self.mtool("mdir", &["-b", &format!("::/{dir}")], None)?;
        Ok(parse_bare_listing(&String::from_utf8_lossy(&out)))
    }

    /// Whether `path` exists on the ESP.
    pub fn exists(&self, path: &str) -> Result<bool, LabError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok(self.list(dir)?.iter().any(|n| n == name))
    }

    /// Contents of `path` on the ESP.
    pub fn read(&self, path: &str) -> Result<String, LabError> {
        let out = self.mtool("mtype", &[&format!("::/{path}")], None)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Writes `contents` to `path` on the ESP, replacing it.
    pub fn write(&self, path: &str, contents: &str) -> Result<(), LabError> {
        let mut tmp =
            tempfile::NamedTempFile::new().map_err(|source| LabError::TempFile { source })?;
        tmp.write_all(contents.as_bytes())
            .and_then(|()| tmp.flush())
            .map_err(|source| LabError::TempFile { source })?;
        let src = tmp.path().to_string_lossy().into_owned();
        self.mtool("mcopy", &["-o", &src, &format!("::/{path}")], None)?;
        Ok(())
    }

    /// Loader entry file names (`cairn-a+3.conf`, …).
    pub fn entries(&self) -> Result<Vec<String>, LabError> {
        Ok(self
            .list(ENTRIES_DIR)?
            .into_iter()
            .filter(|n| n.ends_with(".conf"))
            .collect())
    }

    /// The entry file of `slot` (whatever its boot counter), if there is one.
    pub fn entry_of_slot(&self, slot: char) -> Result<Option<String>, LabError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|n| entry_slot(n) == Some(slot)))
    }

    /// Rewrites every loader entry's `options` line to end with `extra`.
    pub fn append_options(&self, extra: &str) -> Result<(), LabError> {
        for name in self.entries()? {
            let path = format!("{ENTRIES_DIR}/{name}");
            let text = self.read(&path)?;
            let changed = append_to_options(&text, extra).ok_or_else(|| LabError::EntryField {
                entry: name.clone(),
                field: "options",
            })?;
            self.write(&path, &changed)?;
        }
        Ok(())
    }

    /// Sets the `version` line of slot `slot`'s entry.
    pub fn set_version(&self, slot: char, version: &str) -> Result<(), LabError> {
        let name = self
            .entry_of_slot(slot)?
            .ok_or(LabError::NoEntry { slot })?;
        let path = format!("{ENTRIES_DIR}/{name}");
        let text = self.read(&path)?;
        let changed = set_field(&text, "version", version).ok_or_else(|| LabError::EntryField {
            entry: name.clone(),
            field: "version",
        })?;
        self.write(&path, &changed)
    }
}

/// The slot letter of an entry file name: `cairn-b+2-1.conf` → `b`.
pub fn entry_slot(name: &str) -> Option<char> {
    let rest = name.strip_prefix("cairn-")?;
    let c = rest.chars().next()?;
    let after = &rest[c.len_utf8()..];
    (after.starts_with('+') || after.starts_with('.')).then_some(c)
}

/// Names out of `mdir -b` output (`::/loader/entries/x.conf` per line).
fn parse_bare_listing(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .map(str::to_string)
        .collect()
}

/// The entry text with ` extra` appended to its `options` line (None: no such line).
pub fn append_to_options(text: &str, extra: &str) -> Option<String> {
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some("options") {
                found = true;
                format!("{} {extra}", l.trim_end())
            } else {
                l.to_string()
            }
        })
        .collect();
    found.then(|| lines.join("\n") + "\n")
}

/// The entry text with field `key` set to `value` (None: no such line).
pub fn set_field(text: &str, key: &str, value: &str) -> Option<String> {
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some(key) {
                found = true;
                format!("{key} {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    found.then(|| lines.join("\n") + "\n")
}

/// Value of field `key` in an entry's text.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let mut it = l.splitn(2, char::is_whitespace);
        (it.next() == Some(key)).then(|| it.next().unwrap_or("").trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = "title Cairn (slot a)\nsort-key cairn\nversion 1\nlinux /cairn/a/vmlinuz\ninitrd /cairn/a/initrd\noptions cairn.slot=a console=tty0 console=ttyS0,115200 quiet\n";

    #[test]
    fn appends_options() {
        let t = append_to_options(ENTRY, "cairn.lab=1").unwrap();
        assert_eq!(
            field(&t, "options"),
            Some("cairn.slot=a console=tty0 console=ttyS0,115200 quiet cairn.lab=1")
        );
        assert_eq!(field(&t, "version"), Some("1"));
        assert!(append_to_options("title x\n", "y").is_none());
    }

    #[test]
    fn sets_version() {
        let t = set_field(ENTRY, "version", "9").unwrap();
        assert_eq!(field(&t, "version"), Some("9"));
        assert_eq!(field(&t, "linux"), Some("/cairn/a/vmlinuz"));
    }

    #[test]
    fn slot_of_entry_names() {
        assert_eq!(entry_slot("cairn-a+3.conf"), Some('a'));
        assert_eq!(entry_slot("cairn-b+0-3.conf"), Some('b'));
        assert_eq!(entry_slot("cairn-a.conf"), Some('a'));
        assert_eq!(entry_slot("other.conf"), None);
        assert_eq!(entry_slot("cairn-ab.conf"), None);
    }

    #[test]
    fn bare_listing() {
        let out = "::/loader/entries/cairn-a+3.conf\n::/loader/entries/cairn-b+3.conf\n";
        assert_eq!(
            parse_bare_listing(out),
            vec!["cairn-a+3.conf", "cairn-b+3.conf"]
        );
    }

    #[test]
    fn round_trip_on_a_real_fat_image() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("esp.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(40 << 20)
            .unwrap();
        let ok = Command::new("mformat")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-F", "-i"])
            .arg(&img)
            .arg("::")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIP round_trip_on_a_real_fat_image: mtools (mformat) not available");
            return;
        }
        let esp = Esp {
            image: img.clone(),
            offset: 0,
        };
        esp.mtool("mmd", &["::/loader", "::/loader/entries"], None)
            .unwrap();
        esp.write("loader/entries/cairn-a+3.conf", ENTRY).unwrap();
        esp.write(
            "loader/entries/cairn-b+3.conf",
            &ENTRY.replace("slot a", "slot b"),
        )
        .unwrap();
        assert_eq!(esp.entries().unwrap().len(), 2);
        esp.append_options("cairn.lab=1").unwrap();
        esp.set_version('b', "2").unwrap();
        let b = esp.read("loader/entries/cairn-b+3.conf").unwrap();
        assert_eq!(field(&b, "version"), Some("2"));
        assert!(field(&b, "options").unwrap().ends_with("cairn.lab=1"));
        assert!(esp.exists("loader/entries/cairn-a+3.conf").unwrap());
        assert!(!esp.exists("loader/entries/cairn-a.conf").unwrap());
        assert_eq!(
            esp.entry_of_slot('b').unwrap().as_deref(),
            Some("cairn-b+3.conf")
        );
    }
}
