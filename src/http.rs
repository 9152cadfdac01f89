//! The operator's HTTP endpoints on `PORT`: `GET /healthz` (the process is alive) and
//! `GET /readyz` (connected to Slack and the channel resolved), fed by [`Health`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use tokio::sync::Notify;

/// Liveness and readiness, written by the actors that know (sockets, startup) and read by the
/// HTTP handlers. Plain atomics: nothing here is owned by one actor.
#[derive(Debug, Default)]
pub struct Health {
    /// Bit `n` set while socket slot `n` has a live connection.
    sockets: AtomicU32,
    channel_resolved: AtomicBool,
    link_disabled: AtomicBool,
    draining: AtomicBool,
    /// Why the bot must stop (bad token, …); set once.
    fatal: Mutex<Option<String>>,
    fatal_set: Notify,
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
    let body = format!("sockets={sockets}\n");
    if health.is_ready() {
        HttpResponse::Ok().content_type("text/plain").body(format!("ready\n{body}"))
    } else {
        HttpResponse::ServiceUnavailable().content_type("text/plain").body(format!("not ready\n{body}"))
    }
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
