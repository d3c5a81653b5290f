//! The real clock behind the supervisor's injected `Now`.

use crate::supervisor::Now;
use nix::time::{clock_gettime, ClockId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reads CLOCK_MONOTONIC (ms) and the wall clock (unix s).
pub fn now() -> Now {
    let mono_ms = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| u64::try_from(Duration::from(t).as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Now { mono_ms, unix_s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_does_not_go_back() {
        let a = now();
        let b = now();
        assert!(b.mono_ms >= a.mono_ms);
        assert!(a.unix_s > 1_600_000_000);
    }
}
