//! Coordination between replicas, in Redis (`REDIS_URL`): Slack's budgets shared by every
//! process (a GCRA limiter in a Lua script), once-only effects decided atomically (`SET NX`), one
//! turn per thread at a time (a hold with a deadline, renewed while the turn runs), and each
//! thread's copy where any replica can read it without reading Slack.
//!
//! Without `REDIS_URL` there is no [`Coord`] and nothing here runs: one replica keeps its state in
//! memory and in Slack message metadata. With it, a failing Redis never silences the bot: every
//! operation has a short deadline, a failure is an error the caller falls back from (local pacing,
//! Slack's copy of the thread), and [`Coord::is_up`] says how Redis answered last, for `/readyz`.
//!
//! Keys are namespaced by the workspace and the bot user (`itbot:{team}:{bot}:…`), so two apps
//! sharing one Redis never share a budget, and every key has a TTL, so nothing grows without bound.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use secrecy::{ExposeSecret, SecretString};

use crate::http::Health;

/// Longest a Redis operation may take before the caller falls back.
const DEADLINE: Duration = Duration::from_millis(500);
/// After a failure, operations fail at once for this long instead of each waiting for Redis.
pub const COOL_OFF: Duration = Duration::from_secs(1);
/// A turn whose replica died before finishing it (a new ticket's first answer, a follow-up's
/// answer) is finished by another replica if it began less than this long ago; after that the
/// person has asked again or been helped.
pub const ORPHAN_UP_TO: Duration = Duration::from_secs(3600);

/// Milliseconds since the Unix epoch by this machine's clock (replicas' clocks agree to well
/// within the seconds these notes are compared at).
fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

/// The shared budget's answer for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A slot is reserved for this call: it may go after this wait (zero: now).
    After(Duration),
    /// No slot within reach (the budget is spent that far ahead, or a 429 paused the method for
    /// every replica): nothing was reserved; ask again after this long.
    Full(Duration),
}

/// Why a Redis operation failed: the caller falls back, and says so in its log.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    #[error("REDIS_URL is not a usable Redis URL: {0}")]
    Url(String),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis failed moments ago; not asked again yet")]
    Down,
}

impl From<redis::RedisError> for CoordError {
    fn from(e: redis::RedisError) -> Self {
        CoordError::Redis(e.to_string())
    }
}

/// How Redis answered last.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A reservation in a generic cell rate algorithm (GCRA). KEYS[1] holds the theoretical arrival
/// time (µs, Redis's clock, shared by every replica); KEYS[2], when it exists, is a pause set by a
/// 429. ARGV: the emission interval (µs), the burst, the furthest ahead a slot may be reserved
/// (µs). Returns the wait before the reserved slot (µs, ≥ 0), or minus the wait before asking
/// again when nothing was reserved.
const GCRA: &str = r#"
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then
  return -pause * 1000
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local start = tat - tolerance
if start < now then
  start = now
end
local wait = start - now
if wait > tonumber(ARGV[3]) then
  return -(wait - tonumber(ARGV[3]))
end
local ttl = math.floor((tat + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', ttl)
return wait
"#;

/// Sets KEYS[1] to ARGV[1] for ARGV[2] ms unless another value holds it: 1 when it is ARGV[1]'s.
const CLAIM: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  return 1
end
return 0
"#;

/// The start of the turn scripts: when another process (not `ARGV[1]`) holds the turn KEYS[1],
/// returns the ms before its hold runs out.
macro_rules! held_elsewhere {
    () => {
        r#"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then
  local left = redis.call('PTTL', KEYS[1])
  if left < 1 then
    left = 1
  end
  return left
end"#
    };
}

/// A thread's turn. KEYS[1] is the turn (held by one token `owner:n`), KEYS[2] the process that
/// took the thread's last turn. ARGV: this process (`owner`), the token, the turn's TTL (ms), how
/// long the last taker is remembered (ms). Returns -1 when the turn is this token's now and this
/// process took the last turn too, -2 when it is this token's now but another process took the
/// last one (what it wrote is newer than this process's memory), else the ms before another
/// process's hold runs out. A hold by an older token of this process (its release not yet
/// arrived) is this process's.
const TAKE_TURN: &str = concat!(
    held_elsewhere!(),
    r#"
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
local last = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
if last and last ~= ARGV[1] then
  return -2
end
return -1
"#
);

/// Ends a turn: deletes KEYS[1] only while it holds ARGV[1] (this turn's token, not a later one).
const END_TURN: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Whether another process holds KEYS[1]: the ms before its hold runs out, or -1.
const TURN_ELSEWHERE: &str = concat!(held_elsewhere!(), "\nreturn -1\n");

/// The copy of the thread `ARGV[1]` belongs to, in one round trip: KEYS[1] maps a reply to its
/// thread; ARGV[2] is the prefix of the copies' keys. Returns the thread's root and its entries.
const THREAD_COPY: &str = r#"
local root = redis.call('GET', KEYS[1])
if not root then
  root = ARGV[1]
end
return {root, redis.call('LRANGE', ARGV[2] .. root, 0, -1)}
"#;

/// Carries a message's counts from before Redis into its votes, once: KEYS[1] is the votes hash;
/// ARGV: the 👍 and 👎 counts its metadata held, the TTL (s). Fields named `before-redis:…`
/// stand for those votes (nobody can vote as them); `before-redis` marks the hash as carried.
const SEED_VOTES: &str = r#"
if redis.call('HSETNX', KEYS[1], 'before-redis', 'seeded') == 1 then
  for i = 1, tonumber(ARGV[1]) do
    redis.call('HSET', KEYS[1], 'before-redis:up:' .. i, 'up')
  end
  for i = 1, tonumber(ARGV[2]) do
    redis.call('HSET', KEYS[1], 'before-redis:down:' .. i, 'down')
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return redis.call('HVALS', KEYS[1])
"#;

/// (👍, 👎) among a votes hash's values.
fn tally(values: &[String]) -> (u32, u32) {
    let up = values.iter().filter(|v| v.as_str() == "up").count() as u32;
    let down = values.iter().filter(|v| v.as_str() == "down").count() as u32;
    (up, down)
}

/// What asking for a thread's turn found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// The turn is this process's until it ends it or the TTL passes. `after_other`: another
    /// process took the thread's previous turn, so this process's memory of the thread is old.
    Mine { after_other: bool },
    /// Another process holds it, for at most this long unless it renews.
    Elsewhere(Duration),
}

/// A handle on the replicas' shared Redis. Cheap to clone.
#[derive(Clone)]
pub struct Coord {
    inner: Arc<Inner>,
    /// `itbot:{team}:{bot}:`, or `itbot:` before the bot knows who it is.
    prefix: Arc<str>,
}

struct Inner {
    conn: ConnectionManager,
    state: AtomicU8,
    /// Since when `retry_at_ms` counts.
    epoch: Instant,
    /// After a failure: operations before this (ms after `epoch`) fail at once.
    retry_at_ms: AtomicU64,
    /// When the latest failure was seen (ms after `epoch`): a success of an operation that
    /// started before it says nothing about Redis now.
    failed_at_ms: AtomicU64,
    gcra: Script,
    claim: Script,
    take_turn: Script,
    end_turn: Script,
    turn_elsewhere: Script,
    thread_copy: Script,
    seed_votes: Script,
    /// This process, as the owner of what it claims: its pid (so an operator can tell which
    /// replica holds a thread) and a random part (pids repeat across containers).
    me: String,
    health: Option<Arc<Health>>,
}

impl Coord {
    /// A client for `url` (`redis://[user:password@]host:port[/db]`). Connects lazily and
    /// reconnects by itself: a Redis that is down at startup is tried again at each use.
    pub fn connect(url: &SecretString, health: Option<Arc<Health>>) -> Result<Coord, CoordError> {
        let client = redis::Client::open(url.expose_secret())
            // The URL may hold a password: the error names the problem, not the URL.
            .map_err(|e| {
                CoordError::Url(format!("{:?}; expected redis://[user:password@]host:port[/db]", e.kind()))
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Coord {
            inner: Arc::new(Inner {
                conn,
                state: AtomicU8::new(UNKNOWN),
                epoch: Instant::now(),
                retry_at_ms: AtomicU64::new(0),
                failed_at_ms: AtomicU64::new(0),
                gcra: Script::new(GCRA),
                claim: Script::new(CLAIM),
                take_turn: Script::new(TAKE_TURN),
                end_turn: Script::new(END_TURN),
                turn_elsewhere: Script::new(TURN_ELSEWHERE),
                thread_copy: Script::new(THREAD_COPY),
                seed_votes: Script::new(SEED_VOTES),
                me: format!("{}-{:012x}", std::process::id(), fastrand::u64(..) >> 16),
                health,
            }),
            prefix: "itbot:".into(),
        })
    }

    /// The same Redis, with keys of this workspace and bot user.
    pub fn scoped(&self, team: &str, bot: &str) -> Coord {
        Coord { inner: self.inner.clone(), prefix: format!("itbot:{team}:{bot}:").into() }
    }

    /// Whether Redis answered the last operation (`None` before the first).
    pub fn is_up(&self) -> Option<bool> {
        match self.inner.state.load(Ordering::Relaxed) {
            UP => Some(true),
            DOWN => Some(false),
            _ => None,
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = String::from(&*self.prefix);
        k.push_str(&parts.join(":"));
        k
    }

    /// Runs one operation with the deadline, counts it and notes whether Redis answered.
    async fn run<T, F>(&self, op: &'static str, fut: F) -> Result<T, CoordError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = Instant::now();
        let now_ms = started.duration_since(self.inner.epoch).as_millis() as u64;
        if now_ms < self.inner.retry_at_ms.load(Ordering::Relaxed) {
            return Err(CoordError::Down);
        }
        let result = match tokio::time::timeout(DEADLINE, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CoordError::from(e)),
            Err(_) => Err(CoordError::Timeout(DEADLINE)),
        };
        let ok = result.is_ok();
        if let Some(h) = &self.inner.health {
            h.metrics.redis_call(op, ok, started.elapsed());
        }
        let done_ms = Instant::now().duration_since(self.inner.epoch).as_millis() as u64;
        if !ok {
            self.inner.retry_at_ms.store(done_ms + COOL_OFF.as_millis() as u64, Ordering::Relaxed);
            self.inner.failed_at_ms.store(done_ms, Ordering::Relaxed);
        } else if now_ms < self.inner.failed_at_ms.load(Ordering::Relaxed) {
            // An answer to a call sent before the latest failure: not news that Redis is back.
            return result;
        }
        if let Some(h) = &self.inner.health {
            h.set_redis_up(ok);
        }
        let was = self.inner.state.swap(if ok { UP } else { DOWN }, Ordering::Relaxed);
        match (was, ok) {
            (DOWN, true) => tracing::warn!(op, "redis answers again; replicas coordinate through it again"),
            (UP | UNKNOWN, false) => {
                if let Err(e) = &result {
                    tracing::error!(op, error = %e, "redis is unreachable: replicas fall back to Slack's copy and their own pacing until it returns");
                }
            }
            _ => {}
        }
        result
    }

    /// Redis's version and one round trip's time (for `itbot doctor`).
    pub async fn check(&self) -> Result<(String, Duration), CoordError> {
        let mut conn = self.inner.conn.clone();
        let started = Instant::now();
        let info: String = self.run("info", redis::cmd("INFO").arg("server").query_async(&mut conn)).await?;
        let rtt = started.elapsed();
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("valkey_version:").or_else(|| l.strip_prefix("redis_version:")))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        Ok((version, rtt))
    }

    /// Reserves a slot in the budget `lane` shares across replicas: `per_minute` calls a minute
    /// with bursts of `burst`, a slot at most `max_ahead` away.
    pub async fn reserve(
        &self,
        lane: &str,
        per_minute: u64,
        burst: u32,
        max_ahead: Duration,
    ) -> Result<Slot, CoordError> {
        let interval_us = 60_000_000 / per_minute.max(1);
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.gcra.prepare_invoke();
        call.key(self.key(&["budget", lane]))
            .key(self.key(&["pause", lane]))
            .arg(interval_us)
            .arg(burst.max(1))
            .arg(max_ahead.as_micros() as u64);
        let us: i64 = self.run("reserve", call.invoke_async(&mut conn)).await?;
        Ok(if us >= 0 {
            Slot::After(Duration::from_micros(us as u64))
        } else {
            Slot::Full(Duration::from_micros(us.unsigned_abs()))
        })
    }

    /// Pauses `lane` for every replica (Slack answered 429 with this `Retry-After`).
    pub async fn pause(&self, lane: &str, wait: Duration) -> Result<(), CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["pause", lane]);
        let ms = wait.as_millis().max(1) as u64;
        self.run("pause", async move { conn.pset_ex::<_, _, ()>(key, 1, ms).await }).await
    }

    /// True for exactly one caller across replicas until `ttl` passes: the once-only effects
    /// (an event handled, an escalation ping, an outage ping, a weekly report slot).
    pub async fn once(&self, what: &[&str], ttl: Duration) -> Result<bool, CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&[&["once"], what].concat());
        let ms = ttl.as_millis().max(1) as u64;
        let set: Option<String> = self
            .run("once", redis::cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(ms).query_async(&mut conn))
            .await?;
        Ok(set.is_some())
    }

    /// True when `what` is this process's until `ttl` passes: taken now, or taken earlier by this
    /// process (so a failed attempt can be tried again by the one that claimed it, and only by it).
    pub async fn claim(&self, what: &[&str], ttl: Duration) -> Result<bool, CoordError> {
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.claim.prepare_invoke();
        call.key(self.key(&[&["claim"], what].concat()))
            .arg(&self.inner.me)
            .arg(ttl.as_millis().max(1) as u64);
        let won: i64 = self.run("claim", call.invoke_async(&mut conn)).await?;
        Ok(won == 1)
    }

    /// Asks for a thread's turn with `token` (a number this process never reuses for the
    /// thread), held for `ttl`; asked again with the same token, it renews. The thread's last
    /// taker is remembered for `remember`.
    pub async fn take_turn(
        &self,
        channel: &str,
        thread: &str,
        token: u64,
        ttl: Duration,
        remember: Duration,
    ) -> Result<Turn, CoordError> {
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.take_turn.prepare_invoke();
        call.key(self.key(&["turn", channel, thread]))
            .key(self.key(&["last", channel, thread]))
            .arg(&self.inner.me)
            .arg(format!("{}:{token}", self.inner.me))
            .arg(ttl.as_millis().max(1) as u64)
            .arg(remember.as_millis().max(1) as u64);
        let answer: i64 = self.run("take_turn", call.invoke_async(&mut conn)).await?;
        Ok(match answer {
            -1 => Turn::Mine { after_other: false },
            -2 => Turn::Mine { after_other: true },
            ms => Turn::Elsewhere(Duration::from_millis(ms.max(1) as u64)),
        })
    }

    /// Ends the turn taken with `token` (a later turn's hold is left alone).
    pub async fn end_turn(&self, channel: &str, thread: &str, token: u64) -> Result<(), CoordError> {
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.end_turn.prepare_invoke();
        call.key(self.key(&["turn", channel, thread])).arg(format!("{}:{token}", self.inner.me));
        self.run("end_turn", call.invoke_async::<i64>(&mut conn)).await.map(drop)
    }

    /// How long another process still holds the thread's turn (`None`: no other process does).
    pub async fn turn_elsewhere(&self, channel: &str, thread: &str) -> Result<Option<Duration>, CoordError> {
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.turn_elsewhere.prepare_invoke();
        call.key(self.key(&["turn", channel, thread])).arg(&self.inner.me);
        let ms: i64 = self.run("turn_elsewhere", call.invoke_async(&mut conn)).await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    /// Adds a report of `symptom` (`member`: its thread and reporter) at Slack time `at`, and
    /// returns every report of it within `window` of `at`, whichever replica heard it, as
    /// (member, time). Reports older than two windows are dropped; the set expires with them.
    pub async fn outage_reports(
        &self,
        symptom: &str,
        member: &str,
        at: f64,
        window: Duration,
    ) -> Result<Vec<(String, f64)>, CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["reports", symptom]);
        let w = window.as_secs_f64();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zadd(&key, member, at)
            .ignore()
            .zrembyscore(&key, "-inf", at - 2.0 * w)
            .ignore()
            .expire(&key, (2.0 * w).ceil().max(1.0) as i64)
            .ignore()
            .zrangebyscore_withscores(&key, at - w, at + w);
        let (reports,): (Vec<(String, f64)>,) =
            self.run("outage_reports", pipe.query_async(&mut conn)).await?;
        Ok(reports)
    }

    /// Notes that this process runs a turn on `thread` (a new ticket's first answer, a
    /// follow-up's), so that another replica finishes it if this one dies first (see
    /// [`Coord::unfinished_turns`]). Notes older than [`ORPHAN_UP_TO`] are dropped.
    pub async fn note_turn(&self, channel: &str, thread: &str) -> Result<(), CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["turns"]);
        let now = wall_ms();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zadd(&key, format!("{channel} {thread}"), now)
            .ignore()
            .zrembyscore(&key, "-inf", now - ORPHAN_UP_TO.as_millis() as f64)
            .ignore()
            .pexpire(&key, ORPHAN_UP_TO.as_millis() as i64)
            .ignore();
        self.run("note_turn", pipe.query_async::<()>(&mut conn)).await
    }

    /// The turn noted by [`Coord::note_turn`] is over: its answer posted, or none was due.
    pub async fn turn_over(&self, channel: &str, thread: &str) -> Result<(), CoordError> {
        let mut conn = self.inner.conn.clone();
        let (key, member) = (self.key(&["turns"]), format!("{channel} {thread}"));
        self.run("turn_over", async move { conn.zrem::<_, _, ()>(key, member).await }).await
    }

    /// Threads whose noted turn began more than `age` ago and is not over, as (channel, thread),
    /// oldest first, at most `max`: each turn still runs, or its replica died.
    pub async fn unfinished_turns(
        &self,
        age: Duration,
        max: usize,
    ) -> Result<Vec<(String, String)>, CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["turns"]);
        let newest = wall_ms() - age.as_millis() as f64;
        let found: Vec<String> = self
            .run("unfinished_turns", async move {
                conn.zrangebyscore_limit(key, "-inf", newest, 0, max as isize).await
            })
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|m| m.split_once(' ').map(|(c, t)| (c.to_string(), t.to_string())))
            .collect())
    }

    /// Keeps `value` under `what` for `ttl` (a message another replica must find: an outage's ping).
    pub async fn put(&self, what: &[&str], value: &str, ttl: Duration) -> Result<(), CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&[&["value"], what].concat());
        let (value, ms) = (value.to_string(), ttl.as_millis().max(1) as u64);
        self.run("put", async move { conn.pset_ex::<_, _, ()>(key, value, ms).await }).await
    }

    /// The value kept under `what`, if any.
    pub async fn get(&self, what: &[&str]) -> Result<Option<String>, CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&[&["value"], what].concat());
        self.run("get", async move { conn.get::<_, Option<String>>(key).await }).await
    }

    /// Appends message `ts` to the copy of `thread`, kept `ttl` after its last message (and
    /// remembers which thread a reply belongs to, for a reaction or a click on it).
    pub async fn record(
        &self,
        channel: &str,
        thread: &str,
        ts: &str,
        entry: &str,
        ttl: Duration,
    ) -> Result<(), CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["log", channel, thread]);
        let ms = ttl.as_millis().max(1) as i64;
        let mut pipe = redis::pipe();
        pipe.atomic().rpush(&key, entry).ignore().pexpire(&key, ms).ignore();
        if ts != thread {
            pipe.pset_ex(self.key(&["in", channel, ts]), thread, ms as u64).ignore();
        }
        self.run("record", pipe.query_async::<()>(&mut conn)).await
    }

    /// The thread a recorded reply belongs to.
    pub async fn thread_of(&self, channel: &str, ts: &str) -> Result<Option<String>, CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["in", channel, ts]);
        self.run("thread_of", async move { conn.get::<_, Option<String>>(key).await }).await
    }

    /// The thread `ts` belongs to (its root, or a reply in it) and that thread's copy, in the
    /// order its messages were recorded: one round trip.
    pub async fn thread_copy(&self, channel: &str, ts: &str) -> Result<(String, Vec<String>), CoordError> {
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.thread_copy.prepare_invoke();
        call.key(self.key(&["in", channel, ts])).arg(ts).arg(self.key(&["log", channel, ""]));
        self.run("thread_copy", call.invoke_async(&mut conn)).await
    }

    /// A message's counts (up, down) over every replica.
    pub async fn vote_counts(&self, message: &str) -> Result<(u32, u32), CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["votes", message]);
        let values: Vec<String> = self.run("vote_counts", async move { conn.hvals(key).await }).await?;
        Ok(tally(&values))
    }

    /// Carries the counts a message held before Redis was set (`up`, `down`, from its metadata)
    /// into its votes, once for all replicas; returns the counts over every replica.
    pub async fn seed_votes(
        &self,
        message: &str,
        up: u64,
        down: u64,
        ttl: Duration,
    ) -> Result<(u32, u32), CoordError> {
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.seed_votes.prepare_invoke();
        call.key(self.key(&["votes", message]))
            .arg(up.min(10_000))
            .arg(down.min(10_000))
            .arg(ttl.as_secs().max(1));
        let values: Vec<String> = self.run("seed_votes", call.invoke_async(&mut conn)).await?;
        Ok(tally(&values))
    }

    /// Records `user`'s vote on `message` (true: 👍) and returns the message's counts (up, down)
    /// over every replica. A person's later vote replaces their earlier one.
    pub async fn vote(
        &self,
        message: &str,
        user: &str,
        up: bool,
        ttl: Duration,
    ) -> Result<(u32, u32), CoordError> {
        let mut conn = self.inner.conn.clone();
        let key = self.key(&["votes", message]);
        let secs = ttl.as_secs().max(1) as i64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&key, user, if up { "up" } else { "down" })
            .ignore()
            .expire(&key, secs)
            .ignore()
            .hvals(&key);
        let (values,): (Vec<String>,) = self.run("vote", pipe.query_async(&mut conn)).await?;
        Ok(tally(&values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_named_without_echoing_it() {
        let e = Coord::connect(&SecretString::from("postgres://user:hunter2@db:5432"), None)
            .err()
            .expect("not a redis url");
        let text = e.to_string();
        assert!(text.contains("REDIS_URL"), "{text}");
        assert!(!text.contains("hunter2"), "the password was printed: {text}");
    }

    #[actix_rt::test]
    async fn keys_are_namespaced_by_workspace_and_bot() {
        let c = Coord::connect(&SecretString::from("redis://127.0.0.1:1"), None).expect("lazy");
        let c = c.scoped("T1", "U9");
        assert_eq!(c.key(&["thread", "C1", "1.2"]), "itbot:T1:U9:thread:C1:1.2");
    }
}
