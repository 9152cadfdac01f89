//! The Slack transport under every fault Slack produces, as a user sees it: the reply is there,
//! once. Each test runs the real bot against the simulated workspace with short timings.

#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod soak;

use std::time::Duration;

use common::api_on;
use helpers::{counter, fast_transport, fast_workspace, spawn, wait_until, Setup, TestApp};
use itbot::actors::slack_api::{ApiOptions, Backlog, GetBacklog};
use itbot::http::{Health, TransportStats};
use itbot::slack::client::StreamStart;
use itbot::slack::{ChannelId, SlackApi, SlackError, Ts, UserId};
use itbot_fakes::workspace::{Fault, RateLimits, Workspace, WorkspaceOptions};

const VPN: &str = "My VPN won't connect from home, AWS VPN Client spins";

/// Posts a ticket, waits for its answer, settles, and checks it was answered exactly once.
async fn answered_once(app: &TestApp, who: &str, text: &str) -> String {
    let root = app.ticket(who, text);
    app.wait_bot_replies(&root, 1).await;
    app.settle().await;
    assert_eq!(app.bot_replies(&root).len(), 1, "the ticket was not answered exactly once");
    root
}

// -- Socket Mode ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_refresh_warning_opens_the_new_socket_before_closing_the_old_and_loses_no_ticket() {
    let app = spawn(Setup::default()).await;

    app.ws.send_disconnect_all("warning");
    let root = app.ticket("alice", VPN);
    app.wait_bot_replies(&root, 1).await;
    wait_until("both slots to be on new sockets", || {
        app.ws.connections_opened() >= 4 && app.ws.open_connections() == 2
    })
    .await;
    app.settle().await;

    assert!(app.ws.peak_connections() >= 3, "an old socket closed before its replacement opened");
    assert_eq!(app.bot_replies(&root).len(), 1);
    assert!(app.bot.health.is_ready());
    assert!(TransportStats::get(&app.bot.health.transport.reconnects) >= 2);
}

#[actix_rt::test]
async fn refresh_requested_then_slack_closing_the_old_socket_loses_no_ticket() {
    let app = spawn(Setup::default()).await;

    for slot in 0..2 {
        app.ws.send_disconnect_to(slot, "refresh_requested", Some(Duration::from_millis(300)));
    }
    let roots: Vec<String> = ["alice", "bob", "carol"].iter().map(|who| app.ticket(who, VPN)).collect();
    for root in &roots {
        app.wait_bot_replies(root, 1).await;
    }
    app.settle().await;

    for root in &roots {
        assert_eq!(app.bot_replies(root).len(), 1);
    }
    assert_eq!(app.bot.health.connected_sockets(), 2);
}

#[actix_rt::test]
async fn dropped_tcp_connections_are_replaced_and_a_ticket_posted_meanwhile_is_answered_once() {
    let app = spawn(Setup::default()).await;

    app.ws.drop_connections();
    answered_once(&app, "alice", VPN).await;
    app.ws.drop_connection(0);
    answered_once(&app, "bob", "I forgot my password").await;

    let health = &app.bot.health;
    wait_until("three reconnects and two sockets", || {
        TransportStats::get(&health.transport.reconnects) >= 3 && health.connected_sockets() == 2
    })
    .await;
}

#[actix_rt::test]
async fn a_socket_that_goes_silent_is_declared_stale_and_replaced() {
    let app = spawn(Setup::default()).await;

    app.ws.mute_connections();
    answered_once(&app, "alice", VPN).await;

    assert!(TransportStats::get(&app.bot.health.transport.stale) >= 1, "no socket was declared stale");
    wait_until("two sockets again", || app.bot.health.connected_sockets() == 2).await;
}

#[actix_rt::test]
async fn pongs_to_the_bots_own_pings_keep_a_socket_alive_when_slack_stops_pinging() {
    let app = spawn(Setup {
        workspace: Some(WorkspaceOptions { ping_interval: Duration::from_secs(3600), ..fast_workspace() }),
        ..Setup::default()
    })
    .await;

    // 40 pings at 200 ms over two sockets is four seconds: twice the stale limit.
    wait_until("the bot to ping for longer than the stale limit", || app.ws.client_pings() >= 40).await;

    assert_eq!(
        TransportStats::get(&app.bot.health.transport.stale),
        0,
        "a socket answering pings was declared stale"
    );
    assert_eq!(app.ws.connections_opened(), 2);
    answered_once(&app, "alice", VPN).await;
}

#[actix_rt::test]
async fn redelivered_events_are_acked_again_and_a_mention_is_answered_once() {
    let app = spawn(Setup::default()).await;
    // message + app_mention: four acks lost means each delivery comes again at least once.
    app.ws.hold_acks(4);

    let text = format!("<@{}> my VPN won't connect from home", app.ws.bot_user_id());
    let root = app.ticket("alice", &text);
    app.wait_bot_replies(&root, 1).await;
    wait_until("the lost acks to be redelivered and acked", || {
        app.ws.acks_lost() == 4 && app.ws.pending_deliveries() == 0
    })
    .await;
    app.settle().await;

    assert_eq!(app.bot_replies(&root).len(), 1);
    assert!(app.ws.envelopes_sent() >= app.ws.envelopes_acked() + 4, "nothing was redelivered");
}

#[actix_rt::test]
async fn too_many_websockets_backs_off_and_the_working_socket_keeps_serving() {
    let app = spawn(Setup::default()).await;
    app.ws.occupy_connection_slots(8);

    app.ws.send_disconnect_to(0, "refresh_requested", None);
    wait_until("the replacement socket to be refused", || app.ws.connections_refused() >= 1).await;
    answered_once(&app, "alice", VPN).await;
    assert_eq!(app.bot.health.connected_sockets(), 2, "the refused refresh closed a working socket");
    app.ws.release_connection_slots();
    wait_until("the refresh to succeed once slots are free", || app.ws.connections_opened() >= 3).await;

    wait_until("two sockets", || app.ws.open_connections() == 2).await;
    answered_once(&app, "bob", "I forgot my password").await;
}

#[actix_rt::test]
async fn link_disabled_stops_reconnecting_and_readiness_says_why() {
    let app = spawn(Setup::default()).await;

    app.ws.send_disconnect_all("link_disabled");
    wait_until("readiness to go false", || !app.bot.health.is_ready()).await;
    wait_until("the sockets to close", || app.ws.open_connections() == 0).await;
    // Each socket slot retires for good once it decided not to reconnect: after that no
    // reconnect can come, so the count of connection opens is final.
    // The test bot holds two sockets (the shipped `slack.connections`).
    wait_until("both socket slots to retire", || app.bot.health.retired_slots() == 2).await;
    let opens = app.ws.calls_of("apps.connections.open");
    assert_eq!(app.ws.calls_of("apps.connections.open"), opens, "the bot reconnected after link_disabled");
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503);
    assert!(body.contains("link_disabled"), "{body}");
}

#[actix_rt::test]
async fn an_app_token_slack_refuses_ends_the_process_with_a_clear_message() {
    let app = spawn(Setup {
        before_start: Some(Box::new(|ws: &Workspace| {
            ws.inject_times("apps.connections.open", Fault::Error("invalid_auth".into()), 2);
        })),
        no_wait: true,
        ..Setup::default()
    })
    .await;
    let ws = app.ws.clone();

    let result =
        tokio::time::timeout(helpers::DEADLINE, app.bot.run_until_stopped(std::future::pending())).await;

    let reason = result.expect("the bot stopped by itself").expect_err("the bot reported an error");
    assert!(reason.contains("SLACK_APP_TOKEN") && reason.contains("invalid_auth"), "{reason}");
    assert!(ws.calls_of("apps.connections.open") <= 2, "the bot retried a refused token");
}

#[actix_rt::test]
async fn a_bot_token_revoked_at_runtime_ends_the_process_with_a_clear_message() {
    let app = spawn(Setup::default()).await;
    app.ws.inject("chat.postMessage", Fault::Error("token_revoked".into()));
    app.ticket("alice", VPN);
    let ws = app.ws.clone();

    let result =
        tokio::time::timeout(helpers::DEADLINE, app.bot.run_until_stopped(std::future::pending())).await;

    let reason = result.expect("the bot stopped by itself").expect_err("the bot reported an error");
    assert!(reason.contains("SLACK_BOT_TOKEN") && reason.contains("token_revoked"), "{reason}");
    assert_eq!(ws.calls_of("chat.postMessage"), 1);
}

#[actix_rt::test]
async fn a_hung_apps_connections_open_times_out_and_the_slot_connects() {
    let app = spawn(Setup {
        before_start: Some(Box::new(|ws: &Workspace| ws.inject("apps.connections.open", Fault::Hang))),
        no_wait: true,
        ..Setup::default()
    })
    .await;

    wait_until("both slots to connect", || app.bot.health.connected_sockets() == 2).await;

    assert_eq!(app.ws.calls_of("apps.connections.open"), 3);
    answered_once(&app, "alice", VPN).await;
}

#[actix_rt::test]
async fn readiness_follows_the_sockets_and_rate_limited_connects_wait_out_retry_after() {
    let app = spawn(Setup::default()).await;
    app.ws.inject_times("apps.connections.open", Fault::RateLimited { retry_after_secs: 2 }, 2);

    app.ws.drop_connections();
    let app_ref = &app;
    helpers::wait_for("/readyz to say not ready", || async move {
        (app_ref.readyz().await.0 == 503).then_some(())
    })
    .await;
    let (status, body) = helpers::wait_for("/readyz to say ready again", || async move {
        let r = app_ref.readyz().await;
        (r.0 == 200 && counter(&r.1, "sockets") == 2).then_some(r)
    })
    .await;

    assert_eq!(status, 200);
    assert!(counter(&body, "rate_limited") >= 2, "{body}");
    assert!(counter(&body, "reconnects") >= 2, "{body}");
    // Two first connects, two rate-limited attempts, two that waited: no spinning.
    assert!(app.ws.calls_of("apps.connections.open") <= 6);
    answered_once(&app, "alice", VPN).await;
}

// -- Web API -------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_429_on_chat_post_message_is_waited_out_and_the_answer_posted_once() {
    let app = spawn(Setup::default()).await;
    app.ws.inject("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });

    answered_once(&app, "alice", VPN).await;

    assert!(TransportStats::get(&app.bot.health.transport.rate_limited) >= 1);
    assert_eq!(app.ws.calls_of("chat.postMessage"), 3, "one 429, the answer, the control answer");
}

#[actix_rt::test]
async fn a_429_on_one_method_does_not_delay_the_answer() {
    let app = spawn(Setup::default()).await;
    // The status indicator is paused for 5 s; the answer (about 100 ms after the post) must not
    // queue behind it.
    app.ws.inject("assistant.threads.setStatus", Fault::RateLimited { retry_after_secs: 5 });

    let root = app.ticket("alice", VPN);
    let replies = app.wait_bot_replies(&root, 1).await;

    assert_eq!(replies.len(), 1);
    assert_eq!(
        app.ws.calls_of("assistant.threads.setStatus"),
        1,
        "the answer waited for the status indicator"
    );
    wait_until("the status to be set after Retry-After", || {
        app.ws.calls_of("assistant.threads.setStatus") == 2
    })
    .await;
}

#[actix_rt::test]
async fn server_errors_are_retried_and_the_answer_posted_once() {
    let app = spawn(Setup::default()).await;
    app.ws.inject_times("chat.postMessage", Fault::ServerError(503), 2);

    answered_once(&app, "alice", VPN).await;

    assert!(TransportStats::get(&app.bot.health.transport.retries) >= 2);
    assert!(app.ws.calls_of("conversations.replies") >= 1, "the bot did not look before posting again");
}

#[actix_rt::test]
async fn a_slow_answer_within_the_timeout_is_waited_for() {
    let app = spawn(Setup::default()).await;
    app.ws.inject("chat.postMessage", Fault::Delay(Duration::from_millis(800)));

    answered_once(&app, "alice", VPN).await;

    assert_eq!(TransportStats::get(&app.bot.health.transport.retries), 0);
}

#[actix_rt::test]
async fn a_post_whose_answer_comes_after_the_timeout_is_not_posted_again() {
    let app = spawn(Setup::default()).await;
    // Slack stores the reply at once but answers after the bot's 2 s request timeout.
    app.ws.inject("chat.postMessage", Fault::RespondLate(Duration::from_secs(4)));

    answered_once(&app, "alice", VPN).await;

    assert!(app.ws.calls_of("conversations.replies") >= 1, "the bot did not look before posting again");
}

#[actix_rt::test]
async fn a_hung_post_times_out_and_is_sent_again_once() {
    let app = spawn(Setup::default()).await;
    app.ws.inject("chat.postMessage", Fault::Hang);

    answered_once(&app, "alice", VPN).await;

    assert_eq!(app.ws.calls_of("chat.postMessage"), 3, "the hung one, the answer, the control answer");
}

#[actix_rt::test]
async fn a_full_lane_drops_new_calls_loudly_instead_of_queueing_forever() {
    let ws = Workspace::start(fast_workspace()).await.expect("workspace starts");
    let health = Health::new();
    let options = ApiOptions { max_queued: 1, ..fast_transport().api };
    let (api, transport) = api_on(&ws, &options, health.clone());
    let channel = ChannelId::from(ws.it_channel());
    ws.inject("chat.postMessage", Fault::RateLimited { retry_after_secs: 30 });

    let first = {
        let (api, channel) = (api.clone(), channel.clone());
        actix_rt::spawn(async move { api.post_message(&channel, None, "first", None).await })
    };
    helpers::wait_for("the first post to wait out its 429 in the queue", || {
        let transport = transport.clone();
        async move { (transport.send(GetBacklog).await.ok()? == Backlog { queued: 1, active: 0 }).then_some(()) }
    })
    .await;
    let second = api.post_message(&channel, None, "second", None).await;

    assert!(matches!(second, Err(SlackError::Dropped { reason: "queue full", .. })), "{second:?}");
    assert_eq!(TransportStats::get(&health.transport.dropped_calls), 1);
    assert_eq!(ws.calls_of("chat.postMessage"), 1);
    first.abort();
}

#[actix_rt::test]
async fn a_stream_starts_now_within_its_budget_or_not_at_all() {
    // Slack's real pacing: chat.startStream is Tier 2, 20 a minute (bursts of 4 assumed).
    let ws = Workspace::start(WorkspaceOptions { rate_limits: RateLimits::Slack, ..fast_workspace() })
        .await
        .expect("workspace starts");
    let health = Health::new();
    let options = ApiOptions::default();
    let (api, _actor) = api_on(&ws, &options, health);
    let channel = ChannelId::from(ws.it_channel());
    let alice = ws.user_id("alice");
    let team = ws.team_id().to_string();

    let mut outcomes = Vec::new();
    for i in 0..6 {
        let root = Ts::from(ws.post(&alice, ws.it_channel(), &format!("ticket {i}"), None).as_str());
        let start = StreamStart {
            channel: &channel,
            thread_ts: &root,
            recipient_user: &UserId::from(alice.as_str()),
            recipient_team: &team,
            markdown_text: "Looking",
        };
        outcomes.push(api.start_stream(start).await);
    }

    // The bot keeps one call short of Slack's burst of 4.
    assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
    assert!(outcomes[3..].iter().all(|o| matches!(o, Err(SlackError::NoRoom { .. }))), "{outcomes:?}");
    assert_eq!(ws.calls_of("chat.startStream"), 3, "a stream without room was sent or queued");
    assert_eq!(ws.rate_limited_calls(), 0);
}

#[actix_rt::test]
async fn posts_waiting_for_the_channels_budget_go_out_oldest_employee_first() {
    let ws = Workspace::start(WorkspaceOptions { assist_enabled: false, ..fast_workspace() })
        .await
        .expect("workspace starts");
    let health = Health::new();
    let options = fast_transport().api;
    let (api, transport) = api_on(&ws, &options, health);
    let channel = ChannelId::from(ws.it_channel());
    let root = Ts::from(ws.post(&ws.user_id("alice"), ws.it_channel(), "a ticket", None).as_str());
    // The channel's lane is paused by a 429, so the answers below wait together.
    ws.inject("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 });
    let post = |text: &'static str, since: &'static str| {
        let (api, channel, root) = (api.clone(), channel.clone(), root.clone());
        actix_rt::spawn(async move {
            api.post_answer(&channel, &root, text, None, None, Some(&Ts::from(since))).await
        })
    };
    let first = post("to the newest message", "1700000050.000000");
    helpers::wait_for("the first post to wait out its 429", || {
        let transport = transport.clone();
        async move { (transport.send(GetBacklog).await.ok()?.queued == 1).then_some(()) }
    })
    .await;

    let later = [
        post("to the third message", "1700000030.000000"),
        post("to the first message", "1700000010.000000"),
        post("to the second message", "1700000020.000000"),
    ];
    for p in later {
        p.await.expect("joined").expect("posted");
    }
    first.await.expect("joined").expect("posted");

    let order: Vec<String> =
        ws.thread(ws.it_channel(), root.as_str()).into_iter().skip(1).map(|m| m.text).collect();
    assert_eq!(
        order,
        ["to the first message", "to the second message", "to the third message", "to the newest message"]
    );
}

#[actix_rt::test]
async fn background_reads_yield_the_read_budget_to_a_read_someone_waits_for() {
    let ws = Workspace::start(WorkspaceOptions { assist_enabled: false, ..fast_workspace() })
        .await
        .expect("workspace starts");
    let (api, transport) = api_on(&ws, &fast_transport().api, Health::new());
    let channel = ChannelId::from(ws.it_channel());
    let roots: Vec<Ts> = (0..4)
        .map(|i| {
            Ts::from(ws.post(&ws.user_id("alice"), ws.it_channel(), &format!("ticket {i}"), None).as_str())
        })
        .collect();
    let read = |api: SlackApi, root: &Ts| {
        let (channel, root) = (channel.clone(), root.clone());
        actix_rt::spawn(async move { api.thread_messages(&channel, &root).await.map(|m| m.len()) })
    };
    let queued = |n: usize| {
        let transport = transport.clone();
        move || {
            let transport = transport.clone();
            async move { (transport.send(GetBacklog).await.ok()?.queued == n).then_some(()) }
        }
    };
    // The backfill's first read draws a 429: the lane pauses, and what follows waits together.
    ws.inject("conversations.replies", Fault::RateLimited { retry_after_secs: 1 });
    let backfill = api.background();
    let first = read(backfill.clone(), &roots[0]);
    helpers::wait_for("the first background read to wait out its 429", queued(1)).await;
    let more = [read(backfill.clone(), &roots[1]), read(backfill, &roots[2])];
    helpers::wait_for("two more background reads to queue", queued(3)).await;
    let live = read(api, &roots[3]);
    helpers::wait_for("the live read to queue behind them", queued(4)).await;

    assert_eq!(live.await.expect("joined").expect("read"), 1);
    for r in more {
        assert_eq!(r.await.expect("joined").expect("read"), 1);
    }
    assert_eq!(first.await.expect("joined").expect("read"), 1);

    let order: Vec<String> = ws
        .api_calls()
        .into_iter()
        .filter(|c| c.method == "conversations.replies")
        .filter_map(|c| c.params.get("ts").and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    let r = |i: usize| roots[i].as_str().to_string();
    // The refused read, then the live one although it asked last, then the backfill in order.
    assert_eq!(order, [r(0), r(3), r(0), r(1), r(2)]);
}

// -- Shutdown ------------------------------------------------------------------------------------

#[actix_rt::test]
async fn shutdown_finishes_the_answer_in_flight_closes_the_sockets_and_returns_ok() {
    let app = spawn(Setup {
        workspace: Some(WorkspaceOptions { assist_enabled: false, ..fast_workspace() }),
        tweak: Some(Box::new(|c| c.settings.assist.wait_secs = 30)),
        ..Setup::default()
    })
    .await;
    let root = app.ticket("alice", VPN);
    wait_until("the ticket to reach the bot", || app.ws.envelopes_acked() >= 1).await;
    let bot = &app.bot;
    helpers::wait_for("the thread to start", || async move { (bot.live_threads().await == 1).then_some(()) })
        .await;
    let TestApp { ws, bot } = app;
    let health = bot.health.clone();

    let result = tokio::time::timeout(helpers::DEADLINE, bot.run_until_stopped(async {})).await;

    assert_eq!(result.expect("shutdown finished within the grace period"), Ok(()));
    assert!(!health.is_ready());
    let replies: Vec<_> = ws
        .thread(ws.it_channel(), &root)
        .into_iter()
        .filter(|p| p.user.as_deref() == Some(ws.bot_user_id()))
        .collect();
    assert_eq!(replies.len(), 1, "the answer in flight was not posted before exit");
    wait_until("the sockets to be closed", || ws.open_connections() == 0).await;
}

#[actix_rt::test]
async fn sigterm_drains_the_real_binary_which_exits_0_without_logging_text_or_tokens() {
    use std::process::{Command, Stdio};

    let ws = Workspace::start(WorkspaceOptions { assist_enabled: false, ..fast_workspace() })
        .await
        .expect("workspace starts");
    let child = Command::new(env!("CARGO_BIN_EXE_itbot"))
        .arg("run")
        .env_clear()
        .env("SLACK_BOT_TOKEN", ws.bot_token())
        .env("SLACK_APP_TOKEN", ws.app_token())
        .env("SLACK_API_URL", ws.api_url())
        .env("ITBOT_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/config/itbot.toml"))
        .env("ITBOT__ASSIST__WAIT_SECS", "60")
        .env("PORT", "0")
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("itbot starts");
    let pid = child.id().to_string();
    // Collects the output on a thread so the pipes never fill, and says when the process ended.
    let (exited, output) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || exited.send(child.wait_with_output()));
    wait_until("the binary to open both sockets", || ws.open_connections() == 2).await;
    let alice = ws.user_id("alice");
    let secret = "my VPN won't connect, my password is Hunter2!x";
    let root = ws.post(&alice, ws.it_channel(), secret, None);
    wait_until("the ticket to reach the bot", || ws.envelopes_acked() >= 1).await;

    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let output = tokio::time::timeout(helpers::DEADLINE, output)
        .await
        .expect("the binary did not exit after SIGTERM")
        .expect("output thread")
        .expect("output is read");

    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "exit status; logs:\n{logs}");
    let replies: Vec<_> = ws
        .thread(ws.it_channel(), &root)
        .into_iter()
        .filter(|p| p.user.as_deref() == Some(ws.bot_user_id()))
        .collect();
    assert_eq!(replies.len(), 1, "the answer in flight was not posted before exit");
    wait_until("the sockets to be closed", || ws.open_connections() == 0).await;
    assert!(logs.contains("drained"), "no drain in the logs");
    for leak in ["Hunter2", "VPN won't connect", ws.bot_token(), ws.app_token()] {
        assert!(!logs.contains(leak), "the logs contain {leak:?}");
    }
}
