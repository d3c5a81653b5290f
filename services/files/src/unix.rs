//! Unix accounts for the file users and groups, in the files `libnss-extrausers` reads
//! (`/var/lib/extrausers/{passwd,group}` on STATE; the image's `/etc/passwd` stays
//! read-only). smbd needs them to map a signed-in user to its uid; NFS needs none, but
//! `ls -n` and the page show names through them.

use crate::accounts::{Accounts, PRIMARY_GID};
use crate::error::FilesError;
use std::path::Path;

/// Where libnss-extrausers reads its files.
pub const EXTRAUSERS_DIR: &str = "/var/lib/extrausers";

/// The `passwd` lines of the file users (no shell, no home: they only reach files).
pub fn passwd(accounts: &Accounts) -> String {
    let mut out = String::new();
    let mut users: Vec<_> = accounts.users.values().collect();
    users.sort_by_key(|u| u.uid);
    for u in users {
        out.push_str(&format!(
            "{}:x:{}:{}:{}:/nonexistent:/usr/sbin/nologin\n",
            u.name, u.uid, PRIMARY_GID, u.full_name
        ));
    }
    out
}

/// The `group` lines of the file groups, with their members.
pub fn group(accounts: &Accounts) -> String {
    let mut out = String::new();
    let mut groups: Vec<_> = accounts.groups.values().collect();
    groups.sort_by_key(|g| g.gid);
    for g in groups {
        let members: Vec<&str> = g.members.iter().map(String::as_str).collect();
        out.push_str(&format!("{}:x:{}:{}\n", g.name, g.gid, members.join(",")));
    }
    out
}

/// Write both files under `dir` atomically (mode 0644: names and IDs are not secret).
pub fn write(dir: &Path, accounts: &Accounts) -> Result<(), FilesError> {
    let io = |path: &Path, source| FilesError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, text) in [("passwd", passwd(accounts)), ("group", group(accounts))] {
        let path = dir.join(name);
        cairn_core::write_atomic(&path, text.as_bytes(), 0o644).map_err(|e| FilesError::Write {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::NewUser;

    #[test]
    fn passwd_and_group_lines_carry_the_stable_ids() {
        let mut a = Accounts::default();
        a.create_group("team", &[]).unwrap();
        for (n, full) in [("alice", "Alice Example"), ("bob", "")] {
            a.create_user(&NewUser {
                name: n.into(),
                full_name: full.into(),
                password: "correct horse battery".into(),
                groups: vec!["team".into()],
            })
            .unwrap();
        }
        assert_eq!(
            passwd(&a),
            "alice:x:20000:100:Alice Example:/nonexistent:/usr/sbin/nologin\n\
             bob:x:20001:100::/nonexistent:/usr/sbin/nologin\n"
        );
        assert_eq!(group(&a), "team:x:40000:alice,bob\n");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &a).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("group")).unwrap(),
            group(&a)
        );
    }
}
