//! Names of file users and groups: what Unix, Samba and Windows all accept.

use crate::error::FilesError;

/// Longest user or group name (the Unix login name limit of shadow-utils).
pub const MAX_NAME: usize = 32;
/// Longest full name (the GECOS field).
pub const MAX_FULL_NAME: usize = 64;

/// Names that belong to the system or that Samba treats specially: a file user or group
/// may not take them.
pub const RESERVED: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "systemd-network",
    "systemd-timesync",
    "messagebus",
    "_rpc",
    "statd",
    "avahi",
    "libvirt",
    "libvirt-qemu",
    "kvm",
    "disk",
    "users",
    "staff",
    "adm",
    "tty",
    "shadow",
    "utmp",
    "sudo",
    "admin",
    "administrator",
    "guest",
    "everyone",
    "etcd",
    "chrony",
    "cairn",
];

/// Check a user or group name; the error names `field`.
///
/// 1–32 characters of `a-z 0-9 . _ -`, starting with a letter, not ending with `.` or `-`
/// (Windows drops a trailing dot), and not one of [`RESERVED`].
pub fn check_name(field: &str, name: &str) -> Result<(), FilesError> {
    if name.is_empty() {
        return Err(FilesError::invalid(field, "a name is required"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(FilesError::invalid(
            field,
            format!(
                "at most {MAX_NAME} characters (this one has {})",
                name.chars().count()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(FilesError::invalid(
            field,
            format!(
                "{bad:?} is not allowed: use lowercase letters a-z, digits and . _ - (Samba and Unix both accept those)"
            ),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(FilesError::invalid(
            field,
            "the name must start with a letter a-z",
        ));
    }
    if name.ends_with(['.', '-']) {
        return Err(FilesError::invalid(
            field,
            "the name may not end with . or - (Windows drops or mangles them)",
        ));
    }
    if RESERVED.contains(&name) {
        return Err(FilesError::invalid(
            field,
            format!("{name} is reserved for the system; choose another name"),
        ));
    }
    Ok(())
}

/// Check a full name (free text for the GECOS field): no `:`, `,`, control characters.
pub fn check_full_name(field: &str, full: &str) -> Result<(), FilesError> {
    if full.chars().count() > MAX_FULL_NAME {
        return Err(FilesError::invalid(
            field,
            format!("at most {MAX_FULL_NAME} characters"),
        ));
    }
    if let Some(bad) = full
        .chars()
        .find(|c| c.is_control() || matches!(c, ':' | ','))
    {
        return Err(FilesError::invalid(
            field,
            format!("{bad:?} is not allowed in a full name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<(), FilesError>) -> String {
        r.unwrap_err().field().unwrap().to_string()
    }

    #[test]
    fn good_names_pass() {
        for n in [
            "alice",
            "bob2",
            "a",
            "j.doe",
            "web_team",
            "x-ray",
            &"a".repeat(32),
        ] {
            check_name("name", n).unwrap();
        }
    }

    #[test]
    fn names_samba_or_unix_cannot_take_are_refused_naming_the_field() {
        for n in [
            "",
            "Alice",
            "1abc",
            "_x",
            "al ice",
            "a/b",
            "a\\b",
            "a@b",
            "a:b",
            "a,b",
            "a+b",
            "a*",
            "abc.",
            "abc-",
            "root",
            "guest",
            "nobody",
            &"a".repeat(33),
            "é",
        ] {
            assert_eq!(
                field_of(check_name("users[0].name", n)),
                "users[0].name",
                "{n:?}"
            );
        }
        let e = check_name("name", "Alice").unwrap_err().to_string();
        assert!(e.contains("'A' is not allowed"), "{e}");
    }

    #[test]
    fn full_names_keep_the_passwd_format_intact() {
        check_full_name("full_name", "Alice Example-Smith").unwrap();
        check_full_name("full_name", "").unwrap();
        for f in ["a:b", "a,b", "a\nb", &"x".repeat(65)] {
            assert_eq!(field_of(check_full_name("full_name", f)), "full_name");
        }
    }
}
