//! Per-address attempt limiting with exponential backoff (setup code, login).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, Copy)]
struct Entry {
    attempts: u32,
    until: Option<Instant>,
    last: Instant,
}

/// Attempt counters per client address (IPv6 per /64, since one host usually has a /64).
pub struct Backoff {
    policy: BackoffPolicy,
    map: Mutex<HashMap<IpAddr, Entry>>,
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

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Start an attempt from `ip`: refused with the remaining wait while the address is held
    /// back; otherwise counted (a success later clears the count). Counting before the
    /// outcome is known means parallel attempts cannot slip past the limit.
    pub fn begin(&self, ip: IpAddr) -> Result<(), Duration> {
        self.begin_at(ip, Instant::now())
    }

    /// [`Backoff::begin`] at a given time.
    pub fn begin_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let p = self.policy;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, e| now.duration_since(e.last) < p.forget_after);
        }
        let e = map.entry(key(ip)).or_insert(Entry {
            attempts: 0,
            until: None,
            last: now,
        });
        if now.duration_since(e.last) >= p.forget_after {
            *e = Entry {
                attempts: 0,
                until: None,
                last: now,
            };
        }
        if let Some(until) = e.until {
            if now < until {
                return Err(until - now);
            }
        }
        e.attempts += 1;
        e.last = now;
        if e.attempts > p.free {
            let doublings = (e.attempts - p.free - 1).min(30);
            let wait = p.base.saturating_mul(1u32 << doublings).min(p.max);
            e.until = Some(now + wait);
        }
        Ok(())
    }

    /// The attempt from `ip` succeeded: forget its failures.
    pub fn success(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(ip));
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn free_attempts_then_doubling_waits_up_to_max() {
        let b = Backoff::new(P);
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(b.begin_at(a, t0), Ok(()));
        }
        assert_eq!(b.begin_at(a, t0), Err(Duration::from_secs(1)));
        let mut t = t0 + Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert_eq!(b.begin_at(a, t), Ok(()));
            let w = b.begin_at(a, t).unwrap_err();
            waits.push(w.as_secs());
            t += w;
        }
        assert_eq!(waits, vec![2, 4, 8, 8, 8]);
    }

    #[test]
    fn success_clears_and_addresses_are_separate() {
        let b = Backoff::new(P);
        let t = Instant::now();
        for _ in 0..4 {
            b.begin_at(ip("192.0.2.1"), t).unwrap();
        }
        assert!(b.begin_at(ip("192.0.2.1"), t).is_err());
        assert!(b.begin_at(ip("192.0.2.2"), t).is_ok(), "another address");
        b.success(ip("192.0.2.1"));
        assert!(b.begin_at(ip("192.0.2.1"), t).is_ok());
    }

    #[test]
    fn idle_address_is_forgotten() {
        let b = Backoff::new(P);
        let t = Instant::now();
        for _ in 0..10 {
            let _ = b.begin_at(ip("192.0.2.1"), t);
        }
        assert!(b.begin_at(ip("192.0.2.1"), t).is_err());
        assert!(b.begin_at(ip("192.0.2.1"), t + P.forget_after).is_ok());
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_v4_as_v4() {
        assert_eq!(key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let b = Backoff::new(P);
        let t = Instant::now();
        for i in 0..4 {
            b.begin_at(ip(&format!("2001:db8::{i}")), t).unwrap();
        }
        assert!(b.begin_at(ip("2001:db8::ffff"), t).is_err());
    }
}
