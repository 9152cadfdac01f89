//! SocketActor: one Socket Mode connection slot. It asks `apps.connections.open` for a URL,
//! connects to it as given (`ws://` or `wss://`), acks every envelope the moment it arrives
//! (before parsing the event, duplicates included), and hands events to the router without
//! waiting.
//!
//! A new connection becomes the slot's *current* one when Slack says `hello`. On `disconnect`
//! (`warning`, `refresh_requested`) it opens the next connection first; the old one is closed
//! [`SocketOptions::drain_for`] after the new one said hello, and frames still arriving on it
//! meanwhile are acked and routed. A dropped, refused or silent socket (nothing from Slack — no
//! frame, no ping, no pong to our own pings — for [`SocketOptions::stale_after`]) is replaced
//! with capped, jittered exponential backoff.
//! `too_many_websockets` backs off, `link_disabled` stops every slot and makes readiness false,
//! and unrecoverable auth errors end the process with a clear message instead of a retry loop.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_http::ws::{Item, ProtocolError};
use awc::ws;
use bytes::Bytes;
use futures_util::stream::{SplitSink, StreamExt};

use super::router::Deliver;
use super::slack_api::SlackApi;
use crate::http::{Health, TransportStats};
use crate::slack::events;
use crate::slack::socket::{ack_text, envelope_id, parse_frame, Frame};
use crate::slack::{EnvelopeId, SlackError};

/// Envelopes can be large (interactive payloads reach tens of kilobytes).
const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Our pings awaiting a pong, per connection; older ones are forgotten.
const MAX_PINGS_IN_FLIGHT: usize = 8;

/// Timings of the Socket Mode transport. The defaults follow Slack and its SDKs (REFERENCE
/// §1.8–1.9); tests shrink them.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// How often we ping Slack and check for staleness.
    pub heartbeat: Duration,
    /// Slack pings about every 10 s: nothing at all for this long means the socket is dead.
    pub stale_after: Duration,
    /// The WebSocket handshake plus Slack's `hello` must take less than this.
    pub connect_timeout: Duration,
    /// An old socket still draining after a refresh is dropped after this long.
    pub drain_for: Duration,
    /// First step of the reconnect backoff (doubling on each failure).
    pub backoff_base: Duration,
    /// Longest wait between reconnect attempts.
    pub backoff_max: Duration,
    /// Shortest wait after Slack refused a socket with `too_many_websockets`.
    pub too_many_websockets_wait: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(20),
            drain_for: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            too_many_websockets_wait: Duration::from_secs(10),
        }
    }
}

type WsFramed = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;
type WsSink = SinkWrite<ws::Message, SplitSink<WsFramed, ws::Message>>;

/// A frame from connection `generation`; `None` when that connection's stream ended.
type Tagged = (u64, Option<Result<ws::Frame, ProtocolError>>);

struct Connection {
    sink: WsSink,
    stream: SpawnHandle,
    /// Partial text of a fragmented frame.
    partial: Vec<u8>,
    /// When Slack last sent something on it: any frame, a ping, or a pong to one of our pings.
    last_heard: Instant,
    /// Payloads of our pings not answered yet, oldest first.
    pings: VecDeque<Bytes>,
}

/// Open (or replace) the connection.
#[derive(Message)]
#[rtype(result = "()")]
struct Connect;

/// Close every connection and stop reconnecting (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSockets;

pub struct SocketActor {
    /// Which slot this is (0..`slack.connections`), for logs and readiness.
    slot: usize,
    slack: SlackApi,
    router: Recipient<Deliver>,
    health: Arc<Health>,
    options: SocketOptions,
    /// Live connections by generation: the current one, one waiting for `hello`, and old ones
    /// draining after a refresh.
    conns: HashMap<u64, Connection>,
    /// The connection that said hello last: it counts for readiness.
    current: Option<u64>,
    /// A new connection waiting for its `hello`.
    pending: Option<u64>,
    next_generation: u64,
    /// `apps.connections.open` or a handshake is under way.
    connecting: bool,
    /// Consecutive failed connection attempts, for backoff.
    failures: u32,
    /// This slot had a connection before: the next one is a reconnect.
    was_connected: bool,
    ping_seq: u64,
    /// Set on shutdown or `link_disabled`: no more reconnects.
    stopped: bool,
}

impl SocketActor {
    pub fn new(
        slot: usize,
        slack: SlackApi,
        router: Recipient<Deliver>,
        health: Arc<Health>,
        options: SocketOptions,
    ) -> SocketActor {
        SocketActor {
            slot,
            slack,
            router,
            health,
            options,
            conns: HashMap::new(),
            current: None,
            pending: None,
            next_generation: 1,
            connecting: false,
            failures: 0,
            was_connected: false,
            ping_seq: 0,
            stopped: false,
        }
    }

    fn gave_up(&self) -> bool {
        self.stopped || self.health.is_link_disabled()
    }

    fn schedule_connect(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if self.gave_up() {
            return;
        }
        tracing::info!(
            slot = self.slot,
            wait_ms = after.as_millis() as u64,
            failures = self.failures,
            "reconnecting"
        );
        ctx.run_later(after, |_, ctx| ctx.notify(Connect));
    }

    /// Capped exponential backoff with jitter; a first reconnect after a loss only gets jitter,
    /// so replicas that lost their sockets together do not reconnect in lockstep.
    fn retry_delay(&self) -> Duration {
        let o = &self.options;
        if self.failures == 0 {
            return o.backoff_base.mul_f64(0.5 * fastrand::f64());
        }
        crate::backoff::jittered(o.backoff_base, o.backoff_max, self.failures - 1, 0.5)
    }

    fn send(&mut self, generation: u64, message: ws::Message) {
        if let Some(conn) = self.conns.get_mut(&generation) {
            if conn.sink.write(message).is_err() {
                tracing::debug!(slot = self.slot, generation, "socket closing; frame not sent");
            }
        }
    }

    fn drop_connection(&mut self, generation: u64, ctx: &mut Context<Self>) {
        if let Some(mut conn) = self.conns.remove(&generation) {
            self.health.connection_closed();
            conn.sink.close();
            ctx.cancel_future(conn.stream);
        }
        if self.current == Some(generation) {
            self.current = None;
            self.health.set_socket(self.slot, false);
        }
        if self.pending == Some(generation) {
            self.pending = None;
        }
    }

    /// The connection `generation` is gone or refused: replace it if it mattered.
    fn lost(&mut self, generation: u64, why: &'static str, ctx: &mut Context<Self>) {
        let was_current = self.current == Some(generation);
        let was_pending = self.pending == Some(generation);
        self.drop_connection(generation, ctx);
        if was_current {
            tracing::warn!(slot = self.slot, generation, why, "socket lost");
            let wait = self.retry_delay();
            self.schedule_connect(wait, ctx);
        } else if was_pending {
            self.failures += 1;
            tracing::warn!(
                slot = self.slot,
                generation,
                why,
                failures = self.failures,
                "new socket failed before hello"
            );
            let wait = self.retry_delay();
            self.schedule_connect(wait, ctx);
        }
    }

    /// `hello` on a new connection: it becomes current, and the one it replaces drains.
    fn promote(&mut self, generation: u64, ctx: &mut Context<Self>) {
        self.pending = None;
        let old = self.current.replace(generation);
        self.failures = 0;
        self.health.set_socket(self.slot, true);
        let connects = TransportStats::bump(&self.health.transport.connects);
        let reconnects = if self.was_connected {
            TransportStats::bump(&self.health.transport.reconnects)
        } else {
            TransportStats::get(&self.health.transport.reconnects)
        };
        self.was_connected = true;
        tracing::info!(slot = self.slot, generation, replaced = ?old, connects_total = connects, reconnects_total = reconnects, "socket mode connected");
        if let Some(old) = old {
            // The old socket stays open a little longer: Slack may still deliver on it (it
            // closes it itself soon after a `warning`), and what arrives there is acked and
            // routed like anything else. Then it is closed.
            ctx.run_later(self.options.drain_for, move |act, ctx| act.drop_connection(old, ctx));
        }
    }

    fn on_text(&mut self, generation: u64, text: &str, ctx: &mut Context<Self>) {
        let received = Instant::now();
        // One span per frame: what is logged while acking and routing it carries slot and size.
        let span = tracing::info_span!("envelope", slot = self.slot, generation, len = text.len());
        let _entered = span.enter();
        match parse_frame(text) {
            Ok(Frame::EventsApi(envelope)) => {
                self.ack(generation, &envelope.envelope_id, received);
                match events::parse(envelope.payload) {
                    Ok((event_id, event)) => {
                        self.health.metrics.event(event.kind());
                        let deliver = Deliver { event_id, event, retry_attempt: envelope.retry_attempt };
                        if let Err(e) = self.router.try_send(deliver) {
                            tracing::error!(slot = self.slot, envelope_id = %envelope.envelope_id, error = %e, "router is full or gone: event dropped");
                        }
                    }
                    Err(e) => {
                        tracing::error!(slot = self.slot, envelope_id = %envelope.envelope_id, error = %e, "event payload not understood; acked and skipped")
                    }
                }
            }
            Ok(Frame::Interactive(envelope)) => {
                self.ack(generation, &envelope.envelope_id, received);
                match events::parse_interactive(&envelope.payload) {
                    Ok(event) => {
                        self.health.metrics.event(event.kind());
                        // Interactions carry no event id; the envelope id is unique per click.
                        let deliver = Deliver {
                            event_id: crate::slack::EventId(format!("interactive:{}", envelope.envelope_id)),
                            event,
                            retry_attempt: 0,
                        };
                        if let Err(e) = self.router.try_send(deliver) {
                            tracing::error!(slot = self.slot, envelope_id = %envelope.envelope_id, error = %e, "router is full or gone: interaction dropped");
                        }
                    }
                    Err(e) => {
                        tracing::error!(slot = self.slot, envelope_id = %envelope.envelope_id, error = %e, "interaction not understood; acked and skipped")
                    }
                }
            }
            Ok(Frame::SlashCommands(envelope)) => {
                self.ack(generation, &envelope.envelope_id, received);
                tracing::info!(slot = self.slot, envelope_id = %envelope.envelope_id, "slash command acked; itbot has no commands");
            }
            Ok(Frame::Hello { num_connections, debug_info }) => {
                tracing::info!(
                    slot = self.slot,
                    generation,
                    num_connections,
                    lifetime_secs = debug_info.and_then(|d| d.approximate_connection_time),
                    "socket mode hello"
                );
                // Slack counts every open socket of the app: more than this process holds means
                // another replica shares the channel.
                if num_connections.is_some_and(|n| n > self.health.open_connections())
                    && self.health.mark_peers()
                {
                    // With Redis (it has answered or failed by now) replicas share through it.
                    if self.health.redis_up().is_some() {
                        tracing::info!(slot = self.slot, num_connections, "another process holds sockets of this app: replicas share the channel through redis");
                    } else {
                        tracing::warn!(
                            slot = self.slot,
                            num_connections,
                            "another process holds sockets of this app: replicas share the channel, so threads \
                             are read from Slack before acting; set REDIS_URL to share their state instead"
                        );
                    }
                }
                if self.pending == Some(generation) {
                    self.promote(generation, ctx);
                }
            }
            Ok(Frame::Disconnect { reason }) => self.on_disconnect(generation, &reason, ctx),
            Ok(Frame::Unknown) => match envelope_id(text) {
                Some(id) => {
                    self.ack(generation, &id, received);
                    tracing::warn!(slot = self.slot, envelope_id = %id, "envelope of an unknown type acked and skipped");
                }
                None => tracing::warn!(
                    slot = self.slot,
                    len = text.len(),
                    "unknown socket mode frame type; ignored"
                ),
            },
            Err((reason, Some(id))) => {
                self.ack(generation, &id, received);
                tracing::error!(slot = self.slot, envelope_id = %id, error = %reason, "malformed envelope acked and skipped");
            }
            Err((reason, None)) => {
                tracing::error!(slot = self.slot, len = text.len(), error = %reason, "unreadable socket mode frame ignored")
            }
        }
    }

    fn ack(&mut self, generation: u64, id: &EnvelopeId, received: Instant) {
        self.send(generation, ws::Message::Text(ack_text(id).into()));
        self.health.metrics.ack_seconds.observe(received.elapsed().as_secs_f64());
        tracing::debug!(slot = self.slot, envelope_id = %id, ack_us = received.elapsed().as_micros() as u64, "acked");
    }

    fn on_disconnect(&mut self, generation: u64, reason: &str, ctx: &mut Context<Self>) {
        tracing::info!(slot = self.slot, generation, reason, "slack asked to disconnect");
        match reason {
            "link_disabled" => {
                tracing::error!(slot = self.slot, "Socket Mode was disabled for this app (link_disabled): not reconnecting. Turn Socket Mode on in the app settings and restart.");
                self.stopped = true;
                self.health.set_link_disabled();
                let gens: Vec<u64> = self.conns.keys().copied().collect();
                for g in gens {
                    self.drop_connection(g, ctx);
                }
                // Nothing left to do here until a restart: the slot's actor ends, and says so.
                self.health.retire_slot();
                ctx.stop();
            }
            "too_many_websockets" => {
                let mattered = self.current == Some(generation) || self.pending == Some(generation);
                self.drop_connection(generation, ctx);
                if mattered {
                    // The current socket (if this was a new one) keeps serving meanwhile.
                    self.failures += 1;
                    let wait = self.retry_delay().max(self.options.too_many_websockets_wait);
                    tracing::warn!(
                        slot = self.slot,
                        generation,
                        wait_ms = wait.as_millis() as u64,
                        "slack refused the socket: too many websockets for this app; backing off"
                    );
                    self.schedule_connect(wait, ctx);
                }
            }
            // `warning`, `refresh_requested` and anything new: replace the connection, new first.
            _ => {
                if self.current == Some(generation) {
                    ctx.notify(Connect);
                }
            }
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let Some(generation) = self.current else { return };
        let Some(conn) = self.conns.get(&generation) else { return };
        let silent = conn.last_heard.elapsed();
        if silent > self.options.stale_after {
            let total = TransportStats::bump(&self.health.transport.stale);
            tracing::warn!(
                slot = self.slot,
                generation,
                silent_ms = silent.as_millis() as u64,
                stale_total = total,
                "socket is stale (nothing from slack); replacing it"
            );
            self.lost(generation, "stale", ctx);
            return;
        }
        self.ping_seq += 1;
        let payload = Bytes::from(format!("itbot:{}:{}:{}", self.slot, generation, self.ping_seq));
        if let Some(conn) = self.conns.get_mut(&generation) {
            if conn.pings.len() >= MAX_PINGS_IN_FLIGHT {
                conn.pings.pop_front();
            }
            conn.pings.push_back(payload.clone());
        }
        self.send(generation, ws::Message::Ping(payload));
    }

    /// A pong counts only if it answers one of our pings on that connection.
    fn on_pong(&mut self, generation: u64, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(&generation) else { return };
        match conn.pings.iter().position(|p| p.as_ref() == payload) {
            Some(i) => {
                conn.pings.drain(..=i);
                conn.last_heard = Instant::now();
            }
            None => tracing::debug!(
                slot = self.slot,
                generation,
                len = payload.len(),
                "pong to no ping of ours ignored"
            ),
        }
    }
}

impl Actor for SocketActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Connect);
        ctx.run_interval(self.options.heartbeat, |act, ctx| act.heartbeat(ctx));
    }
}

impl Handler<Connect> for SocketActor {
    type Result = ();

    fn handle(&mut self, _: Connect, ctx: &mut Self::Context) {
        if self.connecting || self.pending.is_some() || self.gave_up() {
            return;
        }
        self.connecting = true;
        let slack = self.slack.clone();
        let slot = self.slot;
        let timeout = self.options.connect_timeout;
        let fut = async move {
            let url = slack.open_connection().await.map_err(ConnectError::Slack)?;
            let client = crate::net::http_client(timeout);
            let handshake = client.ws(url).max_frame_size(MAX_FRAME).connect();
            let (_, framed) = actix_rt::time::timeout(timeout, handshake)
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(|e| ConnectError::Socket(e.to_string()))?;
            Ok::<_, ConnectError>(framed)
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.connecting = false;
            match result {
                Ok(_) if act.gave_up() => {}
                Ok(framed) => {
                    let generation = act.next_generation;
                    act.next_generation += 1;
                    let (sink, stream) = framed.split();
                    let sink = SinkWrite::new(sink, ctx);
                    let tagged = stream
                        .map(move |f| (generation, Some(f)))
                        .chain(futures_util::stream::once(async move { (generation, None) }));
                    let handle = ctx.add_stream(tagged);
                    let conn = Connection {
                        sink,
                        stream: handle,
                        partial: Vec::new(),
                        last_heard: Instant::now(),
                        pings: VecDeque::new(),
                    };
                    act.health.connection_opened();
                    act.conns.insert(generation, conn);
                    act.pending = Some(generation);
                    ctx.run_later(act.options.connect_timeout, move |act, ctx| {
                        if act.pending == Some(generation) {
                            act.lost(generation, "no hello", ctx);
                        }
                    });
                }
                Err(ConnectError::Slack(e)) if e.is_auth_failure() => {
                    act.stopped = true;
                    act.health.set_fatal(format!(
                        "Slack refused the app-level token ({e}). Check SLACK_APP_TOKEN: an xapp- token with connections:write, from the app's Basic Information page."
                    ));
                }
                Err(ConnectError::Slack(SlackError::RateLimited { retry_after, .. })) => {
                    act.failures += 1;
                    tracing::warn!(slot, retry_after_ms = retry_after.as_millis() as u64, "apps.connections.open is rate limited; waiting");
                    let wait = retry_after.max(act.retry_delay());
                    act.schedule_connect(wait, ctx);
                }
                Err(e) => {
                    act.failures += 1;
                    tracing::warn!(slot, failures = act.failures, error = %e, "socket mode connection failed");
                    let wait = act.retry_delay();
                    act.schedule_connect(wait, ctx);
                }
            }
        }));
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{0}")]
    Slack(SlackError),
    #[error("websocket: {0}")]
    Socket(String),
    #[error("websocket handshake timed out")]
    Timeout,
}

impl StreamHandler<Tagged> for SocketActor {
    fn handle(&mut self, (generation, item): Tagged, ctx: &mut Self::Context) {
        let Some(item) = item else {
            self.lost(generation, "closed", ctx);
            return;
        };
        if !matches!(item, Ok(ws::Frame::Pong(_))) {
            if let Some(conn) = self.conns.get_mut(&generation) {
                conn.last_heard = Instant::now();
            }
        }
        match item {
            Ok(ws::Frame::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(generation, text, ctx),
                Err(_) => {
                    tracing::error!(slot = self.slot, len = bytes.len(), "non-UTF-8 text frame ignored")
                }
            },
            Ok(ws::Frame::Ping(payload)) => self.send(generation, ws::Message::Pong(payload)),
            Ok(ws::Frame::Pong(payload)) => self.on_pong(generation, &payload),
            Ok(ws::Frame::Close(reason)) => {
                tracing::info!(slot = self.slot, generation, code = ?reason.map(|r| u16::from(r.code)), "slack closed the socket");
                self.lost(generation, "close frame", ctx);
            }
            Ok(ws::Frame::Continuation(item)) => {
                let done = match item {
                    Item::FirstText(b) | Item::FirstBinary(b) => {
                        if let Some(c) = self.conns.get_mut(&generation) {
                            c.partial = b.to_vec();
                        }
                        None
                    }
                    Item::Continue(b) => {
                        if let Some(c) = self.conns.get_mut(&generation) {
                            c.partial.extend_from_slice(&b);
                        }
                        None
                    }
                    Item::Last(b) => self.conns.get_mut(&generation).map(|c| {
                        c.partial.extend_from_slice(&b);
                        std::mem::take(&mut c.partial)
                    }),
                };
                if let Some(whole) = done {
                    match String::from_utf8(whole) {
                        Ok(text) => self.on_text(generation, &text, ctx),
                        Err(_) => tracing::error!(slot = self.slot, "non-UTF-8 fragmented frame ignored"),
                    }
                }
            }
            Ok(ws::Frame::Binary(b)) => {
                tracing::warn!(slot = self.slot, len = b.len(), "binary frame ignored")
            }
            Err(e) => {
                tracing::warn!(slot = self.slot, generation, error = %e, "websocket protocol error; replacing the socket");
                self.lost(generation, "protocol error", ctx);
            }
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // Each connection signals its own end with a `None` item; nothing to do here.
    }
}

impl WriteHandler<ProtocolError> for SocketActor {
    fn error(&mut self, err: ProtocolError, _: &mut Self::Context) -> Running {
        tracing::warn!(slot = self.slot, error = %err, "websocket write failed");
        Running::Continue
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // A sink closing is expected during refresh; the read side decides about reconnecting.
    }
}

impl Handler<CloseSockets> for SocketActor {
    type Result = ();

    fn handle(&mut self, _: CloseSockets, ctx: &mut Self::Context) {
        self.stopped = true;
        let gens: Vec<u64> = self.conns.keys().copied().collect();
        for g in gens {
            self.drop_connection(g, ctx);
        }
        tracing::info!(slot = self.slot, "sockets closed");
    }
}
