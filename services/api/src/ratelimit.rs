//! Attempt limiting for the setup code and sign-in: exponential backoff per client address
//! (optionally persisted on STATE so a restart does not clear it, with a running count of
//! failures from all addresses), and an overall pace for the whole node.

use crate::clock::Clock;
use cairn_core::store::{self, StoreError};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How many attempts are free and how the wait grows after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Attempts allowed without waiting.
    pub free: u32,
    /// The wait after the first attempt beyond `free`; doubled for each further one.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// An address with no attempt for this long starts afresh.
    pub forget_after: Duration,
}

/// Most addresses tracked at once; beyond this the idle ones are forgotten first.
pub const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Entry {
    attempts: u32,
    /// Unix ms until which the address is held back (0: not held back).
    #[serde(default)]
    until_ms: u64,
    /// Unix ms of the last counted attempt.
    last_ms: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Doc {
    /// Failures from all addresses since the count was last reset.
    #[serde(default)]
    total: u32,
    /// The addresses held back when the document was written.
    #[serde(default)]
    held: Vec<Saved>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    address: IpAddr,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<IpAddr, Entry>,
    total: u32,
}

/// Attempt counters per client address (IPv6 per /64, since one host usually has a /64).
pub struct Backoff {
    policy: BackoffPolicy,
    clock: Clock,
    /// Where the held-back addresses and the total are kept (none: memory only).
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

/// The address key: IPv4 as is (also when mapped into IPv6), IPv6 cut to its /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Backoff {
    /// A limiter kept in memory only.
    pub fn new(policy: BackoffPolicy, clock: Clock) -> Self {
        Backoff {
            policy,
            clock,
            path: None,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A limiter whose held-back addresses and failure total are kept in `path` (written
    /// atomically whenever they change, read back here), so a restart does not clear them.
    pub fn persistent(
        policy: BackoffPolicy,
        clock: Clock,
        path: &Path,
    ) -> Result<Self, StoreError> {
        let doc: Doc = store::load_or_quarantine(path)?.unwrap_or_default();
        let inner = Inner {
            map: doc
                .held
                .into_iter()
                .map(|s| (key(s.address), s.entry))
                .collect(),
            total: doc.total,
        };
        Ok(Backoff {
            policy,
            clock,
            path: Some(path.to_path_buf()),
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the held-back addresses and the total (a failure is logged: the limits then
    /// hold until the next restart only).
    fn persist(&self, inner: &Inner, now: u64) {
        let Some(path) = &self.path else { return };
        let doc = Doc {
            total: inner.total,
            held: inner
                .map
                .iter()
                .filter(|(_, e)| e.until_ms > now)
                .map(|(a, e)| Saved {
                    address: *a,
                    entry: *e,
                })
                .collect(),
        };
        if let Err(e) = store::save(path, &doc) {
            tracing::warn!("cannot keep the attempt limits: {e}");
        }
    }

    /// The remaining wait of a held-back entry (a wall clock set back cannot make it longer
    /// than the policy's longest wait).
    fn wait(&self, e: &Entry, now: u64) -> Option<Duration> {
        (e.until_ms > now).then(|| Duration::from_millis(e.until_ms - now).min(self.policy.max))
    }

    /// Whether `ip` is held back now (nothing is counted): the remaining wait if so.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        match inner.map.get(&key(ip)).and_then(|e| self.wait(e, now)) {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    /// Start an attempt from `ip`: refused with the remaining wait while the address is held
    /// back; otherwise counted (a success later clears the count). Counting before the
    /// outcome is known means parallel attempts cannot slip past the limit.
    pub fn begin(&self, ip: IpAddr) -> Result<(), Duration> {
        self.begin_at(ip, self.clock.now_ms())
    }

    /// [`Backoff::begin`] at a given time (unix ms).
    pub fn begin_at(&self, ip: IpAddr, now: u64) -> Result<(), Duration> {
        let p = self.policy;
        let mut inner = self.lock();
        let map = &mut inner.map;
        if map.len() >= MAX_TRACKED {
            map.retain(|_, e| now.saturating_sub(e.last_ms) < ms(p.forget_after));
        }
        let fresh = Entry {
            attempts: 0,
            until_ms: 0,
            last_ms: now,
        };
        let e = map.entry(key(ip)).or_insert(fresh);
        if now.saturating_sub(e.last_ms) >= ms(p.forget_after) {
            *e = fresh;
        }
        if let Some(w) = self.wait(e, now) {
            return Err(w);
        }
        e.attempts += 1;
        e.last_ms = now;
        if e.attempts > p.free {
            let doublings = (e.attempts - p.free - 1).min(30);
            let wait = p.base.saturating_mul(1u32 << doublings).min(p.max);
            e.until_ms = now + ms(wait);
            self.persist(&inner, now);
        }
        Ok(())
    }

    /// The attempt from `ip` succeeded: forget its failures.
    pub fn success(&self, ip: IpAddr) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        if let Some(e) = inner.map.remove(&key(ip)) {
            if e.attempts > self.policy.free {
                self.persist(&inner, now);
            }
        }
    }

    /// Count one failure towards the total from all addresses. When the total reaches
    /// `limit` it starts again from zero and this returns true (once per `limit` failures).
    pub fn count_failure(&self, limit: u32) -> bool {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        inner.total += 1;
        let reached = inner.total >= limit;
        if reached {
            inner.total = 0;
        }
        self.persist(&inner, now);
        reached
    }

    /// Failures counted since the total was last reset.
    pub fn total(&self) -> u32 {
        self.lock().total
    }
}

/// An overall pace for all addresses together (a token bucket): `burst` at once, then one
/// each `interval`.
pub struct Pace {
    burst: u32,
    interval: Duration,
    clock: Clock,
    /// Unix ms at which the bucket is full again ("theoretical arrival time").
    full_at: Mutex<u64>,
}

impl Pace {
    pub fn new(burst: u32, interval: Duration, clock: Clock) -> Self {
        Pace {
            burst: burst.max(1),
            interval,
            clock,
            full_at: Mutex::new(0),
        }
    }

    /// Take one: refused with the wait until one is free.
    pub fn take(&self) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        let step = ms(self.interval);
        let slack = step * u64::from(self.burst - 1);
        let mut full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        // A wall clock set back leaves `full_at` further ahead than the bucket can be: start
        // from now rather than refusing for as long as the clock went back.
        let at = if *full_at > now + slack + step {
            now
        } else {
            (*full_at).max(now)
        };
        if at - now > slack {
            return Err(Duration::from_millis(at - now - slack));
        }
        *full_at = at + step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: BackoffPolicy = BackoffPolicy {
        free: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(8),
        forget_after: Duration::from_secs(3600),
    };

    const T0: u64 = 1_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn memory() -> Backoff {
        Backoff::new(P, Clock::manual(T0))
    }

    #[test]
    fn free_attempts_then_doubling_waits_up_to_max() {
        let b = memory();
        let a = ip("192.0.2.1");
        for _ in 0..4 {
            assert_eq!(b.begin_at(a, T0), Ok(()));
        }
        assert_eq!(b.begin_at(a, T0), Err(Duration::from_secs(1)));
        let mut t = T0 + 1000;
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert_eq!(b.begin_at(a, t), Ok(()));
            let w = b.begin_at(a, t).unwrap_err();
            waits.push(w.as_secs());
            t += ms(w);
        }
        assert_eq!(waits, vec![2, 4, 8, 8, 8]);
    }

    #[test]
    fn success_clears_and_addresses_are_separate() {
        let b = memory();
        for _ in 0..4 {
            b.begin_at(ip("192.0.2.1"), T0).unwrap();
        }
        assert!(b.begin_at(ip("192.0.2.1"), T0).is_err());
        assert!(b.check(ip("192.0.2.1")).is_err());
        assert!(b.begin_at(ip("192.0.2.2"), T0).is_ok(), "another address");
        b.success(ip("192.0.2.1"));
        assert!(b.begin_at(ip("192.0.2.1"), T0).is_ok());
    }

    #[test]
    fn idle_address_is_forgotten() {
        let b = memory();
        for _ in 0..10 {
            let _ = b.begin_at(ip("192.0.2.1"), T0);
        }
        assert!(b.begin_at(ip("192.0.2.1"), T0).is_err());
        assert!(b.begin_at(ip("192.0.2.1"), T0 + ms(P.forget_after)).is_ok());
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_v4_as_v4() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let b = memory();
        for i in 0..4 {
            b.begin_at(ip(&format!("2001:db8::{i}")), T0).unwrap();
        }
        assert!(b.begin_at(ip("2001:db8::ffff"), T0).is_err());
    }

    #[test]
    fn held_addresses_and_total_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("limits.json");
        let clock = Clock::manual(T0);
        let b = Backoff::persistent(P, clock.clone(), &path).unwrap();
        for _ in 0..4 {
            b.begin(ip("192.0.2.1")).unwrap();
        }
        assert!(!b.count_failure(3));
        assert!(!b.count_failure(3));
        drop(b);
        let again = Backoff::persistent(P, clock.clone(), &path).unwrap();
        assert_eq!(again.begin(ip("192.0.2.1")), Err(Duration::from_secs(1)));
        assert_eq!(again.total(), 2);
        assert!(
            again.count_failure(3),
            "the third failure reaches the limit"
        );
        assert_eq!(again.total(), 0);
        clock.advance(Duration::from_secs(1));
        again.begin(ip("192.0.2.1")).unwrap();
        again.success(ip("192.0.2.1"));
        let third = Backoff::persistent(P, clock, &path).unwrap();
        assert!(third.check(ip("192.0.2.1")).is_ok(), "success is kept too");
    }

    #[test]
    fn a_clock_set_back_does_not_lengthen_the_wait() {
        let clock = Clock::manual(T0);
        let b = Backoff::new(P, clock);
        for _ in 0..20 {
            let _ = b.begin_at(ip("192.0.2.1"), T0 + 10_000_000);
        }
        assert_eq!(b.check(ip("192.0.2.1")), Err(P.max));
    }

    #[test]
    fn pace_allows_a_burst_then_one_per_interval() {
        let clock = Clock::manual(T0);
        let p = Pace::new(3, Duration::from_millis(500), clock.clone());
        for _ in 0..3 {
            p.take().unwrap();
        }
        assert_eq!(p.take(), Err(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(500));
        p.take().unwrap();
        assert!(p.take().is_err());
        clock.advance(Duration::from_secs(10));
        for _ in 0..3 {
            p.take().unwrap();
        }
        assert!(p.take().is_err(), "no more than the burst after a pause");
        let back = Pace::new(1, Duration::from_secs(1), Clock::manual(T0 + 3_600_000));
        back.take().unwrap();
        let set_back = Pace {
            clock: Clock::manual(T0),
            ..back
        };
        assert!(set_back.take().is_ok(), "a clock set back does not lock it");
    }
}
