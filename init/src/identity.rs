//! Node identity: the machine id (kept on STATE, copied to /run) and the hostname.

use cairn_base::{write_atomic, AtomicWriteError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A failure to establish the node's identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read random bytes from /dev/urandom")]
    Random(#[source] io::Error),
    #[error("cannot write the machine id")]
    Write(#[source] AtomicWriteError),
    #[error("cannot set the hostname to {0:?}")]
    SetHostname(String, #[source] nix::Error),
}

/// Whether `s` is a machine id: 32 lowercase hex digits, not all zero.
pub fn valid_machine_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

/// Formats 16 random bytes as a machine id (UUID v4 bits set, as systemd does).
pub fn format_machine_id(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads 16 bytes from /dev/urandom.
pub fn random_bytes() -> Result<[u8; 16], IdentityError> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(IdentityError::Random)?;
    Ok(b)
}

/// Where the machine id ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineId {
    pub id: String,
    /// False when it could not be kept on STATE (volatile for this boot).
    pub persistent: bool,
}

/// Uses `state_dir/machine-id` if valid, else makes one (kept there if STATE is writable),
/// and copies it to `run_file` (what /etc/machine-id points at).
pub fn ensure_machine_id(
    state_dir: &Path,
    run_file: &Path,
    random: impl FnOnce() -> Result<[u8; 16], IdentityError>,
) -> Result<MachineId, IdentityError> {
    let state_file = state_dir.join("machine-id");
    let existing = std::fs::read_to_string(&state_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| valid_machine_id(s));
    let (id, persistent) = match existing {
        Some(id) => (id, true),
        None => {
            let id = format_machine_id(random()?);
            let kept = state_dir.is_dir()
                && write_atomic(&state_file, format!("{id}\n").as_bytes(), 0o444).is_ok();
            (id, kept)
        }
    };
    write_atomic(run_file, format!("{id}\n").as_bytes(), 0o444).map_err(IdentityError::Write)?;
    Ok(MachineId { id, persistent })
}

/// Whether `h` is a usable hostname (one label: letters, digits, hyphens; ≤ 63).
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && !h.starts_with('-')
        && !h.ends_with('-')
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The configured hostname from `file` if present and valid, else `cairn-` + 6 hex digits
/// of the machine id. The second value explains a rejected file.
pub fn choose_hostname(file: &Path, machine_id: &str) -> (String, Option<String>) {
    let fallback = format!("cairn-{}", &machine_id[..6.min(machine_id.len())]);
    match std::fs::read_to_string(file) {
        Ok(t) => {
            let h = t.trim();
            if valid_hostname(h) {
                (h.to_string(), None)
            } else {
                (
                    fallback,
                    Some(format!("{}: {h:?} is not a valid hostname", file.display())),
                )
            }
        }
        Err(_) => (fallback, None),
    }
}

/// Sets the kernel hostname.
pub fn set_hostname(name: &str) -> Result<(), IdentityError> {
    nix::unistd::sethostname(name).map_err(|e| IdentityError::SetHostname(name.to_string(), e))
}

/// Default locations.
pub fn default_paths() -> (PathBuf, PathBuf, PathBuf) {
    (
        PathBuf::from("/state"),
        PathBuf::from("/run/machine-id"),
        PathBuf::from("/var/lib/cairn/hostname"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_id_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let run = d.path().join("machine-id");
        let m = ensure_machine_id(&state, &run, || Ok([0xab; 16])).unwrap();
        assert_eq!(m.id, "abababababab4bababababababababab");
        assert!(m.persistent);
        assert!(valid_machine_id(&m.id));
        let again = ensure_machine_id(&state, &run, || panic!("must not make a new id")).unwrap();
        assert_eq!(again.id, m.id);
        assert_eq!(
            std::fs::read_to_string(&run).unwrap(),
            format!("{}\n", m.id)
        );
    }

    #[test]
    fn invalid_stored_id_is_replaced_and_missing_state_is_volatile() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("machine-id"), "garbage\n").unwrap();
        let run = d.path().join("mid");
        let m = ensure_machine_id(&state, &run, || Ok([1; 16])).unwrap();
        assert_eq!(
            std::fs::read_to_string(state.join("machine-id"))
                .unwrap()
                .trim(),
            m.id
        );
        let m = ensure_machine_id(&d.path().join("nostate"), &run, || Ok([2; 16])).unwrap();
        assert!(!m.persistent);
    }

    #[test]
    fn hostname_choice() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("hostname");
        assert_eq!(
            choose_hostname(&f, "0123456789abcdef"),
            ("cairn-012345".to_string(), None)
        );
        std::fs::write(&f, "nas-01\n").unwrap();
        assert_eq!(choose_hostname(&f, "0123456789abcdef").0, "nas-01");
        std::fs::write(&f, "bad name!\n").unwrap();
        let (h, why) = choose_hostname(&f, "0123456789abcdef");
        assert_eq!(h, "cairn-012345");
        assert!(why.unwrap().contains("not a valid hostname"));
        assert!(!valid_machine_id("00000000000000000000000000000000"));
    }
}
