//! The Socket Mode half of the simulated workspace, and the events it delivers.

use std::time::Duration;

use awc::ws::{Frame, Message};
use itbot_fakes::workspace::WorkspaceOptions;
use serde_json::{json, Value};

use crate::helpers::*;

#[actix_rt::test]
async fn apps_connections_open_returns_a_ws_url_whose_upgrade_gets_hello() {
    let ws = start(fast_options()).await;

    let mut socket = Socket::open(&ws).await;
    let hello = socket.hello().await;

    assert_eq!(hello["num_connections"], 1);
    assert_eq!(hello["debug_info"]["approximate_connection_time"], 18060);
    assert!(hello["debug_info"]["host"].as_str().unwrap().starts_with("applink-"));
    assert!(hello["connection_info"]["app_id"].as_str().unwrap().starts_with('A'));
    let fixture: Value = serde_json::from_str(&fixture("slack/socket_mode/hello.json")).unwrap();
    assert_same_shape(&hello, &fixture, "hello");
    wait_until("the connection is counted", || ws.open_connections() == 1).await;
    ws.stop().await;
}

#[actix_rt::test]
async fn a_ticket_is_single_use_and_unknown_tickets_are_refused() {
    let ws = start(fast_options()).await;
    let r = call_form(&ws, "apps.connections.open", Some(ws.app_token()), &[]).await;
    let url = r.body["url"].as_str().unwrap().to_string();

    let mut first = Socket::connect(&url).await.expect("first upgrade");
    first.hello().await;
    let reused = Socket::connect(&url).await;
    let forged = Socket::connect(&url.replace("ticket=", "ticket=0")).await;

    assert!(reused.is_err());
    assert!(forged.is_err());
    ws.stop().await;
}

#[actix_rt::test]
async fn a_human_post_arrives_as_an_envelope_and_acks_with_and_without_payload_count() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;
    let alice = ws.user_id("alice");

    let ts = ws.post(&alice, ws.it_channel(), "my vpn keeps dropping", None);
    let env = socket.envelope().await;
    socket.ack(&env, None).await;
    ws.post(&alice, ws.it_channel(), "also wifi", None);
    let env2 = socket.envelope().await;
    socket.ack(&env2, Some(json!({}))).await;

    assert_eq!(env["retry_attempt"], 0);
    assert_eq!(env["retry_reason"], "");
    assert_eq!(env["accepts_response_payload"], false);
    let payload = &env["payload"];
    assert_eq!(payload["type"], "event_callback");
    assert!(payload["event_id"].as_str().unwrap().starts_with("Ev"));
    assert!(payload["event_time"].is_u64());
    assert_eq!(payload["team_id"], ws.team_id());
    assert_eq!(payload["authorizations"][0]["user_id"], ws.bot_user_id());
    let event = &payload["event"];
    assert_eq!(event["type"], "message");
    assert_eq!(event["user"], alice);
    assert_eq!(event["text"], "my vpn keeps dropping");
    assert_eq!(event["ts"], ts);
    assert_eq!(event["event_ts"], ts);
    assert_eq!(event["channel"], ws.it_channel());
    assert_eq!(event["channel_type"], "channel");
    assert!(event.get("subtype").is_none());
    assert_eq!(event["blocks"][0]["type"], "rich_text");
    let fixture: Value = serde_json::from_str(&fixture("slack/events/message_user.json")).unwrap();
    let mut expected_event = fixture["event"].clone();
    expected_event["channel_type"] = json!("channel");
    assert_same_shape(event, &expected_event, "event");
    assert_ne!(env["envelope_id"], env2["envelope_id"]);
    assert_ne!(env["payload"]["event_id"], env2["payload"]["event_id"]);
    wait_until("both acks are counted", || ws.envelopes_acked() == 2).await;
    assert_eq!(ws.envelopes_sent(), 2);
    ws.stop().await;
}

#[actix_rt::test]
async fn a_mention_arrives_as_message_and_app_mention_with_different_event_ids() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;
    let root = ws.post(&ws.user_id("bob"), ws.it_channel(), "laptop slow", None);
    let env = socket.envelope().await;
    socket.ack(&env, None).await;

    let text = format!("<@{}> any ideas?", ws.bot_user_id());
    let ts = ws.post(&ws.user_id("bob"), ws.it_channel(), &text, Some(&root));
    let a = socket.envelope().await;
    let b = socket.envelope().await;

    let types: Vec<&str> = [&a, &b].iter().map(|e| e["payload"]["event"]["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["message", "app_mention"]);
    assert_ne!(a["payload"]["event_id"], b["payload"]["event_id"]);
    for e in [&a, &b] {
        assert_eq!(e["payload"]["event"]["ts"], ts);
        assert_eq!(e["payload"]["event"]["thread_ts"], root);
    }
    assert_eq!(a["payload"]["event"]["parent_user_id"], ws.user_id("bob"));
    assert_eq!(
        b["payload"]["event"]["blocks"][0]["elements"][0]["elements"][0],
        json!({"type": "user", "user_id": ws.bot_user_id()})
    );
    ws.stop().await;
}

#[actix_rt::test]
async fn an_unacked_envelope_is_redelivered_with_retry_attempt_1_and_the_same_event_id() {
    let ws = start(WorkspaceOptions {
        ack_timeout: Duration::from_millis(150),
        max_redeliveries: 1,
        ..fast_options()
    })
    .await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;

    ws.post(&ws.user_id("carol"), ws.it_channel(), "password reset please", None);
    let first = socket.envelope().await;
    let retry = socket.envelope().await;
    socket.ack(&retry, None).await;

    assert_eq!(retry["retry_attempt"], 1);
    assert_eq!(retry["retry_reason"], "timeout");
    assert_eq!(retry["payload"]["event_id"], first["payload"]["event_id"]);
    assert_eq!(retry["payload"]["event"], first["payload"]["event"]);
    wait_until("the retry is acked", || ws.envelopes_acked() == 1).await;
    socket.expect_silence(Duration::from_millis(400)).await;
    assert_eq!(ws.envelopes_sent(), 2);
    ws.stop().await;
}

#[actix_rt::test]
async fn redelivery_stops_after_max_redeliveries() {
    let ws = start(WorkspaceOptions {
        ack_timeout: Duration::from_millis(80),
        max_redeliveries: 2,
        ..fast_options()
    })
    .await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;

    ws.post(&ws.user_id("carol"), ws.it_channel(), "x", None);
    let attempts = [socket.envelope().await, socket.envelope().await, socket.envelope().await];
    socket.expect_silence(Duration::from_millis(300)).await;

    let n: Vec<u64> = attempts.iter().map(|e| e["retry_attempt"].as_u64().unwrap()).collect();
    assert_eq!(n, [0, 1, 2]);
    assert_eq!(ws.envelopes_acked(), 0);
    ws.stop().await;
}

#[actix_rt::test]
async fn a_client_ping_payload_is_echoed_in_the_pong() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;

    socket.send(Message::Ping(bytes::Bytes::from_static(b"session-7:1700000000.25"))).await;
    let pong = loop {
        match socket.frame().await {
            Some(Frame::Pong(p)) => break p,
            Some(Frame::Ping(_)) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };

    assert_eq!(&pong[..], b"session-7:1700000000.25");
    ws.stop().await;
}

#[actix_rt::test]
async fn the_server_pings_every_ping_interval() {
    let ws = start(WorkspaceOptions { ping_interval: Duration::from_millis(50), ..fast_options() }).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;

    let mut pings = 0;
    while pings < 2 {
        if let Some(Frame::Ping(p)) = socket.frame().await {
            assert!(p.starts_with(b"Ping from applink-"));
            pings += 1;
        }
    }

    ws.stop().await;
}

#[actix_rt::test]
async fn unknown_client_frames_are_ignored_and_counted() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;

    socket.send_json(&json!({"type": "hello_back"})).await;
    socket.send(Message::Text("not json".into())).await;
    ws.post(&ws.user_id("erin"), ws.other_channel(), "lunch?", None);
    let env = socket.envelope().await;

    assert_eq!(env["payload"]["event"]["text"], "lunch?");
    wait_until("both frames are counted", || ws.unknown_frames() == 2).await;
    ws.stop().await;
}

#[actix_rt::test]
async fn events_while_no_socket_is_open_are_delivered_when_one_opens() {
    let ws = start(fast_options()).await;
    ws.post(&ws.user_id("frank"), ws.it_channel(), "queued one", None);
    ws.post(&ws.user_id("frank"), ws.it_channel(), "queued two", None);
    assert_eq!(ws.queued_events(), 2);

    let mut socket = Socket::open(&ws).await;
    socket.hello().await;
    let a = socket.envelope().await;
    let b = socket.envelope().await;

    assert_eq!(a["payload"]["event"]["text"], "queued one");
    assert_eq!(b["payload"]["event"]["text"], "queued two");
    assert_eq!(ws.queued_events(), 0);
    ws.stop().await;
}

#[actix_rt::test]
async fn each_event_goes_to_exactly_one_of_two_connections() {
    let ws = start(fast_options()).await;
    let mut one = Socket::open(&ws).await;
    one.hello().await;
    let mut two = Socket::open(&ws).await;
    let hello2 = two.hello().await;
    assert_eq!(hello2["num_connections"], 2);
    let user = ws.user_id("gina");

    for i in 0..4 {
        ws.post(&user, ws.other_channel(), &format!("m{i}"), None);
    }
    let mut texts = Vec::new();
    for _ in 0..2 {
        for s in [&mut one, &mut two] {
            let e = s.envelope().await;
            s.ack(&e, None).await;
            texts.push(e["payload"]["event"]["text"].as_str().unwrap().to_string());
        }
    }
    one.expect_silence(Duration::from_millis(100)).await;
    two.expect_silence(Duration::from_millis(100)).await;

    texts.sort();
    assert_eq!(texts, ["m0", "m1", "m2", "m3"]);
    ws.stop().await;
}

#[actix_rt::test]
async fn assist_posts_in_the_thread_after_the_delay_with_ticket_key_and_assignee() {
    let ws = start(WorkspaceOptions { assist_enabled: true, ..fast_options() }).await;
    ws.set_assignees(&["dana", "eve"]);
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;
    let alice = ws.user_id("alice");

    let root = ws.post(&alice, ws.it_channel(), "need access to Snowflake", None);
    let human = socket.envelope().await;
    socket.ack(&human, None).await;
    let assist = socket.envelope().await;
    socket.ack(&assist, None).await;
    let root2 = ws.post(&alice, ws.it_channel(), "and Jira", None);
    let human2 = socket.envelope().await;
    socket.ack(&human2, None).await;
    let assist2 = socket.envelope().await;

    let event = &assist["payload"]["event"];
    let dana = ws.user_id("dana");
    assert_eq!(event["type"], "message");
    assert!(event.get("subtype").is_none());
    assert_eq!(event["bot_id"], ws.assist_bot_id());
    assert_eq!(event["user"], ws.assist_user_id());
    assert_eq!(event["bot_profile"]["name"], "Assist");
    assert_eq!(event["thread_ts"], root);
    assert_eq!(event["parent_user_id"], alice);
    assert_eq!(event["text"], format!("Ticket IT-1000 created.\nAssignee: <@{dana}>"));
    assert_eq!(event["blocks"][0]["type"], "section");
    assert_eq!(event["blocks"][0]["text"]["text"], event["text"]);
    let ev2 = &assist2["payload"]["event"];
    assert_eq!(ev2["thread_ts"], root2);
    assert_eq!(ev2["text"], format!("Ticket IT-1001 created.\nAssignee: <@{}>", ws.user_id("eve")));
    let thread = ws.thread(ws.it_channel(), &root);
    assert_eq!(thread.len(), 2);
    assert_eq!(thread[1].bot_id.as_deref(), Some(ws.assist_bot_id()));
    let fixture: Value =
        serde_json::from_str(&fixture("slack/events/message_from_app_no_subtype.json")).unwrap();
    let ev_keys: Vec<&String> = event.as_object().unwrap().keys().collect();
    for k in fixture["event"].as_object().unwrap().keys() {
        assert!(ev_keys.contains(&k), "assist event lacks {k}");
    }
    ws.stop().await;
}

#[actix_rt::test]
async fn assist_does_not_answer_replies_or_other_channels() {
    let ws = start(WorkspaceOptions { assist_enabled: true, ..fast_options() }).await;
    let mut stream = ws.subscribe();
    let alice = ws.user_id("alice");

    ws.post(&alice, ws.other_channel(), "hi all", None);
    let root = ws.post(&alice, ws.it_channel(), "help", None);
    ws.post(&alice, ws.it_channel(), "more detail", Some(&root));

    let mut assist = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    while let Ok(Ok(p)) = tokio::time::timeout_at(deadline, stream.recv()).await {
        if p.bot_id.as_deref() == Some(ws.assist_bot_id()) {
            assist += 1;
            assert_eq!(p.thread_ts.as_deref(), Some(root.as_str()));
        }
    }
    assert_eq!(assist, 1);
    ws.stop().await;
}

#[actix_rt::test]
async fn the_apps_own_posts_come_back_as_message_events_with_bot_id_and_no_subtype() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;

    let r = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[("channel", ws.it_channel()), ("text", "hello from itbot")],
    )
    .await;
    let env = socket.envelope().await;

    let event = &env["payload"]["event"];
    assert_eq!(event["ts"], r.body["ts"]);
    assert_eq!(event["bot_id"], ws.bot_id());
    assert_eq!(event["user"], ws.bot_user_id());
    assert!(event.get("subtype").is_none());
    ws.post_as_other_bot(ws.it_channel(), "deploy finished", None);
    let other = socket.envelope().await;
    assert_eq!(other["payload"]["event"]["bot_id"], ws.other_bot_id());
    assert_ne!(other["payload"]["event"]["bot_id"], ws.bot_id());
    assert!(other["payload"]["event"].get("subtype").is_none());
    ws.stop().await;
}

#[actix_rt::test]
async fn edits_deletes_and_reactions_arrive_as_their_events() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;
    let hank = ws.user_id("hank");
    let ts = ws.post(&hank, ws.it_channel(), "wifi broken", None);
    socket.envelope().await;

    ws.edit(ws.it_channel(), &ts, "wifi broken on floor 3");
    let changed = socket.envelope().await["payload"]["event"].clone();
    ws.react(&hank, ws.it_channel(), &ts, "-1");
    let reaction = socket.envelope().await["payload"]["event"].clone();
    ws.delete(ws.it_channel(), &ts);
    let deleted = socket.envelope().await["payload"]["event"].clone();

    assert_eq!(changed["subtype"], "message_changed");
    assert_eq!(changed["hidden"], true);
    assert_eq!(changed["message"]["ts"], ts);
    assert_eq!(changed["message"]["text"], "wifi broken on floor 3");
    assert_eq!(changed["message"]["edited"]["user"], hank);
    assert_eq!(changed["previous_message"]["text"], "wifi broken");
    assert_ne!(changed["ts"], ts);
    assert_eq!(reaction["type"], "reaction_added");
    assert_eq!(reaction["reaction"], "-1");
    assert_eq!(reaction["item"], json!({"type": "message", "channel": ws.it_channel(), "ts": ts}));
    assert_eq!(reaction["item_user"], hank);
    assert_eq!(deleted["subtype"], "message_deleted");
    assert_eq!(deleted["deleted_ts"], ts);
    assert_eq!(deleted["previous_message"]["text"], "wifi broken on floor 3");
    assert!(ws.messages(ws.it_channel()).is_empty());
    ws.stop().await;
}

#[actix_rt::test]
async fn disconnect_messages_reach_every_socket_and_dropped_sockets_end() {
    let ws = start(fast_options()).await;
    let mut one = Socket::open(&ws).await;
    one.hello().await;
    let mut two = Socket::open(&ws).await;
    two.hello().await;

    ws.send_disconnect_all("refresh_requested");
    let d1 = one.json().await;
    let d2 = two.json().await;
    ws.drop_connections();

    for d in [&d1, &d2] {
        assert_eq!(d["type"], "disconnect");
        assert_eq!(d["reason"], "refresh_requested");
    }
    for s in [&mut one, &mut two] {
        loop {
            match s.frame().await {
                None | Some(Frame::Close(_)) => break,
                Some(_) => continue,
            }
        }
    }
    wait_until("no connection is open", || ws.open_connections() == 0).await;
    ws.stop().await;
}

#[actix_rt::test]
async fn every_first_ack_is_timed_and_calls_are_counted_by_method() {
    let ws = start(fast_options()).await;
    let mut socket = Socket::open(&ws).await;
    socket.hello().await;
    let alice = ws.user_id("alice");

    ws.post(&alice, ws.it_channel(), "my vpn keeps dropping", None);
    let first = socket.envelope().await;
    socket.ack(&first, None).await;
    socket.ack(&first, None).await;
    ws.post(&alice, ws.it_channel(), "also wifi", None);
    let second = socket.envelope().await;
    socket.ack(&second, None).await;
    wait_until("both acks are read", || ws.envelopes_acked() == 2).await;
    call_form(&ws, "auth.test", Some(ws.bot_token()), &[]).await;

    let all = ws.ack_latencies(0);
    assert_eq!(all.len(), 2, "a repeated ack is not timed twice");
    assert!(all.iter().all(|d| *d < Duration::from_secs(15)));
    assert_eq!(ws.ack_latencies(1).len(), 1);
    assert!(ws.ack_latencies(5).is_empty());
    let calls = ws.calls_by_method();
    assert_eq!(calls.get("auth.test"), Some(&1));
    assert_eq!(calls.get("apps.connections.open"), Some(&1));
    ws.stop().await;
}
