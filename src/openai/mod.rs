//! A plain async Chat Completions client (no actors) for any OpenAI-compatible server:
//! one attempt per call, plain or streamed (SSE). Retries, pacing and accounting live in
//! `actors::openai`, which wraps this client.

pub mod budget;
pub mod cost;
pub mod meter;
pub mod retry;
pub mod sse;

use std::time::Duration;

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use sse::{SseDecoder, StreamItem};

/// One message of the conversation sent to the model.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl std::fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChatMessage({:?}, len={})", self.role, self.content.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// The request body. No `user`, `safety_identifier` or `metadata`: nothing that identifies a
/// person is sent.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub max_completion_tokens: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct StreamOptions {
    pub include_usage: bool,
}

/// Token counts the API reported for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    /// Prompt tokens served from the prompt cache (cheaper).
    pub cached_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// What came back: the answer text, why it ended, the model that wrote it and the token counts.
#[derive(Clone)]
pub struct Completion {
    pub content: String,
    pub finish_reason: String,
    pub model: String,
    pub usage: Usage,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("content_len", &self.content.len())
            .field("finish_reason", &self.finish_reason)
            .field("model", &self.model)
            .field("usage", &self.usage)
            .finish()
    }
}

/// A failed completion. `Display` holds status and error code, never prompt or answer text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenAiError {
    #[error("HTTP {status}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        status: u16,
        code: Option<String>,
        /// From `retry-after-ms` or `retry-after`, when the server sent one.
        retry_after: Option<Duration>,
        /// `x-should-retry`, the server's override of the retry rules.
        should_retry: Option<bool>,
    },
    #[error("timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unreadable response: {0}")]
    Decode(String),
    #[error("error inside the stream{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Stream { code: Option<String> },
    #[error("the model returned no answer (finish_reason {0})")]
    Empty(String),
    #[error("the model refused to answer")]
    Refused,
}

impl OpenAiError {
    /// Retried the way the official client does: 408, 409, 429, 5xx, timeouts and connection
    /// errors (and errors the server sends mid-stream); never `insufficient_quota`, which needs a
    /// person to fix billing. `x-should-retry` overrides.
    pub fn is_retryable(&self) -> bool {
        match self {
            OpenAiError::Status { status, code, should_retry, .. } => {
                if let Some(s) = should_retry {
                    return *s;
                }
                if code.as_deref() == Some("insufficient_quota") {
                    return false;
                }
                matches!(status, 408 | 409 | 429) || *status >= 500
            }
            OpenAiError::Timeout | OpenAiError::Transport(_) | OpenAiError::Stream { .. } => true,
            OpenAiError::Decode(_) | OpenAiError::Empty(_) | OpenAiError::Refused => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OpenAiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short code for logs and metrics.
    pub fn kind(&self) -> String {
        match self {
            OpenAiError::Status { status, code, .. } => {
                code.clone().unwrap_or_else(|| format!("http_{status}"))
            }
            OpenAiError::Timeout => "timeout".into(),
            OpenAiError::Transport(_) => "transport".into(),
            OpenAiError::Decode(_) => "decode".into(),
            OpenAiError::Stream { .. } => "stream_error".into(),
            OpenAiError::Empty(_) => "empty".into(),
            OpenAiError::Refused => "refused".into(),
        }
    }
}

#[derive(Deserialize)]
struct ResponseBody {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<sse::WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Largest response body read (a whole answer is a few kilobytes).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Chat Completions at a base URL such as `https://api.openai.com/v1`.
#[derive(Clone)]
pub struct Client {
    http: awc::Client,
    base_url: String,
    api_key: SecretString,
    timeout: Duration,
}

impl Client {
    /// `timeout` bounds each attempt from sending to the last byte of the answer.
    pub fn new(
        http: awc::Client,
        base_url: impl Into<String>,
        api_key: SecretString,
        timeout: Duration,
    ) -> Client {
        Client { http, base_url: base_url.into(), api_key, timeout }
    }

    fn post(&self, attempt: u32) -> awc::ClientRequest {
        self.http
            .post(format!("{}/chat/completions", self.base_url))
            .timeout(self.timeout)
            .insert_header(("Authorization", format!("Bearer {}", self.api_key.expose_secret())))
            .insert_header(("x-stainless-retry-count", attempt.to_string()))
    }

    /// One plain attempt; the caller decides about retries.
    pub async fn complete(&self, request: &ChatRequest, attempt: u32) -> Result<Completion, OpenAiError> {
        let work = async {
            let mut response = self.post(attempt).send_json(request).await.map_err(send_error)?;
            let status = response.status().as_u16();
            let bytes = response
                .body()
                .limit(MAX_BODY_BYTES)
                .await
                .map_err(|e| OpenAiError::Transport(e.to_string()))?;
            if status != 200 {
                return Err(status_error(status, response.headers(), &bytes));
            }
            let body: ResponseBody =
                serde_json::from_slice(&bytes).map_err(|e| OpenAiError::Decode(e.to_string()))?;
            let usage = body.usage.map(Usage::from).unwrap_or_default();
            let choice =
                body.choices.into_iter().next().ok_or_else(|| OpenAiError::Empty("no choices".into()))?;
            let finish_reason = choice.finish_reason.unwrap_or_default();
            if choice.message.refusal.is_some_and(|r| !r.is_empty()) {
                return Err(OpenAiError::Refused);
            }
            let content = choice.message.content.unwrap_or_default();
            if content.trim().is_empty() {
                return Err(OpenAiError::Empty(finish_reason));
            }
            Ok(Completion { content, finish_reason, model: body.model.unwrap_or_default(), usage })
        };
        actix_rt::time::timeout(self.timeout, work).await.unwrap_or(Err(OpenAiError::Timeout))
    }

    /// One streamed attempt: `on_content` gets each piece of the answer as it arrives; the whole
    /// completion is returned at the end. The caller decides about retries (and must not retry
    /// once content was handed out).
    pub async fn complete_stream(
        &self,
        request: &ChatRequest,
        attempt: u32,
        mut on_content: impl FnMut(&str),
    ) -> Result<Completion, OpenAiError> {
        let mut request = request.clone();
        request.stream = true;
        request.stream_options = Some(StreamOptions { include_usage: true });
        let work = async {
            let mut response = self.post(attempt).send_json(&request).await.map_err(send_error)?;
            let status = response.status().as_u16();
            if status != 200 {
                let bytes = response
                    .body()
                    .limit(MAX_BODY_BYTES)
                    .await
                    .map_err(|e| OpenAiError::Transport(e.to_string()))?;
                return Err(status_error(status, response.headers(), &bytes));
            }
            let mut decoder = SseDecoder::new();
            let mut answer = Assembly::default();
            while let Some(piece) = response.next().await {
                let piece = piece.map_err(|e| OpenAiError::Transport(e.to_string()))?;
                for event in decoder.push(&piece).map_err(OpenAiError::Decode)? {
                    let items = sse::read_event(&event).map_err(OpenAiError::Decode)?;
                    if answer.apply(items, &mut on_content)? {
                        return answer.finish(&request.model);
                    }
                }
            }
            if let Some(event) = decoder.finish() {
                let items = sse::read_event(&event).map_err(OpenAiError::Decode)?;
                answer.apply(items, &mut on_content)?;
            }
            if answer.finish_reason.is_none() {
                return Err(OpenAiError::Transport("the stream ended before the answer did".into()));
            }
            answer.finish(&request.model)
        };
        actix_rt::time::timeout(self.timeout, work).await.unwrap_or(Err(OpenAiError::Timeout))
    }
}

/// A streamed answer being put together.
#[derive(Default)]
struct Assembly {
    content: String,
    refusal: bool,
    finish_reason: Option<String>,
    model: Option<String>,
    usage: Usage,
}

impl Assembly {
    /// Applies the items of one event; true once `[DONE]` arrived.
    fn apply(
        &mut self,
        items: Vec<StreamItem>,
        on_content: &mut impl FnMut(&str),
    ) -> Result<bool, OpenAiError> {
        for item in items {
            match item {
                StreamItem::Content(text) => {
                    on_content(&text);
                    self.content.push_str(&text);
                }
                StreamItem::Refusal(_) => self.refusal = true,
                StreamItem::Finish(reason) => self.finish_reason = Some(reason),
                StreamItem::Usage(u) => self.usage = u,
                StreamItem::Model(m) => self.model = Some(m),
                StreamItem::Error { code } => return Err(OpenAiError::Stream { code }),
                StreamItem::Done => return Ok(true),
            }
        }
        Ok(false)
    }

    fn finish(self, requested_model: &str) -> Result<Completion, OpenAiError> {
        let finish_reason = self.finish_reason.unwrap_or_default();
        if self.refusal && self.content.trim().is_empty() {
            return Err(OpenAiError::Refused);
        }
        if self.content.trim().is_empty() {
            return Err(OpenAiError::Empty(finish_reason));
        }
        Ok(Completion {
            content: self.content,
            finish_reason,
            model: self.model.unwrap_or_else(|| requested_model.to_string()),
            usage: self.usage,
        })
    }
}

fn send_error(e: awc::error::SendRequestError) -> OpenAiError {
    match e {
        awc::error::SendRequestError::Timeout => OpenAiError::Timeout,
        other => OpenAiError::Transport(other.to_string()),
    }
}

fn status_error(status: u16, headers: &awc::http::header::HeaderMap, body: &[u8]) -> OpenAiError {
    let code = serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| {
        b.error
            .code
            .and_then(|c| c.as_str().map(str::to_string).or_else(|| Some(c.to_string())))
            .or(b.error.kind)
    });
    OpenAiError::Status {
        status,
        code,
        retry_after: retry::retry_after(headers),
        should_retry: retry::should_retry_header(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_no_user_field_and_streams_only_when_asked() {
        let r = ChatRequest {
            model: "m".into(),
            messages: vec![],
            temperature: 0.2,
            max_completion_tokens: 10,
            stream: false,
            stream_options: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("user").is_none());
        assert!(v.get("stream").is_none() && v.get("stream_options").is_none());
        assert_eq!(v["max_completion_tokens"], 10);
        let streamed =
            ChatRequest { stream: true, stream_options: Some(StreamOptions { include_usage: true }), ..r };
        let v = serde_json::to_value(&streamed).unwrap();
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn a_recorded_completion_is_read_with_its_usage() {
        let body: ResponseBody = serde_json::from_str(
            r#"{"id":"x","model":"gpt-5.4","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0}},"service_tier":"default"}"#,
        )
        .unwrap();
        let usage: Usage = body.usage.unwrap().into();
        assert_eq!(usage, Usage { prompt_tokens: 19, cached_tokens: 3, completion_tokens: 10 });
    }

    #[test]
    fn error_bodies_give_their_code() {
        let e = status_error(
            429,
            &awc::http::header::HeaderMap::new(),
            br#"{"error":{"message":"m","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        );
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "HTTP 429 (insufficient_quota)");
    }
}
