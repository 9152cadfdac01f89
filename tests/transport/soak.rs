//! The soak: a few hundred tickets through random transport faults (seeded, so a failure replays
//! the same way). Every ticket must be answered exactly once and every escalation posted once.

use std::time::{Duration, Instant};

use itbot::http::TransportStats;
use itbot_fakes::workspace::Fault;

use crate::helpers::{spawn, wait_for, Setup, TestApp};

/// Tickets posted, one every [`GAP`].
const TICKETS: usize = 300;
const GAP: Duration = Duration::from_millis(100);
/// A random fault before every this many tickets.
const FAULT_EVERY: usize = 5;
/// Every this many tickets, the requester asks for a human, twice.
const ESCALATE_EVERY: usize = 8;
/// The faults' seed; `ITBOT_SOAK_SEED` replays another one.
const SEED: u64 = 0x17b0_7503;

fn seed() -> u64 {
    std::env::var("ITBOT_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED)
}

const TEXTS: &[&str] = &[
    "My VPN won't connect from home, AWS VPN Client spins",
    "I forgot my password and I'm locked out of Okta",
    "Zoom says my microphone is not working",
    "I need access to Snowflake for the finance dashboards",
    "please add me to the design group in Google",
    "Okta Verify isn't sending push notifications",
    "my laptop won't join the office Wi-Fi",
    "gmail is not loading my emails",
    "1Password won't unlock on my Mac",
    "slack notifications stopped on my phone",
];

/// Injects one fault from the list in the issue; returns its name for the failure message.
fn random_fault(app: &TestApp, rng: &mut fastrand::Rng) -> &'static str {
    let ws = &app.ws;
    let one = rng.usize(..2);
    match rng.usize(..16) {
        0 => {
            ws.drop_connection(one);
            "drop one socket"
        }
        1 => {
            ws.drop_connections();
            "drop every socket"
        }
        2 => {
            ws.send_disconnect_to(one, "warning", Some(Duration::from_millis(500)));
            "warning, then close"
        }
        3 => {
            ws.send_disconnect_all("refresh_requested");
            "refresh_requested on every socket"
        }
        4 => {
            ws.send_disconnect_to(one, "too_many_websockets", Some(Duration::from_millis(100)));
            "too_many_websockets"
        }
        5 => {
            ws.hold_acks(3);
            "three acks lost"
        }
        6 => {
            ws.inject("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });
            "429 on chat.postMessage"
        }
        7 => {
            ws.inject_times("apps.connections.open", Fault::RateLimited { retry_after_secs: 1 }, 2);
            ws.drop_connection(one);
            "429 on apps.connections.open"
        }
        8 => {
            ws.inject_times("chat.postMessage", Fault::ServerError(500), 2);
            "two 500s on chat.postMessage"
        }
        9 => {
            ws.inject("apps.connections.open", Fault::ServerError(503));
            ws.drop_connection(one);
            "503 on apps.connections.open"
        }
        10 => {
            ws.inject("chat.postMessage", Fault::RespondLate(Duration::from_secs(3)));
            "chat.postMessage answers after the timeout"
        }
        11 => {
            ws.inject("chat.postMessage", Fault::Delay(Duration::from_millis(500)));
            "slow chat.postMessage"
        }
        12 => {
            ws.inject("chat.postMessage", Fault::Hang);
            "chat.postMessage hangs"
        }
        13 => {
            ws.inject("assistant.threads.setStatus", Fault::RateLimited { retry_after_secs: 2 });
            "429 on the status indicator"
        }
        14 => {
            ws.mute_connections();
            "every socket goes silent"
        }
        _ => {
            ws.inject("apps.connections.open", Fault::Hang);
            ws.drop_connection(one);
            "apps.connections.open hangs"
        }
    }
}

#[actix_rt::test]
async fn a_soak_of_hundreds_of_tickets_under_random_faults_answers_each_exactly_once() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let app = spawn(Setup::default()).await;
    let started = Instant::now();
    let mut faults: Vec<&'static str> = Vec::new();

    let mut tickets: Vec<(String, String, bool)> = Vec::new();
    for i in 0..TICKETS {
        if i % FAULT_EVERY == 0 {
            faults.push(random_fault(&app, &mut rng));
        }
        let who = format!("employee{}", i % 40);
        let text = TEXTS[rng.usize(..TEXTS.len())];
        let root = app.ticket(&who, text);
        tickets.push((who, root, i % ESCALATE_EVERY == 0));
        tokio::time::sleep(GAP).await;
    }
    for (_, root, _) in &tickets {
        app.wait_bot_replies(root, 1).await;
    }
    for (i, (who, root, escalate)) in tickets.iter().enumerate() {
        if !escalate {
            continue;
        }
        if i % (2 * ESCALATE_EVERY) == 0 {
            faults.push(random_fault(&app, &mut rng));
        }
        let user = app.ws.user_id(who);
        for _ in 0..2 {
            app.ws.post(&user, &app.it(), "still broken, can a human help?", Some(root));
        }
    }
    for (_, root, escalate) in &tickets {
        if *escalate {
            app.wait_bot_replies(root, 2).await;
        }
    }
    app.settle().await;
    let elapsed = started.elapsed();

    let mut wrong = Vec::new();
    for (_, root, escalate) in &tickets {
        let replies = app.bot_replies(root);
        let briefs = replies.iter().filter(|r| r.text.contains("*Symptom:*")).count();
        let want = if *escalate { 2 } else { 1 };
        if replies.len() != want || briefs != usize::from(*escalate) {
            wrong.push(format!("{root}: {} replies, {briefs} escalations", replies.len()));
        }
    }
    let stats = &app.bot.health.transport;
    let summary = format!(
        "seed {seed}: {TICKETS} tickets, {} faults in {:.1}s; reconnects={} stale={} rate_limited={} retries={} dropped={}",
        faults.len(),
        elapsed.as_secs_f64(),
        TransportStats::get(&stats.reconnects),
        TransportStats::get(&stats.stale),
        TransportStats::get(&stats.rate_limited),
        TransportStats::get(&stats.retries),
        TransportStats::get(&stats.dropped_calls),
    );
    eprintln!("soak: {summary}");
    assert!(wrong.is_empty(), "{summary}\nfaults: {faults:?}\nwrong: {wrong:#?}");
    assert_eq!(TransportStats::get(&stats.dropped_calls), 0, "{summary}");
    assert!(
        TransportStats::get(&stats.reconnects) > 0 && TransportStats::get(&stats.rate_limited) > 0,
        "{summary}"
    );
    let health = app.bot.health.clone();
    wait_for("both sockets up at the end", || {
        let up = health.connected_sockets() == 2;
        async move { up.then_some(()) }
    })
    .await;
}
