//! A simulated Slack workspace on loopback: the Web API (`/api/{method}`) and Socket Mode
//! (`/link/`) served by one actix-web server, plus a simulated "Assist" ticketing app.
//!
//! It owns the workspace's channels, users and messages, the open Socket Mode connections, the
//! event deliveries waiting for an ack, and the faults queued for the next Web API calls. Shapes
//! follow Slack's documented behaviour (our samples: `tests/fixtures/slack/`), so a bot cannot
//! tell it from real Slack.
//! Sync methods may be called from any thread; timers run on a driver task spawned by `start`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Map, Value};
use tokio::sync::futures::Notified;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::time::Instant;

/// Scopes the simulated bot token carries (sent as `x-oauth-scopes`).
pub const BOT_SCOPES: &str =
    "chat:write,channels:history,channels:read,app_mentions:read,reactions:read,reactions:write,users:read";

/// Slack's documented per-app limit of concurrent Socket Mode connections.
const MAX_CONNECTIONS: usize = 10;
/// `chat.postMessage` rejects text longer than this many characters.
const MAX_TEXT_CHARS: usize = 40_000;
/// `markdown_text` of the streaming methods is limited per call.
const MAX_MARKDOWN_CHARS: usize = 12_000;
/// Slack ends a stream about five minutes after it started; later appends are refused.
const STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// Seconds Slack announces in `hello.debug_info.approximate_connection_time`.
const CONNECTION_TIME_SECS: u64 = 18_060;
/// `updated` stamp of the simulated bot profiles.
const PROFILE_UPDATED: u64 = 1_700_000_000;

/// Behaviour switches of the simulated workspace.
#[derive(Clone, Debug)]
pub struct WorkspaceOptions {
    /// Whether Assist answers top-level human posts in #it.
    pub assist_enabled: bool,
    /// Delay before Assist posts in a new ticket thread.
    pub assist_delay: Duration,
    /// Redeliver an unacked `events_api` envelope after this long.
    pub ack_timeout: Duration,
    /// How many times an unacked event is redelivered before it is dropped.
    pub max_redeliveries: u32,
    /// Interval of the server's WebSocket pings.
    pub ping_interval: Duration,
    /// Whether the app's bot user is a member of #it (`false` => `not_in_channel` on post).
    pub bot_in_channel: bool,
    /// The scopes the bot token reports in `x-oauth-scopes` (comma-separated).
    pub scopes: String,
    /// Whether `chat.startStream` works (`false` => `{"ok":false,"error":"feature_not_enabled"}`,
    /// as a workspace without AI streaming answers).
    pub streaming: bool,
    /// Slack's rate limits, enforced like Slack does unless a test or benchmark says otherwise.
    pub rate_limits: RateLimits,
}

/// How the workspace enforces Slack's Web API rate limits: per method per workspace, and for
/// `chat.postMessage` per channel, with HTTP 429, `Retry-After` and `{"ok":false,"error":
/// "ratelimited"}` past them (REFERENCE §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimits {
    /// Slack's published limits (the default): Tier 2 20/min, Tier 3 50/min, Tier 4 100/min,
    /// `chat.postMessage` one a second per channel with short bursts.
    Slack,
    /// Slack's limits multiplied by this factor: only for tests and benchmarks that say so.
    Relaxed(u32),
    /// No limits at all.
    Off,
}

/// Calls per minute and the burst a method's limit allows. Slack publishes the per-minute tier
/// but not its burst; the bursts are our assumption (about ten seconds' worth). Where Slack says
/// nothing (`assistant.threads.setStatus`), the method is taken as Tier 3.
pub fn method_limit(method: &str) -> (u32, u32) {
    match method {
        // Tier 1 on paper ("1+ per minute"); SDKs open a few sockets at once unpaced.
        "apps.connections.open" => (6, 4),
        "chat.postMessage" => (60, 3),
        "auth.test" => (600, 20),
        "conversations.list" | "users.list" | "chat.startStream" | "chat.stopStream" => (20, 4),
        "users.info" | "chat.postEphemeral" | "chat.appendStream" => (100, 16),
        _ => (50, 8),
    }
}

/// A token bucket: `tokens` refill at the method's rate up to its burst.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for WorkspaceOptions {
    fn default() -> Self {
        WorkspaceOptions {
            assist_enabled: true,
            assist_delay: Duration::from_millis(400),
            ack_timeout: Duration::from_secs(3),
            max_redeliveries: 3,
            ping_interval: Duration::from_secs(10),
            bot_in_channel: true,
            scopes: BOT_SCOPES.to_string(),
            streaming: true,
            rate_limits: RateLimits::Slack,
        }
    }
}

/// A message as stored by the workspace (or an ephemeral post), as seen by an observer.
#[derive(Clone, Debug, PartialEq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub user: Option<String>,
    pub bot_id: Option<String>,
    pub text: String,
    pub blocks: Option<Value>,
    pub metadata: Option<Value>,
    /// Set for `chat.postEphemeral` posts: the only user who sees it.
    pub ephemeral_to: Option<String>,
    /// `(reaction name, user id)` pairs on the message.
    pub reactions: Vec<(String, String)>,
}

/// One Web API call received by the workspace.
#[derive(Clone, Debug)]
pub struct ApiCall {
    pub method: String,
    pub http_method: String,
    pub content_type: Option<String>,
    /// `"bot"`, `"app"` or `"unknown"`; `None` when no token was sent.
    pub token_kind: Option<&'static str>,
    /// Query, form or JSON parameters, merged (body wins).
    pub params: Map<String, Value>,
    /// When the workspace received it, in µs since the Unix epoch (the clock of message `ts`).
    pub at_us: u128,
    /// Refused with 429 for being over its rate limit.
    pub rate_limited: bool,
}

/// A fault served to the next call of a Web API method instead of (or before) normal handling.
#[derive(Clone, Debug)]
pub enum Fault {
    /// HTTP 429 with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// This HTTP status with a short HTML body.
    ServerError(u16),
    /// HTTP 200 `{"ok":false,"error":<code>}`.
    Error(String),
    /// Sleep, then handle the call normally.
    Delay(Duration),
    /// Handle the call at once (a post is stored), then wait this long before answering: the
    /// caller may give up although the call took effect.
    RespondLate(Duration),
    /// Never answer (the request is not handled).
    Hang,
}

/// Handle to a running simulated workspace; clones share it.
#[derive(Clone)]
pub struct Workspace {
    inner: Arc<Inner>,
}

impl Workspace {
    /// Starts the Web API and Socket Mode server on `127.0.0.1:0` in the current actix system.
    pub async fn start(opts: WorkspaceOptions) -> std::io::Result<Workspace> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let (timer_tx, timer_rx) = mpsc::unbounded_channel();
        let (posted_tx, _) = broadcast::channel(4096);
        let mut st = State::default();
        let ids = Ids::generate(&mut st);
        st.users = ids.initial_users();
        st.assignees = vec!["dana".to_string()];
        let inner = Arc::new(Inner {
            opts,
            ids,
            port,
            state: Mutex::new(st),
            changes: Notify::new(),
            posted_tx,
            timers: timer_tx,
            server: Mutex::new(None),
        });
        actix_rt::spawn(run_timers(Arc::downgrade(&inner), timer_rx));

        let data = web::Data::from(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(8 << 20))
                .route("/api/{method}", web::to(web_api))
                .route("/link/", web::get().to(socket_link))
                .route("/link", web::get().to(socket_link))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        *lock(&inner.server) = Some(server.handle());
        actix_rt::spawn(server);
        tracing::debug!(port, "simulated slack workspace started");
        Ok(Workspace { inner })
    }

    /// Web API base, e.g. `http://127.0.0.1:1234/api/` (method names are appended).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/", self.inner.port)
    }
    pub fn bot_token(&self) -> &str {
        &self.inner.ids.bot_token
    }
    pub fn app_token(&self) -> &str {
        &self.inner.ids.app_token
    }
    pub fn team_id(&self) -> &str {
        &self.inner.ids.team_id
    }
    /// Id of the channel named `it`.
    pub fn it_channel(&self) -> &str {
        &self.inner.ids.channels[0].id
    }
    /// Id of the channel named `random`.
    pub fn other_channel(&self) -> &str {
        &self.inner.ids.channels[1].id
    }
    /// The app's bot user (`U…`).
    pub fn bot_user_id(&self) -> &str {
        &self.inner.ids.own.user_id
    }
    /// The app's bot id (`B…`).
    pub fn bot_id(&self) -> &str {
        &self.inner.ids.own.bot_id
    }
    /// The app id (`A…`) of the app under test.
    pub fn app_id(&self) -> &str {
        &self.inner.ids.own.app_id
    }
    pub fn assist_bot_id(&self) -> &str {
        &self.inner.ids.assist.bot_id
    }
    pub fn assist_user_id(&self) -> &str {
        &self.inner.ids.assist.user_id
    }
    /// The bot id of the unrelated app used by [`Workspace::post_as_other_bot`].
    pub fn other_bot_id(&self) -> &str {
        &self.inner.ids.other.bot_id
    }

    /// A channel id for an id or a name (`it`, `#it`); unknown values are kept as given.
    fn channel_id(&self, channel: &str) -> String {
        self.inner.ids.channel(channel).map_or_else(|| channel.to_string(), |c| c.id.clone())
    }

    /// Gets or creates a human user by display name.
    pub fn user_id(&self, name: &str) -> String {
        let mut st = self.inner.lock();
        // A lookup takes the state only for reading, so it does not count as a change.
        match st.users.iter().find(|u| u.bot_id.is_none() && u.name == name) {
            Some(u) => u.id.clone(),
            None => st.human(name),
        }
    }

    /// Adds a member with a display name and a real name (as `users.list` and `users.info` give
    /// them); returns the id. A member who already exists keeps their id and takes `real_name`.
    pub fn add_member(&self, display_name: &str, real_name: &str) -> String {
        let mut st = self.inner.lock();
        let id = match st.users.iter().find(|u| u.bot_id.is_none() && u.name == display_name) {
            Some(u) => u.id.clone(),
            None => st.human(display_name),
        };
        if let Some(u) = st.users.iter_mut().find(|u| u.id == id) {
            u.real_name = real_name.to_string();
        }
        id
    }

    /// Display name of any user id or bot id (`itbot`, `Assist`, a human's name).
    pub fn user_name(&self, id: &str) -> Option<String> {
        let st = self.inner.lock();
        st.users.iter().find(|u| u.id == id || u.bot_id.as_deref() == Some(id)).map(|u| u.name.clone())
    }

    /// Assist assigns tickets round-robin from these display names.
    pub fn set_assignees(&self, names: &[&str]) {
        let mut st = self.inner.lock();
        st.assignees = names.iter().map(|n| n.to_string()).collect();
        st.assignee_rr = 0;
    }

    /// A human posts; returns the new ts. Delivers `message` (and `app_mention` when the bot is
    /// mentioned); a top-level post in #it gets an Assist reply after `assist_delay`.
    pub fn post(&self, user_id: &str, channel: &str, text: &str, thread_ts: Option<&str>) -> String {
        let channel = &self.channel_id(channel);
        let mut st = self.inner.lock();
        let new = NewMsg {
            channel: channel.to_string(),
            thread_ts: thread_ts.map(str::to_string),
            author: Author::Human(user_id.to_string()),
            text: text.to_string(),
            blocks: None,
            metadata: None,
            broadcast: false,
            announce: true,
        };
        self.inner.store_and_emit(&mut st, new)
    }

    /// Another app (not Assist, not the app under test) posts with its bot token.
    pub fn post_as_other_bot(&self, channel: &str, text: &str, thread_ts: Option<&str>) -> String {
        let channel = &self.channel_id(channel);
        let mut st = self.inner.lock();
        let new = NewMsg {
            channel: channel.to_string(),
            thread_ts: thread_ts.map(str::to_string),
            author: Author::App(AppKind::Other),
            text: text.to_string(),
            blocks: None,
            metadata: None,
            broadcast: false,
            announce: true,
        };
        self.inner.store_and_emit(&mut st, new)
    }

    /// Moves the workspace's clock forward: every later message's ts is `by` later, as if that
    /// much time had passed (for tests about time windows without waiting).
    pub fn advance_clock(&self, by: Duration) {
        self.inner.lock().skew_micros += by.as_micros();
    }

    /// The author edits a message: `message_changed` event.
    pub fn edit(&self, channel: &str, ts: &str, new_text: &str) {
        let channel = &self.channel_id(channel);
        let mut st = self.inner.lock();
        let editor = st.find(channel, ts).and_then(|i| st.messages[i].user.clone()).unwrap_or_default();
        if self.inner.update_message(&mut st, channel, ts, &editor, Some(new_text), None).is_none() {
            tracing::debug!(channel, ts, "edit of unknown message ignored");
        }
    }

    /// The message is deleted: `message_deleted` event.
    pub fn delete(&self, channel: &str, ts: &str) {
        let channel = &self.channel_id(channel);
        let mut st = self.inner.lock();
        let Some(i) = st.find(channel, ts) else {
            tracing::debug!(channel, ts, "delete of unknown message ignored");
            return;
        };
        let previous = self.inner.message_json(&st, &st.messages[i], View::Api(false));
        st.messages.remove(i);
        st.reindex();
        let event_ts = st.next_ts();
        let event = json!({
            "type": "message",
            "subtype": "message_deleted",
            "previous_message": previous,
            "channel": channel,
            "hidden": true,
            "deleted_ts": ts,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": "channel",
        });
        self.inner.dispatch_event(&mut st, event, "message", channel, &event_ts);
    }

    /// A user adds a reaction (name without colons): `reaction_added` event.
    pub fn react(&self, user_id: &str, channel: &str, ts: &str, reaction: &str) {
        let channel = &self.channel_id(channel);
        let mut st = self.inner.lock();
        let reaction = reaction.trim_matches(':');
        if self.inner.add_reaction(&mut st, user_id, channel, ts, reaction) == Err("already_reacted") {
            tracing::debug!(channel, ts, "repeated reaction ignored");
        }
    }

    /// Stores a message as channel history from `days_ago` days back, delivering no event: the
    /// channel as it was before the bot started. `user_id` `None` means the app under test
    /// (with `metadata`, as the bot writes its state). Returns the ts.
    pub fn seed(
        &self,
        user_id: Option<&str>,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
        days_ago: f64,
        metadata: Option<Value>,
    ) -> String {
        let channel = self.channel_id(channel);
        let mut st = self.inner.lock();
        let now = now_micros() + st.skew_micros;
        let mut micros = now.saturating_sub((days_ago.max(0.0) * 86_400e6) as u128);
        while st.messages.iter().any(|m| parse_ts(&m.ts).is_some_and(|t| t == micros)) {
            micros += 1;
        }
        let ts = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        let (user, app, blocks) = match user_id {
            Some(u) => (Some(u.to_string()), None, Some(rich_text_blocks(text))),
            None => (Some(self.inner.ids.app(AppKind::Own).user_id.clone()), Some(AppKind::Own), None),
        };
        let msg = Msg {
            channel,
            ts: ts.clone(),
            thread_ts: thread_ts.map(str::to_string),
            subtype: None,
            user,
            app,
            bot_id: app.map(|k| self.inner.ids.app(k).bot_id.clone()),
            text: text.to_string(),
            blocks,
            metadata,
            client_msg_id: None,
            edited: None,
            reactions: Vec::new(),
        };
        let at = st
            .messages
            .iter()
            .position(|m| parse_ts(&m.ts).is_some_and(|t| t > micros))
            .unwrap_or(st.messages.len());
        st.messages.insert(at, msg);
        st.reindex();
        ts
    }

    /// A user clicks a button (`action_id`, `value`) on a message: a `block_actions` payload in
    /// an `interactive` envelope, sent once (Slack does not redeliver interactions). Returns
    /// false when no socket is open.
    pub fn click_button(
        &self,
        user_id: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
    ) -> bool {
        let action = json!({
            "type": "button", "action_id": action_id, "block_id": "itbot", "value": value,
            "text": {"type": "plain_text", "text": "button"},
        });
        self.send_block_action(user_id, channel, message_ts, action)
    }

    /// A user presses 👍 (`positive`) or 👎 of the `feedback_buttons` element on a message, as
    /// Slack sends it: the element's `action_id`, its block's `block_id` and the pressed button's
    /// `value` and text. False when the message has no feedback buttons or no socket is open.
    pub fn click_feedback(&self, user_id: &str, channel: &str, message_ts: &str, positive: bool) -> bool {
        let channel_id = self.channel_id(channel);
        let action = {
            let st = self.inner.lock();
            let Some(i) = st.find(&channel_id, message_ts) else { return false };
            let blocks = st.messages[i].blocks.clone().unwrap_or(Value::Null);
            let found = blocks.as_array().into_iter().flatten().find_map(|b| {
                let e = b["elements"].as_array()?.iter().find(|e| e["type"] == "feedback_buttons")?;
                Some((b["block_id"].clone(), e.clone()))
            });
            let Some((block_id, element)) = found else { return false };
            let button = &element[if positive { "positive_button" } else { "negative_button" }];
            json!({
                "type": "feedback_buttons", "action_id": element["action_id"], "block_id": block_id,
                "value": button["value"], "text": button["text"],
            })
        };
        self.send_block_action(user_id, channel, message_ts, action)
    }

    fn send_block_action(&self, user_id: &str, channel: &str, message_ts: &str, mut action: Value) -> bool {
        let channel = self.channel_id(channel);
        let mut st = self.inner.lock();
        let message = st.find(&channel, message_ts).map(|i| st.messages[i].clone());
        let thread_ts = message.as_ref().and_then(|m| m.thread_ts.clone());
        let action_ts = st.next_ts();
        action["action_ts"] = json!(action_ts);
        let mut container = json!({
            "type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false,
        });
        if let Some(t) = &thread_ts {
            container["thread_ts"] = json!(t);
        }
        // The clicked message as Slack includes it: text, blocks, author.
        let message = match &message {
            Some(m) => self.inner.message_json(&st, m, View::Api(false)),
            None => json!({"type": "message", "ts": message_ts}),
        };
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user_id, "team_id": self.inner.ids.team_id},
            "api_app_id": self.inner.ids.own.app_id,
            "token": self.inner.ids.verification_token,
            "container": container,
            "trigger_id": format!("{}.{}", now_secs(), uuid()),
            "team": {"id": self.inner.ids.team_id},
            "channel": {"id": channel},
            "message": message,
            "actions": [action],
        });
        let envelope_id = uuid();
        let frame = json!({
            "envelope_id": envelope_id, "payload": payload, "type": "interactive", "accepts_response_payload": false,
        })
        .to_string();
        let Some(conn) = st.pick_conn() else { return false };
        if conn.tx.send(Outgoing::Text(frame)).is_err() {
            return false;
        }
        // Acks of this envelope are counted like any other; no delivery has key u64::MAX.
        st.envelopes.insert(envelope_id, Sent { key: u64::MAX, acked: false, at: Instant::now() });
        st.envelopes_sent += 1;
        true
    }

    /// Completes at the next change to what the workspace records (a message, edit, reaction,
    /// Web API call, ack, ping or connection), so tests wait for events instead of polling. Make
    /// it and `enable` it before checking a condition, or a change in between is missed.
    pub fn changed(&self) -> Notified<'_> {
        self.inner.changes.notified()
    }

    /// The message `ts` is a stream the app has not stopped yet: its text is still growing.
    pub fn is_streaming(&self, ts: &str) -> bool {
        self.inner
            .lock()
            .streams
            .get(ts)
            .is_some_and(|(started, open)| *open && started.elapsed() < STREAM_LIFETIME)
    }

    /// Every stored message and every ephemeral post, in order, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Posted> {
        self.inner.posted_tx.subscribe()
    }

    /// All stored messages in the channel, replies included, in ts order.
    pub fn messages(&self, channel: &str) -> Vec<Posted> {
        let channel = &self.channel_id(channel);
        let st = self.inner.lock();
        st.messages.iter().filter(|m| m.channel == *channel).map(Msg::posted).collect()
    }

    /// Root and replies of a thread, in ts order.
    pub fn thread(&self, channel: &str, thread_ts: &str) -> Vec<Posted> {
        let channel = &self.channel_id(channel);
        let st = self.inner.lock();
        st.messages
            .iter()
            .filter(|m| {
                m.channel == *channel && (m.ts == thread_ts || m.thread_ts.as_deref() == Some(thread_ts))
            })
            .map(Msg::posted)
            .collect()
    }

    /// Every Web API call received so far.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.inner.lock().api_calls.clone()
    }

    /// Envelope frames sent, redeliveries included.
    pub fn envelopes_sent(&self) -> usize {
        self.inner.lock().envelopes_sent
    }

    /// Distinct envelopes acked by a client.
    pub fn envelopes_acked(&self) -> usize {
        self.inner.lock().envelopes_acked
    }

    /// How long each acked envelope waited for its ack, in the order the acks arrived: from the
    /// moment the workspace handed the frame to its socket until the client's ack was read, as
    /// Slack's 3-second deadline counts it. The first `from` are skipped (an earlier reading).
    pub fn ack_latencies(&self, from: usize) -> Vec<Duration> {
        let st = self.inner.lock();
        st.ack_latencies.get(from..).map(<[Duration]>::to_vec).unwrap_or_default()
    }

    /// Calls answered with 429 because they passed Slack's rate limits (not injected faults).
    pub fn rate_limited_calls(&self) -> usize {
        self.inner.lock().rate_limited
    }

    /// Web API calls received so far, counted by method (cheaper than [`Workspace::api_calls`]
    /// on a long run).
    pub fn calls_by_method(&self) -> std::collections::BTreeMap<String, usize> {
        let st = self.inner.lock();
        let mut counts = std::collections::BTreeMap::new();
        for c in &st.api_calls {
            *counts.entry(c.method.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Client text frames that were neither acks of a known envelope nor valid JSON acks.
    pub fn unknown_frames(&self) -> usize {
        self.inner.lock().unknown_frames
    }

    /// Events waiting for an open connection.
    pub fn queued_events(&self) -> usize {
        self.inner.lock().queued.len()
    }

    pub fn open_connections(&self) -> usize {
        // Counted without pruning, so that reading is not a change.
        self.inner.lock().conns.iter().filter(|c| !c.tx.is_closed()).count()
    }

    /// The next call of `method` gets this fault (faults queue per method).
    pub fn inject(&self, method: &str, fault: Fault) {
        let mut st = self.inner.lock();
        st.faults.entry(method.to_string()).or_default().push_back(fault);
    }

    /// The next `n` calls of `method` get this fault.
    pub fn inject_times(&self, method: &str, fault: Fault, n: usize) {
        let mut st = self.inner.lock();
        let queue = st.faults.entry(method.to_string()).or_default();
        queue.extend(std::iter::repeat_n(fault, n));
    }

    /// Faults injected but not served yet, over all methods.
    pub fn faults_pending(&self) -> usize {
        self.inner.lock().faults.values().map(VecDeque::len).sum()
    }

    /// The next `n` acks from clients are lost: those envelopes are redelivered with
    /// `retry_attempt` + 1 and `retry_reason: "timeout"` after `ack_timeout`.
    pub fn hold_acks(&self, n: usize) {
        self.inner.lock().acks_to_lose += n;
    }

    /// Acks lost so far by [`Workspace::hold_acks`].
    pub fn acks_lost(&self) -> usize {
        self.inner.lock().acks_lost
    }

    /// Events sent but not acked yet, and events waiting for a connection.
    pub fn pending_deliveries(&self) -> usize {
        self.inner.lock().deliveries.len()
    }

    /// Sends `{"type":"disconnect","reason":…}` on the `index`-th open socket (oldest first), and
    /// closes it after `close_after` when given, as Slack does after a `warning`. False if there
    /// is no such socket.
    pub fn send_disconnect_to(&self, index: usize, reason: &str, close_after: Option<Duration>) -> bool {
        let mut st = self.inner.lock();
        st.live_conns();
        let n = st.conns.iter().filter(|c| !c.muted).count();
        let Some(conn) = st.conns.iter().filter(|c| !c.muted).nth(index) else {
            return false;
        };
        let frame = self.inner.disconnect_frame(reason, n);
        let _ = conn.tx.send(Outgoing::Text(frame));
        let id = conn.id;
        if let Some(after) = close_after {
            self.inner.schedule(after, move |inner| inner.close_conn(id, Outgoing::Close));
        }
        true
    }

    /// Closes the `index`-th open socket (oldest first) abruptly, as a dropped TCP connection.
    pub fn drop_connection(&self, index: usize) -> bool {
        let mut st = self.inner.lock();
        st.live_conns();
        let Some(id) = st.conns.iter().filter(|c| !c.muted).nth(index).map(|c| c.id) else {
            return false;
        };
        drop(st);
        self.inner.close_conn(id, Outgoing::Abort);
        true
    }

    /// The next event goes to the `index`-th open socket (oldest first), as Slack may choose any
    /// of an app's sockets; later events go round the sockets from there.
    pub fn aim_next_event_at(&self, index: usize) {
        let mut st = self.inner.lock();
        st.live_conns();
        st.rr = index;
    }

    /// Every open socket goes silent in both directions (no pings, pongs, events or acks), as if
    /// the network dropped everything without closing: only a watchdog notices.
    pub fn mute_connections(&self) {
        let mut st = self.inner.lock();
        for c in &mut st.conns {
            c.muted = true;
        }
    }

    /// Takes `n` of the app's connection slots with sockets that never receive events (other
    /// processes of the same app), so the app's next sockets hit the limit of 10.
    pub fn occupy_connection_slots(&self, n: usize) {
        let mut st = self.inner.lock();
        for _ in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            let id = st.next_conn;
            st.next_conn += 1;
            st.conns.push(Conn { id, tx, muted: true });
            st.occupied.push(rx);
        }
    }

    /// Frees the slots taken by [`Workspace::occupy_connection_slots`].
    pub fn release_connection_slots(&self) {
        let mut st = self.inner.lock();
        st.occupied.clear();
        st.live_conns();
    }

    /// Sockets that said hello, since the start.
    pub fn connections_opened(&self) -> usize {
        self.inner.lock().opened
    }

    /// WebSocket pings received from clients.
    pub fn client_pings(&self) -> usize {
        self.inner.lock().client_pings
    }

    /// Sockets refused with `too_many_websockets`.
    pub fn connections_refused(&self) -> usize {
        self.inner.lock().refused
    }

    /// The most sockets open at once (occupied slots included).
    pub fn peak_connections(&self) -> usize {
        self.inner.lock().peak
    }

    /// Calls of `method` received so far.
    pub fn calls_of(&self, method: &str) -> usize {
        self.inner.lock().api_calls.iter().filter(|c| c.method == method).count()
    }

    /// Sends `{"type":"disconnect","reason":…}` on every open socket.
    pub fn send_disconnect_all(&self, reason: &str) {
        let mut st = self.inner.lock();
        let n = st.live_conns();
        let frame = self.inner.disconnect_frame(reason, n);
        for c in st.conns.iter().filter(|c| !c.muted) {
            let _ = c.tx.send(Outgoing::Text(frame.clone()));
        }
        tracing::debug!(connections = n, "disconnect sent");
    }

    /// Closes every socket abruptly (no close frame).
    pub fn drop_connections(&self) {
        let mut st = self.inner.lock();
        for c in st.conns.drain(..) {
            let _ = c.tx.send(Outgoing::Abort);
        }
    }

    /// Closes every socket and stops the server and timers.
    pub async fn stop(&self) {
        {
            let mut st = self.inner.lock();
            for c in st.conns.drain(..) {
                let _ = c.tx.send(Outgoing::Close);
            }
        }
        let _ = self.inner.timers.send(TimerCmd::Stop);
        let handle = lock(&self.inner.server).take();
        if let Some(handle) = handle {
            handle.stop(false).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take the whole fake down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    opts: WorkspaceOptions,
    ids: Ids,
    port: u16,
    state: Mutex<State>,
    /// Woken whenever `state` changes ([`Workspace::changed`]).
    changes: Notify,
    posted_tx: broadcast::Sender<Posted>,
    timers: mpsc::UnboundedSender<TimerCmd>,
    server: Mutex<Option<ServerHandle>>,
}

/// One app installed in the workspace (the app under test, Assist, or another app).
struct AppIds {
    name: String,
    user_id: String,
    bot_id: String,
    app_id: String,
}

struct ChannelDef {
    id: String,
    name: String,
    purpose: &'static str,
    created: u64,
}

struct Ids {
    team_id: String,
    team_name: String,
    team_domain: String,
    verification_token: String,
    bot_token: String,
    app_token: String,
    host: String,
    channels: Vec<ChannelDef>,
    own: AppIds,
    assist: AppIds,
    other: AppIds,
}

impl Ids {
    fn generate(st: &mut State) -> Ids {
        let team_id = st.fresh_id("T0", 9);
        let own_app = st.fresh_id("A0", 9);
        let app = |st: &mut State, name: &str| AppIds {
            name: name.to_string(),
            user_id: st.fresh_id("U0", 9),
            bot_id: st.fresh_id("B0", 9),
            app_id: st.fresh_id("A0", 9),
        };
        let mut own = app(st, "itbot");
        own.app_id = own_app.clone();
        let assist = app(st, "Assist");
        let other = app(st, "Deploy Notifier");
        let created = now_secs().saturating_sub(400 * 24 * 3600);
        let channels = vec![
            ChannelDef {
                id: st.fresh_id("C0", 9),
                name: "it".into(),
                purpose: "Ask IT for help. Assist opens a ticket for every post.",
                created,
            },
            ChannelDef {
                id: st.fresh_id("C0", 9),
                name: "random".into(),
                purpose: "Non-work banter and water cooler conversation.",
                created,
            },
            ChannelDef {
                id: st.fresh_id("C0", 9),
                name: "general".into(),
                purpose: "Company-wide announcements and work-based matters.",
                created,
            },
        ];
        let digits =
            |n: usize| -> String { (0..n).map(|_| char::from(b'0' + fastrand::u8(0..10))).collect() };
        let bot_token = format!("xoxb-sandbox-{}-{}-{}", digits(13), digits(13), alnum_mixed(24));
        let app_token = format!("xapp-1-sandbox-{}-{}-{}", own_app, digits(13), hex(64));
        Ids {
            team_id,
            team_name: "Sandbox Inc".into(),
            team_domain: "sandbox-inc".into(),
            verification_token: alnum_mixed(24),
            bot_token,
            app_token,
            host: format!("applink-{}-{}", hex(10), alnum_lower(5)),
            channels,
            own,
            assist,
            other,
        }
    }

    fn initial_users(&self) -> Vec<User> {
        [&self.own, &self.assist, &self.other]
            .iter()
            .map(|a| User {
                id: a.user_id.clone(),
                name: a.name.clone(),
                real_name: a.name.clone(),
                bot_id: Some(a.bot_id.clone()),
                app_id: Some(a.app_id.clone()),
            })
            .collect()
    }

    fn channel(&self, id_or_name: &str) -> Option<&ChannelDef> {
        let name = id_or_name.trim_start_matches('#');
        self.channels.iter().find(|c| c.id == id_or_name || c.name == name)
    }

    fn app(&self, kind: AppKind) -> &AppIds {
        match kind {
            AppKind::Own => &self.own,
            AppKind::Assist => &self.assist,
            AppKind::Other => &self.other,
        }
    }
}

struct User {
    id: String,
    name: String,
    real_name: String,
    bot_id: Option<String>,
    app_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AppKind {
    Own,
    Assist,
    Other,
}

enum Author {
    Human(String),
    App(AppKind),
}

struct NewMsg {
    channel: String,
    thread_ts: Option<String>,
    author: Author,
    text: String,
    blocks: Option<Value>,
    metadata: Option<Value>,
    broadcast: bool,
    /// Whether observers ([`Workspace::subscribe`]) hear of it now; a streamed message is
    /// announced when its stream stops, with its final text.
    announce: bool,
}

#[derive(Clone)]
struct Msg {
    channel: String,
    ts: String,
    thread_ts: Option<String>,
    subtype: Option<&'static str>,
    user: Option<String>,
    app: Option<AppKind>,
    bot_id: Option<String>,
    text: String,
    blocks: Option<Value>,
    metadata: Option<Value>,
    client_msg_id: Option<String>,
    /// `(editor, edit ts)` of the last edit.
    edited: Option<(String, String)>,
    /// Reaction name and the users who added it, in order.
    reactions: Vec<(String, Vec<String>)>,
}

impl Msg {
    fn is_reply(&self) -> bool {
        self.thread_ts.as_deref().is_some_and(|t| t != self.ts)
    }

    fn posted(&self) -> Posted {
        Posted {
            channel: self.channel.clone(),
            ts: self.ts.clone(),
            thread_ts: self.thread_ts.clone(),
            user: self.user.clone(),
            bot_id: self.bot_id.clone(),
            text: self.text.clone(),
            blocks: self.blocks.clone(),
            metadata: self.metadata.clone(),
            ephemeral_to: None,
            reactions: self
                .reactions
                .iter()
                .flat_map(|(n, users)| users.iter().map(move |u| (n.clone(), u.clone())))
                .collect(),
        }
    }
}

enum Outgoing {
    Text(String),
    Close,
    Abort,
}

struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Silent in both directions: gets no events or pings, and what it sends is lost.
    muted: bool,
}

/// An envelope frame handed to a socket.
#[derive(Clone, Copy)]
struct Sent {
    /// The delivery it carries (`u64::MAX` for interactions, which are not redelivered).
    key: u64,
    acked: bool,
    /// When it was handed to the socket.
    at: Instant,
}

/// An event waiting for its ack.
struct Delivery {
    payload: Value,
    attempt: u32,
}

#[derive(Default)]
struct State {
    issued_ids: HashSet<String>,
    users: Vec<User>,
    messages: Vec<Msg>,
    last_ts_micros: u128,
    /// How far the workspace's clock runs ahead of the machine's ([`Workspace::advance_clock`]).
    skew_micros: u128,
    api_calls: Vec<ApiCall>,
    faults: HashMap<String, VecDeque<Fault>>,
    tickets: HashSet<String>,
    conns: Vec<Conn>,
    next_conn: u64,
    rr: usize,
    deliveries: HashMap<u64, Delivery>,
    next_delivery: u64,
    envelopes: HashMap<String, Sent>,
    /// Time from send to first ack of every acked envelope, in ack order.
    ack_latencies: Vec<Duration>,
    /// ts -> index in `messages` (a ts is unique across the workspace), so lookups stay cheap
    /// with tens of thousands of messages.
    by_ts: HashMap<String, usize>,
    /// Root ts -> indexes of its replies in `messages`, oldest first.
    replies: HashMap<String, Vec<usize>>,
    queued: VecDeque<u64>,
    envelopes_sent: usize,
    envelopes_acked: usize,
    unknown_frames: usize,
    /// Acks still to lose ([`Workspace::hold_acks`]), and lost so far.
    acks_to_lose: usize,
    acks_lost: usize,
    /// Receivers of occupied connection slots, kept so their senders stay open.
    occupied: Vec<mpsc::UnboundedReceiver<Outgoing>>,
    opened: usize,
    refused: usize,
    peak: usize,
    client_pings: usize,
    assignees: Vec<String>,
    assignee_rr: usize,
    tickets_created: u64,
    /// Streams by message ts: when each started, and whether it is still open.
    streams: HashMap<String, (Instant, bool)>,
    /// Rate-limit buckets, by method (and channel for `chat.postMessage`).
    buckets: HashMap<String, Bucket>,
    /// Calls answered with 429 because a limit was passed (faults injected by tests not counted).
    rate_limited: usize,
}

impl State {
    /// Takes one call from the method's budget; `Err(seconds)` to wait when there is none.
    fn spend(&mut self, limits: RateLimits, method: &str, channel: Option<&str>) -> Result<(), u64> {
        let factor = match limits {
            RateLimits::Off => return Ok(()),
            RateLimits::Slack => 1.0,
            RateLimits::Relaxed(f) => f64::from(f.max(1)),
        };
        let (per_minute, burst) = method_limit(method);
        let rate = f64::from(per_minute) * factor / 60.0;
        let burst = f64::from(burst) * factor;
        let key = match (method, channel) {
            ("chat.postMessage", Some(c)) => format!("{method} {c}"),
            _ => method.to_string(),
        };
        let now = Instant::now();
        let b = self.buckets.entry(key).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        self.rate_limited += 1;
        // Slack gives whole seconds.
        Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
    }
}

impl State {
    fn fresh_id(&mut self, prefix: &str, len: usize) -> String {
        loop {
            let id = format!("{prefix}{}", alnum_upper(len));
            if self.issued_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// Strictly increasing `"<secs>.<6 digits>"`.
    fn next_ts(&mut self) -> String {
        let now = now_micros() + self.skew_micros;
        let t = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = t;
        format!("{}.{:06}", t / 1_000_000, t % 1_000_000)
    }

    fn human(&mut self, name: &str) -> String {
        if let Some(u) = self.users.iter().find(|u| u.bot_id.is_none() && u.name == name) {
            return u.id.clone();
        }
        let id = self.fresh_id("U0", 9);
        let mut real_name: String = name.chars().take(1).flat_map(char::to_uppercase).collect();
        real_name.push_str(&name.chars().skip(1).collect::<String>());
        self.users.push(User {
            id: id.clone(),
            name: name.to_string(),
            real_name,
            bot_id: None,
            app_id: None,
        });
        id
    }

    fn find(&self, channel: &str, ts: &str) -> Option<usize> {
        self.by_ts.get(ts).copied().filter(|&i| self.messages.get(i).is_some_and(|m| m.channel == channel))
    }

    /// Appends a message and indexes it.
    fn push_message(&mut self, msg: Msg) {
        let i = self.messages.len();
        self.by_ts.insert(msg.ts.clone(), i);
        if let Some(root) = msg.thread_ts.as_ref().filter(|_| msg.is_reply()) {
            self.replies.entry(root.clone()).or_default().push(i);
        }
        self.messages.push(msg);
    }

    /// Rebuilds the indexes after a message was inserted or removed in the middle.
    fn reindex(&mut self) {
        self.by_ts = self.messages.iter().enumerate().map(|(i, m)| (m.ts.clone(), i)).collect();
        self.replies.clear();
        for (i, m) in self.messages.iter().enumerate() {
            if let Some(root) = m.thread_ts.as_ref().filter(|_| m.is_reply()) {
                self.replies.entry(root.clone()).or_default().push(i);
            }
        }
    }

    /// The replies in the thread of `root_ts` in `channel`, oldest first.
    fn replies_of(&self, channel: &str, root_ts: &str) -> Vec<&Msg> {
        self.replies
            .get(root_ts)
            .map(|ix| ix.iter().map(|&i| &self.messages[i]).filter(|m| m.channel == channel).collect())
            .unwrap_or_default()
    }

    fn live_conns(&mut self) -> usize {
        self.conns.retain(|c| !c.tx.is_closed());
        self.conns.len()
    }

    fn is_muted(&self, conn_id: u64) -> bool {
        self.conns.iter().any(|c| c.id == conn_id && c.muted)
    }

    fn pick_conn(&mut self) -> Option<&Conn> {
        self.live_conns();
        let live: Vec<usize> = (0..self.conns.len()).filter(|i| !self.conns[*i].muted).collect();
        if live.is_empty() {
            return None;
        }
        let i = live[self.rr % live.len()];
        self.rr = self.rr.wrapping_add(1);
        self.conns.get(i)
    }
}

// ---------------------------------------------------------------------------------------------
// Messages and events

#[derive(Clone, Copy)]
enum View {
    /// As in an event (`channel`, `event_ts`, `channel_type`; no thread summary or reactions).
    Event,
    /// As in a Web API response; `true` includes `metadata`.
    Api(bool),
}

/// The locked state; dropping it after a mutable use wakes [`Workspace::changed`], so every
/// change is announced without each mutation having to remember to.
struct StateGuard<'a> {
    state: MutexGuard<'a, State>,
    changes: &'a Notify,
    changed: bool,
}

impl Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.changed = true;
        &mut self.state
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        if self.changed {
            self.changes.notify_waiters();
        }
    }
}

impl Inner {
    fn lock(&self) -> StateGuard<'_> {
        StateGuard { state: lock(&self.state), changes: &self.changes, changed: false }
    }

    fn schedule(&self, delay: Duration, job: impl FnOnce(&Arc<Inner>) + Send + 'static) {
        let _ = self.timers.send(TimerCmd::At(Instant::now() + delay, Box::new(job)));
    }

    fn bot_profile(&self, kind: AppKind) -> Value {
        let app = self.ids.app(kind);
        json!({
            "id": app.bot_id,
            "deleted": false,
            "name": app.name,
            "updated": PROFILE_UPDATED,
            "app_id": app.app_id,
            "icons": {
                "image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
                "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
                "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png"
            },
            "team_id": self.ids.team_id,
        })
    }

    fn message_json(&self, st: &State, m: &Msg, view: View) -> Value {
        let mut o = Map::new();
        o.insert("type".into(), json!("message"));
        if let Some(s) = m.subtype {
            o.insert("subtype".into(), json!(s));
        }
        if let Some(id) = &m.client_msg_id {
            o.insert("client_msg_id".into(), json!(id));
        }
        o.insert("text".into(), json!(m.text));
        if let Some(u) = &m.user {
            o.insert("user".into(), json!(u));
        }
        o.insert("ts".into(), json!(m.ts));
        if let Some(kind) = m.app {
            let app = self.ids.app(kind);
            o.insert("bot_id".into(), json!(app.bot_id));
            o.insert("app_id".into(), json!(app.app_id));
            o.insert("bot_profile".into(), self.bot_profile(kind));
        }
        o.insert("team".into(), json!(self.ids.team_id));
        if let Some(b) = &m.blocks {
            o.insert("blocks".into(), b.clone());
        }
        if let Some((user, ts)) = &m.edited {
            o.insert("edited".into(), json!({"user": user, "ts": ts}));
        }
        if let Some(root_ts) = m.thread_ts.as_deref().filter(|_| m.is_reply()) {
            o.insert("thread_ts".into(), json!(root_ts));
            let parent = st.find(&m.channel, root_ts).and_then(|i| st.messages[i].user.clone());
            if let Some(p) = parent {
                o.insert("parent_user_id".into(), json!(p));
            }
        }
        match view {
            View::Event => {
                o.insert("channel".into(), json!(m.channel));
                o.insert("event_ts".into(), json!(m.ts));
                o.insert("channel_type".into(), json!("channel"));
            }
            View::Api(include_metadata) => {
                if !m.is_reply() {
                    self.add_thread_summary(st, m, &mut o);
                }
                if !m.reactions.is_empty() {
                    let r: Vec<Value> = m
                        .reactions
                        .iter()
                        .map(|(n, u)| json!({"name": n, "users": u, "count": u.len()}))
                        .collect();
                    o.insert("reactions".into(), Value::Array(r));
                }
                if include_metadata {
                    if let Some(md) = &m.metadata {
                        o.insert("metadata".into(), md.clone());
                    }
                }
            }
        }
        Value::Object(o)
    }

    fn add_thread_summary(&self, st: &State, m: &Msg, o: &mut Map<String, Value>) {
        let replies = st.replies_of(&m.channel, &m.ts);
        let Some(last) = replies.last() else {
            return;
        };
        let mut users: Vec<String> = Vec::new();
        for r in &replies {
            if let Some(u) = &r.user {
                if !users.contains(u) {
                    users.push(u.clone());
                }
            }
        }
        o.insert("thread_ts".into(), json!(m.ts));
        o.insert("reply_count".into(), json!(replies.len()));
        o.insert("reply_users_count".into(), json!(users.len()));
        o.insert("latest_reply".into(), json!(last.ts));
        o.insert("reply_users".into(), json!(users));
        o.insert("is_locked".into(), json!(false));
        o.insert("subscribed".into(), json!(false));
    }

    /// Stores a message, publishes it, delivers its events and schedules Assist; returns its ts.
    fn store_and_emit(self: &Arc<Self>, st: &mut State, new: NewMsg) -> String {
        // A reply to a reply belongs to the parent's thread, as in Slack.
        let thread_ts = new
            .thread_ts
            .map(|t| st.find(&new.channel, &t).and_then(|i| st.messages[i].thread_ts.clone()).unwrap_or(t));
        let ts = st.next_ts();
        let (user, app, blocks, client_msg_id) = match &new.author {
            Author::Human(u) => (Some(u.clone()), None, Some(rich_text_blocks(&new.text)), Some(uuid())),
            Author::App(kind) => {
                (Some(self.ids.app(*kind).user_id.clone()), Some(*kind), new.blocks.clone(), None)
            }
        };
        let msg = Msg {
            channel: new.channel.clone(),
            ts: ts.clone(),
            thread_ts: thread_ts.clone(),
            subtype: (new.broadcast && thread_ts.is_some()).then_some("thread_broadcast"),
            user,
            app,
            bot_id: app.map(|k| self.ids.app(k).bot_id.clone()),
            text: new.text.clone(),
            blocks,
            metadata: new.metadata.clone(),
            client_msg_id,
            edited: None,
            reactions: Vec::new(),
        };
        st.push_message(msg.clone());
        if new.announce {
            let _ = self.posted_tx.send(msg.posted());
        }

        let mut event = self.message_json(st, &msg, View::Event);
        if msg.subtype == Some("thread_broadcast") {
            if let Some(root) = thread_ts
                .as_deref()
                .and_then(|t| st.find(&new.channel, t))
                .map(|i| self.message_json(st, &st.messages[i], View::Api(false)))
            {
                event["root"] = root;
            }
        }
        self.dispatch_event(st, event.clone(), "message", &new.channel, &ts);

        if let Author::Human(_) = new.author {
            let mention = format!("<@{}", self.ids.own.user_id);
            let mentioned = new
                .text
                .match_indices(&mention)
                .any(|(i, _)| matches!(new.text[i + mention.len()..].chars().next(), Some('>' | '|')));
            if mentioned {
                if let Value::Object(o) = &mut event {
                    o.insert("type".into(), json!("app_mention"));
                    o.remove("channel_type");
                    o.remove("parent_user_id");
                }
                self.dispatch_event(st, event, "app_mention", &new.channel, &ts);
            }
            let in_it = new.channel == self.ids.channels[0].id;
            if in_it && thread_ts.is_none() && self.opts.assist_enabled {
                let (channel, root) = (new.channel.clone(), ts.clone());
                self.schedule(self.opts.assist_delay, move |inner| inner.assist_reply(&channel, &root));
            }
        }
        ts
    }

    fn assist_reply(self: &Arc<Self>, channel: &str, root_ts: &str) {
        let mut st = self.lock();
        if st.find(channel, root_ts).is_none() {
            return; // the post was deleted before Assist got to it
        }
        let assignee = if st.assignees.is_empty() {
            None
        } else {
            let i = st.assignee_rr % st.assignees.len();
            st.assignee_rr = st.assignee_rr.wrapping_add(1);
            let name = st.assignees[i].clone();
            Some(st.human(&name))
        };
        let key = format!("IT-{}", 1000 + st.tickets_created);
        st.tickets_created += 1;
        let text = match assignee {
            Some(a) => format!("Ticket {key} created.\nAssignee: <@{a}>"),
            None => format!("Ticket {key} created.\nAssignee: unassigned"),
        };
        let blocks = json!([{
            "type": "section",
            "block_id": alnum_mixed(5),
            "text": {"type": "mrkdwn", "text": text, "verbatim": false}
        }]);
        let new = NewMsg {
            channel: channel.to_string(),
            thread_ts: Some(root_ts.to_string()),
            author: Author::App(AppKind::Assist),
            text,
            blocks: Some(blocks),
            metadata: None,
            broadcast: false,
            announce: true,
        };
        self.store_and_emit(&mut st, new);
    }

    /// Applies an edit; returns the edited message's JSON (API view), or `None` if not found.
    fn update_message(
        self: &Arc<Self>,
        st: &mut State,
        channel: &str,
        ts: &str,
        editor: &str,
        text: Option<&str>,
        blocks: Option<Value>,
    ) -> Option<Value> {
        let i = st.find(channel, ts)?;
        let previous = self.message_json(st, &st.messages[i], View::Api(false));
        let edit_ts = st.next_ts();
        {
            let m = &mut st.messages[i];
            if let Some(t) = text {
                m.text = t.to_string();
                if m.app.is_none() {
                    m.blocks = Some(rich_text_blocks(t));
                }
            }
            if blocks.is_some() {
                m.blocks = blocks;
            }
            m.edited = Some((editor.to_string(), edit_ts.clone()));
        }
        let m = st.messages[i].clone();
        let mut message = self.message_json(st, &m, View::Api(false));
        if let Value::Object(o) = &mut message {
            o.remove("reactions");
        }
        let event = json!({
            "type": "message",
            "subtype": "message_changed",
            "message": message,
            "previous_message": previous,
            "channel": channel,
            "hidden": true,
            "ts": edit_ts,
            "event_ts": edit_ts,
            "channel_type": "channel",
        });
        self.dispatch_event(st, event, "message", channel, &edit_ts);
        Some(self.message_json(st, &m, View::Api(true)))
    }

    fn add_reaction(
        self: &Arc<Self>,
        st: &mut State,
        user: &str,
        channel: &str,
        ts: &str,
        name: &str,
    ) -> Result<(), &'static str> {
        let i = st.find(channel, ts).ok_or("message_not_found")?;
        let m = &mut st.messages[i];
        match m.reactions.iter_mut().find(|(n, _)| n == name) {
            Some((_, users)) if users.iter().any(|u| u == user) => return Err("already_reacted"),
            Some((_, users)) => users.push(user.to_string()),
            None => m.reactions.push((name.to_string(), vec![user.to_string()])),
        }
        let item_user = m.user.clone();
        let event_ts = st.next_ts();
        let mut event = json!({
            "type": "reaction_added",
            "user": user,
            "reaction": name,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": event_ts,
        });
        if let Some(u) = item_user {
            event["item_user"] = json!(u);
        }
        self.dispatch_event(st, event, "reaction_added", channel, &event_ts);
        Ok(())
    }

    // -- Socket Mode delivery ------------------------------------------------------------------

    /// Wraps an event in `event_callback` and delivers it to one connection (or queues it).
    fn dispatch_event(
        self: &Arc<Self>,
        st: &mut State,
        event: Value,
        event_type: &str,
        channel: &str,
        ts: &str,
    ) {
        let event_id = st.fresh_id("Ev0", 9);
        let event_time = ts.split('.').next().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(now_secs);
        let payload = json!({
            "token": self.ids.verification_token,
            "team_id": self.ids.team_id,
            "api_app_id": self.ids.own.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": event_time,
            "authorizations": [{
                "enterprise_id": null,
                "team_id": self.ids.team_id,
                "user_id": self.ids.own.user_id,
                "is_bot": true,
                "is_enterprise_install": false
            }],
            "is_ext_shared_channel": false,
            "event_context": format!("4-{event_type}-{}-{channel}", self.ids.team_id),
        });
        let key = st.next_delivery;
        st.next_delivery += 1;
        st.deliveries.insert(key, Delivery { payload, attempt: 0 });
        self.send_delivery(st, key);
    }

    fn send_delivery(self: &Arc<Self>, st: &mut State, key: u64) {
        let Some(d) = st.deliveries.get(&key) else {
            return;
        };
        let attempt = d.attempt;
        let envelope_id = uuid();
        let frame = json!({
            "envelope_id": envelope_id,
            "payload": d.payload,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": attempt,
            "retry_reason": if attempt > 0 { "timeout" } else { "" },
        })
        .to_string();
        let sent = loop {
            let Some(conn) = st.pick_conn() else {
                break None;
            };
            let id = conn.id;
            if conn.tx.send(Outgoing::Text(frame.clone())).is_ok() {
                break Some(id);
            }
            st.conns.retain(|c| c.id != id);
        };
        let Some(conn_id) = sent else {
            st.queued.push_back(key);
            return;
        };
        st.envelopes.insert(envelope_id, Sent { key, acked: false, at: Instant::now() });
        st.envelopes_sent += 1;
        tracing::debug!(conn_id, delivery = key, attempt, "envelope sent");
        self.schedule(self.opts.ack_timeout, move |inner| inner.check_ack(key, attempt));
    }

    fn check_ack(self: &Arc<Self>, key: u64, attempt: u32) {
        let mut st = self.lock();
        let Some(d) = st.deliveries.get_mut(&key) else {
            return; // acked
        };
        if d.attempt != attempt {
            return;
        }
        if attempt >= self.opts.max_redeliveries {
            st.deliveries.remove(&key);
            tracing::debug!(delivery = key, attempt, "event dropped after redeliveries");
            return;
        }
        d.attempt += 1;
        self.send_delivery(&mut st, key);
    }

    fn on_client_text(&self, conn_id: u64, text: &str) {
        let mut st = self.lock();
        if st.is_muted(conn_id) {
            return;
        }
        let envelope_id = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("envelope_id").and_then(Value::as_str).map(str::to_string));
        let Some(envelope_id) = envelope_id else {
            st.unknown_frames += 1;
            tracing::debug!(conn_id, "unknown client frame");
            return;
        };
        let Some(&Sent { key, acked, at }) = st.envelopes.get(&envelope_id) else {
            st.unknown_frames += 1;
            tracing::debug!(conn_id, "ack of unknown envelope");
            return;
        };
        if !acked && st.acks_to_lose > 0 {
            st.acks_to_lose -= 1;
            st.acks_lost += 1;
            tracing::debug!(conn_id, "ack lost on purpose");
            return;
        }
        if !acked {
            st.envelopes.insert(envelope_id, Sent { key, acked: true, at });
            st.envelopes_acked += 1;
            st.ack_latencies.push(at.elapsed());
        }
        st.deliveries.remove(&key);
    }

    fn disconnect_frame(&self, reason: &str, num_connections: usize) -> String {
        json!({
            "type": "disconnect",
            "reason": reason,
            "num_connections": num_connections,
            "debug_info": {"host": self.ids.host},
            "connection_info": {"app_id": self.ids.own.app_id},
        })
        .to_string()
    }

    /// Ends one socket with a close frame or abruptly.
    fn close_conn(&self, id: u64, how: Outgoing) {
        let mut st = self.lock();
        if let Some(i) = st.conns.iter().position(|c| c.id == id) {
            let c = st.conns.remove(i);
            let _ = c.tx.send(how);
        }
    }

    fn register_conn(self: &Arc<Self>) -> (u64, mpsc::UnboundedReceiver<Outgoing>) {
        let mut st = self.lock();
        let (tx, rx) = mpsc::unbounded_channel();
        let id = st.next_conn;
        st.next_conn += 1;
        let live = st.live_conns();
        if live >= MAX_CONNECTIONS {
            let _ = tx.send(Outgoing::Text(self.disconnect_frame("too_many_websockets", live)));
            let _ = tx.send(Outgoing::Close);
            st.refused += 1;
            return (id, rx);
        }
        let hello = json!({
            "type": "hello",
            "num_connections": live + 1,
            "debug_info": {
                "host": self.ids.host,
                "build_number": 10,
                "approximate_connection_time": CONNECTION_TIME_SECS
            },
            "connection_info": {"app_id": self.ids.own.app_id},
        });
        let _ = tx.send(Outgoing::Text(hello.to_string()));
        st.conns.push(Conn { id, tx, muted: false });
        st.opened += 1;
        st.peak = st.peak.max(live + 1);
        let queued: Vec<u64> = st.queued.drain(..).collect();
        for key in queued {
            self.send_delivery(&mut st, key);
        }
        tracing::debug!(conn_id = id, live = live + 1, "socket mode connection opened");
        (id, rx)
    }

    fn unregister_conn(&self, id: u64) {
        let mut st = self.lock();
        st.conns.retain(|c| c.id != id);
        tracing::debug!(conn_id = id, "socket mode connection closed");
    }
}

// ---------------------------------------------------------------------------------------------
// Timers

type Job = Box<dyn FnOnce(&Arc<Inner>) + Send>;

enum TimerCmd {
    At(Instant, Job),
    Stop,
}

/// Runs scheduled jobs (ack deadlines, Assist replies) so that sync methods never need a runtime.
async fn run_timers(inner: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<TimerCmd>) {
    let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut jobs: HashMap<u64, Job> = HashMap::new();
    let mut seq = 0u64;
    loop {
        let next = heap.peek().map(|Reverse((t, _))| *t);
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(TimerCmd::At(at, job)) => {
                    heap.push(Reverse((at, seq)));
                    jobs.insert(seq, job);
                    seq += 1;
                }
                Some(TimerCmd::Stop) | None => return,
            },
            _ = sleep_until_opt(next) => {
                let now = Instant::now();
                while let Some(Reverse((at, id))) = heap.peek().copied() {
                    if at > now {
                        break;
                    }
                    heap.pop();
                    let Some(job) = jobs.remove(&id) else { continue };
                    let Some(inner) = inner.upgrade() else { return };
                    job(&inner);
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Socket Mode endpoint

async fn socket_link(req: HttpRequest, body: web::Payload, data: web::Data<Inner>) -> HttpResponse {
    let inner = data.into_inner();
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let ticket = query.iter().find(|(k, _)| k == "ticket").map(|(_, v)| v.clone());
    let known = ticket.as_ref().is_some_and(|t| inner.lock().tickets.contains(t));
    if !known {
        tracing::debug!("socket mode upgrade with unknown or used ticket refused");
        return HttpResponse::Unauthorized().content_type("text/plain").body("invalid ticket");
    }
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(e) => return HttpResponse::from_error(e),
    };
    if let Some(t) = &ticket {
        if !inner.lock().tickets.remove(t) {
            return HttpResponse::Unauthorized().content_type("text/plain").body("invalid ticket");
        }
    }
    let (conn_id, rx) = inner.register_conn();
    actix_rt::spawn(run_connection(inner, conn_id, session, stream, rx));
    response
}

async fn run_connection(
    inner: Arc<Inner>,
    conn_id: u64,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    use actix_ws::Message;
    let every = inner.opts.ping_interval.max(Duration::from_millis(1));
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ping_payload = format!("Ping from {}", inner.ids.host);
    loop {
        tokio::select! {
            msg = stream.recv() => match msg {
                Some(Ok(Message::Ping(bytes))) => {
                    let muted = {
                        let mut st = inner.lock();
                        st.client_pings += 1;
                        st.is_muted(conn_id)
                    };
                    if !muted && session.pong(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => inner.on_client_text(conn_id, &text),
                Some(Ok(Message::Binary(_))) => {
                    inner.lock().unknown_frames += 1;
                }
                Some(Ok(Message::Close(reason))) => {
                    let _ = session.close(reason).await;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if session.text(text).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) => {
                    let _ = session
                        .close(Some(actix_ws::CloseCode::Normal.into()))
                        .await;
                    break;
                }
                Some(Outgoing::Abort) | None => break,
            },
            _ = ping.tick() => {
                if inner.lock().is_muted(conn_id) {
                    continue;
                }
                if session.ping(ping_payload.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    inner.unregister_conn(conn_id);
}

// ---------------------------------------------------------------------------------------------
// Web API endpoint

const METHODS: &[&str] = &[
    "auth.test",
    "apps.connections.open",
    "conversations.list",
    "conversations.info",
    "conversations.history",
    "conversations.replies",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "reactions.add",
    "reactions.get",
    "assistant.threads.setStatus",
    "users.info",
    "users.list",
];

struct ParsedRequest {
    params: Map<String, Value>,
    content_type: Option<String>,
    header_token: Option<String>,
    /// `token` passed in the query or a form body (JSON bodies cannot carry it).
    param_token: Option<String>,
    bad_body: Option<&'static str>,
}

fn parse_request(req: &HttpRequest, body: &[u8]) -> ParsedRequest {
    let mut params = Map::new();
    let mut bad_body = None;
    let mut param_token = None;
    let mut add_pairs = |pairs: Vec<(String, String)>, params: &mut Map<String, Value>| {
        for (k, v) in pairs {
            if k == "token" {
                param_token = Some(v.clone());
            }
            params.insert(k, Value::String(v));
        }
    };
    if let Ok(q) = web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
        add_pairs(q.into_inner(), &mut params);
    }
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let ct = content_type.as_deref().unwrap_or("").to_ascii_lowercase();
    if !body.is_empty() {
        if ct.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => {
                    for (k, v) in o {
                        params.insert(k, v);
                    }
                }
                _ => bad_body = Some("invalid_json"),
            }
        } else {
            let text = String::from_utf8_lossy(body);
            match web::Query::<Vec<(String, String)>>::from_query(&text) {
                Ok(q) => add_pairs(q.into_inner(), &mut params),
                Err(_) => bad_body = Some("invalid_form_data"),
            }
        }
    }
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    ParsedRequest {
        params,
        content_type,
        header_token,
        param_token: param_token.filter(|t| !t.is_empty()),
        bad_body,
    }
}

fn json_response(status: StatusCode, body: &Value, scopes: Option<&str>) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.content_type("application/json; charset=utf-8");
    if let Some(scopes) = scopes {
        resp.insert_header(("x-oauth-scopes", scopes.to_string()));
    }
    resp.body(body.to_string())
}

fn slack_error(code: &str) -> Value {
    json!({"ok": false, "error": code})
}

async fn web_api(
    req: HttpRequest,
    method: web::Path<String>,
    body: web::Bytes,
    data: web::Data<Inner>,
) -> HttpResponse {
    let inner = data.into_inner();
    let method = method.into_inner();
    let parsed = parse_request(&req, &body);
    let token = parsed.header_token.as_deref().or(parsed.param_token.as_deref());
    let token_kind = token.map(|t| {
        if t == inner.ids.bot_token {
            "bot"
        } else if t == inner.ids.app_token {
            "app"
        } else {
            "unknown"
        }
    });
    let (fault, call_index) = {
        let mut st = inner.lock();
        let at_us = now_micros() + st.skew_micros;
        st.api_calls.push(ApiCall {
            method: method.clone(),
            http_method: req.method().to_string(),
            content_type: parsed.content_type.clone(),
            token_kind,
            params: parsed.params.clone(),
            at_us,
            rate_limited: false,
        });
        let index = st.api_calls.len() - 1;
        (st.faults.get_mut(&method).and_then(VecDeque::pop_front), index)
    };
    tracing::debug!(method = %method, http = %req.method(), "web api call");
    let late = match &fault {
        Some(Fault::RespondLate(d)) => Some(*d),
        _ => None,
    };
    match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            return HttpResponse::TooManyRequests()
                .content_type("application/json; charset=utf-8")
                .insert_header((header::RETRY_AFTER, retry_after_secs.to_string()))
                .body(slack_error("ratelimited").to_string());
        }
        Some(Fault::ServerError(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return HttpResponse::build(status)
                .content_type("text/html")
                .body(format!("<html><body><h1>{}</h1></body></html>", status));
        }
        Some(Fault::Error(code)) => return json_response(StatusCode::OK, &slack_error(&code), None),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::RespondLate(_)) | None => {}
    }

    if !METHODS.contains(&method.as_str()) {
        let body = json!({"ok": false, "error": "unknown_method", "req_method": method});
        return json_response(StatusCode::OK, &body, None);
    }
    let channel = parsed.params.get("channel").and_then(Value::as_str).map(str::to_string);
    let spent = {
        let mut st = inner.lock();
        let spent = st.spend(inner.opts.rate_limits, &method, channel.as_deref());
        if spent.is_err() {
            if let Some(call) = st.api_calls.get_mut(call_index) {
                call.rate_limited = true;
            }
        }
        spent
    };
    if let Err(retry_after_secs) = spent {
        tracing::debug!(method = %method, retry_after_secs, "web api call over its rate limit");
        return HttpResponse::TooManyRequests()
            .content_type("application/json; charset=utf-8")
            .insert_header((header::RETRY_AFTER, retry_after_secs.to_string()))
            .body(slack_error("ratelimited").to_string());
    }
    let is_json = parsed
        .content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
    if method == "apps.connections.open" {
        // The app-level token is only accepted in the Authorization header.
        let err = match parsed.header_token.as_deref() {
            None => Some("not_authed"),
            Some(t) if t == inner.ids.app_token => None,
            Some(_) => Some("invalid_auth"),
        };
        if let Some(e) = err {
            return json_response(StatusCode::OK, &slack_error(e), None);
        }
    } else {
        let tok = parsed.header_token.as_deref().or(parsed.param_token.as_deref().filter(|_| !is_json));
        let err = match tok {
            None => Some("not_authed"),
            Some(t) if t == inner.ids.bot_token => None,
            Some(_) => Some("invalid_auth"),
        };
        if let Some(e) = err {
            return json_response(StatusCode::OK, &slack_error(e), None);
        }
    }
    let scopes = (method != "apps.connections.open").then_some(inner.opts.scopes.as_str());
    if let Some(e) = parsed.bad_body {
        return json_response(StatusCode::OK, &slack_error(e), scopes);
    }
    let body = inner.call(&method, &parsed.params);
    if let Some(d) = late {
        tokio::time::sleep(d).await;
    }
    json_response(StatusCode::OK, &body, scopes)
}

// -- parameter helpers --------------------------------------------------------------------------

fn p_str(p: &Map<String, Value>, k: &str) -> Option<String> {
    match p.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn p_bool(p: &Map<String, Value>, k: &str) -> bool {
    match p.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1"),
        _ => false,
    }
}

/// A JSON parameter: a JSON string in query/form bodies, an array/object in JSON bodies.
fn p_json(p: &Map<String, Value>, k: &str) -> Option<Result<Value, ()>> {
    match p.get(k)? {
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(serde_json::from_str(s).map_err(|_| ())),
        Value::Null => None,
        v => Some(Ok(v.clone())),
    }
}

fn p_limit(p: &Map<String, Value>, default: usize, max: usize) -> usize {
    p_str(p, "limit").and_then(|s| s.parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(default).min(max)
}

impl Inner {
    fn call(self: &Arc<Self>, method: &str, p: &Map<String, Value>) -> Value {
        match method {
            "auth.test" => json!({
                "ok": true,
                "url": format!("https://{}.slack.com/", self.ids.team_domain),
                "team": self.ids.team_name,
                "user": self.ids.own.name,
                "team_id": self.ids.team_id,
                "user_id": self.ids.own.user_id,
                "bot_id": self.ids.own.bot_id,
                "is_enterprise_install": false,
            }),
            "apps.connections.open" => {
                let ticket = uuid();
                self.lock().tickets.insert(ticket.clone());
                json!({
                    "ok": true,
                    "url": format!(
                        "ws://127.0.0.1:{}/link/?ticket={}&app_id={}",
                        self.port, ticket, self.ids.own.app_id
                    ),
                })
            }
            "conversations.list" => self.conversations_list(p),
            "conversations.info" => match p_str(p, "channel").and_then(|c| self.ids.channel(&c)) {
                Some(c) => json!({"ok": true, "channel": self.channel_json(c)}),
                None => slack_error("channel_not_found"),
            },
            "conversations.history" => self.conversations_history(p),
            "conversations.replies" => self.conversations_replies(p),
            "chat.postMessage" => self.chat_post_message(p),
            "chat.update" => self.chat_update(p),
            "chat.postEphemeral" => self.chat_post_ephemeral(p),
            "chat.startStream" => self.chat_start_stream(p),
            "chat.appendStream" => self.chat_append_stream(p),
            "chat.stopStream" => self.chat_stop_stream(p),
            "reactions.add" => {
                let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
                    return slack_error("channel_not_found");
                };
                let (Some(ts), Some(name)) = (p_str(p, "timestamp"), p_str(p, "name")) else {
                    return slack_error(if p_str(p, "name").is_none() {
                        "invalid_name"
                    } else {
                        "no_item_specified"
                    });
                };
                let mut st = self.lock();
                let name = name.trim_matches(':').to_string();
                match self.add_reaction(&mut st, &self.ids.own.user_id, &c.id, &ts, &name) {
                    Ok(()) => json!({"ok": true}),
                    Err(e) => slack_error(e),
                }
            }
            "reactions.get" => {
                let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
                    return slack_error("channel_not_found");
                };
                let ts = p_str(p, "timestamp").unwrap_or_default();
                let st = self.lock();
                match st.find(&c.id, &ts) {
                    Some(i) => json!({
                        "ok": true,
                        "type": "message",
                        "channel": c.id,
                        "message": self.message_json(&st, &st.messages[i], View::Api(false)),
                    }),
                    None => slack_error("message_not_found"),
                }
            }
            "assistant.threads.setStatus" => {
                if p_str(p, "channel_id").is_none() || p_str(p, "thread_ts").is_none() {
                    return slack_error("invalid_arguments");
                }
                json!({"ok": true})
            }
            "users.list" => self.users_list(p),
            "users.info" => {
                let id = p_str(p, "user").unwrap_or_default();
                let st = self.lock();
                match st.users.iter().find(|u| u.id == id) {
                    Some(u) => json!({"ok": true, "user": self.user_json(u)}),
                    None => slack_error("user_not_found"),
                }
            }
            _ => json!({"ok": false, "error": "unknown_method", "req_method": method}),
        }
    }

    fn channel_json(&self, c: &ChannelDef) -> Value {
        let is_member = c.name != "it" || self.opts.bot_in_channel;
        json!({
            "id": c.id,
            "name": c.name,
            "is_channel": true,
            "is_group": false,
            "is_im": false,
            "is_mpim": false,
            "is_private": false,
            "created": c.created,
            "is_archived": false,
            "is_general": c.name == "general",
            "unlinked": 0,
            "name_normalized": c.name,
            "is_shared": false,
            "is_org_shared": false,
            "is_ext_shared": false,
            "is_pending_ext_shared": false,
            "pending_shared": [],
            "pending_connected_team_ids": [],
            "context_team_id": self.ids.team_id,
            "shared_team_ids": [self.ids.team_id],
            "updated": c.created * 1000,
            "parent_conversation": null,
            "creator": self.ids.own.user_id,
            "is_member": is_member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": c.purpose, "creator": "", "last_set": 0},
            "previous_names": [],
            "num_members": 12,
        })
    }

    fn user_json(&self, u: &User) -> Value {
        let mut profile = json!({
            "real_name": u.real_name,
            "real_name_normalized": u.real_name,
            "display_name": u.name,
            "display_name_normalized": u.name,
            "status_text": "",
            "status_emoji": "",
            "avatar_hash": "g0a1b2c3d4e5",
            "team": self.ids.team_id,
        });
        if let (Some(b), Some(a)) = (&u.bot_id, &u.app_id) {
            profile["bot_id"] = json!(b);
            profile["api_app_id"] = json!(a);
            profile["always_active"] = json!(true);
        }
        json!({
            "id": u.id,
            "team_id": self.ids.team_id,
            "name": u.name.to_ascii_lowercase().replace(' ', "_"),
            "deleted": false,
            "color": "9f69e7",
            "real_name": u.real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": false,
            "is_owner": false,
            "is_primary_owner": false,
            "is_restricted": false,
            "is_ultra_restricted": false,
            "is_bot": u.bot_id.is_some(),
            "is_app_user": false,
            "updated": PROFILE_UPDATED,
        })
    }

    /// `users.list`: every member (humans, bots and Slackbot), a page at a time with Slack's
    /// cursor (`limit` up to 1000; Slack advises 200 or fewer).
    fn users_list(&self, p: &Map<String, Value>) -> Value {
        let start = match p_str(p, "cursor") {
            None => 0,
            Some(c) => match decode_cursor(&c, "user_idx:").and_then(|s| s.parse::<usize>().ok()) {
                Some(i) => i,
                None => return slack_error("invalid_cursor"),
            },
        };
        let limit = p_limit(p, 200, 1000);
        let st = self.lock();
        let slackbot = json!({
            "id": "USLACKBOT",
            "team_id": self.ids.team_id,
            "name": "slackbot",
            "deleted": false,
            "real_name": "Slackbot",
            "profile": {"real_name": "Slackbot", "display_name": "Slackbot", "team": self.ids.team_id},
            "is_bot": false,
            "is_app_user": false,
            "updated": 0,
        });
        let all: Vec<Value> =
            std::iter::once(slackbot).chain(st.users.iter().map(|u| self.user_json(u))).collect();
        let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
        let next = start + page.len();
        let next_cursor =
            if next < all.len() { encode_cursor(&format!("user_idx:{next}")) } else { String::new() };
        json!({
            "ok": true,
            "members": page,
            "cache_ts": PROFILE_UPDATED,
            "response_metadata": {"next_cursor": next_cursor},
        })
    }

    fn conversations_list(&self, p: &Map<String, Value>) -> Value {
        let types = p_str(p, "types").unwrap_or_else(|| "public_channel".into());
        let public = types.split(',').any(|t| t.trim() == "public_channel");
        let all: Vec<&ChannelDef> = if public { self.ids.channels.iter().collect() } else { Vec::new() };
        let start = match p_str(p, "cursor") {
            None => 0,
            Some(c) => match decode_cursor(&c, "next_id:").and_then(|s| s.parse::<usize>().ok()) {
                Some(i) => i,
                None => return slack_error("invalid_cursor"),
            },
        };
        let limit = p_limit(p, 100, 1000);
        let page: Vec<Value> = all.iter().skip(start).take(limit).map(|c| self.channel_json(c)).collect();
        let next = start + page.len();
        let next_cursor =
            if next < all.len() { encode_cursor(&format!("next_id:{next}")) } else { String::new() };
        json!({"ok": true, "channels": page, "response_metadata": {"next_cursor": next_cursor}})
    }

    fn conversations_history(&self, p: &Map<String, Value>) -> Value {
        let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
            return slack_error("channel_not_found");
        };
        let (oldest, latest) = match ts_range(p) {
            Ok(r) => r,
            Err(e) => return slack_error(e),
        };
        let cursor = match p_str(p, "cursor") {
            None => None,
            Some(s) => match decode_cursor(&s, "next_ts:").and_then(|t| parse_ts(&t)) {
                Some(t) => Some(t),
                None => return slack_error("invalid_cursor"),
            },
        };
        let limit = p_limit(p, 100, 999);
        let metadata = p_bool(p, "include_all_metadata");
        let st = self.lock();
        let mut top: Vec<&Msg> = st
            .messages
            .iter()
            .filter(|m| m.channel == c.id && (!m.is_reply() || m.subtype == Some("thread_broadcast")))
            .filter(|m| in_range(&m.ts, oldest, latest))
            .filter(|m| cursor.is_none_or(|cur| parse_ts(&m.ts).is_some_and(|t| t <= cur)))
            .collect();
        top.reverse();
        let has_more = top.len() > limit;
        let next_cursor =
            top.get(limit).map(|m| encode_cursor(&format!("next_ts:{}", m.ts))).unwrap_or_default();
        let messages: Vec<Value> =
            top.iter().take(limit).map(|m| self.message_json(&st, m, View::Api(metadata))).collect();
        json!({
            "ok": true,
            "messages": messages,
            "has_more": has_more,
            "pin_count": 0,
            "channel_actions_ts": null,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        })
    }

    fn conversations_replies(&self, p: &Map<String, Value>) -> Value {
        let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
            return slack_error("channel_not_found");
        };
        let Some(ts) = p_str(p, "ts") else {
            return slack_error("thread_not_found");
        };
        let (oldest, latest) = match ts_range(p) {
            Ok(r) => r,
            Err(e) => return slack_error(e),
        };
        let cursor = match p_str(p, "cursor") {
            None => None,
            Some(s) => match decode_cursor(&s, "next_ts:").and_then(|t| parse_ts(&t)) {
                Some(t) => Some(t),
                None => return slack_error("invalid_cursor"),
            },
        };
        let limit = p_limit(p, 1000, 1000);
        let metadata = p_bool(p, "include_all_metadata");
        let st = self.lock();
        let Some(i) = st.find(&c.id, &ts) else {
            return slack_error("thread_not_found");
        };
        // Like Slack: the ts of a reply (not its parent) gets that one message back, not its
        // thread (REFERENCE §3.4; slackapi/bolt-python#783). It carries `thread_ts`.
        if st.messages[i].thread_ts.as_ref().is_some_and(|t| *t != ts) {
            let only = self.message_json(&st, &st.messages[i], View::Api(metadata));
            return json!({
                "ok": true,
                "messages": [only],
                "has_more": false,
                "response_metadata": {"next_cursor": ""},
            });
        }
        let root_ts = ts;
        let Some(root) = st.find(&c.id, &root_ts).map(|i| &st.messages[i]) else {
            return slack_error("thread_not_found");
        };
        let replies: Vec<&Msg> = st
            .replies_of(&c.id, &root_ts)
            .into_iter()
            .filter(|m| in_range(&m.ts, oldest, latest))
            .filter(|m| cursor.is_none_or(|cur| parse_ts(&m.ts).is_some_and(|t| t >= cur)))
            .collect();
        // The parent comes first on every page; `limit` counts it.
        let take = limit.saturating_sub(1).max(1);
        let has_more = replies.len() > take;
        let next_cursor =
            replies.get(take).map(|m| encode_cursor(&format!("next_ts:{}", m.ts))).unwrap_or_default();
        let mut messages = vec![self.message_json(&st, root, View::Api(metadata))];
        messages.extend(replies.iter().take(take).map(|m| self.message_json(&st, m, View::Api(metadata))));
        json!({
            "ok": true,
            "messages": messages,
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        })
    }

    /// Validates `text`/`blocks`; returns `(text, blocks)` or an error code.
    /// `metadata` as chat.postMessage and chat.update take it: `event_type` and an object
    /// `event_payload`.
    fn metadata(p: &Map<String, Value>) -> Result<Option<Value>, &'static str> {
        match p_json(p, "metadata") {
            None => Ok(None),
            Some(Ok(m))
                if m.get("event_type").and_then(Value::as_str).is_some()
                    && m.get("event_payload").is_some_and(Value::is_object) =>
            {
                Ok(Some(m))
            }
            Some(_) => Err("invalid_metadata_format"),
        }
    }

    fn content(p: &Map<String, Value>) -> Result<(String, Option<Value>), &'static str> {
        let text = p_str(p, "text").unwrap_or_default();
        let blocks = match p_json(p, "blocks") {
            None => None,
            Some(Ok(Value::Array(b))) if b.is_empty() => None,
            Some(Ok(Value::Array(b))) if b.iter().all(|x| x.get("type").is_some()) => Some(Value::Array(b)),
            Some(_) => return Err("invalid_blocks"),
        };
        if text.is_empty() && blocks.is_none() {
            return Err("no_text");
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err("msg_too_long");
        }
        Ok((text, blocks))
    }

    fn chat_post_message(self: &Arc<Self>, p: &Map<String, Value>) -> Value {
        let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
            return slack_error("channel_not_found");
        };
        if c.name == "it" && !self.opts.bot_in_channel {
            return slack_error("not_in_channel");
        }
        let (text, blocks) = match Self::content(p) {
            Ok(x) => x,
            Err(e) => return slack_error(e),
        };
        let metadata = match Self::metadata(p) {
            Ok(m) => m,
            Err(e) => return slack_error(e),
        };
        let mut st = self.lock();
        let new = NewMsg {
            channel: c.id.clone(),
            thread_ts: p_str(p, "thread_ts"),
            author: Author::App(AppKind::Own),
            text,
            blocks,
            metadata,
            broadcast: p_bool(p, "reply_broadcast"),
            announce: true,
        };
        let ts = self.store_and_emit(&mut st, new);
        let message = st
            .find(&c.id, &ts)
            .map(|i| self.message_json(&st, &st.messages[i], View::Api(true)))
            .unwrap_or(Value::Null);
        json!({"ok": true, "channel": c.id, "ts": ts, "message": message})
    }

    fn chat_update(self: &Arc<Self>, p: &Map<String, Value>) -> Value {
        let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
            return slack_error("channel_not_found");
        };
        let ts = p_str(p, "ts").unwrap_or_default();
        let (text, blocks) = match Self::content(p) {
            Ok(x) => x,
            Err(e) => return slack_error(e),
        };
        let metadata = match Self::metadata(p) {
            Ok(m) => m,
            Err(e) => return slack_error(e),
        };
        let mut st = self.lock();
        let Some(i) = st.find(&c.id, &ts) else {
            return slack_error("message_not_found");
        };
        if st.messages[i].app != Some(AppKind::Own) {
            return slack_error("cant_update_message");
        }
        // Without `metadata` the message keeps what it had.
        if metadata.is_some() {
            st.messages[i].metadata = metadata;
        }
        let text_opt = (!text.is_empty()).then_some(text.as_str());
        let bot_user = self.ids.own.user_id.clone();
        match self.update_message(&mut st, &c.id, &ts, &bot_user, text_opt, blocks) {
            Some(message) => json!({
                "ok": true,
                "channel": c.id,
                "ts": ts,
                "text": message.get("text").cloned().unwrap_or(Value::Null),
                "message": message,
            }),
            None => slack_error("message_not_found"),
        }
    }

    fn chat_post_ephemeral(&self, p: &Map<String, Value>) -> Value {
        let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
            return slack_error("channel_not_found");
        };
        let (text, blocks) = match Self::content(p) {
            Ok(x) => x,
            Err(e) => return slack_error(e),
        };
        let mut st = self.lock();
        let user = p_str(p, "user").unwrap_or_default();
        if !st.users.iter().any(|u| u.id == user && u.bot_id.is_none()) {
            return slack_error("user_not_in_channel");
        }
        let ts = st.next_ts();
        let _ = self.posted_tx.send(Posted {
            channel: c.id.clone(),
            ts: ts.clone(),
            thread_ts: p_str(p, "thread_ts"),
            user: Some(self.ids.own.user_id.clone()),
            bot_id: Some(self.ids.own.bot_id.clone()),
            text,
            blocks,
            metadata: None,
            ephemeral_to: Some(user),
            reactions: Vec::new(),
        });
        json!({"ok": true, "message_ts": ts})
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming messages (`chat.startStream` / `chat.appendStream` / `chat.stopStream`)

impl Inner {
    /// Starts a streamed reply: a bot message that grows with each append and is finalised by
    /// stop. Channel streams need `recipient_user_id` and `recipient_team_id`.
    fn chat_start_stream(self: &Arc<Self>, p: &Map<String, Value>) -> Value {
        if !self.opts.streaming {
            return slack_error("feature_not_enabled");
        }
        let Some(c) = p_str(p, "channel").and_then(|c| self.ids.channel(&c)) else {
            return slack_error("channel_not_found");
        };
        if c.name == "it" && !self.opts.bot_in_channel {
            return slack_error("not_in_channel");
        }
        let Some(recipient) = p_str(p, "recipient_user_id") else {
            return slack_error("missing_recipient_user_id");
        };
        let Some(team) = p_str(p, "recipient_team_id") else {
            return slack_error("missing_recipient_team_id");
        };
        if team != self.ids.team_id {
            return slack_error("team_not_found");
        }
        let text = match Self::markdown(p) {
            Ok(t) => t,
            Err(e) => return slack_error(e),
        };
        let mut st = self.lock();
        if !st.users.iter().any(|u| u.id == recipient) {
            return slack_error("user_not_found");
        }
        if let Some(t) = p_str(p, "thread_ts") {
            if st.find(&c.id, &t).is_none() {
                return slack_error("thread_not_found");
            }
        }
        let new = NewMsg {
            channel: c.id.clone(),
            thread_ts: p_str(p, "thread_ts"),
            author: Author::App(AppKind::Own),
            text: text.unwrap_or_default(),
            blocks: None,
            metadata: None,
            broadcast: false,
            announce: false,
        };
        let ts = self.store_and_emit(&mut st, new);
        st.streams.insert(ts.clone(), (Instant::now(), true));
        tracing::debug!(ts = %ts, "stream started");
        json!({"ok": true, "channel": c.id, "ts": ts})
    }

    fn chat_append_stream(self: &Arc<Self>, p: &Map<String, Value>) -> Value {
        let text = match Self::markdown(p) {
            Ok(Some(t)) => t,
            Ok(None) => return slack_error("no_text"),
            Err(e) => return slack_error(e),
        };
        let mut st = self.lock();
        let (channel, i) = match self.open_stream(&mut st, p) {
            Ok(x) => x,
            Err(e) => return slack_error(e),
        };
        let ts = st.messages[i].ts.clone();
        st.messages[i].text.push_str(&text);
        json!({"ok": true, "channel": channel, "ts": ts})
    }

    /// Ends a stream: the last text is appended, `blocks` go under the message and `metadata`
    /// is attached; a `message_changed` event carries the final message.
    fn chat_stop_stream(self: &Arc<Self>, p: &Map<String, Value>) -> Value {
        let text = match Self::markdown(p) {
            Ok(t) => t,
            Err(e) => return slack_error(e),
        };
        let blocks = match p_json(p, "blocks") {
            None => None,
            Some(Ok(Value::Array(b))) if b.iter().all(|x| x.get("type").is_some()) => Some(Value::Array(b)),
            Some(_) => return slack_error("invalid_blocks"),
        };
        let metadata = match p_json(p, "metadata") {
            None => None,
            Some(Ok(m))
                if m.get("event_type").and_then(Value::as_str).is_some()
                    && m.get("event_payload").is_some_and(Value::is_object) =>
            {
                Some(m)
            }
            Some(_) => return slack_error("invalid_metadata_format"),
        };
        let mut st = self.lock();
        let (channel, i) = match self.open_stream(&mut st, p) {
            Ok(x) => x,
            Err(e) => return slack_error(e),
        };
        let ts = st.messages[i].ts.clone();
        if let Some(stream) = st.streams.get_mut(&ts) {
            stream.1 = false;
        }
        let previous = self.message_json(&st, &st.messages[i], View::Api(false));
        {
            let m = &mut st.messages[i];
            if let Some(t) = text {
                m.text.push_str(&t);
            }
            if blocks.is_some() {
                m.blocks = blocks;
            }
            if metadata.is_some() {
                m.metadata = metadata;
            }
        }
        let m = st.messages[i].clone();
        let _ = self.posted_tx.send(m.posted());
        let event_ts = st.next_ts();
        let event = json!({
            "type": "message",
            "subtype": "message_changed",
            "message": self.message_json(&st, &m, View::Api(false)),
            "previous_message": previous,
            "channel": channel,
            "hidden": true,
            "ts": event_ts,
            "event_ts": event_ts,
            "channel_type": "channel",
        });
        self.dispatch_event(&mut st, event, "message", &channel, &event_ts);
        let message = self.message_json(&st, &m, View::Api(true));
        json!({"ok": true, "channel": channel, "ts": ts, "message": message})
    }

    /// `markdown_text` if given (`None` when absent), checked against the per-call limit.
    fn markdown(p: &Map<String, Value>) -> Result<Option<String>, &'static str> {
        if p.get("markdown_text").is_some() && p.get("chunks").is_some() {
            return Err("cannot_provide_both_markdown_text_and_chunks");
        }
        let text = p_str(p, "markdown_text");
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_MARKDOWN_CHARS) {
            return Err("msg_too_long");
        }
        Ok(text)
    }

    /// The stream named by `channel` + `ts`: its channel id and message index, if it is the
    /// app's own message and still streaming.
    fn open_stream(&self, st: &mut State, p: &Map<String, Value>) -> Result<(String, usize), &'static str> {
        let c = p_str(p, "channel").and_then(|c| self.ids.channel(&c)).ok_or("channel_not_found")?;
        let ts = p_str(p, "ts").ok_or("message_not_found")?;
        let i = st.find(&c.id, &ts).ok_or("message_not_found")?;
        if st.messages[i].app != Some(AppKind::Own) {
            return Err("message_not_owned_by_app");
        }
        match st.streams.get(&ts) {
            Some((started, true)) if started.elapsed() < STREAM_LIFETIME => Ok((c.id.clone(), i)),
            _ => Err("message_not_in_streaming_state"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

fn now_secs() -> u64 {
    (now_micros() / 1_000_000) as u64
}

/// Parses a Slack ts (`"1610241741.000200"`, `"1610241741"`) into microseconds.
fn parse_ts(s: &str) -> Option<u128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: u128 = format!("{frac:0<6}").parse().ok()?;
    Some(secs.parse::<u128>().ok()? * 1_000_000 + micros)
}

/// `oldest`/`latest` bounds (inclusive flag applied); errors are Slack codes.
fn ts_range(p: &Map<String, Value>) -> Result<(Option<u128>, Option<u128>), &'static str> {
    let inclusive = p_bool(p, "inclusive");
    let oldest = match p_str(p, "oldest") {
        None => None,
        Some(s) => Some(parse_ts(&s).ok_or("invalid_ts_oldest")?),
    };
    let latest = match p_str(p, "latest") {
        None => None,
        Some(s) => Some(parse_ts(&s).ok_or("invalid_ts_latest")?),
    };
    // Exclusive bounds are turned into inclusive ones one microsecond inside.
    let oldest = oldest.map(|o| if inclusive { o } else { o + 1 });
    let latest = latest.map(|l| if inclusive { l } else { l.saturating_sub(1) });
    Ok((oldest, latest))
}

fn in_range(ts: &str, oldest: Option<u128>, latest: Option<u128>) -> bool {
    let Some(t) = parse_ts(ts) else {
        return false;
    };
    oldest.is_none_or(|o| t >= o) && latest.is_none_or(|l| t <= l)
}

const ALNUM_UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM_MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn pick(set: &[u8], n: usize) -> String {
    (0..n).map(|_| char::from(set[fastrand::usize(..set.len())])).collect()
}

fn alnum_upper(n: usize) -> String {
    pick(ALNUM_UPPER, n)
}

fn alnum_lower(n: usize) -> String {
    pick(ALNUM_LOWER, n)
}

fn alnum_mixed(n: usize) -> String {
    pick(ALNUM_MIXED, n)
}

fn hex(n: usize) -> String {
    pick(b"0123456789abcdef", n)
}

/// A random version-4 UUID in its usual text form.
fn uuid() -> String {
    let variant = ["8", "9", "a", "b"][fastrand::usize(..4)];
    format!("{}-{}-4{}-{}{}-{}", hex(8), hex(4), hex(3), variant, hex(3), hex(12))
}

/// The `rich_text` block Slack's client attaches to a human message.
fn rich_text_blocks(text: &str) -> Value {
    let mut elements: Vec<Value> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let inner = &rest[start + 1..start + len];
        let element = if let Some(id) = inner.strip_prefix('@') {
            let id = id.split('|').next().unwrap_or(id);
            Some(json!({"type": "user", "user_id": id}))
        } else if let Some(range) = inner.strip_prefix('!') {
            let range = range.split('|').next().unwrap_or(range);
            Some(json!({"type": "broadcast", "range": range}))
        } else if inner.starts_with("http://")
            || inner.starts_with("https://")
            || inner.starts_with("mailto:")
        {
            let (url, label) = inner.split_once('|').unwrap_or((inner, ""));
            let mut link = json!({"type": "link", "url": url});
            if !label.is_empty() {
                link["text"] = json!(label);
            }
            Some(link)
        } else {
            None
        };
        match element {
            Some(el) => {
                if start > 0 {
                    elements.push(json!({"type": "text", "text": &rest[..start]}));
                }
                elements.push(el);
                rest = &rest[start + len + 1..];
            }
            None => {
                elements.push(json!({"type": "text", "text": &rest[..start + len + 1]}));
                rest = &rest[start + len + 1..];
            }
        }
    }
    if !rest.is_empty() {
        elements.push(json!({"type": "text", "text": rest}));
    }
    json!([{
        "type": "rich_text",
        "block_id": alnum_mixed(5),
        "elements": [{"type": "rich_text_section", "elements": elements}]
    }])
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Slack cursors are base64 of e.g. `next_ts:1512085861000543`.
fn encode_cursor(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_cursor(cursor: &str, prefix: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in cursor.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    s.strip_prefix(prefix).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_base64() {
        for raw in ["next_ts:1512085861.000543", "next_id:1", "ab", "abc", "abcd"] {
            let enc = encode_cursor(&format!("p:{raw}"));
            assert_eq!(decode_cursor(&enc, "p:").as_deref(), Some(raw));
        }
        assert_eq!(encode_cursor("next_id:1"), "bmV4dF9pZDox");
    }

    #[test]
    fn timestamps_parse_to_microseconds() {
        assert_eq!(parse_ts("1610241741.000200"), Some(1_610_241_741_000_200));
        assert_eq!(parse_ts("1610241741"), Some(1_610_241_741_000_000));
        assert_eq!(parse_ts("1.5"), Some(1_500_000));
        assert_eq!(parse_ts("x.1"), None);
    }

    #[test]
    fn rich_text_blocks_split_mentions_and_links() {
        let b = rich_text_blocks("hi <@U123> see <https://x.y|docs> ok");
        let els = &b[0]["elements"][0]["elements"];
        assert_eq!(els[0], json!({"type": "text", "text": "hi "}));
        assert_eq!(els[1], json!({"type": "user", "user_id": "U123"}));
        assert_eq!(els[3]["url"], "https://x.y");
        assert_eq!(els[4], json!({"type": "text", "text": " ok"}));
    }
}
