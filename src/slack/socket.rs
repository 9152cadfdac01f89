//! Socket Mode frames: what Slack sends over the WebSocket, and the ack we send back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EnvelopeId;

/// A text frame from Slack, tagged on `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First frame on a new connection.
    Hello {
        #[serde(default)]
        num_connections: Option<u32>,
        #[serde(default)]
        debug_info: Option<DebugInfo>,
    },
    /// Slack is about to close (or refuses) this connection.
    Disconnect {
        #[serde(default)]
        reason: String,
    },
    EventsApi(Envelope),
    Interactive(Envelope),
    SlashCommands(Envelope),
    /// A frame type this version does not know; it is acked if it carries an envelope id.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub struct DebugInfo {
    #[serde(default)]
    pub host: Option<String>,
    /// Seconds Slack expects this connection to live.
    #[serde(default)]
    pub approximate_connection_time: Option<u64>,
}

/// One delivery: the envelope id to ack and the payload (an `event_callback` for events).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub envelope_id: EnvelopeId,
    #[serde(default)]
    pub payload: Payload,
    #[serde(default)]
    pub retry_attempt: u32,
    #[serde(default)]
    pub retry_reason: String,
    #[serde(default)]
    pub accepts_response_payload: bool,
}

/// An envelope's payload as Slack sent it: carried as it is, read by [`super::events::parse`]
/// and [`super::events::parse_interactive`].
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Payload(pub(super) Value);

impl From<Value> for Payload {
    fn from(payload: Value) -> Payload {
        Payload(payload)
    }
}

/// The envelope id alone: read from a frame that does not parse any further, so even a frame
/// we cannot understand is acked and Slack does not redeliver it forever.
#[derive(Debug, Deserialize)]
struct EnvelopeIdOnly {
    envelope_id: Option<EnvelopeId>,
}

/// The acknowledgement frame.
#[derive(Debug, Serialize)]
pub struct Ack<'a> {
    pub envelope_id: &'a EnvelopeId,
}

/// A parsed frame, or the reason it could not be parsed plus any envelope id found in it.
pub fn parse_frame(text: &str) -> Result<Frame, (String, Option<EnvelopeId>)> {
    serde_json::from_str::<Frame>(text).map_err(|e| (e.to_string(), envelope_id(text)))
}

/// The envelope id of any frame that has one (for frames of a type this version does not know).
pub fn envelope_id(text: &str) -> Option<EnvelopeId> {
    serde_json::from_str::<EnvelopeIdOnly>(text).ok().and_then(|f| f.envelope_id)
}

/// The ack text for an envelope (`{"envelope_id":"…"}`).
pub fn ack_text(id: &EnvelopeId) -> String {
    // Serialising a struct of one string cannot fail.
    serde_json::to_string(&Ack { envelope_id: id }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/slack/socket_mode/");

    /// A fixture in the repository; a missing one fails the test instead of skipping it.
    fn fixture(name: &str) -> String {
        let path = format!("{FIXTURES}{name}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    #[test]
    fn envelopes_and_control_frames_parse() {
        let hello = r#"{"type":"hello","num_connections":2,"debug_info":{"host":"applink-1","build_number":10,"approximate_connection_time":18060},"connection_info":{"app_id":"A111"}}"#;
        assert!(matches!(parse_frame(hello), Ok(Frame::Hello { num_connections: Some(2), .. })));
        let bye = r#"{"type":"disconnect","reason":"warning","debug_info":{"host":"applink-7"}}"#;
        assert!(matches!(parse_frame(bye), Ok(Frame::Disconnect { reason }) if reason == "warning"));
        let ev = r#"{"envelope_id":"e1","payload":{"event_id":"Ev1"},"type":"events_api","accepts_response_payload":false,"retry_attempt":1,"retry_reason":"timeout"}"#;
        match parse_frame(ev) {
            Ok(Frame::EventsApi(env)) => {
                assert_eq!(env.envelope_id.as_str(), "e1");
                assert_eq!(env.retry_attempt, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_sample_frame_parses_to_its_type() {
        for (name, want) in [
            ("envelope_events_api_app_mention.json", "events_api"),
            ("envelope_events_api_message.json", "events_api"),
            ("envelope_events_api_message_retry_timeout.json", "events_api"),
            ("envelope_interactive_shortcut.json", "interactive"),
            ("envelope_slash_commands.json", "slash_commands"),
            ("hello.json", "hello"),
            ("disconnect_too_many_websockets.json", "disconnect"),
        ] {
            let text = fixture(name);
            let frame = parse_frame(&text).unwrap_or_else(|e| panic!("{name}: {}", e.0));
            let got = match frame {
                Frame::EventsApi(_) => "events_api",
                Frame::Interactive(_) => "interactive",
                Frame::SlashCommands(_) => "slash_commands",
                Frame::Hello { .. } => "hello",
                Frame::Disconnect { .. } => "disconnect",
                Frame::Unknown => "unknown",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn an_unknown_frame_type_is_not_an_error_and_its_envelope_id_is_found() {
        assert!(matches!(parse_frame(r#"{"type":"brand_new","x":1}"#), Ok(Frame::Unknown)));
        let text = r#"{"type":"brand_new","envelope_id":"e7","payload":{}}"#;
        assert!(matches!(parse_frame(text), Ok(Frame::Unknown)));
        assert_eq!(envelope_id(text).map(|e| e.0), Some("e7".to_string()));
        assert!(envelope_id(r#"{"type":"hello"}"#).is_none());
    }

    #[test]
    fn a_malformed_envelope_still_yields_its_id_for_the_ack() {
        let (reason, id) =
            parse_frame(r#"{"type":"events_api","envelope_id":"e9","retry_attempt":"x"}"#).unwrap_err();
        assert!(!reason.is_empty());
        assert_eq!(id.unwrap().as_str(), "e9");
        assert!(parse_frame("not json").unwrap_err().1.is_none());
    }

    #[test]
    fn the_ack_is_the_envelope_id_alone() {
        assert_eq!(ack_text(&EnvelopeId("abc-1".into())), r#"{"envelope_id":"abc-1"}"#);
    }
}
