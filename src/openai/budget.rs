//! A tokens-per-minute budget: each call reserves its estimated tokens (prompt plus the most it
//! may write) and starts no earlier than the budget allows; the estimate is settled with the
//! real usage when the call ends. Pure: time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Reservations made in the last minute (and any scheduled after now).
#[derive(Debug)]
pub struct TokenBudget {
    per_minute: u64,
    entries: VecDeque<Entry>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    at: Instant,
    tokens: u64,
}

/// A reservation: when the call may start, and the id to settle it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub id: u64,
    pub start_at: Instant,
}

impl TokenBudget {
    /// `per_minute == 0` means no budget: every call starts at once.
    pub fn new(per_minute: u64) -> TokenBudget {
        TokenBudget { per_minute, entries: VecDeque::new(), next_id: 1 }
    }

    /// Reserves `tokens` at the earliest moment from `now` on when the last minute's
    /// reservations leave room. A call larger than the whole budget waits for an empty window.
    pub fn reserve(&mut self, now: Instant, tokens: u64) -> Reservation {
        let id = self.next_id;
        self.next_id += 1;
        if self.per_minute == 0 {
            return Reservation { id, start_at: now };
        }
        self.entries.retain(|e| e.at + WINDOW > now);
        let tokens = tokens.min(self.per_minute);
        let mut candidates: Vec<Instant> = vec![now];
        candidates.extend(self.entries.iter().map(|e| e.at + WINDOW).filter(|t| *t > now));
        candidates.sort();
        let start_at = candidates
            .into_iter()
            .find(|t| {
                let used: u64 = self.entries.iter().filter(|e| e.at + WINDOW > *t).map(|e| e.tokens).sum();
                used + tokens <= self.per_minute
            })
            // The latest candidate has an empty window, so `find` always succeeds.
            .unwrap_or(now);
        self.entries.push_back(Entry { id, at: start_at, tokens });
        Reservation { id, start_at }
    }

    /// Replaces a reservation's estimate with what the call really used.
    pub fn settle(&mut self, id: u64, tokens: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.tokens = tokens;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_within_the_budget_start_at_once() {
        let now = Instant::now();
        let mut b = TokenBudget::new(10_000);
        assert_eq!(b.reserve(now, 4_000).start_at, now);
        assert_eq!(b.reserve(now, 4_000).start_at, now);
    }

    #[test]
    fn a_call_over_the_budget_waits_for_the_window_to_slide() {
        let now = Instant::now();
        let mut b = TokenBudget::new(10_000);
        b.reserve(now, 6_000);
        b.reserve(now + Duration::from_secs(10), 3_000);
        let r = b.reserve(now + Duration::from_secs(20), 4_000);
        assert_eq!(r.start_at, now + WINDOW);
    }

    #[test]
    fn settling_with_real_usage_frees_room() {
        let now = Instant::now();
        let mut b = TokenBudget::new(10_000);
        let first = b.reserve(now, 9_000);
        b.settle(first.id, 2_000);
        assert_eq!(b.reserve(now, 7_000).start_at, now);
    }

    #[test]
    fn no_budget_means_no_waiting() {
        let now = Instant::now();
        let mut b = TokenBudget::new(0);
        for _ in 0..100 {
            assert_eq!(b.reserve(now, 1_000_000).start_at, now);
        }
    }
}
