//! Wall-clock time for the sign-in limits and token expiry, replaceable in tests.
//!
//! Wall-clock (not monotonic) because the limits and expiries are persisted and must mean
//! the same after a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock, or a manual one a test moves.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock standing at `start_ms` (unix milliseconds) until [`Clock::advance`]d.
    pub fn manual(start_ms: u64) -> Self {
        Clock(Some(Arc::new(AtomicU64::new(start_ms))))
    }

    /// A manual clock at the system's current time.
    pub fn manual_now() -> Self {
        Self::manual(Self::system().now_ms())
    }

    /// Move a manual clock on (no effect on the system clock).
    pub fn advance(&self, by: Duration) {
        if let Some(ms) = &self.0 {
            ms.fetch_add(millis(by), Ordering::SeqCst);
        }
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(millis)
                .unwrap_or(0),
        }
    }

    /// Unix seconds.
    pub fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// A duration in whole milliseconds (saturating: u64 milliseconds last 584 million years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(5_000);
        let same = c.clone();
        assert_eq!(c.now_s(), 5);
        same.advance(Duration::from_millis(2_500));
        assert_eq!(c.now_ms(), 7_500);
        assert!(Clock::system().now_s() > 1_700_000_000);
    }
}
