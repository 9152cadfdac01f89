//! The typed Web API: [`SlackApi`] has one method per Slack call the bot makes. It writes each
//! call's arguments and reads its answer into Slack types, so no raw JSON leaves this module.
//!
//! It knows nothing of actors: calls go out as [`Call`] messages to a transport (in the bot,
//! `actors::slack_api::SlackApiActor`, which paces, waits out rate limits and retries). A thread
//! reply carries a [`PostCheck`] so the transport can look for it before posting it again.

use std::time::Duration;

use actix::{Message, Recipient};
use serde_json::{json, Value};

use super::api::{args, next_cursor, ApiResponse, Args, Body};
use super::events::HistoryMessage;
use super::{Blocks, BotId, ChannelId, SlackError, Ts, UserId, WebClient};
use crate::redact::Member;
use crate::state::Metadata;
use secrecy::SecretString;

/// Which token a call uses: the bot token for everything except `apps.connections.open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Bot,
    App,
}

/// One Web API call, as the client hands it to the transport.
#[derive(Debug)]
pub struct Call {
    pub method: &'static str,
    pub args: Args,
    pub body: Body,
    pub token: TokenKind,
    /// The conversation the call is about: posts are paced per channel, and logs name it.
    pub channel: Option<ChannelId>,
    /// The thread the call is about, for logs.
    pub thread_ts: Option<Ts>,
    /// Set on thread replies: how to find the reply if an attempt may have posted it.
    pub post_check: Option<PostCheck>,
    /// The employee's message this call answers: a lane serves the oldest waiting employee first
    /// (calls without one wait in the order they came).
    pub since: Option<Ts>,
    /// Start now, within the method's budget, or fail at once with [`SlackError::NoRoom`]
    /// instead of waiting in its lane (for what has a cheaper alternative, such as a stream).
    pub now_or_never: bool,
    /// Work no one is waiting for (the startup backfill, a report's reading): it goes after
    /// every call a person waits for, and takes at most half of its method's budget.
    pub background: bool,
}

impl Message for Call {
    type Result = Result<ApiResponse, SlackError>;
}

impl Call {
    /// A call about nothing in particular (no channel, no thread).
    pub fn new(method: &'static str, args: Args, body: Body, token: TokenKind) -> Call {
        Call {
            method,
            args,
            body,
            token,
            channel: None,
            thread_ts: None,
            post_check: None,
            since: None,
            now_or_never: false,
            background: false,
        }
    }

    /// The same call, started now or not at all.
    pub fn now_or_never(self) -> Call {
        Call { now_or_never: true, ..self }
    }

    /// The same call, about `channel` (and the thread `thread_ts`, if any).
    pub fn about(self, channel: &ChannelId, thread_ts: Option<&Ts>) -> Call {
        Call { channel: Some(channel.clone()), thread_ts: thread_ts.cloned(), ..self }
    }
}

/// How to find a thread reply that may already have been posted: its `post_id` in the metadata.
#[derive(Debug, Clone)]
pub struct PostCheck {
    channel: ChannelId,
    thread_ts: Ts,
    post_id: String,
}

/// Pages of `conversations.replies` read when looking for a reply that may have been posted.
pub const POST_CHECK_PAGES: usize = 10;

impl PostCheck {
    /// The posted message as a `chat.postMessage` answer, if it is in the thread.
    pub async fn find(
        &self,
        client: &WebClient,
        token: &SecretString,
    ) -> Result<Option<ApiResponse>, SlackError> {
        let mut cursor: Option<String> = None;
        for _ in 0..POST_CHECK_PAGES {
            let mut a = args([
                ("channel", json!(self.channel)),
                ("ts", json!(self.thread_ts)),
                ("include_all_metadata", json!(true)),
                ("limit", json!(200)),
            ]);
            if let Some(c) = &cursor {
                a.insert("cursor", json!(c));
            }
            let r = client.call("conversations.replies", token, &a, Body::Form).await?;
            let found = r.body["messages"].as_array().into_iter().flatten().find(|m| {
                m.pointer("/metadata/event_payload/post_id").and_then(Value::as_str) == Some(&self.post_id)
            });
            if let Some(m) = found {
                let body = json!({"ok": true, "channel": self.channel, "ts": m["ts"], "message": m});
                return Ok(Some(ApiResponse { body, scopes: None }));
            }
            match next_cursor(&r.body) {
                Some(c) => cursor = Some(c),
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// A page of `users.list`.
#[derive(Debug, Clone)]
pub struct MembersPage {
    pub members: Vec<Member>,
    /// Where the next page starts; `None` after the last one.
    pub next_cursor: Option<String>,
}

/// Which page of `conversations.history` to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only messages after this ts (`"1700000000.000000"`).
    pub oldest: Option<String>,
    /// Only messages before this ts.
    pub latest: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
    /// Ask for the messages' metadata (`include_all_metadata`); only what needs it does.
    pub with_metadata: bool,
}

/// One page of `conversations.history`.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    pub messages: Vec<HistoryMessage>,
    /// Elements on the page, readable or not.
    pub read: usize,
    /// The next page, if any.
    pub next_cursor: Option<String>,
}

/// Who the bot is, from `auth.test`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: UserId,
    pub bot_id: Option<BotId>,
    pub team_id: String,
    /// The workspace's address (`https://acme.slack.com/`), for links to threads; may be empty.
    pub url: String,
}

/// Everything `auth.test` says about the bot token, for `itbot doctor`.
#[derive(Debug, Clone)]
pub struct Auth {
    pub identity: Identity,
    /// The bot's name and the workspace's, as people know them.
    pub user_name: Option<String>,
    pub team_name: Option<String>,
    /// The scopes granted to the token (`x-oauth-scopes`), if Slack said.
    pub scopes: Option<Vec<String>>,
}

/// What `conversations.info` says about a channel.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    pub name: Option<String>,
    /// `None` when Slack did not say (it omits it for some conversation types).
    pub is_member: Option<bool>,
}

/// The start of a streamed reply (`chat.startStream`).
#[derive(Debug, Clone, Copy)]
pub struct StreamStart<'a> {
    pub channel: &'a ChannelId,
    pub thread_ts: &'a Ts,
    /// The requester and their workspace: streams in channels are shown to a recipient.
    pub recipient_user: &'a UserId,
    pub recipient_team: &'a str,
    pub markdown_text: &'a str,
}

/// The end of a streamed reply (`chat.stopStream`).
#[derive(Debug, Clone, Copy)]
pub struct StreamStop<'a> {
    pub channel: &'a ChannelId,
    /// The streamed message.
    pub ts: &'a Ts,
    /// The text not yet appended, if any.
    pub markdown_text: Option<&'a str>,
    pub blocks: Option<&'a Blocks>,
    pub metadata: Option<&'a Metadata>,
}

/// Which sign of life [`SlackApi::acknowledge`] gave the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    Status,
    Reaction,
    PrivateNote,
}

impl Sign {
    pub fn as_str(self) -> &'static str {
        match self {
            Sign::Status => "status",
            Sign::Reaction => "reaction",
            Sign::PrivateNote => "private_note",
        }
    }
}

/// The typed Web API over a transport that takes [`Call`]s.
#[derive(Clone)]
pub struct SlackApi {
    transport: Recipient<Call>,
    /// A backstop: the transport answers every call by its deadline, this only guards a stuck one.
    call_timeout: Duration,
    /// Every call is [`Call::background`].
    background: bool,
}

impl SlackApi {
    /// Calls go to `transport`; one that has no answer after `call_timeout` fails.
    pub fn new(transport: Recipient<Call>, call_timeout: Duration) -> SlackApi {
        SlackApi { transport, call_timeout, background: false }
    }

    /// The same API for work no one waits for: its calls yield the budget to every call a
    /// person waits for (see [`Call::background`]).
    pub fn background(&self) -> SlackApi {
        SlackApi { background: true, ..self.clone() }
    }

    async fn call(&self, mut call: Call) -> Result<ApiResponse, SlackError> {
        call.background |= self.background;
        let method = call.method;
        self.transport.send(call).timeout(self.call_timeout).await.unwrap_or_else(|e| {
            Err(SlackError::Transport {
                method: method.to_string(),
                reason: format!("slack api transport: {e}"),
            })
        })
    }

    async fn bot(&self, method: &'static str, args: Args, body: Body) -> Result<ApiResponse, SlackError> {
        self.call(Call::new(method, args, body, TokenKind::Bot)).await
    }

    /// Who the bot is.
    pub async fn auth_test(&self) -> Result<Identity, SlackError> {
        self.auth().await.map(|a| a.identity)
    }

    /// Who the bot is, with names and the token's scopes.
    pub async fn auth(&self) -> Result<Auth, SlackError> {
        let r = self.bot("auth.test", Args::default(), Body::Form).await?;
        let s = |k: &str| r.body.get(k).and_then(Value::as_str).map(str::to_string);
        let identity = Identity {
            user_id: UserId(s("user_id").ok_or_else(|| decode("auth.test", "user_id"))?),
            bot_id: s("bot_id").map(BotId),
            team_id: s("team_id").unwrap_or_default(),
            url: s("url").unwrap_or_default(),
        };
        let scopes = r.scopes.as_deref().map(|s| s.split(',').map(|s| s.trim().to_string()).collect());
        Ok(Auth { identity, user_name: s("user"), team_name: s("team"), scopes })
    }

    /// A fresh Socket Mode URL (single use).
    pub async fn open_connection(&self) -> Result<String, SlackError> {
        let call = Call::new("apps.connections.open", Args::default(), Body::Form, TokenKind::App);
        let r = self.call(call).await?;
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
                a.insert("cursor", json!(c));
            }
            let r = self.bot("conversations.list", a, Body::Form).await?;
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

    /// One page of the workspace's members (`users.list`, scope `users:read`): the people's real
    /// and display names, without bots, Slackbot and deactivated accounts; and the next cursor.
    pub async fn users_list(&self, cursor: Option<&str>) -> Result<MembersPage, SlackError> {
        let mut a = args([("limit", json!(200))]);
        if let Some(c) = cursor {
            a.insert("cursor", json!(c));
        }
        let r = self.bot("users.list", a, Body::Form).await?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let members = r.body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                !m["deleted"].as_bool().unwrap_or(false)
                    && !m["is_bot"].as_bool().unwrap_or(false)
                    && m["id"].as_str() != Some("USLACKBOT")
            })
            .map(|m| {
                let profile = &m["profile"];
                let real = s(profile, "real_name");
                Member {
                    real_name: if real.is_empty() { s(m, "real_name") } else { real },
                    display_name: s(profile, "display_name"),
                }
            })
            .collect();
        Ok(MembersPage { members, next_cursor: next_cursor(&r.body) })
    }

    /// The channel's name and whether the bot is a member.
    pub async fn channel_info(&self, channel: &ChannelId) -> Result<ChannelInfo, SlackError> {
        let call =
            Call::new("conversations.info", args([("channel", json!(channel))]), Body::Form, TokenKind::Bot)
                .about(channel, None);
        let r = self.call(call).await?;
        Ok(ChannelInfo {
            name: r.body.pointer("/channel/name").and_then(Value::as_str).map(str::to_string),
            is_member: r.body.pointer("/channel/is_member").and_then(Value::as_bool),
        })
    }

    /// Posts `text` (mrkdwn) in a thread; `metadata` is the bot's durable thread state. A thread
    /// reply carries a fresh `post_id` in its metadata, so a retry can tell whether an attempt
    /// whose answer was lost did post it.
    pub async fn post_message(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&Ts>,
        text: &str,
        metadata: Option<&Metadata>,
    ) -> Result<Ts, SlackError> {
        self.post_blocks(channel, thread_ts, text, None, metadata).await
    }

    /// Posts `blocks`, with `text` as the notification fallback.
    pub async fn post_blocks(
        &self,
        channel: &ChannelId,
        thread_ts: Option<&Ts>,
        text: &str,
        blocks: Option<&Blocks>,
        metadata: Option<&Metadata>,
    ) -> Result<Ts, SlackError> {
        let r = self.call(post_call(channel, thread_ts, text, blocks, metadata)).await?;
        ts_of(&r, "chat.postMessage")
    }

    /// Posts an answer to the employee's message `since` in its thread: when the channel's
    /// budget makes posts wait, the oldest waiting employee is answered first.
    pub async fn post_answer(
        &self,
        channel: &ChannelId,
        thread_ts: &Ts,
        text: &str,
        blocks: Option<&Blocks>,
        metadata: Option<&Metadata>,
        since: Option<&Ts>,
    ) -> Result<Ts, SlackError> {
        let call =
            Call { since: since.cloned(), ..post_call(channel, Some(thread_ts), text, blocks, metadata) };
        let r = self.call(call).await?;
        ts_of(&r, "chat.postMessage")
    }

    /// Every message of the thread that `ts` belongs to (its root or any reply), root first,
    /// with message metadata, following every page.
    pub async fn thread_messages(
        &self,
        channel: &ChannelId,
        ts: &Ts,
    ) -> Result<Vec<HistoryMessage>, SlackError> {
        let mut cursor: Option<String> = None;
        let mut messages: Vec<HistoryMessage> = Vec::new();
        loop {
            let mut a = args([
                ("channel", json!(channel)),
                ("ts", json!(ts)),
                ("include_all_metadata", json!(true)),
                ("limit", json!(200)),
            ]);
            if let Some(c) = &cursor {
                a.insert("cursor", json!(c));
            }
            let call =
                Call::new("conversations.replies", a, Body::Form, TokenKind::Bot).about(channel, Some(ts));
            let r = self.call(call).await?;
            for m in r.body["messages"].as_array().into_iter().flatten() {
                let Some(m) = HistoryMessage::parse(m, channel) else { continue };
                // The root comes first on every page; keep it once.
                if messages.iter().all(|seen| seen.message.ts != m.message.ts) {
                    messages.push(m);
                }
            }
            match next_cursor(&r.body) {
                Some(c) => cursor = Some(c),
                None => return Ok(messages),
            }
        }
    }

    /// One page of the channel's top-level messages (newest first), with metadata.
    pub async fn history(
        &self,
        channel: &ChannelId,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, SlackError> {
        let mut a = args([("channel", json!(channel)), ("limit", json!(query.limit.clamp(1, 999)))]);
        if query.with_metadata {
            a.insert("include_all_metadata", json!(true));
        }
        if let Some(oldest) = &query.oldest {
            a.insert("oldest", json!(oldest));
        }
        if let Some(latest) = &query.latest {
            a.insert("latest", json!(latest));
        }
        if let Some(c) = &query.cursor {
            a.insert("cursor", json!(c));
        }
        let r = self
            .call(Call::new("conversations.history", a, Body::Form, TokenKind::Bot).about(channel, None))
            .await?;
        let raw = r.body["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(HistoryPage {
            // An element without a ts is counted as read but cannot be used.
            read: raw.len(),
            messages: raw.iter().filter_map(|m| HistoryMessage::parse(m, channel)).collect(),
            next_cursor: next_cursor(&r.body),
        })
    }

    /// Reads the channel's root messages from `oldest_unix` on, newest first, at most
    /// `max_messages` of them, and hands each person's root (a `user`, no `bot_id`, no
    /// `subtype`) to `sink` as its whole thread: root first, then the replies with metadata and
    /// reactions. A root without replies is handed over alone. History is paged with cursors
    /// (ends on an empty page or no `next_cursor`); `pace` is waited before each thread read
    /// (`conversations.replies` is Tier 3). Returns how many root messages were read.
    pub async fn read_threads(
        &self,
        channel: &ChannelId,
        oldest_unix: u64,
        max_messages: usize,
        pace: Duration,
        mut sink: impl FnMut(&[HistoryMessage]),
    ) -> Result<usize, SlackError> {
        let mut cursor: Option<String> = None;
        let mut read = 0;
        while read < max_messages {
            let query = HistoryQuery {
                oldest: Some(format!("{oldest_unix}.000000")),
                latest: None,
                limit: (max_messages - read).min(200),
                cursor: cursor.take(),
                with_metadata: true,
            };
            let page = self.history(channel, &query).await?;
            let unreadable = page.read - page.messages.len();
            read += unreadable;
            for m in page.messages {
                read += 1;
                if read > max_messages {
                    break;
                }
                let root = &m.message;
                if root.user.is_none() || root.bot_id.is_some() || root.subtype.is_some() {
                    continue;
                }
                if m.reply_count > 0 {
                    actix_rt::time::sleep(pace).await;
                    sink(&self.thread_messages(channel, &root.ts).await?);
                } else {
                    sink(std::slice::from_ref(&m));
                }
            }
            match page.next_cursor {
                Some(c) if page.read > 0 => cursor = Some(c),
                _ => break,
            }
        }
        Ok(read.min(max_messages))
    }

    /// Replaces a bot message's content and, with `metadata`, its metadata (without it, the
    /// metadata stays). With `blocks`, Slack shows no "edited" mark.
    pub async fn update_message(
        &self,
        channel: &ChannelId,
        ts: &Ts,
        text: &str,
        blocks: Option<&Blocks>,
        metadata: Option<&Metadata>,
    ) -> Result<(), SlackError> {
        let mut a = args([("channel", json!(channel)), ("ts", json!(ts)), ("text", json!(text))]);
        if let Some(b) = blocks {
            a.insert("blocks", b.to_json());
        }
        if let Some(m) = metadata {
            a.insert("metadata", m.to_json());
        }
        self.call(Call::new("chat.update", a, Body::Json, TokenKind::Bot).about(channel, None))
            .await
            .map(drop)
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
            a.insert("thread_ts", json!(ts));
        }
        let call = Call::new("chat.postEphemeral", a, Body::Json, TokenKind::Bot).about(channel, thread_ts);
        self.call(call).await.map(drop)
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
        let call = Call::new("assistant.threads.setStatus", a, Body::Json, TokenKind::Bot)
            .about(channel, Some(thread_ts));
        self.call(call).await.map(drop)
    }

    /// Shows the requester at once that their message was seen, in whichever of Slack's budgets
    /// has room now: the thread status (its own Tier 3 budget), else a 👀 on their post
    /// (`reactions.add`, another Tier 3 budget), else a private note in the thread
    /// (`chat.postEphemeral`, Tier 4, queued). In a burst, the first two share the load; nothing
    /// waits behind the status's budget for a sign that is worthless when late.
    pub async fn acknowledge(
        &self,
        channel: &ChannelId,
        thread_ts: &Ts,
        requester: &UserId,
        status: &str,
        note: &str,
    ) -> Result<Sign, SlackError> {
        let a = args([
            ("channel_id", json!(channel)),
            ("thread_ts", json!(thread_ts)),
            ("status", json!(status)),
        ]);
        let call = Call::new("assistant.threads.setStatus", a, Body::Json, TokenKind::Bot)
            .about(channel, Some(thread_ts))
            .now_or_never();
        match self.call(call).await {
            Ok(_) => return Ok(Sign::Status),
            Err(SlackError::NoRoom { .. }) => {}
            Err(e) => return Err(e),
        }
        let a = args([("channel", json!(channel)), ("timestamp", json!(thread_ts)), ("name", json!("eyes"))]);
        let call =
            Call::new("reactions.add", a, Body::Json, TokenKind::Bot).about(channel, None).now_or_never();
        match self.call(call).await {
            Ok(_) => return Ok(Sign::Reaction),
            Err(e) if e.code() == Some("already_reacted") => return Ok(Sign::Reaction),
            Err(SlackError::NoRoom { .. }) => {}
            Err(e) => return Err(e),
        }
        self.post_ephemeral(channel, requester, Some(thread_ts), note).await.map(|()| Sign::PrivateNote)
    }

    pub async fn add_reaction(&self, channel: &ChannelId, ts: &Ts, name: &str) -> Result<(), SlackError> {
        let a = args([("channel", json!(channel)), ("timestamp", json!(ts)), ("name", json!(name))]);
        match self.call(Call::new("reactions.add", a, Body::Json, TokenKind::Bot).about(channel, None)).await
        {
            Err(e) if e.code() == Some("already_reacted") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Starts a streamed reply in a thread; returns the streamed message's ts.
    pub async fn start_stream(&self, start: StreamStart<'_>) -> Result<Ts, SlackError> {
        let a = args([
            ("channel", json!(start.channel)),
            ("thread_ts", json!(start.thread_ts)),
            ("recipient_user_id", json!(start.recipient_user)),
            ("recipient_team_id", json!(start.recipient_team)),
            ("markdown_text", json!(start.markdown_text)),
        ]);
        // A stream spends a budget a third of chat.postMessage's; when it has no room now, the
        // answer is posted whole instead of waiting for one.
        let call = Call::new("chat.startStream", a, Body::Json, TokenKind::Bot)
            .about(start.channel, Some(start.thread_ts))
            .now_or_never();
        let r = self.call(call).await?;
        ts_of(&r, "chat.startStream")
    }

    /// Adds `markdown_text` to the streamed message `ts`.
    pub async fn append_stream(
        &self,
        channel: &ChannelId,
        ts: &Ts,
        markdown_text: &str,
    ) -> Result<(), SlackError> {
        let a =
            args([("channel", json!(channel)), ("ts", json!(ts)), ("markdown_text", json!(markdown_text))]);
        self.call(Call::new("chat.appendStream", a, Body::Json, TokenKind::Bot).about(channel, None))
            .await
            .map(drop)
    }

    /// Ends a streamed message with the rest of its text, its blocks and its metadata.
    pub async fn stop_stream(&self, stop: StreamStop<'_>) -> Result<(), SlackError> {
        let mut a = args([("channel", json!(stop.channel)), ("ts", json!(stop.ts))]);
        if let Some(m) = stop.metadata {
            a.insert("metadata", m.to_json());
        }
        if let Some(text) = stop.markdown_text {
            a.insert("markdown_text", json!(text));
        }
        if let Some(b) = stop.blocks {
            a.insert("blocks", b.to_json());
        }
        self.call(Call::new("chat.stopStream", a, Body::Json, TokenKind::Bot).about(stop.channel, None))
            .await
            .map(drop)
    }
}

/// The `chat.postMessage` call; a thread reply gets a fresh `post_id` and the check that finds it.
fn post_call(
    channel: &ChannelId,
    thread_ts: Option<&Ts>,
    text: &str,
    blocks: Option<&Blocks>,
    metadata: Option<&Metadata>,
) -> Call {
    let mut a = args([
        ("channel", json!(channel)),
        ("text", json!(text)),
        ("unfurl_links", json!(false)),
        ("unfurl_media", json!(false)),
        ("link_names", json!(false)),
    ]);
    let metadata = metadata.map(Metadata::to_json);
    let mut post_check = None;
    let metadata = match thread_ts {
        Some(ts) => {
            a.insert("thread_ts", json!(ts));
            let post_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            post_check =
                Some(PostCheck { channel: channel.clone(), thread_ts: ts.clone(), post_id: post_id.clone() });
            Some(with_post_id(metadata, &post_id))
        }
        None => metadata,
    };
    if let Some(m) = metadata {
        a.insert("metadata", m);
    }
    if let Some(b) = blocks {
        a.insert("blocks", b.to_json());
    }
    Call {
        post_check,
        ..Call::new("chat.postMessage", a, Body::Json, TokenKind::Bot).about(channel, thread_ts)
    }
}

/// `metadata` (or a minimal one) with `post_id` in its payload.
fn with_post_id(metadata: Option<Value>, post_id: &str) -> Value {
    let mut m = match metadata {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::from_iter([("event_type".to_string(), json!("itbot_post"))]),
    };
    match m.get_mut("event_payload").and_then(Value::as_object_mut) {
        Some(payload) => {
            payload.insert("post_id".into(), json!(post_id));
        }
        None => {
            m.insert("event_payload".into(), json!({ "post_id": post_id }));
        }
    }
    Value::Object(m)
}

fn ts_of(r: &ApiResponse, method: &str) -> Result<Ts, SlackError> {
    r.body.get("ts").and_then(Value::as_str).map(Ts::from).ok_or_else(|| decode(method, "ts"))
}

fn decode(method: &str, field: &str) -> SlackError {
    SlackError::Decode { method: method.to_string(), reason: format!("response lacks `{field}`") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_reply_gets_a_post_id_beside_its_state() {
        let state = json!({"event_type": "itbot_thread_state", "event_payload": {"v": 1}});
        let m = with_post_id(Some(state), "0123456789abcdef0123456789abcdef");
        assert_eq!(m["event_type"], "itbot_thread_state");
        assert_eq!(m["event_payload"]["v"], 1);
        assert_eq!(m["event_payload"]["post_id"], "0123456789abcdef0123456789abcdef");
        let bare = with_post_id(None, "feed");
        assert_eq!(bare["event_type"], "itbot_post");
        assert_eq!(bare["event_payload"]["post_id"], "feed");
    }

    #[test]
    fn only_thread_replies_are_looked_for_before_a_retry() {
        let channel = ChannelId::from("C1");
        let reply = post_call(&channel, Some(&Ts::from("1.2")), "hi", None, None);
        let check = reply.post_check.as_ref().expect("a thread reply is checked");
        assert_eq!(check.post_id.len(), 32);
        let written = reply.args.0.get("metadata").and_then(|m| m.pointer("/event_payload/post_id"));
        assert_eq!(written.and_then(Value::as_str), Some(check.post_id.as_str()));
        assert_eq!(reply.channel, Some(channel.clone()));

        let top_level = post_call(&channel, None, "hi", None, None);
        assert!(top_level.post_check.is_none());
        let again = post_call(&channel, Some(&Ts::from("1.2")), "hi", None, None);
        assert_ne!(again.post_check.map(|c| c.post_id), Some(check.post_id.clone()));
    }
}
