//! Test fixtures for the share, snapshot, volume, scrub and capacity tests: a Storage on a recording runner with pool `tank` assembled.

use crate::level::Level;
use crate::md::fake::add_array;
use crate::paths::SystemPaths;
use crate::records::{PoolRecord, Records};
use crate::service::Storage;
use cairn_core::alert::RecordingAlerts;
use cairn_core::command::{CommandOutput, RecordingRunner};
use std::sync::Arc;

/// `lvs` with only the thin pool.
pub const LVS_EMPTY: &str = r#"{"report":[{"lv":[
  {"lv_name":"thin","lv_size":"3221225472","data_percent":"10.00","metadata_percent":"4.12","origin":"","lv_attr":"twi-aotz--"}
]}]}"#;

/// `lvs` with the thin pool and share `docs` (1 GiB).
pub const LVS_WITH_SHARE: &str = r#"{"report":[{"lv":[
  {"lv_name":"share-docs","lv_size":"1073741824","data_percent":"2.50","metadata_percent":"","origin":"","lv_attr":"Vwi-aotz--"},
  {"lv_name":"thin","lv_size":"3221225472","data_percent":"10.00","metadata_percent":"4.12","origin":"","lv_attr":"twi-aotz--"}
]}]}"#;

/// `btrfs filesystem usage -b` of a 10 GiB share with 1.5 GB used.
pub const USAGE: &str = "Overall:
    Device size:\t\t  10737418240
    Device allocated:\t\t   1103101952
    Used:\t\t\t     1572864000
    Free (estimated):\t\t   9104539648\t(min: 4287381504)
";

/// A Storage plus the recording runner it uses.
pub struct TestStorage {
    pub storage: Storage,
    pub runner: Arc<RecordingRunner>,
}

impl std::ops::Deref for TestStorage {
    type Target = Storage;
    fn deref(&self) -> &Storage {
        &self.storage
    }
}

impl TestStorage {
    /// Every command line run so far.
    pub fn runner_lines(&self) -> Vec<String> {
        self.runner.command_lines()
    }

    /// Answer the next call of `program` with `out`.
    pub fn script(&self, program: &str, out: CommandOutput) {
        self.runner.expect(program, &[], out);
    }
}

/// A Storage with state in a tempdir, pool `tank` (raid1, assembled as md127, idle) in its
/// records, `runner` for every tool and recording alerts.
pub fn storage_with(
    runner: RecordingRunner,
) -> (TestStorage, tempfile::TempDir, Arc<RecordingAlerts>) {
    let dir = tempfile::tempdir().unwrap();
    add_array(
        dir.path(),
        "tank",
        "md127",
        2,
        0,
        ("idle", "none"),
        &[("vdb", "0", "in_sync"), ("vdc", "1", "in_sync")],
    );
    let state = dir.path().join("storage");
    std::fs::create_dir_all(&state).unwrap();
    Records {
        pools: vec![PoolRecord {
            name: "tank".into(),
            level: Level::Raid1,
            md_uuid: "a:b:c:d".into(),
            members: vec!["virtio-A".into(), "virtio-B".into()],
            created: 1,
        }],
    }
    .save(&state)
    .unwrap();
    let runner = Arc::new(runner);
    let alerts = Arc::new(RecordingAlerts::default());
    let storage = Storage::open(
        runner.clone(),
        dir.path(),
        alerts.clone(),
        SystemPaths::under(dir.path()),
    )
    .unwrap();
    (TestStorage { storage, runner }, dir, alerts)
}
