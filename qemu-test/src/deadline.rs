//! Deadlines: every wait in the lab has one, and says what it waited for when it runs out.

use std::time::{Duration, Instant};

/// A point in time by which something must have happened.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    /// A deadline `total` from now.
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    /// A deadline `secs` seconds from now.
    pub fn secs(secs: u64) -> Deadline {
        Deadline::after(Duration::from_secs(secs))
    }

    /// Time left (zero once expired).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The whole span this deadline was created with (for messages).
    pub fn total(&self) -> Duration {
        self.total
    }

    /// The earlier of this deadline and one `d` from now.
    pub fn capped(&self, d: Duration) -> Deadline {
        let other = Instant::now() + d;
        if other < self.at {
            Deadline {
                at: other,
                total: d,
            }
        } else {
            *self
        }
    }

    /// Time left, but at least `min` (for socket timeouts that must not be zero).
    pub fn remaining_at_least(&self, min: Duration) -> Duration {
        self.remaining().max(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_shrinks_and_expires() {
        let d = Deadline::after(Duration::from_millis(30));
        assert!(!d.expired());
        assert!(d.remaining() <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert!(d.expired());
        assert_eq!(d.remaining(), Duration::ZERO);
        assert_eq!(
            d.remaining_at_least(Duration::from_millis(5)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn capped_takes_the_earlier() {
        let d = Deadline::secs(100);
        let c = d.capped(Duration::from_secs(1));
        assert!(c.remaining() <= Duration::from_secs(1));
        let c2 = d.capped(Duration::from_secs(1000));
        assert!(c2.remaining() > Duration::from_secs(99));
        assert_eq!(c2.total(), Duration::from_secs(100));
    }
}
