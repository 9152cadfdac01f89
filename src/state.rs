//! What the bot writes into Slack message metadata, and reads back: one typed value per event
//! type. The thread's durable state ([`ThreadState`]) rides on every bot reply; outage pings and
//! weekly reports carry their own. Every writer and every reader (the thread, the past-ticket
//! index, the report, the outage and report actors) goes through [`Metadata`], never through
//! raw JSON, and no person's words or names are in any of it: ids, counts, flags, slugs.
//!
//! The thread state is versioned (`v`). A payload with a version newer than this build knows
//! (a newer replica during a rolling deploy) is read as [`Metadata::NewerThreadState`], never
//! guessed at; anything unreadable is [`Metadata::Other`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{Ts, UserId};
use crate::triage::Category;

/// The `event_type` of the thread state on the bot's replies.
pub const THREAD_STATE: &str = "itbot_thread_state";
/// The `event_type` of an outage ping.
pub const OUTAGE_PING: &str = "itbot_outage";
/// The `event_type` of a posted report (weekly or on request).
pub const REPORT_POST: &str = "itbot_report";

/// The thread-state version this build writes and reads.
pub const STATE_VERSION: u32 = 1;

/// Where a ticket is in its life (the phase table in `conversation.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The first answer is being prepared (Assist's card, triage, the LLM).
    Preparing,
    /// Troubleshooting with the requester.
    #[default]
    Helping,
    /// An access or change request was acknowledged; a person has it.
    Acknowledged,
    /// The steps failed too often: a person was offered.
    OfferedHuman,
    Resolved,
    Escalated,
    /// A person from IT wrote in the thread: the bot is quiet there.
    HumanTookOver,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Helping => "helping",
            Phase::Acknowledged => "acknowledged",
            Phase::OfferedHuman => "offered_human",
            Phase::Resolved => "resolved",
            Phase::Escalated => "escalated",
            Phase::HumanTookOver => "human_took_over",
        }
    }
}

/// What handed a thread to a person (the escalation brief says it; metrics count by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The requester asked for a person ("can a human help?").
    Request,
    /// The steps failed `escalation.max_failed_attempts` times.
    Attempts,
    /// The requester reacted 👎 to a bot answer.
    ThumbsDown,
    /// The requester pressed "Get a human".
    Button,
    /// The requester pressed the 👎 feedback button.
    Feedback,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Request => "request",
            Trigger::Attempts => "attempts",
            Trigger::ThumbsDown => "thumbs_down",
            Trigger::Button => "button",
            Trigger::Feedback => "feedback",
        }
    }
}

/// The outage a ticket is part of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutageRef {
    /// The outage's first thread, where IT was pinged.
    pub first: Ts,
    /// The symptom: the knowledge-base article's slug.
    pub symptom: String,
}

/// Feedback-button votes written on a bot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoteCounts {
    pub up: u64,
    pub down: u64,
}

/// The LLM usage and cost of the answer a message holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnswerUsage {
    pub model: String,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

/// A ticket thread's durable state, written on every bot reply (`itbot_thread_state`). What a
/// restart or another replica needs to go on: the ticket, the assignee's id, counts and flags,
/// the article used and short notes of what was tried (the bot's own words, never the
/// requester's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThreadState {
    /// [`STATE_VERSION`] when written by this build.
    pub v: u32,
    pub phase: Phase,
    /// `None` only in payloads written without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Assist's ticket key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<UserId>,
    /// Failed attempts counted so far.
    pub attempts: u32,
    pub escalated: bool,
    pub resolved: bool,
    /// The knowledge-base article answered from (its slug).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub article: Option<String>,
    /// The article's second approach was given.
    pub gave_alternative: bool,
    /// What the bot suggested, for the escalation brief.
    pub tried: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage: Option<OutageRef>,
    /// Feedback votes on this message (only on the message voted on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<VoteCounts>,
    /// LLM usage of the answer this message holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<AnswerUsage>,
}

impl Default for ThreadState {
    fn default() -> Self {
        ThreadState {
            v: STATE_VERSION,
            phase: Phase::Helping,
            category: None,
            ticket: None,
            assignee: None,
            attempts: 0,
            escalated: false,
            resolved: false,
            article: None,
            gave_alternative: false,
            tried: Vec::new(),
            outage: None,
            feedback: None,
            llm: None,
        }
    }
}

/// An outage ping's payload (`itbot_outage`): for `itbot report`, and so a restart or another
/// replica updates the ping instead of posting a second one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OutagePing {
    pub symptom: String,
    /// Threads reporting it (the first included).
    pub threads: u64,
    /// Different people who reported it.
    pub reporters: u64,
    /// Slack time of the earliest report.
    pub started: f64,
}

/// A posted report's payload (`itbot_report`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ReportPost {
    /// The weekly slot (unix seconds) for a weekly report; `None` for `@itbot report`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<i64>,
    pub days: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickets: Option<u64>,
}

/// A message's metadata, as the bot reads and writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Metadata {
    ThreadState(Box<ThreadState>),
    OutagePing(OutagePing),
    ReportPost(ReportPost),
    /// A thread state of a version this build does not know (`v`): written by a newer itbot.
    NewerThreadState {
        v: u32,
    },
    /// Another app's metadata, or one of ours that could not be read.
    Other {
        event_type: String,
    },
}

impl Metadata {
    pub fn event_type(&self) -> &str {
        match self {
            Metadata::ThreadState(_) | Metadata::NewerThreadState { .. } => THREAD_STATE,
            Metadata::OutagePing(_) => OUTAGE_PING,
            Metadata::ReportPost(_) => REPORT_POST,
            Metadata::Other { event_type } => event_type,
        }
    }

    /// The thread state, when this is one this build can read.
    pub fn thread_state(&self) -> Option<&ThreadState> {
        match self {
            Metadata::ThreadState(s) => Some(s),
            _ => None,
        }
    }

    /// Reads Slack's `metadata` object (`{"event_type", "event_payload"}`). Never fails: what
    /// cannot be read is `Other`, and a newer thread state is `NewerThreadState`.
    pub fn from_json(value: &Value) -> Metadata {
        let event_type = value.get("event_type").and_then(Value::as_str).unwrap_or_default();
        let payload = value.get("event_payload").cloned().unwrap_or(Value::Null);
        let other = || Metadata::Other { event_type: event_type.to_string() };
        match event_type {
            THREAD_STATE => {
                let v = payload.get("v").and_then(Value::as_u64).unwrap_or(u64::from(STATE_VERSION));
                if v > u64::from(STATE_VERSION) {
                    return Metadata::NewerThreadState { v: u32::try_from(v).unwrap_or(u32::MAX) };
                }
                serde_json::from_value(payload)
                    .map(|s| Metadata::ThreadState(Box::new(s)))
                    .unwrap_or_else(|_| other())
            }
            OUTAGE_PING => {
                serde_json::from_value(payload).map(Metadata::OutagePing).unwrap_or_else(|_| other())
            }
            REPORT_POST => {
                serde_json::from_value(payload).map(Metadata::ReportPost).unwrap_or_else(|_| other())
            }
            _ => other(),
        }
    }

    /// Slack's `metadata` object. `Other` and `NewerThreadState` are never written by this
    /// build; they come out as their event type with an empty payload.
    pub fn to_json(&self) -> Value {
        let payload = match self {
            Metadata::ThreadState(s) => serde_json::to_value(s),
            Metadata::OutagePing(p) => serde_json::to_value(p),
            Metadata::ReportPost(r) => serde_json::to_value(r),
            Metadata::NewerThreadState { .. } | Metadata::Other { .. } => {
                Ok(Value::Object(Default::default()))
            }
        };
        // Plain structs of strings and numbers always serialise.
        let payload = payload.unwrap_or_else(|_| Value::Object(Default::default()));
        serde_json::json!({ "event_type": self.event_type(), "event_payload": payload })
    }
}

impl From<ThreadState> for Metadata {
    fn from(s: ThreadState) -> Self {
        Metadata::ThreadState(Box::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> ThreadState {
        ThreadState {
            phase: Phase::OfferedHuman,
            category: Some(Category::Technical),
            ticket: Some("IT-42".into()),
            assignee: Some(UserId::from("U0ASSIGN")),
            attempts: 2,
            article: Some("aws-client-vpn".into()),
            tried: vec!["steps from *AWS Client VPN*".into()],
            outage: Some(OutageRef { first: Ts::from("1.000100"), symptom: "aws-client-vpn".into() }),
            ..ThreadState::default()
        }
    }

    #[test]
    fn a_thread_state_reads_back_as_written() {
        let written = Metadata::from(state()).to_json();
        assert_eq!(written["event_type"], THREAD_STATE);
        assert_eq!(written["event_payload"]["v"], 1);
        assert_eq!(written["event_payload"]["phase"], "offered_human");
        assert_eq!(Metadata::from_json(&written), Metadata::from(state()));
    }

    #[test]
    fn the_state_written_by_earlier_builds_is_read() {
        // Earlier builds wrote every key, with nulls, and a post id beside them.
        let old = json!({"event_type": "itbot_thread_state", "event_payload": {
            "v": 1, "phase": "escalated", "category": "access", "ticket": null, "assignee": "U1",
            "attempts": 1, "escalated": true, "resolved": false, "article": null,
            "gave_alternative": false, "tried": [], "outage": null, "post_id": "ab12"}});
        let s = Metadata::from_json(&old);
        let s = s.thread_state().expect("read");
        assert_eq!(s.phase, Phase::Escalated);
        assert_eq!(s.category, Some(Category::Access));
        assert!(s.escalated && s.ticket.is_none());
        assert_eq!(s.assignee, Some(UserId::from("U1")));
    }

    #[test]
    fn a_partial_state_takes_defaults() {
        let partial = json!({"event_type": "itbot_thread_state", "event_payload": {"resolved": true}});
        let s = Metadata::from_json(&partial);
        let s = s.thread_state().expect("read");
        assert!(s.resolved);
        assert_eq!(s.attempts, 0);
        assert_eq!(s.phase, Phase::Helping);
    }

    #[test]
    fn a_newer_version_is_read_as_unknown_not_guessed() {
        let newer =
            json!({"event_type": "itbot_thread_state", "event_payload": {"v": 7, "phase": "pondering"}});
        assert_eq!(Metadata::from_json(&newer), Metadata::NewerThreadState { v: 7 });
    }

    #[test]
    fn unreadable_or_foreign_metadata_is_other_never_a_panic() {
        for bad in [
            json!({"event_type": "itbot_thread_state", "event_payload": {"phase": "pondering"}}),
            json!({"event_type": "itbot_thread_state", "event_payload": "text"}),
            json!({"event_type": "task_created", "event_payload": {"id": 1}}),
            json!({"event_type": 5}),
            json!("nonsense"),
            json!(null),
        ] {
            assert!(matches!(Metadata::from_json(&bad), Metadata::Other { .. }), "{bad}");
        }
    }

    #[test]
    fn outage_pings_and_reports_round_trip() {
        let ping = Metadata::OutagePing(OutagePing {
            symptom: "okta-sso".into(),
            threads: 4,
            reporters: 4,
            started: 1.5,
        });
        assert_eq!(Metadata::from_json(&ping.to_json()), ping);
        let weekly =
            Metadata::ReportPost(ReportPost { slot: Some(1_700_000_000), days: 7, tickets: Some(12) });
        assert_eq!(Metadata::from_json(&weekly.to_json()), weekly);
        let asked = Metadata::ReportPost(ReportPost { slot: None, days: 30, tickets: None });
        assert!(asked.to_json()["event_payload"].get("slot").is_none());
    }

    #[test]
    fn the_state_holds_no_text_field_for_what_people_wrote() {
        let written = Metadata::from(state()).to_json().to_string();
        for key in ["text", "question", "user", "requester", "name"] {
            assert!(!written.contains(&format!("\"{key}\"")), "{key} in {written}");
        }
    }
}
