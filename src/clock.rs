//! The time schedules run on: the system clock, or one a test sets and moves by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds, from the system or from a hand-set value.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// Starts where it is set and only moves when told (tests).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start_unix: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_unix)))
    }

    pub fn now(&self) -> i64 {
        match self {
            Clock::System => {
                SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
            }
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Sets a manual clock (no effect on the system clock).
    pub fn set(&self, unix: i64) {
        if let Clock::Manual(t) = self {
            t.store(unix, Ordering::SeqCst);
        }
    }

    pub fn advance(&self, secs: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(secs, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = Clock::manual(1_000);
        let other = c.clone();
        c.advance(60);
        assert_eq!(other.now(), 1_060);
        other.set(5);
        assert_eq!(c.now(), 5);
        assert!(Clock::System.now() > 1_700_000_000);
    }
}
