//! What cairnctl keeps per node: the pinned certificate fingerprint and the API token.

use anyhow::Context;
use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file under the config directory.
pub const FILE_NAME: &str = "nodes.json";

/// One node as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeEntry {
    /// `SHA256:…` of the certificate pinned on first use.
    pub fingerprint: String,
    pub user: Option<String>,
    pub token: Option<String>,
    pub token_id: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// The node used when `--node` is not given.
    pub current: Option<String>,
    pub nodes: BTreeMap<String, NodeEntry>,
}

/// The config directory: the flag, else `$XDG_CONFIG_HOME/cairn`, else `~/.config/cairn`.
pub fn dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d.to_path_buf());
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("cairn"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither XDG_CONFIG_HOME nor HOME is set; use --config-dir")?;
    Ok(PathBuf::from(home).join(".config/cairn"))
}

/// Load the config (empty if there is none yet).
pub fn load(dir: &Path) -> anyhow::Result<Config> {
    let path = dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid cairnctl config", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Save the config readable by its owner only (it holds tokens), replacing it atomically.
pub fn save(dir: &Path, cfg: &Config) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp.{}", std::process::id()));
    let mut bytes = serde_json::to_vec_pretty(cfg).context("cannot encode the config")?;
    bytes.push(b'\n');
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_private() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("cairn");
        assert_eq!(load(&dir).unwrap(), Config::default());
        let mut cfg = Config {
            current: Some("nas:443".into()),
            ..Config::default()
        };
        cfg.nodes.insert(
            "nas:443".into(),
            NodeEntry {
                fingerprint: "SHA256:AA".into(),
                user: Some("admin".into()),
                token: Some("cairn_x".into()),
                token_id: Some("id".into()),
            },
        );
        save(&dir, &cfg).unwrap();
        assert_eq!(load(&dir).unwrap(), cfg);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        std::fs::write(dir.join(FILE_NAME), "{").unwrap();
        assert!(load(&dir).unwrap_err().to_string().contains("not a valid"));
    }

    #[test]
    fn flag_wins() {
        assert_eq!(dir(Some(Path::new("/x"))).unwrap(), PathBuf::from("/x"));
    }
}
