//! Slack: ids, the Web API client, Socket Mode frames, event types and mrkdwn output.

pub mod api;
pub mod client;
pub mod events;
pub mod format;
pub mod socket;

pub use api::{SlackError, WebClient};
pub use client::SlackApi;

use serde::{Deserialize, Serialize};

macro_rules! slack_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}

slack_id!(
    /// A conversation id (`C…` public, `G…` private, `D…` direct message).
    ChannelId
);
slack_id!(
    /// A user id (`U…`, or `W…` on Enterprise Grid). Bots have one too.
    UserId
);
slack_id!(
    /// A bot id (`B…`), set on every message an app posts.
    BotId
);
slack_id!(
    /// A message timestamp such as `1610241741.000200`; unique per channel.
    Ts
);
slack_id!(
    /// The id of one event delivery (`Ev…`); redeliveries reuse it.
    EventId
);
slack_id!(
    /// The id of one Socket Mode envelope, echoed in the ack.
    EnvelopeId
);

/// Block Kit blocks (an array), as `compose` builds them or Slack returned them: sent on as
/// they are, and read only by the Slack client.
#[derive(Debug, Clone, PartialEq)]
pub struct Blocks(serde_json::Value);

impl Default for Blocks {
    /// No blocks.
    fn default() -> Blocks {
        Blocks(serde_json::Value::Array(Vec::new()))
    }
}

/// Longest text of one section block (Slack's limit is 3,000 characters).
const SECTION_CHARS: usize = 2_900;

impl Blocks {
    /// `blocks` must be a JSON array of blocks.
    pub fn new(blocks: serde_json::Value) -> Blocks {
        Blocks(blocks)
    }

    /// `mrkdwn` in section blocks, each within Slack's limit (split at paragraphs).
    pub fn sections(mrkdwn: &str) -> Blocks {
        let sections = format::split_message(mrkdwn, SECTION_CHARS)
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(|part| serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": part}}))
            .collect();
        Blocks(serde_json::Value::Array(sections))
    }

    /// One context block: small grey `mrkdwn` under a message.
    pub fn context(mrkdwn: &str) -> Blocks {
        Blocks(serde_json::json!([{"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}]))
    }

    /// These blocks, then `more`.
    pub fn then(self, more: &Blocks) -> Blocks {
        let mut items = self.items();
        items.extend(more.items());
        Blocks(serde_json::Value::Array(items))
    }

    pub fn is_empty(&self) -> bool {
        self.items().is_empty()
    }

    /// The blocks as JSON, for the request body (and tests that look inside).
    pub fn to_json(&self) -> serde_json::Value {
        self.0.clone()
    }

    /// The blocks one by one (a single block object counts as one).
    fn items(&self) -> Vec<serde_json::Value> {
        match &self.0 {
            serde_json::Value::Array(items) => items.clone(),
            block @ serde_json::Value::Object(_) => vec![block.clone()],
            _ => Vec::new(),
        }
    }

    /// The readable text inside the blocks.
    pub fn text(&self) -> String {
        events::blocks_text(&self.0)
    }
}

impl ChannelId {
    /// A channel id, if `s` looks like one (not a `#name`).
    pub fn parse(s: &str) -> Option<ChannelId> {
        let ok = s.len() >= 3
            && s.starts_with(['C', 'G', 'D'])
            && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        ok.then(|| ChannelId(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_follow_the_text_in_sections_within_slack_limits() {
        let text = "word ".repeat(1500);
        let buttons = Blocks::new(serde_json::json!([{"type": "actions", "elements": []}]));

        let blocks = Blocks::sections(&text).then(&buttons).items();

        assert!(blocks.len() >= 4);
        assert_eq!(blocks.last().unwrap()["type"], "actions");
        for b in &blocks[..blocks.len() - 1] {
            assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
        }
    }

    #[test]
    fn no_blocks_add_nothing() {
        assert!(Blocks::default().is_empty());
        assert_eq!(Blocks::context("footer").then(&Blocks::default()).items().len(), 1);
        assert!(Blocks::sections("").is_empty());
    }
}
