//! Totals of LLM use for operators: calls, failures, retries, tokens and cost, written by the
//! OpenAiActor and read by `GET /metrics` (see `crate::metrics`). Plain atomics: counters, not
//! owned state.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Usage;

#[derive(Debug)]
pub struct LlmMeter {
    /// Time per call, retries included (a prometheus-client histogram: it is shared, not copied).
    pub seconds: prometheus_client::metrics::histogram::Histogram,
    calls: AtomicU64,
    failures: AtomicU64,
    fallbacks: AtomicU64,
    retries: AtomicU64,
    streamed: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    /// Millionths of a US dollar, so the total stays an integer.
    cost_micro_usd: AtomicU64,
}

impl Default for LlmMeter {
    fn default() -> Self {
        let buckets = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
        LlmMeter {
            seconds: prometheus_client::metrics::histogram::Histogram::new(buckets),
            calls: AtomicU64::default(),
            failures: AtomicU64::default(),
            fallbacks: AtomicU64::default(),
            retries: AtomicU64::default(),
            streamed: AtomicU64::default(),
            prompt_tokens: AtomicU64::default(),
            cached_tokens: AtomicU64::default(),
            completion_tokens: AtomicU64::default(),
            cost_micro_usd: AtomicU64::default(),
        }
    }
}

impl LlmMeter {
    pub fn record_success(&self, usage: &Usage, cost_usd: f64, streamed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if streamed {
            self.streamed.fetch_add(1, Ordering::Relaxed);
        }
        self.prompt_tokens.fetch_add(usage.prompt_tokens, Ordering::Relaxed);
        self.cached_tokens.fetch_add(usage.cached_tokens, Ordering::Relaxed);
        self.completion_tokens.fetch_add(usage.completion_tokens, Ordering::Relaxed);
        self.cost_micro_usd.fetch_add((cost_usd * 1_000_000.0).round() as u64, Ordering::Relaxed);
    }

    pub fn record_failure(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// An employee got the offline answer because the LLM failed.
    pub fn record_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_micro_usd.load(Ordering::Relaxed) as f64 / 1_000_000.0
    }

    pub fn tokens(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            cached_tokens: self.cached_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
        }
    }

    /// The counters now, for `GET /metrics`.
    pub fn snapshot(&self) -> LlmSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LlmSnapshot {
            calls: get(&self.calls),
            failures: get(&self.failures),
            fallbacks: get(&self.fallbacks),
            retries: get(&self.retries),
            streamed: get(&self.streamed),
            tokens: self.tokens(),
            cost_usd: self.cost_usd(),
        }
    }
}

/// The LLM counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmSnapshot {
    /// Chat Completions calls (retries not counted).
    pub calls: u64,
    /// Calls that failed after their retries.
    pub failures: u64,
    /// Answers that fell back to the knowledge base because the LLM failed.
    pub fallbacks: u64,
    /// Attempts retried.
    pub retries: u64,
    /// Calls answered as a stream.
    pub streamed: u64,
    pub tokens: Usage,
    /// From the `[openai.prices]` table.
    pub cost_usd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_adds_up_calls_tokens_and_cost() {
        let m = LlmMeter::default();
        let usage = Usage { prompt_tokens: 900, cached_tokens: 0, completion_tokens: 100 };
        m.record_success(&usage, 0.00019, true);
        m.record_failure();
        let s = m.snapshot();
        assert_eq!((s.calls, s.failures, s.streamed), (2, 1, 1));
        assert_eq!(s.tokens.prompt_tokens, 900);
        assert!((s.cost_usd - 0.00019).abs() < 1e-9);
    }
}
