//! Slack's ids as newtypes, used by every module: the Slack client, the thread state written
//! to message metadata, the config (`IT_CHANNEL_ID`). Kept apart from the client so that the
//! domain types do not depend on it; `slack::Ts` and the rest re-export them.

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

impl ChannelId {
    /// A channel id, if `s` looks like one (not a `#name`).
    pub fn parse(s: &str) -> Option<ChannelId> {
        let ok = s.len() >= 3
            && s.starts_with(['C', 'G', 'D'])
            && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        ok.then(|| ChannelId(s.to_string()))
    }
}
