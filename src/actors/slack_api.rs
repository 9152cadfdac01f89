//! SlackApiActor: every Web API call goes through here. It owns the tokens and the client,
//! waits out HTTP 429 `Retry-After` and retries server and network errors with backoff, and
//! turns `ok:false` into typed errors. [`SlackApi`] is the handle other actors use.

use std::time::Duration;

use actix::prelude::*;
use secrecy::SecretString;
use serde_json::{json, Map, Value};

use crate::slack::api::{args, next_cursor, ApiResponse, Body};
use crate::slack::{BotId, ChannelId, SlackError, Ts, UserId, WebClient};

/// Which token a call uses: the bot token for everything except `apps.connections.open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Bot,
    App,
}

/// One Web API call.
#[derive(Debug)]
pub struct Call {
    pub method: &'static str,
    pub args: Map<String, Value>,
    pub body: Body,
    pub token: TokenKind,
}

impl Message for Call {
    type Result = Result<ApiResponse, SlackError>;
}

/// Retry policy: how many times, and how long a `Retry-After` we are willing to wait.
const MAX_ATTEMPTS: u32 = 4;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

pub struct SlackApiActor {
    client: WebClient,
    bot_token: SecretString,
    app_token: SecretString,
}

impl SlackApiActor {
    pub fn new(client: WebClient, bot_token: SecretString, app_token: SecretString) -> SlackApiActor {
        SlackApiActor { client, bot_token, app_token }
    }
}

impl Actor for SlackApiActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<Call> for SlackApiActor {
    type Result = ResponseFuture<Result<ApiResponse, SlackError>>;

    fn handle(&mut self, call: Call, _: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        let token = match call.token {
            TokenKind::Bot => self.bot_token.clone(),
            TokenKind::App => self.app_token.clone(),
        };
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let started = std::time::Instant::now();
                let result = client.call(call.method, &token, &call.args, call.body).await;
                let elapsed_ms = started.elapsed().as_millis() as u64;
                match result {
                    Ok(r) => {
                        tracing::debug!(method = call.method, attempt, elapsed_ms, "slack call ok");
                        return Ok(r);
                    }
                    Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                        let wait = match &e {
                            SlackError::RateLimited { retry_after, .. }
                                if *retry_after <= MAX_RETRY_AFTER =>
                            {
                                *retry_after + jitter(Duration::from_millis(250))
                            }
                            SlackError::RateLimited { .. } => return Err(e),
                            _ => backoff(attempt),
                        };
                        tracing::warn!(method = call.method, attempt, wait_ms = wait.as_millis() as u64, error = %e, "slack call will be retried");
                        actix_rt::time::sleep(wait).await;
                    }
                    Err(e) => {
                        tracing::debug!(method = call.method, attempt, elapsed_ms, error = %e, "slack call failed");
                        return Err(e);
                    }
                }
            }
        })
    }
}

/// 0.5 s, 1 s, 2 s … capped at 8 s, less up to a quarter at random.
pub fn backoff(attempt: u32) -> Duration {
    let base = (0.5 * 2f64.powi(attempt.saturating_sub(1).min(8) as i32)).min(8.0);
    Duration::from_secs_f64(base * (1.0 - 0.25 * fastrand::f64()))
}

fn jitter(max: Duration) -> Duration {
    max.mul_f64(fastrand::f64())
}

/// Who the bot is, from `auth.test`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: UserId,
    pub bot_id: Option<BotId>,
    pub team_id: String,
}

/// The handle other actors use: typed calls over [`Call`].
#[derive(Clone)]
pub struct SlackApi {
    addr: Addr<SlackApiActor>,
}

/// How long a caller waits for the actor (including its retries).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

impl SlackApi {
    pub fn new(addr: Addr<SlackApiActor>) -> SlackApi {
        SlackApi { addr }
    }

    pub async fn call(
        &self,
        method: &'static str,
        args: Map<String, Value>,
        body: Body,
        token: TokenKind,
    ) -> Result<ApiResponse, SlackError> {
        self.addr.send(Call { method, args, body, token }).timeout(CALL_TIMEOUT).await.unwrap_or_else(|e| {
            Err(SlackError::Transport { method: method.to_string(), reason: format!("slack api actor: {e}") })
        })
    }

    pub async fn auth_test(&self) -> Result<Identity, SlackError> {
        let r = self.call("auth.test", Map::new(), Body::Form, TokenKind::Bot).await?;
        let s = |k: &str| r.body.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Identity {
            user_id: UserId(s("user_id").ok_or_else(|| decode("auth.test", "user_id"))?),
            bot_id: s("bot_id").map(BotId),
            team_id: s("team_id").unwrap_or_default(),
        })
    }

    /// A fresh Socket Mode URL (single use).
    pub async fn open_connection(&self) -> Result<String, SlackError> {
        let r = self.call("apps.connections.open", Map::new(), Body::Form, TokenKind::App).await?;
        r.body
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| decode("apps.connections.open", "url"))
    }

    /// The id of the channel called `name`, following every page of `conversations.list`.
    pub async fn find_channel(&self, name: &str) -> Result<Option<ChannelId>, SlackError> {
        let mut cursor: Option<String> = None;
        loop {
            let mut a = args([
                ("types", json!("public_channel,private_channel")),
                ("exclude_archived", json!(true)),
                ("limit", json!(200)),
            ]);
            if let Some(c) = &cursor {
                a.insert("cursor".into(), json!(c));
            }
            let r = self.call("conversations.list", a, Body::Form, TokenKind::Bot).await?;
            let found = r.body["channels"].as_array().into_iter().flatten().find_map(|c| {
                (c["name"].as_str() == Some(name)).then(|| c["id"].as_str().map(ChannelId::from)).flatten()
            });
            if found.is_some() {
                return Ok(found);
            }
            match next_cursor(&r.body) {
                Some(c) => cursor = Some(c),
                None => return Ok(None),
            }
        }
    }

    /// Posts `text` (mrkdwn) in a thread; `metadata` is the bot's durable thread state.
    pub async fn post_message(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&Ts>,
        text: &str,
        metadata: Option<Value>,
    ) -> Result<Ts, SlackError> {
        self.post_blocks(channel, thread_ts, text, None, metadata).await
    }

    /// Posts `blocks`, with `text` as the notification fallback.
    pub async fn post_blocks(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&Ts>,
        text: &str,
        blocks: Option<Value>,
        metadata: Option<Value>,
    ) -> Result<Ts, SlackError> {
        let mut a = args([
            ("channel", json!(channel)),
            ("text", json!(text)),
            ("unfurl_links", json!(false)),
            ("unfurl_media", json!(false)),
            ("link_names", json!(false)),
        ]);
        if let Some(ts) = thread_ts {
            a.insert("thread_ts".into(), json!(ts));
        }
        if let Some(m) = metadata {
            a.insert("metadata".into(), m);
        }
        if let Some(b) = blocks {
            a.insert("blocks".into(), b);
        }
        let r = self.call("chat.postMessage", a, Body::Json, TokenKind::Bot).await?;
        r.body.get("ts").and_then(Value::as_str).map(Ts::from).ok_or_else(|| decode("chat.postMessage", "ts"))
    }

    /// Every message of the thread that `ts` belongs to (its root or any reply), root first,
    /// with message metadata, following every page.
    pub async fn thread_messages(&self, channel: &ChannelId, ts: &Ts) -> Result<Vec<Value>, SlackError> {
        let mut cursor: Option<String> = None;
        let mut messages = Vec::new();
        loop {
            let mut a = args([
                ("channel", json!(channel)),
                ("ts", json!(ts)),
                ("include_all_metadata", json!(true)),
                ("limit", json!(200)),
            ]);
            if let Some(c) = &cursor {
                a.insert("cursor".into(), json!(c));
            }
            let r = self.call("conversations.replies", a, Body::Form, TokenKind::Bot).await?;
            for m in r.body["messages"].as_array().into_iter().flatten() {
                // The root comes first on every page; keep it once.
                if messages.iter().all(|seen: &Value| seen["ts"] != m["ts"]) {
                    messages.push(m.clone());
                }
            }
            match next_cursor(&r.body) {
                Some(c) => cursor = Some(c),
                None => return Ok(messages),
            }
        }
    }

    /// A message only `user` sees.
    pub async fn post_ephemeral(
        &self,
        channel: &ChannelId,
        user: &UserId,
        thread_ts: Option<&Ts>,
        text: &str,
    ) -> Result<(), SlackError> {
        let mut a = args([("channel", json!(channel)), ("user", json!(user)), ("text", json!(text))]);
        if let Some(ts) = thread_ts {
            a.insert("thread_ts".into(), json!(ts));
        }
        self.call("chat.postEphemeral", a, Body::Json, TokenKind::Bot).await.map(drop)
    }

    /// "is looking into it…" under the thread while an answer is prepared ("" clears it).
    pub async fn set_status(
        &self,
        channel: &ChannelId,
        thread_ts: &Ts,
        status: &str,
    ) -> Result<(), SlackError> {
        let a = args([
            ("channel_id", json!(channel)),
            ("thread_ts", json!(thread_ts)),
            ("status", json!(status)),
        ]);
        self.call("assistant.threads.setStatus", a, Body::Json, TokenKind::Bot).await.map(drop)
    }

    pub async fn add_reaction(&self, channel: &ChannelId, ts: &Ts, name: &str) -> Result<(), SlackError> {
        let a = args([("channel", json!(channel)), ("timestamp", json!(ts)), ("name", json!(name))]);
        match self.call("reactions.add", a, Body::Json, TokenKind::Bot).await {
            Err(e) if e.code() == Some("already_reacted") => Ok(()),
            other => other.map(drop),
        }
    }
}

fn decode(method: &str, field: &str) -> SlackError {
    SlackError::Decode { method: method.to_string(), reason: format!("response lacks `{field}`") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(500) && backoff(1) >= Duration::from_millis(375));
        assert!(backoff(3) >= Duration::from_millis(1500));
        assert!(backoff(30) <= Duration::from_secs(8));
    }
}
