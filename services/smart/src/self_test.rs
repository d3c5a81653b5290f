//! SMART self-tests: the schedule's due tests started in the background, and a test run on
//! request and followed to its end with the drive's progress.

use crate::error::SmartError;
use crate::model::SmartctlOutput;
use crate::rules;
use crate::schedule::{self, TestKind};
use crate::service::{candidates, DiskState, SmartService};
use crate::smartctl;
use crate::store;
use crate::views::{self, SelfTestView, TestResult};
use cairn_core::alert::Progress;
use cairn_core::disk::DiskBus;
use std::time::{Duration, Instant};

impl SmartService {
    /// Check the schedule and start the self-tests that are due (without waiting for
    /// them: the next polls show their progress and results).
    pub fn run_schedule(&self) {
        let now = (self.clock)();
        let due = {
            let inner = self.lock();
            schedule::due(&candidates(&inner), now)
        };
        for (id, kind) in due {
            let dev = match self.lock().disks.get(&id) {
                Some(s) => s.disk.dev.clone(),
                None => continue,
            };
            let inv = smartctl::start_test(&self.cfg.smartctl, kind, &dev);
            match self.runner.run(&inv) {
                Ok(out) if out.code == Some(0) => {
                    tracing::info!("started the scheduled {} self-test on {id}", kind.as_str())
                }
                Ok(out) => tracing::warn!(
                    "the scheduled {} self-test on {id} was refused: {}",
                    kind.as_str(),
                    refusal(&out)
                ),
                Err(e) => {
                    tracing::warn!("cannot start the {} self-test on {id}: {e}", kind.as_str())
                }
            }
            // Recorded either way, so a drive that refuses is not asked again every check.
            self.record_test(&id, kind, now);
        }
    }

    fn record_test(&self, id: &str, kind: TestKind, now: u64) {
        let mut inner = self.lock();
        let rec = inner.tests.entry(id.to_string()).or_default();
        match kind {
            TestKind::Short => rec.last_short = Some(now),
            TestKind::Long => rec.last_long = Some(now),
        }
        if let Err(e) = store::save(&self.dir.join("schedule.json"), &inner.tests) {
            tracing::warn!("{e}");
        }
    }

    /// Whether a self-test could start on `id` now (known, not virtual, none of ours running).
    pub fn check_self_test(&self, id: &str) -> Result<(), SmartError> {
        let inner = self.lock();
        let s = inner
            .disks
            .get(id)
            .ok_or_else(|| SmartError::UnknownDisk(id.to_string()))?;
        may_start_test(id, s)
    }

    /// Run a self-test now and follow it to the end, reporting the drive's progress.
    /// Returns how it ended, in words; a failed test is an error.
    pub fn run_self_test(
        &self,
        id: &str,
        kind: TestKind,
        progress: &dyn Progress,
    ) -> Result<String, SmartError> {
        let dev = {
            let mut inner = self.lock();
            let s = inner
                .disks
                .get_mut(id)
                .ok_or_else(|| SmartError::UnknownDisk(id.to_string()))?;
            may_start_test(id, s)?;
            s.testing = true;
            s.disk.dev.clone()
        };
        let result = self.follow_test(id, kind, &dev, progress);
        if let Some(s) = self.lock().disks.get_mut(id) {
            s.testing = false;
        }
        if let Err(e) = self.poll_disk(id) {
            tracing::warn!("SMART poll of {id} after its self-test: {e}");
        }
        result
    }

    fn status(&self, id: &str, dev: &std::path::Path) -> Result<SmartctlOutput, SmartError> {
        let out = self
            .runner
            .run(&smartctl::test_status(&self.cfg.smartctl, dev))
            .map_err(|source| SmartError::Run {
                disk: id.to_string(),
                source,
            })?;
        SmartctlOutput::parse(&out.stdout).map_err(|e| SmartError::Unavailable {
            disk: id.to_string(),
            reason: format!("smartctl's self-test status is not JSON: {e}"),
        })
    }

    fn follow_test(
        &self,
        id: &str,
        kind: TestKind,
        dev: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<String, SmartError> {
        let name = kind.as_str();
        let before = self.status(id, dev)?;
        if let Some(rem) = rules::running_self_test(&before) {
            return Err(SmartError::TestRefused {
                disk: id.to_string(),
                kind: name,
                reason: format!("the drive is already running a self-test ({rem}% remaining)"),
            });
        }
        if before.self_tests_supported() == Some(false) {
            return Err(SmartError::TestRefused {
                disk: id.to_string(),
                kind: name,
                reason: "the drive does not support self-tests".into(),
            });
        }
        let log_before = views::self_tests(&before);
        let minutes = expected_minutes(&before, kind);
        progress.progress(
            0,
            &format!("starting the {name} self-test (about {minutes} min)"),
        );
        let out = self
            .runner
            .run(&smartctl::start_test(&self.cfg.smartctl, kind, dev))
            .map_err(|source| SmartError::Run {
                disk: id.to_string(),
                source,
            })?;
        if out.code != Some(0) {
            return Err(SmartError::TestRefused {
                disk: id.to_string(),
                kind: name,
                reason: refusal(&out),
            });
        }
        self.record_test(id, kind, (self.clock)());
        let limit = minutes * 2 + 10;
        let deadline = Instant::now() + Duration::from_secs(limit * 60);
        let mut seen_running = false;
        loop {
            let now = self.status(id, dev)?;
            match rules::running_self_test(&now) {
                Some(rem) => {
                    seen_running = true;
                    let done = 100u8.saturating_sub(rem).min(99);
                    progress.progress(done, &format!("{name} self-test: {done}% done"));
                }
                None => {
                    return finished(
                        id,
                        name,
                        seen_running,
                        &log_before,
                        &views::self_tests(&now),
                    )
                }
            }
            if Instant::now() >= deadline {
                return Err(SmartError::TestTimeout {
                    disk: id.to_string(),
                    kind: name,
                    minutes: limit,
                });
            }
            std::thread::sleep(self.cfg.test_poll);
        }
    }
}

/// Why smartctl refused: its messages, else its stderr, else the exit status.
fn refusal(out: &cairn_core::command::CommandOutput) -> String {
    let msgs = SmartctlOutput::parse(&out.stdout)
        .map(|o| o.messages().join("; "))
        .unwrap_or_default();
    if !msgs.is_empty() {
        msgs
    } else if !out.stderr_text().is_empty() {
        out.stderr_text()
    } else {
        format!("smartctl exited with {:?}", out.code)
    }
}

/// The drive's own estimate of the test's duration, else 2 min (short) / 120 min (long).
fn expected_minutes(out: &SmartctlOutput, kind: TestKind) -> u64 {
    let pm = out
        .ata_smart_data
        .as_ref()
        .and_then(|d| d.self_test.as_ref())
        .and_then(|s| s.polling_minutes.as_ref());
    match kind {
        TestKind::Short => pm.and_then(|p| p.short).unwrap_or(2),
        TestKind::Long => pm.and_then(|p| p.extended).unwrap_or(120),
    }
}

fn finished(
    id: &str,
    kind: &'static str,
    seen_running: bool,
    before: &[SelfTestView],
    after: &[SelfTestView],
) -> Result<String, SmartError> {
    let newest = after.first();
    let is_new = after.len() > before.len() || newest != before.first();
    match newest {
        Some(t) if is_new => match t.result {
            TestResult::Passed => Ok(format!("{kind} self-test passed: {}", t.status)),
            TestResult::Failed => Err(SmartError::TestFailed {
                disk: id.to_string(),
                kind,
                reason: format!("failed: {}", t.status),
            }),
            TestResult::Aborted => Err(SmartError::TestFailed {
                disk: id.to_string(),
                kind,
                reason: format!("did not complete: {}", t.status),
            }),
            TestResult::Running => Ok(format!("{kind} self-test is still running")),
        },
        _ if seen_running => Ok(format!(
            "{kind} self-test finished; the drive logged no result"
        )),
        _ => Err(SmartError::TestFailed {
            disk: id.to_string(),
            kind,
            reason: "did not run: the drive accepted the command but neither reported progress nor logged a result".into(),
        }),
    }
}

/// Whether a self-test may start on disk `id` (state `s`): not virtual, none of ours running.
fn may_start_test(id: &str, s: &DiskState) -> Result<(), SmartError> {
    if s.disk.bus == DiskBus::Virtio {
        return Err(SmartError::Unavailable {
            disk: id.to_string(),
            reason: "virtio disks are virtual and have no SMART self-tests".into(),
        });
    }
    if s.testing {
        return Err(SmartError::TestRunning(id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::double::{answer, disk, rig};
    use cairn_core::command::CommandOutput;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    struct Steps(Mutex<Vec<(u8, String)>>);

    impl Progress for Steps {
        fn progress(&self, p: u8, m: &str) {
            self.0.lock().unwrap().push((p, m.to_string()));
        }
    }

    fn status_doc(running: Option<u64>, log: &[&str]) -> CommandOutput {
        let entries: Vec<String> = log
            .iter()
            .map(|s| {
                let (v, passed) = if *s == "ok" { (0, "true") } else { (121, "false") };
                format!(r#"{{"type":{{"string":"Short offline"}},"status":{{"value":{v},"string":"{s}","passed":{passed}}},"lifetime_hours":7}}"#)
            })
            .collect();
        let st = match running {
            Some(rem) => format!(
                r#"{{"value":{},"remaining_percent":{rem}}}"#,
                240 + rem / 10
            ),
            None => r#"{"value":0}"#.to_string(),
        };
        CommandOutput::ok(format!(
            r#"{{"ata_smart_data":{{"self_test":{{"status":{st},"polling_minutes":{{"short":1,"extended":60}}}}}},
               "ata_smart_self_test_log":{{"standard":{{"table":[{}]}}}}}}"#,
            entries.join(",")
        ))
    }

    #[test]
    fn a_self_test_reports_the_drives_progress_and_result() {
        let r = rig();
        r.svc
            .set_disks(vec![disk("ata-T", "/dev/sdd", DiskBus::Sata)]);
        let st = ["--json", "-c", "-l", "selftest", "/dev/sdd"];
        r.runner.expect("smartctl", &st, status_doc(None, &["ok"]));
        r.runner.expect(
            "smartctl",
            &["--json", "-t", "short", "/dev/sdd"],
            CommandOutput::ok("{}"),
        );
        r.runner
            .expect("smartctl", &st, status_doc(Some(90), &["ok"]));
        r.runner
            .expect("smartctl", &st, status_doc(Some(40), &["ok"]));
        r.runner
            .expect("smartctl", &st, status_doc(None, &["ok", "ok"]));
        r.runner.expect(
            "smartctl",
            &["--json", "-x"],
            answer("ata-hdd-healthy-wd-red-wd20efrx.json", 0),
        );
        let steps = Steps(Mutex::new(vec![]));
        let msg = r
            .svc
            .run_self_test("ata-T", TestKind::Short, &steps)
            .unwrap();
        assert!(msg.contains("passed"), "{msg}");
        let p: Vec<u8> = steps.0.lock().unwrap().iter().map(|(p, _)| *p).collect();
        assert_eq!(p, [0, 10, 60]);
        assert!(r.svc.detail("ata-T").unwrap().last_short_test.is_some());

        // A failing test fails the operation; a refused start says the drive's words.
        r.runner.expect("smartctl", &st, status_doc(None, &["ok"]));
        r.runner.expect(
            "smartctl",
            &["--json", "-t", "long"],
            CommandOutput::ok("{}"),
        );
        r.runner.expect(
            "smartctl",
            &st,
            status_doc(None, &["Completed: read failure", "ok"]),
        );
        let e = r
            .svc
            .run_self_test("ata-T", TestKind::Long, &steps)
            .unwrap_err();
        assert!(e.to_string().contains("read failure"), "{e}");
        r.runner.expect("smartctl", &st, status_doc(None, &[]));
        r.runner.expect(
            "smartctl",
            &["--json", "-t", "short"],
            CommandOutput {
                code: Some(4),
                stdout: br#"{"smartctl":{"exit_status":4,"messages":[{"string":"Self-tests not supported","severity":"error"}]}}"#.to_vec(),
                stderr: vec![],
            },
        );
        let e = r
            .svc
            .run_self_test("ata-T", TestKind::Short, &steps)
            .unwrap_err();
        assert!(e.to_string().contains("Self-tests not supported"), "{e}");

        // A drive that says it cannot self-test is not asked to.
        r.runner.expect(
            "smartctl",
            &st,
            CommandOutput::ok(r#"{"nvme_optional_admin_commands":{"self_test":false}}"#),
        );
        let before = r.runner.calls().len();
        let e = r
            .svc
            .run_self_test("ata-T", TestKind::Short, &steps)
            .unwrap_err();
        assert!(e.to_string().contains("does not support self-tests"), "{e}");
        assert!(!r.runner.command_lines()[before..]
            .iter()
            .any(|l| l.contains("-t")));

        // A drive that accepts the command but neither runs nor logs a test: not a pass.
        r.runner.expect("smartctl", &st, status_doc(None, &["ok"]));
        r.runner.expect(
            "smartctl",
            &["--json", "-t", "short"],
            CommandOutput::ok("{}"),
        );
        r.runner.expect("smartctl", &st, status_doc(None, &["ok"]));
        let e = r
            .svc
            .run_self_test("ata-T", TestKind::Short, &steps)
            .unwrap_err();
        assert!(e.to_string().contains("did not run"), "{e}");
    }

    #[test]
    fn the_schedule_starts_due_tests_and_records_them() {
        let r = rig();
        r.svc.set_disks(vec![
            disk("ata-A", "/dev/sda", DiskBus::Sata),
            disk("ata-B", "/dev/sdb", DiskBus::Sata),
        ]);
        for _ in 0..2 {
            r.runner.expect(
                "smartctl",
                &["--json", "-x"],
                answer("ata-hdd-healthy-wd-red-wd20efrx.json", 0),
            );
        }
        r.svc.poll_all();
        r.svc.run_schedule();
        assert_eq!(r.runner.calls().len(), 2, "nothing is due right away");
        let d = r.svc.detail("ata-B").unwrap();
        let (next, kind) = if d.next_long_test.unwrap() <= d.next_short_test.unwrap() {
            (d.next_long_test.unwrap(), "long")
        } else {
            (d.next_short_test.unwrap(), "short")
        };
        r.now.store(next - 1, Ordering::SeqCst);
        r.svc.run_schedule();
        let early = r.runner.command_lines();
        assert!(
            !early
                .iter()
                .any(|l| l.contains("-t") && l.ends_with("/dev/sdb")),
            "started before it was due: {early:?}"
        );
        r.now.store(next, Ordering::SeqCst);
        r.svc.run_schedule();
        let lines = r.runner.command_lines();
        assert_eq!(
            lines.last().unwrap(),
            &format!("smartctl --json -t {kind} /dev/sdb")
        );
        let d = r.svc.detail("ata-B").unwrap();
        assert_eq!(d.last_short_test.or(d.last_long_test), Some(next));
        r.svc.run_schedule();
        assert_eq!(r.runner.command_lines(), lines, "started twice");
    }
}
