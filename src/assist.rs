//! Reading the Assist ticketing bot's card: is a message Assist's, and which ticket and assignee
//! does it name. Patterns come from `[assist]` in the config and are matched against both the
//! message text and the text inside its blocks.

use regex::Regex;

use crate::config::AssistSettings;
use crate::slack::events::Message;
use crate::slack::{BotId, UserId};

/// What Assist told us about a ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssistCard {
    pub ticket: Option<String>,
    pub assignee: Option<UserId>,
}

/// Recognises and reads Assist's messages.
#[derive(Debug, Clone)]
pub struct AssistParser {
    bot_ids: Vec<BotId>,
    assignee: Regex,
    ticket: Regex,
}

impl AssistParser {
    /// Patterns are validated when the config loads, so compiling them here cannot fail for a
    /// loaded config; an invalid one (only possible for hand-built settings) is reported.
    pub fn new(settings: &AssistSettings) -> Result<AssistParser, regex::Error> {
        Ok(AssistParser {
            bot_ids: settings.bot_ids.iter().map(|b| BotId(b.clone())).collect(),
            assignee: Regex::new(&settings.assignee_pattern)?,
            ticket: Regex::new(&settings.ticket_pattern)?,
        })
    }

    /// A bot message is Assist's when its bot id is configured, or, with no ids configured,
    /// when it reads like a ticket card.
    pub fn is_assist(&self, message: &Message) -> bool {
        let Some(bot) = &message.bot_id else { return false };
        if !self.bot_ids.is_empty() {
            return self.bot_ids.contains(bot);
        }
        let card = self.read(message);
        card.ticket.is_some() || card.assignee.is_some()
    }

    /// Ticket key and assignee, from the text first and the blocks second.
    pub fn read(&self, message: &Message) -> AssistCard {
        let sources = [message.text.expose(), message.blocks_text.expose()];
        let first = |re: &Regex| {
            sources.iter().find_map(|s| re.captures(s).and_then(|c| c.get(1)).map(|m| m.as_str().to_string()))
        };
        AssistCard { ticket: first(&self.ticket), assignee: first(&self.assignee).map(UserId) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::slack::{ChannelId, Ts};
    use crate::telemetry::UserText;

    fn message(bot: Option<&str>, text: &str, blocks_text: &str) -> Message {
        Message {
            channel: ChannelId::from("C1"),
            ts: Ts::from("2.0"),
            thread_ts: Some(Ts::from("1.0")),
            user: Some(UserId::from("U0ASSIST")),
            bot_id: bot.map(BotId::from),
            subtype: None,
            text: UserText::new(text),
            blocks_text: UserText::new(blocks_text),
        }
    }

    #[test]
    fn reads_ticket_and_assignee_from_text_or_blocks() {
        let parser = AssistParser::new(&Settings::shipped().assist).unwrap();
        let card = parser.read(&message(Some("B1"), "Ticket IT-1042 created.\nAssignee: <@U0DANA>", ""));
        assert_eq!(card.ticket.as_deref(), Some("IT-1042"));
        assert_eq!(card.assignee, Some(UserId::from("U0DANA")));
        let card = parser.read(&message(
            Some("B1"),
            "New ticket",
            "Ticket HELP-7 created. *Assignee:* <@W0SAM|sam>",
        ));
        assert_eq!(card.ticket.as_deref(), Some("HELP-7"));
        assert_eq!(card.assignee, Some(UserId::from("W0SAM")));
    }

    #[test]
    fn with_no_bot_ids_configured_a_card_is_recognised_by_its_content() {
        let parser = AssistParser::new(&Settings::shipped().assist).unwrap();
        assert!(parser.is_assist(&message(Some("B9"), "Ticket IT-1 created.", "")));
        assert!(!parser.is_assist(&message(Some("B9"), "Deploy finished", "")));
        assert!(!parser.is_assist(&message(None, "Ticket IT-1 created.", "")));
    }

    #[test]
    fn with_bot_ids_configured_only_those_bots_count() {
        let mut settings = Settings::shipped().assist;
        settings.bot_ids = vec!["B0ASSIST".into()];
        let parser = AssistParser::new(&settings).unwrap();
        assert!(parser.is_assist(&message(Some("B0ASSIST"), "hello", "")));
        assert!(!parser.is_assist(&message(Some("B9"), "Ticket IT-1 created.", "")));
    }
}
