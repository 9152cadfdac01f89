//! itbot: a Slack first responder for IT teams.
//!
//! The pure logic (triage, redaction, retrieval, composing answers) has no I/O; the actors in
//! [`actors`] wrap the plain Slack and OpenAI clients; [`startup`] wires them together.

pub mod actors;
pub mod assist;
pub mod backoff;
pub use itbot_classifier as classifier;
pub mod clock;
pub mod compose;
pub mod config;
pub mod conversation;
pub mod coord;
pub mod doctor;
pub mod explain;
pub mod http;
pub mod ids;
pub mod knowledge;
pub mod metrics;
pub mod net;
pub mod openai;
pub mod outage;
pub mod prompt;
pub mod redact;
pub mod report;
pub mod retrieval;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod schedule;
pub mod slack;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod tickets;
pub mod triage;
