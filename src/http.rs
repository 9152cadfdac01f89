//! The operator's HTTP endpoints on `PORT`: `GET /healthz` (the process is alive),
//! `GET /readyz` (connected to Slack and the channel resolved, plus the transport counters), fed by
//! [`Health`], and `GET /metrics` (Prometheus text: LLM calls, tokens and cost so far).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use tokio::sync::Notify;

use crate::openai::meter::LlmMeter;

/// Liveness and readiness, written by the actors that know (sockets, startup) and read by the
/// HTTP handlers. Plain atomics: nothing here is owned by one actor.
#[derive(Debug, Default)]
pub struct Health {
    /// Bit `n` set while socket slot `n` has a live connection.
    sockets: AtomicU32,
    channel_resolved: AtomicBool,
    link_disabled: AtomicBool,
    /// Socket slots whose actor has stopped for good (`link_disabled`): they never reconnect.
    slots_retired: AtomicU32,
    /// Socket Mode connections this process holds open (a refresh holds two in one slot).
    open_connections: AtomicU32,
    /// Another process holds sockets of this app or posts as its bot: replicas share the channel.
    peers: AtomicBool,
    draining: AtomicBool,
    /// With `REDIS_URL`: 1 while Redis answers, 2 while it does not (0: not used, or not yet).
    redis: std::sync::atomic::AtomicU8,
    /// Why the bot must stop (bad token, …); set once.
    fatal: Mutex<Option<String>>,
    fatal_set: Notify,
    /// What the transport has been through, for operators.
    pub transport: TransportStats,
    /// Everything else `/metrics` shows.
    pub metrics: crate::metrics::Metrics,
    /// LLM calls, tokens and cost, written by the OpenAiActor.
    pub llm: Arc<LlmMeter>,
}

/// Counters of transport trouble, bumped by the socket and Web API actors and shown on `/readyz`
/// (and in the log line of each event, as `*_total` fields).
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Socket Mode connections that said `hello`.
    pub connects: AtomicU64,
    /// Connections that replaced an earlier one (refresh, drop, stale).
    pub reconnects: AtomicU64,
    /// Connections declared stale because Slack sent nothing for too long.
    pub stale: AtomicU64,
    /// HTTP 429 answers from the Web API (`apps.connections.open` included).
    pub rate_limited: AtomicU64,
    /// Web API attempts repeated after a 5xx, a network error or a timeout.
    pub retries: AtomicU64,
    /// Web API calls given up because the queue was full or they waited too long.
    pub dropped_calls: AtomicU64,
}

impl TransportStats {
    /// Adds one and returns the new total (for the log line).
    pub fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// `name=value` lines, for `/readyz`.
    pub fn render(&self) -> String {
        let get = TransportStats::get;
        format!(
            "connects={}\nreconnects={}\nstale_sockets={}\nrate_limited={}\nretries={}\ndropped_calls={}\n",
            get(&self.connects),
            get(&self.reconnects),
            get(&self.stale),
            get(&self.rate_limited),
            get(&self.retries),
            get(&self.dropped_calls),
        )
    }
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    pub fn set_socket(&self, slot: usize, up: bool) {
        let bit = 1u32 << (slot.min(31));
        if up {
            self.sockets.fetch_or(bit, Ordering::SeqCst);
        } else {
            self.sockets.fetch_and(!bit, Ordering::SeqCst);
        }
    }

    pub fn connected_sockets(&self) -> u32 {
        self.sockets.load(Ordering::SeqCst).count_ones()
    }

    pub fn set_channel_resolved(&self) {
        self.channel_resolved.store(true, Ordering::SeqCst);
    }

    pub fn set_link_disabled(&self) {
        self.link_disabled.store(true, Ordering::SeqCst);
    }

    /// Socket Mode was turned off for the app: no slot reconnects.
    pub fn is_link_disabled(&self) -> bool {
        self.link_disabled.load(Ordering::SeqCst)
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::SeqCst);
    }

    pub fn connection_closed(&self) {
        let _ = self.open_connections.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Socket Mode connections this process holds open.
    pub fn open_connections(&self) -> u32 {
        self.open_connections.load(Ordering::SeqCst)
    }

    /// How Redis answered its last operation (`None` without `REDIS_URL`, or before the first).
    pub fn redis_up(&self) -> Option<bool> {
        match self.redis.load(Ordering::SeqCst) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    pub fn set_redis_up(&self, up: bool) {
        self.redis.store(if up { 1 } else { 2 }, Ordering::SeqCst);
    }

    /// Another replica is known to share the channel (seen once, for the process's life).
    pub fn peers_seen(&self) -> bool {
        self.peers.load(Ordering::SeqCst)
    }

    /// Marks replicas as seen; true the first time.
    pub fn mark_peers(&self) -> bool {
        !self.peers.swap(true, Ordering::SeqCst)
    }

    pub fn retire_slot(&self) {
        self.slots_retired.fetch_add(1, Ordering::SeqCst);
    }

    /// Socket slots that stopped for good and will not reconnect.
    pub fn retired_slots(&self) -> u32 {
        self.slots_retired.load(Ordering::SeqCst)
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Ready to take events: a socket is up, the channel is known, and we are not stopping.
    pub fn is_ready(&self) -> bool {
        self.connected_sockets() > 0
            && self.channel_resolved.load(Ordering::SeqCst)
            && !self.link_disabled.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
    }

    /// Records an unrecoverable error; the process ends with it.
    pub fn set_fatal(&self, reason: String) {
        let mut slot = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            tracing::error!(reason = %reason, "fatal");
            *slot = Some(reason);
            self.fatal_set.notify_waiters();
            self.fatal_set.notify_one();
        }
    }

    /// Waits until [`Health::set_fatal`] is called and returns its reason.
    pub async fn fatal(&self) -> String {
        loop {
            if let Some(r) = self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return r;
            }
            self.fatal_set.notified().await;
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(health: web::Data<Arc<Health>>) -> HttpResponse {
    let sockets = health.connected_sockets();
    let mut body = format!("sockets={sockets}\n");
    if health.is_link_disabled() {
        body.push_str("link_disabled: Socket Mode is turned off in the Slack app's settings\n");
    }
    if health.draining.load(Ordering::SeqCst) {
        body.push_str("draining\n");
    }
    match health.redis_up() {
        Some(true) => body.push_str("redis=up\n"),
        Some(false) => body.push_str(
            "redis=down: answers go on; replicas fall back to Slack's copy of each thread and to their own pacing until it returns\n",
        ),
        None => {}
    }
    body.push_str(&health.transport.render());
    if health.is_ready() {
        HttpResponse::Ok().content_type("text/plain").body(format!("ready\n{body}"))
    } else {
        HttpResponse::ServiceUnavailable().content_type("text/plain").body(format!("not ready\n{body}"))
    }
}

async fn metrics(health: web::Data<Arc<Health>>) -> HttpResponse {
    let t = &health.transport;
    let get = TransportStats::get;
    let transport = crate::metrics::Transport {
        connects: get(&t.connects),
        reconnects: get(&t.reconnects),
        stale: get(&t.stale),
        rate_limited: get(&t.rate_limited),
        retries: get(&t.retries),
        dropped_calls: get(&t.dropped_calls),
        sockets_connected: health.connected_sockets(),
        ready: health.is_ready(),
    };
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(crate::metrics::render(&health.metrics, &health.llm, transport))
}

/// Binds the endpoints and starts serving on the current actix system; returns the bound
/// address (port 0 picks a free port) and the server handle.
pub fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let data = web::Data::new(health);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((bound, handle))
}
