//! File users and groups as a service: each change is checked on a copy of the record,
//! then the Unix accounts and Samba's password database follow, then the record is saved;
//! a step that fails undoes the ones before it.

use crate::accounts::{Accounts, Group, NewUser, User};
use crate::error::FilesError;
use crate::passdb;
use crate::store::AccountStore;
use crate::unix;
use cairn_core::command::{run_ok, CommandRunner};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A user as shown: the record plus its groups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserView {
    #[serde(flatten)]
    pub user: User,
    pub groups: Vec<String>,
}

/// File users and groups on this node.
pub struct FileUsers {
    store: Box<dyn AccountStore>,
    runner: Arc<dyn CommandRunner>,
    unix_dir: PathBuf,
    lock: Mutex<()>,
}

impl FileUsers {
    /// The service over `store`, running Samba's tools through `runner` and writing the
    /// Unix account files in `unix_dir` (normally [`unix::EXTRAUSERS_DIR`]).
    pub fn new(
        store: Box<dyn AccountStore>,
        runner: Arc<dyn CommandRunner>,
        unix_dir: impl Into<PathBuf>,
    ) -> FileUsers {
        FileUsers {
            store,
            runner,
            unix_dir: unix_dir.into(),
            lock: Mutex::new(()),
        }
    }

    /// The current record.
    pub fn accounts(&self) -> Result<Accounts, FilesError> {
        self.store.load()
    }

    /// Every user with its groups.
    pub fn users(&self) -> Result<Vec<UserView>, FilesError> {
        let a = self.store.load()?;
        Ok(a.users
            .values()
            .map(|u| UserView {
                user: u.clone(),
                groups: a.groups_of(&u.name),
            })
            .collect())
    }

    /// Every group.
    pub fn groups(&self) -> Result<Vec<Group>, FilesError> {
        Ok(self.store.load()?.groups.into_values().collect())
    }

    /// Create a user: Unix account, Samba password, record.
    pub fn create_user(&self, req: &NewUser) -> Result<User, FilesError> {
        let mut created = None;
        self.change(
            |a| {
                created = Some(a.create_user(req)?);
                Ok(())
            },
            |s| {
                run_ok(&*s.runner, &passdb::add(&req.name, &req.password))
                    .map(drop)
                    .map_err(|e| FilesError::command(format!("add {} to Samba", req.name), e))
            },
            |s| {
                let _ = run_ok(&*s.runner, &passdb::delete(&req.name));
            },
        )?;
        created.ok_or_else(|| FilesError::invalid("name", "not created"))
    }

    /// Change a user's password (same policy as at creation).
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), FilesError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.store.load()?.user(name)?;
        crate::accounts::check_password("password", password)?;
        run_ok(&*self.runner, &passdb::set_password(name, password))
            .map_err(|e| FilesError::command(format!("set {name}'s Samba password"), e))?;
        Ok(())
    }

    /// Enable or disable a user's sign-in.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), FilesError> {
        self.change(
            |a| a.set_enabled(name, enabled),
            |s| {
                run_ok(&*s.runner, &passdb::set_enabled(name, enabled))
                    .map(drop)
                    .map_err(|e| FilesError::command(format!("change {name} in Samba"), e))
            },
            |s| {
                let _ = run_ok(&*s.runner, &passdb::set_enabled(name, !enabled));
            },
        )
    }

    /// Delete a user (its files keep their numeric owner, which is never reused).
    pub fn delete_user(&self, name: &str) -> Result<(), FilesError> {
        self.change(
            |a| a.delete_user(name).map(drop),
            |s| {
                let out = s
                    .runner
                    .run(&passdb::delete(name))
                    .map_err(|e| FilesError::command(format!("remove {name} from Samba"), e))?;
                // Already gone from Samba is fine: the record is what we remove.
                if !out.success() && !out.stderr_text().contains("not exist") {
                    tracing::warn!("pdbedit -x {name}: {}", out.stderr_text());
                }
                Ok(())
            },
            |_| {},
        )
    }

    /// Set exactly the groups of a user.
    pub fn set_user_groups(&self, name: &str, groups: &[String]) -> Result<(), FilesError> {
        self.change(|a| a.set_user_groups(name, groups), |_| Ok(()), |_| {})
    }

    /// Create a group.
    pub fn create_group(&self, name: &str, members: &[String]) -> Result<Group, FilesError> {
        let mut created = None;
        self.change(
            |a| {
                created = Some(a.create_group(name, members)?);
                Ok(())
            },
            |_| Ok(()),
            |_| {},
        )?;
        created.ok_or_else(|| FilesError::invalid("name", "not created"))
    }

    /// Set exactly the members of a group.
    pub fn set_members(&self, name: &str, members: &[String]) -> Result<(), FilesError> {
        self.change(|a| a.set_members(name, members), |_| Ok(()), |_| {})
    }

    /// Delete a group.
    pub fn delete_group(&self, name: &str) -> Result<(), FilesError> {
        self.change(|a| a.delete_group(name).map(drop), |_| Ok(()), |_| {})
    }

    /// Write the Unix account files from the record (at start-up).
    pub fn write_unix(&self) -> Result<(), FilesError> {
        unix::write(&self.unix_dir, &self.store.load()?)
    }

    /// Bring Samba's database in line with the record (at start-up, after a restore):
    /// entries of users the record does not know are removed, each disabled user is
    /// disabled in Samba again. Returns the record's users Samba does not have: they need a
    /// new password before they can sign in (the record holds none to restore).
    pub fn reconcile(&self) -> Result<Vec<String>, FilesError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let accounts = self.store.load()?;
        unix::write(&self.unix_dir, &accounts)?;
        let out = run_ok(&*self.runner, &passdb::list())
            .map_err(|e| FilesError::command("list Samba's users", e))?;
        let in_samba = passdb::parse_list(&out.stdout_text());
        for name in in_samba.iter().filter(|n| !accounts.users.contains_key(*n)) {
            run_ok(&*self.runner, &passdb::delete(name))
                .map_err(|e| FilesError::command(format!("remove {name} from Samba"), e))?;
        }
        for u in accounts.users.values().filter(|u| !u.enabled) {
            if in_samba.contains(&u.name) {
                run_ok(&*self.runner, &passdb::set_enabled(&u.name, false))
                    .map_err(|e| FilesError::command(format!("disable {} in Samba", u.name), e))?;
            }
        }
        Ok(accounts
            .users
            .keys()
            .filter(|n| !in_samba.contains(n))
            .cloned()
            .collect())
    }

    /// Check `edit` on a copy, write the Unix files, run `samba` (undone by `undo_samba` if
    /// the record cannot be saved), then save; the Unix files go back on any failure.
    fn change(
        &self,
        edit: impl FnOnce(&mut Accounts) -> Result<(), FilesError>,
        samba: impl FnOnce(&FileUsers) -> Result<(), FilesError>,
        undo_samba: impl FnOnce(&FileUsers),
    ) -> Result<(), FilesError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.store.load()?;
        let mut after = before.clone();
        edit(&mut after)?;
        after.revision = before.revision + 1;
        unix::write(&self.unix_dir, &after)?;
        if let Err(e) = samba(self) {
            let _ = unix::write(&self.unix_dir, &before);
            return Err(e);
        }
        if let Err(e) = self.store.replace(&after) {
            undo_samba(self);
            let _ = unix::write(&self.unix_dir, &before);
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalAccountStore;
    use cairn_core::command::{CommandOutput, RecordingRunner};

    fn setup() -> (tempfile::TempDir, Arc<RecordingRunner>, FileUsers) {
        let dir = tempfile::tempdir().unwrap();
        let runner = Arc::new(RecordingRunner::new());
        let users = FileUsers::new(
            Box::new(LocalAccountStore::new(
                dir.path().join("state/accounts.json"),
            )),
            runner.clone(),
            dir.path().join("extrausers"),
        );
        (dir, runner, users)
    }

    fn alice() -> NewUser {
        NewUser {
            name: "alice".into(),
            full_name: "Alice".into(),
            password: "correct horse battery".into(),
            groups: vec![],
        }
    }

    #[test]
    fn a_user_gets_a_unix_account_then_a_samba_password_then_a_record() {
        let (dir, runner, users) = setup();
        users.create_group("team", &[]).unwrap();
        let u = users
            .create_user(&NewUser {
                groups: vec!["team".into()],
                ..alice()
            })
            .unwrap();
        assert_eq!(u.uid, 20000);
        assert_eq!(runner.command_lines(), ["pdbedit -a -t -u alice"]);
        let passwd = std::fs::read_to_string(dir.path().join("extrausers/passwd")).unwrap();
        assert!(passwd.starts_with("alice:x:20000:100:"), "{passwd}");
        let group = std::fs::read_to_string(dir.path().join("extrausers/group")).unwrap();
        assert_eq!(group, "team:x:40000:alice\n");
        let state = std::fs::read_to_string(dir.path().join("state/accounts.json")).unwrap();
        assert!(!state.contains("correct horse"), "{state}");
        assert_eq!(users.users().unwrap()[0].groups, ["team"]);

        users
            .set_password("alice", "another long password")
            .unwrap();
        users.set_enabled("alice", false).unwrap();
        users.delete_user("alice").unwrap();
        assert_eq!(
            runner.command_lines()[1..],
            [
                "smbpasswd -s alice",
                "smbpasswd -d alice",
                "pdbedit -x -u alice"
            ]
        );
        assert!(users.users().unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("extrausers/passwd")).unwrap(),
            ""
        );
    }

    #[test]
    fn samba_refusing_leaves_no_account_behind() {
        let (dir, runner, users) = setup();
        runner.expect(
            "pdbedit",
            &["-a"],
            CommandOutput::failed(1, "Failed to add entry for user alice."),
        );
        let e = users.create_user(&alice()).unwrap_err();
        assert!(e.to_string().contains("add alice to Samba"), "{e}");
        assert!(users.users().unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("extrausers/passwd")).unwrap(),
            ""
        );
        // The ID was not spent either.
        assert_eq!(users.create_user(&alice()).unwrap().uid, 20000);
    }

    #[test]
    fn reconcile_drops_strangers_redisables_and_names_the_missing() {
        let (_dir, runner, users) = setup();
        for name in ["alice", "bob", "carol"] {
            users
                .create_user(&NewUser {
                    name: name.into(),
                    ..alice()
                })
                .unwrap();
        }
        users.set_enabled("bob", false).unwrap();
        runner.expect(
            "pdbedit",
            &["-L"],
            CommandOutput::ok("alice:20000:\nbob:20001:\nmallory:20099:\n"),
        );
        let before = runner.command_lines().len();
        assert_eq!(users.reconcile().unwrap(), ["carol"]);
        assert_eq!(
            runner.command_lines()[before..],
            ["pdbedit -L", "pdbedit -x -u mallory", "smbpasswd -d bob"]
        );
    }

    #[test]
    fn bad_input_runs_nothing() {
        let (_dir, runner, users) = setup();
        let e = users
            .create_user(&NewUser {
                password: "short".into(),
                ..alice()
            })
            .unwrap_err();
        assert_eq!(e.field(), Some("password"));
        users.create_user(&alice()).unwrap();
        let e = users.set_password("alice", "short").unwrap_err();
        assert_eq!(e.field(), Some("password"));
        assert!(matches!(
            users
                .set_password("zed", "long enough password")
                .unwrap_err(),
            FilesError::NotFound { .. }
        ));
        assert_eq!(runner.command_lines(), ["pdbedit -a -t -u alice"]);
    }
}
