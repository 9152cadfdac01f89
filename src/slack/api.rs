//! The Web API on the wire (no actors): one HTTP request per call, typed errors. The typed
//! methods are in [`super::client`]; pacing and retries live in `actors::slack_api`, which sends
//! calls through this.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// How the arguments travel. Slack accepts JSON bodies for write methods; read methods take
/// form fields (or a query string), so both are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Json,
    Form,
}

/// A failed Web API call. `Display` carries the method, status and Slack error code, never a
/// body or message text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    #[error("{method}: slack error `{code}`{}", scope_note(needed, provided))]
    Api {
        method: String,
        code: String,
        /// For `missing_scope`: the scope the method needs.
        needed: Option<String>,
        /// For `missing_scope`: the scopes the token has.
        provided: Option<String>,
    },
    #[error("{method}: rate limited, retry after {}s", retry_after.as_secs())]
    RateLimited { method: String, retry_after: Duration },
    #[error("{method}: HTTP {status}")]
    Http { method: String, status: u16 },
    #[error("{method}: request failed: {reason}")]
    Transport { method: String, reason: String },
    #[error("{method}: unreadable response: {reason}")]
    Decode { method: String, reason: String },
    /// The call was given up before Slack answered it: its queue was full or it waited too long.
    #[error("{method}: dropped: {reason}")]
    Dropped { method: String, reason: &'static str },
    /// A call asked to go now or never found its method's budget spent (nothing was sent).
    #[error("{method}: no room in its rate-limit budget now")]
    NoRoom { method: String },
}

fn scope_note(needed: &Option<String>, provided: &Option<String>) -> String {
    match (needed, provided) {
        (Some(n), Some(p)) => format!(" (needs `{n}`, token has `{p}`)"),
        (Some(n), None) => format!(" (needs `{n}`)"),
        _ => String::new(),
    }
}

impl SlackError {
    /// The Slack error code, if Slack answered `ok:false`.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { code, .. } => Some(code),
            SlackError::RateLimited { .. } => Some("ratelimited"),
            _ => None,
        }
    }

    /// Worth trying again: rate limits, server errors and network failures.
    pub fn is_transient(&self) -> bool {
        match self {
            SlackError::RateLimited { .. } | SlackError::Transport { .. } | SlackError::NoRoom { .. } => true,
            SlackError::Http { status, .. } => *status >= 500,
            SlackError::Api { code, .. } => matches!(
                code.as_str(),
                "fatal_error" | "internal_error" | "request_timeout" | "service_unavailable"
            ),
            SlackError::Decode { .. } | SlackError::Dropped { .. } => false,
        }
    }

    /// The token is bad for good: retrying cannot help.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "not_authed"
                    | "invalid_auth"
                    | "account_inactive"
                    | "token_revoked"
                    | "token_expired"
                    | "user_removed_from_team"
                    | "team_disabled"
                    | "not_allowed_token_type"
            )
        )
    }
}

/// A successful call: the JSON body and the scopes the token carries (`x-oauth-scopes`). Only
/// the Slack client reads it; the transport hands it back as it is.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub(super) body: Value,
    pub(super) scopes: Option<String>,
}

/// A call's arguments (a JSON object), written by the Slack client and sent as they are.
#[derive(Debug, Clone, Default)]
pub struct Args(pub(super) Map<String, Value>);

impl Args {
    pub(super) fn insert(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), value);
    }
}

/// The Web API at a base URL (`https://slack.com/api/`, GovSlack, or a fake).
#[derive(Clone)]
pub struct WebClient {
    http: awc::Client,
    base: String,
}

impl WebClient {
    /// `base` must end with `/` (config guarantees it).
    pub fn new(http: awc::Client, base: impl Into<String>) -> WebClient {
        WebClient { http, base: base.into() }
    }

    /// Calls `method` with `args` (a JSON object). Returns the body when Slack says `ok:true`.
    pub async fn call(
        &self,
        method: &str,
        token: &SecretString,
        args: &Args,
        body: Body,
    ) -> Result<ApiResponse, SlackError> {
        let url = format!("{}{}", self.base, method);
        let request =
            self.http.post(url).insert_header(("Authorization", format!("Bearer {}", token.expose_secret())));
        let sent = match body {
            Body::Json => request.send_json(&args.0).await,
            Body::Form => {
                let form: BTreeMap<&str, String> = args
                    .0
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.as_str(), v)
                    })
                    .collect();
                request.send_form(&form).await
            }
        };
        let mut response =
            sent.map_err(|e| SlackError::Transport { method: method.to_string(), reason: e.to_string() })?;
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        if status == 429 {
            let secs = header("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(30.0);
            return Err(SlackError::RateLimited {
                method: method.to_string(),
                retry_after: Duration::from_secs_f64(secs.min(3600.0)),
            });
        }
        if status != 200 {
            return Err(SlackError::Http { method: method.to_string(), status });
        }
        let scopes = header("x-oauth-scopes");
        let bytes = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .map_err(|e| SlackError::Transport { method: method.to_string(), reason: e.to_string() })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| SlackError::Decode { method: method.to_string(), reason: e.to_string() })?;
        if value.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(ApiResponse { body: value, scopes });
        }
        let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
        Err(SlackError::Api {
            method: method.to_string(),
            code: text("error").unwrap_or_else(|| "unknown_error".into()),
            needed: text("needed"),
            provided: text("provided"),
        })
    }
}

/// The next page's cursor, or `None` at the end (empty or missing `next_cursor`).
pub(super) fn next_cursor(body: &Value) -> Option<String> {
    body.pointer("/response_metadata/next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// Call arguments from pairs.
pub(super) fn args<const N: usize>(pairs: [(&str, Value); N]) -> Args {
    Args(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pagination_ends_on_an_empty_or_missing_cursor() {
        assert_eq!(next_cursor(&json!({"response_metadata": {"next_cursor": "abc"}})), Some("abc".into()));
        assert_eq!(next_cursor(&json!({"response_metadata": {"next_cursor": ""}})), None);
        assert_eq!(next_cursor(&json!({"ok": true})), None);
    }

    #[test]
    fn missing_scope_error_keeps_needed_and_provided() {
        let e = SlackError::Api {
            method: "chat.postMessage".into(),
            code: "missing_scope".into(),
            needed: Some("chat:write".into()),
            provided: Some("channels:read".into()),
        };
        assert_eq!(
            e.to_string(),
            "chat.postMessage: slack error `missing_scope` (needs `chat:write`, token has `channels:read`)"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn auth_errors_are_final_and_server_errors_transient() {
        let api = |code: &str| SlackError::Api {
            method: "m".into(),
            code: code.into(),
            needed: None,
            provided: None,
        };
        assert!(api("invalid_auth").is_auth_failure());
        assert!(!api("invalid_auth").is_transient());
        assert!(api("internal_error").is_transient());
        assert!(SlackError::Http { method: "m".into(), status: 503 }.is_transient());
        assert!(!SlackError::Http { method: "m".into(), status: 404 }.is_transient());
    }
}
