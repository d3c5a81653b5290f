//! The record of file users and groups and the pure operations on it: validation, stable
//! IDs from fixed ranges (never reused), group membership. No I/O: the store keeps the
//! record, `users.rs` keeps Samba and the Unix accounts in step with it.

use crate::error::FilesError;
use crate::names::{check_full_name, check_name};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

/// User IDs of file users.
pub const UID_RANGE: RangeInclusive<u32> = 20000..=39999;
/// Group IDs of file groups (apart from the users' range, so a number names one thing).
pub const GID_RANGE: RangeInclusive<u32> = 40000..=59999;
/// The primary group of every file user (Debian's `users`, gid 100).
pub const PRIMARY_GID: u32 = 100;
/// Shortest password (the admin password's policy, `cairn_api::identity::password`).
pub const PASSWORD_MIN: usize = 12;
/// Longest password (the admin password's policy).
pub const PASSWORD_MAX: usize = 1024;

/// A user for file access (SMB and NFS), separate from the admin account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    #[serde(default)]
    pub full_name: String,
    /// A disabled user keeps its files and ID but cannot sign in over SMB.
    pub enabled: bool,
}

/// A group of file users.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    /// Member user names.
    #[serde(default)]
    pub members: BTreeSet<String>,
}

/// The whole record: one document, so it can move as one value into the cluster's settings
/// store (etcd, issue 17) and be replaced with a compare-and-swap on `revision`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accounts {
    /// Bumped by every saved change.
    pub revision: u64,
    /// The next user ID to hand out; IDs of deleted users are not reused, so files left
    /// behind never fall to a new user.
    pub next_uid: u32,
    /// The next group ID to hand out (not reused either).
    pub next_gid: u32,
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
}

impl Default for Accounts {
    fn default() -> Accounts {
        Accounts {
            revision: 0,
            next_uid: *UID_RANGE.start(),
            next_gid: *GID_RANGE.start(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }
}

/// A new user as requested.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewUser {
    pub name: String,
    #[serde(default)]
    pub full_name: String,
    pub password: String,
    /// Groups to join (must exist).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Check a password against the admin password's policy; the error names `field`.
pub fn check_password(field: &str, password: &str) -> Result<(), FilesError> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err(FilesError::invalid(
            field,
            format!("the password must be at least {PASSWORD_MIN} characters long (this one has {n}); a few unrelated words make a good one"),
        ));
    }
    if n > PASSWORD_MAX {
        return Err(FilesError::invalid(
            field,
            format!(
                "the password must be at most {PASSWORD_MAX} characters long (this one has {n})"
            ),
        ));
    }
    if password.contains(['\n', '\r', '\0']) {
        return Err(FilesError::invalid(
            field,
            "the password may not contain line breaks or NUL characters",
        ));
    }
    Ok(())
}

impl Accounts {
    /// The user `name`.
    pub fn user(&self, name: &str) -> Result<&User, FilesError> {
        self.users.get(name).ok_or_else(|| FilesError::NotFound {
            kind: "user",
            name: name.to_string(),
        })
    }

    /// The group `name`.
    pub fn group(&self, name: &str) -> Result<&Group, FilesError> {
        self.groups.get(name).ok_or_else(|| FilesError::NotFound {
            kind: "group",
            name: name.to_string(),
        })
    }

    /// The groups `user` belongs to, by name.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.members.contains(user))
            .map(|g| g.name.clone())
            .collect()
    }

    /// Add a user (enabled) with the next free ID; returns it. The password is only checked
    /// here: it goes to Samba's password database, never into this record.
    pub fn create_user(&mut self, req: &NewUser) -> Result<User, FilesError> {
        check_name("name", &req.name)?;
        check_full_name("full_name", &req.full_name)?;
        check_password("password", &req.password)?;
        if self.users.contains_key(&req.name) {
            return Err(FilesError::Conflict {
                field: "name".into(),
                message: format!("a user named {} already exists", req.name),
            });
        }
        self.check_groups_exist("groups", &req.groups)?;
        let uid = self.next_uid;
        if !UID_RANGE.contains(&uid) {
            return Err(FilesError::Conflict {
                field: "name".into(),
                message: format!(
                    "every user ID of {}–{} has been handed out",
                    UID_RANGE.start(),
                    UID_RANGE.end()
                ),
            });
        }
        self.next_uid = uid + 1;
        let user = User {
            name: req.name.clone(),
            uid,
            full_name: req.full_name.clone(),
            enabled: true,
        };
        self.users.insert(user.name.clone(), user.clone());
        for g in &req.groups {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.insert(req.name.clone());
            }
        }
        Ok(user)
    }

    /// Enable or disable a user.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> Result<(), FilesError> {
        self.user(name)?;
        if let Some(u) = self.users.get_mut(name) {
            u.enabled = enabled;
        }
        Ok(())
    }

    /// Change a user's full name.
    pub fn set_full_name(&mut self, name: &str, full: &str) -> Result<(), FilesError> {
        self.user(name)?;
        check_full_name("full_name", full)?;
        if let Some(u) = self.users.get_mut(name) {
            u.full_name = full.to_string();
        }
        Ok(())
    }

    /// Remove a user and its memberships; its ID is not handed out again.
    pub fn delete_user(&mut self, name: &str) -> Result<User, FilesError> {
        let user = self.user(name)?.clone();
        self.users.remove(name);
        for g in self.groups.values_mut() {
            g.members.remove(name);
        }
        Ok(user)
    }

    /// Set exactly the groups `user` belongs to.
    pub fn set_user_groups(&mut self, user: &str, groups: &[String]) -> Result<(), FilesError> {
        self.user(user)?;
        self.check_groups_exist("groups", groups)?;
        for g in self.groups.values_mut() {
            if groups.contains(&g.name) {
                g.members.insert(user.to_string());
            } else {
                g.members.remove(user);
            }
        }
        Ok(())
    }

    /// Add a group with the next free ID and `members` (which must exist).
    pub fn create_group(&mut self, name: &str, members: &[String]) -> Result<Group, FilesError> {
        check_name("name", name)?;
        if self.groups.contains_key(name) {
            return Err(FilesError::Conflict {
                field: "name".into(),
                message: format!("a group named {name} already exists"),
            });
        }
        self.check_users_exist("members", members)?;
        let gid = self.next_gid;
        if !GID_RANGE.contains(&gid) {
            return Err(FilesError::Conflict {
                field: "name".into(),
                message: format!(
                    "every group ID of {}–{} has been handed out",
                    GID_RANGE.start(),
                    GID_RANGE.end()
                ),
            });
        }
        self.next_gid = gid + 1;
        let group = Group {
            name: name.to_string(),
            gid,
            members: members.iter().cloned().collect(),
        };
        self.groups.insert(name.to_string(), group.clone());
        Ok(group)
    }

    /// Set exactly the members of `group`.
    pub fn set_members(&mut self, group: &str, members: &[String]) -> Result<(), FilesError> {
        self.group(group)?;
        self.check_users_exist("members", members)?;
        if let Some(g) = self.groups.get_mut(group) {
            g.members = members.iter().cloned().collect();
        }
        Ok(())
    }

    /// Remove a group (its members stay); its ID is not handed out again.
    pub fn delete_group(&mut self, name: &str) -> Result<Group, FilesError> {
        let g = self.group(name)?.clone();
        self.groups.remove(name);
        Ok(g)
    }

    fn check_groups_exist(&self, field: &str, groups: &[String]) -> Result<(), FilesError> {
        for (i, g) in groups.iter().enumerate() {
            if !self.groups.contains_key(g) {
                return Err(FilesError::invalid(
                    format!("{field}[{i}]"),
                    format!("there is no group named {g:?}"),
                ));
            }
        }
        Ok(())
    }

    fn check_users_exist(&self, field: &str, users: &[String]) -> Result<(), FilesError> {
        for (i, u) in users.iter().enumerate() {
            if !self.users.contains_key(u) {
                return Err(FilesError::invalid(
                    format!("{field}[{i}]"),
                    format!("there is no user named {u:?}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(name: &str, groups: &[&str]) -> NewUser {
        NewUser {
            name: name.into(),
            full_name: String::new(),
            password: "correct horse battery".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn ids_come_from_their_ranges_in_order_and_are_never_reused() {
        let mut a = Accounts::default();
        assert_eq!(a.create_user(&new_user("alice", &[])).unwrap().uid, 20000);
        assert_eq!(a.create_user(&new_user("bob", &[])).unwrap().uid, 20001);
        a.delete_user("bob").unwrap();
        assert_eq!(a.create_user(&new_user("carol", &[])).unwrap().uid, 20002);
        assert_eq!(a.create_group("staff2", &[]).unwrap().gid, 40000);
        a.delete_group("staff2").unwrap();
        assert_eq!(a.create_group("team", &[]).unwrap().gid, 40001);
    }

    #[test]
    fn an_exhausted_range_is_a_clear_refusal() {
        let mut a = Accounts {
            next_uid: *UID_RANGE.end(),
            ..Accounts::default()
        };
        a.create_user(&new_user("last", &[])).unwrap();
        let e = a.create_user(&new_user("one-more", &[])).unwrap_err();
        assert!(e.to_string().contains("20000–39999"), "{e}");
        assert!(!a.users.contains_key("one-more"));
    }

    #[test]
    fn the_record_round_trips_through_json_without_any_password() {
        let mut a = Accounts::default();
        a.create_group("team", &[]).unwrap();
        a.create_user(&new_user("alice", &["team"])).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert!(!json.contains("correct horse"), "{json}");
        assert_eq!(serde_json::from_str::<Accounts>(&json).unwrap(), a);
    }

    #[test]
    fn membership_follows_users_and_groups() {
        let mut a = Accounts::default();
        a.create_group("team", &[]).unwrap();
        a.create_group("ops", &[]).unwrap();
        a.create_user(&new_user("alice", &["team"])).unwrap();
        a.create_user(&new_user("bob", &[])).unwrap();
        assert_eq!(a.groups_of("alice"), ["team"]);
        a.set_user_groups("alice", &["ops".into()]).unwrap();
        assert_eq!(a.groups_of("alice"), ["ops"]);
        a.set_members("team", &["alice".into(), "bob".into()])
            .unwrap();
        assert_eq!(a.groups_of("bob"), ["team"]);
        a.delete_user("bob").unwrap();
        assert!(a.group("team").unwrap().members.iter().eq(["alice"]));
    }

    #[test]
    fn bad_requests_name_their_field() {
        let mut a = Accounts::default();
        a.create_user(&new_user("alice", &[])).unwrap();
        let cases: Vec<(Result<User, FilesError>, &str)> = vec![
            (a.clone().create_user(&new_user("Alice", &[])), "name"),
            (a.clone().create_user(&new_user("alice", &[])), "name"),
            (
                a.clone().create_user(&new_user("bob", &["nosuch"])),
                "groups[0]",
            ),
            (
                a.clone().create_user(&NewUser {
                    password: "short".into(),
                    ..new_user("bob", &[])
                }),
                "password",
            ),
            (
                a.clone().create_user(&NewUser {
                    password: "twelve chars\nmore".into(),
                    ..new_user("bob", &[])
                }),
                "password",
            ),
            (
                a.clone().create_user(&NewUser {
                    full_name: "a:b".into(),
                    ..new_user("bob", &[])
                }),
                "full_name",
            ),
        ];
        for (r, field) in cases {
            assert_eq!(r.unwrap_err().field(), Some(field));
        }
        let e = a
            .create_group("team", &["alice".into(), "zed".into()])
            .unwrap_err();
        assert_eq!(e.field(), Some("members[1]"));
        assert!(e.to_string().contains("no user named \"zed\""), "{e}");
        assert!(matches!(
            a.delete_user("zed").unwrap_err(),
            FilesError::NotFound { kind: "user", .. }
        ));
    }

    #[test]
    fn the_password_policy_matches_the_admin_one() {
        check_password("password", &"x".repeat(12)).unwrap();
        assert!(check_password("password", &"x".repeat(11)).is_err());
        assert!(check_password("password", &"x".repeat(1025)).is_err());
        // Counted in characters, not bytes.
        check_password("password", &"é".repeat(12)).unwrap();
    }
}
