//! The replicas' copy of each live thread, in Redis (`REDIS_URL`): every message of the IT
//! channel that reaches any replica, and every post a replica makes (with its thread state), is
//! recorded under its thread; a replica that must read a thread (one it does not hold, or before
//! acting when another replica writes there) reads this copy instead of Slack's
//! `conversations.replies`. Slack stays the durable copy: without Redis, when Redis fails, or for
//! a thread Redis never saw (older than `threads.idle_secs`, or from before Redis was set), the
//! thread is read from Slack as before.
//!
//! Entries are in Slack's own message shape, so one parser reads both copies.

use std::time::Duration;

use serde_json::{json, Value};

use super::Services;
use crate::slack::events::{HistoryMessage, Message};
use crate::slack::{SlackError, Ts};
use crate::state::Metadata;

/// A message as it is recorded: what `conversations.replies` would return for it.
pub fn entry(m: &Message, metadata: Option<&Metadata>) -> String {
    let mut e = json!({ "type": "message", "ts": m.ts, "text": m.text.expose() });
    let fields = [("thread_ts", m.thread_ts.as_ref().map(|t| t.as_str())), ("subtype", m.subtype.as_deref())];
    for (k, v) in fields {
        if let Some(v) = v {
            e[k] = json!(v);
        }
    }
    if let Some(u) = &m.user {
        e["user"] = json!(u);
    }
    if let Some(b) = &m.bot_id {
        e["bot_id"] = json!(b);
    }
    if !m.blocks_text.expose().is_empty() {
        e["blocks"] =
            json!([{ "type": "section", "text": { "type": "mrkdwn", "text": m.blocks_text.expose() } }]);
    }
    if let Some(md) = metadata {
        e["metadata"] = md.to_json();
    }
    e.to_string()
}

/// The thread rooted at `root` from its recorded entries: one message per `ts` (the copy with
/// metadata wins: the poster's own record), oldest first, root first. `None` when the root was
/// never recorded: the copy cannot be trusted to be whole.
pub fn from_entries(
    entries: &[String],
    channel: &crate::slack::ChannelId,
    root: &Ts,
) -> Option<Vec<HistoryMessage>> {
    let mut messages: Vec<HistoryMessage> = Vec::new();
    for raw in entries {
        let Ok(v) = serde_json::from_str::<Value>(raw) else { continue };
        let Some(m) = HistoryMessage::parse(&v, channel) else { continue };
        match messages.iter_mut().find(|seen| seen.message.ts == m.message.ts) {
            Some(seen) => {
                if m.metadata.is_some() || seen.metadata.is_none() {
                    *seen = m;
                }
            }
            None => messages.push(m),
        }
    }
    let key = |m: &HistoryMessage| m.message.ts.as_str().parse::<f64>().unwrap_or(f64::MAX);
    messages.sort_by(|a, b| key(a).total_cmp(&key(b)));
    (messages.first()?.message.ts == *root).then_some(messages)
}

/// How long a thread's copy is kept after its last message.
fn keep_for(s: &Services) -> Duration {
    Duration::from_secs(s.settings.threads.idle_secs.max(60))
}

/// Records `m` (and the state posted with it) in its thread's copy, without waiting.
pub fn record(s: &Services, m: &Message, metadata: Option<&Metadata>) {
    let Some(coord) = s.coord.clone() else { return };
    let (channel, thread, entry) = (s.channel.to_string(), m.thread().to_string(), entry(m, metadata));
    let ts = m.ts.to_string();
    let ttl = keep_for(s);
    actix_rt::spawn(async move {
        if let Err(e) = coord.record(&channel, &thread, &ts, &entry, ttl).await {
            tracing::debug!(error = %e, "message not recorded in the replicas' copy");
        }
    });
}

/// The thread that `ts` (its root, or a reply in it) belongs to: the replicas' copy when there is
/// a whole one, else Slack's (which answers a reply's `ts` with that reply alone).
pub async fn read_thread(s: &Services, ts: &Ts) -> Result<Vec<HistoryMessage>, SlackError> {
    if let Some(coord) = &s.coord {
        for attempt in 0..2 {
            if let Ok((root, entries)) = coord.thread_copy(s.channel.as_str(), ts.as_str()).await {
                let root = Ts::from(root.as_str());
                if let Some(messages) = from_entries(&entries, &s.channel, &root) {
                    if whole(&messages, &s.identity.user_id) {
                        return Ok(messages);
                    }
                }
            }
            if attempt == 0 {
                tokio::time::sleep(COPY_SETTLE).await;
            }
        }
    }
    s.slack.thread_messages(&s.channel, ts).await
}

/// With Redis, how long a replica holds a thread's turn without renewing it: a replica that dies
/// mid-turn blocks the thread this long at most. A live one renews every third of it.
pub const TURN_LEASE: Duration = Duration::from_secs(10);
/// How often a turn held elsewhere is asked about again.
pub const TURN_POLL: Duration = Duration::from_millis(200);
/// The longest an event waits for a turn another replica keeps renewing; after that it is
/// acted on anyway (and the wait is logged), since a silent thread is worse than a race.
pub const TURN_WAIT_MAX: Duration = Duration::from_secs(120);

/// With Redis: waits while another replica holds the turn of the thread `ts` belongs to (its
/// root or a reply in it), so that a thread another replica is answering is read once the answer
/// is in the copy. True when it waited.
pub async fn wait_for_turn(s: &Services, ts: &Ts) -> bool {
    let Some(coord) = &s.coord else { return false };
    let channel = s.channel.as_str();
    let root = match coord.thread_of(channel, ts.as_str()).await {
        Ok(Some(parent)) => parent,
        _ => ts.to_string(),
    };
    let started = std::time::Instant::now();
    let mut waited = false;
    while let Ok(Some(left)) = coord.turn_elsewhere(channel, &root).await {
        if started.elapsed() >= TURN_WAIT_MAX {
            tracing::warn!(thread = %root, "another replica kept this thread's turn too long; reading it anyway");
            break;
        }
        waited = true;
        tokio::time::sleep(left.min(TURN_POLL)).await;
    }
    waited
}

/// How long a copy caught between a post and its poster's record is given to settle.
const COPY_SETTLE: Duration = Duration::from_millis(300);

/// A copy is whole when the bot's posts in it carry their state: Slack delivers a post's event
/// (to any replica) before its poster has the answer and records the post with its state, so a
/// copy read in that moment shows the post without it.
fn whole(messages: &[HistoryMessage], bot: &crate::slack::UserId) -> bool {
    let bots: Vec<&HistoryMessage> =
        messages.iter().filter(|m| m.message.user.as_ref() == Some(bot)).collect();
    bots.is_empty() || bots.iter().any(|m| m.metadata.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::{ChannelId, UserId};
    use crate::state::ThreadState;
    use crate::telemetry::UserText;

    fn message(ts: &str, thread: Option<&str>, user: &str, text: &str) -> Message {
        Message {
            channel: ChannelId::from("C1"),
            ts: Ts::from(ts),
            thread_ts: thread.map(Ts::from),
            user: Some(UserId::from(user)),
            bot_id: None,
            subtype: None,
            text: UserText::new(text.to_string()),
            blocks_text: UserText::new(String::new()),
        }
    }

    #[test]
    fn a_recorded_thread_reads_back_as_slack_would_return_it() {
        let channel = ChannelId::from("C1");
        let root = Ts::from("100.000100");
        let state = ThreadState { attempts: 2, ..ThreadState::default() };
        let mut assist = message("100.000200", Some("100.000100"), "UASSIST", "");
        assist.bot_id = Some(crate::slack::BotId::from("BASSIST"));
        assist.blocks_text = UserText::new("Ticket IT-7 created. Assignee: <@U9>".to_string());
        let entries = vec![
            // The bot's post as its socket event (no metadata) and as its poster recorded it.
            entry(&message("100.000300", Some("100.000100"), "UBOT", "Try this"), None),
            entry(&message("100.000100", None, "U1", "my vpn fails"), None),
            entry(&assist, None),
            entry(
                &message("100.000300", Some("100.000100"), "UBOT", "Try this"),
                Some(&Metadata::from(state)),
            ),
            "not json".to_string(),
            entry(&message("100.000400", Some("100.000100"), "U1", "still broken"), None),
            // Edited later: the copy keeps the latest text.
            entry(&message("100.000400", Some("100.000100"), "U1", "still broken on wifi too"), None),
        ];

        let thread = from_entries(&entries, &channel, &root).expect("the root is there");

        let ts: Vec<&str> = thread.iter().map(|m| m.message.ts.as_str()).collect();
        assert_eq!(ts, ["100.000100", "100.000200", "100.000300", "100.000400"]);
        assert_eq!(
            thread[2].thread_state().map(|s| s.attempts),
            Some(2),
            "the poster's record lost its state"
        );
        assert_eq!(thread[1].message.blocks_text.expose(), "Ticket IT-7 created. Assignee: <@U9>");
        assert_eq!(thread[3].message.text.expose(), "still broken on wifi too", "the edit was lost");
    }

    #[test]
    fn a_copy_whose_bot_post_has_no_state_yet_is_not_whole() {
        let channel = ChannelId::from("C1");
        let root = Ts::from("100.000100");
        let bot = UserId::from("UBOT");
        let mut entries = vec![
            entry(&message("100.000100", None, "U1", "my vpn fails"), None),
            entry(&message("100.000300", Some("100.000100"), "UBOT", "Try this"), None),
        ];
        let copy = from_entries(&entries, &channel, &root).expect("root");
        assert!(!whole(&copy, &bot), "a post without its state was taken as the whole thread");
        entries.push(entry(
            &message("100.000300", Some("100.000100"), "UBOT", "Try this"),
            Some(&Metadata::from(ThreadState::default())),
        ));
        assert!(whole(&from_entries(&entries, &channel, &root).expect("root"), &bot));
        assert!(
            whole(&from_entries(&entries[..1], &channel, &root).expect("root"), &bot),
            "no post yet is whole"
        );
    }

    #[test]
    fn a_copy_without_its_root_is_not_trusted() {
        let entries = vec![entry(&message("100.000400", Some("100.000100"), "U1", "still broken"), None)];
        assert!(from_entries(&entries, &ChannelId::from("C1"), &Ts::from("100.000100")).is_none());
        assert!(from_entries(&[], &ChannelId::from("C1"), &Ts::from("100.000100")).is_none());
    }
}
