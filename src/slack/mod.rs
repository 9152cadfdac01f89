//! Slack: ids, the Web API client, Socket Mode frames, event types and mrkdwn output.

pub mod api;
pub mod client;
pub mod events;
pub mod format;
pub mod socket;

pub use api::{SlackError, WebClient};
pub use client::SlackApi;

pub use crate::ids::{BotId, ChannelId, EnvelopeId, EventId, Ts, UserId};

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
