//! The DRBD commands of one node (decision 0027 "Apply on a node"): thin LVs, the `.res`
//! file written atomically, `create-md`, `up`, `adjust`, roles, `outdate`, and a minor's
//! status from `/proc/drbd`, all through a [`CommandRunner`] (a recording double in tests).

use super::config::{self, Settings};
use super::proc_status::{self, Device, ProcError};
use super::record::ResourceRecord;
use crate::error::ClusterError;
use cairn_core::command::{run_ok, CommandError, CommandRunner, Invocation};
use std::path::{Path, PathBuf};

/// What went wrong bringing a resource up.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The record cannot make a resource file (names the field).
    #[error("resource record")]
    Record(#[source] ClusterError),
    /// A program failed.
    #[error("cannot {what}")]
    Command {
        what: String,
        #[source]
        source: CommandError,
    },
    /// The resource file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: cairn_core::AtomicWriteError,
    },
    /// `/proc/drbd` could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("DRBD status")]
    Proc(#[source] ProcError),
    /// The minor is not configured (the module has no such device).
    #[error("minor {minor} is not configured in {}", path.display())]
    NoDevice { minor: u32, path: PathBuf },
}

/// One node's DRBD: where the files are and who runs the programs.
pub struct Node<'a> {
    pub runner: &'a dyn CommandRunner,
    /// Where the `.res` files go ([`config::DRBD_D`]).
    pub drbd_d: PathBuf,
    /// `/proc/drbd`.
    pub proc_drbd: PathBuf,
    pub settings: Settings,
}

impl<'a> Node<'a> {
    /// The node of a booted appliance.
    pub fn system(runner: &'a dyn CommandRunner) -> Node<'a> {
        Node {
            runner,
            drbd_d: PathBuf::from(config::DRBD_D),
            proc_drbd: PathBuf::from("/proc/drbd"),
            settings: config::SETTINGS,
        }
    }

    fn run(&self, what: String, inv: Invocation) -> Result<(), ApplyError> {
        run_ok(self.runner, &inv)
            .map(|_| ())
            .map_err(|source| ApplyError::Command { what, source })
    }

    fn drbdadm(&self, what: &str, name: &str, args: &[&str]) -> Result<(), ApplyError> {
        self.run(
            format!("{what} {name}"),
            Invocation::new("drbdadm", args.iter().copied().chain([name])),
        )
    }

    /// Load the in-tree 8.4 module (a no-op when loaded).
    pub fn load_module(&self) -> Result<(), ApplyError> {
        self.run(
            "load the drbd kernel module".into(),
            Invocation::new("modprobe", ["drbd"]),
        )
    }

    /// `lvcreate` of thin LV `vg/lv` of `bytes` in the VG's thin pool `thin_pool`.
    pub fn create_thin(
        &self,
        what: &str,
        vg: &str,
        thin_pool: &str,
        lv: &str,
        bytes: u64,
    ) -> Result<(), ApplyError> {
        self.run(
            what.to_string(),
            Invocation::new(
                "lvcreate",
                [
                    "-y".to_string(),
                    "-V".to_string(),
                    format!("{bytes}b"),
                    "-T".to_string(),
                    format!("{vg}/{thin_pool}"),
                    "-n".to_string(),
                    lv.to_string(),
                ],
            ),
        )
    }

    /// Write `<drbd_d>/<name>.res` (temp + rename, 0600: it holds the secret).
    pub fn write_res(&self, rec: &ResourceRecord) -> Result<PathBuf, ApplyError> {
        let text = config::render(rec, &self.settings).map_err(ApplyError::Record)?;
        let path = self.drbd_d.join(format!("{}.res", rec.name));
        std::fs::create_dir_all(&self.drbd_d).map_err(|e| ApplyError::Write {
            path: path.clone(),
            source: cairn_core::AtomicWriteError::Write(self.drbd_d.clone(), e),
        })?;
        cairn_core::write_atomic(&path, text.as_bytes(), 0o600).map_err(|source| {
            ApplyError::Write {
                path: path.clone(),
                source,
            }
        })?;
        Ok(path)
    }

    /// External metadata: `create-md` writes only the metadata LV; `--force` answers its
    /// questions (callers run it on new metadata only, [`super::side::plan`]).
    pub fn create_md(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm(
            "create the DRBD metadata of",
            name,
            &["--", "--force", "create-md"],
        )
    }

    /// Attach, configure and connect (`drbdadm up`).
    pub fn up(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm("bring up", name, &["up"])
    }

    /// Apply a changed `.res` file to a configured resource.
    pub fn adjust(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm("adjust", name, &["adjust"])
    }

    /// Take the resource down (disconnect, detach, unconfigure).
    pub fn down(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm("take down", name, &["down"])
    }

    /// Become Primary; `force` only for the initial sync from the node that holds the data.
    pub fn primary(&self, name: &str, force: bool) -> Result<(), ApplyError> {
        if force {
            self.drbdadm(
                "make this node primary (initial sync source) for",
                name,
                &["primary", "--force"],
            )
        } else {
            self.drbdadm("make this node primary for", name, &["primary"])
        }
    }

    /// Become Secondary (refused by DRBD while the device is open).
    pub fn secondary(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm("make this node secondary for", name, &["secondary"])
    }

    /// Resume I/O frozen by fencing (`drbdadm resume-io`), once etcd or the peer allows it.
    pub fn resume_io(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm("resume the frozen I/O of", name, &["resume-io"])
    }

    /// Mark this side Outdated (the replica, when etcd records the peer writing alone).
    pub fn outdate(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm("outdate", name, &["outdate"])
    }

    /// Reconnect discarding this side's writes while apart (the loser of
    /// [`super::current::decide`]).
    pub fn connect_discarding_my_data(&self, name: &str) -> Result<(), ApplyError> {
        self.drbdadm(
            "reconnect discarding this side's changes of",
            name,
            &["--", "--discard-my-data", "connect"],
        )
    }

    /// This minor's status from `/proc/drbd`.
    pub fn status(&self, minor: u32) -> Result<Device, ApplyError> {
        let text = read(&self.proc_drbd)?;
        let all = proc_status::parse(&text).map_err(ApplyError::Proc)?;
        all.device(minor)
            .cloned()
            .ok_or_else(|| ApplyError::NoDevice {
                minor,
                path: self.proc_drbd.clone(),
            })
    }
}

fn read(path: &Path) -> Result<String, ApplyError> {
    std::fs::read_to_string(path).map_err(|source| ApplyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::os::unix::fs::PermissionsExt;

    fn node<'a>(runner: &'a RecordingRunner, dir: &Path) -> Node<'a> {
        Node {
            runner,
            drbd_d: dir.to_path_buf(),
            proc_drbd: dir.join("proc-drbd"),
            settings: config::SETTINGS,
        }
    }

    #[test]
    fn the_res_file_is_written_atomically_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        let mut n = node(&r, dir.path());
        n.drbd_d = dir.path().join("var/lib/cairn/drbd");
        let res = n.write_res(&sample()).unwrap();
        let text = std::fs::read_to_string(&res).unwrap();
        assert_eq!(text, config::render(&sample(), &config::SETTINGS).unwrap());
        let mode = std::fs::metadata(&res).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut bad = sample();
        bad.secret = "x".into();
        assert!(matches!(
            n.write_res(&bad),
            Err(ApplyError::Record(ClusterError::Invalid {
                field: "secret",
                ..
            }))
        ));
    }

    #[test]
    fn a_failing_step_names_what_it_was_doing() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        r.expect(
            "drbdadm",
            &["up"],
            CommandOutput::failed(10, "cairn3: Failure: (114) Lower device is already claimed"),
        );
        let e = node(&r, dir.path()).up("cairn3").unwrap_err();
        assert_eq!(e.to_string(), "cannot bring up cairn3");
    }

    #[test]
    fn roles_and_lifecycle_commands() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        let n = node(&r, dir.path());
        n.primary("cairn3", true).unwrap();
        n.primary("cairn3", false).unwrap();
        n.secondary("cairn3").unwrap();
        n.adjust("cairn3").unwrap();
        n.down("cairn3").unwrap();
        n.create_thin("x", "vg", "thin", "lv", 4096).unwrap();
        assert_eq!(
            r.command_lines(),
            [
                "drbdadm primary --force cairn3",
                "drbdadm primary cairn3",
                "drbdadm secondary cairn3",
                "drbdadm adjust cairn3",
                "drbdadm down cairn3",
                "lvcreate -y -V 4096b -T vg/thin -n lv",
            ]
        );
    }

    #[test]
    fn status_reads_the_minor_from_proc() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        let n = node(&r, dir.path());
        assert!(matches!(n.status(0), Err(ApplyError::Read { .. })));
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/drbd/proc-syncing.txt");
        std::fs::copy(fixture, dir.path().join("proc-drbd")).unwrap();
        let d = n.status(3).unwrap();
        assert_eq!(d.connection, "SyncTarget");
        assert!(matches!(
            n.status(4),
            Err(ApplyError::NoDevice { minor: 4, .. })
        ));
    }

    #[test]
    fn outdate_and_discard_my_data() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        let n = node(&r, dir.path());
        n.outdate("cairn3").unwrap();
        n.connect_discarding_my_data("cairn3").unwrap();
        assert_eq!(
            r.command_lines(),
            [
                "drbdadm outdate cairn3",
                "drbdadm -- --discard-my-data connect cairn3"
            ]
        );
    }
}
