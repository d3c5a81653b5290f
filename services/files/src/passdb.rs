//! Samba's password database (tdbsam) kept in step with the file users through `pdbedit`
//! and `smbpasswd`: the password goes to their standard input and is stored only as Samba's
//! hash, never by us.

use cairn_core::command::Invocation;

/// Add `user` (its Unix account must exist) with `password`.
pub fn add(user: &str, password: &str) -> Invocation {
    Invocation::new("pdbedit", ["-a", "-t", "-u", user]).with_stdin(twice(password))
}

/// Set `user`'s password (as root: no old password asked).
pub fn set_password(user: &str, password: &str) -> Invocation {
    Invocation::new("smbpasswd", ["-s", user]).with_stdin(twice(password))
}

/// Enable or disable `user`'s sign-in.
pub fn set_enabled(user: &str, enabled: bool) -> Invocation {
    Invocation::new("smbpasswd", [if enabled { "-e" } else { "-d" }, user])
}

/// Remove `user` from the database.
pub fn delete(user: &str) -> Invocation {
    Invocation::new("pdbedit", ["-x", "-u", user])
}

/// List the database (`name:uid:full name` lines).
pub fn list() -> Invocation {
    Invocation::new("pdbedit", ["-L"])
}

/// The user names in `pdbedit -L`'s output.
pub fn parse_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

fn twice(password: &str) -> Vec<u8> {
    format!("{password}\n{password}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_on_stdin_never_on_the_command_line() {
        let inv = add("alice", "correct horse battery");
        assert_eq!(inv.display(), "pdbedit -a -t -u alice");
        assert_eq!(
            inv.stdin.as_deref(),
            Some(&b"correct horse battery\ncorrect horse battery\n"[..])
        );
        let inv = set_password("alice", "another long one");
        assert_eq!(inv.display(), "smbpasswd -s alice");
        assert!(!inv.display().contains("another"));
        assert_eq!(set_enabled("alice", false).display(), "smbpasswd -d alice");
        assert_eq!(set_enabled("alice", true).display(), "smbpasswd -e alice");
        assert_eq!(delete("alice").display(), "pdbedit -x -u alice");
    }

    #[test]
    fn pdbedit_list_gives_the_names() {
        assert_eq!(
            parse_list("alice:20000:Alice Example\nbob:20001:\n\n"),
            ["alice", "bob"]
        );
    }
}
