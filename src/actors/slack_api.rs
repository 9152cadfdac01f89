//! SlackApiActor: every Web API call goes through here. It owns the tokens and the client, paces
//! calls by Slack's rate-limit tiers, waits out HTTP 429 `Retry-After`, retries server and network
//! errors with backoff, and turns `ok:false` into typed errors. It is the transport of
//! [`SlackApi`] (the typed methods, in `slack::client`), which other actors use.
//!
//! Calls wait in *lanes*: one per method, and for `chat.postMessage` one per channel (Slack allows
//! about one post per second per channel). Each lane has its own `governor` limiter, its own 429
//! pause and its own bounded queue, so a rate-limited method never delays another one.
//! Within a lane the oldest waiting employee goes first; background work (the startup backfill, a
//! report's reading) starts only when no one waits, and takes at most half of the lane's rate. A
//! call that cannot be queued, or waits longer than its deadline, is dropped loudly: a log line
//! with its ids, the `dropped_calls` counter, and a [`SlackError::Dropped`] to the caller.
//!
//! A thread reply that may have reached Slack although the answer was lost (timeout, 5xx) is
//! looked up in the thread (by the `post_id` in its metadata) before it is sent again, so a slow
//! Slack does not make the bot answer twice.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;
use tokio::sync::oneshot;

use crate::coord::{Coord, Slot};
use crate::http::{Health, TransportStats};
use crate::slack::api::ApiResponse;
use crate::slack::client::{Call, POST_CHECK_PAGES};
use crate::slack::{SlackError, WebClient};

// The handle and its types moved to `slack::client`; callers may still name them from here.
pub use crate::slack::client::{HistoryPage, HistoryQuery, Identity, SlackApi, TokenKind};

/// From now on, share Slack's budgets with the other replicas through Redis.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ShareBudgets(pub Coord);

/// How many calls wait and run, for tests and operators.
#[derive(Message)]
#[rtype(result = "Backlog")]
pub struct GetBacklog;

/// Calls queued in lanes, and calls on the wire or waiting to retry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, MessageResponse)]
pub struct Backlog {
    pub queued: usize,
    pub active: usize,
}

/// Limits of the Web API transport. The defaults are for production; tests shrink the waits.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// One HTTP attempt may take this long.
    pub request_timeout: Duration,
    /// Slack's rates are multiplied by this: 1 in production, more in tests that run hundreds of
    /// tickets through one channel.
    pub pace_factor: u32,
    /// Calls waiting in one lane at most; beyond it new calls are dropped.
    pub max_queued: usize,
    /// Longest a call may take, queueing and retries included.
    pub max_wait: Duration,
    /// Longest a cosmetic call (status indicator, reaction marker) may wait: late, it would show
    /// a stale status.
    pub max_wait_cosmetic: Duration,
    /// Attempts per call after 5xx and network errors (429s do not count: Slack said when).
    pub max_attempts: u32,
    /// A `Retry-After` longer than this is not waited out.
    pub max_retry_after: Duration,
}

impl ApiOptions {
    /// How long a [`SlackApi`] waits for this transport before it gives a call up: the longest
    /// wait, plus every attempt of the call and its look for an earlier post.
    pub fn call_timeout(&self) -> Duration {
        self.max_wait + self.request_timeout * (POST_CHECK_PAGES as u32 + 2)
    }
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            request_timeout: Duration::from_secs(30),
            pace_factor: 1,
            max_queued: 1000,
            max_wait: Duration::from_secs(300),
            max_wait_cosmetic: Duration::from_secs(15),
            max_attempts: 4,
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Slack's rate-limit tiers (REFERENCE §3.5), "per API method per workspace per app".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// 1+ per minute.
    One,
    /// 20+ per minute.
    Two,
    /// 50+ per minute.
    Three,
    /// 100+ per minute.
    Four,
    /// `chat.postMessage`: about one per second per channel, short bursts allowed.
    PostMessage,
    /// `apps.connections.open`: Tier 1 on paper, but every refresh and reconnect needs one and
    /// no official SDK paces it: a few at once, then one per 10 s. 429s are honoured as usual.
    Connections,
    /// Methods documented as "special" with a generous limit (`auth.test`, status indicator).
    Special,
}

impl Tier {
    pub fn of(method: &str) -> Tier {
        match method {
            "apps.connections.open" => Tier::Connections,
            "chat.postMessage" => Tier::PostMessage,
            "auth.test" => Tier::Special,
            "conversations.list" | "users.list" | "chat.startStream" | "chat.stopStream" => Tier::Two,
            "users.info" | "chat.postEphemeral" | "chat.appendStream" => Tier::Four,
            // chat.update, conversations.history/replies/info, reactions.*, and anything unknown.
            _ => Tier::Three,
        }
    }

    /// Sustained calls per minute, and how many may go at once after a quiet spell.
    pub fn rate(self) -> (u32, u32) {
        match self {
            Tier::One => (1, 2),
            Tier::Two => (20, 4),
            Tier::Three => (50, 8),
            Tier::Four => (100, 16),
            Tier::PostMessage => (60, 3),
            Tier::Connections => (6, 4),
            Tier::Special => (600, 20),
        }
    }

    /// The governor quota for this tier, `factor` times faster.
    pub fn quota(self, factor: u32) -> Quota {
        let (per_minute, burst) = self.rate();
        let per_minute = u64::from(per_minute) * u64::from(factor.max(1));
        let period = Duration::from_nanos((60_000_000_000 / per_minute).max(1));
        // One call short of Slack's burst: calls paced exactly to it can reach Slack bunched
        // up (a slow request, then a fast one) and draw a 429.
        let burst = NonZeroU32::new(burst.saturating_sub(1)).unwrap_or(NonZeroU32::MIN);
        // `period` is at least 1 ns, so a quota exists; the fallback only satisfies the type.
        Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst)
    }

    /// The share of this tier that background work may take: half the rate, no burst.
    pub fn background_quota(self, factor: u32) -> Quota {
        let (per_minute, _) = self.rate();
        let per_minute = (u64::from(per_minute) * u64::from(factor.max(1)) / 2).max(1);
        let period = Duration::from_nanos((60_000_000_000 / per_minute).max(1));
        Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
    }
}

/// A lane: one method, or `chat.postMessage` in one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LaneKey {
    method: &'static str,
    channel: Option<String>,
}

impl LaneKey {
    fn of(call: &Call) -> LaneKey {
        let channel = (Tier::of(call.method) == Tier::PostMessage)
            .then(|| call.channel.as_ref().map(|c| c.as_str().to_string()))
            .flatten();
        LaneKey { method: call.method, channel }
    }
}

impl LaneKey {
    /// The lane's name in the budget replicas share.
    fn shared_name(&self) -> String {
        match &self.channel {
            Some(c) => format!("{}:{c}", self.method),
            None => self.method.to_string(),
        }
    }
}

struct Lane {
    limiter: DefaultDirectRateLimiter,
    /// Background calls also pass this one: half the lane's rate, one at a time, so work no one
    /// waits for leaves room for what someone does.
    background: DefaultDirectRateLimiter,
    /// Set by a 429: nothing in this lane starts before then.
    paused_until: Option<Instant>,
    queue: VecDeque<Pending>,
    /// The timer that will pump this lane, and when it fires.
    wake: Option<(Instant, SpawnHandle)>,
    /// Calls on the wire or waiting out a backoff; a lane is forgotten only when idle.
    active: usize,
    last_used: Instant,
}

/// A call waiting for its turn (or its next attempt).
struct Pending {
    /// For logs: which call this is.
    id: u64,
    call: Call,
    /// Attempts made after 5xx/network errors.
    attempts: u32,
    deadline: Instant,
    enqueued: Instant,
    /// Who is served first: the Slack time of the employee's message the call answers, or the
    /// time it was asked for.
    order: f64,
    /// An earlier attempt may have posted the message: look before posting again.
    verify: bool,
    reply: oneshot::Sender<Result<ApiResponse, SlackError>>,
}

/// Unix seconds now, in Slack's time (a message ts).
fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Lanes unused for this long are forgotten (per-channel lanes would otherwise pile up).
const LANE_IDLE: Duration = Duration::from_secs(600);

pub struct SlackApiActor {
    client: WebClient,
    bot_token: SecretString,
    app_token: SecretString,
    options: ApiOptions,
    /// Counters for operators, and where an unusable bot token ends the process.
    health: Arc<Health>,
    lanes: HashMap<LaneKey, Lane>,
    next_id: u64,
    /// With `REDIS_URL`: the budget every replica shares (each lane's own limiter still keeps
    /// this process within Slack's limit when Redis is down).
    coord: Option<Coord>,
}

impl SlackApiActor {
    pub fn new(
        client: WebClient,
        bot_token: SecretString,
        app_token: SecretString,
        options: ApiOptions,
        health: Arc<Health>,
    ) -> SlackApiActor {
        SlackApiActor {
            client,
            bot_token,
            app_token,
            options,
            health,
            lanes: HashMap::new(),
            next_id: 1,
            coord: None,
        }
    }

    fn lane(&mut self, key: &LaneKey) -> &mut Lane {
        let factor = self.options.pace_factor;
        self.lanes.entry(key.clone()).or_insert_with(|| Lane {
            limiter: RateLimiter::direct(Tier::of(key.method).quota(factor)),
            background: RateLimiter::direct(Tier::of(key.method).background_quota(factor)),
            paused_until: None,
            queue: VecDeque::new(),
            wake: None,
            active: 0,
            last_used: Instant::now(),
        })
    }

    fn enqueue(
        &mut self,
        call: Call,
        reply: oneshot::Sender<Result<ApiResponse, SlackError>>,
        ctx: &mut Context<Self>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        let max_wait =
            if is_cosmetic(call.method) { self.options.max_wait_cosmetic } else { self.options.max_wait };
        let key = LaneKey::of(&call);
        let order = call.since.as_ref().and_then(|ts| ts.as_str().parse().ok()).unwrap_or_else(unix_now);
        let pending = Pending {
            id,
            call,
            attempts: 0,
            deadline: now + max_wait,
            enqueued: now,
            order,
            verify: false,
            reply,
        };
        let max_queued = self.options.max_queued;
        let lane = self.lane(&key);
        lane.last_used = now;
        if pending.call.now_or_never {
            let room = lane.queue.is_empty()
                && lane.paused_until.is_none_or(|until| until <= now)
                && lane.limiter.check().is_ok();
            if room {
                lane.active += 1;
                self.start(key, pending, ctx);
            } else {
                tracing::debug!(method = pending.call.method, "no room in the budget now; not queued");
                let method = pending.call.method.to_string();
                let _ = pending.reply.send(Err(SlackError::NoRoom { method }));
            }
            return;
        }
        if lane.queue.len() >= max_queued {
            let depth = lane.queue.len();
            self.drop_loudly(&key, pending, "queue full", depth);
            return;
        }
        lane.queue.push_back(pending);
        self.pump(&key, ctx);
    }

    /// Starts every call of the lane that may start now, and sets a timer for the rest.
    fn pump(&mut self, key: &LaneKey, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(lane) = self.lanes.get_mut(key) else { return };
        let mut expired = Vec::new();
        let mut ready = Vec::new();
        let mut wake_at = None;
        // Calls past their deadline leave, wherever they wait.
        let (late, waiting): (VecDeque<Pending>, VecDeque<Pending>) =
            std::mem::take(&mut lane.queue).into_iter().partition(|p| p.deadline <= now);
        lane.queue = waiting;
        expired.extend(late);
        loop {
            if lane.queue.is_empty() {
                break;
            }
            if let Some(until) = lane.paused_until {
                if until > now {
                    wake_at = Some(until);
                    break;
                }
                lane.paused_until = None;
            }
            // The oldest waiting employee first (the first asked among equals); background work
            // only when no one waits, and within its own share of the budget.
            let oldest = |background: bool| {
                (0..lane.queue.len())
                    .filter(|i| lane.queue[*i].call.background == background)
                    .min_by(|a, b| lane.queue[*a].order.total_cmp(&lane.queue[*b].order).then(a.cmp(b)))
            };
            let Some(next) = oldest(false).or_else(|| oldest(true)) else { break };
            if lane.queue[next].call.background {
                if let Err(not_until) = lane.background.check() {
                    wake_at = Some(now + not_until.wait_time_from(lane.background.clock().now()));
                    break;
                }
            }
            match lane.limiter.check() {
                Ok(()) => {
                    if let Some(p) = lane.queue.remove(next) {
                        lane.active += 1;
                        ready.push(p);
                    }
                }
                Err(not_until) => {
                    wake_at = Some(now + not_until.wait_time_from(lane.limiter.clock().now()));
                    break;
                }
            }
        }
        let depth = lane.queue.len();
        for p in expired {
            self.drop_loudly(key, p, "waited too long", depth);
        }
        for p in ready {
            self.start(key.clone(), p, ctx);
        }
        if let Some(at) = wake_at {
            self.wake(key, at, ctx);
        }
    }

    fn wake(&mut self, key: &LaneKey, at: Instant, ctx: &mut Context<Self>) {
        let Some(lane) = self.lanes.get_mut(key) else { return };
        match &lane.wake {
            Some((when, _)) if *when <= at => return,
            Some((_, handle)) => {
                ctx.cancel_future(*handle);
            }
            None => {}
        }
        let k = key.clone();
        let handle = ctx.run_later(at.saturating_duration_since(Instant::now()), move |act, ctx| {
            if let Some(lane) = act.lanes.get_mut(&k) {
                lane.wake = None;
            }
            act.pump(&k, ctx);
        });
        lane.wake = Some((at, handle));
    }

    /// One attempt on the wire (after a look in the thread when an earlier one may have landed).
    fn start(&mut self, key: LaneKey, mut p: Pending, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let token = match p.call.token {
            TokenKind::Bot => self.bot_token.clone(),
            TokenKind::App => self.app_token.clone(),
        };
        let (method, args, body) = (p.call.method, p.call.args.clone(), p.call.body);
        let check = if p.verify { p.call.post_check.clone() } else { None };
        let bot_token = self.bot_token.clone();
        let started = Instant::now();
        let shared = self.coord.clone().map(|coord| SharedSlot {
            coord,
            lane: key.shared_name(),
            tier: Tier::of(method),
            factor: self.options.pace_factor,
            now_or_never: p.call.now_or_never,
            deadline: p.deadline,
        });
        let fut = async move {
            if let Some(shared) = shared {
                shared.wait(method).await?;
            }
            if let Some(check) = check {
                if let Some(found) = check.find(&client, &bot_token).await? {
                    return Ok((found, true));
                }
            }
            client.call(method, &token, &args, body).await.map(|r| (r, false))
        };
        if p.attempts == 0 {
            self.health.metrics.slack_queued(method, p.enqueued.elapsed());
        }
        p.attempts += 1;
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            act.finish(key, p, result, elapsed_ms, ctx);
        }));
    }

    fn finish(
        &mut self,
        key: LaneKey,
        mut p: Pending,
        result: Result<(ApiResponse, bool), SlackError>,
        elapsed_ms: u64,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        if let Some(lane) = self.lanes.get_mut(&key) {
            lane.active = lane.active.saturating_sub(1);
            lane.last_used = now;
        }
        let (method, id, attempt) = (p.call.method, p.id, p.attempts);
        let channel = key.channel.as_deref().unwrap_or("");
        let outcome = match &result {
            Ok(_) => "ok",
            Err(SlackError::Api { code, .. }) => code.as_str(),
            Err(SlackError::RateLimited { .. }) => "ratelimited",
            Err(SlackError::Http { .. }) => "http_error",
            Err(SlackError::Transport { .. }) => "network_error",
            Err(SlackError::Decode { .. }) => "unreadable",
            Err(_) => "other",
        };
        self.health.metrics.slack_call(method, outcome);
        match result {
            Ok((r, found)) => {
                if found {
                    tracing::info!(
                        method,
                        call = id,
                        channel,
                        attempt,
                        "the reply had reached slack before the error; not posted again"
                    );
                }
                tracing::debug!(
                    method,
                    call = id,
                    attempt,
                    elapsed_ms,
                    wait_ms = p.enqueued.elapsed().as_millis() as u64,
                    "slack call ok"
                );
                let _ = p.reply.send(Ok(r));
            }
            Err(SlackError::RateLimited { method: m, retry_after }) => {
                let total = TransportStats::bump(&self.health.transport.rate_limited);
                let e = SlackError::RateLimited { method: m, retry_after };
                if retry_after > self.options.max_retry_after || now + retry_after >= p.deadline {
                    tracing::warn!(
                        method,
                        call = id,
                        channel,
                        retry_after_ms = retry_after.as_millis() as u64,
                        rate_limited_total = total,
                        "rate limited past the call's deadline; giving up"
                    );
                    let _ = p.reply.send(Err(e));
                    return;
                }
                tracing::warn!(
                    method,
                    call = id,
                    channel,
                    retry_after_ms = retry_after.as_millis() as u64,
                    rate_limited_total = total,
                    "rate limited; this method waits, others go on"
                );
                p.attempts -= 1;
                if let Some(coord) = self.coord.clone() {
                    let lane = key.shared_name();
                    actix_rt::spawn(async move {
                        let _ = coord.pause(&lane, retry_after).await;
                    });
                }
                let lane = self.lane(&key);
                let until = now + retry_after;
                lane.paused_until = Some(lane.paused_until.map_or(until, |u| u.max(until)));
                lane.queue.push_front(p);
                self.pump(&key, ctx);
            }
            // A call that goes now or never found the shared budget full: its caller has a
            // cheaper way (no status, a post instead of a stream), so it is not retried.
            Err(e @ SlackError::NoRoom { .. }) => {
                tracing::debug!(method, call = id, "no room in the shared budget now; not sent");
                let _ = p.reply.send(Err(e));
            }
            Err(e) if e.is_transient() && attempt < self.options.max_attempts => {
                let wait = backoff(attempt);
                if now + wait >= p.deadline {
                    tracing::warn!(method, call = id, channel, attempt, error = %e, "slack call failed and its deadline is near; giving up");
                    let _ = p.reply.send(Err(e));
                    return;
                }
                let total = TransportStats::bump(&self.health.transport.retries);
                // The request may have been processed although the answer was lost.
                p.verify |= !matches!(e, SlackError::Api { .. });
                tracing::warn!(method, call = id, channel, attempt, elapsed_ms, wait_ms = wait.as_millis() as u64, retries_total = total, error = %e, "slack call will be retried");
                self.lane(&key).active += 1;
                ctx.run_later(wait, move |act, ctx| {
                    let lane = act.lane(&key);
                    lane.active = lane.active.saturating_sub(1);
                    lane.queue.push_front(p);
                    act.pump(&key, ctx);
                });
            }
            Err(SlackError::Dropped { reason, .. }) => {
                let depth = self.lanes.get(&key).map_or(0, |l| l.queue.len());
                self.drop_loudly(&key, p, reason, depth);
            }
            Err(e) => {
                if e.is_auth_failure() && p.call.token == TokenKind::Bot {
                    self.health.set_fatal(format!(
                        "Slack no longer accepts SLACK_BOT_TOKEN ({e}); reinstall the app or copy the Bot User OAuth Token again"
                    ));
                }
                tracing::debug!(method, call = id, attempt, elapsed_ms, error = %e, "slack call failed");
                let _ = p.reply.send(Err(e));
            }
        }
    }

    fn drop_loudly(&mut self, key: &LaneKey, p: Pending, reason: &'static str, depth: usize) {
        let total = TransportStats::bump(&self.health.transport.dropped_calls);
        let channel = key.channel.as_deref().unwrap_or("");
        let thread_ts = p.call.thread_ts.as_ref().map(|t| t.as_str()).unwrap_or("");
        let waited_ms = p.enqueued.elapsed().as_millis() as u64;
        macro_rules! dropped {
            ($level:ident) => {
                tracing::$level!(
                    method = p.call.method,
                    call = p.id,
                    channel,
                    thread_ts,
                    queued = depth,
                    waited_ms,
                    dropped_calls_total = total,
                    reason,
                    "slack call dropped"
                )
            };
        }
        // A status or a marker is worthless when late, and no one waits for background work: a
        // warning. Anything else was meant for a person: an error.
        if is_cosmetic(p.call.method) || p.call.background {
            dropped!(warn);
        } else {
            dropped!(error);
        }
        let _ = p.reply.send(Err(SlackError::Dropped { method: p.call.method.to_string(), reason }));
    }

    fn prune(&mut self) {
        self.lanes.retain(|_, l| {
            !(l.queue.is_empty() && l.active == 0 && l.wake.is_none() && l.last_used.elapsed() > LANE_IDLE)
        });
    }
}

/// Status indicators and reaction markers: worthless when late.
fn is_cosmetic(method: &str) -> bool {
    matches!(method, "assistant.threads.setStatus" | "reactions.add")
}

impl Actor for SlackApiActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(LANE_IDLE, |act, _| act.prune());
    }
}

impl Handler<Call> for SlackApiActor {
    type Result = ResponseFuture<Result<ApiResponse, SlackError>>;

    fn handle(&mut self, call: Call, ctx: &mut Self::Context) -> Self::Result {
        let method = call.method;
        let (tx, rx) = oneshot::channel();
        self.enqueue(call, tx, ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(SlackError::Dropped { method: method.to_string(), reason: "the web api actor stopped" })
            })
        })
    }
}

impl Handler<ShareBudgets> for SlackApiActor {
    type Result = ();

    fn handle(&mut self, ShareBudgets(coord): ShareBudgets, _: &mut Self::Context) {
        self.coord = Some(coord);
    }
}

/// A call's slot in the budget every replica shares.
struct SharedSlot {
    coord: Coord,
    lane: String,
    tier: Tier,
    factor: u32,
    now_or_never: bool,
    deadline: Instant,
}

impl SharedSlot {
    /// Waits for this call's slot. Without an answer from Redis the call goes on at this
    /// process's own pace (the lane's limiter has already let it through).
    async fn wait(&self, method: &'static str) -> Result<(), SlackError> {
        let (per_minute, burst) = self.tier.rate();
        let per_minute = u64::from(per_minute) * u64::from(self.factor.max(1));
        // One call short of Slack's burst, as each lane paces itself.
        let burst = burst.saturating_sub(1).max(1);
        let interval = Duration::from_micros(60_000_000 / per_minute.max(1));
        // A call that may wait reserves a slot up to about two calls ahead (a second at least);
        // one that goes now or never only takes a free slot.
        let max_ahead =
            if self.now_or_never { Duration::ZERO } else { (interval * 2).max(Duration::from_secs(1)) };
        loop {
            match self.coord.reserve(&self.lane, per_minute, burst, max_ahead).await {
                Ok(Slot::After(wait)) => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    return Ok(());
                }
                Ok(Slot::Full(wait)) => {
                    if self.now_or_never {
                        return Err(SlackError::NoRoom { method: method.to_string() });
                    }
                    if Instant::now() + wait >= self.deadline {
                        return Err(SlackError::Dropped {
                            method: method.to_string(),
                            reason: "waited too long",
                        });
                    }
                    tokio::time::sleep(wait.min(max_ahead)).await;
                }
                Err(_) => return Ok(()),
            }
        }
    }
}

impl Handler<GetBacklog> for SlackApiActor {
    type Result = Backlog;

    fn handle(&mut self, _: GetBacklog, _: &mut Self::Context) -> Backlog {
        self.lanes.values().fold(Backlog::default(), |b, l| Backlog {
            queued: b.queued + l.queue.len(),
            active: b.active + l.active,
        })
    }
}

/// 0.5 s, 1 s, 2 s … capped at 8 s, less up to a quarter at random.
pub fn backoff(attempt: u32) -> Duration {
    crate::backoff::jittered(
        Duration::from_millis(500),
        Duration::from_secs(8),
        attempt.saturating_sub(1),
        0.25,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::api::{Args, Body};
    use crate::slack::ChannelId;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(500) && backoff(1) >= Duration::from_millis(375));
        assert!(backoff(3) >= Duration::from_millis(1500));
        assert!(backoff(30) <= Duration::from_secs(8));
    }

    #[test]
    fn methods_map_to_slacks_tiers() {
        assert_eq!(Tier::of("apps.connections.open"), Tier::Connections);
        assert_eq!(Tier::of("chat.postMessage"), Tier::PostMessage);
        assert_eq!(Tier::of("conversations.list"), Tier::Two);
        assert_eq!(Tier::of("users.list"), Tier::Two);
        assert_eq!(Tier::of("conversations.replies"), Tier::Three);
        assert_eq!(Tier::of("users.info"), Tier::Four);
        assert_eq!(Tier::of("auth.test"), Tier::Special);
        assert_eq!(Tier::of("some.new_method"), Tier::Three);
        assert_eq!(Tier::PostMessage.rate(), (60, 3));
    }

    #[test]
    fn a_lane_allows_its_burst_then_makes_callers_wait() {
        // Slack allows bursts of about 3 posts; the bot keeps one short of that.
        let limiter: DefaultDirectRateLimiter = RateLimiter::direct(Tier::PostMessage.quota(1));
        for _ in 0..2 {
            assert!(limiter.check().is_ok());
        }
        let wait = limiter.check().expect_err("the third post in a burst waits");
        let wait = wait.wait_time_from(limiter.clock().now());
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn post_message_lanes_are_per_channel_and_other_methods_per_method() {
        let call = |method: &'static str, channel: &str| {
            Call::new(method, Args::default(), Body::Json, TokenKind::Bot)
                .about(&ChannelId::from(channel), None)
        };
        assert_ne!(
            LaneKey::of(&call("chat.postMessage", "C1")),
            LaneKey::of(&call("chat.postMessage", "C2"))
        );
        assert_eq!(LaneKey::of(&call("reactions.add", "C1")), LaneKey::of(&call("reactions.add", "C2")));
    }
}
