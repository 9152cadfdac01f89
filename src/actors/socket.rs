//! SocketActor: one Socket Mode connection slot. It asks `apps.connections.open` for a URL,
//! connects to it as given (`ws://` or `wss://`), acks every envelope the moment it arrives
//! (before parsing the event), and hands events to the router without waiting.
//!
//! On `disconnect` it opens the next connection first and closes the old one only once the new
//! one is up, still acking frames that arrive on the old socket. A dropped or silent socket
//! (nothing from Slack for [`STALE_AFTER`]) is replaced with capped, jittered backoff.
//! Unrecoverable auth errors end the process with a clear message instead of a retry loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::io::{SinkWrite, WriteHandler};
use actix::prelude::*;
use actix_http::ws::{Item, ProtocolError};
use awc::ws;
use futures_util::stream::{SplitSink, StreamExt};

use super::router::Deliver;
use super::slack_api::SlackApi;
use crate::http::Health;
use crate::slack::events;
use crate::slack::socket::{ack_text, parse_frame, Frame};
use crate::slack::{EnvelopeId, SlackError};

/// Slack pings about every 10 s; three missed pings mean the socket is dead.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// How often we ping Slack and check for staleness.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// An old socket still draining after a refresh is dropped after this long.
const DRAIN_FOR: Duration = Duration::from_secs(10);
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Envelopes can be large (interactive payloads reach tens of kilobytes).
const MAX_FRAME: usize = 4 * 1024 * 1024;

type WsFramed = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;
type WsSink = SinkWrite<ws::Message, SplitSink<WsFramed, ws::Message>>;

/// A frame from connection `generation`; `None` when that connection's stream ended.
type Tagged = (u64, Option<Result<ws::Frame, ProtocolError>>);

struct Connection {
    sink: WsSink,
    stream: SpawnHandle,
    /// Partial text of a fragmented frame.
    partial: Vec<u8>,
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
    /// Live connections by generation: normally one, two while a refresh drains the old one.
    conns: HashMap<u64, Connection>,
    /// The connection new frames are expected on.
    current: Option<u64>,
    next_generation: u64,
    connecting: bool,
    /// Consecutive failed connection attempts, for backoff.
    failures: u32,
    last_heard: Instant,
    ping_seq: u64,
    /// Set on shutdown or `link_disabled`: no more reconnects.
    stopped: bool,
}

impl SocketActor {
    pub fn new(slot: usize, slack: SlackApi, router: Recipient<Deliver>, health: Arc<Health>) -> SocketActor {
        SocketActor {
            slot,
            slack,
            router,
            health,
            conns: HashMap::new(),
            current: None,
            next_generation: 1,
            connecting: false,
            failures: 0,
            last_heard: Instant::now(),
            ping_seq: 0,
            stopped: false,
        }
    }

    fn schedule_connect(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        tracing::info!(slot = self.slot, wait_ms = after.as_millis() as u64, "reconnecting");
        ctx.run_later(after, |_, ctx| ctx.notify(Connect));
    }

    fn retry_delay(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let base = Duration::from_millis(500).saturating_mul(1 << self.failures.min(6));
        base.min(MAX_BACKOFF).mul_f64(0.75 + 0.25 * fastrand::f64())
    }

    fn send(&mut self, generation: u64, message: ws::Message) {
        if let Some(conn) = self.conns.get_mut(&generation) {
            if conn.sink.write(message).is_err() {
                tracing::warn!(slot = self.slot, generation, "socket closed before a frame could be sent");
            }
        }
    }

    fn lose_current(&mut self) {
        if self.current.take().is_some() {
            self.health.set_socket(self.slot, false);
        }
    }

    fn drop_connection(&mut self, generation: u64, ctx: &mut Context<Self>) {
        if let Some(mut conn) = self.conns.remove(&generation) {
            conn.sink.close();
            ctx.cancel_future(conn.stream);
        }
        if self.current == Some(generation) {
            self.lose_current();
        }
    }

    fn on_text(&mut self, generation: u64, text: &str, ctx: &mut Context<Self>) {
        let received = Instant::now();
        match parse_frame(text) {
            Ok(Frame::EventsApi(envelope)) => {
                self.ack(generation, &envelope.envelope_id, received);
                match events::parse(envelope.payload) {
                    Ok((event_id, event)) => {
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
            }
            Ok(Frame::Disconnect { reason }) => self.on_disconnect(generation, &reason, ctx),
            Ok(Frame::Unknown) => {
                tracing::warn!(slot = self.slot, len = text.len(), "unknown socket mode frame type; ignored")
            }
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
            }
            "too_many_websockets" => {
                self.drop_connection(generation, ctx);
                self.failures += 1;
                let wait = self.retry_delay().max(Duration::from_secs(10));
                self.schedule_connect(wait, ctx);
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
        if self.last_heard.elapsed() > STALE_AFTER {
            tracing::warn!(
                slot = self.slot,
                generation,
                "socket is stale (nothing from slack for 30s); replacing it"
            );
            self.drop_connection(generation, ctx);
            ctx.notify(Connect);
            return;
        }
        self.ping_seq += 1;
        let payload = format!("itbot-{}-{}", self.slot, self.ping_seq);
        self.send(generation, ws::Message::Ping(payload.into_bytes().into()));
    }
}

impl Actor for SocketActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Connect);
        ctx.run_interval(HEARTBEAT, |act, ctx| act.heartbeat(ctx));
    }
}

impl Handler<Connect> for SocketActor {
    type Result = ();

    fn handle(&mut self, _: Connect, ctx: &mut Self::Context) {
        if self.connecting || self.stopped {
            return;
        }
        self.connecting = true;
        let slack = self.slack.clone();
        let slot = self.slot;
        let fut = async move {
            let url = slack.open_connection().await.map_err(ConnectError::Slack)?;
            let client = crate::net::http_client(Duration::from_secs(10));
            let (_, framed) = client
                .ws(url)
                .max_frame_size(MAX_FRAME)
                .connect()
                .await
                .map_err(|e| ConnectError::Socket(e.to_string()))?;
            Ok::<_, ConnectError>(framed)
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.connecting = false;
            match result {
                Ok(framed) => {
                    let generation = act.next_generation;
                    act.next_generation += 1;
                    let (sink, stream) = framed.split();
                    let sink = SinkWrite::new(sink, ctx);
                    let tagged = stream
                        .map(move |f| (generation, Some(f)))
                        .chain(futures_util::stream::once(async move { (generation, None) }));
                    let handle = ctx.add_stream(tagged);
                    act.conns.insert(
                        generation,
                        Connection {
                            sink,
                            stream: handle,
                            partial: Vec::new(),
                        },
                    );
                    // The new connection is up: let the old one drain, then drop it.
                    if let Some(old) = act.current.replace(generation) {
                        if let Some(conn) = act.conns.get_mut(&old) {
                            conn.sink.close();
                        }
                        ctx.run_later(DRAIN_FOR, move |act, ctx| act.drop_connection(old, ctx));
                    }
                    act.failures = 0;
                    act.last_heard = Instant::now();
                    act.health.set_socket(act.slot, true);
                    tracing::info!(slot, generation, "socket mode connected");
                }
                Err(ConnectError::Slack(e)) if e.is_auth_failure() => {
                    act.stopped = true;
                    act.health.set_fatal(format!(
                        "Slack refused the app-level token ({e}). Check SLACK_APP_TOKEN: an xapp- token with connections:write, from the app's Basic Information page."
                    ));
                }
                Err(ConnectError::Slack(SlackError::RateLimited { retry_after, .. })) => {
                    act.failures += 1;
                    tracing::warn!(slot, retry_after_secs = retry_after.as_secs(), "apps.connections.open is rate limited");
                    act.schedule_connect(retry_after.max(act.retry_delay()), ctx);
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
}

impl StreamHandler<Tagged> for SocketActor {
    fn handle(&mut self, (generation, item): Tagged, ctx: &mut Self::Context) {
        let Some(item) = item else {
            // This connection's stream ended.
            let was_current = self.current == Some(generation);
            self.drop_connection(generation, ctx);
            if was_current {
                tracing::warn!(slot = self.slot, generation, "socket closed");
                self.failures += 1;
                let wait = self.retry_delay();
                self.schedule_connect(wait, ctx);
            }
            return;
        };
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Frame::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(generation, text, ctx),
                Err(_) => {
                    tracing::error!(slot = self.slot, len = bytes.len(), "non-UTF-8 text frame ignored")
                }
            },
            Ok(ws::Frame::Ping(payload)) => self.send(generation, ws::Message::Pong(payload)),
            Ok(ws::Frame::Pong(_)) => {}
            Ok(ws::Frame::Close(reason)) => {
                tracing::info!(slot = self.slot, generation, code = ?reason.map(|r| u16::from(r.code)), "slack closed the socket");
                let was_current = self.current == Some(generation);
                self.drop_connection(generation, ctx);
                if was_current {
                    ctx.notify(Connect);
                }
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
                let was_current = self.current == Some(generation);
                self.drop_connection(generation, ctx);
                if was_current {
                    ctx.notify(Connect);
                }
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
