//! The one-time setup code (`XXXX-XXXX-XXXX`, Crockford base32) kept until setup completes.

use anyhow::Context;
use std::path::Path;

/// Crockford's base32 alphabet: no I, L, O, U (the API makes replacement codes too).
pub use cairn_api::identity::setup::ALPHABET;
/// File name under the state directory (the API's setup reads it, and writes a new code
/// there after too many wrong ones).
pub const FILE_NAME: &str = cairn_api::identity::setup::CODE_FILE;
/// Written by the API's setup when it completes; from then on no code is kept and no setup
/// block is printed.
pub const DONE_MARKER: &str = cairn_api::identity::setup::DONE_MARKER;

/// Whether text is a well-formed code.
pub fn is_valid(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|c| ALPHABET.contains(&c)))
}

/// A new random code from the kernel's CSPRNG.
pub fn generate() -> anyhow::Result<String> {
    cairn_api::identity::setup::generate_code()
        .context("cannot get random bytes for the setup code")
}

/// What loading found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// A valid code was on disk.
    Existing(String),
    /// A new code was made and stored (first boot, or the old file was not a code).
    Created(String),
}

impl Loaded {
    pub fn code(&self) -> &str {
        match self {
            Loaded::Existing(c) | Loaded::Created(c) => c,
        }
    }
}

/// Whether the node still waits for setup, and with which code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupState {
    /// Setup completed (`setup-done` exists).
    Claimed,
    /// Not set up yet: the code to show.
    Unclaimed(Loaded),
}

/// The node's setup state; makes the code on the first start of an unclaimed node.
pub fn setup_state(state_dir: &Path) -> anyhow::Result<SetupState> {
    let marker = state_dir.join(DONE_MARKER);
    let claimed = marker
        .try_exists()
        .with_context(|| format!("cannot check for {}", marker.display()))?;
    if claimed {
        return Ok(SetupState::Claimed);
    }
    load_or_create(state_dir).map(SetupState::Unclaimed)
}

/// Load the code from `state_dir`, or make and store one (mode 0600, atomically).
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Loaded> {
    let path = state_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) if is_valid(text.trim()) => return Ok(Loaded::Existing(text.trim().to_string())),
        Ok(_) => tracing::warn!(
            path = %path.display(),
            "setup code file does not hold a code of the form XXXX-XXXX-XXXX; making a new one"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let code = generate()?;
    cairn_core::write_atomic(&path, format!("{code}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot store the setup code in {}", path.display()))?;
    Ok(Loaded::Created(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_api::identity::setup::format_code;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn formats_in_groups() {
        let code = format_code(&[0, 1, 2, 3, 31, 30, 29, 28, 32, 33, 255, 8]);
        assert_eq!(code, "0123-ZYXW-01Z8");
        assert!(is_valid(&code));
    }

    #[test]
    fn validation() {
        assert!(!is_valid("0123-ZYXW"));
        assert!(!is_valid("0123-ZYXW-01ZI"), "I is not in the alphabet");
        assert!(!is_valid("0123-ZYXW-01Z8-"));
        assert!(!is_valid("0123ZYXW01Z8"));
    }

    #[test]
    fn generated_codes_are_valid_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(is_valid(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn persists_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(matches!(first, Loaded::Created(_)));
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(second, Loaded::Existing(first.code().to_string()));
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn claimed_node_has_no_code() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            setup_state(dir.path()).unwrap(),
            SetupState::Unclaimed(Loaded::Created(_))
        ));
        std::fs::write(dir.path().join(DONE_MARKER), "").unwrap();
        assert_eq!(setup_state(dir.path()).unwrap(), SetupState::Claimed);
    }

    #[test]
    fn garbage_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "hello").unwrap();
        let l = load_or_create(dir.path()).unwrap();
        assert!(matches!(l, Loaded::Created(_)));
        assert!(is_valid(l.code()));
    }
}
