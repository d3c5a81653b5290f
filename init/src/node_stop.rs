//! The node-stopping marker: how cairn-init tells services that the whole node is going down.
//!
//! Before cairn-init stops any service for a power-off or reboot it writes
//! [`DEFAULT_MARKER`] (atomically: temp file, fsync, rename). A service that gets SIGTERM
//! reads it to tell "the node stops" (shut the VMs down) from "only I am stopped or
//! restarted" (`cairn-init svc restart cairnd`: leave the VMs running). The file lives on
//! the `/run` tmpfs, so it cannot outlive the boot; stage 2 also removes a leftover one when
//! it starts (development runs without the mount table). See docs/decisions/0012.

use crate::shutdown::Kind;
use cairn_base::{write_atomic, AtomicWriteError};
use std::io;
use std::path::{Path, PathBuf};

/// Where cairn-init writes the marker (override: `CAIRN_NODE_STOPPING`).
pub const DEFAULT_MARKER: &str = "/run/cairn/node-stopping";

/// What the marker says: the node powers off or reboots, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStop {
    /// `None` if the first word is neither `poweroff` nor `reboot` (the file's presence is
    /// what counts; its text is for the logs).
    pub kind: Option<Kind>,
    /// What asked for it (`power button`, `SIGTERM`, …).
    pub why: String,
}

/// A marker that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("{}: cannot create the marker's directory", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the node-stopping marker")]
    Write(#[source] AtomicWriteError),
    #[error("{}: cannot read the node-stopping marker", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot remove a leftover node-stopping marker", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Poweroff => "poweroff",
        Kind::Reboot => "reboot",
    }
}

/// The marker's text: `poweroff|reboot <why>` and a newline.
pub fn render(kind: Kind, why: &str) -> String {
    let why = why.replace(['\n', '\r'], " ");
    format!("{} {}\n", kind_word(kind), why.trim())
}

/// Parses the marker's text (never fails: an odd text still means the node stops).
pub fn parse(text: &str) -> NodeStop {
    let line = text.lines().next().unwrap_or_default().trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let kind = match word {
        "poweroff" => Some(Kind::Poweroff),
        "reboot" => Some(Kind::Reboot),
        _ => None,
    };
    let why = if kind.is_some() { rest.trim() } else { line };
    NodeStop {
        kind,
        why: why.to_string(),
    }
}

/// Writes the marker atomically (creating its directory if needed).
pub fn write(path: &Path, kind: Kind, why: &str) -> Result<(), MarkerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| MarkerError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    write_atomic(path, render(kind, why).as_bytes(), 0o644).map_err(MarkerError::Write)
}

/// Reads the marker: `None` if the node is not stopping (no file).
pub fn read(path: &Path) -> Result<Option<NodeStop>, MarkerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse(&text))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MarkerError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Removes a leftover marker (stage 2's start); true if there was one.
pub fn clear(path: &Path) -> Result<bool, MarkerError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(MarkerError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        assert_eq!(
            render(Kind::Poweroff, "power button"),
            "poweroff power button\n"
        );
        assert_eq!(
            parse(&render(Kind::Reboot, "SIGINT")),
            NodeStop {
                kind: Some(Kind::Reboot),
                why: "SIGINT".into()
            }
        );
        // A reason cannot add lines.
        assert_eq!(render(Kind::Reboot, "a\nb"), "reboot a b\n");
    }

    #[test]
    fn odd_text_still_means_stopping() {
        assert_eq!(
            parse("halt now\n"),
            NodeStop {
                kind: None,
                why: "halt now".into()
            }
        );
        assert_eq!(
            parse(""),
            NodeStop {
                kind: None,
                why: String::new()
            }
        );
        assert_eq!(parse("poweroff").kind, Some(Kind::Poweroff));
    }

    #[test]
    fn write_read_clear() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/cairn/node-stopping");
        assert!(read(&p).unwrap().is_none());
        assert!(!clear(&p).unwrap());
        write(&p, Kind::Poweroff, "SIGTERM").unwrap();
        let m = read(&p).unwrap().unwrap();
        assert_eq!(m.kind, Some(Kind::Poweroff));
        assert_eq!(m.why, "SIGTERM");
        // Only the marker is left in its directory (no temp file).
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        assert!(clear(&p).unwrap());
        assert!(read(&p).unwrap().is_none());
    }

    #[test]
    fn unreadable_marker_is_an_error_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        // A directory where the file should be: exists, but cannot be read as text.
        let p = d.path().join("node-stopping");
        std::fs::create_dir(&p).unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.to_string().contains("node-stopping"), "{e}");
    }
}
