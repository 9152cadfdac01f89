//! A plain async Chat Completions client (no actors) for any OpenAI-compatible server.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

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

/// The request body. No `user` field: nothing that identifies a person is sent.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: f64,
    pub max_completion_tokens: u32,
}

/// What came back: the answer text and the token counts.
#[derive(Clone)]
pub struct Completion {
    pub content: String,
    pub finish_reason: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("content_len", &self.content.len())
            .field("finish_reason", &self.finish_reason)
            .field("prompt_tokens", &self.prompt_tokens)
            .field("completion_tokens", &self.completion_tokens)
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
    },
    #[error("timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unreadable response: {0}")]
    Decode(String),
    #[error("the model returned no answer (finish_reason {0})")]
    Empty(String),
}

impl OpenAiError {
    /// Retried the way the official client does: 408, 409, 429, 5xx, timeouts and connection
    /// errors; never `insufficient_quota`, which needs a person to fix billing.
    pub fn is_retryable(&self) -> bool {
        match self {
            OpenAiError::Status { status, code, .. } => {
                if code.as_deref() == Some("insufficient_quota") {
                    return false;
                }
                matches!(status, 408 | 409 | 429) || *status >= 500
            }
            OpenAiError::Timeout | OpenAiError::Transport(_) => true,
            OpenAiError::Decode(_) | OpenAiError::Empty(_) => false,
        }
    }
}

#[derive(Deserialize)]
struct ResponseBody {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
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
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Chat Completions at a base URL such as `https://api.openai.com/v1`.
#[derive(Clone)]
pub struct Client {
    http: awc::Client,
    base_url: String,
    api_key: SecretString,
    timeout: Duration,
}

impl Client {
    pub fn new(
        http: awc::Client,
        base_url: impl Into<String>,
        api_key: SecretString,
        timeout: Duration,
    ) -> Client {
        Client { http, base_url: base_url.into(), api_key, timeout }
    }

    /// One attempt; the caller decides about retries.
    pub async fn complete(&self, request: &ChatRequest, attempt: u32) -> Result<Completion, OpenAiError> {
        let url = format!("{}/chat/completions", self.base_url);
        let sent = self
            .http
            .post(url)
            .timeout(self.timeout)
            .insert_header(("Authorization", format!("Bearer {}", self.api_key.expose_secret())))
            .insert_header(("x-stainless-retry-count", attempt.to_string()))
            .send_json(request)
            .await;
        let mut response = sent.map_err(|e| match e {
            awc::error::SendRequestError::Timeout => OpenAiError::Timeout,
            other => OpenAiError::Transport(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = response
            .body()
            .limit(8 * 1024 * 1024)
            .await
            .map_err(|e| OpenAiError::Transport(e.to_string()))?;
        if status != 200 {
            let code =
                serde_json::from_slice::<ErrorBody>(&bytes).ok().and_then(|b| b.error.code.or(b.error.kind));
            return Err(OpenAiError::Status { status, code, retry_after });
        }
        let body: ResponseBody =
            serde_json::from_slice(&bytes).map_err(|e| OpenAiError::Decode(e.to_string()))?;
        let usage = body.usage.unwrap_or(Usage { prompt_tokens: 0, completion_tokens: 0 });
        let choice =
            body.choices.into_iter().next().ok_or_else(|| OpenAiError::Empty("no choices".into()))?;
        let finish_reason = choice.finish_reason.unwrap_or_default();
        let content = choice.message.content.unwrap_or_default();
        if content.trim().is_empty() {
            return Err(OpenAiError::Empty(finish_reason));
        }
        Ok(Completion {
            content,
            finish_reason,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }
}

/// `retry-after-ms` first, then `retry-after` in seconds, as the official client reads them.
fn retry_after(headers: &awc::http::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(ms) = get("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    get("retry-after").filter(|v| v.is_finite() && *v >= 0.0).map(|s| Duration::from_secs_f64(s.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_errors_are_not_retried_but_rate_limits_are() {
        let status =
            |status, code: &str| OpenAiError::Status { status, code: Some(code.into()), retry_after: None };
        assert!(!status(429, "insufficient_quota").is_retryable());
        assert!(status(429, "rate_limit_exceeded").is_retryable());
        assert!(status(503, "server_error").is_retryable());
        assert!(!status(400, "context_length_exceeded").is_retryable());
        assert!(OpenAiError::Timeout.is_retryable());
    }

    #[test]
    fn the_request_carries_no_user_field() {
        let r =
            ChatRequest { model: "m".into(), messages: vec![], temperature: 0.2, max_completion_tokens: 10 };
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("user").is_none());
        assert_eq!(v["max_completion_tokens"], 10);
    }
}
