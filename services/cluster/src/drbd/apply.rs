//! Bringing a resource up on this node (decision 0027 "Apply on a node"): the metadata thin
//! LV, `drbdadm create-md`, the `.res` file written atomically, `drbdadm up`, the initial
//! `primary --force` on the node that holds the data, and its status, all through a
//! [`CommandRunner`] (a recording double in tests).

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
    /// This node holds no side of the resource.
    #[error("{node} holds no side of resource {resource}")]
    NotASide { node: String, resource: String },
    /// A device path is not `/dev/<vg>/<lv>`.
    #[error("{field}: {path:?} is not /dev/<vg>/<lv>")]
    DevicePath { field: &'static str, path: String },
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

/// `/dev/<vg>/<lv>` → (vg, lv).
fn vg_lv(field: &'static str, path: &str) -> Result<(String, String), ApplyError> {
    let bad = || ApplyError::DevicePath {
        field,
        path: path.to_string(),
    };
    let rest = path.strip_prefix("/dev/").ok_or_else(bad)?;
    let (vg, lv) = rest.split_once('/').ok_or_else(bad)?;
    if vg.is_empty() || lv.is_empty() || lv.contains('/') {
        return Err(bad());
    }
    Ok((vg.to_string(), lv.to_string()))
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

    /// Create this side's metadata LV: a thin LV of [`super::names::metadata_bytes`] in
    /// `thin_pool` (`<vg>/<thin pool lv>`) of the metadata device's VG.
    pub fn create_meta_lv(
        &self,
        rec: &ResourceRecord,
        me: &str,
        thin_pool_lv: &str,
        extent_bytes: u64,
    ) -> Result<(), ApplyError> {
        let side = self.side(rec, me)?;
        let (vg, lv) = vg_lv("sides.meta_disk", &side.meta_disk)?;
        let bytes = super::names::metadata_bytes(rec.size_bytes, extent_bytes);
        self.run(
            format!("create the DRBD metadata volume {vg}/{lv}"),
            Invocation::new(
                "lvcreate",
                [
                    "-y".to_string(),
                    "-V".to_string(),
                    format!("{bytes}b"),
                    "-T".to_string(),
                    format!("{vg}/{thin_pool_lv}"),
                    "-n".to_string(),
                    lv,
                ],
            ),
        )
    }

    fn side<'r>(
        &self,
        rec: &'r ResourceRecord,
        me: &str,
    ) -> Result<&'r super::record::Side, ApplyError> {
        rec.side(me).ok_or_else(|| ApplyError::NotASide {
            node: me.to_string(),
            resource: rec.name.clone(),
        })
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

    /// Everything from nothing to a connected (or connecting) resource on this node:
    /// module, metadata LV, `.res`, `create-md`, `up`; then, when this node is the
    /// record's primary and `initial` is set, `primary --force` (it holds the data; the
    /// peer becomes SyncTarget).
    pub fn bring_up(
        &self,
        rec: &ResourceRecord,
        me: &str,
        thin_pool_lv: &str,
        extent_bytes: u64,
        initial: bool,
    ) -> Result<(), ApplyError> {
        self.side(rec, me)?;
        // Render first: a bad record changes nothing on the node.
        config::render(rec, &self.settings).map_err(ApplyError::Record)?;
        self.load_module()?;
        self.create_meta_lv(rec, me, thin_pool_lv, extent_bytes)?;
        self.write_res(rec)?;
        // External metadata: create-md writes only the metadata LV; `--force` answers its
        // questions (there is no data to lose on a fresh metadata LV).
        self.drbdadm(
            "create the DRBD metadata of",
            &rec.name,
            &["--", "--force", "create-md"],
        )?;
        self.drbdadm("bring up", &rec.name, &["up"])?;
        if initial && rec.primary == me {
            self.drbdadm(
                "make this node primary (initial sync source) for",
                &rec.name,
                &["primary", "--force"],
            )?;
        }
        Ok(())
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
    fn primary_brings_up_and_forces_the_initial_sync() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        node(&r, dir.path())
            .bring_up(&sample(), "node1", "thinpool", 4 << 20, true)
            .unwrap();
        assert_eq!(
            r.command_lines(),
            [
                "modprobe drbd",
                "lvcreate -y -V 4194304b -T pool1/thinpool -n vm-web-disk0_drbdmd",
                "drbdadm -- --force create-md cairn3",
                "drbdadm up cairn3",
                "drbdadm primary --force cairn3",
            ]
        );
        let res = dir.path().join("cairn3.res");
        let text = std::fs::read_to_string(&res).unwrap();
        assert_eq!(text, config::render(&sample(), &config::SETTINGS).unwrap());
        let mode = std::fs::metadata(&res).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn replica_comes_up_without_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        let mut n = node(&r, dir.path());
        n.drbd_d = dir.path().join("var/lib/cairn/drbd");
        n.bring_up(&sample(), "node2", "thinpool", 4 << 20, true)
            .unwrap();
        let lines = r.command_lines();
        assert_eq!(
            lines[1],
            "lvcreate -y -V 4194304b -T pool2/thinpool -n vm-web-disk0_drbdmd"
        );
        assert_eq!(lines.last().unwrap(), "drbdadm up cairn3");
        assert!(!lines.iter().any(|l| l.contains("primary")));
        assert!(dir.path().join("var/lib/cairn/drbd/cairn3.res").is_file());
    }

    #[test]
    fn a_bad_record_or_a_stranger_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        let mut bad = sample();
        bad.secret = "x".into();
        let n = node(&r, dir.path());
        assert!(matches!(
            n.bring_up(&bad, "node1", "thinpool", 4 << 20, true),
            Err(ApplyError::Record(ClusterError::Invalid {
                field: "secret",
                ..
            }))
        ));
        assert!(matches!(
            n.bring_up(&sample(), "node3", "thinpool", 4 << 20, true),
            Err(ApplyError::NotASide { .. })
        ));
        let mut odd = sample();
        odd.sides[0].meta_disk = "/dev/mapper-thing".into();
        assert!(matches!(
            n.create_meta_lv(&odd, "node1", "thinpool", 4 << 20),
            Err(ApplyError::DevicePath {
                field: "sides.meta_disk",
                ..
            })
        ));
        assert!(r.command_lines().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_failing_step_stops_and_names_what_it_was_doing() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        r.expect(
            "drbdadm",
            &["up"],
            CommandOutput::failed(10, "cairn3: Failure: (114) Lower device is already claimed"),
        );
        let e = node(&r, dir.path())
            .bring_up(&sample(), "node1", "thinpool", 4 << 20, true)
            .unwrap_err();
        assert_eq!(e.to_string(), "cannot bring up cairn3");
        assert!(!r.command_lines().iter().any(|l| l.contains("primary")));
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
