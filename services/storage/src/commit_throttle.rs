//! Fresh share usage for listings without a commit per GET: a share's filesystem is committed
//! (`btrfs filesystem sync`) before its usage is read only when its last commit started more
//! than `max_age` ago, and the listing waits for that commit at most `timeout` (decision 0016).
//!
//! btrfs counts writes in `btrfs filesystem usage` only after a transaction commit (decision
//! 0014), so without a commit a just-written share reads up to 30 s low. A commit with
//! nothing to do returns at once, but one with many dirty pages to flush can take long, and
//! under a hung device it may never return: it runs on its own thread, the listing goes on
//! after `timeout` with the figures as they are, and no second commit of that filesystem is
//! started while the first still runs (a listing that comes meanwhile waits for the running
//! one while it is younger than `timeout`, and not at all after that).

use cairn_core::command::{run_ok, CommandRunner, Invocation};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The time now (injected so tests control it).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The monotonic clock.
pub fn monotonic() -> Clock {
    Arc::new(Instant::now)
}

/// How long a commit keeps a share's usage fresh enough for a listing: writes at most this
/// old may be missing from it.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// How long a listing waits for a commit it started before reading the usage anyway.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// What happened to one filesystem before its usage was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Its last commit started less than `max_age` ago: none was run.
    Recent,
    /// A commit ran now and finished in time.
    Done,
    /// The commit failed; the usage is read uncommitted.
    Failed(String),
    /// The commit started now did not finish within `timeout`; it goes on by itself.
    TimedOut,
    /// A commit started earlier (that timed out) still runs; none was started.
    Running,
}

/// One running commit: its answer, once it has one, for everyone who waits for it.
#[derive(Debug, Default)]
struct Pending {
    answer: Mutex<Option<Result<(), String>>>,
    done: Condvar,
}

impl Pending {
    fn finish(&self, r: Result<(), String>) {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        self.done.notify_all();
    }

    /// The answer, waiting for it until `deadline` (real time).
    fn wait(&self, deadline: Instant) -> Commit {
        let mut answer = self.answer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*answer {
                Some(Ok(())) => return Commit::Done,
                Some(Err(e)) => return Commit::Failed(e.clone()),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Commit::TimedOut;
            }
            answer = self
                .done
                .wait_timeout(answer, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[derive(Debug, Default)]
struct FsState {
    /// When the last commit that was tried started (also a failed one: a share whose commit
    /// fails is not asked again on every listing).
    started: Option<Instant>,
    /// The commit running now, if any.
    running: Option<Arc<Pending>>,
}

type States = BTreeMap<PathBuf, FsState>;

/// Per-filesystem commit bookkeeping, shared by every listing and the capacity check.
pub struct CommitThrottle {
    max_age: Duration,
    timeout: Duration,
    clock: Clock,
    state: Arc<Mutex<States>>,
}

fn lock(m: &Mutex<States>) -> MutexGuard<'_, States> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for CommitThrottle {
    fn default() -> Self {
        CommitThrottle::new(MAX_AGE, TIMEOUT, monotonic())
    }
}

impl CommitThrottle {
    /// A throttle committing a filesystem at most every `max_age`, waiting `timeout`.
    pub fn new(max_age: Duration, timeout: Duration, clock: Clock) -> CommitThrottle {
        CommitThrottle {
            max_age,
            timeout,
            clock,
            state: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Note that `mountpoint` was committed by a commit that started at `started` (the
    /// capacity check commits every share itself).
    pub fn committed(&self, mountpoint: &Path, started: Instant) {
        let mut state = lock(&self.state);
        let s = state.entry(mountpoint.to_path_buf()).or_default();
        if s.started.is_none_or(|t| t < started) {
            s.started = Some(started);
        }
    }

    /// The time now on the throttle's clock.
    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// Commit every filesystem of `mountpoints` whose last commit is older than `max_age`,
    /// all at once, each with `commit(mountpoint)` run by `runner`, and wait for them until
    /// one shared deadline `timeout` from now. A commit another listing started less than
    /// `timeout` ago is waited for too (not started twice); an older one that still runs is
    /// not. Returns what happened to each, in order.
    pub fn commit_stale(
        &self,
        runner: &Arc<dyn CommandRunner>,
        mountpoints: &[PathBuf],
        commit: fn(&Path) -> Invocation,
    ) -> Vec<Commit> {
        let now = self.now();
        let age = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let mut waits: Vec<Result<Arc<Pending>, Commit>> = Vec::new();
        for mnt in mountpoints {
            let mut state = lock(&self.state);
            let s = state.entry(mnt.clone()).or_default();
            let w = match &s.running {
                Some(p) if age(s.started).is_some_and(|a| a < self.timeout) => Ok(p.clone()),
                Some(_) => Err(Commit::Running),
                None if age(s.started).is_some_and(|a| a < self.max_age) => Err(Commit::Recent),
                None => {
                    let p = Arc::new(Pending::default());
                    s.running = Some(p.clone());
                    s.started = Some(now);
                    drop(state);
                    self.spawn(runner.clone(), mnt.clone(), commit(mnt), p.clone());
                    Ok(p)
                }
            };
            waits.push(w);
        }
        // The deadline is real time: it bounds how long the caller waits.
        let deadline = Instant::now() + self.timeout;
        waits
            .into_iter()
            .map(|w| match w {
                Err(c) => c,
                Ok(p) => p.wait(deadline),
            })
            .collect()
    }

    /// Run `inv` on a thread of its own; `pending` gets the answer, and the filesystem is
    /// marked idle again when it ends (whether or not anyone still waits).
    fn spawn(
        &self,
        runner: Arc<dyn CommandRunner>,
        mnt: PathBuf,
        inv: Invocation,
        pending: Arc<Pending>,
    ) {
        let state = self.state.clone();
        let p = pending.clone();
        let this = mnt.clone();
        let spawned = std::thread::Builder::new()
            .name("btrfs-commit".into())
            .spawn(move || {
                let r = run_ok(runner.as_ref(), &inv)
                    .map(|_| ())
                    .map_err(|e| cairn_core::boot::error_chain(&e));
                if let Err(e) = &r {
                    tracing::warn!("committing {} for a fresh usage: {e}", mnt.display());
                }
                idle(&state, &mnt, &p);
                p.finish(r);
            });
        if let Err(e) = spawned {
            // Nothing runs: the filesystem is idle again, and the waiters hear why.
            idle(&self.state, &this, &pending);
            pending.finish(Err(format!("cannot start a commit thread: {e}")));
        }
    }
}

/// Mark `mnt` idle if `pending` is still its running commit.
fn idle(state: &Mutex<States>, mnt: &Path, pending: &Arc<Pending>) {
    if let Some(s) = lock(state).get_mut(mnt) {
        if s.running.as_ref().is_some_and(|r| Arc::ptr_eq(r, pending)) {
            s.running = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btrfs;
    use cairn_core::command::{CommandError, CommandOutput, RecordingRunner};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that moves only when the test says so.
    struct TestClock {
        base: Instant,
        ms: Arc<AtomicU64>,
    }

    impl TestClock {
        fn new() -> TestClock {
            TestClock {
                base: Instant::now(),
                ms: Arc::new(AtomicU64::new(0)),
            }
        }
        fn clock(&self) -> Clock {
            let (base, ms) = (self.base, self.ms.clone());
            Arc::new(move || base + Duration::from_millis(ms.load(Ordering::SeqCst)))
        }
        fn advance(&self, ms: u64) {
            self.ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// The recording runner, except that `btrfs filesystem sync` blocks while the gate is
    /// closed (a commit flushing lots of data, or a hung device).
    struct GatedRunner {
        inner: RecordingRunner,
        closed: Mutex<bool>,
        opened: Condvar,
    }

    impl GatedRunner {
        fn new(inner: RecordingRunner) -> Arc<GatedRunner> {
            Arc::new(GatedRunner {
                inner,
                closed: Mutex::new(false),
                opened: Condvar::new(),
            })
        }
        fn close(&self) {
            *self.closed.lock().unwrap() = true;
        }
        fn open(&self) {
            *self.closed.lock().unwrap() = false;
            self.opened.notify_all();
        }
        fn syncs(&self) -> usize {
            self.inner
                .command_lines()
                .iter()
                .filter(|l| l.starts_with("btrfs filesystem sync"))
                .count()
        }
    }

    impl CommandRunner for GatedRunner {
        fn run(&self, inv: &Invocation) -> Result<CommandOutput, CommandError> {
            if inv.args.first().map(String::as_str) == Some("filesystem")
                && inv.args.get(1).map(String::as_str) == Some("sync")
            {
                let mut closed = self.closed.lock().unwrap();
                while *closed {
                    closed = self.opened.wait(closed).unwrap();
                }
            }
            self.inner.run(inv)
        }
    }

    fn mnt(name: &str) -> PathBuf {
        PathBuf::from(format!("/var/lib/cairn/shares/tank/{name}"))
    }

    fn setup(timeout_ms: u64) -> (CommitThrottle, TestClock, Arc<GatedRunner>) {
        let clock = TestClock::new();
        let t = CommitThrottle::new(
            Duration::from_secs(5),
            Duration::from_millis(timeout_ms),
            clock.clock(),
        );
        (t, clock, GatedRunner::new(RecordingRunner::new()))
    }

    fn dyn_runner(r: &Arc<GatedRunner>) -> Arc<dyn CommandRunner> {
        r.clone()
    }

    /// Wait (briefly, in real time) until no commit of `m` runs.
    fn settle(t: &CommitThrottle, m: &Path) {
        let until = Instant::now() + Duration::from_secs(10);
        while lock(&t.state).get(m).is_some_and(|s| s.running.is_some()) {
            assert!(Instant::now() < until, "the commit thread never ended");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_filesystem_is_committed_at_most_once_per_max_age() {
        let (t, clock, r) = setup(10_000);
        let run = dyn_runner(&r);
        let docs = [mnt("docs")];
        assert_eq!(
            t.commit_stale(&run, &docs, btrfs::sync),
            [Commit::Done],
            "never committed: commit"
        );
        assert_eq!(
            r.inner.command_lines(),
            ["btrfs filesystem sync /var/lib/cairn/shares/tank/docs"]
        );
        clock.advance(4_999);
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::Recent]);
        assert_eq!(r.syncs(), 1);
        clock.advance(1);
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::Done]);
        assert_eq!(r.syncs(), 2);
        // Each filesystem has its own age.
        clock.advance(1_000);
        let both = [mnt("docs"), mnt("media")];
        assert_eq!(
            t.commit_stale(&run, &both, btrfs::sync),
            [Commit::Recent, Commit::Done]
        );
        assert_eq!(
            r.inner.command_lines().last().unwrap(),
            "btrfs filesystem sync /var/lib/cairn/shares/tank/media"
        );
    }

    #[test]
    fn the_capacity_checks_commit_counts_too() {
        let (t, clock, r) = setup(10_000);
        let run = dyn_runner(&r);
        clock.advance(60_000);
        t.committed(&mnt("docs"), t.now());
        clock.advance(3_000);
        assert_eq!(
            t.commit_stale(&run, &[mnt("docs")], btrfs::sync),
            [Commit::Recent]
        );
        // An older commit does not move the time back.
        t.committed(&mnt("docs"), t.now() - Duration::from_secs(30));
        assert_eq!(
            t.commit_stale(&run, &[mnt("docs")], btrfs::sync),
            [Commit::Recent]
        );
        clock.advance(2_000);
        assert_eq!(
            t.commit_stale(&run, &[mnt("docs")], btrfs::sync),
            [Commit::Done]
        );
        assert_eq!(r.syncs(), 1);
    }

    #[test]
    fn a_slow_commit_is_waited_for_only_until_the_timeout_and_never_doubled() {
        let (t, clock, r) = setup(50);
        let run = dyn_runner(&r);
        let docs = [mnt("docs")];
        r.close();
        let began = Instant::now();
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::TimedOut]);
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Still running, and long past max_age: no second commit, and no wait for it.
        clock.advance(60_000);
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::Running]);
        assert_eq!(
            r.syncs(),
            0,
            "the blocked commit has not reached the runner's log"
        );
        r.open();
        settle(&t, &docs[0]);
        assert_eq!(r.syncs(), 1);
        // It started 60 s ago on the clock: the next listing commits again.
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::Done]);
        assert_eq!(r.syncs(), 2);
    }

    #[test]
    fn a_listing_during_a_commit_waits_for_that_one() {
        let (t, clock, r) = setup(10_000);
        let t = Arc::new(t);
        let run = dyn_runner(&r);
        let docs = vec![mnt("docs")];
        r.close();
        let first = {
            let (t, run, docs) = (t.clone(), run.clone(), docs.clone());
            std::thread::spawn(move || t.commit_stale(&run, &docs, btrfs::sync))
        };
        let until = Instant::now() + Duration::from_secs(10);
        while lock(&t.state)
            .get(&docs[0])
            .is_none_or(|s| s.running.is_none())
        {
            assert!(
                Instant::now() < until,
                "the first listing never started its commit"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // 6 s later on the clock: stale, but a commit runs and is younger than the timeout.
        clock.advance(6_000);
        let second = {
            let (t, run, docs) = (t.clone(), run.clone(), docs.clone());
            std::thread::spawn(move || t.commit_stale(&run, &docs, btrfs::sync))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!second.is_finished(), "the second listing did not wait");
        r.open();
        assert_eq!(first.join().unwrap(), [Commit::Done]);
        assert_eq!(second.join().unwrap(), [Commit::Done]);
        assert_eq!(r.syncs(), 1, "{:?}", r.inner.command_lines());
    }

    #[test]
    fn many_slow_commits_share_one_deadline() {
        let (t, _clock, r) = setup(100);
        let run = dyn_runner(&r);
        let all: Vec<PathBuf> = (0..8).map(|i| mnt(&format!("s{i}"))).collect();
        r.close();
        let began = Instant::now();
        let got = t.commit_stale(&run, &all, btrfs::sync);
        let waited = began.elapsed();
        assert_eq!(got, vec![Commit::TimedOut; 8]);
        // One timeout for all of them, not eight in a row (800 ms).
        assert!(waited < Duration::from_millis(700), "{waited:?}");
        r.open();
        for m in &all {
            settle(&t, m);
        }
        assert_eq!(r.syncs(), 8);
    }

    #[test]
    fn a_failed_commit_is_reported_and_not_retried_within_max_age() {
        let (t, clock, r) = setup(10_000);
        let run = dyn_runner(&r);
        r.inner.expect(
            "btrfs",
            &["filesystem", "sync"],
            CommandOutput::failed(1, "ERROR: cannot access '/x': No such file or directory"),
        );
        let docs = [mnt("docs")];
        match &t.commit_stale(&run, &docs, btrfs::sync)[..] {
            [Commit::Failed(e)] => assert!(e.contains("No such file"), "{e}"),
            other => panic!("{other:?}"),
        }
        clock.advance(1_000);
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::Recent]);
        clock.advance(4_000);
        assert_eq!(t.commit_stale(&run, &docs, btrfs::sync), [Commit::Done]);
        assert_eq!(r.syncs(), 2);
    }
}
