//! Capped exponential backoff with jitter: the one rule behind every retry loop (Slack calls,
//! OpenAI completions, Socket Mode reconnects). Each caller keeps its own numbers.

use std::time::Duration;

/// How long to wait before a retry: `base` doubled `doublings` times, at most `cap`, then less
/// `spread × jitter` of that. `spread` is the largest fraction taken off, `jitter` a number in
/// `[0, 1]`; both are clamped to that range. The caller supplies the jitter, so tests can fix it.
pub fn delay(base: Duration, cap: Duration, doublings: u32, spread: f64, jitter: f64) -> Duration {
    // Past 2^31 every realistic base is far above any cap; saturating keeps huge values sane.
    let full = base.saturating_mul(1 << doublings.min(31)).min(cap);
    let kept = 1.0 - spread.clamp(0.0, 1.0) * jitter.clamp(0.0, 1.0);
    // Near `Duration::MAX` the float product can round past it; the full wait is close enough.
    Duration::try_from_secs_f64(full.as_secs_f64() * kept).unwrap_or(full)
}

/// [`delay`] with a random jitter, so replicas and lanes that failed together spread out.
pub fn jittered(base: Duration, cap: Duration, doublings: u32, spread: f64) -> Duration {
    delay(base, cap, doublings, spread, fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF_SECOND: Duration = Duration::from_millis(500);
    const EIGHT_SECONDS: Duration = Duration::from_secs(8);

    #[test]
    fn no_doublings_and_no_jitter_waits_the_base() {
        assert_eq!(delay(HALF_SECOND, EIGHT_SECONDS, 0, 0.25, 0.0), HALF_SECOND);
    }

    #[test]
    fn each_doubling_doubles_the_wait_until_the_cap() {
        let waits: Vec<_> = (0..6).map(|n| delay(HALF_SECOND, EIGHT_SECONDS, n, 0.25, 0.0)).collect();
        let secs: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]);
    }

    #[test]
    fn full_jitter_takes_off_the_whole_spread() {
        assert_eq!(delay(HALF_SECOND, EIGHT_SECONDS, 0, 0.25, 1.0), Duration::from_millis(375));
        assert_eq!(delay(EIGHT_SECONDS, EIGHT_SECONDS, 3, 0.5, 1.0), Duration::from_secs(4));
    }

    #[test]
    fn out_of_range_jitter_and_spread_are_clamped() {
        assert_eq!(delay(HALF_SECOND, EIGHT_SECONDS, 0, 0.25, 7.0), Duration::from_millis(375));
        assert_eq!(delay(HALF_SECOND, EIGHT_SECONDS, 0, 0.25, -1.0), HALF_SECOND);
        assert_eq!(delay(HALF_SECOND, EIGHT_SECONDS, 0, 3.0, 1.0), Duration::ZERO);
    }

    #[test]
    fn a_huge_number_of_doublings_stays_at_the_cap() {
        assert_eq!(delay(HALF_SECOND, EIGHT_SECONDS, u32::MAX, 0.25, 0.0), EIGHT_SECONDS);
        assert_eq!(delay(Duration::MAX, Duration::MAX, 40, 0.0, 0.0), Duration::MAX);
    }

    #[test]
    fn random_jitter_stays_within_the_spread() {
        for _ in 0..1000 {
            let wait = jittered(HALF_SECOND, EIGHT_SECONDS, 2, 0.5);
            assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
        }
    }
}
