//! The simulated workspace's streaming methods: `chat.startStream`, `chat.appendStream`,
//! `chat.stopStream`.

use itbot_fakes::workspace::WorkspaceOptions;
use serde_json::{json, Value};

use crate::helpers::*;

/// A root message in #it and the ts of the stream started in its thread.
async fn started(ws: &itbot_fakes::workspace::Workspace) -> (String, String, String) {
    let alice = ws.user_id("alice");
    let root = ws.post(&alice, ws.it_channel(), "my vpn is down", None);
    let r = call_json(
        ws,
        "chat.startStream",
        Some(ws.bot_token()),
        &json!({
            "channel": ws.it_channel(),
            "thread_ts": root,
            "recipient_user_id": alice,
            "recipient_team_id": ws.team_id(),
            "markdown_text": "1. Quit the ",
        }),
    )
    .await;
    assert_eq!(r.body["ok"], true, "{}", r.raw);
    assert_eq!(r.body["channel"], ws.it_channel());
    (alice, root, r.body["ts"].as_str().expect("a ts").to_string())
}

#[actix_rt::test]
async fn a_stream_grows_with_appends_and_stop_attaches_blocks_and_metadata() {
    let ws = start(fast_options()).await;
    let (_, root, ts) = started(&ws).await;

    let append = call_json(
        &ws,
        "chat.appendStream",
        Some(ws.bot_token()),
        &json!({"channel": ws.it_channel(), "ts": ts, "markdown_text": "**VPN** client"}),
    )
    .await;
    let stop = call_json(
        &ws,
        "chat.stopStream",
        Some(ws.bot_token()),
        &json!({
            "channel": ws.it_channel(),
            "ts": ts,
            "markdown_text": ", then reconnect.",
            "blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "_footer_"}]}],
            "metadata": {"event_type": "itbot_thread_state", "event_payload": {"v": 1}},
        }),
    )
    .await;

    assert_eq!(append.body["ok"], true, "{}", append.raw);
    assert_eq!(stop.body["ok"], true, "{}", stop.raw);
    assert_eq!(stop.body["message"]["text"], "1. Quit the **VPN** client, then reconnect.");
    let thread = ws.thread(ws.it_channel(), &root);
    let msg = thread.iter().find(|p| p.ts == ts).expect("the streamed message is stored in the thread");
    assert_eq!(msg.thread_ts.as_deref(), Some(root.as_str()));
    assert_eq!(msg.user.as_deref(), Some(ws.bot_user_id()));
    assert_eq!(
        msg.metadata.as_ref().map(|m| m["event_type"].clone()),
        Some(Value::from("itbot_thread_state"))
    );
    assert_eq!(msg.blocks.as_ref().map(|b| b[0]["type"].clone()), Some(Value::from("context")));
    ws.stop().await;
}

#[actix_rt::test]
async fn a_stopped_stream_takes_no_more_text() {
    let ws = start(fast_options()).await;
    let (_, _, ts) = started(&ws).await;
    call_json(&ws, "chat.stopStream", Some(ws.bot_token()), &json!({"channel": ws.it_channel(), "ts": ts}))
        .await;

    let late = call_json(
        &ws,
        "chat.appendStream",
        Some(ws.bot_token()),
        &json!({"channel": ws.it_channel(), "ts": ts, "markdown_text": "more"}),
    )
    .await;

    assert_eq!(late.body, json!({"ok": false, "error": "message_not_in_streaming_state"}));
    ws.stop().await;
}

#[actix_rt::test]
async fn a_channel_stream_needs_its_recipient_user_and_team() {
    let ws = start(fast_options()).await;
    let alice = ws.user_id("alice");
    let root = ws.post(&alice, ws.it_channel(), "help", None);
    let base = json!({"channel": ws.it_channel(), "thread_ts": root, "markdown_text": "hi"});

    let no_user = call_json(&ws, "chat.startStream", Some(ws.bot_token()), &base).await;
    let mut only_user = base.clone();
    only_user["recipient_user_id"] = json!(alice);
    let no_team = call_json(&ws, "chat.startStream", Some(ws.bot_token()), &only_user).await;

    assert_eq!(no_user.body["error"], "missing_recipient_user_id");
    assert_eq!(no_team.body["error"], "missing_recipient_team_id");
    ws.stop().await;
}

#[actix_rt::test]
async fn a_workspace_without_streaming_refuses_to_start_one() {
    let ws = start(WorkspaceOptions { streaming: false, ..fast_options() }).await;
    let alice = ws.user_id("alice");
    let root = ws.post(&alice, ws.it_channel(), "help", None);

    let r = call_json(
        &ws,
        "chat.startStream",
        Some(ws.bot_token()),
        &json!({"channel": ws.it_channel(), "thread_ts": root, "recipient_user_id": alice, "recipient_team_id": ws.team_id()}),
    )
    .await;

    assert_eq!(r.body, json!({"ok": false, "error": "feature_not_enabled"}));
    ws.stop().await;
}

#[actix_rt::test]
async fn markdown_over_the_per_call_limit_is_refused() {
    let ws = start(fast_options()).await;
    let (_, _, ts) = started(&ws).await;

    let r = call_json(
        &ws,
        "chat.appendStream",
        Some(ws.bot_token()),
        &json!({"channel": ws.it_channel(), "ts": ts, "markdown_text": "x".repeat(12_001)}),
    )
    .await;

    assert_eq!(r.body["error"], "msg_too_long");
    ws.stop().await;
}
