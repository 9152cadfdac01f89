//! Events API payloads (inside `events_api` envelopes), parsed into what the router needs.

use serde::Deserialize;
use serde_json::Value;

use super::socket::Payload;
use super::{Blocks, BotId, ChannelId, EventId, Ts, UserId};
use crate::state::{Metadata, ThreadState};
use crate::telemetry::UserText;

/// The `event_callback` wrapper.
#[derive(Debug, Deserialize)]
pub struct EventCallback {
    pub event_id: EventId,
    #[serde(default)]
    pub event_time: i64,
    pub event: Value,
}

/// A message as the router sees it: who, where, which thread, and what was written (text plus
/// the text inside `blocks`, which is where some apps such as Assist put their content).
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: ChannelId,
    pub ts: Ts,
    pub thread_ts: Option<Ts>,
    pub user: Option<UserId>,
    pub bot_id: Option<BotId>,
    pub subtype: Option<String>,
    pub text: UserText,
    pub blocks_text: UserText,
}

impl Message {
    /// Top-level (not a reply in a thread).
    pub fn is_root(&self) -> bool {
        self.thread_ts.as_ref().is_none_or(|t| t == &self.ts)
    }

    /// The thread this message belongs to: its parent's ts, or its own for a root.
    pub fn thread(&self) -> &Ts {
        self.thread_ts.as_ref().unwrap_or(&self.ts)
    }
}

/// What happened, as far as the bot cares.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new message (person or app), including thread replies and broadcasts.
    Message(Message),
    /// The bot was mentioned; arrives beside a `Message` with the same channel and ts.
    Mention(Message),
    /// A message was edited: `message` carries the new text and the edited message's ts.
    Edited(Message),
    /// A message was deleted.
    Deleted { channel: ChannelId, ts: Ts, thread_ts: Option<Ts> },
    /// A reaction on a message.
    Reaction { user: UserId, reaction: String, channel: ChannelId, ts: Ts },
    /// A button was clicked on one of the bot's messages (an `interactive` envelope).
    Action {
        user: UserId,
        channel: ChannelId,
        /// The message that carried the button.
        message_ts: Ts,
        /// That message's thread, when it is a reply.
        thread_ts: Option<Ts>,
        action_id: String,
        value: String,
    },
    /// Anything else (other subtypes, event types, reactions on files); `kind` says what.
    Other { kind: String },
}

impl Event {
    /// A short label for logs and metrics.
    pub fn kind(&self) -> &str {
        match self {
            Event::Message(_) => "message",
            Event::Mention(_) => "app_mention",
            Event::Edited(_) => "message_changed",
            Event::Deleted { .. } => "message_deleted",
            Event::Reaction { .. } => "reaction_added",
            Event::Action { .. } => "block_actions",
            Event::Other { kind } => kind,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event payload is not an event_callback: {0}")]
    Wrapper(String),
    #[error("`{kind}` event lacks `{field}`")]
    Missing { kind: String, field: &'static str },
}

/// Parses an `events_api` payload into its id and event.
pub fn parse(payload: Payload) -> Result<(EventId, Event), EventError> {
    let cb: EventCallback =
        serde_json::from_value(payload.0).map_err(|e| EventError::Wrapper(e.to_string()))?;
    let event = parse_event(&cb.event)?;
    Ok((cb.event_id, event))
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn parse_event(ev: &Value) -> Result<Event, EventError> {
    let kind = s(ev, "type").unwrap_or_default();
    match kind.as_str() {
        "message" => parse_message_family(ev),
        "app_mention" => Ok(Event::Mention(message_fields(ev, ev, "app_mention")?)),
        "reaction_added" => {
            let item = ev.get("item").cloned().unwrap_or(Value::Null);
            if s(&item, "type").as_deref() != Some("message") {
                return Ok(Event::Other { kind: "reaction_added(non-message)".into() });
            }
            let missing = |field| EventError::Missing { kind: kind.clone(), field };
            Ok(Event::Reaction {
                user: UserId(s(ev, "user").ok_or_else(|| missing("user"))?),
                reaction: s(ev, "reaction").ok_or_else(|| missing("reaction"))?,
                channel: ChannelId(s(&item, "channel").ok_or_else(|| missing("item.channel"))?),
                ts: Ts(s(&item, "ts").ok_or_else(|| missing("item.ts"))?),
            })
        }
        "" => Err(EventError::Missing { kind: "event".into(), field: "type" }),
        other => Ok(Event::Other { kind: other.into() }),
    }
}

fn parse_message_family(ev: &Value) -> Result<Event, EventError> {
    let subtype = s(ev, "subtype");
    match subtype.as_deref() {
        None | Some("bot_message") | Some("thread_broadcast") | Some("file_share") | Some("me_message") => {
            // A `message_replied` arrives without its subtype (a documented Slack bug): it is
            // hidden and carries a nested `message`; it is not a new message.
            if ev.get("hidden").and_then(Value::as_bool) == Some(true) {
                return Ok(Event::Other { kind: "message(hidden)".into() });
            }
            Ok(Event::Message(message_fields(ev, ev, "message")?))
        }
        Some("message_changed") => {
            let inner = ev
                .get("message")
                .ok_or(EventError::Missing { kind: "message_changed".into(), field: "message" })?;
            // The edited message's own ts; older payloads omit it, then the previous message has it.
            let mut edited = inner.clone();
            if edited.get("ts").is_none() {
                if let Some(ts) = ev.pointer("/previous_message/ts") {
                    edited["ts"] = ts.clone();
                }
            }
            Ok(Event::Edited(message_fields(&edited, ev, "message_changed")?))
        }
        Some("message_deleted") => {
            let ts = s(ev, "deleted_ts")
                .ok_or(EventError::Missing { kind: "message_deleted".into(), field: "deleted_ts" })?;
            Ok(Event::Deleted {
                channel: ChannelId(s(ev, "channel").unwrap_or_default()),
                ts: Ts(ts),
                thread_ts: ev.pointer("/previous_message/thread_ts").and_then(Value::as_str).map(Ts::from),
            })
        }
        Some(other) => Ok(Event::Other { kind: format!("message.{other}") }),
    }
}

/// Parses an `interactive` payload: a `block_actions` click becomes [`Event::Action`] (the first
/// action); other interaction types are `Other`.
pub fn parse_interactive(payload: &Payload) -> Result<Event, EventError> {
    let payload = &payload.0;
    let kind = s(payload, "type").unwrap_or_default();
    if kind != "block_actions" {
        return Ok(Event::Other { kind: format!("interactive.{kind}") });
    }
    let missing = |field| EventError::Missing { kind: "block_actions".into(), field };
    let action = payload.pointer("/actions/0").ok_or_else(|| missing("actions"))?;
    let channel = payload
        .pointer("/channel/id")
        .or_else(|| payload.pointer("/container/channel_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| missing("channel.id"))?;
    let message_ts = payload
        .pointer("/container/message_ts")
        .or_else(|| payload.pointer("/message/ts"))
        .and_then(Value::as_str)
        .ok_or_else(|| missing("container.message_ts"))?;
    let thread_ts = payload
        .pointer("/container/thread_ts")
        .or_else(|| payload.pointer("/message/thread_ts"))
        .and_then(Value::as_str)
        .map(Ts::from);
    Ok(Event::Action {
        user: UserId(
            payload.pointer("/user/id").and_then(Value::as_str).ok_or_else(|| missing("user.id"))?.into(),
        ),
        channel: ChannelId::from(channel),
        message_ts: Ts::from(message_ts),
        thread_ts,
        action_id: s(action, "action_id").unwrap_or_default(),
        value: s(action, "value").unwrap_or_default(),
    })
}

/// A message as `conversations.history`/`conversations.replies` return it: the message, the
/// bot's typed metadata (when asked for with `include_all_metadata`), its reactions, how many
/// replies it has, and its blocks as they are (so a `chat.update` can keep them).
#[derive(Debug, Clone)]
pub struct HistoryMessage {
    pub message: Message,
    pub metadata: Option<Metadata>,
    pub reactions: Vec<Reaction>,
    /// Replies in its thread (roots only; 0 otherwise).
    pub reply_count: u64,
    pub blocks: Option<Blocks>,
}

/// One reaction on a message: its name (skin tones included, `+1::skin-tone-2`), how many, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub name: String,
    pub count: u64,
    pub users: Vec<UserId>,
}

impl HistoryMessage {
    /// Reads one element of a history or replies page (which has no `channel` field: the
    /// caller knows it). `None` when it lacks a `ts`.
    pub fn parse(m: &Value, channel: &ChannelId) -> Option<HistoryMessage> {
        let message = message_fields(m, &serde_json::json!({ "channel": channel }), "history").ok()?;
        let reactions = m
            .get("reactions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let users: Vec<UserId> = r["users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| u.as_str().map(UserId::from))
                    .collect();
                Reaction {
                    name: s(r, "name").unwrap_or_default(),
                    count: r["count"].as_u64().unwrap_or(users.len() as u64),
                    users,
                }
            })
            .collect();
        Some(HistoryMessage {
            message,
            metadata: m.get("metadata").filter(|v| v.is_object()).map(Metadata::from_json),
            reactions,
            reply_count: m["reply_count"].as_u64().unwrap_or(0),
            blocks: m.get("blocks").filter(|b| b.is_array()).cloned().map(Blocks::new),
        })
    }

    /// A message with `metadata` and nothing else (no reactions, replies or blocks).
    pub fn new(message: Message, metadata: Option<Metadata>) -> HistoryMessage {
        HistoryMessage { message, metadata, reactions: Vec::new(), reply_count: 0, blocks: None }
    }

    /// The thread state written on this message, if it is one this build reads.
    pub fn thread_state(&self) -> Option<&ThreadState> {
        self.metadata.as_ref().and_then(Metadata::thread_state)
    }
}

/// Reads a message's fields from `m`; the channel may sit on the outer event instead.
fn message_fields(m: &Value, outer: &Value, kind: &str) -> Result<Message, EventError> {
    let missing = |field| EventError::Missing { kind: kind.to_string(), field };
    let channel = s(m, "channel").or_else(|| s(outer, "channel")).ok_or_else(|| missing("channel"))?;
    let ts = s(m, "ts").ok_or_else(|| missing("ts"))?;
    Ok(Message {
        channel: ChannelId(channel),
        ts: Ts(ts),
        thread_ts: s(m, "thread_ts").map(Ts),
        user: s(m, "user").map(UserId),
        bot_id: s(m, "bot_id").map(BotId),
        subtype: s(m, "subtype"),
        text: UserText::new(s(m, "text").unwrap_or_default()),
        blocks_text: UserText::new(m.get("blocks").map(blocks_text).unwrap_or_default()),
    })
}

/// The readable text inside Block Kit `blocks` (rich text, sections, fields, context), with
/// user elements written as `<@U…>` so patterns written for message text match here too.
pub fn blocks_text(blocks: &Value) -> String {
    let mut out = String::new();
    collect_text(blocks, &mut out);
    out
}

fn collect_text(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        Value::Object(map) => {
            match map.get("type").and_then(Value::as_str) {
                Some("user") => {
                    if let Some(id) = map.get("user_id").and_then(Value::as_str) {
                        out.push_str(&format!("<@{id}>"));
                    }
                    return;
                }
                Some("link") => {
                    if let Some(url) = map.get("url").and_then(Value::as_str) {
                        out.push_str(map.get("text").and_then(Value::as_str).unwrap_or(url));
                    }
                    return;
                }
                Some("rich_text_section" | "section" | "context" | "rich_text_list" | "header")
                    if !out.is_empty() && !out.ends_with('\n') =>
                {
                    out.push('\n');
                }
                _ => {}
            }
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("text", Value::String(t)) => out.push_str(t),
                    ("type" | "block_id" | "style" | "action_id" | "url" | "image_url", _) => {}
                    _ => collect_text(child, out),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/slack/events/");

    /// A fixture in the repository; a missing or broken one fails the test instead of skipping it.
    fn fixture(name: &str) -> Value {
        let path = format!("{FIXTURES}{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {path} is not JSON: {e}"))
    }

    #[test]
    fn a_user_message_parses_with_its_text_and_thread() {
        let payload = json!({"type":"event_callback","event_id":"Ev1","event_time":1,
            "event":{"type":"message","channel":"C1","user":"U1","text":"vpn broken","ts":"1.000100","thread_ts":"1.000001"}});
        let (id, ev) = parse(payload.into()).unwrap();
        assert_eq!(id.as_str(), "Ev1");
        let Event::Message(m) = ev else { panic!("not a message") };
        assert_eq!(m.text.expose(), "vpn broken");
        assert!(!m.is_root());
        assert_eq!(m.thread().as_str(), "1.000001");
    }

    #[test]
    fn every_sample_event_parses_to_the_right_kind() {
        for (name, want) in [
            ("message_user.json", "message"),
            ("message_from_app_no_subtype.json", "message"),
            ("message_bot_message_subtype.json", "message"),
            ("message_changed.json", "message_changed"),
            ("message_deleted.json", "message_deleted"),
            ("message_thread_broadcast.json", "message"),
            ("reaction_added.json", "reaction_added"),
            ("app_mention.json", "app_mention"),
            ("message_legacy_authed_users.json", "message"),
            ("message_replied.json", "message.message_replied"),
            ("reaction_added_item_channel_type.json", "reaction_added"),
            ("message_channel_join.json", "message.channel_join"),
        ] {
            let payload = fixture(name);
            let (_, ev) = parse(payload.into()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ev.kind(), want, "{name}");
        }
    }

    #[test]
    fn an_app_posted_message_keeps_its_bot_id() {
        let payload = fixture("message_from_app_no_subtype.json");
        let (_, Event::Message(m)) = parse(payload.into()).unwrap() else { panic!("not a message") };
        assert!(m.bot_id.is_some());
        assert!(m.subtype.is_none());
    }

    #[test]
    fn blocks_text_reads_sections_and_user_elements() {
        let blocks = json!([
            {"type":"section","text":{"type":"mrkdwn","text":"Ticket IT-7 created."}},
            {"type":"rich_text","elements":[{"type":"rich_text_section","elements":[
                {"type":"text","text":"Assignee: "},{"type":"user","user_id":"U9"}]}]}
        ]);
        let t = blocks_text(&blocks);
        assert!(t.contains("Ticket IT-7 created."), "{t}");
        assert!(t.contains("Assignee: <@U9>"), "{t}");
    }

    #[test]
    fn a_button_click_becomes_an_action_with_its_thread() {
        let payload = json!({"type":"block_actions","user":{"id":"U1"},"channel":{"id":"C1"},
            "container":{"type":"message","message_ts":"2.0","thread_ts":"1.0","channel_id":"C1"},
            "actions":[{"action_id":"itbot_get_human","value":"1.0","type":"button"}]});
        let Event::Action { user, message_ts, thread_ts, action_id, .. } =
            parse_interactive(&payload.into()).unwrap()
        else {
            panic!("not an action")
        };
        assert_eq!((user.as_str(), message_ts.as_str()), ("U1", "2.0"));
        assert_eq!(thread_ts.unwrap().as_str(), "1.0");
        assert_eq!(action_id, "itbot_get_human");
        assert!(matches!(parse_interactive(&json!({"type":"shortcut"}).into()), Ok(Event::Other { .. })));
        assert!(parse_interactive(&json!({"type":"block_actions"}).into()).is_err());
    }

    #[test]
    fn a_payload_without_an_event_is_an_error_not_a_panic() {
        assert!(parse(json!({"type":"event_callback"}).into()).is_err());
        assert!(parse(json!({"event_id":"Ev1","event":{}}).into()).is_err());
        assert!(matches!(
            parse(json!({"event_id":"Ev1","event":{"type":"team_join"}}).into()),
            Ok((_, Event::Other { .. }))
        ));
    }
}
