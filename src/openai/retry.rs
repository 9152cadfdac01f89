//! When to try a failed completion again, and after how long — the official client's rules
//! (openai-python `_base_client.py`): retry 408, 409, 429, 5xx, timeouts and connection errors;
//! obey `x-should-retry`; wait what `retry-after-ms` (then `retry-after`, seconds or an HTTP
//! date) says when it is positive and within the cap; otherwise back off exponentially
//! (0.5 s doubling, at most 8 s) with up to 25 % jitter. Never retry `insufficient_quota` or
//! other 4xx: a person has to fix those.
//!
//! One difference: a `Retry-After` longer than the cap means "give up now" rather than "wait
//! anyway", because an employee is waiting and the offline answer is better than a long silence
//! (openai-python does the same since it raised its cap to two minutes).

use std::time::{Duration, SystemTime};

use awc::http::header::HeaderMap;

use super::OpenAiError;

/// Longest `Retry-After` we wait for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    GiveUp,
}

/// `retries_taken` attempts have already been retried; `jitter` is a number in `[0, 1)`.
pub fn decide(err: &OpenAiError, retries_taken: u32, max_retries: u32, jitter: f64) -> Decision {
    if retries_taken >= max_retries || !err.is_retryable() {
        return Decision::GiveUp;
    }
    match err.retry_after() {
        Some(d) if d > MAX_RETRY_AFTER => Decision::GiveUp,
        Some(d) if !d.is_zero() => Decision::RetryAfter(d),
        _ => Decision::RetryAfter(backoff(retries_taken, jitter)),
    }
}

/// `min(0.5 s × 2^n, 8 s) × (1 − 0.25 × jitter)`, where `n` retries were already taken.
pub fn backoff(retries_taken: u32, jitter: f64) -> Duration {
    crate::backoff::delay(Duration::from_millis(500), Duration::from_secs(8), retries_taken, 0.25, jitter)
}

/// `retry-after-ms` first, then `retry-after` as seconds (float) or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
        }
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// `x-should-retry: true|false`, the server's override.
pub fn should_retry_header(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()).map(str::trim) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use awc::http::header::{HeaderName, HeaderValue};

    fn status(status: u16, code: &str, retry_after: Option<Duration>) -> OpenAiError {
        OpenAiError::Status { status, code: Some(code.into()), retry_after, should_retry: None }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).expect("valid header"));
        }
        h
    }

    #[test]
    fn rate_limits_server_errors_timeouts_and_conflicts_are_retried() {
        for e in [
            status(429, "rate_limit_exceeded", None),
            status(500, "server_error", None),
            status(503, "server_is_overloaded", None),
            status(408, "timeout", None),
            status(409, "conflict", None),
            OpenAiError::Timeout,
            OpenAiError::Transport("connection reset".into()),
        ] {
            assert!(matches!(decide(&e, 0, 2, 0.0), Decision::RetryAfter(_)), "{e}");
        }
    }

    #[test]
    fn quota_and_bad_requests_are_not_retried() {
        assert_eq!(decide(&status(429, "insufficient_quota", None), 0, 2, 0.0), Decision::GiveUp);
        assert_eq!(decide(&status(400, "context_length_exceeded", None), 0, 2, 0.0), Decision::GiveUp);
        assert_eq!(decide(&status(401, "invalid_api_key", None), 0, 2, 0.0), Decision::GiveUp);
        assert_eq!(decide(&status(404, "model_not_found", None), 0, 2, 0.0), Decision::GiveUp);
    }

    #[test]
    fn the_retry_budget_is_respected() {
        let e = status(503, "server_error", None);
        assert!(matches!(decide(&e, 1, 2, 0.0), Decision::RetryAfter(_)));
        assert_eq!(decide(&e, 2, 2, 0.0), Decision::GiveUp);
        assert_eq!(decide(&e, 0, 0, 0.0), Decision::GiveUp);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let soon = status(429, "rate_limit_exceeded", Some(Duration::from_millis(1500)));
        assert_eq!(decide(&soon, 0, 2, 0.9), Decision::RetryAfter(Duration::from_millis(1500)));
        let late = status(429, "rate_limit_exceeded", Some(MAX_RETRY_AFTER + Duration::from_secs(1)));
        assert_eq!(decide(&late, 0, 2, 0.0), Decision::GiveUp);
        let zero = status(429, "rate_limit_exceeded", Some(Duration::ZERO));
        assert_eq!(decide(&zero, 0, 2, 0.0), Decision::RetryAfter(backoff(0, 0.0)));
    }

    #[test]
    fn the_server_can_forbid_or_force_a_retry() {
        let forbid =
            OpenAiError::Status { status: 503, code: None, retry_after: None, should_retry: Some(false) };
        assert_eq!(decide(&forbid, 0, 2, 0.0), Decision::GiveUp);
        let force =
            OpenAiError::Status { status: 400, code: None, retry_after: None, should_retry: Some(true) };
        assert!(matches!(decide(&force, 0, 2, 0.0), Decision::RetryAfter(_)));
    }

    #[test]
    fn backoff_doubles_from_half_a_second_with_jitter_and_a_cap() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(375));
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(10, 0.0), Duration::from_secs(8));
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after_and_dates_are_read() {
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "7")]);
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&headers(&[("retry-after", "1.5")])), Some(Duration::from_millis(1500)));
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = retry_after(&headers(&[("retry-after", &date)])).expect("a date is read");
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28), "{d:?}");
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(should_retry_header(&headers(&[("x-should-retry", "false")])), Some(false));
    }
}
