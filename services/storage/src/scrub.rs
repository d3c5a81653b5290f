//! Pool scrubs: md `check` of the array (progress from `sync_completed`, `mismatch_cnt` alerted) then `btrfs scrub` of every mounted share; the schedule's records.

use crate::btrfs;
use crate::data_error::DataError;
use crate::md;
use crate::schedule::{self, DEFAULT_SCRUB_DAYS};
use crate::service::Storage;
use crate::share::now_s;
use cairn_core::alert::{AlertLevel, Progress};
use cairn_core::command::run_ok;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a scrub waits on the system.
#[derive(Debug, Clone, Copy)]
pub struct ScrubTiming {
    /// Time between two progress reads.
    pub poll: Duration,
    /// Give up when progress has not moved for this long.
    pub stall: Duration,
}

impl Default for ScrubTiming {
    fn default() -> ScrubTiming {
        ScrubTiming {
            poll: Duration::from_secs(2),
            stall: Duration::from_secs(30 * 60),
        }
    }
}

/// The outcome of one scrub.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScrubResult {
    /// Unix seconds it started and finished.
    pub started: u64,
    pub finished: u64,
    /// Sectors md found inconsistent between copies/parity.
    pub mismatch_cnt: u64,
    /// Per share: errors btrfs found (corrected + uncorrectable + others).
    pub share_errors: BTreeMap<String, u64>,
    /// Bytes btrfs verified over all shares.
    pub bytes_scrubbed: u64,
}

/// Per-pool scrub settings and history (`<storage state>/scrub.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScrubState {
    /// Days between scheduled scrubs per pool (absent: the default, 30; 0: off).
    #[serde(default)]
    pub interval_days: BTreeMap<String, u32>,
    /// The last finished scrub per pool.
    #[serde(default)]
    pub last: BTreeMap<String, ScrubResult>,
    /// When the last scrub (finished or not) started, per pool.
    #[serde(default)]
    pub last_started: BTreeMap<String, u64>,
}

/// The alert key of a pool's scrub findings.
pub fn scrub_key(pool: &str) -> String {
    format!("pool/{pool}/scrub")
}

/// One waiting loop with a stall deadline: `wait` returns an error when the watched value
/// has not changed for `stall`.
struct StallWatch {
    last_value: Option<u64>,
    since: Instant,
    stall: Duration,
}

impl StallWatch {
    fn new(stall: Duration) -> StallWatch {
        StallWatch {
            last_value: None,
            since: Instant::now(),
            stall,
        }
    }

    fn observe(&mut self, value: u64, what: &str) -> Result<(), DataError> {
        if self.last_value != Some(value) {
            self.last_value = Some(value);
            self.since = Instant::now();
            return Ok(());
        }
        if self.since.elapsed() >= self.stall {
            return Err(DataError::Timeout {
                what: what.to_string(),
                seconds: self.stall.as_secs(),
            });
        }
        Ok(())
    }
}

impl Storage {
    fn scrub_file(&self) -> PathBuf {
        self.state_dir().join("scrub.json")
    }

    /// The scrub settings and history.
    pub fn scrub_state(&self) -> Result<ScrubState, DataError> {
        let path = self.scrub_file();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DataError::Records(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ScrubState::default()),
            Err(e) => Err(DataError::Read(path, e)),
        }
    }

    fn update_scrub_state(&self, f: impl FnOnce(&mut ScrubState)) -> Result<ScrubState, DataError> {
        let _guard = crate::share::records_lock();
        let mut st = self.scrub_state()?;
        f(&mut st);
        let path = self.scrub_file();
        let bytes =
            serde_json::to_vec_pretty(&st).map_err(|e| DataError::Records(path.clone(), e))?;
        cairn_core::write_atomic(&path, &bytes, 0o600).map_err(|e| DataError::Save(path, e))?;
        Ok(st)
    }

    /// Set the days between scheduled scrubs of `pool` (0 turns the schedule off).
    pub fn set_scrub_interval(&self, pool: &str, days: u32) -> Result<(), DataError> {
        if days > 366 {
            return Err(DataError::invalid("interval_days", "must be at most 366"));
        }
        self.pool_usable(pool)?;
        self.update_scrub_state(|s| {
            s.interval_days.insert(pool.to_string(), days);
        })?;
        Ok(())
    }

    /// The days between scheduled scrubs of `pool`.
    pub fn scrub_interval(&self, pool: &str) -> Result<u32, DataError> {
        Ok(self
            .scrub_state()?
            .interval_days
            .get(pool)
            .copied()
            .unwrap_or(DEFAULT_SCRUB_DAYS))
    }

    /// The pools whose scheduled scrub is due at `now`.
    pub fn scrubs_due(&self, now: u64) -> Result<Vec<String>, DataError> {
        let st = self.scrub_state()?;
        Ok(self
            .records()
            .pools
            .iter()
            .filter(|p| {
                let days = st
                    .interval_days
                    .get(&p.name)
                    .copied()
                    .unwrap_or(DEFAULT_SCRUB_DAYS);
                // A pool never scrubbed counts from its creation: a new pool is not scrubbed
                // while it still builds.
                let last = st.last_started.get(&p.name).copied().or(Some(p.created));
                schedule::scrub_due(now, last, days)
            })
            .map(|p| p.name.clone())
            .collect())
    }

    /// Scrub pool `pool`: an md `check` of its array, then `btrfs scrub` of every mounted
    /// share, reporting progress (md 0–50 %, shares 50–100 %). Findings raise
    /// `pool/<p>/scrub` (critical for uncorrectable btrfs errors, warning otherwise); a clean
    /// scrub clears it. Blocks until done.
    pub fn scrub_pool(
        &self,
        pool: &str,
        progress: &dyn Progress,
        timing: ScrubTiming,
    ) -> Result<ScrubResult, DataError> {
        self.pool_usable(pool)?;
        let _busy = self
            .claim(&[format!("scrub:{pool}")])
            .map_err(|source| DataError::Pool {
                pool: pool.to_string(),
                source,
            })?;
        let started = now_s();
        self.update_scrub_state(|s| {
            s.last_started.insert(pool.to_string(), started);
        })?;
        let mismatch_cnt = self.md_check(pool, progress, timing)?;
        let mut result = ScrubResult {
            started,
            mismatch_cnt,
            ..ScrubResult::default()
        };
        let mut uncorrectable = 0;
        let shares: Vec<String> = self
            .share_records()?
            .shares
            .into_iter()
            .filter(|s| s.pool == pool)
            .map(|s| s.name)
            .collect();
        let n = shares.len().max(1) as u64;
        for (i, share) in shares.iter().enumerate() {
            let lo = 50 + (i as u64 * 50 / n);
            let hi = 50 + ((i as u64 + 1) * 50 / n);
            let mnt = self.share_mountpoint(pool, share);
            if !self.is_mounted(&mnt) {
                continue;
            }
            // i < n: both stay within 50..=100.
            let range = (
                u8::try_from(lo).unwrap_or(100),
                u8::try_from(hi).unwrap_or(100),
            );
            let st = self.btrfs_scrub(share, &mnt, progress, range, timing)?;
            uncorrectable += st.uncorrectable_errors;
            result.bytes_scrubbed += st.bytes_scrubbed;
            result.share_errors.insert(
                share.clone(),
                st.uncorrectable_errors + st.corrected_errors + st.other_errors,
            );
        }
        result.finished = now_s();
        let share_errors: u64 = result.share_errors.values().sum();
        let key = scrub_key(pool);
        if uncorrectable > 0 {
            self.alerts().raise(
                &key,
                AlertLevel::Critical,
                &format!(
                    "scrub of pool {pool} found {uncorrectable} uncorrectable error(s) in shares"
                ),
            );
        } else if share_errors > 0 || mismatch_cnt > 0 {
            self.alerts().raise(
                &key,
                AlertLevel::Warning,
                &format!(
                    "scrub of pool {pool} found {mismatch_cnt} mismatched sector(s) in the array and {share_errors} error(s) in shares"
                ),
            );
        } else {
            self.alerts()
                .clear(&key, &format!("scrub of pool {pool} found no problems"));
        }
        let saved = result.clone();
        self.update_scrub_state(|s| {
            s.last.insert(pool.to_string(), saved);
        })?;
        progress.progress(
            100,
            &format!(
                "scrub of {pool} done: {mismatch_cnt} mismatched sector(s), {share_errors} share error(s)"
            ),
        );
        Ok(result)
    }

    /// Run `check` on the pool's array (after any running resync) and return `mismatch_cnt`.
    fn md_check(
        &self,
        pool: &str,
        progress: &dyn Progress,
        timing: ScrubTiming,
    ) -> Result<u64, DataError> {
        let paths = self.paths();
        let kernel = md::kernel_name(paths, pool).ok_or_else(|| DataError::Pool {
            pool: pool.to_string(),
            source: crate::error::StorageError::PoolUnusable {
                name: pool.to_string(),
                reason: "its array is not assembled".into(),
            },
        })?;
        let md_dir = paths.sys_block().join(&kernel).join("md");
        let action_file = md_dir.join("sync_action");
        // Another sync (initial resync, rebuild) must finish first: md refuses `check` meanwhile.
        let mut watch = StallWatch::new(timing.stall);
        loop {
            let a = md::read_md(paths, &kernel);
            if a.sync_action == "idle" {
                break;
            }
            let pct = a.sync_percent().unwrap_or(0);
            progress.progress(
                0,
                &format!(
                    "waiting for the array's {} to finish ({pct} %)",
                    a.sync_action
                ),
            );
            watch.observe(
                a.sync_completed.map(|c| c.0).unwrap_or(0),
                &format!("the {} of {kernel} to progress", a.sync_action),
            )?;
            std::thread::sleep(timing.poll);
        }
        std::fs::write(&action_file, "check\n")
            .map_err(|e| DataError::Write(action_file.clone(), e))?;
        tracing::info!(pool, kernel = %kernel, "md check started");
        progress.progress(1, &format!("checking array {kernel}"));
        let mut watch = StallWatch::new(timing.stall);
        let mut shown_pct = 0;
        loop {
            let a = md::read_md(paths, &kernel);
            if a.sync_action != "check" {
                break;
            }
            // The kernel writes `none` to `sync_completed` as the check ends, before
            // `sync_action` turns idle: keep the last percentage rather than go back to 0.
            let pct = a.sync_percent().unwrap_or(0).max(shown_pct);
            shown_pct = pct;
            progress.progress(
                // pct ≤ 100: at most 50.
                u8::try_from(1 + u32::from(pct) * 49 / 100).unwrap_or(50),
                &format!("checking array {kernel}: {pct} %"),
            );
            watch.observe(
                a.sync_completed.map(|c| c.0).unwrap_or(0),
                &format!("the check of {kernel} to progress"),
            )?;
            std::thread::sleep(timing.poll);
        }
        let mismatch_file = md_dir.join("mismatch_cnt");
        let mismatch = std::fs::read_to_string(&mismatch_file)
            .map_err(|e| DataError::Read(mismatch_file, e))?
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
        progress.progress(
            50,
            &format!("array {kernel} checked: {mismatch} mismatched sector(s)"),
        );
        Ok(mismatch)
    }

    /// `btrfs scrub` one share, reporting progress between `range.0` and `range.1` percent.
    fn btrfs_scrub(
        &self,
        share: &str,
        mnt: &std::path::Path,
        progress: &dyn Progress,
        range: (u8, u8),
        timing: ScrubTiming,
    ) -> Result<btrfs::ScrubStatus, DataError> {
        let used = self.fs_usage(mnt).map(|u| u.used_bytes).unwrap_or(0).max(1);
        run_ok(self.runner(), &btrfs::scrub_start(mnt))
            .map_err(|e| DataError::command(format!("start the scrub of share {share}"), e))?;
        progress.progress(range.0, &format!("scrubbing share {share}"));
        let mut watch = StallWatch::new(timing.stall);
        loop {
            let out = run_ok(self.runner(), &btrfs::scrub_status(mnt)).map_err(|e| {
                DataError::command(format!("read the scrub status of share {share}"), e)
            })?;
            let st =
                btrfs::parse_scrub_status(&out.stdout_text()).map_err(|r| DataError::Parse {
                    tool: "btrfs scrub status".into(),
                    reason: r.to_string(),
                })?;
            if !st.running {
                if st.aborted {
                    return Err(DataError::Timeout {
                        what: format!("the scrub of share {share}, which was aborted,"),
                        seconds: 0,
                    });
                }
                return Ok(st);
            }
            // At most 100.
            let frac = u32::try_from(st.bytes_scrubbed.min(used) * 100 / used).unwrap_or(100);
            let span = u32::from(range.1 - range.0);
            progress.progress(
                range.0 + u8::try_from(frac * span / 100).unwrap_or(range.1 - range.0),
                &format!("scrubbing share {share}: {frac} %"),
            );
            watch.observe(
                st.bytes_scrubbed,
                &format!("the scrub of share {share} to progress"),
            )?;
            std::thread::sleep(timing.poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{storage_with, LVS_EMPTY, LVS_WITH_SHARE, USAGE};
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Steps(Mutex<Vec<(u8, String)>>);
    impl Progress for Steps {
        fn progress(&self, percent: u8, message: &str) {
            self.0.lock().unwrap().push((percent, message.to_string()));
        }
    }

    fn fast() -> ScrubTiming {
        ScrubTiming {
            poll: Duration::from_millis(5),
            stall: Duration::from_secs(5),
        }
    }

    const RUNNING: &str =
        "Status: running\n\tdata_bytes_scrubbed: 786432000\n\ttree_bytes_scrubbed: 0\n";
    const DONE: &str = "Status: finished\n\tdata_bytes_scrubbed: 1572864000\n\ttree_bytes_scrubbed: 0\n\tuncorrectable_errors: 0\n\tcorrected_errors: 0\n";

    #[test]
    fn scrub_checks_the_array_then_the_shares_with_progress() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE))
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE))
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE))
            .expect("btrfs", &["scrub", "status"], CommandOutput::ok(RUNNING))
            .expect("btrfs", &["scrub", "status"], CommandOutput::ok(DONE));
        let (st, dir, alerts) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        let md = dir.path().join("sys/block/md127/md");
        std::fs::write(md.join("mismatch_cnt"), "0\n").unwrap();
        // The "kernel": once check is requested, report half done until the scrub has shown
        // it, then finish with mismatches.
        let steps = Arc::new(Steps::default());
        let seen = steps.clone();
        let md2 = md.clone();
        let kernel = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::read_to_string(md2.join("sync_action"))
                .unwrap()
                .trim()
                != "check"
            {
                assert!(Instant::now() < deadline, "check was never requested");
                std::thread::sleep(Duration::from_millis(2));
            }
            std::fs::write(md2.join("sync_completed"), "500 / 1000\n").unwrap();
            while !seen
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|(_, m)| m.ends_with(": 50 %"))
            {
                assert!(
                    Instant::now() < deadline,
                    "half-way progress was never shown"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            std::fs::write(md2.join("mismatch_cnt"), "128\n").unwrap();
            std::fs::write(md2.join("sync_completed"), "none\n").unwrap();
            std::fs::write(md2.join("sync_action"), "idle\n").unwrap();
        });
        let res = st.scrub_pool("tank", steps.as_ref(), fast()).unwrap();
        kernel.join().unwrap();
        assert_eq!(res.mismatch_cnt, 128);
        assert_eq!(res.bytes_scrubbed, 1_572_864_000);
        assert_eq!(res.share_errors["docs"], 0);
        let steps = steps.0.lock().unwrap();
        assert!(
            steps.iter().any(|(_, m)| m == "checking array md127: 50 %"),
            "{steps:?}"
        );
        assert!(
            steps
                .iter()
                .any(|(p, m)| *p == 75 && m == "scrubbing share docs: 50 %"),
            "{steps:?}"
        );
        assert_eq!(steps.last().unwrap().0, 100);
        let pcts: Vec<u8> = steps.iter().map(|s| s.0).collect();
        assert!(pcts.windows(2).all(|w| w[0] <= w[1]), "monotonic: {pcts:?}");
        assert_eq!(alerts.level("pool/tank/scrub"), Some(AlertLevel::Warning));
        assert!(st
            .runner_lines()
            .contains(&"btrfs scrub start /var/lib/cairn/shares/tank/docs".to_string()));
        let state = st.scrub_state().unwrap();
        assert_eq!(state.last["tank"].mismatch_cnt, 128);
        assert!(!st
            .scrubs_due(res.finished + 86_400)
            .unwrap()
            .contains(&"tank".to_string()));
        assert!(st
            .scrubs_due(res.finished + 31 * 86_400)
            .unwrap()
            .contains(&"tank".to_string()));
    }

    #[test]
    fn a_stalled_resync_times_out_naming_what_it_waited_for() {
        let (st, dir, _a) = storage_with(RecordingRunner::new());
        let md = dir.path().join("sys/block/md127/md");
        std::fs::write(md.join("sync_action"), "resync\n").unwrap();
        std::fs::write(md.join("sync_completed"), "10 / 1000\n").unwrap();
        let timing = ScrubTiming {
            poll: Duration::from_millis(5),
            stall: Duration::from_millis(50),
        };
        let e = st
            .scrub_pool("tank", &Steps::default(), timing)
            .unwrap_err();
        assert!(e.to_string().contains("resync of md127"), "{e}");
    }

    #[test]
    fn interval_is_validated() {
        let (st, _d, _a) = storage_with(RecordingRunner::new());
        assert_eq!(
            st.set_scrub_interval("tank", 400).unwrap_err().field(),
            Some("interval_days")
        );
        assert_eq!(st.scrub_interval("tank").unwrap(), 30);
        st.set_scrub_interval("tank", 7).unwrap();
        assert_eq!(st.scrub_interval("tank").unwrap(), 7);
    }
}
