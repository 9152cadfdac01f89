//! `GET /metrics`: Prometheus (OpenMetrics) text, from the `prometheus-client` crate. Labels
//! hold only kinds, categories, triggers, Slack method names and outcomes — never text or ids.
//!
//! The counters live as long as the bot; a registry is put together at each scrape from them,
//! the LLM meter, and the transport's figures at that moment ([`Transport`], read by the
//! handler in `http`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::openai::meter::LlmMeter;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabel {
    pub trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedbackLabel {
    pub category: String,
    /// `up` or `down`.
    pub vote: String,
    /// `button` or `reaction`.
    pub via: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplyLabel {
    /// `pointer` or `none`.
    pub reply: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub method: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

/// Buckets of the time a Web API call waits for its turn: Slack's budget is a call a second per
/// channel, so seconds to minutes are what a burst costs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisLabel {
    pub op: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

fn redis_histogram() -> Histogram {
    Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 0.5])
}

fn queue_histogram() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
}

/// The bot's counters. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Events received, by kind (`message`, `app_mention`, `reaction_added`, `block_actions`, …).
    pub events: Family<KindLabel, Counter>,
    /// From an envelope's arrival to its ack being written.
    pub ack_seconds: Histogram,
    /// New tickets, by category.
    pub tickets: Family<CategoryLabel, Counter>,
    /// Messages the bot posted in threads.
    pub replies: Counter,
    /// Posts that were not tickets (thanks, FYIs, who/where questions), by what they got: the
    /// configured `pointer`, or `none`.
    pub not_tickets: Family<ReplyLabel, Counter>,
    /// Escalations, by trigger (`request`, `thumbs_down`, `feedback`, `button`, `attempts`).
    pub escalations: Family<TriggerLabel, Counter>,
    /// Threads where a person from IT took over.
    pub takeovers: Counter,
    /// Threads the requester confirmed solved.
    pub resolutions: Counter,
    /// ThreadActors alive now.
    pub live_threads: Gauge,
    /// 👍/👎 on the bot's answers, by category, vote and how it was given.
    pub feedback: Family<FeedbackLabel, Counter>,
    /// Outages detected (several people reporting the same symptom at once).
    pub outages: Counter,
    /// Reports posted in the channel, by trigger (`mention`, `weekly`).
    pub reports: Family<TriggerLabel, Counter>,
    /// Times the weekly schedule compared the clock with its next slot: shows the schedule is
    /// alive, and lets tests see that it has looked.
    pub schedule_looks: Counter,
    /// How each new ticket's requester was shown that the bot had their message, by kind
    /// (`status`, `reaction`, `private_note`, or `none` when Slack refused every one).
    pub acknowledgements: Family<KindLabel, Counter>,
    /// Web API calls by method and outcome (`ok`, or the Slack error code / `http` / `network`).
    pub slack_calls: Family<CallLabel, Counter>,
    /// How long each call waited in its method's lane (Slack's budget) before it went out.
    pub slack_queue_seconds: Family<MethodLabel, Histogram, fn() -> Histogram>,
    /// Redis operations by kind and outcome (`ok`, `error`), with `REDIS_URL` set.
    pub redis_calls: Family<RedisLabel, Counter>,
    /// How long each Redis operation took (a round trip, or the deadline when it failed).
    pub redis_seconds: Family<OpLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        // Ack buckets from 50 µs to 1 s; Slack's deadline is 3 s.
        let buckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0];
        Metrics {
            events: Family::default(),
            ack_seconds: Histogram::new(buckets),
            tickets: Family::default(),
            replies: Counter::default(),
            not_tickets: Family::default(),
            escalations: Family::default(),
            takeovers: Counter::default(),
            resolutions: Counter::default(),
            live_threads: Gauge::default(),
            feedback: Family::default(),
            outages: Counter::default(),
            reports: Family::default(),
            schedule_looks: Counter::default(),
            acknowledgements: Family::default(),
            slack_calls: Family::default(),
            slack_queue_seconds: Family::new_with_constructor(queue_histogram),
            redis_calls: Family::default(),
            redis_seconds: Family::new_with_constructor(redis_histogram),
        }
    }
}

impl Metrics {
    pub fn event(&self, kind: &str) {
        self.events.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
    }

    pub fn ticket(&self, category: &str) {
        self.tickets.get_or_create(&CategoryLabel { category: category.to_string() }).inc();
    }

    pub fn not_ticket(&self, reply: &str) {
        self.not_tickets.get_or_create(&ReplyLabel { reply: reply.to_string() }).inc();
    }

    pub fn acknowledgement(&self, kind: &str) {
        self.acknowledgements.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
    }

    pub fn escalation(&self, trigger: &str) {
        self.escalations.get_or_create(&TriggerLabel { trigger: trigger.to_string() }).inc();
    }

    pub fn feedback(&self, category: &str, up: bool, via: &str) {
        let vote = if up { "up" } else { "down" };
        let label = FeedbackLabel { category: category.into(), vote: vote.into(), via: via.into() };
        self.feedback.get_or_create(&label).inc();
    }

    pub fn slack_queued(&self, method: &str, waited: std::time::Duration) {
        self.slack_queue_seconds
            .get_or_create(&MethodLabel { method: method.to_string() })
            .observe(waited.as_secs_f64());
    }

    pub fn redis_call(&self, op: &str, ok: bool, took: std::time::Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.redis_calls
            .get_or_create(&RedisLabel { op: op.to_string(), outcome: outcome.to_string() })
            .inc();
        self.redis_seconds.get_or_create(&OpLabel { op: op.to_string() }).observe(took.as_secs_f64());
    }

    pub fn slack_call(&self, method: &str, outcome: &str) {
        self.slack_calls
            .get_or_create(&CallLabel { method: method.to_string(), outcome: outcome.to_string() })
            .inc();
    }
}

/// The transport's counters and state at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    pub connects: u64,
    pub reconnects: u64,
    pub stale: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub dropped_calls: u64,
    /// Socket Mode slots connected now.
    pub sockets_connected: u32,
    /// The bot takes events.
    pub ready: bool,
}

#[derive(Debug)]
struct TransportCollector(Transport);

impl Collector for TransportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.0;
        let counters = [
            ("itbot_socket_connects", "Socket Mode connections that said hello", &t.connects),
            (
                "itbot_socket_reconnects",
                "Socket Mode connections that replaced an earlier one",
                &t.reconnects,
            ),
            ("itbot_socket_stale", "Sockets declared stale because Slack sent nothing", &t.stale),
            ("itbot_slack_ratelimited", "HTTP 429 answers from the Slack Web API", &t.rate_limited),
            (
                "itbot_slack_retries",
                "Web API attempts repeated after a 5xx, network error or timeout",
                &t.retries,
            ),
            (
                "itbot_slack_dropped_calls",
                "Web API calls given up (queue full or waited too long)",
                &t.dropped_calls,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(*value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let gauge = ConstGauge::new(i64::from(t.sockets_connected));
        let metric = encoder.encode_descriptor(
            "itbot_sockets_connected",
            "Socket Mode slots connected now",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        let ready = ConstGauge::new(i64::from(t.ready));
        let metric = encoder.encode_descriptor(
            "itbot_ready",
            "1 when the bot takes events",
            None,
            ready.metric_type(),
        )?;
        ready.encode(metric)
    }
}

/// The LLM counters, read at scrape time.
#[derive(Debug)]
struct LlmCollector(Arc<LlmMeter>);

impl Collector for LlmCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let counters = [
            ("itbot_llm_calls", "Chat Completions calls, retries not counted", s.calls),
            ("itbot_llm_failures", "LLM calls that failed after their retries", s.failures),
            ("itbot_llm_retries", "LLM attempts retried", s.retries),
            ("itbot_llm_streamed", "LLM calls answered as a stream", s.streamed),
            (
                "itbot_llm_fallback_answers",
                "Answers from the knowledge base because the LLM failed",
                s.fallbacks,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let tokens = [
            ("prompt", s.tokens.prompt_tokens),
            ("cached_prompt", s.tokens.cached_tokens),
            ("completion", s.tokens.completion_tokens),
        ];
        let mut family = encoder.encode_descriptor(
            "itbot_llm_tokens",
            "LLM tokens, by kind (cached_prompt is part of prompt)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (kind, value) in tokens {
            let label = KindLabel { kind: kind.to_string() };
            ConstCounter::new(value).encode(family.encode_family(&label)?)?;
        }
        let cost = ConstCounter::new(s.cost_usd);
        let metric = encoder.encode_descriptor(
            "itbot_llm_cost_usd",
            "LLM cost in US dollars, from the [openai.prices] table",
            None,
            cost.metric_type(),
        )?;
        cost.encode(metric)
    }
}

/// The whole `/metrics` page.
pub fn render(m: &Metrics, llm: &Arc<LlmMeter>, transport: Transport) -> String {
    let mut registry = Registry::default();
    registry.register("itbot_events_received", "Slack events received, by kind", m.events.clone());
    registry.register(
        "itbot_envelope_ack_seconds",
        "Time from an envelope's arrival to its ack",
        m.ack_seconds.clone(),
    );
    registry.register("itbot_tickets", "New tickets, by category", m.tickets.clone());
    registry.register("itbot_replies_posted", "Messages the bot posted in threads", m.replies.clone());
    registry.register(
        "itbot_not_tickets",
        "Posts that were not tickets (thanks, FYIs, who/where questions), by reply: pointer or none",
        m.not_tickets.clone(),
    );
    registry.register("itbot_escalations", "Threads handed to a person, by trigger", m.escalations.clone());
    registry.register(
        "itbot_human_takeovers",
        "Threads where a person from IT took over",
        m.takeovers.clone(),
    );
    registry.register("itbot_resolutions", "Threads the requester confirmed solved", m.resolutions.clone());
    registry.register("itbot_live_threads", "Threads held in memory now", m.live_threads.clone());
    registry.register(
        "itbot_feedback",
        "Votes on the bot's answers, by category, vote and via",
        m.feedback.clone(),
    );
    registry.register("itbot_outages", "Outages detected", m.outages.clone());
    registry.register("itbot_reports", "Reports posted in the channel, by trigger", m.reports.clone());
    registry.register(
        "itbot_schedule_looks",
        "Times the weekly report schedule looked at the clock",
        m.schedule_looks.clone(),
    );
    registry.register(
        "itbot_acknowledgements",
        "How new tickets' requesters were shown the bot had their message, by kind",
        m.acknowledgements.clone(),
    );
    registry.register(
        "itbot_slack_calls",
        "Slack Web API calls, by method and outcome",
        m.slack_calls.clone(),
    );
    registry.register(
        "itbot_slack_queue_seconds",
        "Time a Slack Web API call waited for its method's budget, by method",
        m.slack_queue_seconds.clone(),
    );
    registry.register("itbot_redis_calls", "Redis operations, by kind and outcome", m.redis_calls.clone());
    registry.register(
        "itbot_redis_seconds",
        "Time per Redis operation (its deadline when it failed), by kind",
        m.redis_seconds.clone(),
    );
    registry.register("itbot_llm_seconds", "Time per LLM call, retries included", llm.seconds.clone());
    registry.register_collector(Box::new(TransportCollector(transport)));
    registry.register_collector(Box::new(LlmCollector(llm.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
