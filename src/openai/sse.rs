//! Server-sent events from a streamed Chat Completion: the byte-level decoder and the chunk
//! reader. Pure code, fed with whatever pieces the network delivers.
//!
//! Shapes follow OpenAI's documented stream (our samples: `tests/fixtures/openai/stream.*.sse`):
//! a first chunk with `delta.role`, content chunks, a chunk with `finish_reason`, then (with
//! `include_usage`) a chunk whose `choices` is empty and which carries `usage`, then
//! `data: [DONE]`. Unknown fields
//! (`obfuscation`, `service_tier`, …) are ignored; `usage: null` on other chunks is accepted.

use serde::Deserialize;

use super::Usage;

/// Splits a byte stream into the `data` of each event. Events end at a blank line (`\n\n` or
/// `\r\n\r\n`); several `data:` lines in one event are joined with `\n`; comments (`:`) and the
/// `id` / `retry` fields are ignored; `event: error` marks an error event.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    pub data: String,
}

/// Longest event we accept; a server that never ends an event must not grow memory forever.
const MAX_EVENT_BYTES: usize = 1 << 20;

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Adds bytes and returns every event completed by them. Errors when one event grows past
    /// the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_event_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end + sep).take(end).collect();
            if let Some(e) = parse_event(&String::from_utf8_lossy(&raw)) {
                events.push(e);
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(format!("an event exceeded {MAX_EVENT_BYTES} bytes"));
        }
        Ok(events)
    }

    /// The last event when the stream ends without a trailing blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buffer);
        parse_event(&String::from_utf8_lossy(&raw))
    }
}

fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(raw: &str) -> Option<SseEvent> {
    let mut data: Vec<&str> = Vec::new();
    let mut event = None;
    for line in raw.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => data.push(value),
            "event" => event = Some(value.to_string()),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| SseEvent { event, data: data.join("\n") })
}

/// What one event means for the answer being assembled.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// More answer text.
    Content(String),
    /// The model refused (`delta.refusal`).
    Refusal(String),
    /// Why generation stopped (`stop`, `length`, `content_filter`, …).
    Finish(String),
    /// Token counts for the whole request (the usage-only last chunk).
    Usage(Usage),
    /// The model that answered, from the first chunk.
    Model(String),
    /// An error object inside the stream.
    Error { code: Option<String> },
    /// `data: [DONE]`.
    Done,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

/// `usage` as the API sends it (also used by the non-streamed response).
#[derive(Deserialize, Default)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Default)]
pub(crate) struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            prompt_tokens: u.prompt_tokens,
            cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            completion_tokens: u.completion_tokens,
        }
    }
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Reads one event. Only the first choice matters (we never ask for `n > 1`).
pub fn read_event(event: &SseEvent) -> Result<Vec<StreamItem>, String> {
    if event.data.starts_with("[DONE]") {
        return Ok(vec![StreamItem::Done]);
    }
    let chunk: Chunk = serde_json::from_str(&event.data).map_err(|e| format!("unreadable chunk: {e}"))?;
    if let Some(err) = chunk.error {
        let code = err
            .code
            .and_then(|c| c.as_str().map(str::to_string).or_else(|| Some(c.to_string())))
            .or(err.kind);
        return Ok(vec![StreamItem::Error { code }]);
    }
    if event.event.as_deref() == Some("error") {
        return Ok(vec![StreamItem::Error { code: None }]);
    }
    let mut items = Vec::new();
    if let Some(model) = chunk.model {
        items.push(StreamItem::Model(model));
    }
    for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                items.push(StreamItem::Content(text));
            }
            if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                items.push(StreamItem::Refusal(text));
            }
        }
        if let Some(reason) = choice.finish_reason {
            items.push(StreamItem::Finish(reason));
        }
    }
    if let Some(usage) = chunk.usage {
        items.push(StreamItem::Usage(usage.into()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream in the repository's fixtures; a missing one fails the test, naming the path.
    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/openai/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    /// Feeds `bytes` in pieces of `step` bytes and reads every item.
    fn read_all(bytes: &[u8], step: usize) -> Vec<StreamItem> {
        let mut decoder = SseDecoder::new();
        let mut items = Vec::new();
        for piece in bytes.chunks(step) {
            for e in decoder.push(piece).expect("events within the limit") {
                items.extend(read_event(&e).expect("readable event"));
            }
        }
        items.extend(decoder.finish().map(|e| read_event(&e).expect("readable event")).unwrap_or_default());
        items
    }

    fn content(items: &[StreamItem]) -> String {
        items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Content(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_sample_text_stream_yields_its_answer_usage_and_done() {
        let bytes = fixture("stream.text.sse");
        for step in [1, 7, 64, bytes.len()] {
            let items = read_all(&bytes, step);
            assert!(content(&items).starts_with("Quit Outlook, then open Keychain Access"));
            assert!(items.contains(&StreamItem::Finish("stop".into())));
            assert!(items.contains(&StreamItem::Usage(Usage {
                prompt_tokens: 58,
                cached_tokens: 0,
                completion_tokens: 31
            })));
            assert_eq!(items.last(), Some(&StreamItem::Done));
            assert!(items.contains(&StreamItem::Model("gpt-4o-mini-2024-07-18".into())));
        }
    }

    #[test]
    fn the_sample_length_stream_reports_finish_reason_length() {
        let items = read_all(&fixture("stream.finish_length.sse"), 13);
        assert_eq!(content(&items), "Restart the");
        assert!(items.contains(&StreamItem::Finish("length".into())));
        assert!(items.iter().any(|i| matches!(i, StreamItem::Usage(u) if u.completion_tokens == 2)));
    }

    #[test]
    fn the_sample_json_schema_stream_reassembles_its_json() {
        let items = read_all(&fixture("stream.json_schema.sse"), 5);
        let v: serde_json::Value = serde_json::from_str(&content(&items)).expect("valid JSON");
        assert_eq!(v, serde_json::json!({"category": "technical", "urgency": 2, "needs_human": false}));
    }

    #[test]
    fn unknown_fields_null_usage_crlf_and_comments_are_tolerated() {
        let raw = b": keep-alive\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"obfuscation\":\"x\"}],\"usage\":null,\"new_field\":1}\r\n\r\ndata: [DONE]\r\n\r\n";
        let items = read_all(raw, 3);
        assert_eq!(items, vec![StreamItem::Content("Hi".into()), StreamItem::Done]);
    }

    #[test]
    fn an_error_inside_the_stream_is_reported_with_its_code() {
        let raw = b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_is_overloaded\"}}\n\n";
        let items = read_all(raw, 10);
        assert_eq!(items, vec![StreamItem::Error { code: Some("server_is_overloaded".into()) }]);
    }

    #[test]
    fn multibyte_text_split_across_reads_survives() {
        let raw = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüße ✅\"}}]}\n\n".as_bytes();
        assert_eq!(content(&read_all(raw, 1)), "Grüße ✅");
    }

    #[test]
    fn a_runaway_event_is_an_error() {
        let mut d = SseDecoder::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(d.push(&big).is_err());
    }
}
